package file_test

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"
	"google.golang.org/grpc/grpclog"
)

// TestMain records grpc's logs, so that tests can check what the resolver
// logs, and checks for leaked goroutines. The logger is set before any
// goroutine of grpc runs, as grpclog.SetLoggerV2 requires.
func TestMain(m *testing.M) {
	grpclog.SetLoggerV2(logs)
	goleak.VerifyTestMain(m)
}

// logs holds the lines the resolver logged, with their severity.
var logs = &recorder{}

type recorder struct {
	mu    sync.Mutex
	lines []string // "ERROR: [file-resolver] ..."
}

// matching returns the lines that contain every one of substrs.
func (r *recorder) matching(substrs ...string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
next:
	for _, l := range r.lines {
		for _, s := range substrs {
			if !strings.Contains(l, s) {
				continue next
			}
		}
		out = append(out, l)
	}
	return out
}

func (r *recorder) add(severity string, args ...any) {
	line := severity + ": " + strings.TrimSuffix(fmt.Sprintln(args...), "\n")
	if os.Getenv("FILE_RESOLVER_TEST_LOGS") != "" {
		fmt.Fprintln(os.Stderr, line)
	}
	if !strings.Contains(line, "[file-resolver]") {
		return // grpc's own lines: not what the tests look at
	}
	r.mu.Lock()
	r.lines = append(r.lines, line)
	r.mu.Unlock()
}

func (r *recorder) Info(args ...any)                 { r.add("INFO", args...) }
func (r *recorder) Infoln(args ...any)               { r.add("INFO", args...) }
func (r *recorder) Infof(format string, args ...any) { r.add("INFO", fmt.Sprintf(format, args...)) }
func (r *recorder) Warning(args ...any)              { r.add("WARNING", args...) }
func (r *recorder) Warningln(args ...any)            { r.add("WARNING", args...) }
func (r *recorder) Warningf(format string, args ...any) {
	r.add("WARNING", fmt.Sprintf(format, args...))
}
func (r *recorder) Error(args ...any)                 { r.add("ERROR", args...) }
func (r *recorder) Errorln(args ...any)               { r.add("ERROR", args...) }
func (r *recorder) Errorf(format string, args ...any) { r.add("ERROR", fmt.Sprintf(format, args...)) }
func (r *recorder) Fatal(args ...any)                 { r.add("FATAL", args...); os.Exit(1) }
func (r *recorder) Fatalln(args ...any)               { r.add("FATAL", args...); os.Exit(1) }
func (r *recorder) Fatalf(format string, args ...any) {
	r.add("FATAL", fmt.Sprintf(format, args...))
	os.Exit(1)
}
func (r *recorder) V(l int) bool { return l <= 0 }

// Package genspeed times protoc plugins on one large CodeGeneratorRequest:
// a generated set of .proto files with hundreds of services and thousands
// of methods, many of them annotated with lbclient's rules, compiled once
// by protoc and fed to each plugin binary on stdin.
package genspeed

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/pluginpb"
)

// Size is the shape of the generated input.
type Size struct {
	Files, ServicesPerFile, MethodsPerService int
}

// Services is the number of services.
func (s Size) Services() int { return s.Files * s.ServicesPerFile }

// Methods is the number of methods.
func (s Size) Methods() int { return s.Services() * s.MethodsPerService }

var policies = []string{"PEAK_EWMA", "ROUND_ROBIN", "LEAST_REQUEST", "CONSISTENT_HASH", "PICK_FIRST", "POLICY_UNSPECIFIED"}

// WriteProtos writes the .proto files of size s under dir and returns their
// names relative to dir. Every second service carries service rules; its
// methods cycle through plain, timeout, retry, hedged (idempotent) and
// hash-keyed rules, and through the four kinds of streaming.
func WriteProtos(dir string, s Size) ([]string, error) {
	var names []string
	for f := range s.Files {
		name := fmt.Sprintf("bench/gen%03d/v1/gen%03d.proto", f, f)
		var b strings.Builder
		fmt.Fprintf(&b, "syntax = \"proto3\";\n\npackage bench.gen%03d.v1;\n\nimport \"lbclient/v1/lbclient.proto\";\n\n", f)
		fmt.Fprintf(&b, "option go_package = \"example.com/bench/gen%03d/v1;gen%03dv1\";\n\n", f, f)
		fmt.Fprintf(&b, "// Account is who a call is for.\nmessage Account {\n  string id = 1;\n  string region = 2;\n}\n\n")
		fmt.Fprintf(&b, "// Request asks for something.\nmessage Request {\n  Account account = 1;\n  string name = 2;\n  int64 shard = 3;\n}\n\n")
		fmt.Fprintf(&b, "// Reply answers it.\nmessage Reply {\n  string message = 1;\n}\n\n")
		for sv := range s.ServicesPerFile {
			fmt.Fprintf(&b, "// Service%d is generated service %d of file %d.\nservice Service%d {\n", sv, sv, f, sv)
			annotated := (f*s.ServicesPerFile+sv)%2 == 0
			if annotated {
				fmt.Fprintf(&b, "  option (lbclient.v1.service) = {\n    default_target: \"dns:///svc%d.gen%03d.internal:8443\"\n    policy: %s\n    defaults: { timeout: \"2s\" wait_for_ready: true }\n  };\n\n",
					sv, f, policies[(f+sv)%len(policies)])
			}
			for m := range s.MethodsPerService {
				in, out := "Request", "Reply"
				switch m % 7 {
				case 5:
					out = "stream Reply"
				case 6:
					in = "stream Request"
				}
				if m%13 == 12 {
					in, out = "stream Request", "stream Reply"
				}
				fmt.Fprintf(&b, "  // Method%d does thing %d.\n  rpc Method%d(%s) returns (%s)", m, m, m, in, out)
				unary := !strings.HasPrefix(in, "stream") && !strings.HasPrefix(out, "stream")
				var opts []string
				if annotated && unary {
					switch m % 5 {
					case 1:
						opts = append(opts, "option (lbclient.v1.method) = { timeout: \"250ms\" };")
					case 2:
						opts = append(opts, "option (lbclient.v1.method) = { retry: { max_attempts: 3 initial_backoff: \"20ms\" max_backoff: \"200ms\" backoff_multiplier: 2 retryable_codes: [\"UNAVAILABLE\", \"RESOURCE_EXHAUSTED\"] } };")
					case 3:
						opts = append(opts, "option idempotency_level = NO_SIDE_EFFECTS;",
							"option (lbclient.v1.method) = { timeout: \"1s\" hedging: { max_attempts: 2 delay: \"p95\" non_fatal_codes: [\"UNAVAILABLE\"] } };")
					case 4:
						opts = append(opts, "option idempotency_level = IDEMPOTENT;",
							"option (lbclient.v1.method) = { hash_key: \"account.id\" };")
					}
				}
				if len(opts) == 0 {
					b.WriteString(";\n")
					continue
				}
				b.WriteString(" {\n")
				for _, o := range opts {
					fmt.Fprintf(&b, "    %s\n", o)
				}
				b.WriteString("  }\n")
			}
			b.WriteString("}\n\n")
		}
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			return nil, err
		}
		names = append(names, name)
	}
	return names, nil
}

// Request compiles files (relative to dir, importing lbclient's annotations
// from protoDir) with protoc and returns the CodeGeneratorRequest every
// plugin gets, asking for paths=source_relative.
func Request(dir, protoDir string, files []string) (*pluginpb.CodeGeneratorRequest, error) {
	protoc, err := exec.LookPath("protoc")
	if err != nil {
		return nil, fmt.Errorf("protoc is not on the PATH (Debian: apt-get install protobuf-compiler): %w", err)
	}
	set := filepath.Join(dir, "set.binpb")
	args := append([]string{"-I", protoDir, "-I", dir, "--include_imports", "--include_source_info", "--descriptor_set_out=" + set}, files...)
	cmd := exec.Command(protoc, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("protoc: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(set)
	if err != nil {
		return nil, err
	}
	var fds descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(raw, &fds); err != nil {
		return nil, err
	}
	return &pluginpb.CodeGeneratorRequest{
		FileToGenerate: files,
		Parameter:      proto.String("paths=source_relative"),
		ProtoFile:      fds.GetFile(), // protoc lists dependencies first
	}, nil
}

// Sample is one run of a plugin.
type Sample struct {
	Wall    time.Duration
	MaxRSS  int64 // bytes
	Files   int   // files in the response
	OutSize int   // bytes of generated content
}

// runnerEnv, when set in the environment, makes a process that calls
// MaybeRunner run the plugin it names instead of doing its own work.
const runnerEnv = "LBCLIENT_BENCH_PLUGIN"

// rssPrefix starts the go-between's report of the plugin's peak RSS, the
// last line of its stderr.
const rssPrefix = "lbclient-bench-maxrss-kib="

// MaybeRunner is called first thing in main (and TestMain). Linux counts in
// a process's peak RSS the memory of the process it was started from until
// its exec (os/exec starts children with vfork, sharing the parent's
// memory), so a plugin started by the harness would report the harness's
// peak. A fresh, small process in between starts the plugin as its own
// child, passing stdin and stdout through, and reports the child's peak:
// the floor is then the go-between's few MiB.
func MaybeRunner() {
	bin := os.Getenv(runnerEnv)
	if bin == "" {
		return
	}
	cmd := exec.Command(bin)
	cmd.Env = slices.DeleteFunc(os.Environ(), func(e string) bool { return strings.HasPrefix(e, runnerEnv+"=") })
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err := cmd.Run()
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok && cmd.ProcessState != nil {
		fmt.Fprintf(os.Stderr, "\n%s%d\n", rssPrefix, ru.Maxrss)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, bin, err)
		os.Exit(2)
	}
	os.Exit(0)
}

// RunPlugin runs the plugin binary with req on stdin, through a fresh
// process of the running executable (see MaybeRunner), and checks that it
// answered without error.
func RunPlugin(bin string, req []byte) (Sample, error) {
	self, err := os.Executable()
	if err != nil {
		return Sample{}, err
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), runnerEnv+"="+bin)
	cmd.Stdin = bytes.NewReader(req)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	t0 := time.Now()
	if err := cmd.Run(); err != nil {
		return Sample{}, fmt.Errorf("%s: %v\n%s", filepath.Base(bin), err, stderr.String())
	}
	wall := time.Since(t0)
	var resp pluginpb.CodeGeneratorResponse
	if err := proto.Unmarshal(stdout.Bytes(), &resp); err != nil {
		return Sample{}, fmt.Errorf("%s: response: %w", filepath.Base(bin), err)
	}
	if resp.Error != nil {
		return Sample{}, fmt.Errorf("%s: plugin error: %s", filepath.Base(bin), resp.GetError())
	}
	s := Sample{Wall: wall, Files: len(resp.GetFile())}
	for _, f := range resp.GetFile() {
		s.OutSize += len(f.GetContent())
	}
	for _, line := range strings.Split(stderr.String(), "\n") {
		if v, ok := strings.CutPrefix(line, rssPrefix); ok {
			kib, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return Sample{}, fmt.Errorf("%s: peak RSS %q: %w", filepath.Base(bin), v, err)
			}
			s.MaxRSS = kib * 1024 // Linux reports kilobytes
		}
	}
	if s.MaxRSS == 0 {
		return Sample{}, fmt.Errorf("%s: no peak RSS reported", filepath.Base(bin))
	}
	return s, nil
}

// Plugin is a plugin to build and time.
type Plugin struct {
	Name string
	// Build args for `go build -o BIN ...`, run at the repository root.
	BuildArgs []string
}

// Plugins are lbclient's plugin and the two it runs beside.
var Plugins = []Plugin{
	{Name: "protoc-gen-go-lbclient", BuildArgs: []string{"./cmd/protoc-gen-go-lbclient"}},
	{Name: "protoc-gen-go-grpc", BuildArgs: []string{"-modfile=tools/go.mod", "google.golang.org/grpc/cmd/protoc-gen-go-grpc"}},
	{Name: "protoc-gen-go", BuildArgs: []string{"-modfile=tools/go.mod", "google.golang.org/protobuf/cmd/protoc-gen-go"}},
}

// Build builds p into dir at the repository root and returns the binary.
func Build(root, dir string, p Plugin) (string, error) {
	bin := filepath.Join(dir, p.Name)
	args := append([]string{"build", "-o", bin}, p.BuildArgs...)
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return bin, nil
}

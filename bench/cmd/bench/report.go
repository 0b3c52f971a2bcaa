package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	goruntime "runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/lbclient/lbclient/bench/internal/stats"
)

// report collects the sections of BENCHMARKS.md as they are measured.
type report struct {
	root, chartDir, outPath string
	quick                   bool
	start                   time.Time
	elapsed                 time.Duration

	cpu, goVersion, grpcVersion, commit, kernel string
	cores                                       int

	summary  []string // one line per goal, for the top of the report
	sections []string
}

// machine records what the numbers were measured on.
func (r *report) machine() {
	r.cpu = "unknown"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				r.cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		r.kernel = strings.TrimSpace(string(b))
	}
	r.cores = goruntime.NumCPU()
	r.goVersion = goruntime.Version()
	r.grpcVersion = "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "google.golang.org/grpc" {
				r.grpcVersion = d.Version
			}
		}
	}
	if out, err := exec.Command("git", "-C", r.root, "rev-parse", "--short", "HEAD").Output(); err == nil {
		r.commit = strings.TrimSpace(string(out))
	}
}

func (r *report) add(format string, args ...any) {
	r.sections = append(r.sections, fmt.Sprintf(format, args...))
}

func (r *report) goal(format string, args ...any) {
	r.summary = append(r.summary, fmt.Sprintf(format, args...))
}

func (r *report) write(w *bytes.Buffer) {
	fmt.Fprintf(w, "# Benchmarks\n\n")
	fmt.Fprintf(w, "Written by `go -C bench run ./cmd/bench`; do not edit by hand. ")
	fmt.Fprintf(w, "The harness is the `bench/` module, a module of its own so that its dependencies (plotting) never reach users of the runtime.\n\n")
	if r.quick {
		fmt.Fprintf(w, "> **This is a `-quick` run: tiny loads, the numbers mean nothing.**\n\n")
	}
	fmt.Fprintf(w, "| | |\n|---|---|\n")
	fmt.Fprintf(w, "| date | %s |\n", r.start.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(w, "| CPU | %s, %d cores (GOMAXPROCS %d) |\n", r.cpu, r.cores, goruntime.GOMAXPROCS(0))
	fmt.Fprintf(w, "| OS | %s/%s, kernel %s |\n", goruntime.GOOS, goruntime.GOARCH, r.kernel)
	fmt.Fprintf(w, "| Go | %s |\n", r.goVersion)
	fmt.Fprintf(w, "| grpc-go | %s |\n", r.grpcVersion)
	fmt.Fprintf(w, "| lbclient commit | %s |\n", r.commit)
	fmt.Fprintf(w, "| suite wall time | %v |\n\n", r.elapsed.Round(time.Second))
	fmt.Fprintf(w, "## How to rerun\n\nFrom the repository root (Go 1.26; `protoc` on the PATH for section 3, else buf is built from `tools/go.mod`):\n\n")
	fmt.Fprintf(w, "```sh\ngo -C bench run ./cmd/bench                        # everything, about twelve minutes on two cores; rewrites this file and bench/charts/\ngo -C bench run ./cmd/bench -sections overhead     # one section (overhead, quality, generator, faults, pickers, subsetting, discovery)\ngo -C bench run ./cmd/bench -quick -out /tmp/b.md  # try the harness in seconds\ngo -C bench test ./...                             # the harness's smoke tests (no timing asserted)\n```\n\n")
	fmt.Fprintf(w, "Every figure is the median of repeated runs, with the min–max range in parentheses. Numbers from a shared 2-core virtual machine are noisy: read ratios, not absolutes, and mind the ranges.\n\n")
	if len(r.summary) > 0 {
		fmt.Fprintf(w, "## Goals at a glance\n\n| goal | measured | met? |\n|---|---|---|\n")
		for _, s := range r.summary {
			fmt.Fprintf(w, "%s\n", s)
		}
		fmt.Fprintln(w)
	}
	for _, s := range r.sections {
		io.WriteString(w, s)
		if !strings.HasSuffix(s, "\n\n") {
			io.WriteString(w, "\n")
		}
	}
}

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

// summaryOf is the Summary of f over xs: the median and range of one
// figure over the rounds of a run.
func summaryOf[T any](xs []T, f func(T) float64) stats.Summary {
	vs := make([]float64, len(xs))
	for i, x := range xs {
		vs[i] = f(x)
	}
	return stats.Of(vs)
}

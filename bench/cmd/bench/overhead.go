package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/lbclient/lbclient/bench/internal/overhead"
	"github.com/lbclient/lbclient/bench/internal/stats"
	greeterv1 "github.com/lbclient/lbclient/gen/greeter/v1"
	"github.com/lbclient/lbclient/runtime"
)

// Goals of the issue for call overhead.
const (
	goalRatio  = 1.03
	goalAllocs = 1
)

func (r *report) overhead() error {
	runs, benchTime, profileCalls := 5, 400*time.Millisecond, 40000
	if r.quick {
		runs, benchTime, profileCalls = 1, 20*time.Millisecond, 500
	}
	overhead.SetBenchTime(benchTime)
	s := overhead.StartServer()
	defer s.Stop()
	variants := overheadVariants()
	res, err := overhead.Run(s, variants, overhead.Cases, runs, func(msg string) { log.Print(msg) })
	if err != nil {
		return err
	}

	var b strings.Builder
	fmt.Fprintf(&b, "## 1. Call overhead\n\n")
	fmt.Fprintf(&b, "Unary `SayHello` calls on one in-memory server (`google.golang.org/grpc/test/bufconn`, target `%s`) that echoes the request's name: ", overhead.Target)
	fmt.Fprintf(&b, "a 16-byte name, or a 64 KiB one (64 KiB each way). The baseline is protoc-gen-go-grpc's stub on a plain `grpc.NewClient` with the `round_robin` service config. ")
	fmt.Fprintf(&b, "The lbclient rows are `runtime.Dial(target, nil, WithInsecure(), WithPolicy(p), WithDialOptions(grpc.WithContextDialer(...)))` with no rules, called through protoc-gen-go-grpc's stub on the `*runtime.Conn`%s; ", generatedNote())
	fmt.Fprintf(&b, "CONSISTENT_HASH calls put a hash key on the context per call (`runtime.WithHashKey`), as generated methods with a `hash_key` do. ")
	fmt.Fprintf(&b, "`static:///` targets work with a context dialer too (`static:///bufnet:1`; the smoke test dials one). ")
	fmt.Fprintf(&b, "Each figure is `testing.Benchmark` (%v per run), %d runs interleaved round by round with the order of the clients rotated; serial is one caller, parallel is `b.RunParallel` with 4 goroutines per core.\n\n", benchTime, runs)

	base := variants[0].Name
	type verdict struct {
		ratio, extraAllocs float64
	}
	worst := map[string]verdict{}
	for _, c := range overhead.Cases {
		fmt.Fprintf(&b, "### %s\n\n", c.Name)
		fmt.Fprintf(&b, "| client | ns/op | × stub | B/op | allocs/op | extra allocs |\n|---|---:|---:|---:|---:|---:|\n")
		bs := summarize(res[c.Name][base])
		for _, v := range variants {
			vs := summarize(res[c.Name][v.Name])
			ratio := vs.ns.Median / bs.ns.Median
			extra := vs.allocs.Median - bs.allocs.Median
			fmt.Fprintf(&b, "| %s | %s | %.3f | %s | %s | %+.1f |\n", v.Name, vs.ns.Format("%.0f"), ratio,
				vs.bytes.Format("%.0f"), vs.allocs.Format("%.1f"), extra)
			if !v.Baseline {
				w := worst[v.Name]
				w.ratio = max(w.ratio, ratio)
				w.extraAllocs = max(w.extraAllocs, extra)
				worst[v.Name] = w
			}
		}
		fmt.Fprintln(&b)
	}

	fmt.Fprintf(&b, "### Against the goal (≤ %.2f× ns/op, ≤ %d extra alloc per call), worst case over the four cases\n\n", goalRatio, goalAllocs)
	fmt.Fprintf(&b, "| client | worst × stub | worst extra allocs | ns/op goal met | alloc goal met |\n|---|---:|---:|---|---|\n")
	var metNs, metAllocs []string
	for _, v := range variants[1:] {
		w := worst[v.Name]
		okNs, okA := w.ratio <= goalRatio, w.extraAllocs <= goalAllocs+0.05
		fmt.Fprintf(&b, "| %s | %.3f | %+.1f | %s | %s |\n", v.Name, w.ratio, w.extraAllocs, yesNo(okNs), yesNo(okA))
		if okNs {
			metNs = append(metNs, v.Name)
		}
		if okA {
			metAllocs = append(metAllocs, v.Name)
		}
	}
	fmt.Fprintln(&b)
	pe := "lbclient " + runtime.PeakEWMA.String()
	smallPE := summarize(res["small, serial"][pe]).ns.Median / summarize(res["small, serial"][base]).ns.Median
	largePE := summarize(res["64 KiB, serial"][pe]).ns.Median / summarize(res["64 KiB, serial"][base]).ns.Median
	r.goal("| call overhead ≤ %.2f× the plain stub (PEAK_EWMA, the default, worst of 4 cases) | %.3f× (small serial %.3f×, 64 KiB serial %.3f×) | %s |", goalRatio, worst[pe].ratio, smallPE, largePE, yesNo(worst[pe].ratio <= goalRatio))
	r.goal("| ≤ %d extra alloc per call (PEAK_EWMA, worst of 4 cases) | %+.1f | %s |", goalAllocs, worst[pe].extraAllocs, yesNo(worst[pe].extraAllocs <= goalAllocs+0.05))

	prof, err := r.profileOverhead(s, variants, profileCalls)
	if err != nil {
		return err
	}

	fmt.Fprintf(&b, "**Reading.** The stub's small serial call costs %.1f µs here; ", summarize(res["small, serial"][base]).ns.Median/1000)
	fmt.Fprintf(&b, "PEAK_EWMA, the default policy, costs %.3f× that serially and %.3f× in parallel with small payloads, and %.3f× with 64 KiB payloads, where the copying of the payload dominates and the picker's share shrinks. ",
		smallPE, ratioOf(res, "small, parallel", pe, base), largePE)
	fmt.Fprintf(&b, "Clients meeting the ns/op goal in all four cases: %s. Meeting the allocation goal: %s. ", listOrNone(metNs), listOrNone(metAllocs))
	fmt.Fprintf(&b, "The ranges of repeated runs are often as wide as the differences being measured (a few percent on a shared 2-core VM), so a ratio within about ±3%% of 1 is \"no measurable difference\", not a win or a loss. ")
	fmt.Fprintf(&b, "Where the extra time and the extra allocations go is in the profile below.\n\n")
	b.WriteString(prof)
	r.add("%s", b.String())
	return nil
}

func generatedNote() string {
	if len(generatedVariants()) > 0 {
		return " (rows marked \"generated\" call through the lbclient-generated `greeterv1lbclient` client instead)"
	}
	return ""
}

// overheadVariants are the clients of section 1.
func overheadVariants() []overhead.Variant {
	vs := overhead.Variants(overhead.StubOnConn)
	return append(vs, generatedVariants()...)
}

type sampleSummary struct{ ns, bytes, allocs stats.Summary }

func summarize(samples []overhead.Sample) sampleSummary {
	var ns, by, al []float64
	for _, s := range samples {
		ns = append(ns, s.NsPerOp)
		by = append(by, s.BytesPerOp)
		al = append(al, s.AllocsPerOp)
	}
	return sampleSummary{stats.Of(ns), stats.Of(by), stats.Of(al)}
}

func ratioOf(res overhead.Results, c, v, base string) float64 {
	return summarize(res[c][v]).ns.Median / summarize(res[c][base]).ns.Median
}

func listOrNone(xs []string) string {
	if len(xs) == 0 {
		return "none"
	}
	return strings.Join(xs, ", ")
}

// profileOverhead profiles n small serial calls through the stub and
// through PEAK_EWMA, and returns pprof's difference of the two: where
// lbclient's extra time and allocations go.
func (r *report) profileOverhead(s *overhead.Server, variants []overhead.Variant, n int) (string, error) {
	dir, err := os.MkdirTemp("", "lbclient-bench-prof")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	var pe overhead.Variant
	for _, v := range variants {
		if v.Name == "lbclient "+runtime.PeakEWMA.String() {
			pe = v
		}
	}
	run := func(v overhead.Variant, cpuFile string) error {
		cl, err := v.Dial(s)
		if err != nil {
			return err
		}
		defer cl.Close()
		req := &greeterv1.HelloRequest{Name: "0123456789abcdef"}
		for range 100 {
			if _, err := cl.Greeter.SayHello(context.Background(), req); err != nil {
				return err
			}
		}
		if cpuFile != "" {
			f, err := os.Create(filepath.Join(dir, cpuFile))
			if err != nil {
				return err
			}
			defer f.Close()
			if err := pprof.StartCPUProfile(f); err != nil {
				return err
			}
			defer pprof.StopCPUProfile()
		}
		for range n {
			if _, err := cl.Greeter.SayHello(context.Background(), req); err != nil {
				return err
			}
		}
		return nil
	}
	// CPU first, at the normal sampling of allocations.
	if err := run(variants[0], "stub.cpu"); err != nil {
		return "", err
	}
	if err := run(pe, "pe.cpu"); err != nil {
		return "", err
	}
	// Then every allocation. The profile is cumulative: snapshot before,
	// between and after, and let pprof subtract.
	goruntime.MemProfileRate = 1
	defer func() { goruntime.MemProfileRate = 512 * 1024 }()
	snap := func(name string) error {
		goruntime.GC()
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		defer f.Close()
		return pprof.Lookup("allocs").WriteTo(f, 0)
	}
	if err := snap("a0"); err != nil {
		return "", err
	}
	if err := run(variants[0], ""); err != nil {
		return "", err
	}
	if err := snap("a1"); err != nil {
		return "", err
	}
	if err := run(pe, ""); err != nil {
		return "", err
	}
	if err := snap("a2"); err != nil {
		return "", err
	}
	pprofCmd := func(args ...string) (string, error) {
		cmd := exec.Command("go", append([]string{"tool", "pprof"}, args...)...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("go tool pprof %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out), nil
	}
	if _, err := pprofCmd("-proto", "-output", "stub.alloc", "-base", "a0", "a1"); err != nil {
		return "", err
	}
	if _, err := pprofCmd("-proto", "-output", "pe.alloc", "-base", "a1", "a2"); err != nil {
		return "", err
	}
	cpuTop, err := pprofCmd("-top", "-nodecount=18", "-diff_base", "stub.cpu", "pe.cpu")
	if err != nil {
		return "", err
	}
	cpuCum, err := pprofCmd("-top", "-cum", "-nodecount=25", "-show", "lbclient/lbclient/runtime", "pe.cpu")
	if err != nil {
		return "", err
	}
	allocTop, err := pprofCmd("-top", "-nodecount=14", "-sample_index=alloc_objects", "-hide", "runtime/pprof", "-diff_base", "stub.alloc", "pe.alloc")
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "### Profile: where PEAK_EWMA's extra cost goes\n\n")
	fmt.Fprintf(&b, "%d small serial calls through the stub, then %d through PEAK_EWMA, in this process (CPU profile of each; allocation profile with `MemProfileRate = 1`, subtracted between snapshots); the tables are `go tool pprof -top -diff_base stub pe`: positive rows are what lbclient adds over the stub. Divide the allocation counts by %d for per-call figures.\n\n", n, n, n)
	fmt.Fprintf(&b, "<details><summary>CPU, PEAK_EWMA minus stub (flat)</summary>\n\n```\n%s```\n</details>\n\n", trimPprof(cpuTop))
	fmt.Fprintf(&b, "<details><summary>CPU, PEAK_EWMA alone, lbclient's runtime frames (cumulative)</summary>\n\n```\n%s```\n</details>\n\n", trimPprof(cpuCum))
	fmt.Fprintf(&b, "<details open><summary>Allocations (objects), PEAK_EWMA minus stub</summary>\n\n```\n%s```\n</details>\n\n", trimPprof(allocTop))
	return b.String(), nil
}

// trimPprof drops pprof's file and build lines, which name temporary paths.
func trimPprof(s string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(line, "File:") || strings.HasPrefix(line, "Build ID:") || strings.HasPrefix(line, "Main binary") || strings.HasPrefix(line, "Time:") {
			continue
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}

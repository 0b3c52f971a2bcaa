package main

import (
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
	"github.com/lbclient/lbclient/runtime"
)

// Goals of the issue for call overhead.
const (
	goalRatio  = 1.03
	goalAllocs = 1
)

func (r *report) overhead() error {
	// A block is one turn of each client; the paired ratios come from
	// blocks. A 64 KiB call takes about 8 times as long as a small one, and
	// allocates 64 KiB each way, so a garbage collection lands in one
	// client's turn more often: its blocks are 4 times as long as 60 calls,
	// and there are 60 blocks, so that one collection moves a ratio less.
	runs, benchTime, profileCalls, blocks, pairBlocks := 3, 300*time.Millisecond, 40000, 60, 150
	smallCalls, largeCalls := 300, 240
	if r.quick {
		runs, benchTime, profileCalls, blocks, pairBlocks = 1, 20*time.Millisecond, 500, 3, 3
	}
	overhead.SetBenchTime(benchTime)
	s := overhead.StartServer()
	defer s.Stop()
	variants := overheadVariants()
	res, err := overhead.Run(s, variants, overhead.Cases, runs, func(msg string) { log.Print(msg) })
	if err != nil {
		return err
	}

	paired := map[string]map[string][]float64{}
	for _, c := range overhead.Cases {
		bl, err := overhead.Blocks(s, variants, c, blocks, callsFor(c, smallCalls, largeCalls))
		if err != nil {
			return err
		}
		paired[c.Name] = bl
		log.Printf("overhead: %d interleaved blocks, %s", blocks, c.Name)
	}
	pairedRatio := func(c, v, base string) stats.Summary {
		var rs []float64
		for i := range paired[c][v] {
			rs = append(rs, paired[c][v][i]/paired[c][base][i])
		}
		return stats.Of(rs)
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
			rs := pairedRatio(c.Name, v.Name, base)
			ratio := rs.Median
			extra := vs.allocs.Median - bs.allocs.Median
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %+.1f |\n", v.Name, vs.ns.Format("%.0f"), rs.FormatIQR("%.3f"),
				vs.bytes.Format("%.0f"), vs.allocs.Format("%.1f"), extra)
			if !v.Baseline {
				w := worst[v.Name]
				w.ratio = max(w.ratio, ratio)
				if !c.Parallel {
					w.extraAllocs = max(w.extraAllocs, extra)
				}
				worst[v.Name] = w
			}
		}
		fmt.Fprintln(&b)
	}

	fmt.Fprintf(&b, "ns/op, B/op and allocs/op are `testing.Benchmark`'s. \"× stub\" comes from a second, finer measurement, because this shared machine's noise (other builds and benchmarks ran beside this one) swamps a few percent: all clients stay dialled and take turns in %d rounds of %d calls (%d for 64 KiB), the order rotated each round; each round gives the client's ns/op divided by the stub's in the same round, and the column is the median of those paired ratios with their interquartile range. Allocations are counted exactly by the runtime; in the parallel cases fractions of an allocation come and go with scheduling, so the allocation goal is judged on the serial cases.\n\n", blocks, smallCalls, largeCalls)
	fmt.Fprintf(&b, "### Against the goal (≤ %.2f× ns/op, ≤ %d extra alloc per call), worst case over the four cases (allocations: over the two serial cases)\n\n", goalRatio, goalAllocs)
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
	smallPE := pairedRatio("small, serial", pe, base).Median
	largePE := pairedRatio("64 KiB, serial", pe, base).Median
	r.goal("| call overhead ≤ %.2f× the plain stub (PEAK_EWMA, the default, worst of 4 cases) | %.3f× (small serial %.3f×, 64 KiB serial %.3f×) | %s |", goalRatio, worst[pe].ratio, smallPE, largePE, yesNo(worst[pe].ratio <= goalRatio))
	r.goal("| ≤ %d extra alloc per call (PEAK_EWMA, worst of 4 cases) | %+.1f | %s |", goalAllocs, worst[pe].extraAllocs, yesNo(worst[pe].extraAllocs <= goalAllocs+0.05))

	extraAllocs := map[string]bool{}
	for _, v := range variants[1:] {
		extraAllocs[v.Name] = worst[v.Name].extraAllocs >= 0.5
	}
	prof, err := r.profileOverhead(s, variants, profileCalls, extraAllocs)
	if err != nil {
		return err
	}

	fmt.Fprintf(&b, "**Reading.** The stub's small serial call costs %.1f µs here; ", summarize(res["small, serial"][base]).ns.Median/1000)
	fmt.Fprintf(&b, "PEAK_EWMA, the default policy, costs %.3f× that serially and %.3f× in parallel with small payloads, and %.3f× with 64 KiB payloads, where the copying of the payload dominates and the picker's share shrinks. ",
		smallPE, pairedRatio("small, parallel", pe, base).Median, largePE)
	fmt.Fprintf(&b, "Clients meeting the ns/op goal in all four cases: %s. Meeting the allocation goal: %s. ", listOrNone(metNs), listOrNone(metAllocs))
	fmt.Fprintf(&b, "The ranges of repeated runs are often as wide as the differences being measured (a few percent on a shared 2-core VM), so a ratio within about ±3%% of 1 is \"no measurable difference\", not a win or a loss. ")
	fmt.Fprintf(&b, "The row \"generated client, annotations' rules\" is held to the goal of a client without rules, which it cannot meet: most of its extra cost is grpc-go's own timeout, retry and wait-for-ready machinery, which the stub does not run; the last subsection compares it with the stub running the same service config. ")
	fmt.Fprintf(&b, "Where the extra time and the extra allocations go is in the profile below.\n\n")
	b.WriteString(prof)
	rules, err := r.overheadRules(s, runs, blocks, pairBlocks, smallCalls, largeCalls, max(profileCalls/4, 100))
	if err != nil {
		return fmt.Errorf("rules: %w", err)
	}
	b.WriteString(rules)
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
	return pairedRatio(res[c][v], res[c][base]).Median
}

// pairedRatio summarises the ratios of ns/op of v to base, round by round.
func pairedRatio(v, base []overhead.Sample) stats.Summary {
	var rs []float64
	for i := range min(len(v), len(base)) {
		rs = append(rs, v[i].NsPerOp/base[i].NsPerOp)
	}
	return stats.Of(rs)
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
func (r *report) profileOverhead(s *overhead.Server, variants []overhead.Variant, n int, extraAllocs map[string]bool) (string, error) {
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
		return profileRun(s, v, n, dir, cpuFile)
	}
	// CPU first, at the normal sampling of allocations.
	if err := run(variants[0], "stub.cpu"); err != nil {
		return "", err
	}
	if err := run(pe, "pe.cpu"); err != nil {
		return "", err
	}
	// Then every allocation, n/4 calls per client.
	allocCalls := max(n/4, 100)
	if err := allocProfiles(s, variants, allocCalls, dir); err != nil {
		return "", err
	}
	pprofCmd := pprofIn(dir)
	cpuTop, err := pprofCmd("-top", "-nodecount=18", "-diff_base", "stub.cpu", "pe.cpu")
	if err != nil {
		return "", err
	}
	cpuCum, err := pprofCmd("-top", "-cum", "-nodecount=25", "-focus", "lbclient/lbclient/runtime/", "-show", "lbclient/lbclient/runtime/", "pe.cpu")
	if err != nil {
		return "", err
	}
	var allocTops []string
	for i, v := range variants[1:] {
		if !extraAllocs[v.Name] {
			continue
		}
		top, err := pprofCmd("-top", "-nodecount=10", "-sample_index=alloc_objects", "-hide", `runtime/pprof|^main\.`, "-diff_base", "v0.alloc", fmt.Sprintf("v%d.alloc", i+1))
		if err != nil {
			return "", err
		}
		allocTops = append(allocTops, fmt.Sprintf("<details><summary>Allocations (objects), %s minus stub</summary>\n\n```\n%s```\n</details>\n\n", v.Name, trimPprof(top)))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "### Profile: where the time and the extra allocations go\n\n")
	fmt.Fprintf(&b, "%d small serial calls through the stub, then %d through PEAK_EWMA, in this process, with a CPU profile of each; the diff is `go tool pprof -top -diff_base stub pe`: positive rows are what lbclient adds, negative ones what it saves, and at this size most rows are sampling noise of ±10–30 ms.\n\n", n, n)
	fmt.Fprintf(&b, "<details><summary>CPU, PEAK_EWMA minus stub (flat)</summary>\n\n```\n%s```\n</details>\n\n", trimPprof(cpuTop))
	fmt.Fprintf(&b, "<details><summary>CPU, PEAK_EWMA alone, lbclient's runtime frames (read the cum column: the time spent in each frame and what it calls; flat is not meaningful with the frames between them hidden)</summary>\n\n```\n%s```\n</details>\n\n", trimPprof(cpuCum))
	fmt.Fprintf(&b, "Allocation profiles (`MemProfileRate = 1`, %d small serial calls per client, subtracted between snapshots) of each client with extra allocations in the serial cases, minus the stub's: divide by %d for per-call counts.\n\n", allocCalls, allocCalls)
	for _, t := range allocTops {
		b.WriteString(t)
	}
	return b.String(), nil
}

// profileRun warms a client of v up, then makes n small serial calls
// through it, with a CPU profile written to dir/cpuFile when cpuFile is set.
func profileRun(s *overhead.Server, v overhead.Variant, n int, dir, cpuFile string) error {
	cl, err := v.Dial(s)
	if err != nil {
		return err
	}
	defer cl.Close()
	req := overhead.NewRequest(16)
	for range 100 {
		if _, err := cl.Call(req); err != nil {
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
		if _, err := cl.Call(req); err != nil {
			return fmt.Errorf("%s: %w", v.Name, err)
		}
	}
	return nil
}

// allocProfiles records every allocation of n small serial calls through
// each variant in turn and writes the i-th variant's to dir/v<i>.alloc. The
// heap profile is cumulative: it is snapshot before, between and after, and
// pprof subtracts.
func allocProfiles(s *overhead.Server, variants []overhead.Variant, n int, dir string) error {
	goruntime.MemProfileRate = 1
	defer func() { goruntime.MemProfileRate = 512 * 1024 }()
	snap := func(name string) error {
		// The profile is published a GC cycle late: two cycles flush it.
		goruntime.GC()
		goruntime.GC()
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		defer f.Close()
		return pprof.Lookup("allocs").WriteTo(f, 0)
	}
	for i, v := range variants {
		if err := snap(fmt.Sprintf("a%d", i)); err != nil {
			return err
		}
		if err := profileRun(s, v, n, dir, ""); err != nil {
			return err
		}
	}
	if err := snap(fmt.Sprintf("a%d", len(variants))); err != nil {
		return err
	}
	pprofCmd := pprofIn(dir)
	for i := range variants {
		if _, err := pprofCmd("-proto", "-output", fmt.Sprintf("v%d.alloc", i), "-base", fmt.Sprintf("a%d", i), fmt.Sprintf("a%d", i+1)); err != nil {
			return err
		}
	}
	return nil
}

// pprofIn returns a runner of go tool pprof in dir.
func pprofIn(dir string) func(args ...string) (string, error) {
	return func(args ...string) (string, error) {
		cmd := exec.Command("go", append([]string{"tool", "pprof"}, args...)...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("go tool pprof %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out), nil
	}
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

// callsFor is the calls of one client's turn in case c: fewer for the
// large payloads, whose calls take longer.
func callsFor(c overhead.Case, small, large int) int {
	if c.Payload > 1<<10 {
		return large
	}
	return small
}

package main

import (
	"fmt"
	"log"
	"path"
	"strings"

	"github.com/lbclient/lbclient/bench/internal/pickers"
	"github.com/lbclient/lbclient/bench/internal/stats"
)

func (r *report) pickers() error {
	count, benchtime := 6, "300ms"
	if r.quick {
		count, benchtime = 1, "200x"
	}
	log.Printf("pickers: go %s", strings.Join(pickers.Args(count, benchtime), " "))
	results, raw, err := pickers.Run(r.root, count, benchtime, nil)
	if err != nil {
		return fmt.Errorf("%w\n%s", err, raw)
	}

	// The reference: grpc-go's least_request, per package and path, and
	// pooled over the run for packages that have none.
	type key struct{ pkg, path string }
	lr := map[key]float64{}
	var pooled = map[string][]float64{}
	// Per pick: a hedged path's ns/op covers its N picks.
	for _, res := range results {
		if res.LeastRequest() {
			n := float64(res.Attempts())
			lr[key{res.Pkg, res.Path()}] = stats.Of(res.NsPerOp).Median / n
			for _, x := range res.NsPerOp {
				pooled[res.Path()] = append(pooled[res.Path()], x/n)
			}
		}
	}
	reference := func(res pickers.Result) (float64, string) {
		p := res.Path()
		if _, ok := lr[key{res.Pkg, p}]; res.Hedged() && !ok && len(pooled[p]) == 0 {
			p = "serial" // no hedged least_request run to compare with
		}
		if v, ok := lr[key{res.Pkg, p}]; ok {
			return v, ""
		}
		if xs := pooled[p]; len(xs) > 0 {
			return stats.Of(xs).Median, " †"
		}
		return 0, ""
	}

	var b strings.Builder
	fmt.Fprintf(&b, "## 5. Picker cost\n\n")
	fmt.Fprintf(&b, "The balancers' own Go benchmarks of a pick, `BenchmarkPick` in each package under `runtime/balancer/`: each times `Pick` followed by the `Done` the channel would call, on the policy's real picker as its package's benchmark builds it (see the benchmark's comment), serially and under `b.RunParallel` (GOMAXPROCS %d). ", r.coresOrProcs())
	fmt.Fprintf(&b, "Run from the repository root as\n\n```sh\ngo %s\n```\n\n", strings.Join(pickers.Args(count, benchtime), " "))
	fmt.Fprintf(&b, "one package at a time; each figure is the median (min–max) of the %d runs of `-count`. ", count)
	fmt.Fprintf(&b, "\"× least_request\" divides the median ns per pick by that of grpc-go's least_request (`least_request_experimental`) on the same path in the same package's run; † marks a package without a least_request benchmark, compared with the median of the run's other least_request runs on that path. ")
	fmt.Fprintf(&b, "A hedged path (`hedged-N-attempts`) is one hedged call's N picks per iteration, each avoiding the endpoints of the earlier ones; its per-pick columns divide by N and compare with least_request's pick on the same path. The call's `callinfo.Attempts` and the context that carries it are the hedging interceptor's, made once per call outside `Pick`; the benchmarks make them once and reset them per call.\n\n")
	fmt.Fprintf(&b, "| policy | path | package | ns/op | ns per pick | × least_request | allocs/op | allocs per pick | B/op |\n|---|---|---|---:|---:|---:|---:|---:|---:|\n")

	type worstOf struct {
		v    float64
		what string
	}
	var worstAllocs, worstSerial, worstParallel worstOf
	worstAllocs.v, worstSerial.v, worstParallel.v = -1, -1, -1
	setWorst := func(w *worstOf, v float64, what string) {
		if v > w.v {
			w.v, w.what = v, what
		}
	}
	for _, res := range results {
		ns, al, by := stats.Of(res.NsPerOp), stats.Of(res.AllocsPerOp), stats.Of(res.BytesPerOp)
		n := float64(res.Attempts())
		perPick := ns.Median / n
		allocsPerPick := al.Median / n
		ratio := "—"
		ref, mark := reference(res)
		rv := 0.0
		if ref > 0 {
			rv = perPick / ref
			ratio = fmt.Sprintf("%.2f%s", rv, mark)
		}
		label := policyLabel(res.Case())
		if res.Lbclient() {
			what := label + ", " + res.Path()
			setWorst(&worstAllocs, allocsPerPick, what)
			switch res.Path() {
			case "serial":
				setWorst(&worstSerial, rv, what)
			case "parallel":
				setWorst(&worstParallel, rv, what)
			}
		} else {
			label = "grpc-go " + label
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %.1f | %s | %s | %.2g | %s |\n", label, res.Path(), path.Base(res.Pkg),
			ns.Format("%.1f"), perPick, ratio, al.Format("%.0f"), allocsPerPick, by.Format("%.0f"))
	}
	fmt.Fprintln(&b)
	fmt.Fprintf(&b, "ns/op, B/op and allocs/op are go test's (allocs/op is rounded down to a whole number per op); for the paths of one pick per op, the per-pick columns repeat them.\n\n")

	okAllocs := worstAllocs.v >= 0 && worstAllocs.v < 0.05
	okSerial := worstSerial.v > 0 && worstSerial.v <= 1
	okParallel := worstParallel.v > 0 && worstParallel.v <= 1
	r.goal("| Pick+Done 0 allocs per pick on every lbclient path (a hedged attempt's pick through observe included) | worst %.2g (%s) | %s |", max(worstAllocs.v, 0), worstAllocs.what, yesNo(okAllocs))
	r.goal("| Pick+Done ns/op ≤ grpc-go least_request's in the same run, serial (every lbclient policy) | worst %.2f× (%s) | %s |", worstSerial.v, worstSerial.what, yesNo(okSerial))
	r.goal("| Pick+Done ns/op ≤ grpc-go least_request's in the same run, parallel (every lbclient policy) | worst %.2f× (%s) | %s |", worstParallel.v, worstParallel.what, yesNo(okParallel))

	fmt.Fprintf(&b, "**Reading.** Allocations: the most per pick on an lbclient path is %.2g (%s); the goal of 0 is %s. ",
		max(worstAllocs.v, 0), worstAllocs.what, metWord(okAllocs))
	fmt.Fprintf(&b, "Time: the slowest lbclient pick is %.2f× least_request's serially (%s) and %.2f× in parallel (%s); the goal of ≤ 1× is %s serially and %s in parallel. ",
		worstSerial.v, worstSerial.what, worstParallel.v, worstParallel.what, metWord(okSerial), metWord(okParallel))
	fmt.Fprintf(&b, "grpc-go's bare round_robin is there for scale: it picks by an atomic counter and has no Done. ")
	fmt.Fprintf(&b, "These are nanoseconds per pick against the tens of microseconds of a call in section 1: a picker's share of a call is a fraction of a percent either way.\n\n")
	fmt.Fprintf(&b, "<details><summary>go test's output</summary>\n\n```\n%s```\n</details>\n\n", benchLines(raw))
	r.add("%s", b.String())
	return nil
}

// benchLines keeps go test's header and result lines, dropping the rest.
func benchLines(raw []byte) string {
	var out []string
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(line, "Benchmark") || strings.HasPrefix(line, "pkg:") || strings.HasPrefix(line, "cpu:") {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n") + "\n"
}

// policyLabel names a benchmark's case after the policy users choose.
func policyLabel(c string) string {
	name, rest, _ := strings.Cut(c, "/")
	label := name
	switch {
	case strings.HasSuffix(name, "peak_ewma"):
		label = "PEAK_EWMA"
	case strings.HasSuffix(name, "consistent_hash"):
		label = "CONSISTENT_HASH"
	case name == "least_request" || name == "least_request_experimental":
		label = "least_request"
	case strings.HasPrefix(name, "observe+"):
		child := strings.TrimPrefix(name, "observe+")
		label = fmt.Sprintf("%s: observe over grpc-go %s", strings.ToUpper(child), child)
	}
	if rest != "" {
		label += ", " + strings.ReplaceAll(rest, "/", ", ")
	}
	return label
}

// coresOrProcs is the GOMAXPROCS go test runs with: its default, the
// number of cores.
func (r *report) coresOrProcs() int { return r.cores }

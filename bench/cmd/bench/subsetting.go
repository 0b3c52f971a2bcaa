package main

import (
	"fmt"
	"strings"

	"github.com/lbclient/lbclient/bench/internal/subsetsim"
)

// subsetting reports the subsetting simulation: 1000 clients over 100
// backends, per approach. It measures no time: every figure is a count or
// a ratio of the subsets drawn.
func (r *report) subsetting() error {
	const clients, backends = 1000, 100
	var results []subsetsim.Result
	for _, a := range subsetsim.Approaches {
		res, err := subsetsim.Run(a, clients, backends, 1)
		if err != nil {
			return fmt.Errorf("%s %d: %w", a.Name, a.Size, err)
		}
		results = append(results, res)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "## 6. Subsetting\n\n")
	fmt.Fprintf(&b, "%d clients over %d backends, simulated without a network by `bench/internal/subsetsim`: random subsetting is grpc-go's own `random_subsetting_experimental` balancer (each client a balancer of its own, with grpc-go's random seed), handed the endpoints and read back; the deterministic aperture is `runtime/balancer/subset`'s `Select`, which `lbclient_deterministic_subset` calls. ", clients, backends)
	fmt.Fprintf(&b, "Each client's calls split over its subset by the weights the subsetting gives (equal for random subsets, each backend's covered part for the aperture), the split lbclient's pickers make between backends of equal latency (lbcore's `TestWeightedShares`: within 2%%). ")
	fmt.Fprintf(&b, "Uniform clients make one call each per unit of time; skewed ones log-normally many (σ = 1, the busiest of a thousand about 20× the median). \"Moves\" count the connections existing clients open or close when one client, or one backend, joins.\n\n")
	fmt.Fprintf(&b, "| approach | subset | conns per client | conns per backend max/mean | load max/mean | load p99/mean | skewed load max/mean | skewed p99/mean | backends in no subset | moves: a client joins | moves: a backend joins |\n")
	fmt.Fprintf(&b, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, res := range results {
		size := "all"
		if res.Size > 0 {
			size = fmt.Sprint(res.Size)
		}
		fmt.Fprintf(&b, "| %s | %s | %.1f | %.3f | %.3f | %.3f | %.3f | %.3f | %d | %d | %d |\n", res.Name, size, res.ConnsPerClient, res.ConnsMaxMean,
			res.UniformMaxMean, res.UniformP99Mean, res.SkewedMaxMean, res.SkewedP99Mean, res.Uncovered, res.ClientJoinMoves, res.BackendJoinMoves)
	}
	fmt.Fprintf(&b, "\nThe aperture connects to one backend more than its size on average (its two ends are partial) and balances uniform clients exactly; it pays for that on membership changes, since every aperture shifts a little when the client count or the backend count changes, where a random subset changes only if the new backend hashes into it. Random subsets spread connections and load binomially.\n\n")
	r.add("%s", b.String())

	find := func(name string, size int) subsetsim.Result {
		for _, res := range results {
			if res.Size == size && strings.HasPrefix(res.Name, name) {
				return res
			}
		}
		return subsetsim.Result{}
	}
	rnd, det := find("random", 20), find("deterministic", 20)
	covered := true
	for _, res := range results {
		covered = covered && res.Uncovered == 0
	}
	r.goal("| random subsetting, 20 of %d, uniform clients: load max/mean ≤ 1.3 | %.3f | %s |", backends, rnd.UniformMaxMean, yesNo(rnd.UniformMaxMean <= 1.3))
	r.goal("| deterministic aperture, 20 of %d: connections and load max/mean ≤ 1.05 | %.3f, %.3f | %s |", backends, det.ConnsMaxMean, det.UniformMaxMean, yesNo(det.ConnsMaxMean <= 1.05 && det.UniformMaxMean <= 1.05))
	r.goal("| every backend in some client's subset, every approach | %v | %s |", covered, yesNo(covered))
	return nil
}

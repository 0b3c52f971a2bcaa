package runtime

import (
	"fmt"

	// random_subsetting_experimental, which WithSubsetSize selects.
	"google.golang.org/grpc/balancer/randomsubsetting"

	"github.com/lbclient/lbclient/runtime/balancer/subset"
)

// MaxSubsetSize bounds WithSubsetSize, ServiceRules.SubsetSize and the
// subset_size annotation: past ten thousand backends per client, a subset
// no longer saves the connections it is for.
const MaxSubsetSize = 10000

// WithSubsetSize connects the client to n of the target's backends rather
// than to all of them, overriding the subset_size annotation: grpc-go's
// random subsetting (gRFC A68), in which each client hashes the endpoints
// with a seed of its own and keeps the first n, so that the fleet's
// clients spread over the backends at random. The policy then picks among
// those n. n must be within [1, MaxSubsetSize]; with n or fewer backends,
// the client connects to all.
//
// Random subsets load backends unevenly: with 1000 clients of 20 over 100
// backends, the busiest backend has about 1.14× the mean load, about 1.2×
// with subsets of 10 (BENCHMARKS.md, subsetting). WithDeterministicSubset
// balances exactly when each client knows its index.
func WithSubsetSize(n int) Option {
	return optionFunc(func(o *options) error {
		if n < 1 || n > MaxSubsetSize {
			return fmt.Errorf("lbclient: WithSubsetSize: %d is outside [1, %d]", n, MaxSubsetSize)
		}
		o.subsetSize = &n
		return nil
	})
}

// WithDeterministicSubset connects the client to about n of the target's
// backends, chosen by deterministic aperture (package
// runtime/balancer/subset) from the client's index among count clients:
// every backend then gets the same share of the fleet's calls and the same
// number of connections, give or take one. Each client of the fleet must
// be given a distinct index in [0, count) and the same count — a
// StatefulSet's ordinal and its replicas, for example; clients that share
// an index share a subset. It replaces WithSubsetSize and the subset_size
// annotation.
func WithDeterministicSubset(n, index, count int) Option {
	return optionFunc(func(o *options) error {
		switch {
		case n < 1 || n > MaxSubsetSize:
			return fmt.Errorf("lbclient: WithDeterministicSubset: size %d is outside [1, %d]", n, MaxSubsetSize)
		case count < 1:
			return fmt.Errorf("lbclient: WithDeterministicSubset: count %d: want at least 1 client", count)
		case index < 0 || index >= count:
			return fmt.Errorf("lbclient: WithDeterministicSubset: index %d is outside [0, count %d)", index, count)
		}
		o.deterministic = &deterministicSubset{size: n, index: index, count: count}
		return nil
	})
}

// deterministicSubset is what WithDeterministicSubset set.
type deterministicSubset struct{ size, index, count int }

// subsetConfig wraps policy, an entry of loadBalancingConfig, in the
// subsetting the rules and options ask for: deterministic aperture when
// det is set, random subsetting of size when it is positive, none
// otherwise.
func subsetConfig(policy map[string]any, size int, det *deterministicSubset) map[string]any {
	switch {
	case det != nil:
		return map[string]any{subset.Name: map[string]any{
			"subsetSize":  det.size,
			"clientIndex": det.index,
			"clientCount": det.count,
			"childPolicy": []map[string]any{policy},
		}}
	case size > 0:
		return map[string]any{randomsubsetting.Name: map[string]any{
			"subsetSize":  size,
			"childPolicy": []map[string]any{policy},
		}}
	}
	return policy
}

package consistenthash

import (
	"fmt"
	"math"
	rand "math/rand/v2"
	"testing"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/experimental/balancer/weight"

	"github.com/lbclient/lbclient/runtime/balancer/internal/lbcore"
	"github.com/lbclient/lbclient/runtime/balancer/internal/lbtest"
)

// ownership counts the owners of keys keys on r.
func ownership(r *ring, addrs []string, keys int) map[string]int {
	count := map[string]int{}
	for i := range keys {
		count[owner(r, addrs, fmt.Sprintf("key-%d", i))]++
	}
	return count
}

// TestWeightedRingOwnership: an endpoint owns keys in proportion to its
// weight. How closely depends on its virtual nodes, as without weights:
// the share of an endpoint with m nodes deviates from its expected value
// by about 1/sqrt(m) of it (8% for a weight-1 endpoint at the default 160
// nodes per unit of weight). Over ten fleets of each set of weights, the
// mean deviation is within 5% at 1024 nodes per unit of weight and within
// 10% at the default, and no share is off by more than 15% and a third.
func TestWeightedRingOwnership(t *testing.T) {
	for _, weights := range [][]uint32{{1, 3}, {3, 1}, {1, 1, 3, 3}, {1, 2, 3, 4}} {
		var total uint32
		for _, w := range weights {
			total += w
		}
		t.Run(fmt.Sprint(weights), func(t *testing.T) {
			const keys = 100000
			for _, vnodes := range []int{1024, DefaultVirtualNodes} {
				var sumDev, maxDev float64
				const fleets = 10
				for f := range fleets {
					addrs := make([]string, len(weights))
					for i := range addrs {
						addrs[i] = fmt.Sprintf("10.%d.0.%d:8080", f, i+1)
					}
					count := ownership(newRing(addrs, weights, vnodes), addrs, keys)
					for i, a := range addrs {
						want := float64(weights[i]) / float64(total)
						dev := math.Abs(float64(count[a])/keys/want - 1)
						sumDev += dev
						maxDev = max(maxDev, dev)
					}
				}
				mean := sumDev / float64(fleets*len(weights))
				t.Logf("virtualNodes %d: deviation from the weighted share: mean %.1f%%, max %.1f%%", vnodes, 100*mean, 100*maxDev)
				wantMean, wantMax := 0.10, 1.0/3
				if vnodes == 1024 {
					wantMean, wantMax = 0.05, 0.15
				}
				if mean > wantMean || maxDev > wantMax {
					t.Errorf("virtualNodes %d: deviation mean %.1f%%, max %.1f%%; want <= %.0f%% and <= %.0f%%", vnodes, 100*mean, 100*maxDev, 100*wantMean, 100*wantMax)
				}
			}
		})
	}
}

// TestWeightChangeMovesOnlyItsKeys: raising one endpoint's weight moves
// keys only to it, lowering it only from it; the others' keys stay.
func TestWeightChangeMovesOnlyItsKeys(t *testing.T) {
	addrs := endpointAddrs(4)
	base := newRing(addrs, []uint32{2, 2, 2, 2}, DefaultVirtualNodes)
	up := newRing(addrs, []uint32{2, 2, 2, 6}, DefaultVirtualNodes)
	down := newRing(addrs, []uint32{2, 2, 2, 1}, DefaultVirtualNodes)
	const keys = 100000
	toIt, fromIt := 0, 0
	for i := range keys {
		k := fmt.Sprintf("key-%d", i)
		b, u, d := owner(base, addrs, k), owner(up, addrs, k), owner(down, addrs, k)
		if u != b {
			if u != addrs[3] {
				t.Fatalf("raising %s's weight moved key %q from %s to %s", addrs[3], k, b, u)
			}
			toIt++
		}
		if d != b {
			if b != addrs[3] {
				t.Fatalf("lowering %s's weight moved key %q from %s to %s", addrs[3], k, b, d)
			}
			fromIt++
		}
	}
	// 2→6 of 8→12: its share goes from 1/4 to 1/2; 2→1: to 1/7.
	t.Logf("weight 2→6 moved %.1f%% of keys to it (ideal 25%%); 2→1 moved %.1f%% from it (ideal 10.7%%)", 100*float64(toIt)/keys, 100*float64(fromIt)/keys)
	if got := float64(toIt) / keys; math.Abs(got-0.25) > 0.05 {
		t.Errorf("raising the weight moved %.3f of keys, want 0.25 ± 0.05", got)
	}
	if got := float64(fromIt) / keys; math.Abs(got-(0.25-1.0/7)) > 0.05 {
		t.Errorf("lowering the weight moved %.3f of keys, want %.3f ± 0.05", got, 0.25-1.0/7)
	}
}

func TestRingNodesScaleHugeWeights(t *testing.T) {
	if got := ringNodes(3, nil, 160); fmt.Sprint(got) != "[160 160 160]" {
		t.Errorf("unweighted: %v", got)
	}
	if got := ringNodes(2, []uint32{1, 3}, 160); fmt.Sprint(got) != "[160 480]" {
		t.Errorf("weights 1, 3: %v", got)
	}
	// Weights of a million: scaled to the bound, in proportion, at least
	// one node each.
	got := ringNodes(3, []uint32{1, 1_000_000, 3_000_000}, 160)
	sum := got[0] + got[1] + got[2]
	if sum > maxRingNodes || got[0] != 1 || math.Abs(float64(got[2])/float64(got[1])-3) > 0.01 {
		t.Errorf("huge weights: %v (sum %d), want <= %d nodes, 1:3 between the heavy ones, at least 1 each", got, sum, maxRingNodes)
	}
	// Weights as grpc-go's xDS layer gives them, fractions of 2^31:
	// divided by their common divisor, not scaled.
	if got := ringNodes(4, []uint32{1 << 28, 1 << 28, 3 << 28, 3 << 28}, 100); fmt.Sprint(got) != "[100 100 300 300]" {
		t.Errorf("weights 2^28 × 1:1:3:3: %v, want [100 100 300 300]", got)
	}
	if got := ringNodes(3, []uint32{715827883, 715827883, 715827883}, 160); fmt.Sprint(got) != "[160 160 160]" {
		t.Errorf("three equal thirds of 2^31: %v, want [160 160 160]", got)
	}
	// A common divisor that is not enough: scaled as before.
	got = ringNodes(2, []uint32{2_000_000, 6_000_002}, 160)
	if got[0]+got[1] > maxRingNodes || math.Abs(float64(got[1])/float64(got[0])-3) > 0.01 {
		t.Errorf("weights 2e6, 6e6+2: %v, want <= %d nodes, 1:3", got, maxRingNodes)
	}
	// An unweighted ring larger than the bound is never scaled.
	if got := ringNodes(100, nil, MaxVirtualNodes); got[0] != MaxVirtualNodes {
		t.Errorf("100 × %d unweighted nodes scaled to %d each", MaxVirtualNodes, got[0])
	}
}

// TestWeightedLoadBound: the load bound scales with weight: with 64 calls
// in flight over a weight-1 and a weight-3 endpoint, and every key hot on
// the light one's arc, the light one holds at most ceil(1.25 × 65/4) and
// the heavy one takes the rest.
func TestWeightedLoadBound(t *testing.T) {
	addrs := endpointAddrs(2)
	tr := lbcore.NewTracker(func() int64 { return 0 }, rand.New(rand.NewPCG(1, 2)).Uint64)
	tr.CountTotal = true
	cs := lbtest.ChildStates(addrs, nil, nil)
	cs[1].Endpoint = weight.Set(cs[1].Endpoint, weight.EndpointInfo{Weight: 3})
	all, ready := tr.Sync(cs)
	p := (&pickerBuilder{}).Build(defaultConfig(), tr, all, ready).(*picker)
	// A key the light endpoint owns.
	key := ""
	for i := 0; key == ""; i++ {
		if k := fmt.Sprintf("key-%d", i); owner(p.ring, addrs, k) == addrs[0] {
			key = k
		}
	}
	var dones []func(balancer.DoneInfo)
	count := map[string]int{}
	maxLight := int64(0)
	for range 64 {
		res, err := p.Pick(keyInfo(key))
		if err != nil {
			t.Fatal(err)
		}
		count[lbtest.AddrOf(res)]++
		dones = append(dones, res.Done)
		maxLight = max(maxLight, all[0].EP.InFlight())
	}
	for _, d := range dones {
		d(balancer.DoneInfo{BytesSent: true, BytesReceived: true})
	}
	if want := int64(math.Ceil(1.25 * 64 / 4)); maxLight > want {
		t.Errorf("the weight-1 endpoint held %d calls in flight, want <= %d", maxLight, want)
	}
	if count[addrs[0]] < 16 || count[addrs[1]] < 40 {
		t.Errorf("hot key's calls: %v, want about 20 on the light endpoint and the rest on the heavy one", count)
	}
}

package lbcore

import (
	"fmt"
	"math"
	rand "math/rand/v2"
	"testing"
	"time"

	"google.golang.org/grpc/balancer/endpointsharding"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/experimental/balancer/weight"
)

// weightedChild is child with a weight attribute, as a resolver sets it.
func weightedChild(addr string, w uint32) endpointsharding.ChildState {
	cs := child(addr, connectivity.Ready, &fakePicker{})
	cs.Endpoint = weight.Set(cs.Endpoint, weight.EndpointInfo{Weight: w})
	return cs
}

func newWeightedSim(t *testing.T, seed uint64, weights map[string]uint32) *sim {
	s := newSim(t, seed, 0, 0)
	_, s.ready = s.tr.Sync(weightedChildren(weights))
	return s
}

func weightedChildren(weights map[string]uint32) []endpointsharding.ChildState {
	var cs []endpointsharding.ChildState
	for a, w := range weights {
		cs = append(cs, weightedChild(a, w))
	}
	return cs
}

func TestSyncReadsWeights(t *testing.T) {
	s := newSim(t, 1, 0, 0)
	// No attribute, and 0, mean 1; equal weights take the unweighted path.
	cs := []endpointsharding.ChildState{child("a", connectivity.Ready, &fakePicker{}), weightedChild("b", 0)}
	_, ready := s.tr.Sync(cs)
	for _, c := range ready {
		if c.Weight != 1 || c.cum != 0 {
			t.Errorf("%s: weight %d, cum %d; want 1 and the unweighted path", c.EP.Addr, c.Weight, c.cum)
		}
	}
	_, ready = s.tr.Sync([]endpointsharding.ChildState{weightedChild("a", 5), weightedChild("b", 5)})
	if weighted(ready) {
		t.Error("equal weights of 5 took the weighted path")
	}
	// Differing weights: cumulative sums in address order.
	_, ready = s.tr.Sync([]endpointsharding.ChildState{weightedChild("c", 2), weightedChild("a", 1), weightedChild("b", 3)})
	var got []uint64
	for _, c := range ready {
		got = append(got, c.cum)
	}
	if fmt.Sprint(got) != "[1 4 6]" {
		t.Errorf("cum = %v, want [1 4 6]", got)
	}
	var stats []uint32
	for _, e := range s.tr.Endpoints() {
		stats = append(stats, e.Weight)
	}
	if fmt.Sprint(stats) != "[1 3 2]" {
		t.Errorf("weights in the stats = %v, want [1 3 2]", stats)
	}
}

// TestWeightedPair: the first candidate is drawn in proportion to weight,
// the second among the others in proportion to theirs, never the same.
func TestWeightedPair(t *testing.T) {
	s := newWeightedSim(t, 1, map[string]uint32{"a": 1, "b": 2, "c": 3, "d": 4})
	rnd := rand.New(rand.NewPCG(1, 2))
	const n = 200000
	first := make([]int, 4)
	second := make([][]int, 4)
	for i := range second {
		second[i] = make([]int, 4)
	}
	for range n {
		i, j := weightedPair(s.ready, rnd.Uint64(), rnd.Uint64())
		if i == j {
			t.Fatalf("drew %d twice", i)
		}
		first[i]++
		second[i][j]++
	}
	for i, c := range first {
		want := float64(i+1) / 10
		if got := float64(c) / n; math.Abs(got-want) > 0.01 {
			t.Errorf("first draw %s: %.3f, want %.3f", s.ready[i].EP.Addr, got, want)
		}
	}
	// Given a first draw of d (weight 4), the second is a, b, c as 1:2:3.
	for j := range 3 {
		want := float64(j+1) / 6
		if got := float64(second[3][j]) / float64(first[3]); math.Abs(got-want) > 0.015 {
			t.Errorf("second draw after d: %s %.3f, want %.3f", s.ready[j].EP.Addr, got, want)
		}
	}
}

// TestWeightedShares: endpoints of equal latency share calls in
// proportion to their weights, within ±10%, for one serial caller and for
// sixteen, including ratios that are not integers and sets where a
// uniform pair would cap a heavy endpoint at 2/N of the calls.
func TestWeightedShares(t *testing.T) {
	for _, weights := range []map[string]uint32{
		{"a": 1, "b": 3},
		{"a": 2, "b": 3},
		{"a": 1, "b": 1, "c": 3, "d": 3},
		{"a": 1, "b": 1, "c": 1, "d": 9},
		{"a": 1, "b": 2, "c": 3, "d": 4},
	} {
		for _, workers := range callers {
			t.Run(fmt.Sprintf("weights=%v/callers=%d", weights, workers), func(t *testing.T) {
				s := newWeightedSim(t, uint64(workers)+3, weights)
				lat := noisy(uint64(workers) + 11)
				ty := timedLoop(t, s, 5*time.Second, workers, func(string, int64) (time.Duration, error) { return lat(), nil }, 0, 0)
				t.Logf("calls: %v", ty.to)
				var total uint32
				for _, w := range weights {
					total += w
				}
				for a, w := range weights {
					want := float64(w) / float64(total)
					if got := ty.share(a); math.Abs(got/want-1) > 0.10 {
						t.Errorf("%s (weight %d): %.3f of calls, want %.3f ±10%% (all: %v)", a, w, got, want, ty.to)
					}
				}
			})
		}
	}
}

// TestWeightedSlowEndpointAvoided: weight is capacity, not speed: a heavy
// endpoint that is ten times slower than its peers is avoided as an
// unweighted one would be.
func TestWeightedSlowEndpointAvoided(t *testing.T) {
	for _, workers := range callers {
		t.Run(fmt.Sprintf("callers=%d", workers), func(t *testing.T) {
			s := newWeightedSim(t, uint64(workers)+5, map[string]uint32{"a": 1, "b": 1, "c": 1, "slow": 3})
			lat := noisy(uint64(workers) + 13)
			ty := timedLoop(t, s, 5*time.Second, workers, func(addr string, _ int64) (time.Duration, error) {
				if addr == "slow" {
					return 10 * lat(), nil
				}
				return lat(), nil
			}, 0, 0)
			if got := ty.share("slow"); got > 0.05 {
				t.Errorf("the 10× slower endpoint of weight 3 took %.3f of calls, want <= 0.05 (all: %v)", got, ty.to)
			}
		})
	}
}

// TestEndpointJoins: an endpoint added to a loaded set is warmed gently:
// no more than twice its share in any 100 ms after it joins (no thundering
// herd onto an idle endpoint), and at least 0.6 of its share from 1 s on
// (no starvation), with and without weights.
func TestEndpointJoins(t *testing.T) {
	for _, w := range []uint32{1, 3} {
		for _, workers := range callers {
			t.Run(fmt.Sprintf("weight=%d/callers=%d", w, workers), func(t *testing.T) {
				weights := map[string]uint32{"a": 1, "b": 1, "c": 1}
				s := newWeightedSim(t, uint64(workers)+7, weights)
				lat := noisy(uint64(workers) + 17)
				const joinAt = int64(time.Second)
				joined := false
				s.hook = func(now int64) {
					if !joined && now >= joinAt {
						joined = true
						weights["new"] = w
						_, s.ready = s.tr.Sync(weightedChildren(weights))
					}
				}
				// Calls started in each 100 ms from the join on.
				const slot = int64(100 * time.Millisecond)
				var slots [40]map[string]int
				ty := timedLoop(t, s, 5*time.Second, workers, func(addr string, now int64) (time.Duration, error) {
					if k := (now - joinAt) / slot; now >= joinAt && k < int64(len(slots)) {
						if slots[k] == nil {
							slots[k] = map[string]int{}
						}
						slots[k][addr]++
					}
					return lat(), nil
				}, time.Duration(joinAt+int64(time.Second)), 5*time.Second)
				fair := float64(w) / float64(3+w)
				for k, m := range slots {
					n := 0
					for _, c := range m {
						n += c
					}
					if n < 20 {
						continue // too few calls in the slot to judge a share
					}
					if got := float64(m["new"]) / float64(n); got > 2*fair {
						t.Errorf("%d-%d ms after joining: %.2f of calls (%d of %d), want <= %.2f", k*100, (k+1)*100, got, m["new"], n, 2*fair)
					}
				}
				if got := ty.windowShare("new"); got < 0.6*fair {
					t.Errorf("from 1 s after joining: %.3f of calls, want >= %.3f (window: %v)", got, 0.6*fair, ty.window)
				}
			})
		}
	}
}

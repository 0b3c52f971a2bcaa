package runtime_test

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/lbclient/lbclient/runtime"
)

// TestDeterministicSubset: three clients of an aperture of 2 over 6
// backends each call exactly their own two, and between them every
// backend.
func TestDeterministicSubset(t *testing.T) {
	bs := startBackends(t, 6)
	addrs := map[string]string{} // backend name by address
	for _, b := range bs {
		addrs[b.Addr()] = b.Name()
	}
	// The aperture orders backends by address.
	sorted := slices.Sorted(maps.Keys(addrs))
	covered := map[string]bool{}
	for i := range 3 {
		for _, p := range []runtime.Policy{runtime.PeakEWMA, runtime.RoundRobin} {
			conn, c := dial(t, bs, nil, runtime.WithPolicy(p), runtime.WithDeterministicSubset(2, i, 3))
			waitAllReady(t, conn, 2)
			got := slices.Sorted(maps.Keys(spread(t, ctxFor(t), c, 60)))
			want := []string{addrs[sorted[2*i]], addrs[sorted[2*i+1]]}
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("client %d of 3, %v: called %v, want its aperture %v", i, p, got, want)
			}
			for _, n := range got {
				covered[n] = true
			}
		}
	}
	if len(covered) != 6 {
		t.Errorf("the apertures covered %d of 6 backends", len(covered))
	}
}

// TestSubsetSize: with WithSubsetSize(2), or the rules' SubsetSize, a
// client calls two of five backends, under lbclient's policies and under
// grpc-go's (whose lbclient_observe parent random subsetting marshals and
// parses again).
func TestSubsetSize(t *testing.T) {
	bs := startBackends(t, 5)
	for _, p := range []runtime.Policy{runtime.PeakEWMA, runtime.ConsistentHash, runtime.RoundRobin, runtime.LeastRequest} {
		for _, viaRules := range []bool{false, true} {
			t.Run(fmt.Sprintf("%v/rules=%v", p, viaRules), func(t *testing.T) {
				rules := &runtime.ServiceRules{Policy: p}
				var opts []runtime.Option
				if viaRules {
					rules.SubsetSize = 2
				} else {
					opts = append(opts, runtime.WithSubsetSize(2))
				}
				conn, c := dial(t, bs, rules, opts...)
				waitAllReady(t, conn, 2)
				if got := spread(t, ctxFor(t), c, 100); len(got) != 2 {
					t.Errorf("calls went to %d backends (%v), want 2", len(got), got)
				}
			})
		}
	}
}

func TestSubsetOptionErrors(t *testing.T) {
	for _, tc := range []struct {
		opt  runtime.Option
		want string
	}{
		{runtime.WithSubsetSize(0), "WithSubsetSize: 0 is outside [1, 10000]"},
		{runtime.WithDeterministicSubset(0, 0, 1), "WithDeterministicSubset: size 0"},
		{runtime.WithDeterministicSubset(2, 3, 3), "WithDeterministicSubset: index 3 is outside [0, count 3)"},
		{runtime.WithDeterministicSubset(2, 0, 0), "WithDeterministicSubset: count 0"},
	} {
		_, err := runtime.Dial("static:///127.0.0.1:1", nil, runtime.WithInsecure(), tc.opt)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Dial error %v, want %q", err, tc.want)
		}
	}
	_, err := runtime.Dial("static:///127.0.0.1:1", &runtime.ServiceRules{SubsetSize: -1}, runtime.WithInsecure())
	if err == nil || !strings.Contains(err.Error(), "SubsetSize: -1") {
		t.Errorf("Dial with SubsetSize -1: %v", err)
	}
}

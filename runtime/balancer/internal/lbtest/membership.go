package lbtest

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/experimental/balancer/weight"
	"google.golang.org/grpc/resolver"
)

// Weighted returns one endpoint per backend, the i-th of weight
// weights[i].
func Weighted(bs []*Backend, weights ...uint32) []resolver.Endpoint {
	eps := Endpoints(Addrs(bs))
	for i := range eps {
		eps[i] = weight.Set(eps[i], weight.EndpointInfo{Weight: weights[i]})
	}
	return eps
}

// Membership runs a fleet through growth and shrinkage under a closed
// loop of 8 callers, on a channel with serviceConfig (ctx derives the
// calls' contexts, as for StartLoad): three backends, two added (each must
// get its first call within a second, and at least 0.6 of its share of
// the calls from a second after that), then one of the first removed (no
// call reaches it from 100 ms after the resolver's update returned, which
// is when the channel has the new picker). No call may fail throughout.
func Membership(t *testing.T, serviceConfig string, ctx func(worker int, n int64) context.Context) {
	bs := StartBackends(t, &Backend{Delay: 2 * time.Millisecond}, &Backend{Delay: 2 * time.Millisecond},
		&Backend{Delay: 2 * time.Millisecond}, &Backend{Delay: 2 * time.Millisecond}, &Backend{Delay: 2 * time.Millisecond})
	cc, r := DialEndpoints(t, serviceConfig, Endpoints(Addrs(bs[:3])))
	WaitReady(t, cc)
	load := StartLoad(cc, 8, ctx)
	defer load.Stop()
	time.Sleep(500 * time.Millisecond)

	r.UpdateState(resolver.State{Endpoints: Endpoints(Addrs(bs))})
	for _, b := range bs[3:] {
		took := WaitCalls(t, b, 0, time.Second)
		t.Logf("%s added: first call after %v", b.Addr, took.Round(time.Millisecond))
	}
	time.Sleep(time.Second)
	before := counts(bs)
	time.Sleep(time.Second)
	after := counts(bs)
	var total int64
	for i := range bs {
		total += after[i] - before[i]
	}
	for i, b := range bs {
		share := float64(after[i]-before[i]) / float64(total) * float64(len(bs))
		t.Logf("%s: %.2f of its share of the second after the added backends' first calls", b.Addr, share)
		if i >= 3 && share < 0.6 {
			t.Errorf("added backend %s took %.2f of its share, want >= 0.6", b.Addr, share)
		}
	}

	gone := bs[0]
	r.UpdateState(resolver.State{Endpoints: Endpoints(Addrs(bs[1:]))})
	time.Sleep(100 * time.Millisecond)
	seen := gone.Calls.Load()
	time.Sleep(time.Second)
	calls, failed, errs := load.Stop()
	if late := gone.Calls.Load() - seen; late != 0 {
		t.Errorf("removed backend %s got %d calls after its removal was seen", gone.Addr, late)
	}
	t.Logf("%d calls, %d failed", calls, failed)
	if failed != 0 {
		t.Errorf("%d of %d calls failed while the fleet changed; first: %v", failed, calls, errs)
	}
}

func counts(bs []*Backend) []int64 {
	out := make([]int64, len(bs))
	for i, b := range bs {
		out[i] = b.Calls.Load()
	}
	return out
}

// WeightedSplit makes calls from workers callers over two equal backends
// of weights 1 and 3, on a channel with serviceConfig, and checks that the
// heavy one takes 3/4 of them, ±10% of that share.
func WeightedSplit(t *testing.T, serviceConfig string, workers int, ctx func(worker int, n int64) context.Context) {
	bs := StartBackends(t, &Backend{Delay: 2 * time.Millisecond}, &Backend{Delay: 2 * time.Millisecond})
	cc, _ := DialEndpoints(t, serviceConfig, Weighted(bs, 1, 3))
	WaitReady(t, cc)
	load := StartLoad(cc, workers, ctx)
	time.Sleep(2 * time.Second)
	calls, failed, errs := load.Stop()
	if failed != 0 {
		t.Fatalf("%d of %d calls failed; first: %v", failed, calls, errs)
	}
	light, heavy := bs[0].Calls.Load(), bs[1].Calls.Load()
	share := float64(heavy) / float64(light+heavy)
	t.Logf("weights 1:3, %d callers: %d and %d calls, %.3f to the heavy one", workers, light, heavy, share)
	if share < 0.75*0.9 || share > 0.75*1.1 {
		t.Errorf("the weight-3 backend took %.3f of the calls, want 0.75 ±10%%", share)
	}
}

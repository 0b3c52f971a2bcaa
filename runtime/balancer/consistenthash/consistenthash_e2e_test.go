package consistenthash_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	_ "google.golang.org/grpc/balancer/leastrequest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/peer"

	"github.com/lbclient/lbclient/runtime/balancer/consistenthash"
	"github.com/lbclient/lbclient/runtime/balancer/internal/lbcore"
	"github.com/lbclient/lbclient/runtime/balancer/internal/lbtest"
	"github.com/lbclient/lbclient/runtime/internal/callinfo"
	"github.com/lbclient/lbclient/runtime/internal/lbstats"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestE2EKeyAffinityAndStats(t *testing.T) {
	id, sink, unregister := lbstats.Register()
	defer unregister()
	bs := lbtest.StartBackends(t, &lbtest.Backend{}, &lbtest.Backend{}, &lbtest.Backend{}, &lbtest.Backend{})
	sc := fmt.Sprintf(`{"loadBalancingConfig":[{%q:{"statsId":%q}}]}`, consistenthash.Name, id)
	cc := lbtest.Dial(t, sc, lbtest.Addrs(bs))
	lbtest.WaitAllReady(t, sink, len(bs))

	const keys, rounds = 100, 5
	home := map[string]string{}
	perBackend := map[string]int{}
	for r := range rounds {
		for i := range keys {
			k := fmt.Sprintf("customer-%d", i)
			ctx, cancel := context.WithTimeout(callinfo.WithHashKey(context.Background(), k), 10*time.Second)
			var p peer.Peer
			err := lbtest.Call(ctx, cc, grpc.Peer(&p))
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			got := p.Addr.String()
			perBackend[got]++
			if r == 0 {
				home[k] = got
			} else if got != home[k] {
				t.Fatalf("round %d: key %q went to %s, earlier to %s", r, k, got, home[k])
			}
		}
	}
	if len(perBackend) != len(bs) {
		t.Errorf("%d keys reached only %d of %d backends: %v", keys, len(perBackend), len(bs), perBackend)
	}

	eps := sink.Endpoints()
	if len(eps) != len(bs) {
		t.Fatalf("sink reports %d endpoints, want %d", len(eps), len(bs))
	}
	var picks uint64
	for _, e := range eps {
		picks += e.Picks
		if e.State != connectivity.Ready || e.InFlight != 0 || e.Failures != 0 || e.Latency <= 0 {
			t.Errorf("endpoint %+v: want READY, idle, no failures, a latency estimate", e)
		}
		if int(e.Picks) != perBackend[e.Addr] {
			t.Errorf("endpoint %s: %d picks, grpc.Peer saw %d calls", e.Addr, e.Picks, perBackend[e.Addr])
		}
	}
	if picks != keys*rounds {
		t.Errorf("picks total %d, want %d", picks, keys*rounds)
	}
	cc.Close()
	if eps := sink.Endpoints(); eps != nil {
		t.Errorf("after Close the sink still reports %+v", eps)
	}
}

// TestE2EAffinityFromDial calls every key right after dial, without
// waiting for the backends to be READY: a key whose endpoint is still
// connecting must wait for it (gRFC A42), not go to whichever endpoint
// connected first, or its first calls and its later ones land on two
// backends.
// TestE2EAffinityOnceReady: once every endpoint is READY, each key keeps
// going to one backend. (Before that a key whose endpoint is still
// connecting goes to the next READY one: only READY endpoints hold keys.)
func TestE2EAffinityOnceReady(t *testing.T) {
	bs := lbtest.StartBackends(t, &lbtest.Backend{}, &lbtest.Backend{}, &lbtest.Backend{}, &lbtest.Backend{})
	id, sink, unregister := lbstats.Register()
	t.Cleanup(unregister)
	sc := fmt.Sprintf(`{"loadBalancingConfig":[{%q:{"statsId":%q}}]}`, consistenthash.Name, id)
	cc := lbtest.Dial(t, sc, lbtest.Addrs(bs))
	lbtest.WaitAllReady(t, sink, len(bs))
	const keys, rounds = 40, 5
	home := map[string]string{}
	for r := range rounds {
		for i := range keys {
			k := fmt.Sprintf("account-%d", i)
			ctx, cancel := context.WithTimeout(callinfo.WithHashKey(context.Background(), k), 10*time.Second)
			var p peer.Peer
			err := lbtest.Call(ctx, cc, grpc.Peer(&p), grpc.WaitForReady(true))
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			got := p.Addr.String()
			if prev, ok := home[k]; ok && got != prev {
				t.Fatalf("round %d: key %q went to %s, earlier to %s", r, k, got, prev)
			}
			home[k] = got
		}
	}
	used := map[string]bool{}
	for _, b := range home {
		used[b] = true
	}
	if len(used) < 3 {
		t.Errorf("%d keys used only %d of %d backends", keys, len(used), len(bs))
	}
}

func TestE2EKeylessCallsSpread(t *testing.T) {
	id, sink, unregister := lbstats.Register()
	defer unregister()
	bs := lbtest.StartBackends(t, &lbtest.Backend{}, &lbtest.Backend{}, &lbtest.Backend{})
	sc := fmt.Sprintf(`{"loadBalancingConfig":[{%q:{"statsId":%q}}]}`, consistenthash.Name, id)
	cc := lbtest.Dial(t, sc, lbtest.Addrs(bs))
	lbtest.WaitAllReady(t, sink, len(bs))
	for range 300 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := lbtest.Call(ctx, cc)
		cancel()
		if err != nil {
			t.Fatalf("keyless call: %v", err)
		}
	}
	for _, b := range bs {
		if b.Calls.Load() == 0 {
			t.Errorf("backend %s got no keyless call", b.Addr)
		}
	}
}

// BenchmarkPick times Pick and Done of each policy's real picker, built by
// the real policy inside a real channel over three READY loopback backends
// and taken from the channel by a recording parent policy. "keyed" calls
// carry a hash key in their context, "keyless" ones a background context.
func BenchmarkPick(b *testing.B) {
	keyed := callinfo.WithHashKey(context.Background(), "customer-42")
	for _, bc := range []struct {
		name, policy string
		ctx          context.Context
	}{
		{"round_robin", "round_robin", context.Background()},
		{"least_request", "least_request_experimental", context.Background()},
		{"consistent_hash/keyed", consistenthash.Name, keyed},
		{"consistent_hash/keyless", consistenthash.Name, context.Background()},
	} {
		b.Run(bc.name, func(b *testing.B) {
			lbtest.BenchmarkPick(b, lbtest.PickerOver(b, 3, bc.policy, "{}"), bc.ctx)
		})
	}
}

// TestE2EFailingBackendLosesItsKeys: a backend that stays connected but
// answers UNAVAILABLE loses its keys after a few failures, and gets them
// back once it answers again (its next probe).
func TestE2EFailingBackendLosesItsKeys(t *testing.T) {
	id, sink, unregister := lbstats.Register()
	defer unregister()
	bs := lbtest.StartBackends(t, &lbtest.Backend{}, &lbtest.Backend{}, &lbtest.Backend{}, &lbtest.Backend{})
	const probeInterval = 50 * time.Millisecond
	sc := fmt.Sprintf(`{"loadBalancingConfig":[{%q:{"statsId":%q,"probeInterval":%q}}]}`, consistenthash.Name, id, probeInterval)
	cc := lbtest.Dial(t, sc, lbtest.Addrs(bs))
	defer cc.Close()
	lbtest.WaitAllReady(t, sink, len(bs))

	call := func(k string) (string, error) {
		ctx, cancel := context.WithTimeout(callinfo.WithHashKey(context.Background(), k), 10*time.Second)
		defer cancel()
		var p peer.Peer
		err := lbtest.Call(ctx, cc, grpc.Peer(&p))
		if p.Addr == nil {
			return "", err
		}
		return p.Addr.String(), err
	}
	const keys = 200
	home := map[string]string{}
	for i := range keys {
		k := fmt.Sprintf("account-%d", i)
		addr, err := call(k)
		if err != nil {
			t.Fatal(err)
		}
		home[k] = addr
	}

	bad := bs[0]
	bad.SetFail(codes.Unavailable)
	failed, start := 0, time.Now()
	for i := range keys {
		k := fmt.Sprintf("account-%d", i)
		addr, err := call(k)
		if err != nil {
			failed++
			continue
		}
		if addr == bad.Addr {
			t.Fatalf("key %q was answered by the failing backend", k)
		}
		if home[k] != bad.Addr && addr != home[k] {
			t.Errorf("key %q of a healthy backend moved from %s to %s", k, home[k], addr)
		}
	}
	// EjectAfter failures eject it; then at most a probe per interval.
	probes := int(time.Since(start)/probeInterval) + 1
	if failed < lbcore.EjectAfter || failed > lbcore.EjectAfter+probes {
		t.Errorf("%d of %d calls failed; want %d before the ejection and at most %d probes", failed, keys, lbcore.EjectAfter, probes)
	}

	bad.SetFail(codes.OK)
	back := false
	for range 200 {
		for i := range keys {
			k := fmt.Sprintf("account-%d", i)
			if home[k] != bad.Addr {
				continue
			}
			if addr, err := call(k); err == nil && addr == bad.Addr {
				back = true
			}
			break
		}
		if back {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !back {
		t.Fatal("the backend's keys did not come back after it answered again")
	}
}

// BenchmarkMetricsPickDone times CONSISTENT_HASH's Pick and Done of keyed
// calls with and without metrics exported through OpenTelemetry, in one
// run (see lbtest.BenchmarkPickMetrics).
func BenchmarkMetricsPickDone(b *testing.B) {
	lbtest.BenchmarkPickMetrics(b, consistenthash.Name, "{}", callinfo.WithHashKey(context.Background(), "customer-42"))
}

package peakewma_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	_ "google.golang.org/grpc/balancer/leastrequest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/peer"

	"github.com/lbclient/lbclient/runtime/balancer/internal/lbtest"
	"github.com/lbclient/lbclient/runtime/balancer/peakewma"
	"github.com/lbclient/lbclient/runtime/internal/callinfo"
	"github.com/lbclient/lbclient/runtime/internal/lbstats"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func serviceConfig(cfg string) string {
	return fmt.Sprintf(`{"loadBalancingConfig":[{%q:%s}]}`, peakewma.Name, cfg)
}

// dial returns a channel over bs with the policy's default config, once
// every backend is READY, and the stats sink the policy publishes to.
func dial(t *testing.T, bs []*lbtest.Backend) (*grpc.ClientConn, *lbstats.Sink) {
	t.Helper()
	id, sink, unregister := lbstats.Register()
	t.Cleanup(unregister)
	cc := lbtest.Dial(t, serviceConfig(fmt.Sprintf(`{"statsId":%q}`, id)), lbtest.Addrs(bs))
	lbtest.WaitAllReady(t, sink, len(bs))
	return cc, sink
}

// run makes calls calls from workers goroutines and returns how many went
// to each peer address, as grpc.Peer reports it, and how many failed.
func run(t *testing.T, cc *grpc.ClientConn, calls, workers int) (map[string]int, int) {
	t.Helper()
	var (
		mu     sync.Mutex
		byPeer = map[string]int{}
		failed int
		next   atomic.Int64
		wg     sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for next.Add(1) <= int64(calls) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				var p peer.Peer
				err := lbtest.Call(ctx, cc, grpc.Peer(&p))
				cancel()
				mu.Lock()
				if p.Addr != nil {
					byPeer[p.Addr.String()]++
				}
				if err != nil {
					failed++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return byPeer, failed
}

func TestE2ESkewedLatency(t *testing.T) {
	// 2 ms against 20 ms rather than 1 against 10: the gap must stay wider
	// than the scheduling stalls of a loaded CI machine under -race, which
	// reach tens of milliseconds and briefly inflate every estimate alike.
	bs := lbtest.StartBackends(t,
		&lbtest.Backend{Delay: 2 * time.Millisecond},
		&lbtest.Backend{Delay: 2 * time.Millisecond},
		&lbtest.Backend{Delay: 2 * time.Millisecond},
		&lbtest.Backend{Delay: 20 * time.Millisecond},
	)
	cc, sink := dial(t, bs)
	const calls = 2000
	byPeer, failed := run(t, cc, calls, 8)
	for _, e := range sink.Endpoints() {
		t.Logf("%s: picks %d, latency estimate %v", e.Addr, e.Picks, e.Latency)
	}
	if failed != 0 {
		t.Fatalf("%d calls failed", failed)
	}
	slow := bs[3]
	t.Logf("calls per backend (the last is 10x slower): %d %d %d %d", byPeer[bs[0].Addr], byPeer[bs[1].Addr], byPeer[bs[2].Addr], byPeer[slow.Addr])
	if got := slow.Calls.Load(); got != int64(byPeer[slow.Addr]) {
		t.Errorf("server counted %d calls, grpc.Peer %d", got, byPeer[slow.Addr])
	}
	if share := float64(byPeer[slow.Addr]) / calls; share >= 0.10 {
		t.Errorf("slow backend got %.1f%% of calls, want < 10%%", 100*share)
	}
}

func TestE2EFailingBackend(t *testing.T) {
	bs := lbtest.StartBackends(t,
		&lbtest.Backend{Delay: time.Millisecond},
		&lbtest.Backend{Delay: time.Millisecond},
		&lbtest.Backend{Delay: time.Millisecond},
		&lbtest.Backend{Fail: codes.Unavailable}, // fails fast: looks like the fastest
	)
	cc, _ := dial(t, bs)
	const calls = 2000
	byPeer, failed := run(t, cc, calls, 8)
	bad := bs[3]
	t.Logf("calls per backend (the last fails): %d %d %d %d", byPeer[bs[0].Addr], byPeer[bs[1].Addr], byPeer[bs[2].Addr], byPeer[bad.Addr])
	if int64(failed) != bad.Calls.Load() {
		t.Errorf("%d calls failed, failing backend served %d", failed, bad.Calls.Load())
	}
	if share := float64(bad.Calls.Load()) / calls; share >= 0.02 {
		t.Errorf("failing backend got %.1f%% of calls, want < 2%%", 100*share)
	}
}

// TestE2EFailedBackendComesBack: of three backends one fails every call
// with UNAVAILABLE, and is ejected; then it serves again, on the same
// connection, and must get calls again within a bounded number of calls
// (its probe, a probe interval after its last call, then its share) rather
// than after the minute the failure penalty takes to decay.
func TestE2EFailedBackendComesBack(t *testing.T) {
	bs := lbtest.StartBackends(t, &lbtest.Backend{}, &lbtest.Backend{}, &lbtest.Backend{})
	bad := bs[2]
	bad.SetFail(codes.Unavailable)
	id, sink, unregister := lbstats.Register()
	t.Cleanup(unregister)
	cc := lbtest.Dial(t, serviceConfig(fmt.Sprintf(`{"statsId":%q,"probeInterval":"50ms"}`, id)), lbtest.Addrs(bs))
	lbtest.WaitAllReady(t, sink, len(bs))

	const calls = 500
	_, failed := run(t, cc, calls, 4)
	if failed == 0 || int64(failed) != bad.Calls.Load() {
		t.Fatalf("%d calls failed, failing backend served %d", failed, bad.Calls.Load())
	}
	if share := float64(failed) / calls; share >= 0.1 {
		t.Errorf("failing backend got %.1f%% of calls, want it ejected", 100*share)
	}

	bad.SetFail(codes.OK)
	before := bad.Calls.Load()
	// Poll in rounds of calls: the healed backend must be back (a fair
	// share of a round) within a bounded number of rounds. Each round takes
	// longer than a probe interval on any machine, so a round or two
	// suffice; the bound leaves ample room for scheduling noise.
	const rounds, perRound = 100, 60
	for r := range rounds {
		byPeer, failed := run(t, cc, perRound, 2)
		if failed != 0 {
			t.Fatalf("round %d: %d calls failed after the backend healed", r, failed)
		}
		if got := byPeer[bad.Addr]; got >= perRound/6 {
			t.Logf("healed backend back in round %d: %d of %d calls (%d calls since it healed)", r, got, perRound, bad.Calls.Load()-before)
			return
		}
		time.Sleep(10 * time.Millisecond) // let a probe interval pass
	}
	t.Fatalf("healed backend got %d calls over %d rounds of %d, never a sixth of a round", bad.Calls.Load()-before, rounds, perRound)
}

func TestE2EHedgedAttemptAvoidsTried(t *testing.T) {
	bs := lbtest.StartBackends(t, &lbtest.Backend{}, &lbtest.Backend{}, &lbtest.Backend{}, &lbtest.Backend{})
	cc, _ := dial(t, bs)
	for range 50 {
		a := new(callinfo.Attempts)
		for _, b := range bs[:3] {
			a.Add(b.Addr)
		}
		ctx, cancel := context.WithTimeout(callinfo.WithAttempts(context.Background(), a), 10*time.Second)
		var p peer.Peer
		err := lbtest.Call(ctx, cc, grpc.Peer(&p))
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Addr.String(); got != bs[3].Addr {
			t.Fatalf("hedged attempt went to %s, want the untried %s", got, bs[3].Addr)
		}
	}
}

func TestE2EStats(t *testing.T) {
	bs := lbtest.StartBackends(t, &lbtest.Backend{}, &lbtest.Backend{}, &lbtest.Backend{Fail: codes.Unavailable})
	cc, sink := dial(t, bs)
	const calls = 300
	_, failed := run(t, cc, calls, 4)
	eps := sink.Endpoints()
	if len(eps) != 3 {
		t.Fatalf("sink reports %d endpoints, want 3: %+v", len(eps), eps)
	}
	var picks, failures uint64
	for _, e := range eps {
		picks += e.Picks
		failures += e.Failures
		if e.InFlight != 0 || e.State != connectivity.Ready || (e.Latency <= 0) != (e.Picks == e.Failures) {
			t.Errorf("endpoint %+v: want READY, nothing in flight, a latency if it answered a call", e)
		}
		var b *lbtest.Backend
		for _, x := range bs {
			if x.Addr == e.Addr {
				b = x
			}
		}
		if b == nil || uint64(b.Calls.Load()) != e.Picks {
			t.Errorf("endpoint %s: %d picks, backend served %v", e.Addr, e.Picks, b)
		}
	}
	if picks != calls || failures != uint64(failed) {
		t.Errorf("picks %d, failures %d; want %d, %d", picks, failures, calls, failed)
	}
	cc.Close()
	if eps := sink.Endpoints(); eps != nil {
		t.Errorf("after Close the sink still reports %+v", eps)
	}
}

// BenchmarkPick times Pick and Done of each policy's real picker, built by
// the real policy inside a real channel over three READY loopback backends
// and taken from the channel by a recording parent policy. The call carries
// a background context (the pickers' context lookups are then shortest).
func BenchmarkPick(b *testing.B) {
	for _, policy := range []string{"round_robin", "least_request_experimental", peakewma.Name} {
		b.Run(policy, func(b *testing.B) {
			lbtest.BenchmarkPick(b, lbtest.PickerOver(b, 3, policy, "{}"), context.Background())
		})
	}
}

// BenchmarkMetricsPickDone times PEAK_EWMA's Pick and Done with and
// without metrics exported through OpenTelemetry, in one run (see
// lbtest.BenchmarkPickMetrics).
func BenchmarkMetricsPickDone(b *testing.B) {
	lbtest.BenchmarkPickMetrics(b, peakewma.Name, "{}", context.Background())
}

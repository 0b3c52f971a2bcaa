package consistenthash

import (
	"context"
	"fmt"
	"maps"
	"math"
	rand "math/rand/v2"
	"slices"
	"testing"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"

	"github.com/lbclient/lbclient/runtime/balancer/internal/lbcore"
	"github.com/lbclient/lbclient/runtime/balancer/internal/lbtest"
	"github.com/lbclient/lbclient/runtime/internal/callinfo"
)

// newTestPicker builds the policy's picker over addrs (READY unless listed
// in down) with cfg, a clock stopped at 0 and seeded randomness.
func newTestPicker(t *testing.T, cfg *LBConfig, addrs []string, down ...string) *picker {
	t.Helper()
	return newTestPickerAt(t, func() int64 { return 0 }, cfg, addrs, down...)
}

// newTestPickerAt is newTestPicker with the clock now.
func newTestPickerAt(t *testing.T, now lbcore.Clock, cfg *LBConfig, addrs []string, down ...string) *picker {
	t.Helper()
	tr := lbcore.NewTracker(now, rand.New(rand.NewPCG(1, 2)).Uint64)
	tr.CountTotal = (&pickerBuilder{}).CountsTotal()
	all, ready := tr.Sync(lbtest.ChildStates(addrs, func(a string) connectivity.State {
		if slices.Contains(down, a) {
			return connectivity.TransientFailure
		}
		return connectivity.Ready
	}, nil))
	return (&pickerBuilder{}).Build(cfg, tr, all, ready).(*picker)
}

func keyInfo(key string) balancer.PickInfo {
	return balancer.PickInfo{Ctx: callinfo.WithHashKey(context.Background(), key)}
}

func TestPickerAffinityUnderLightLoad(t *testing.T) {
	addrs := endpointAddrs(5)
	p := newTestPicker(t, defaultConfig(), addrs)
	r := newRing(addrs, nil, DefaultVirtualNodes)
	for i := range 1000 {
		k := fmt.Sprintf("customer-%d", i)
		for range 3 {
			res, err := p.Pick(keyInfo(k))
			if err != nil {
				t.Fatal(err)
			}
			if got, want := lbtest.AddrOf(res), owner(r, addrs, k); got != want {
				t.Fatalf("key %q went to %s, want its owner %s", k, got, want)
			}
			res.Done(balancer.DoneInfo{BytesSent: true, BytesReceived: true})
		}
	}
}

func TestPickerSkipsEndpointsNotReady(t *testing.T) {
	addrs := endpointAddrs(5)
	r := newRing(addrs, nil, DefaultVirtualNodes)
	down := addrs[2]
	p := newTestPicker(t, defaultConfig(), addrs, down)
	moved := 0
	for i := range 2000 {
		k := fmt.Sprintf("k%d", i)
		res, err := p.Pick(keyInfo(k))
		if err != nil {
			t.Fatal(err)
		}
		got := lbtest.AddrOf(res)
		if got == down {
			t.Fatalf("key %q went to the endpoint in TRANSIENT_FAILURE", k)
		}
		if owner(r, addrs, k) != down && got != owner(r, addrs, k) {
			t.Fatalf("key %q of a READY endpoint moved to %s", k, got)
		}
		if owner(r, addrs, k) == down {
			moved++
		}
		res.Done(balancer.DoneInfo{BytesSent: true, BytesReceived: true})
	}
	if moved == 0 {
		t.Fatal("no key belonged to the endpoint that went down")
	}
}

func TestPickerWithoutKeyUsesP2C(t *testing.T) {
	p := newTestPicker(t, defaultConfig(), endpointAddrs(4))
	count := map[string]int{}
	info := balancer.PickInfo{Ctx: context.Background()}
	var dones []func(balancer.DoneInfo)
	for range 400 {
		res, err := p.Pick(info)
		if err != nil {
			t.Fatalf("keyless call refused: %v", err)
		}
		count[lbtest.AddrOf(res)]++
		dones = append(dones, res.Done)
	}
	// Same latency estimate everywhere and no call finished: cost is the
	// in-flight count, and P2C keeps the endpoints level.
	for a, n := range count {
		if n < 90 || n > 110 {
			t.Errorf("%s got %d of 400 keyless calls, want about 100", a, n)
		}
	}
	for _, d := range dones {
		d(balancer.DoneInfo{BytesSent: true, BytesReceived: true})
	}
}

func TestPickerHedgedCallAvoidsTried(t *testing.T) {
	addrs := endpointAddrs(4)
	p := newTestPicker(t, defaultConfig(), addrs)
	r := newRing(addrs, nil, DefaultVirtualNodes)
	for i := range 200 {
		k := fmt.Sprintf("k%d", i)
		home := owner(r, addrs, k)
		a := new(callinfo.Attempts)
		a.Add(home)
		res, err := p.Pick(balancer.PickInfo{Ctx: callinfo.WithAttempts(callinfo.WithHashKey(context.Background(), k), a)})
		if err != nil {
			t.Fatal(err)
		}
		got := lbtest.AddrOf(res)
		if got == home {
			t.Fatalf("hedge of key %q went back to %s", k, home)
		}
		if tried := a.Addrs(); len(tried) != 2 || tried[1] != got {
			t.Fatalf("attempts %v, want the pick %s added", tried, got)
		}
		res.Done(balancer.DoneInfo{BytesSent: true, BytesReceived: true})
	}
}

// TestBoundedLoadZipf drives the picker with a Zipf(1.1) key stream, a
// deterministic model of in-flight calls (up to 64 outstanding; when full,
// a random one completes), and checks the bound of Mirrokni et al. at every
// pick: the chosen endpoint holds at most ceil(c × (in-flight + 1) / N).
func TestBoundedLoadZipf(t *testing.T) {
	run := func(t *testing.T, factor float64) (maxOverAvg float64, violations int) {
		const n, outstanding, picks = 8, 64, 50000
		cfg := defaultConfig()
		cfg.BalanceFactor = factor
		p := newTestPicker(t, cfg, endpointAddrs(n))
		rng := rand.New(rand.NewPCG(11, 13))
		zipf := rand.NewZipf(rng, 1.1, 1, 9999)
		var dones []func(balancer.DoneInfo)
		load := func(addr string) int64 {
			for _, c := range p.all {
				if c.EP.Addr == addr {
					return c.EP.InFlight()
				}
			}
			return -1
		}
		for range picks {
			if len(dones) == outstanding {
				i := rng.IntN(len(dones))
				dones[i](balancer.DoneInfo{BytesSent: true, BytesReceived: true})
				dones[i] = dones[len(dones)-1]
				dones = dones[:len(dones)-1]
			}
			total := p.t.InFlight()
			limit := int64(math.Ceil(1.25 * float64(total+1) / n))
			res, err := p.Pick(keyInfo(fmt.Sprintf("key-%d", zipf.Uint64())))
			if err != nil {
				t.Fatal(err)
			}
			l := load(lbtest.AddrOf(res))
			if l > limit {
				violations++
			}
			if total+1 >= outstanding/2 { // the ratio is noise at tiny totals
				maxOverAvg = max(maxOverAvg, float64(l)/(float64(total+1)/n))
			}
			dones = append(dones, res.Done)
		}
		for _, d := range dones {
			d(balancer.DoneInfo{BytesSent: true, BytesReceived: true})
		}
		if p.t.InFlight() != 0 {
			t.Fatalf("%d calls still counted in flight", p.t.InFlight())
		}
		return maxOverAvg, violations
	}
	t.Run("bounded", func(t *testing.T) {
		ratio, violations := run(t, DefaultBalanceFactor)
		t.Logf("c=1.25: busiest endpoint at pick time held %.2f × the average", ratio)
		if violations != 0 {
			t.Errorf("%d picks exceeded ceil(1.25 × average)", violations)
		}
	})
	t.Run("unbounded for contrast", func(t *testing.T) {
		ratio, violations := run(t, MaxBalanceFactor)
		t.Logf("c=100: busiest endpoint at pick time held %.2f × the average", ratio)
		if violations == 0 {
			t.Errorf("the Zipf stream never overloaded an endpoint without the bound; the test proves nothing")
		}
	})
}

func TestPickerAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items on purpose under the race detector")
	}
	p := newTestPicker(t, defaultConfig(), endpointAddrs(4))
	for name, info := range map[string]balancer.PickInfo{
		"keyed":   keyInfo("customer-42"),
		"keyless": {Ctx: context.Background()},
	} {
		if allocs := testing.AllocsPerRun(1000, func() {
			res, _ := p.Pick(info)
			res.Done(balancer.DoneInfo{BytesSent: true, BytesReceived: true})
		}); allocs != 0 {
			t.Errorf("%s Pick+Done: %v allocations, want 0", name, allocs)
		}
	}
}

// newStatePicker builds the policy's picker over addrs in the given child
// states (READY when not listed); kicks counts each child's ExitIdle calls.
func newStatePicker(t *testing.T, addrs []string, states map[string]connectivity.State, kicks map[string]int) *picker {
	t.Helper()
	tr := lbcore.NewTracker(func() int64 { return 0 }, rand.New(rand.NewPCG(1, 2)).Uint64)
	all, ready := tr.Sync(lbtest.ChildStates(addrs, func(a string) connectivity.State {
		if s, ok := states[a]; ok {
			return s
		}
		return connectivity.Ready
	}, func(a string) { kicks[a]++ }))
	return (&pickerBuilder{}).Build(defaultConfig(), tr, all, ready).(*picker)
}

// successors returns the distinct endpoints met walking the ring from
// key's position: the key's owner first.
func successors(r *ring, addrs []string, key string) []string {
	var out []string
	seen := map[int32]bool{}
	start := r.search(hashKey(key))
	for k := range r.owners {
		o := r.owners[(start+k)%len(r.owners)]
		if !seen[o] {
			seen[o] = true
			out = append(out, addrs[o])
		}
	}
	return out
}

// TestPickerKeysOnlyOnReadyEndpoints: the key's endpoint is the first
// READY one on its walk; one that is CONNECTING (for the first time: a
// half-open backend stays so for 20 s), IDLE (asked to connect, once per
// snapshot) or in TRANSIENT_FAILURE passes the key on, so that no keyed
// call waits for a connection while a READY endpoint could serve it.
// Bounded-load overflow and hedges move on to READY endpoints too.
func TestPickerKeysOnlyOnReadyEndpoints(t *testing.T) {
	addrs := endpointAddrs(4)
	r := newRing(addrs, nil, DefaultVirtualNodes)
	const key = "customer-7"
	w := successors(r, addrs, key) // w[0] owns the key, w[1] is next, ...
	if len(w) != 4 {
		t.Fatalf("walk %v, want all 4 endpoints", w)
	}
	const (
		ready = connectivity.Ready
		idle  = connectivity.Idle
		conn  = connectivity.Connecting
		tf    = connectivity.TransientFailure
	)
	tests := []struct {
		name     string
		states   []connectivity.State // of w[0], w[1], w[2], w[3]
		load     int                  // calls in flight on w[0] beforehand
		tried    bool                 // a hedge: w[0] already tried
		want     int                  // index in w of the pick; -1: queued
		wantKick int                  // index in w of the endpoint asked to connect; -1: none
	}{
		{"owner READY", []connectivity.State{ready, ready, ready, ready}, 0, false, 0, -1},
		{"owner CONNECTING: next READY", []connectivity.State{conn, ready, ready, ready}, 0, false, 1, -1},
		{"owner IDLE is kicked, next READY takes the call", []connectivity.State{idle, ready, ready, ready}, 0, false, 1, 0},
		{"owner TRANSIENT_FAILURE: next READY", []connectivity.State{tf, ready, ready, ready}, 0, false, 1, -1},
		{"owner and next TRANSIENT_FAILURE: third", []connectivity.State{tf, tf, ready, ready}, 0, false, 2, -1},
		{"owner TRANSIENT_FAILURE, next CONNECTING: third", []connectivity.State{tf, conn, ready, ready}, 0, false, 2, -1},
		{"owner TRANSIENT_FAILURE, next IDLE is kicked", []connectivity.State{tf, idle, ready, ready}, 0, false, 2, 1},
		{"owner full spills past CONNECTING to READY", []connectivity.State{ready, conn, ready, ready}, 10, false, 2, -1},
		{"owner full spills past IDLE, kicking it", []connectivity.State{ready, idle, tf, ready}, 10, false, 3, 1},
		{"hedge past tried owner skips CONNECTING", []connectivity.State{ready, conn, ready, ready}, 0, true, 2, -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			states := map[string]connectivity.State{}
			for i, s := range tc.states {
				states[w[i]] = s
			}
			kicks := map[string]int{}
			p := newStatePicker(t, addrs, states, kicks)
			var owner *lbcore.Endpoint
			for _, c := range p.all {
				if c.EP.Addr == w[0] {
					owner = c.EP
				}
			}
			for range tc.load {
				if _, ok := owner.TryAcquire(math.MaxInt64, 0, false); !ok {
					t.Fatal("TryAcquire")
				}
			}
			for range 3 { // the same pick again on the same snapshot
				ctx := callinfo.WithHashKey(context.Background(), key)
				if tc.tried {
					a := new(callinfo.Attempts)
					a.Add(w[0])
					ctx = callinfo.WithAttempts(ctx, a)
				}
				res, err := p.Pick(balancer.PickInfo{Ctx: ctx})
				if tc.want < 0 {
					if err != balancer.ErrNoSubConnAvailable {
						t.Fatalf("Pick = %v, %v; want it queued (ErrNoSubConnAvailable)", res, err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("Pick: %v", err)
				}
				if got := lbtest.AddrOf(res); got != w[tc.want] {
					t.Fatalf("key went to %s (walk position %d), want %s (position %d)", got, slices.Index(w, got), w[tc.want], tc.want)
				}
				res.Done(balancer.DoneInfo{BytesSent: true, BytesReceived: true})
			}
			if tc.want < 0 && p.t.InFlight() != int64(tc.load) {
				t.Errorf("queued picks left %d calls in flight, want %d", p.t.InFlight(), tc.load)
			}
			wantKicks := map[string]int{}
			if tc.wantKick >= 0 {
				wantKicks[w[tc.wantKick]] = 1 // once per snapshot, not per pick
			}
			if !maps.Equal(kicks, wantKicks) {
				t.Errorf("ExitIdle calls %v, want %v", kicks, wantKicks)
			}
		})
	}
}

func TestPickerAllocsWhileOwnerConnects(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items on purpose under the race detector")
	}
	addrs := endpointAddrs(4)
	w := successors(newRing(addrs, nil, DefaultVirtualNodes), addrs, "customer-42")
	p := newStatePicker(t, addrs, map[string]connectivity.State{w[0]: connectivity.Connecting}, map[string]int{})
	info := keyInfo("customer-42")
	if allocs := testing.AllocsPerRun(1000, func() {
		res, err := p.Pick(info)
		if err != nil || lbtest.AddrOf(res) != w[1] {
			t.Fatalf("Pick: %v, %v; want the owner's successor %s", lbtest.AddrOf(res), err, w[1])
		}
		res.Done(balancer.DoneInfo{BytesSent: true, BytesReceived: true})
	}); allocs != 0 {
		t.Errorf("Pick+Done past a connecting owner: %v allocations, want 0", allocs)
	}
}

// TestPickerEjectsFailingEndpointFromKeys: an endpoint that fails
// lbcore.EjectAfter calls in a row while READY loses its keys to their next
// endpoints, as if it were in TRANSIENT_FAILURE; one call per probe
// interval (16 base intervals after that many failures) still goes to it,
// and its first response brings its keys back.
func TestPickerEjectsFailingEndpointFromKeys(t *testing.T) {
	addrs := endpointAddrs(4)
	var now int64
	p := newTestPickerAt(t, func() int64 { return now }, defaultConfig(), addrs)
	r := newRing(addrs, nil, DefaultVirtualNodes)
	bad := addrs[1]
	var keys []string // keys whose endpoint is bad
	for i := 0; len(keys) < 50; i++ {
		if k := fmt.Sprintf("k%d", i); owner(r, addrs, k) == bad {
			keys = append(keys, k)
		}
	}
	pick := func(k string) (string, func(balancer.DoneInfo)) {
		t.Helper()
		res, err := p.Pick(keyInfo(k))
		if err != nil {
			t.Fatalf("key %q: %v", k, err)
		}
		return lbtest.AddrOf(res), res.Done
	}
	unavailable := balancer.DoneInfo{Err: status.Error(codes.Unavailable, "down"), BytesSent: true}

	for i := range lbcore.EjectAfter {
		got, done := pick(keys[i])
		if got != bad {
			t.Fatalf("failure %d: key %q went to %s before the endpoint was ejected, want %s", i+1, keys[i], got, bad)
		}
		done(unavailable)
	}
	// Where the keys go while bad is in TRANSIENT_FAILURE.
	down := newTestPicker(t, defaultConfig(), addrs, bad)
	for _, k := range keys {
		got, done := pick(k)
		res, err := down.Pick(keyInfo(k))
		if err != nil {
			t.Fatal(err)
		}
		if want := lbtest.AddrOf(res); got != want {
			t.Fatalf("key %q of the ejected endpoint went to %s, want %s, its endpoint with %s down", k, got, want, bad)
		}
		res.Done(balancer.DoneInfo{BytesSent: true, BytesReceived: true})
		done(balancer.DoneInfo{BytesSent: true, BytesReceived: true})
	}

	// A probe interval later, one call goes to it: a failure keeps it out.
	backoff := int64(16 * lbcore.DefaultProbeInterval)
	now += backoff
	probes := 0
	for _, k := range keys {
		got, done := pick(k)
		if got == bad {
			probes++
			done(unavailable)
			continue
		}
		done(balancer.DoneInfo{BytesSent: true, BytesReceived: true})
	}
	if probes != 1 {
		t.Fatalf("%d calls went to the failing endpoint in one probe interval, want 1 probe", probes)
	}

	// The next probe succeeds: the keys are back.
	now += backoff
	got, done := pick(keys[0])
	if got != bad {
		t.Fatalf("key %q went to %s a probe interval later, want the probe to %s", keys[0], got, bad)
	}
	done(balancer.DoneInfo{BytesSent: true, BytesReceived: true})
	for _, k := range keys {
		if got, done := pick(k); got != bad {
			t.Fatalf("key %q went to %s after its endpoint answered again, want %s", k, got, bad)
		} else {
			done(balancer.DoneInfo{BytesSent: true, BytesReceived: true})
		}
	}
}

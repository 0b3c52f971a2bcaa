package lbcore

import (
	"context"
	"errors"
	"fmt"
	"math"
	rand "math/rand/v2"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/endpointsharding"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/status"

	"github.com/lbclient/lbclient/runtime/internal/callinfo"
	"github.com/lbclient/lbclient/runtime/internal/lbstats"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	ms  = float64(time.Millisecond)
	sec = int64(time.Second)
	tau = float64(10 * time.Second)
)

// fakeClock is a settable clock.
type fakeClock struct{ now int64 }

func (c *fakeClock) Now() int64 { return c.now }

// fakePicker is a child picker that always succeeds.
type fakePicker struct {
	done  int // calls of its Done
	fails bool
}

func (p *fakePicker) Pick(balancer.PickInfo) (balancer.PickResult, error) {
	if p.fails {
		return balancer.PickResult{}, balancer.ErrNoSubConnAvailable
	}
	return balancer.PickResult{Done: func(balancer.DoneInfo) { p.done++ }}, nil
}

func child(addr string, s connectivity.State, p balancer.Picker) endpointsharding.ChildState {
	return endpointsharding.ChildState{
		Endpoint: resolver.Endpoint{Addresses: []resolver.Address{{Addr: addr}}},
		State:    balancer.State{ConnectivityState: s, Picker: p},
	}
}

func newTestTracker(clk *fakeClock, seed uint64) *Tracker {
	return NewTracker(clk.Now, rand.New(rand.NewPCG(seed, seed)).Uint64)
}

// busy counts n unary calls started at start in flight on ep.
func busy(ep *Endpoint, n int, start int64) {
	for range n {
		ep.pending.Add(pendingDelta(start))
	}
}

func near(got, want float64) bool { return math.Abs(got-want) <= 1e-6*math.Max(1, math.Abs(want)) }

// params is the default Params (tau 10s, probe interval 1s).
var params = DefaultParams()

func TestEWMA(t *testing.T) {
	var e EWMA
	e.Init(30*ms, 0)
	if got := e.Estimate(0, tau); !near(got, 30*ms) || e.Sampled() {
		t.Fatalf("initial estimate = %v (sampled %v), want the 30ms prior", got, e.Sampled())
	}
	// The first sample replaces the prior, even below it.
	e.Observe(10*ms, 1, sec, params)
	if got := e.Estimate(sec, tau); !near(got, 10*ms) || !e.Sampled() {
		t.Fatalf("after the first sample: %v, want 10ms", got)
	}
	// A low sample 100ms later moves the decayed estimate by its share of
	// the 250ms probe interval, 0.4 (more than 1/ResponseWindow).
	now := sec + sec/10
	e.Observe(5*ms, 1, now, params)
	cur := 10 * ms * math.Exp(-0.01)
	want := cur + (5*ms-cur)*0.4
	if got := e.Estimate(now, tau); !near(got, want) {
		t.Fatalf("after a low sample: %v, want %v", got, want)
	}
	// A sample soon after weighs 1/ResponseWindow.
	now += sec / 100
	e.Observe(5*ms, 1, now, params)
	cur = want * math.Exp(-0.001)
	want = cur + (5*ms-cur)/ResponseWindow
	if got := e.Estimate(now, tau); !near(got, want) {
		t.Fatalf("after a second low sample: %v, want %v", got, want)
	}
	// Above the estimate: a same-instant sample weighs 1/PeakWindow, twice
	// a low one's weight.
	cur = want
	e.Observe(50*ms, 1, now, params)
	want = cur + (50*ms-cur)/PeakWindow
	if got := e.Estimate(now, tau); !near(got, want) {
		t.Fatalf("after a slow sample: %v, want %v", got, want)
	}
	// Between samples the estimate decays by exp(-elapsed/tau).
	if got := e.Estimate(now+int64(tau), tau); !near(got, want*math.Exp(-1)) {
		t.Fatalf("after tau: %v, want %v", got, want*math.Exp(-1))
	}
	// A same-instant sample below the estimate still weighs
	// 1/ResponseWindow: a response is evidence however close to the
	// previous one it comes.
	cur = want
	e.Observe(1*ms, 1, now, params)
	if got, want := e.Estimate(now, tau), cur*(1-1.0/ResponseWindow)+1*ms/ResponseWindow; !near(got, want) {
		t.Fatalf("same-instant low sample: %v, want %v", got, want)
	}
	// A probe interval after the last sample the estimate is stale: the
	// next response replaces it.
	now += sec
	e.Observe(2*ms, 1, now, params)
	if got := e.Estimate(now, tau); !near(got, 2*ms) {
		t.Fatalf("a probe interval later: %v, want 2ms", got)
	}
	// A sample stamped before the last one never steps the stamp back.
	e.Observe(1*ms, 1, 0, params)
	if _, stamp := e.load(); stamp != now {
		t.Fatalf("stamp = %d, want %d", stamp, now)
	}
}

func TestEWMAConvergesToSteadyLatency(t *testing.T) {
	var e EWMA
	e.Init(30*ms, 0)
	now := int64(0)
	e.Observe(20*ms, 1, now, params)
	for range 100 { // 100 samples of 2ms, 1ms apart
		now += int64(time.Millisecond)
		e.Observe(2*ms, 1, now, params)
	}
	// 18ms × (7/8)^100 ≈ 30ns remains of the peak.
	if got := e.Estimate(now, tau); math.Abs(got-2*ms) > 0.01*ms {
		t.Fatalf("estimate = %v, want 2ms", time.Duration(got))
	}
	if got := e.Mean(); math.Abs(got-2*ms) > 0.01*ms {
		t.Fatalf("mean = %v, want 2ms", time.Duration(got))
	}
}

func TestEWMAObserveBound(t *testing.T) {
	var e EWMA
	e.Init(30*ms, 0)
	e.ObserveBound(5*ms, 1, 0, tau) // the first evidence replaces the prior, even below it
	if got := e.Estimate(0, tau); !near(got, 5*ms) || !e.Sampled() {
		t.Fatalf("bound on the prior: %v (sampled %v), want 5ms", got, e.Sampled())
	}
	e.Observe(10*ms, 1, 0, params)
	e.ObserveBound(5*ms, 1, 0, tau) // a lower bound below the estimate says nothing
	if got := e.Estimate(0, tau); !near(got, 10*ms) {
		t.Fatalf("low bound moved the estimate to %v", got)
	}
	e.ObserveBound(80*ms, 1, 0, tau) // latency is at least 80ms: raised
	if got := e.Estimate(0, tau); !near(got, 80*ms) {
		t.Fatalf("high bound: %v, want 80ms", got)
	}
	e.Observe(3*ms, 1, 0, params) // the next response replaces it
	if got := e.Estimate(0, tau); !near(got, 3*ms) {
		t.Fatalf("response after a bound: %v, want 3ms", got)
	}
}

// pickDone picks child c at clock time and returns its Done.
func pickDone(t *testing.T, tr *Tracker, c *Child, a *callinfo.Attempts) func(balancer.DoneInfo) {
	t.Helper()
	res, err := tr.Pick(c, balancer.PickInfo{Ctx: context.Background()}, tr.Now(), &callinfo.Info{Attempts: a}, 0)
	if err != nil {
		t.Fatalf("Pick: %v", err)
	}
	return res.Done
}

func TestDoneAccounting(t *testing.T) {
	unavailable := status.Error(codes.Unavailable, "down")
	tests := []struct {
		name         string
		err          error
		elapsed      time.Duration
		wantFailures uint64
		wantEstimate time.Duration
	}{
		{"first success replaces the default", nil, 10 * time.Millisecond, 0, 10 * time.Millisecond},
		{"UNAVAILABLE is penalised", unavailable, time.Millisecond, 1, time.Second},
		{"slow UNAVAILABLE keeps its duration", unavailable, 3 * time.Second, 1, 3 * time.Second},
		{"plain error counts as UNKNOWN, a latency sample", errors.New("x"), 40 * time.Millisecond, 0, 40 * time.Millisecond},
		{"INTERNAL is a latency sample", status.Error(codes.Internal, "bug"), 45 * time.Millisecond, 0, 45 * time.Millisecond},
		{"CANCELLED is a lower bound, evidence enough to replace the prior", status.Error(codes.Canceled, ""), 5 * time.Millisecond, 0, 5 * time.Millisecond},
		{"DEADLINE_EXCEEDED is a timeout and a lower bound", status.Error(codes.DeadlineExceeded, ""), 200 * time.Millisecond, 1, 200 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := &fakeClock{}
			tr := newTestTracker(clk, 1)
			fp := &fakePicker{}
			_, ready := tr.Sync([]endpointsharding.ChildState{child("a", connectivity.Ready, fp)})
			done := pickDone(t, tr, &ready[0], nil)
			if got := ready[0].EP.InFlight(); got != 1 {
				t.Fatalf("in flight during call = %d, want 1", got)
			}
			clk.now += int64(tc.elapsed)
			done(balancer.DoneInfo{Err: tc.err, BytesSent: true})
			ep := ready[0].EP
			if ep.InFlight() != 0 || tr.InFlight() != 0 || ep.Picks() != 1 || fp.done != 1 {
				t.Fatalf("in flight %d, total %d, picks %d, child Done calls %d; want 0, 0, 1, 1", ep.InFlight(), tr.InFlight(), ep.Picks(), fp.done)
			}
			if ep.Failures() != tc.wantFailures {
				t.Fatalf("failures = %d, want %d", ep.Failures(), tc.wantFailures)
			}
			want := float64(tc.wantEstimate)
			if got := ep.ewma.Estimate(clk.now, tau); !near(got, want) {
				t.Fatalf("estimate = %v, want %v", time.Duration(got), time.Duration(want))
			}
		})
	}
}

func TestFailureCodesConfigurable(t *testing.T) {
	clk := &fakeClock{}
	tr := newTestTracker(clk, 1)
	p, err := (&LatencyConfig{FailureCodes: []string{"DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED"}}).Params()
	if err != nil {
		t.Fatal(err)
	}
	tr.SetParams(p)
	_, ready := tr.Sync([]endpointsharding.ChildState{child("a", connectivity.Ready, &fakePicker{})})
	for _, c := range []codes.Code{codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted} {
		pickDone(t, tr, &ready[0], nil)(balancer.DoneInfo{Err: status.Error(c, ""), BytesSent: true})
	}
	if got := ready[0].EP.Failures(); got != 2 {
		t.Fatalf("failures = %d, want 2 (UNAVAILABLE no longer listed)", got)
	}
}

// sim drives P2C over ready on the fake clock: a call starts every step,
// up to inFlight calls are outstanding (the oldest completes when a new one
// would exceed it), and fails decides whether a call to an endpoint fails
// with UNAVAILABLE. Each call to run returns how many calls of n went to
// each endpoint.
type sim struct {
	t        *testing.T
	clk      *fakeClock
	tr       *Tracker
	ready    []Child
	step     time.Duration
	inFlight int
	fails    func(addr string) bool
	pending  []func()
	// hook, when set, runs before each call of timedLoop starts, with the
	// clock's reading: a scenario changes the endpoint set there.
	hook func(now int64)
}

func (s *sim) run(n int) map[string]int {
	count := map[string]int{}
	for range n {
		s.clk.now += int64(s.step)
		if len(s.pending) == s.inFlight {
			s.pending[0]()
			s.pending = s.pending[1:]
		}
		i := s.tr.ChooseP2C(s.ready, s.clk.now, s.tr.Params(), nil)
		addr := s.ready[i].EP.Addr
		count[addr]++
		done := pickDone(s.t, s.tr, &s.ready[i], nil)
		var err error
		if s.fails(addr) {
			err = status.Error(codes.Unavailable, "down")
		}
		s.pending = append(s.pending, func() { done(balancer.DoneInfo{Err: err, BytesSent: true}) })
	}
	return count
}

func newSim(t *testing.T, seed uint64, step time.Duration, inFlight int, addrs ...string) *sim {
	clk := &fakeClock{}
	tr := newTestTracker(clk, seed)
	var cs []endpointsharding.ChildState
	for _, a := range addrs {
		cs = append(cs, child(a, connectivity.Ready, &fakePicker{}))
	}
	_, ready := tr.Sync(cs)
	return &sim{t: t, clk: clk, tr: tr, ready: ready, step: step, inFlight: inFlight, fails: func(string) bool { return false }}
}

// TestPassiveEjectionAndRecovery runs P2C over two endpoints: "bad" fails
// fast with UNAVAILABLE for a while, then heals. It must lose nearly all
// traffic while failing (a probe per probe interval) and win its share
// back within a probe interval or two after it heals, not after the
// minute it takes the penalty to decay.
func TestPassiveEjectionAndRecovery(t *testing.T) {
	s := newSim(t, 7, 12*time.Millisecond, 1, "bad", "good")
	failing := true
	s.fails = func(addr string) bool { return failing && addr == "bad" }
	// 12 s at one call every 12 ms: 1000 calls; probes back off to one
	// every 4 s.
	if got := s.run(1000)["bad"]; got > 12+2 {
		t.Errorf("failing endpoint got %d of 1000 calls over 12 s, want a probe at most every second", got)
	}
	failing = false
	s.run(5000 / 12) // the longest probe interval, and then some
	if got := s.run(1000)["bad"]; got < 300 {
		t.Errorf("healed endpoint got %d of 1000 calls 5 s after it healed, want >= 300", got)
	}
}

// TestFailingEndpointProbesBackOff keeps four calls in flight over three
// endpoints, one always failing, for 40 s: the failing endpoint gets its
// probes at intervals that double from the probe interval up to 16 times
// it (4 s), never a burst of concurrent probes, and it is never starved of
// probes either.
func TestFailingEndpointProbesBackOff(t *testing.T) {
	s := newSim(t, 3, time.Millisecond, 4, "a", "b", "bad")
	s.fails = func(addr string) bool { return addr == "bad" }
	base := time.Duration(s.tr.Params().ProbeInterval)
	var probes []int64 // clock readings of the calls to bad
	for range 40000 {
		if s.run(1)["bad"] == 1 {
			probes = append(probes, s.clk.now)
		}
	}
	t.Logf("failing endpoint: %d calls of 40000 in 40 s", len(probes))
	// 250ms, 250, 500, 1 s, 2 s, 4 s, then every 4 s: 14 or so.
	if len(probes) < 10 || len(probes) > 18 {
		t.Errorf("failing endpoint probed %d times in 40 s, want about 14 (intervals doubling from %v to %v)", len(probes), base, maxProbeBackoff*base)
	}
	// The first calls are no probes: a new endpoint is tried at once.
	for k := 3; k < len(probes); k++ {
		gap := time.Duration(probes[k] - probes[k-1])
		if gap < base || (k > 8 && gap < maxProbeBackoff*base) {
			t.Errorf("probe %d came %v after the previous one, want >= %v", k, gap, map[bool]time.Duration{true: maxProbeBackoff * base, false: base}[k > 8])
		}
	}
}

// TestHealedEndpointCarriesShareWithinProbeIntervals: three endpoints
// under steady load, one ejected by failures for 30 s, then healthy again;
// one longest probe interval later (4 s) it carries its third of the calls
// again.
func TestHealedEndpointCarriesShareWithinProbeIntervals(t *testing.T) {
	s := newSim(t, 11, time.Millisecond, 4, "a", "b", "c")
	failing := true
	s.fails = func(addr string) bool { return failing && addr == "c" }
	if got := s.run(30000)["c"]; got > 16 {
		t.Fatalf("failing endpoint got %d calls in 30 s", got)
	}
	failing = false
	interval := int(time.Duration(s.tr.Params().ProbeInterval) / time.Millisecond)
	s.run(maxProbeBackoff * interval)
	if got := s.run(3000)["c"]; got < 800 {
		t.Errorf("healed endpoint got %d of 3000 calls 4 s after healing, want about 1000", got)
	}
}

// TestProbeClaimedOnce: picks that found the same endpoint due a probe at
// once (before either counted its call) send one probe between them.
func TestProbeClaimedOnce(t *testing.T) {
	clk := &fakeClock{}
	tr := newTestTracker(clk, 1)
	_, ready := tr.Sync([]endpointsharding.ChildState{
		child("a", connectivity.Ready, &fakePicker{}),
		child("b", connectivity.Ready, &fakePicker{}),
	})
	ready[0].EP.ewma.ObservePenalty(float64(time.Second), 0, tau) // a: penalised, idle
	ready[1].EP.ewma.Observe(ms, 1, 0, params)
	clk.now = 2 * sec
	busy(ready[1].EP, 2, clk.now) // b: busy, so never due
	p := tr.Params()
	if got := tr.choose(ready, 0, 1, clk.now, p, half, true); got != 1 {
		t.Fatal("a probe went out before any pick made the budget for one")
	}
	ready[1].EP.picks.Add(minPicksPerProbe)
	if got := tr.choose(ready, 0, 1, clk.now, p, half, true); got != 0 {
		t.Fatal("endpoint due a probe not chosen")
	}
	if got := tr.choose(ready, 1, 0, clk.now, p, half, true); got != 1 {
		t.Fatal("a second probe went out at the same instant")
	}
	clk.now += sec
	ready[1].EP.pending.Store(0)
	busy(ready[1].EP, 2, clk.now) // b: busy with fresh calls
	if got := tr.choose(ready, 1, 0, clk.now, p, half, true); got != 1 {
		t.Fatal("a probe interval later, a probe went out without the picks that pay for it")
	}
	ready[1].EP.picks.Add(minPicksPerProbe)
	if got := tr.choose(ready, 1, 0, clk.now, p, half, true); got != 0 {
		t.Fatal("no probe a probe interval and minPicksPerProbe picks later")
	}
}

func TestPenaltyReplacedByNextResponse(t *testing.T) {
	var e EWMA
	e.Init(30*ms, 0)
	e.Observe(2*ms, 1, sec, params)
	e.ObservePenalty(1000*ms, sec, tau) // a failure: the penalty is a peak
	if got := e.Estimate(sec, tau); !near(got, 1000*ms) {
		t.Fatalf("after a failure: %v, want the 1s penalty", time.Duration(got))
	}
	e.ObservePenalty(1000*ms, 2*sec, tau)  // failing again: still penalised
	e.ObserveBound(1500*ms, 1, 2*sec, tau) // a timeout raises it further
	e.ObserveBound(5*ms, 1, 2*sec, tau)    // a low bound says nothing
	if got := e.Estimate(2*sec, tau); !near(got, 1500*ms) {
		t.Fatalf("after failures: %v, want 1.5s", time.Duration(got))
	}
	e.Observe(3*ms, 1, 2*sec, params) // a response replaces the penalty
	if got := e.Estimate(2*sec, tau); !near(got, 3*ms) {
		t.Fatalf("after a response: %v, want 3ms", time.Duration(got))
	}
	e.Observe(1*ms, 1, 2*sec, params) // and later responses blend as usual
	if got, want := e.Estimate(2*sec, tau), 3*ms*(1-1.0/ResponseWindow)+1*ms/ResponseWindow; !near(got, want) {
		t.Fatalf("after a second response: %v, want %v", time.Duration(got), time.Duration(want))
	}
}

func TestReadyAfterReconnectResetsEstimate(t *testing.T) {
	clk := &fakeClock{}
	tr := newTestTracker(clk, 1)
	sync := func(s connectivity.State) *Endpoint {
		_, all := tr.Sync([]endpointsharding.ChildState{child("a", s, &fakePicker{})})
		if s == connectivity.Ready {
			return all[0].EP
		}
		return nil
	}
	ep := sync(connectivity.Ready)
	ep.ewma.ObservePenalty(float64(time.Second), 0, tau)
	sync(connectivity.Ready) // a picker rebuild with no reconnection
	if !ep.ewma.Sampled() || !near(ep.ewma.Estimate(0, tau), float64(time.Second)) {
		t.Fatal("estimate reset without a reconnection")
	}
	for _, s := range []connectivity.State{connectivity.TransientFailure, connectivity.Connecting, connectivity.Idle} {
		ep.ewma.ObservePenalty(float64(time.Second), clk.now, tau)
		sync(s)
		if got := sync(connectivity.Ready); got != ep {
			t.Fatal("endpoint not kept")
		}
		if ep.ewma.Sampled() || !near(ep.ewma.Estimate(clk.now, tau), float64(DefaultRTT)) {
			t.Fatalf("READY after %v: estimate %v (sampled %v), want the default RTT, unmeasured", s, time.Duration(ep.ewma.Estimate(clk.now, tau)), ep.ewma.Sampled())
		}
	}
}

// seq returns a Rand that returns words in turn, then zeros.
func seq(words ...uint64) Rand {
	return func() uint64 {
		if len(words) == 0 {
			return 0
		}
		w := words[0]
		words = words[1:]
		return w
	}
}

// half is a random word that softChoice reads as u = 1/2.
const half = 1 << 63

func TestChooseP2CPicksCheaper(t *testing.T) {
	clk := &fakeClock{}
	tr := newTestTracker(clk, 1)
	_, ready := tr.Sync([]endpointsharding.ChildState{
		child("a", connectivity.Ready, &fakePicker{}),
		child("b", connectivity.Ready, &fakePicker{}),
		child("c", connectivity.Ready, &fakePicker{}),
	})
	ready[0].EP.ewma.Observe(10*ms, 1, 0, params) // a: 10ms, idle: cost 10
	ready[1].EP.ewma.Observe(2*ms, 1, 0, params)  // b: 2ms, 29 in flight: cost 60
	busy(ready[1].EP, 29, 0)
	ready[2].EP.ewma.Observe(1*ms, 1, 0, params) // c: 1ms, 1 in flight: cost 2
	busy(ready[2].EP, 1, 0)
	tests := []struct {
		i, j uint64 // the draw: i from the low word, j from the high word
		want string
	}{
		{0, 0, "a"}, // a vs b
		{1, 0, "a"}, // b vs a
		{0, 1, "c"}, // a vs c
		{2, 0, "c"}, // c vs a
		{1, 1, "c"}, // b vs c
	}
	for _, tc := range tests {
		tr.Rand = seq(tc.j<<32 | tc.i)
		if got := ready[tr.ChooseP2C(ready, 0, tr.Params(), nil)].EP.Addr; got != tc.want {
			t.Errorf("draw (%d,%d): chose %s, want %s", tc.i, tc.j, got, tc.want)
		}
	}
}

// TestSoftChoice: beyond the noise band, the cheaper of two endpoints
// wins with probability ρ⁸/(1+ρ⁸), ρ being their ratio over the band,
// each side's odds multiplied by its weight.
func TestSoftChoice(t *testing.T) {
	rnd := rand.New(rand.NewPCG(17, 17))
	p8 := func(x float64) float64 { x *= x; x *= x; return x * x }
	for _, tc := range []struct {
		ci, cj float64
		wi, wj uint32
		want   float64
	}{
		{1, 2, 1, 1, p8(2/noiseBand) / (1 + p8(2/noiseBand))},
		{2, 1, 1, 1, 1 / (1 + p8(2/noiseBand))},
		{1, 10, 1, 1, p8(10/noiseBand) / (1 + p8(10/noiseBand))},
		{0, 3, 1, 1, 1},
		// The dearer is three times heavier: its odds triple.
		{1, 2, 1, 3, p8(2/noiseBand) / (3 + p8(2/noiseBand))},
		{3, 1, 3, 1, 3 / (3 + p8(3/noiseBand))},
		{1, 10, 1, 3, p8(10/noiseBand) / (3 + p8(10/noiseBand))},
	} {
		const n = 100000
		wins := 0
		for range n {
			if softChoice(tc.ci, tc.cj, tc.wi, tc.wj, mix(rnd.Uint64())) {
				wins++
			}
		}
		if got := float64(wins) / n; math.Abs(got-tc.want) > 0.005 {
			t.Errorf("costs %v vs %v, weights %d vs %d: first won %.4f of draws, want %.4f", tc.ci, tc.cj, tc.wi, tc.wj, got, tc.want)
		}
	}
}

// TestPreferTakesTurnsWithinNoise: endpoints whose costs are within the
// noise band of each other go by calls in flight, then take turns, the
// one picked longer ago first; beyond the band, cost decides.
func TestPreferTakesTurnsWithinNoise(t *testing.T) {
	s := newSim(t, 3, 0, 0, "a", "b")
	ca, cb := &s.ready[0], &s.ready[1]
	a, b := ca.EP, cb.EP
	a.ewma.Observe(ms, 1, 0, params)
	b.ewma.Observe(1.4*ms, 1, 0, params)
	a.lastPick.Store(10)
	b.lastPick.Store(5)
	for _, r := range []uint64{0, half, ^uint64(0)} {
		if s.tr.prefer(ca, cb, 20, params, r) || !s.tr.prefer(cb, ca, 20, params, r) {
			t.Fatal("the endpoint picked longer ago did not win a tie")
		}
	}
	// b: 0.6ms × 2 = 1.2ms, within the band of a's 1ms, but busier.
	b.ewma.Init(0, 0)
	b.ewma.Observe(0.6*ms, 1, 0, params)
	busy(b, 1, 20)
	if !s.tr.prefer(ca, cb, 20, params, half) || s.tr.prefer(cb, ca, 20, params, half) {
		t.Fatal("within the band, the endpoint with more calls in flight won")
	}
	// b: 5ms × 2, beyond the band: cost decides, whatever the turn.
	b.ewma.Init(0, 0)
	b.ewma.Observe(5*ms, 1, 0, params)
	b.lastPick.Store(0)
	if !s.tr.prefer(ca, cb, 20, params, half) {
		t.Error("a 10× cheaper endpoint lost at u = 1/2")
	}
}

func TestChooseP2CShares(t *testing.T) {
	// Equal costs: every endpoint is chosen about equally often.
	clk := &fakeClock{}
	tr := newTestTracker(clk, 3)
	var cs []endpointsharding.ChildState
	for _, a := range []string{"a", "b", "c", "d"} {
		cs = append(cs, child(a, connectivity.Ready, &fakePicker{}))
	}
	_, ready := tr.Sync(cs)
	count := map[string]int{}
	for range 40000 {
		count[ready[tr.ChooseP2C(ready, 0, tr.Params(), nil)].EP.Addr]++
	}
	for a, n := range count {
		if n < 9000 || n > 11000 {
			t.Errorf("%s chosen %d times of 40000, want about 10000", a, n)
		}
	}
}

func TestAvoidSet(t *testing.T) {
	clk := &fakeClock{}
	tr := newTestTracker(clk, 5)
	_, ready := tr.Sync([]endpointsharding.ChildState{
		child("a", connectivity.Ready, &fakePicker{}),
		child("b", connectivity.Ready, &fakePicker{}),
		child("c", connectivity.Ready, &fakePicker{}),
	})
	ready[2].EP.ewma.Observe(0.001*ms, 1, 0, params) // c is by far the cheapest
	for range 200 {
		a := new(callinfo.Attempts)
		a.Add("c")
		i := tr.ChooseP2C(ready, 0, tr.Params(), &callinfo.Info{Attempts: a})
		if got := ready[i].EP.Addr; got == "c" {
			t.Fatalf("hedged call went to tried endpoint c")
		}
		pickDone(t, tr, &ready[i], a)(balancer.DoneInfo{BytesSent: true, BytesReceived: true})
		if got := a.Addrs(); len(got) != 2 || got[1] != ready[i].EP.Addr {
			t.Fatalf("Attempts = %v, want [c %s]", got, ready[i].EP.Addr)
		}
	}
	// Every endpoint tried: the avoid-set is ignored rather than failing.
	a := new(callinfo.Attempts)
	for _, e := range []string{"a", "b", "c"} {
		a.Add(e)
	}
	tr.ChooseP2C(ready, 0, tr.Params(), &callinfo.Info{Attempts: a}) // must not panic or loop
	// One untried endpoint left: it is the only choice.
	a = new(callinfo.Attempts)
	a.Add("a")
	a.Add("c")
	for range 50 {
		if got := ready[tr.ChooseP2C(ready, 0, tr.Params(), &callinfo.Info{Attempts: a})].EP.Addr; got != "b" {
			t.Fatalf("chose %s, want b, the only untried endpoint", got)
		}
	}
}

func TestPickChildErrorLeavesNoTrace(t *testing.T) {
	clk := &fakeClock{}
	tr := newTestTracker(clk, 1)
	_, ready := tr.Sync([]endpointsharding.ChildState{child("a", connectivity.Ready, &fakePicker{fails: true})})
	a := new(callinfo.Attempts)
	tr.CountTotal = true
	load, ok := ready[0].EP.TryAcquire(1, 0, false)
	if !ok || load != 1 {
		t.Fatalf("TryAcquire on idle endpoint = %d, %v; want 1, true", load, ok)
	}
	if _, err := tr.Pick(&ready[0], balancer.PickInfo{Ctx: context.Background()}, 0, &callinfo.Info{Attempts: a}, load); err == nil {
		t.Fatal("Pick did not pass the child's error on")
	}
	if ready[0].EP.InFlight() != 0 || tr.InFlight() != 0 || ready[0].EP.Picks() != 0 || len(a.Addrs()) != 0 {
		t.Fatalf("failed pick left in flight %d, total %d, picks %d, attempts %v", ready[0].EP.InFlight(), tr.InFlight(), ready[0].EP.Picks(), a.Addrs())
	}
}

func TestTryAcquire(t *testing.T) {
	clk := &fakeClock{}
	tr := newTestTracker(clk, 1)
	_, ready := tr.Sync([]endpointsharding.ChildState{child("a", connectivity.Ready, &fakePicker{})})
	tr.CountTotal = true
	ep := ready[0].EP
	for i := range 2 {
		if load, ok := ep.TryAcquire(3, 0, false); !ok || load != int64(i+1) {
			t.Fatalf("TryAcquire #%d under limit 3 = %d, %v", i+1, load, ok)
		}
	}
	if load, ok := ep.TryAcquire(3, 0, true); !ok || load != 3 { // a stream counts too
		t.Fatalf("TryAcquire of a stream under limit 3 = %d, %v", load, ok)
	}
	if _, ok := ep.TryAcquire(3, 0, false); ok {
		t.Fatal("TryAcquire beyond the limit succeeded")
	}
	if _, ok := ep.TryAcquire(3, 0, true); ok {
		t.Fatal("TryAcquire of a stream beyond the limit succeeded")
	}
	if ep.InFlight() != 3 || tr.InFlight() != 3 {
		t.Fatalf("in flight %d, total %d; want 3, 3", ep.InFlight(), tr.InFlight())
	}
}

func TestSyncKeepsCountersAndDropsLeavers(t *testing.T) {
	clk := &fakeClock{}
	tr := newTestTracker(clk, 1)
	all, ready := tr.Sync([]endpointsharding.ChildState{
		child("b", connectivity.Ready, &fakePicker{}),
		child("a", connectivity.Connecting, &fakePicker{}),
		child("b", connectivity.Ready, &fakePicker{}), // duplicate address
	})
	if len(all) != 2 || all[0].EP.Addr != "a" || all[1].EP.Addr != "b" || len(ready) != 1 || ready[0].EP.Addr != "b" {
		t.Fatalf("Sync: all %v ready %v", all, ready)
	}
	tr.Published()
	b := ready[0].EP
	done := pickDone(t, tr, &ready[0], nil)
	clk.now += int64(5 * time.Millisecond)
	done(balancer.DoneInfo{BytesSent: true, BytesReceived: true})
	// A picker rebuild keeps b's counters; a leaves, c arrives.
	all, _ = tr.Sync([]endpointsharding.ChildState{
		child("b", connectivity.TransientFailure, &fakePicker{}),
		child("c", connectivity.Ready, &fakePicker{}),
	})
	if all[0].EP != b || b.Picks() != 1 {
		t.Fatalf("b's endpoint not kept across Sync")
	}
	// Until the picker of this Sync is sent, Endpoints shows the states
	// of the previous one: b READY, c not yet picked from.
	got := tr.Endpoints()
	if len(got) != 2 || got[0].State != connectivity.Ready || got[1].State != connectivity.Idle {
		t.Fatalf("Endpoints() before Published = %+v, want b READY and c IDLE", got)
	}
	tr.Published()
	got = tr.Endpoints()
	if len(got) != 2 || got[0].Addr != "b" || got[1].Addr != "c" {
		t.Fatalf("Endpoints() = %+v, want b and c", got)
	}
	if got[0].State != connectivity.TransientFailure || got[0].Picks != 1 || got[0].InFlight != 0 || got[0].Latency <= 0 {
		t.Fatalf("b = %+v", got[0])
	}
	if got[1].State != connectivity.Ready || got[1].Picks != 0 || got[1].Latency != 0 {
		t.Fatalf("c = %+v, want a fresh endpoint, no latency before its first response", got[1])
	}
}

func TestSinkUnsetKeepsSuccessor(t *testing.T) {
	id, sink, unregister := lbstats.Register()
	defer unregister()
	if lbstats.Lookup(id) != sink {
		t.Fatal("Lookup")
	}
	clk := &fakeClock{}
	old, successor := newTestTracker(clk, 1), newTestTracker(clk, 2)
	successor.Sync([]endpointsharding.ChildState{child("a", connectivity.Ready, &fakePicker{})})
	sink.Set(old, nil)
	sink.Set(successor, nil) // a balancer switch builds the successor first
	sink.Unset(old)          // then closes the old one
	if got := sink.Endpoints(); len(got) != 1 {
		t.Fatalf("old balancer's Unset removed its successor: %v", got)
	}
	sink.Unset(successor)
	if got := sink.Endpoints(); got != nil {
		t.Fatalf("Unset did not clear: %v", got)
	}
}

func TestPickAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items on purpose under the race detector")
	}
	clk := &fakeClock{}
	tr := newTestTracker(clk, 1)
	pf := pfPicker{}
	_, ready := tr.Sync([]endpointsharding.ChildState{
		child("a", connectivity.Ready, pf),
		child("b", connectivity.Ready, pf),
	})
	info := balancer.PickInfo{Ctx: context.Background()}
	errUnavailable := status.Error(codes.Unavailable, "")
	for name, err := range map[string]error{"success": nil, "UNAVAILABLE": errUnavailable} {
		allocs := testing.AllocsPerRun(1000, func() {
			i := tr.ChooseP2C(ready, clk.now, tr.Params(), nil)
			res, _ := tr.Pick(&ready[i], info, clk.now, &callinfo.Info{}, 0)
			res.Done(balancer.DoneInfo{Err: err, BytesSent: true})
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per pick and Done, want 0", name, allocs)
		}
	}
}

// pfPicker returns a fixed result without Done, like pickfirst's picker.
type pfPicker struct{}

func (pfPicker) Pick(balancer.PickInfo) (balancer.PickResult, error) {
	return balancer.PickResult{}, nil
}

func TestEWMAPriorSurvivesCensoredSamples(t *testing.T) {
	var e EWMA
	e.Init(30*ms, 0)
	e.ObserveBound(50*ms, 1, sec, tau) // at least 50ms: evidence, but no measurement
	e.Observe(2*ms, 1, sec, params)    // so the first response still replaces it
	if got := e.Estimate(sec, tau); !near(got, 2*ms) {
		t.Fatalf("estimate = %v, want 2ms", time.Duration(got))
	}
}

func TestUnsampledEndpointIsProbedOneCallAtATime(t *testing.T) {
	clk := &fakeClock{}
	tr := newTestTracker(clk, 9)
	_, ready := tr.Sync([]endpointsharding.ChildState{
		child("old", connectivity.Ready, &fakePicker{}),
		child("new", connectivity.Ready, &fakePicker{}),
	})
	old, nw := &ready[1], &ready[0] // sorted by address: "new" < "old"
	old.EP.ewma.Observe(1*ms, 1, 0, params)
	busy(old.EP, 3, 0) // old costs 1ms × 4 = 4ms
	// Idle and never measured: free, so it gets the next call at once.
	if got := tr.ChooseP2C(ready, 0, tr.Params(), nil); &ready[got] != nw {
		t.Fatal("idle new endpoint not probed")
	}
	pickDone(t, tr, nw, nil) // the probe is out: 30ms × 1 > 4ms
	for range 20 {
		if got := tr.ChooseP2C(ready, 0, tr.Params(), nil); &ready[got] != old {
			t.Fatal("a second probe went out before the first answered")
		}
	}
}

func TestDecayMatchesExp(t *testing.T) {
	for _, x := range []float64{0, 1e-9, 1e-6, 1e-4 - 1e-12, 1e-4, 0.001, 0.01, 1.0/64 - 1e-12, 1.0 / 64, 0.1, 1, 10, 100} {
		tol := 1e-11
		if x < 1e-4 {
			tol = 1e-8 // 1-x
		}
		if got, want := decay(x), math.Exp(-x); math.Abs(got-want) > tol*want {
			t.Errorf("decay(%v) = %v, want %v", x, got, want)
		}
	}
}

// TestQuietClientProbesAreBounded: a client making four calls a second,
// one at a time, over four endpoints, one of them ten times slower. Every
// endpoint the client has not picked for a probe interval is due a probe,
// and at this rate that is nearly always the slow one, so without a bound
// probes alone would send it about one call in four. Probes are at most
// one call in minPicksPerProbe.
func TestQuietClientProbesAreBounded(t *testing.T) {
	s := newSim(t, 13, 0, 0, "fast-1", "fast-2", "fast-3", "slow")
	latency := func(addr string) int64 {
		if addr == "slow" {
			return int64(10 * time.Millisecond)
		}
		return int64(time.Millisecond)
	}
	const calls = 2000 // 500 s
	count := map[string]int{}
	for range calls {
		s.clk.now += int64(250 * time.Millisecond)
		i := s.tr.ChooseP2C(s.ready, s.clk.now, s.tr.Params(), nil)
		addr := s.ready[i].EP.Addr
		count[addr]++
		done := pickDone(t, s.tr, &s.ready[i], nil)
		s.clk.now += latency(addr)
		done(balancer.DoneInfo{BytesSent: true, BytesReceived: true})
	}
	got := count["slow"]
	t.Logf("calls per endpoint: %v", count)
	if limit := calls/minPicksPerProbe + calls/100; got > limit {
		t.Errorf("slow endpoint got %d of %d calls, want at most about one in %d (%d)", got, calls, minPicksPerProbe, limit)
	}
	if got == 0 {
		t.Errorf("slow endpoint got no call in %d: never probed", calls)
	}
}

// TestFailureStreak: EjectAfter failures or EjectAfterTimeouts timeouts
// in a row make an endpoint Failing; a cancelled call says nothing either
// way; any response, an application error included, ends the streak.
func TestFailureStreak(t *testing.T) {
	clk := &fakeClock{}
	tr := newTestTracker(clk, 1)
	_, ready := tr.Sync([]endpointsharding.ChildState{child("a", connectivity.Ready, &fakePicker{})})
	ep := ready[0].EP
	end := func(c codes.Code) {
		var err error
		if c != codes.OK {
			err = status.Error(c, "")
		}
		pickDone(t, tr, &ready[0], nil)(balancer.DoneInfo{Err: err, BytesSent: true})
	}
	for range EjectAfter - 1 {
		end(codes.Unavailable)
	}
	end(codes.Canceled)
	if ep.Failing() {
		t.Fatalf("Failing after %d failures and a cancel, want %d failures in a row", EjectAfter-1, EjectAfter)
	}
	end(codes.Unavailable)
	if !ep.Failing() {
		t.Fatalf("not Failing after %d failures in a row", EjectAfter)
	}
	end(codes.Internal)
	if ep.Failing() {
		t.Fatal("still Failing after an application error, which is a response")
	}
	for range EjectAfterTimeouts - 1 {
		end(codes.DeadlineExceeded)
	}
	if ep.Failing() {
		t.Fatalf("Failing after %d timeouts, want %d in a row", EjectAfterTimeouts-1, EjectAfterTimeouts)
	}
	end(codes.DeadlineExceeded)
	if !ep.Failing() {
		t.Fatalf("not Failing after %d timeouts in a row", EjectAfterTimeouts)
	}
	end(codes.OK)
	if ep.Failing() {
		t.Fatal("still Failing after a success")
	}
}

// TestAvoidSetBeyondOneWord: with more endpoints than one word of the bit
// set holds, the untried ones are still the only candidates.
func TestAvoidSetBeyondOneWord(t *testing.T) {
	var cs []endpointsharding.ChildState
	for i := range 70 {
		cs = append(cs, child(fmt.Sprintf("ep-%02d", i), connectivity.Ready, &fakePicker{}))
	}
	s := newSim(t, 3, 0, 0)
	_, ready := s.tr.Sync(cs)
	a := new(callinfo.Attempts)
	for i := range callinfo.MaxAttempts {
		a.Add(ready[i].EP.Addr)
	}
	secondWord := false
	for range 200 {
		i := s.tr.ChooseP2C(ready, 0, s.tr.Params(), &callinfo.Info{Attempts: a})
		if i < callinfo.MaxAttempts {
			t.Fatalf("chose tried endpoint %d", i)
		}
		secondWord = secondWord || i >= 64
	}
	if !secondWord {
		t.Error("no endpoint of the second word chosen in 200 picks")
	}
	if got := nthBit([]uint64{0b101, 0b11}, 3); got != 65 {
		t.Errorf("nthBit = %d, want 65", got)
	}
}

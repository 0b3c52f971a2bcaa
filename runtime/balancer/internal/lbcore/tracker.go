// Package lbcore is the machinery lbclient's balancers share: per-endpoint
// load and latency accounting that outlives picker rebuilds (Tracker,
// Endpoint, EWMA), allocation-free pick accounting with a chained Done, the
// power-of-two-choices selection on cost, the hedging avoid-set, the JSON
// config fields common to the policies, and a Balancer that wires all of it
// over endpointsharding with pickfirst children.
//
// The rules by which it judges endpoints, each where it is implemented:
//
//   - what a call's end says of its endpoint — a response, a failure, a
//     timeout, a cancel, an overtaken hedged attempt, a stream's end, a
//     discarded pick: Endpoint.finish;
//   - what a call sent there now is expected to wait — the estimate scaled
//     by load, at least the age of the calls in flight: Endpoint.Cost;
//   - how the estimate moves — quicker up than down, stale after a probe
//     interval, decaying while idle, lower bounds and penalties replaced by
//     the next answer: EWMA;
//   - when an endpoint is ejected and how often it is probed —
//     EjectAfter, EjectAfterTimeouts, Endpoint.probeInterval;
//   - how two endpoints are compared — probes first, then ejection, then
//     cost within a noise band: Tracker.ChooseP2C.
//
// They were designed against the fault matrix (internal/faultmatrix),
// whose scenarios the tests of this package replay on a fake clock.
package lbcore

import (
	"cmp"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/endpointsharding"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"

	"github.com/lbclient/lbclient/runtime/internal/callinfo"
	"github.com/lbclient/lbclient/runtime/internal/lbmetrics"
	"github.com/lbclient/lbclient/runtime/internal/lbstats"
)

// Clock returns nanoseconds on a monotonic clock.
type Clock func() int64

// Rand returns 64 uniformly random bits.
type Rand func() uint64

var clockBase = time.Now()

// MonotonicClock reads the monotonic clock: time.Since uses the monotonic
// reading that time.Now carries, so wall-clock steps cannot produce negative
// or inflated latencies.
func MonotonicClock() int64 { return int64(time.Since(clockBase)) }

// Endpoint is one endpoint's counters. The Tracker keeps it, keyed by the
// endpoint's first address, for as long as the resolver lists the endpoint,
// across picker rebuilds and connectivity changes.
type Endpoint struct {
	// Addr is the endpoint's first address, its key; the hedging avoid-set
	// records it.
	Addr string

	t *Tracker
	// pending packs the unary calls in flight (its low pendingBits bits)
	// and the sum of their start times in units of 2^ageShift ns (its high
	// bits, modulo their size), so that one atomic add accounts a call and
	// Cost reads a consistent pair (see pendingAge).
	pending  atomic.Uint64
	streams  atomic.Int64 // streams in flight
	picks    atomic.Uint64
	failures atomic.Uint64
	probes   atomic.Uint64 // probe calls it got (see Tracker.choose, Ejected)
	ejects   atomic.Uint64 // times its streak reached ejection
	streak   atomic.Int64  // weight of the failures in a row (see EjectAfter); an answer ends it
	lastPick atomic.Int64  // clock reading of the latest unary pick (or probe claim)
	rate     pickRate      // recent unary picks, counted only in a weighted set
	ewma     EWMA
	state    connectivity.State // the child's state at the latest Sync; guarded by t.mu
	weight   uint32             // its weight at the latest Sync; guarded by t.mu
	// shown is the state Endpoints reports: state as of the latest picker
	// sent to the channel (see Tracker.Published), so that a READY
	// endpoint is never reported before the channel can pick it. Guarded
	// by t.mu.
	shown connectivity.State
}

const (
	// pendingBits is the width of the count in Endpoint.pending: up to
	// 16M unary calls in flight on one endpoint.
	pendingBits = 24
	pendingMask = 1<<pendingBits - 1
	// ageShift sets the unit of the start times summed in pending: 4 µs.
	// The 40 bits left hold their sum modulo 2^40, and the total age of
	// the calls in flight, the only figure read from it, is exact while
	// below 2^40 units: 50 days.
	ageShift = 12
	sumMask  = 1<<(64-pendingBits) - 1
)

// pendingDelta is what one unary call started at start adds to pending.
func pendingDelta(start int64) uint64 { return uint64(start)>>ageShift<<pendingBits | 1 }

// pendingAge returns the mean age (ns) at now of the n unary calls that
// pending word w counts; n > 0. A call picked concurrently may have
// started after now (its picker read the clock later): the total is then
// negative, which the modular sum shows as a value in the upper half of
// its range, and the age is 0.
func pendingAge(w, n uint64, now int64) float64 {
	total := (n*(uint64(now)>>ageShift) - w>>pendingBits) & sumMask
	if total > sumMask/2 {
		return 0
	}
	return float64(total) / float64(n) * (1 << ageShift)
}

// InFlight returns the number of calls under way on e, streams included.
func (e *Endpoint) InFlight() int64 {
	return int64(e.pending.Load()&pendingMask) + e.streams.Load()
}

// Picks returns the number of calls picked for e.
func (e *Endpoint) Picks() uint64 { return e.picks.Load() }

// Failures returns the number of calls on e that ended in a failure code
// or ran out of time.
func (e *Endpoint) Failures() uint64 { return e.failures.Load() }

// Estimate returns e's latency estimate (ns) as of now, decayed with tau
// (ns) and floored (see minEstimate).
func (e *Endpoint) Estimate(now int64, tau float64) float64 {
	return max(e.ewma.Estimate(now, tau), minEstimate)
}

// Cost is what a call sent to e now is expected to wait, in ns:
//
//	cost = estimate × max(1, (in flight + 1) / load), at least the mean
//	age of e's unary calls in flight,
//
// load being the mean number of calls in flight (each included) when the
// calls behind the estimate were picked. A latency measured at a load of
// m calls already holds whatever queueing those m calls caused.
// Multiplying it by the load once more, as linkerd2-proxy's and Finagle's
// peak-EWMA do (cost = estimate × (in flight + 1)), counts that load twice,
// and a fast endpoint carrying a few calls then looks dearer than an idle
// one ten times slower: with 16 callers over four backends, one 10×
// slower, the slow one won a P2C round against a busy fast one often
// enough to take 1% of calls and set the p99. Here the estimate grows in
// proportion to the load beyond the load it was measured at, as it does
// for a server that shares a fixed capacity between its calls; and it does
// not fall below the estimate when fewer calls are in flight than then,
// since many servers' latency does not fall with their load (it is their
// downstreams', or a sleep in a test), and an endpoint measured in a burst
// and idle since would otherwise look cheaper than it is. With one serial
// caller the ratio is 1 and cost is the estimate.
//
// Calls in flight that do not come back are evidence too: a hung endpoint
// answers nothing, so its estimate would stay where its last response left
// it while calls pile up on it. Its cost is therefore at least the mean
// age of its unary calls in flight, which grows with the hang (a stream's
// age is the caller's choice and is left out).
//
// An endpoint never measured costs its prior (the default RTT) × its unary
// calls in flight: nothing while idle (or held only by streams), so every
// new endpoint is probed at once whatever its peers' latency, and a default
// RTT per call once a probe is out, so it is not flooded before its first
// answer says what it is worth.
func (e *Endpoint) Cost(now int64, tau float64) float64 {
	w := e.pending.Load()
	n := w & pendingMask
	load := float64(n) + float64(e.streams.Load())
	var c float64
	if e.ewma.Sampled() {
		c = e.Estimate(now, tau) * max(1, (load+1)/e.ewma.Load())
	} else {
		// Streams left out: an endpoint that only streams hold is still
		// unmeasured, and must get the unary call that measures it.
		c = e.ewma.Estimate(now, tau) * float64(n)
	}
	if n > 0 {
		c = max(c, pendingAge(w, n, now))
	}
	return c
}

// due reports whether e is due a probe: no unary call in flight and no
// unary pick for its probe interval (see probeInterval) on base ns. Streams
// do not count: they measure nothing, and an endpoint that streams keep
// busy would otherwise never be measured again.
func (e *Endpoint) due(now int64, base float64) bool {
	return e.pending.Load()&pendingMask == 0 && float64(now-e.lastPick.Load()) >= e.probeInterval(base)
}

// claimProbe marks e picked at now if it is still due a probe, and reports
// whether it did, so that of concurrent picks that all found e due, one
// sends the probe.
func (e *Endpoint) claimProbe(now int64, base float64) bool {
	last := e.lastPick.Load()
	return float64(now-last) >= e.probeInterval(base) && e.lastPick.CompareAndSwap(last, now)
}

// lastPickResolution is how stale Endpoint.lastPick may be: far below the
// shortest probe interval (10 ms), and below the time between the picks of
// one serial caller, which take turns by it (see Tracker.prefer).
const lastPickResolution = int64(50 * time.Microsecond)

// maxProbeDoublings caps the lengthening of probe intervals at
// maxProbeBackoff (16) × the probe interval, 4 s with the default.
const (
	maxProbeDoublings = 4
	maxProbeBackoff   = 1 << maxProbeDoublings
)

// probeInterval is how long e may go without a pick before it is due a
// probe: base, doubled for each failure in a row (a timeout counts as two
// and a half), up to maxProbeBackoff × base. An endpoint that answers,
// however slowly (a cold start), is probed every base interval, so it is
// back within a few of them once it is fast; one that keeps failing or
// timing out is probed less and less often, as Envoy lengthens each
// ejection of the same host, because every probe of a hung backend costs
// its caller a whole deadline.
func (e *Endpoint) probeInterval(base float64) float64 {
	k := min(e.streak.Load()/failureWeight, maxProbeDoublings)
	return base * float64(int64(1)<<k)
}

// EjectAfter is how many failures in a row (calls ending in a failure
// code, UNAVAILABLE by default, or overtaken by a later hedged attempt,
// with no answer between them) eject an endpoint; EjectAfterTimeouts is
// how many timeouts (DEADLINE_EXCEEDED) in a row do, and a mix ejects in
// proportion. Pickers then pass the endpoint by, except for one probe per
// probe interval, until an answer ends the streak. Under CONSISTENT_HASH
// its keys go to their next endpoint on the ring meanwhile, as while it is
// not READY.
//
// Five failures is the default of Envoy's outlier detection
// (consecutive_5xx): one or two failures are an incident, not a broken
// backend, and do not move keys that a cache may be warm for. A timeout
// weighs more: it cost its caller the whole deadline, where a failure cost
// a fast error that a retry or a hedge absorbs, and five of them in a row
// are five deadlines lost to a hung backend before it is ejected (Envoy
// counts them with the failures, consecutive_local_origin_failure, also
// five). Two timeouts in a row with no answer between are rare for a
// healthy backend unless the deadline is below its usual latency, when it
// is failing that caller anyway.
const (
	EjectAfter         = 5
	EjectAfterTimeouts = 2
)

// The weights of a failure and of a timeout in Endpoint.streak: ejection
// is at failureWeight × EjectAfter = timeoutWeight × EjectAfterTimeouts.
const (
	failureWeight = 2
	timeoutWeight = 5
	ejectWeight   = failureWeight * EjectAfter
)

// Failing reports whether e's failures and timeouts in a row reach
// EjectAfter failures' worth.
func (e *Endpoint) Failing() bool { return e.streak.Load() >= ejectWeight }

// Ejected reports whether a call should pass e by: e is Failing and not
// due a probe. It claims the probe when one is due, so of the calls that
// find e failing, one per interval goes to it.
func (e *Endpoint) Ejected(now int64, interval float64) bool {
	if !e.Failing() {
		return false
	}
	if e.claimProbe(now, interval) {
		e.probes.Add(1)
		return false
	}
	return true
}

// addStreak adds w to e's failure streak, and counts an ejection when that
// takes the streak to the ejection threshold.
func (e *Endpoint) addStreak(w int64) {
	if n := e.streak.Add(w); n >= ejectWeight && n-w < ejectWeight {
		e.ejects.Add(1)
	}
}

// TryAcquire counts one more call in flight on e, started at now, if e has
// fewer than limit in flight, and returns the calls in flight with it and
// whether it did. A successful TryAcquire must be followed by Tracker.Pick
// with its count as the load. It adds first and takes the call back when
// that went over the limit, rather than looping on a compare-and-swap: a
// hot key's picks all land on one endpoint, and under contention a single
// add each beats retries; a concurrent pick may then see the endpoint full
// for an instant and spill, as the bound allows.
func (e *Endpoint) TryAcquire(limit, now int64, stream bool) (int64, bool) {
	n := e.acquire(now, stream)
	if n > limit {
		e.release(now, stream)
		return n - 1, false
	}
	return n, true
}

// acquire counts a call started at now in flight on e and returns the
// calls in flight with it.
func (e *Endpoint) acquire(now int64, stream bool) int64 {
	e.t.addTotal(1)
	if stream {
		return e.streams.Add(1) + int64(e.pending.Load()&pendingMask)
	}
	return int64(e.pending.Add(pendingDelta(now))&pendingMask) + e.streams.Load()
}

// release ends the count of a call started at start.
func (e *Endpoint) release(start int64, stream bool) {
	e.t.addTotal(-1)
	if stream {
		e.streams.Add(-1)
		return
	}
	e.pending.Add(-pendingDelta(start))
}

// Child is an endpoint as a picker snapshot sees it.
type Child struct {
	EP     *Endpoint
	Picker balancer.Picker    // the pickfirst child's picker
	State  connectivity.State // the pickfirst child's state
	Ready  bool               // State is READY
	// ExitIdle asks the pickfirst child to connect; it returns at once
	// (endpointsharding runs the request on a goroutine of its own). Nil
	// when the child states did not come from endpointsharding.
	ExitIdle func()
	// Weight is the endpoint's weight as its resolver gave it (see
	// WeightOf): 1 when it gave none.
	Weight uint32
	// cum is, in a ready set whose weights differ, the sum of the weights
	// of the children up to this one; 0 otherwise (see weigh).
	cum uint64
}

// Tracker holds the Endpoints of one balancer. It is the balancer's
// lbstats.Source.
type Tracker struct {
	// Now and Rand are the clock and randomness of the pickers; tests stub
	// them through the balancer packages' variables.
	Now  Clock
	Rand Rand

	// CountTotal makes the Tracker count the calls in flight over all
	// endpoints (InFlight), which a bounded-load picker needs. Set it
	// before the first pick: the count is a counter every pick writes.
	CountTotal bool

	params atomic.Pointer[Params]
	total  atomic.Int64 // in flight over all endpoints, when CountTotal
	// probeMark is the endpoints' pick count when the latest probe spent
	// the probe budget (see cheaper).
	probeMark atomic.Uint64

	mu  sync.Mutex
	eps map[string]*Endpoint
	// retired holds the counts of the endpoints Sync dropped, so that
	// MetricCounts never goes back when an endpoint leaves.
	retired counts
}

// counts sums the metric counts of endpoints.
type counts struct{ lbmetrics.Counts }

func (c *counts) add(ep *Endpoint) {
	c.Picks += ep.picks.Load()
	c.Ejections += ep.ejects.Load()
	c.Probes += ep.probes.Load()
}

// NewTracker returns an empty Tracker with default params.
func NewTracker(now Clock, rnd Rand) *Tracker {
	t := &Tracker{Now: now, Rand: rnd, eps: make(map[string]*Endpoint)}
	t.params.Store(DefaultParams())
	return t
}

// SetParams installs p for Done accounting and new endpoints.
func (t *Tracker) SetParams(p *Params) { t.params.Store(p) }

// Params returns the params in force.
func (t *Tracker) Params() *Params { return t.params.Load() }

// InFlight returns the number of calls in flight over all endpoints;
// CountTotal must be set.
func (t *Tracker) InFlight() int64 { return t.total.Load() }

func (t *Tracker) addTotal(d int64) {
	if t.CountTotal {
		t.total.Add(d)
	}
}

// Sync reconciles the Tracker with endpointsharding's children: it creates
// Endpoints for new addresses (with the default RTT as their estimate),
// resets the estimate of an endpoint that is READY again after a
// reconnection, drops those the resolver no longer lists, and returns every
// child sorted by address, and the READY ones, prepared for weighted picks
// when their weights differ.
//
// An endpoint dropped here gets no new calls from the picker built next;
// its calls in flight go on (grpc-go drains the connection of a removed
// SubConn) and account to its Endpoint, which they hold.
func (t *Tracker) Sync(children []endpointsharding.ChildState) (all, ready []Child) {
	now := t.Now()
	p := t.params.Load()
	t.mu.Lock()
	defer t.mu.Unlock()
	seen := make(map[string]bool, len(children))
	all = make([]Child, 0, len(children))
	for _, cs := range children {
		if len(cs.Endpoint.Addresses) == 0 {
			continue
		}
		addr := cs.Endpoint.Addresses[0].Addr
		if seen[addr] {
			continue
		}
		seen[addr] = true
		ep := t.eps[addr]
		if ep == nil {
			ep = &Endpoint{Addr: addr, t: t}
			ep.ewma.Init(p.DefaultRTT, now)
			t.eps[addr] = ep
		}
		st := cs.State.ConnectivityState
		if st == connectivity.Ready && ep.state != connectivity.Ready {
			// READY again after TRANSIENT_FAILURE, CONNECTING or IDLE:
			// pickfirst made a new connection, often to a restarted
			// process. The estimate described the old one, and after a
			// failure it is the penalty, which would keep the endpoint
			// out until a probe. Start over as a new endpoint: one call
			// at a time until the first response, which then replaces
			// the prior. A backend that accepts connections but still
			// fails is penalised again by that first call, and ejected
			// again after EjectAfter of them.
			ep.ewma.Init(p.DefaultRTT, now)
			ep.streak.Store(0)
		}
		ep.state = st
		ep.weight = WeightOf(cs.Endpoint)
		all = append(all, Child{
			EP:       ep,
			Picker:   cs.State.Picker,
			State:    ep.state,
			Ready:    ep.state == connectivity.Ready,
			ExitIdle: cs.ExitIdle,
			Weight:   ep.weight,
		})
	}
	for addr, ep := range t.eps {
		if !seen[addr] {
			t.retired.add(ep)
			delete(t.eps, addr)
		}
	}
	slices.SortFunc(all, func(a, b Child) int { return cmp.Compare(a.EP.Addr, b.EP.Addr) })
	for _, c := range all {
		if c.Ready {
			ready = append(ready, c)
		}
	}
	weigh(ready)
	return all, ready
}

// Published records that the picker built from the latest Sync has been
// sent to the channel: Endpoints reports the states of that Sync from now
// on.
func (t *Tracker) Published() {
	t.mu.Lock()
	for _, ep := range t.eps {
		ep.shown = ep.state
	}
	t.mu.Unlock()
}

// Endpoints implements lbstats.Source.
func (t *Tracker) Endpoints() []lbstats.Endpoint {
	now, tau := t.Now(), t.params.Load().Tau
	t.mu.Lock()
	out := make([]lbstats.Endpoint, 0, len(t.eps))
	for _, ep := range t.eps {
		out = append(out, lbstats.Endpoint{
			Addr:      ep.Addr,
			State:     ep.shown,
			InFlight:  ep.InFlight(),
			Picks:     ep.picks.Load(),
			Failures:  ep.failures.Load(),
			Latency:   time.Duration(ep.ewma.Mean()),
			Weight:    ep.weight,
			Estimate:  time.Duration(ep.Estimate(now, tau)),
			Ejected:   ep.Failing(),
			Ejections: ep.ejects.Load(),
			Probes:    ep.probes.Load(),
		})
	}
	t.mu.Unlock()
	slices.SortFunc(out, func(a, b lbstats.Endpoint) int { return cmp.Compare(a.Addr, b.Addr) })
	return out
}

// MetricCounts implements lbmetrics.Source: the counts of the endpoints
// the Tracker holds and of those it dropped.
func (t *Tracker) MetricCounts() lbmetrics.Counts {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.retired
	for _, ep := range t.eps {
		c.add(ep)
	}
	return c.Counts
}

// AppendEstimates implements lbmetrics.Source: each endpoint's estimate as
// pickers read it now (decayed, floored; the prior before its first
// answer).
func (t *Tracker) AppendEstimates(dst []lbmetrics.Estimate) []lbmetrics.Estimate {
	now, tau := t.Now(), t.params.Load().Tau
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, ep := range t.eps {
		dst = append(dst, lbmetrics.Estimate{Addr: ep.Addr, Latency: time.Duration(ep.Estimate(now, tau))})
	}
	return dst
}

// Pick asks c's child picker for a SubConn and, when it gives one, counts
// the call against c.EP, records it in ci's Attempts (when non-nil), and
// chains a Done that accounts the call's outcome. load is 0, or, when the
// caller already counted the call in flight with TryAcquire, the count
// TryAcquire returned. Allocation-free.
func (t *Tracker) Pick(c *Child, info balancer.PickInfo, now int64, ci *callinfo.Info, load int64) (balancer.PickResult, error) {
	res, err := c.Picker.Pick(info)
	ep := c.EP
	if err != nil {
		if load > 0 {
			ep.release(now, ci.Stream)
		}
		return res, err
	}
	if load == 0 {
		load = ep.acquire(now, ci.Stream)
	}
	ep.picks.Add(1)
	if !ci.Stream && now-ep.lastPick.Load() >= lastPickResolution {
		// Unary picks only (see due). Read before writing: at
		// thousands of picks a second an endpoint's last pick moves by
		// less than the resolution that its readers need, and the store
		// would bounce its cache line between the cores that pick.
		ep.lastPick.Store(now)
	}
	if c.cum != 0 && !ci.Stream {
		ep.rate.add(now) // the weighted tie-break's (see pickRate)
	}
	cl := callPool.Get().(*call)
	cl.ep, cl.childDone = ep, res.Done
	cl.outcome = outcome{start: now, load: load, stream: ci.Stream}
	if a := ci.Attempts; a != nil {
		cl.attempts, cl.ordinal = a, a.Add(ep.Addr)
	}
	res.Done = cl.done
	return res, nil
}

// call is the state of one picked call until its Done. Calls are pooled
// and each carries its Done as a method value bound once, so that Pick
// allocates nothing.
type call struct {
	ep *Endpoint
	outcome
	childDone func(balancer.DoneInfo)
	done      func(balancer.DoneInfo)
}

var callPool sync.Pool

func init() {
	// Set in init: New refers to finish, which refers to callPool.
	callPool.New = func() any {
		c := new(call)
		c.done = c.finish
		return c
	}
}

func (c *call) finish(info balancer.DoneInfo) {
	ep, childDone := c.ep, c.childDone
	if ep == nil {
		return // grpc-go calls Done once; be safe should that ever change.
	}
	o := c.outcome
	*c = call{done: c.done}
	callPool.Put(c)
	ep.finish(info, o)
	if childDone != nil {
		childDone(info)
	}
}

// outcome is what finish needs of a call.
type outcome struct {
	start    int64
	load     int64 // calls in flight on its endpoint when picked, it included
	stream   bool
	attempts *callinfo.Attempts // of a hedged call
	ordinal  int                // this attempt's, in attempts
}

// finish accounts a call's end. What each end says of the endpoint:
//
//   - a response (OK or an application error): a latency sample, and the
//     end of any failure streak;
//   - a failure code (UNAVAILABLE by default): a failure, and the failure
//     penalty as a sample (see DefaultFailurePenalty);
//   - DEADLINE_EXCEEDED: a timeout, counted like a failure, its duration a
//     lower bound of the latency (Envoy counts timeouts as locally
//     originated failures too);
//   - CANCELLED: the caller's choice, not the endpoint's fault, and only a
//     lower bound of the latency — except for a hedged attempt overtaken
//     by a later attempt that answered first: it had waited longer than a
//     peer's whole call, which counts towards ejection as a timeout does
//     (as Envoy counts a hedged request's per-try timeout);
//   - a pick grpc-go discarded (an empty DoneInfo: the SubConn stopped
//     being ready before the call went out): nothing; the pick is taken
//     back.
//
// A stream's lifetime and its ending are the caller's business, so for a
// stream only a failure code counts.
func (e *Endpoint) finish(info balancer.DoneInfo, o outcome) {
	t := e.t
	now := t.Now()
	p := t.params.Load()
	e.release(o.start, o.stream)
	err := info.Err
	if err == nil && !info.BytesSent && !info.BytesReceived {
		e.picks.Add(^uint64(0))
		return
	}
	code := status.Code(err)
	if o.stream {
		if err != nil && p.Failure(code) {
			e.fail(p, p.FailurePenalty, now)
		}
		return
	}
	rtt, m := float64(now-o.start), float64(o.load)
	switch {
	case err == nil:
		e.answered(o, rtt, m, now, p)
	case p.Failure(code):
		e.fail(p, max(rtt, p.FailurePenalty), now)
	case code == codes.DeadlineExceeded:
		e.failures.Add(1)
		e.addStreak(timeoutWeight)
		e.ewma.ObserveBound(rtt, m, now, p.Tau)
	case code == codes.Canceled:
		if o.attempts != nil && o.attempts.Overtaken(o.ordinal) {
			e.addStreak(failureWeight)
		}
		e.ewma.ObserveBound(rtt, m, now, p.Tau)
	default:
		e.answered(o, rtt, m, now, p)
	}
}

// answered accounts a response: a call picked with m calls in flight that
// took rtt.
func (e *Endpoint) answered(o outcome, rtt, m float64, now int64, p *Params) {
	if e.streak.Load() != 0 {
		// Read before writing, so that the common case (no streak) does
		// not write to a line other cores read.
		e.streak.Store(0)
	}
	e.ewma.Observe(rtt, m, now, p)
	if o.attempts != nil {
		o.attempts.Answered(o.ordinal)
	}
}

// fail accounts a call that ended in a failure code, with penalty as its
// sample.
func (e *Endpoint) fail(p *Params, penalty float64, now int64) {
	e.failures.Add(1)
	e.addStreak(failureWeight)
	e.ewma.ObservePenalty(penalty, now, p.Tau)
}

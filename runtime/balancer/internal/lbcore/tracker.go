// Package lbcore is the machinery lbclient's balancers share: per-endpoint
// load and latency accounting that outlives picker rebuilds (Tracker,
// Endpoint, EWMA), allocation-free pick accounting with a chained Done, the
// power-of-two-choices selection on cost, the hedging avoid-set, the JSON
// config fields common to the policies, and a Balancer that wires all of it
// over endpointsharding with pickfirst children.
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

	t        *Tracker
	inFlight atomic.Int64
	picks    atomic.Uint64
	failures atomic.Uint64
	streak   atomic.Int64 // failures in a row; a response ends the streak
	lastPick atomic.Int64 // clock reading of the latest pick (or probe claim)
	ewma     EWMA
	state    connectivity.State // the child's state at the latest Sync; guarded by t.mu
	// shown is the state Endpoints reports: state as of the latest picker
	// sent to the channel (see Tracker.Published), so that a READY
	// endpoint is never reported before the channel can pick it. Guarded
	// by t.mu.
	shown connectivity.State
}

// InFlight returns the number of calls under way on e.
func (e *Endpoint) InFlight() int64 { return e.inFlight.Load() }

// Picks returns the number of calls picked for e.
func (e *Endpoint) Picks() uint64 { return e.picks.Load() }

// Failures returns the number of calls on e that ended in a failure code.
func (e *Endpoint) Failures() uint64 { return e.failures.Load() }

// Estimate returns e's latency estimate (ns) as of now, decayed with tau
// (ns) and floored (see minEstimate).
func (e *Endpoint) Estimate(now int64, tau float64) float64 {
	return max(e.ewma.Estimate(now, tau), minEstimate)
}

// Cost is the peak-EWMA cost: estimate × (in-flight + 1). An endpoint
// that has not answered yet costs its prior (the default RTT) × in-flight:
// nothing while idle, so every new endpoint is probed at once whatever its
// peers' latency, and a default RTT per call as soon as a probe is out, so
// it is not flooded before its first response says what it is worth.
func (e *Endpoint) Cost(now int64, tau float64) float64 {
	n := float64(e.inFlight.Load())
	if !e.ewma.Sampled() {
		return e.ewma.Estimate(now, tau) * n
	}
	return e.Estimate(now, tau) * (n + 1)
}

// due reports whether e is due a probe: nothing in flight and no pick for
// interval ns.
func (e *Endpoint) due(now int64, interval float64) bool {
	return e.inFlight.Load() == 0 && float64(now-e.lastPick.Load()) >= interval
}

// claimProbe marks e picked at now if it is still due a probe, and reports
// whether it did, so that of concurrent picks that all found e due, one
// sends the probe.
func (e *Endpoint) claimProbe(now int64, interval float64) bool {
	last := e.lastPick.Load()
	return float64(now-last) >= interval && e.lastPick.CompareAndSwap(last, now)
}

// EjectAfter is how many failures in a row (calls ending in a failure
// code, UNAVAILABLE by default, with no response between them) eject an
// endpoint from key routing: CONSISTENT_HASH then sends its keys to their
// next endpoint on the ring, as it does while the endpoint is in
// TRANSIENT_FAILURE, except for one probe per probe interval, until a
// response ends the streak. Five is the default of Envoy's outlier
// detection (consecutive_5xx): one or two failures are an incident, not a
// broken backend, and do not move keys that a cache may be warm for.
const EjectAfter = 5

// Failing reports whether e has failed EjectAfter calls in a row.
func (e *Endpoint) Failing() bool { return e.streak.Load() >= EjectAfter }

// Ejected reports whether a keyed call should pass e by: e is Failing and
// not due a probe. It claims the probe when one is due, so of the calls
// that find e failing, one per interval goes to it.
func (e *Endpoint) Ejected(now int64, interval float64) bool {
	return e.Failing() && !e.claimProbe(now, interval)
}

// TryAcquire counts one more call in flight on e if e has fewer than limit
// in flight, atomically with the check, and reports whether it did. A
// successful TryAcquire must be followed by Tracker.Pick with acquired set.
func (e *Endpoint) TryAcquire(limit int64) bool {
	for {
		n := e.inFlight.Load()
		if n >= limit {
			return false
		}
		if e.inFlight.CompareAndSwap(n, n+1) {
			e.t.total.Add(1)
			return true
		}
	}
}

func (e *Endpoint) release() {
	e.inFlight.Add(-1)
	e.t.total.Add(-1)
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
}

// Tracker holds the Endpoints of one balancer. It is the balancer's
// lbstats.Source.
type Tracker struct {
	// Now and Rand are the clock and randomness of the pickers; tests stub
	// them through the balancer packages' variables.
	Now  Clock
	Rand Rand

	params atomic.Pointer[Params]
	total  atomic.Int64 // in flight over all endpoints
	// probeMark is the endpoints' pick count when the latest probe spent
	// the probe budget (see cheaper).
	probeMark atomic.Uint64

	mu  sync.Mutex
	eps map[string]*Endpoint
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

// InFlight returns the number of calls in flight over all endpoints.
func (t *Tracker) InFlight() int64 { return t.total.Load() }

// Sync reconciles the Tracker with endpointsharding's children: it creates
// Endpoints for new addresses (with the default RTT as their estimate),
// resets the estimate of an endpoint that is READY again after a
// reconnection, drops those the resolver no longer lists, and returns every
// child sorted by address, and the READY ones.
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
			// fails is penalised again by that first call.
			ep.ewma.Init(p.DefaultRTT, now)
		}
		ep.state = st
		all = append(all, Child{
			EP:       ep,
			Picker:   cs.State.Picker,
			State:    ep.state,
			Ready:    ep.state == connectivity.Ready,
			ExitIdle: cs.ExitIdle,
		})
	}
	for addr := range t.eps {
		if !seen[addr] {
			delete(t.eps, addr)
		}
	}
	slices.SortFunc(all, func(a, b Child) int { return cmp.Compare(a.EP.Addr, b.EP.Addr) })
	for _, c := range all {
		if c.Ready {
			ready = append(ready, c)
		}
	}
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
	now := t.Now()
	tau := t.params.Load().Tau
	t.mu.Lock()
	out := make([]lbstats.Endpoint, 0, len(t.eps))
	for _, ep := range t.eps {
		out = append(out, lbstats.Endpoint{
			Addr:     ep.Addr,
			State:    ep.shown,
			InFlight: ep.inFlight.Load(),
			Picks:    ep.picks.Load(),
			Failures: ep.failures.Load(),
			Latency:  time.Duration(ep.ewma.Estimate(now, tau)),
		})
	}
	t.mu.Unlock()
	slices.SortFunc(out, func(a, b lbstats.Endpoint) int { return cmp.Compare(a.Addr, b.Addr) })
	return out
}

// Pick asks c's child picker for a SubConn and, when it gives one, counts
// the call against c.EP, records it in a (when non-nil), and chains a Done
// that accounts the call's outcome. acquired says the caller already
// counted the call in flight with TryAcquire. Allocation-free.
func (t *Tracker) Pick(c *Child, info balancer.PickInfo, now int64, a *callinfo.Attempts, acquired bool) (balancer.PickResult, error) {
	res, err := c.Picker.Pick(info)
	if err != nil {
		if acquired {
			c.EP.release()
		}
		return res, err
	}
	ep := c.EP
	if !acquired {
		ep.inFlight.Add(1)
		t.total.Add(1)
	}
	ep.picks.Add(1)
	ep.lastPick.Store(now)
	if a != nil {
		a.Add(ep.Addr)
	}
	cl := callPool.Get().(*call)
	cl.ep, cl.start, cl.childDone = ep, now, res.Done
	res.Done = cl.done
	return res, nil
}

// call is the state of one picked call until its Done. Calls are pooled
// and each carries its Done as a method value bound once, so that Pick
// allocates nothing.
type call struct {
	ep        *Endpoint
	start     int64
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
	ep, start, childDone := c.ep, c.start, c.childDone
	if ep == nil {
		return // grpc-go calls Done once; be safe should that ever change.
	}
	c.ep, c.childDone = nil, nil
	callPool.Put(c)
	ep.finish(info.Err, start)
	if childDone != nil {
		childDone(info)
	}
}

// finish accounts a call that started at start and ended with err.
func (e *Endpoint) finish(err error, start int64) {
	t := e.t
	now := t.Now()
	p := t.params.Load()
	e.release()
	rtt := float64(now - start)
	if err == nil {
		e.responded()
		e.ewma.Observe(rtt, now, p.Tau)
		return
	}
	switch code := status.Code(err); {
	case p.Failure(code):
		e.failures.Add(1)
		e.streak.Add(1)
		e.ewma.ObservePenalty(max(rtt, p.FailurePenalty), now, p.Tau)
	case code == codes.Canceled || code == codes.DeadlineExceeded:
		e.ewma.ObserveAtLeast(rtt, now, p.Tau)
	default:
		e.responded()
		e.ewma.Observe(rtt, now, p.Tau)
	}
}

// responded ends a failure streak. It reads before it writes, so that the
// common case (no streak) does not write to a line other cores read.
func (e *Endpoint) responded() {
	if e.streak.Load() != 0 {
		e.streak.Store(0)
	}
}

package lbcore

import (
	"math"
	"runtime"
	"sync"
	"sync/atomic"
)

// EWMA is the latency estimate of one endpoint: an exponentially weighted
// moving average that is quicker to believe bad news than good, after
// Finagle's PeakEwma and linkerd2-proxy's peak_ewma, with the changes
// below. Its samples are latencies in nanoseconds on the Tracker's
// monotonic clock; beside them it keeps the load they were measured at
// (see Endpoint.Cost).
//
//   - Window: a response moves the estimate a share α of the way to it,
//     α = max(1/w, elapsed/probeInterval), elapsed being the time since
//     the previous sample, and w = PeakWindow (4) for a response slower
//     than the estimate, ResponseWindow (8) for a faster one. A busy
//     endpoint's estimate thus follows its last few responses, rising
//     twice as fast as it falls; an estimate that is a probe interval old
//     is stale, and the next response replaces it. Finagle and
//     linkerd2-proxy take a slower response as the new estimate at once
//     (the peak) and weigh a faster one by elapsed/tau alone. At the
//     thousands of responses per second of a busy client that holds every
//     peak — a GC pause, a descheduled goroutine — for seconds; and with
//     one serial caller a single stall made a healthy endpoint look
//     several times dearer than its identical peers, so it got no call to
//     show otherwise. Here a 10× slowdown still shows after one response
//     (the estimate more than triples), and a hung endpoint shows through
//     its calls in flight (Endpoint.Cost), not through its responses.
//   - Decay: between samples the estimate pickers read decays as
//     est·exp(-elapsed/tau) (Finagle's decay on read), so an endpoint
//     that gets no calls becomes attractive again by itself.
//   - Prior: the value given to Init stands for "never measured"; the
//     first evidence replaces it outright.
//   - Bounds: a call cut short (its deadline, the caller's cancel, a
//     hedge that answered first elsewhere) says only that the latency is
//     at least its duration. Such a lower bound raises the estimate at
//     once when it is above it, and replaces a prior; a penalty (a failed
//     call, ObservePenalty) stands for "this endpoint does not serve".
//     Neither is a measurement: the next response replaces the estimate
//     they set or raised, whatever its value, so a backend that recovers
//     is back at its first answer.
//
// Readers (Pick) are lock-free: est and stamp are published under a
// sequence counter (a seqlock) so that a reader never pairs an estimate
// with another sample's stamp. Writers (Done) serialise on a mutex private
// to the endpoint.
type EWMA struct {
	mu      sync.Mutex    // serialises writers
	bound   bool          // the estimate is a lower bound or a penalty; guarded by mu
	sampled atomic.Bool   // some evidence replaced the prior
	seq     atomic.Uint64 // odd while a writer publishes
	est     atomic.Uint64 // math.Float64bits of the estimate, in ns
	stamp   atomic.Int64  // clock reading of the last sample, in ns
	// mean is math.Float64bits of a plain moving average (weight
	// 1/ResponseWindow) of the latencies of responses, for the stats; 0
	// before the first response. Written under mu.
	mean atomic.Uint64
	// load is math.Float64bits of the moving average of the calls in
	// flight on the endpoint when the sampled calls were picked, each
	// included: the load the estimate was measured at (see Endpoint.Cost).
	// Written under mu, with the same weights as est.
	atLoad atomic.Uint64
}

// Init sets the estimate to the prior rtt as of now, without regard to the
// previous value. The Tracker uses it to give a new endpoint its default
// RTT.
func (e *EWMA) Init(rtt float64, now int64) {
	e.mu.Lock()
	e.bound = false
	e.sampled.Store(false)
	e.mean.Store(0)
	e.atLoad.Store(math.Float64bits(1))
	e.publish(rtt, now)
	e.mu.Unlock()
}

// publish stores est and stamp; e.mu must be held.
func (e *EWMA) publish(est float64, stamp int64) {
	if old := e.stamp.Load(); old > stamp {
		stamp = old // Done calls race to the lock; never step back.
	}
	e.seq.Add(1)
	e.est.Store(math.Float64bits(est))
	e.stamp.Store(stamp)
	e.seq.Add(1)
}

// load returns a consistent (estimate, stamp) pair without locking.
func (e *EWMA) load() (float64, int64) {
	for {
		s := e.seq.Load()
		if s&1 == 0 {
			est := math.Float64frombits(e.est.Load())
			stamp := e.stamp.Load()
			if e.seq.Load() == s {
				return est, stamp
			}
		}
		// A writer is between its two increments: a few instructions.
		runtime.Gosched()
	}
}

// decayedLocked returns the estimate as of now, decayed with tau, and the
// time (ns) since its sample; e.mu must be held.
func (e *EWMA) decayedLocked(now int64, tau float64) (est, elapsed float64) {
	est, stamp := e.load()
	elapsed = float64(max(now-stamp, 0))
	return est * decay(elapsed/tau), elapsed
}

// Sampled reports whether the estimate rests on evidence rather than on
// the prior given to Init.
func (e *EWMA) Sampled() bool { return e.sampled.Load() }

// Estimate returns the estimate as of now, decayed since the last sample
// with time constant tau (ns).
func (e *EWMA) Estimate(now int64, tau float64) float64 {
	est, stamp := e.load()
	if d := now - stamp; d > 0 {
		est *= decay(float64(d) / tau)
	}
	return est
}

// Mean returns the moving average of the latencies of responses (ns), 0
// before the first.
func (e *EWMA) Mean() float64 { return math.Float64frombits(e.mean.Load()) }

// Load returns the mean load the estimate was measured at: the calls in
// flight on the endpoint when its sampled calls were picked, each
// included; at least 1.
func (e *EWMA) Load() float64 { return math.Float64frombits(e.atLoad.Load()) }

// Observe records a response: a call picked with m calls in flight on the
// endpoint (itself included) that took x ns, ending at now. p gives tau
// and the probe interval.
//
// A response that arrives while another of the same endpoint is being
// recorded is dropped rather than queued behind it: at that rate the
// estimate follows the endpoint's responses anyway (it weighs the last
// few), and waiting on the lock is what would cost the callers. Failures,
// timeouts and the first evidence are never dropped.
func (e *EWMA) Observe(x, m float64, now int64, p *Params) {
	if e.sampled.Load() {
		if !e.mu.TryLock() {
			return
		}
	} else {
		e.mu.Lock()
	}
	cur, elapsed := e.decayedLocked(now, p.Tau)
	stale := min(elapsed/p.ProbeInterval, 1)
	if e.bound || !e.sampled.Load() {
		cur = x // replacing a bound, a penalty or the prior
	} else {
		// The sample weighs its share of the probe interval, and at
		// least 1/PeakWindow when above the estimate, 1/ResponseWindow
		// below (see ResponseWindow).
		w := ResponseWindow
		if x > cur {
			w = PeakWindow
		}
		cur += (x - cur) * max(stale, 1.0/float64(w))
	}
	if !e.sampled.Load() {
		e.atLoad.Store(math.Float64bits(max(m, 1)))
	} else {
		l := e.Load()
		e.atLoad.Store(math.Float64bits(max(l+(m-l)*max(stale, 1.0/ResponseWindow), 1)))
	}
	e.bound = false
	e.sampled.Store(true)
	e.publish(cur, now)
	if mean := e.Mean(); mean == 0 {
		e.mean.Store(math.Float64bits(x))
	} else {
		e.mean.Store(math.Float64bits(mean + (x-mean)/ResponseWindow))
	}
	e.mu.Unlock()
}

// ObserveBound records a call picked with m calls in flight (itself
// included) and cut short after x ns with no answer: its latency is at
// least x. It raises an estimate below x and replaces the prior; the next
// response replaces what it set.
func (e *EWMA) ObserveBound(x, m float64, now int64, tau float64) {
	e.mu.Lock()
	cur, _ := e.decayedLocked(now, tau)
	if !e.sampled.Load() {
		e.atLoad.Store(math.Float64bits(max(m, 1)))
	}
	if x > cur || !e.sampled.Load() {
		e.bound = true
		e.sampled.Store(true)
		e.publish(x, now)
	}
	e.mu.Unlock()
}

// ObservePenalty records a failed call as a sample of x ns (the failure
// penalty, or the call's duration if longer) taken at now. Like any sample
// above the estimate it is taken at once; unlike a response, it leaves the
// estimate to be replaced by the next response.
func (e *EWMA) ObservePenalty(x float64, now int64, tau float64) {
	e.mu.Lock()
	cur, _ := e.decayedLocked(now, tau)
	if !e.sampled.Load() {
		cur = 0 // the prior is no evidence
	}
	e.bound = true
	e.sampled.Store(true)
	e.publish(max(cur, x), now)
	e.mu.Unlock()
}

// decay returns exp(-x) for x >= 0. On the hot path x = elapsed/tau is
// tiny (a busy endpoint's stamp is microseconds old, tau is seconds):
// below 1e-4 (a millisecond of a 10 s tau) 1-x is within 5e-9 of it, and
// below 1/64 a degree-4 Taylor polynomial has a relative error under 1e-11
// (the first omitted term is x⁵/120), at a fraction of math.Exp's cost.
func decay(x float64) float64 {
	if x < 1e-4 {
		return 1 - x
	}
	if x < 1.0/64 {
		return 1 - x*(1-x*(0.5-x*(1.0/6-x*(1.0/24))))
	}
	return math.Exp(-x)
}

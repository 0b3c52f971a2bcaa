package lbcore

import (
	"math"
	"runtime"
	"sync"
	"sync/atomic"
)

// EWMA is a peak-sensitive, exponentially weighted moving average of
// latency, as in Finagle's PeakEwma and linkerd2-proxy's peak_ewma:
//
//   - a sample above the current estimate replaces it at once (the peak),
//     so an endpoint that turns slow is avoided after one slow response;
//   - a sample at or below it is blended in with weight
//     max(1-exp(-elapsed/tau), 1/ResponseWindow), where elapsed is the
//     time since the previous sample: the estimate falls back over tau or
//     over about ResponseWindow responses, whichever is sooner. Finagle and
//     linkerd2-proxy use the time share alone; at the thousands of
//     responses per second of a busy client that holds every peak (a GC
//     pause, a descheduled goroutine) for seconds, so the estimate of a
//     fast endpoint is its latest stall rather than its latency (see
//     ResponseWindow);
//   - between samples the estimate read by pickers decays as
//     est·exp(-elapsed/tau). Probing (Tracker.ChooseP2C) now re-measures an
//     idle endpoint once per probe interval, long before this decay moves
//     the estimate much (about 10% in 1 s with the 10 s default), so it is
//     no longer what brings an avoided endpoint back; it remains for an
//     endpoint that is never idle, hence never due a probe (a long stream
//     in flight), and whose estimate is high;
//   - the value given to Init is a prior, not a measurement: the first
//     sample replaces it outright. (Blending would keep a 30 ms default
//     alive for about tau on an endpoint that answers in 1 ms, since the
//     weight of a sample depends on time, not on the number of samples.)
//   - a failure penalty (ObservePenalty) is not a measurement either: it
//     stands for "this endpoint does not serve". The next real response
//     (Observe) replaces an estimate that a penalty set or raised, as the
//     first response replaces the prior, instead of blending with it,
//     which would keep a recovered endpoint at about the penalty for tau.
//     Failures in a row keep it penalised.
//
// Estimates are float64 nanoseconds on the Tracker's monotonic clock.
//
// Readers (Pick) are lock-free: est and stamp are published under a sequence
// counter (a seqlock) so that a reader never pairs an estimate with another
// sample's stamp. Writers (Done) serialise on a mutex private to the
// endpoint.
type EWMA struct {
	mu      sync.Mutex    // serialises writers
	primed  bool          // a sample has been observed; guarded by mu
	penal   bool          // a penalty is in the estimate; guarded by mu
	sampled atomic.Bool   // primed, for lock-free readers
	seq     atomic.Uint64 // odd while a writer publishes
	est     atomic.Uint64 // math.Float64bits of the estimate, in ns
	stamp   atomic.Int64  // clock reading of the last sample, in ns
}

// Init sets the estimate to rtt as of now, without regard to the previous
// value. The Tracker uses it to give a new endpoint its default RTT.
func (e *EWMA) Init(rtt float64, now int64) {
	e.mu.Lock()
	e.primed, e.penal = false, false
	e.sampled.Store(false)
	e.publish(rtt, now)
	e.mu.Unlock()
}

// publish stores est and stamp; e.mu must be held.
func (e *EWMA) publish(est float64, stamp int64) {
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

// Sampled reports whether the estimate rests on a measurement rather than
// on the prior given to Init.
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

// Observe records a latency sample of rtt ns taken at now: a response.
// It replaces an estimate that a failure penalty set or raised.
func (e *EWMA) Observe(rtt float64, now int64, tau float64) {
	e.mu.Lock()
	e.observeLocked(rtt, now, tau, e.penal)
	e.penal = false
	e.mu.Unlock()
}

// ObservePenalty records a failed call as a sample of rtt ns (the failure
// penalty, or the call's duration if longer) taken at now. Like any sample
// above the estimate it is taken at once; unlike a response, it leaves the
// estimate to be replaced by the next response.
func (e *EWMA) ObservePenalty(rtt float64, now int64, tau float64) {
	e.mu.Lock()
	e.observeLocked(rtt, now, tau, false)
	e.penal = true
	e.mu.Unlock()
}

// ObserveAtLeast records a censored sample: the call was cut short (by its
// deadline or by the client) after rtt ns, so the true latency is at least
// rtt. Such a sample can only raise the estimate; letting it pull the
// estimate down would reward an endpoint for the calls that gave up on it.
// It does not replace the prior either: it is not a measurement; nor does
// it clear a failure penalty.
func (e *EWMA) ObserveAtLeast(rtt float64, now int64, tau float64) {
	e.mu.Lock()
	if rtt > math.Float64frombits(e.est.Load()) {
		primed := e.primed
		e.observeLocked(rtt, now, tau, false)
		e.primed = primed
		e.sampled.Store(primed)
	}
	e.mu.Unlock()
}

// observeLocked records a sample; replace takes it whatever the estimate.
func (e *EWMA) observeLocked(rtt float64, now int64, tau float64, replace bool) {
	est := math.Float64frombits(e.est.Load())
	stamp := e.stamp.Load()
	if rtt > est || !e.primed || replace {
		est = rtt // the peak, the first measurement, or after a penalty: take it
		e.primed = true
		e.sampled.Store(true)
	} else {
		d := now - stamp
		if d < 0 {
			d = 0
		}
		// The sample weighs its share of the decay window, and at
		// least 1/ResponseWindow (see ResponseWindow).
		w := min(decay(float64(d)/tau), 1-1.0/ResponseWindow)
		est = est*w + rtt*(1-w)
	}
	if now > stamp {
		stamp = now // Done calls race to the lock; never step back.
	}
	e.publish(est, stamp)
}

// decay returns exp(-x) for x >= 0. On the hot path x = elapsed/tau is
// tiny (a busy endpoint's stamp is microseconds old, tau is seconds), and
// below 1/64 a degree-4 Taylor polynomial has a relative error under 1e-11
// (the first omitted term is x⁵/120) at a fraction of math.Exp's cost.
func decay(x float64) float64 {
	if x < 1.0/64 {
		return 1 - x*(1-x*(0.5-x*(1.0/6-x*(1.0/24))))
	}
	return math.Exp(-x)
}

// Package lbmetrics registers lbclient's metrics with grpc-go's metrics
// registry (google.golang.org/grpc/experimental/stats) and reports a
// balancer's counters through its channel's MetricsRecorder, so that they
// reach every stats handler that records grpc-go's own non-per-call metrics
// (gRFC A79), the OpenTelemetry plugin among them.
//
// A pick must not pay for metrics: a MetricsRecorder call takes its labels
// as a variadic slice, and the OpenTelemetry plugin builds an attribute set
// from them, so recording on every pick would allocate on the pick path.
// The balancers therefore count in atomics of their own (the Endpoint
// counters that Conn.Endpoints reports too), and a Reporter records the
// growth of those counts since its previous report: whenever a metrics
// reader collects (the Reporter is also the async reporter of the
// latency-estimate gauge, which the OpenTelemetry plugin calls on every
// collection, before it reads the counters), every FlushInterval in case
// no reader collects asynchronously, and when the balancer closes. A
// collection thus sees the counts as of that collection.
package lbmetrics

import (
	"sync"
	"time"

	estats "google.golang.org/grpc/experimental/stats"
)

// The label keys. grpc.target and grpc.method are grpc-go's own (gRFC A66,
// A79); the others are lbclient's.
const (
	// LabelTarget is the channel's canonical target, as in grpc-go's
	// metrics.
	LabelTarget = "grpc.target"
	// LabelPolicy is the registered name of the load-balancing policy
	// that picked: lbclient_peak_ewma, lbclient_consistent_hash, or the
	// grpc-go policy that lbclient_observe runs (round_robin, …).
	LabelPolicy = "lbclient.policy"
	// LabelEndpoint is an endpoint's first address.
	LabelEndpoint = "lbclient.endpoint"
	// LabelMethod is the full method name of a hedged method.
	LabelMethod = "grpc.method"
)

// The metrics. All are on by default: once a channel exports metrics,
// lbclient's come with grpc-go's.
var (
	// Picks counts the calls the picker sent to an endpoint.
	Picks = estats.RegisterInt64Count(estats.MetricDescriptor{
		Name:        "lbclient.lb.picks",
		Description: "EXPERIMENTAL. Number of calls the load-balancing policy sent to an endpoint (picks that grpc-go discarded before the call went out are taken back).",
		Unit:        "{pick}",
		Labels:      []string{LabelTarget, LabelPolicy},
		Default:     true,
	})
	// Ejections counts the times an endpoint was ejected: its failures
	// and timeouts in a row reached the ejection threshold.
	Ejections = estats.RegisterInt64Count(estats.MetricDescriptor{
		Name:        "lbclient.lb.ejections",
		Description: "EXPERIMENTAL. Number of times an endpoint was ejected after failures or timeouts in a row.",
		Unit:        "{ejection}",
		Labels:      []string{LabelTarget, LabelPolicy},
		Default:     true,
	})
	// Probes counts the calls sent to an avoided or ejected endpoint to
	// measure it again.
	Probes = estats.RegisterInt64Count(estats.MetricDescriptor{
		Name:        "lbclient.lb.probes",
		Description: "EXPERIMENTAL. Number of probe calls: calls sent to an avoided or ejected endpoint to measure it again.",
		Unit:        "{probe}",
		Labels:      []string{LabelTarget, LabelPolicy},
		Default:     true,
	})
	// LatencyEstimate is each endpoint's latency estimate as the picker
	// ranks endpoints by it, at the time of collection.
	LatencyEstimate = estats.RegisterInt64AsyncGauge(estats.MetricDescriptor{
		Name:        "lbclient.lb.latency_estimate",
		Description: "EXPERIMENTAL. Latency estimate of each endpoint that the picker ranks endpoints by (decayed while idle), at the time of collection.",
		Unit:        "us",
		Labels:      []string{LabelTarget, LabelPolicy, LabelEndpoint},
		Default:     true,
	})
	// HedgeAttempts counts the extra attempts hedged calls sent.
	HedgeAttempts = estats.RegisterInt64Count(estats.MetricDescriptor{
		Name:        "lbclient.hedge.attempts",
		Description: "EXPERIMENTAL. Number of hedged attempts: attempts sent beyond a call's first.",
		Unit:        "{attempt}",
		Labels:      []string{LabelTarget, LabelMethod},
		Default:     true,
	})
	// HedgeWins counts the calls answered with OK by a hedged attempt.
	HedgeWins = estats.RegisterInt64Count(estats.MetricDescriptor{
		Name:        "lbclient.hedge.wins",
		Description: "EXPERIMENTAL. Number of calls answered with OK by a hedged attempt rather than the first.",
		Unit:        "{call}",
		Labels:      []string{LabelTarget, LabelMethod},
		Default:     true,
	})
	// HedgeBudgetExhausted counts the hedged attempts not sent because
	// the hedging budget was spent.
	HedgeBudgetExhausted = estats.RegisterInt64Count(estats.MetricDescriptor{
		Name:        "lbclient.hedge.budget_exhausted",
		Description: "EXPERIMENTAL. Number of hedged attempts not sent because the hedging budget was spent.",
		Unit:        "{attempt}",
		Labels:      []string{LabelTarget, LabelMethod},
		Default:     true,
	})
)

// Counts are a balancer's cumulative counts since it was built.
type Counts struct {
	Picks, Ejections, Probes uint64
}

// Estimate is one endpoint's latency estimate.
type Estimate struct {
	Addr    string
	Latency time.Duration
}

// Source is what a balancer offers its Reporter.
type Source interface {
	// MetricCounts returns the balancer's cumulative counts. They may go
	// down (a discarded pick is taken back); the Reporter records only
	// growth.
	MetricCounts() Counts
	// AppendEstimates appends the latency estimate of each endpoint that
	// has one to dst.
	AppendEstimates(dst []Estimate) []Estimate
}

// FlushInterval is how often a Reporter records its counts when no reader
// collects in between. A package variable so that tests can shorten it.
var FlushInterval = 5 * time.Second

// Reporter records one balancer's metrics through its channel's
// MetricsRecorder. Its methods are safe for concurrent use.
type Reporter struct {
	rec            estats.MetricsRecorder
	src            Source
	target, policy string
	unregister     func()

	mu     sync.Mutex
	sent   Counts // what has been recorded
	closed bool
	timer  *time.Timer
	buf    []Estimate
}

// Start returns a Reporter of src's metrics to rec, labelled with target
// (the channel's canonical target) and policy (the policy's registered
// name), and starts reporting. Close stops it. A nil rec gives a nil
// Reporter, on which every method does nothing.
func Start(rec estats.MetricsRecorder, target, policy string, src Source) *Reporter {
	if rec == nil {
		return nil
	}
	r := &Reporter{rec: rec, src: src, target: target, policy: policy}
	r.mu.Lock()
	r.timer = time.AfterFunc(FlushInterval, r.tick)
	r.mu.Unlock()
	r.unregister = rec.RegisterAsyncReporter(r, LatencyEstimate)
	return r
}

// SetPolicy changes the policy label, for a parent whose child policy
// changed. Counts recorded so far stay with the old label.
func (r *Reporter) SetPolicy(policy string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if policy != r.policy {
		r.flushLocked()
		r.policy = policy
	}
}

func (r *Reporter) tick() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	r.flushLocked()
	r.timer.Reset(FlushInterval)
}

// Flush records the growth of the counts since the last report.
func (r *Reporter) Flush() {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.flushLocked()
}

func (r *Reporter) flushLocked() {
	c := r.src.MetricCounts()
	r.record(Picks, c.Picks, &r.sent.Picks)
	r.record(Ejections, c.Ejections, &r.sent.Ejections)
	r.record(Probes, c.Probes, &r.sent.Probes)
}

func (r *Reporter) record(h *estats.Int64CountHandle, now uint64, sent *uint64) {
	if now > *sent {
		h.Record(r.rec, int64(now-*sent), r.target, r.policy)
		*sent = now
	}
}

// Report implements estats.AsyncMetricReporter: it records the counts, so
// that the collection that called it sees them, and each endpoint's latency
// estimate.
func (r *Reporter) Report(ar estats.AsyncMetricsRecorder) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.flushLocked()
	r.buf = r.src.AppendEstimates(r.buf[:0])
	for _, e := range r.buf {
		LatencyEstimate.Record(ar, e.Latency.Microseconds(), r.target, r.policy, e.Addr)
	}
	return nil
}

// Close records the last counts and stops reporting.
func (r *Reporter) Close() {
	if r == nil {
		return
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.flushLocked()
	r.closed = true
	r.timer.Stop()
	r.mu.Unlock()
	// Outside mu: unregistering waits for a collection under way, which
	// may be waiting for mu in Report.
	r.unregister()
}

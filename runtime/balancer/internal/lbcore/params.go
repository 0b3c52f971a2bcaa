package lbcore

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"
)

// Defaults and bounds of the latency model shared by lbclient's balancers.
const (
	// DefaultDecayWindow is tau, the EWMA's time constant: a sample's weight
	// falls to 1/e after tau. 10 s is linkerd2-proxy's default (and
	// Finagle's). It governs an endpoint that answers fewer than about
	// ResponseWindow calls per tau (a quiet client), and the decay of an
	// estimate between samples; a busy endpoint's estimate follows its
	// last ResponseWindow responses instead (see ResponseWindow), so tau
	// need not shrink with the call rate.
	DefaultDecayWindow = 10 * time.Second
	// DefaultRTT is the prior of an endpoint's latency, before its first
	// response. 30 ms is linkerd2-proxy's default: pessimistic for
	// in-cluster RPCs (typically 1-10 ms). Until an endpoint has answered,
	// its cost is DefaultRTT × in-flight (see Endpoint.Cost): zero while
	// idle, so a new endpoint gets a probe at once, then 30 ms per call in
	// flight, so further calls go to it only while its peers are dearer.
	// New endpoints are thus probed a call or two at a time, never
	// flooded, and their first response replaces the prior with a
	// measurement.
	DefaultRTT = 30 * time.Millisecond
	// DefaultFailurePenalty is the latency sample a failed call counts as
	// (or its real duration, if longer), as with Finagle's failure penalty.
	// A backend that fails fast would otherwise look like the fastest one
	// and attract all traffic. 1 s is two orders of magnitude above typical
	// RPC latencies, so after a failure the endpoint loses its place to any
	// healthy peer; it is probed (see DefaultProbeInterval), and the
	// first success replaces the penalty (it is not blended with it), so a
	// backend that recovered is back at once. Set it well above the
	// service's normal latency.
	DefaultFailurePenalty = time.Second

	// DefaultProbeInterval is how long an idle endpoint may go without a
	// pick before it is due a probe: one call, at no cost, whatever its
	// estimate (see Tracker.ChooseP2C). Peak-EWMA alone re-measures an
	// endpoint only once its decaying estimate falls below its peers':
	// after a failure (an estimate of the 1 s penalty against ~1 ms peers)
	// that is tau × ln(1000) ≈ 70 s of no traffic, though the backend may
	// have recovered a second later. Probing bounds that wait to about one
	// interval, and the probe's response replaces the stale estimate (see
	// EWMA). 250 ms brings back a backend that was slow only for its first
	// few calls (a cold start: JIT, caches, pools) within a second or two
	// even for a serial caller, whose probes are its only way to learn that
	// the backend is fast now, at four calls a second to a backend that is
	// really slow. An endpoint that keeps failing or timing out is probed
	// less and less often, down to one probe every 4 s (see
	// Endpoint.probeInterval), because a probe of a hung backend costs a
	// caller its whole deadline. A quiet client, with few calls per
	// interval, would send a large share of them as probes; a probe budget
	// of one pick in minPicksPerProbe bounds that share, and such a client
	// re-measures an avoided endpoint every minPicksPerProbe calls instead.
	DefaultProbeInterval = 250 * time.Millisecond

	// ResponseWindow bounds the EWMA's memory in responses: a sample below
	// the estimate weighs at least 1/ResponseWindow, however little time
	// passed since the previous one, so the estimate forgets a peak after
	// about ResponseWindow·ln(peak/latency) responses that contradict it
	// (about 18 for a 10× stall) instead of after tau.
	//
	// Why: with the time-weighted EWMA alone, an endpoint answering 1000
	// calls a second gives each sample a weight of 1e-4 (1 ms / 10 s), and
	// a peak is taken at once, so the estimate is the largest recent stall
	// for seconds. Measured with 4 backends (three 1 ms, one 10 ms) and 8
	// closed-loop callers on a 2-core machine, the fast endpoints' estimates
	// stood at 6-7 ms, within 2× of the slow one's 12 ms, and the slow one
	// won a P2C round whenever the fast one drawn had 3 or 4 calls in
	// flight: 3% of calls, so p99 was the slow backend's latency.
	//
	// A slow response weighs twice as much (PeakWindow), so the window
	// only needs to be long enough that a few fast responses do not hide
	// a slow or intermittently slow endpoint: with 8, one 1 ms response
	// moves a 10 ms estimate to 8.9 ms, and an endpoint slow one call in
	// four keeps an estimate above its mean latency. Shorter windows forget
	// stalls faster still but turn the estimate into the last response or
	// two. 16 and 32 also help (slow share 1.1% and 1.3% in the scenario
	// above, against 0.4-0.9% for 8), but leave fast estimates inflated
	// longer.
	ResponseWindow = 8

	// PeakWindow is ResponseWindow for a response slower than the
	// estimate: it weighs at least 1/PeakWindow, so the estimate rises
	// twice as fast as it falls, and a single stall of a healthy endpoint
	// (a GC pause, a descheduled goroutine) raises it a quarter of the way
	// rather than all of it (see EWMA). A 10× slowdown still more than
	// triples the estimate on its first response.
	PeakWindow = 4

	minDecayWindow    = time.Millisecond
	maxDecayWindow    = time.Hour
	maxDefaultRTT     = time.Minute
	maxFailurePenalty = time.Hour
	minProbeInterval  = 10 * time.Millisecond
	maxProbeInterval  = time.Hour

	// minEstimate floors the decayed estimate that pickers use. An endpoint
	// left busy but unsampled for many tau (a long stream in flight; an
	// idle one gets probes) has an estimate of ~0, which would make its
	// cost 0 whatever its in-flight count (Finagle special-cases the same
	// hole). Below 100 µs latency differences are scheduling noise; the
	// floor keeps in-flight meaningful, so the cost degrades to least
	// in-flight rather than to "always this one".
	minEstimate = float64(100 * time.Microsecond)
)

// DefaultFailureCodes are the status codes that count as failures of the
// endpoint: UNAVAILABLE is what gRPC reports when the backend cannot be
// reached, resets the connection, is draining, or sheds load — a fault of
// the endpoint, not of the request. DEADLINE_EXCEEDED and CANCELLED are not
// failure codes by default: they take no failure penalty, since the
// deadline and the cancellation are the client's choice. They still count
// (see Endpoint.finish): their duration is a lower bound of the latency,
// and a timeout counts towards ejection, as a cancelled hedged attempt
// that a later attempt overtook does. INTERNAL, UNKNOWN and the
// application codes describe the request, and a backend that answers them
// fast is healthy. Add codes through the config's failureCodes.
var DefaultFailureCodes = []codes.Code{codes.Unavailable}

// Duration is a time.Duration that reads from JSON as a Go duration string
// ("250ms", "10s"; "1.5s" as in protobuf JSON also parses).
type Duration time.Duration

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"250ms\", got %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// LatencyConfig holds the JSON fields shared by lbclient's balancers. Each
// balancer's LBConfig embeds it. Zero values mean the default.
type LatencyConfig struct {
	// DecayWindow is the EWMA time constant tau. Default 10s; bounds
	// [1ms, 1h].
	DecayWindow Duration `json:"decayWindow,omitempty"`
	// DefaultRTT is the estimate of an endpoint with no response yet.
	// Default 30ms; bounds (0, 1m].
	DefaultRTT Duration `json:"defaultRtt,omitempty"`
	// FailurePenalty is the latency sample a failed call counts as.
	// Default 1s; bounds (0, 1h].
	FailurePenalty Duration `json:"failurePenalty,omitempty"`
	// ProbeInterval is how long an idle endpoint may go without a pick
	// before it gets a probe call whatever its estimate, doubled for each
	// failure in a row after the first, up to 16×. Default 250ms; bounds
	// [10ms, 1h].
	ProbeInterval Duration `json:"probeInterval,omitempty"`
	// FailureCodes lists the canonical status code names that count as
	// failures. Default ["UNAVAILABLE"]; OK is not allowed; an explicit
	// empty list turns failure accounting off, and is marshalled as [] so
	// that it stays off when grpc-go marshals the parsed config and parses
	// it again.
	FailureCodes []string `json:"failureCodes,omitzero"`
	// StatsID names the lbstats.Sink the balancer publishes its endpoints
	// to; "" publishes nowhere.
	StatsID string `json:"statsId,omitempty"`
}

// Params is the validated, ready-to-use form of a LatencyConfig.
type Params struct {
	Tau            float64 // ns
	DefaultRTT     float64 // ns
	FailurePenalty float64 // ns
	ProbeInterval  float64 // ns
	FailureMask    uint32  // bit c set: code c is a failure
}

// Failure reports whether c counts as a failure of the endpoint.
func (p *Params) Failure(c codes.Code) bool {
	return c < 32 && p.FailureMask&(1<<c) != 0
}

// DefaultParams returns the Params of an empty LatencyConfig.
func DefaultParams() *Params {
	p, err := (&LatencyConfig{}).Params()
	if err != nil {
		panic(err)
	}
	return p
}

// Params validates c, applies defaults and returns the Params. The error
// names the JSON field; callers prefix it with the policy name.
func (c *LatencyConfig) Params() (*Params, error) {
	tau, err := bounded("decayWindow", c.DecayWindow, DefaultDecayWindow, minDecayWindow, maxDecayWindow)
	if err != nil {
		return nil, err
	}
	rtt, err := bounded("defaultRtt", c.DefaultRTT, DefaultRTT, 1, maxDefaultRTT)
	if err != nil {
		return nil, err
	}
	pen, err := bounded("failurePenalty", c.FailurePenalty, DefaultFailurePenalty, 1, maxFailurePenalty)
	if err != nil {
		return nil, err
	}
	probe, err := bounded("probeInterval", c.ProbeInterval, DefaultProbeInterval, minProbeInterval, maxProbeInterval)
	if err != nil {
		return nil, err
	}
	p := &Params{Tau: float64(tau), DefaultRTT: float64(rtt), FailurePenalty: float64(pen), ProbeInterval: float64(probe)}
	if c.FailureCodes == nil {
		for _, code := range DefaultFailureCodes {
			p.FailureMask |= 1 << code
		}
	}
	for _, name := range c.FailureCodes {
		var code codes.Code
		if err := code.UnmarshalJSON([]byte(strconv.Quote(name))); err != nil {
			return nil, fmt.Errorf("failureCodes: %q is not a canonical status code name such as \"UNAVAILABLE\"", name)
		}
		if code == codes.OK {
			return nil, fmt.Errorf("failureCodes: %q cannot be a failure", name)
		}
		p.FailureMask |= 1 << code
	}
	return p, nil
}

// bounded returns d, or def when d is zero, and checks lo <= result <= hi.
func bounded(field string, d Duration, def, lo, hi time.Duration) (time.Duration, error) {
	v := time.Duration(d)
	if v == 0 {
		return def, nil
	}
	if v < lo || v > hi {
		return 0, fmt.Errorf("%s: %v out of range [%v, %v]", field, v, lo, hi)
	}
	return v, nil
}

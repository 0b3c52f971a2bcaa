// Package peakewma implements lbclient's PEAK_EWMA load-balancing policy,
// registered with grpc-go as "lbclient_peak_ewma".
//
// Each call goes to one of two READY endpoints drawn at random (power of
// two choices), the one whose cost — the latency a call sent there now is
// expected to take — is lower. The rules, and where they come from (the
// details are on lbcore.Endpoint.Cost, lbcore.EWMA and
// lbcore.Tracker.ChooseP2C):
//
//   - Latency is a peak-sensitive EWMA, after Finagle's and
//     linkerd2-proxy's peak-EWMA: quicker to believe a slow response (a
//     quarter of the way per response) than a fast one (an eighth), and an
//     idle endpoint's estimate decays (tau 10 s) so that it is tried again.
//     (Taking a slow response at once, as they do, let one stall park a
//     healthy endpoint.) Latency is measured from pick to Done on a
//     monotonic clock.
//   - Latency is load-normalised: a response's latency is divided by the
//     calls that were in flight on its endpoint when it was picked, and
//     cost is that estimate × (in flight + 1). The classic cost multiplies
//     a latency that already holds the endpoint's queueing by its load once
//     more, which makes a busy fast endpoint look dearer than an idle slow
//     one.
//   - Calls in flight are evidence: an endpoint costs at least the mean age
//     of its unary calls in flight, so calls stop piling onto one that
//     hangs.
//   - A failure code (UNAVAILABLE by default) counts as a sample of the
//     failure penalty (1 s), as Finagle's failure accrual does; a timeout
//     (DEADLINE_EXCEEDED) and a hedged attempt overtaken by a later one
//     count as lower bounds of the latency; the caller's own cancel is only
//     a lower bound. Five failures or timeouts in a row eject the endpoint
//     (Envoy's outlier detection defaults), and its next answer brings it
//     back.
//   - Streams count in the load while open, and their lifetime is never a
//     latency sample; only a failure code at their end counts (lbclient's
//     runtime marks streams; used without it, a stream is taken for a
//     unary call).
//   - Weights (grpc-go's experimental/balancer/weight attribute, which
//     lbclient's file and etcd resolvers and xDS set) are capacity, not
//     speed: pairs are drawn in proportion to weight, and between
//     endpoints of equal cost calls in flight and recent picks count per
//     unit of weight, so equal backends of weights 1 and 3 take a quarter
//     and three quarters of the calls; a heavy endpoint that is slow is
//     avoided all the same (see lbcore's weights.go).
//   - Probes: an endpoint avoided for a probe interval (250 ms; doubled for
//     each failure in a row after the first, up to 4 s) gets one call, and
//     its answer replaces the stale estimate, so a backend that was slow
//     while cold, or failed and recovered, is back within a few intervals.
//     Probes are at most one call in 20, so a quiet client does not spend
//     its calls on the endpoints it avoids.
//   - Differences within noise do not decide: costs within 1.5× of each
//     other go by calls in flight, then take turns, so identical backends
//     share one serial caller's calls instead of the one whose estimate is
//     lowest by noise taking them all; beyond that the cheaper wins all but
//     always (against a 3× costlier endpoint, 996 draws in 1000).
//   - An endpoint that is READY again after a reconnection starts over as a
//     new one, its estimate and failures forgotten; a new endpoint is
//     tried at once, one call at a time until it answers.
//
// The policy is a thin layer over grpc-go's endpointsharding with pickfirst
// children, like round_robin. Import the package for its side effect and
// select it through the service config:
//
//	{"loadBalancingConfig": [{"lbclient_peak_ewma": {}}]}
//
// The fields of the config are documented on LBConfig.
package peakewma

import (
	rand "math/rand/v2"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/grpclog"

	"github.com/lbclient/lbclient/runtime/balancer/internal/lbcore"
)

// Name is the name the policy is registered under.
const Name = "lbclient_peak_ewma"

// logger is the policy's grpclog component.
var logger = grpclog.Component(Name)

var (
	// nowNanos and randUint64 are the policy's clock and randomness;
	// tests replace them before building a balancer.
	nowNanos   lbcore.Clock = lbcore.MonotonicClock
	randUint64 lbcore.Rand  = rand.Uint64
)

func init() {
	balancer.Register(builder{})
}

type builder struct{}

func (builder) Name() string { return Name }

func (builder) Build(cc balancer.ClientConn, opts balancer.BuildOptions) balancer.Balancer {
	return lbcore.NewBalancer(Name, logger, cc, opts, pickerBuilder{}, defaultConfig(), nowNanos, randUint64)
}

type pickerBuilder struct{}

func (pickerBuilder) Build(cfg lbcore.Config, t *lbcore.Tracker, _, ready []lbcore.Child) balancer.Picker {
	return &picker{t: t, ready: ready, params: cfg.LatencyParams()}
}

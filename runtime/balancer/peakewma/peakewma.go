// Package peakewma implements lbclient's PEAK_EWMA load-balancing policy,
// registered with grpc-go as "lbclient_peak_ewma".
//
// Each call goes to the cheaper of two READY endpoints drawn at random
// (power of two choices), where an endpoint's cost is a peak-sensitive
// EWMA of its latency times its calls in flight plus one, as in Finagle's
// and linkerd2-proxy's peak-EWMA balancers. Latency is measured from pick to
// Done on a monotonic clock. A call that fails with a failure code
// (UNAVAILABLE by default) counts as a latency sample of the failure
// penalty, so a half-broken backend quickly loses most of its traffic and
// wins it back as it succeeds again: passive outlier ejection. An ejected
// endpoint is not starved: once idle for probeInterval (1s) it gets one
// probe call, and the first success replaces the penalty, so a backend that
// recovered carries its share again within about a probe interval. Probes
// are at most one call in 20, so a quiet client (a few calls a second)
// does not spend a large share of its calls on the endpoints it avoids. An
// endpoint that is READY again after a reconnection starts over as a new
// one, its old estimate forgotten.
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

	"github.com/lbclient/lbclient/runtime/balancer/internal/lbcore"
)

// Name is the name the policy is registered under.
const Name = "lbclient_peak_ewma"

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
	return lbcore.NewBalancer(Name, cc, opts, pickerBuilder{}, defaultConfig(), nowNanos, randUint64)
}

type pickerBuilder struct{}

func (pickerBuilder) Build(cfg lbcore.Config, t *lbcore.Tracker, _, ready []lbcore.Child) balancer.Picker {
	return &picker{t: t, ready: ready, params: cfg.LatencyParams()}
}

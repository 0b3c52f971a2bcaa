// Package consistenthash implements lbclient's CONSISTENT_HASH
// load-balancing policy, registered with grpc-go as
// "lbclient_consistent_hash".
//
// A call's key is the hash key on its context (callinfo.HashKey: generated
// clients put the annotated request field there, hand-written calls use
// runtime.WithHashKey). Keys map to endpoints through a ring of virtual
// nodes placed by xxhash64, stable across processes and releases, so every
// client of a fleet sends a key to the same backend and adding or removing
// one of N endpoints moves about 1/N of the keys.
//
// Loads are bounded as in "Consistent Hashing with Bounded Loads"
// (Mirrokni, Thorup, Zadimoghaddam, 2016): no endpoint takes more than
// ceil(c × (in-flight + 1) / N) calls in flight, with c the balanceFactor;
// a call whose endpoint is full walks the ring to the next endpoint with
// room. Under light load a key always lands on its own endpoint; a hot key
// spills to its ring successors instead of overloading one backend.
//
// Only READY endpoints hold keys: a key whose endpoint is connecting, idle
// or in TRANSIENT_FAILURE goes to the next READY endpoint on the ring, and
// comes back once its endpoint is READY. (gRFC A42's ring_hash instead
// queues a key's calls while its endpoint connects; against a half-open
// backend, one that accepts TCP and never speaks HTTP/2, that stalled its
// keys for grpc's 20 s connect timeout.)
//
// A backend that stays connected but fails is ejected from key routing
// after lbcore.EjectAfter (5) calls in a row that end in a failure code
// (UNAVAILABLE by default) or are overtaken by a later hedged attempt, or
// lbcore.EjectAfterTimeouts (2) that run out of time (DEADLINE_EXCEEDED: a
// hung backend): its keys go to
// their ring successors as if it were not READY, one call per
// probeInterval still tries it, and its first answer brings its keys back
// (passive outlier ejection, as Envoy's consecutive_5xx and
// consecutive_local_origin_failure).
//
// Calls without a key are never refused: they go to the cheaper of two
// random READY endpoints on peak-EWMA cost, as under PEAK_EWMA.
//
// Endpoint weights (grpc-go's experimental/balancer/weight attribute, set
// by lbclient's file and etcd resolvers and by xDS) scale an endpoint's
// share of the ring — virtualNodes × its weight nodes, so that a weight
// change moves keys only to or from that endpoint — and its load bound,
// ceil(c × (in-flight + 1) × weight / total READY weight). An endpoint's
// share of the keys deviates from its weight's share by about
// 1/sqrt(its nodes): 8% at the default 160 for weight 1; raise
// virtualNodes where the split must be closer.
//
// The policy is a thin layer over grpc-go's endpointsharding with pickfirst
// children. Import the package for its side effect and select it through
// the service config:
//
//	{"loadBalancingConfig": [{"lbclient_consistent_hash": {}}]}
//
// The fields of the config are documented on LBConfig.
package consistenthash

import (
	rand "math/rand/v2"
	"slices"
	"sync/atomic"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/grpclog"

	"github.com/lbclient/lbclient/runtime/balancer/internal/lbcore"
)

// Name is the name the policy is registered under.
const Name = "lbclient_consistent_hash"

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
	return lbcore.NewBalancer(Name, logger, cc, opts, &pickerBuilder{}, defaultConfig(), nowNanos, randUint64)
}

// pickerBuilder keeps the last ring: most state changes (a child going
// CONNECTING, READY) leave the endpoints, their weights and the virtual
// node count as they were, and the ring is reused.
type pickerBuilder struct {
	addrs   []string
	weights []uint32
	vnodes  int
	ring    *ring
}

// CountsTotal implements lbcore.TotalCounter: the load bound reads the
// calls in flight over all endpoints.
func (*pickerBuilder) CountsTotal() bool { return true }

func (pb *pickerBuilder) Build(c lbcore.Config, t *lbcore.Tracker, all, ready []lbcore.Child) balancer.Picker {
	cfg := c.(*LBConfig)
	addrs := make([]string, len(all))
	weights := make([]uint32, len(all))
	for i, ch := range all {
		addrs[i], weights[i] = ch.EP.Addr, ch.Weight
	}
	if pb.ring == nil || pb.vnodes != cfg.vnodes() || !slices.Equal(pb.addrs, addrs) || !slices.Equal(pb.weights, weights) {
		pb.ring = newRing(addrs, weights, cfg.vnodes())
		pb.addrs, pb.weights, pb.vnodes = addrs, weights, cfg.vnodes()
	}
	var readyWeight uint64
	for _, ch := range ready {
		readyWeight += uint64(ch.Weight)
	}
	return &picker{
		t:           t,
		all:         all,
		ready:       ready,
		ring:        pb.ring,
		factor:      cfg.factor(),
		readyWeight: float64(readyWeight),
		params:      cfg.params,
		kicked:      make([]atomic.Bool, len(all)),
	}
}

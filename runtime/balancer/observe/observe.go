// Package observe is a thin parent balancer that runs one of grpc-go's own
// policies (pick_first, round_robin, least_request_experimental,
// weighted_round_robin, or any other registered one) as its child and adds
// the two things lbclient's own balancers offer:
//
//   - per-endpoint counters published through lbstats (picks, calls in
//     flight, failures, a latency estimate, connectivity state), which
//     runtime.Conn.Endpoints reports;
//   - the avoid set of hedged calls (callinfo.AttemptsFrom): when the child
//     picks an endpoint that an earlier attempt of the same call already
//     went to, observe asks the child again.
//
// Its config, in the service config's loadBalancingConfig list:
//
//	{"lbclient_observe": {
//	    "statsId": "lbstats-1",
//	    "childPolicy": [{"round_robin": {}}]
//	}}
//
// "childPolicy" is required and has the loadBalancingConfig list form: the
// first entry whose policy is registered is used, with its own config.
// "statsId" is optional; without it nothing is published. The parsed config
// marshals back to JSON with the chosen child as the only entry, so observe
// can run under parents that marshal their child's config and parse it again
// (grpc-go's random_subsetting_experimental, and the xDS balancers when a
// cluster's policy names lbclient_observe).
//
// What is published, per endpoint of the resolver (Addr is its first
// address; SubConns to addresses no endpoint names are listed after):
//
//   - Picks: calls the picker sent there. A pick grpc-go throws away
//     because the SubConn stopped being ready (its Done gets an empty
//     DoneInfo) is taken back.
//   - InFlight: picks whose Done has not run yet.
//   - Failures: calls that ended with UNAVAILABLE, RESOURCE_EXHAUSTED,
//     INTERNAL or DATA_LOSS (see classify).
//   - Latency: an EWMA (weight 1/8) of the time from pick to Done of the
//     calls the endpoint answered (OK or an application error); failures,
//     deadlines and cancellations do not feed it.
//   - State: READY if one of its SubConns is READY (and SERVING, when
//     health checked), else CONNECTING, IDLE, TRANSIENT_FAILURE in that
//     order; IDLE without SubConns.
//
// The picks are also reported as the lbclient.lb.picks metric through the
// channel's MetricsRecorder (see lbmetrics), labelled with the child's
// policy name; grpc-go's pickers keep no latency estimate, so observe
// reports none.
//
// The hot path adds no allocation: each pick's Done is a pooled value
// with its func bound once.
//
// observe wraps the child's SubConns (like grpc-go's outlier detection
// does) so that each picked SubConn leads straight to its endpoint's
// counters, and so that health updates (client-side health checking, which
// pickfirst children receive through their health listener) are visible in
// the published state. The child's pickers are wrapped; everything else is
// forwarded unchanged.
package observe

import (
	"encoding/json"
	"fmt"
	"sync"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/base"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/grpclog"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/serviceconfig"

	"github.com/lbclient/lbclient/runtime/internal/lbmetrics"
	"github.com/lbclient/lbclient/runtime/internal/lbstats"
)

// Name is the name under which the policy is registered.
const Name = "lbclient_observe"

var logger = grpclog.Component(Name)

func init() {
	balancer.Register(builder{})
}

type builder struct{}

func (builder) Name() string { return Name }

func (builder) ParseConfig(js json.RawMessage) (serviceconfig.LoadBalancingConfig, error) {
	return parseConfig(js)
}

func (builder) Build(cc balancer.ClientConn, opts balancer.BuildOptions) balancer.Balancer {
	b := &observeBalancer{
		cc:        cc,
		opts:      opts,
		endpoints: map[string]*endpoint{},
		byAddr:    map[string]*endpoint{},
	}
	b.ccw = &clientConn{ClientConn: cc, b: b}
	b.rep = lbmetrics.Start(cc.MetricsRecorder(), opts.Target.String(), "", metricsSource{b})
	return b
}

// observeBalancer is the balancer. grpc-go calls its Balancer methods from
// one goroutine; the child calls clientConn's methods from that goroutine
// too, except UpdateState, which some policies call from their own. Pick
// and Endpoints run anywhere. mu guards the endpoint registry and the
// SubConns' states; the counters are atomics.
type observeBalancer struct {
	cc   balancer.ClientConn
	ccw  *clientConn
	opts balancer.BuildOptions

	// Used only from grpc-go's balancer goroutine.
	child     balancer.Balancer
	childName string
	statsID   string
	sink      *lbstats.Sink
	src       *source
	rep       *lbmetrics.Reporter

	mu        sync.Mutex
	closed    bool
	endpoints map[string]*endpoint // by key (the endpoint's first address)
	byAddr    map[string]*endpoint // by each address of each endpoint
	order     []*endpoint          // resolver order, then addresses no endpoint lists
	retired   uint64               // picks of the endpoints dropped from endpoints
}

func (b *observeBalancer) UpdateClientConnState(s balancer.ClientConnState) error {
	cfg, ok := s.BalancerConfig.(*lbConfig)
	if !ok {
		return fmt.Errorf("%s: unexpected config type %T", Name, s.BalancerConfig)
	}
	b.publish(cfg.StatsID)
	b.setEndpoints(s.ResolverState)
	if b.child == nil || b.childName != cfg.child.Name {
		if b.child != nil {
			// A different child policy: replaced outright (the old one's
			// SubConns shut down with it), not switched gracefully.
			b.child.Close()
		}
		bb := balancer.Get(cfg.child.Name)
		if bb == nil {
			// Registered when the config was parsed; cannot go away.
			return fmt.Errorf("%s: child policy %q is not registered", Name, cfg.child.Name)
		}
		b.child = bb.Build(b.ccw, b.opts)
		b.childName = cfg.child.Name
		b.rep.SetPolicy(cfg.child.Name)
	}
	return b.child.UpdateClientConnState(balancer.ClientConnState{
		ResolverState:  s.ResolverState,
		BalancerConfig: cfg.child.Config,
	})
}

// publish makes the balancer the source of the Sink registered under id.
func (b *observeBalancer) publish(id string) {
	if id == b.statsID && b.src != nil {
		return
	}
	b.unpublish()
	b.statsID = id
	if id == "" {
		return
	}
	b.sink = lbstats.Lookup(id)
	if b.sink == nil {
		logger.Warningf("%s: no stats sink registered under %q; endpoints are not published", Name, id)
		return
	}
	b.src = &source{b: b}
	b.sink.Set(b.src, b.cc.MetricsRecorder())
}

// unpublish detaches the balancer from its Sink, leaving in place any
// balancer that has set itself since (grpc-go builds the next policy before
// it closes the previous one).
func (b *observeBalancer) unpublish() {
	if b.sink != nil && b.src != nil {
		b.sink.Unset(b.src)
	}
	b.sink, b.src = nil, nil
}

func (b *observeBalancer) ResolverError(err error) {
	if b.child == nil {
		// No config yet, so no child to tell: fail calls with the error.
		b.cc.UpdateState(balancer.State{
			ConnectivityState: connectivity.TransientFailure,
			Picker:            base.NewErrPicker(err),
		})
		return
	}
	b.child.ResolverError(err)
}

// UpdateSubConnState is never called: every SubConn observe creates has a
// StateListener.
func (b *observeBalancer) UpdateSubConnState(sc balancer.SubConn, s balancer.SubConnState) {
	logger.Errorf("%s: UpdateSubConnState(%v, %+v) called unexpectedly", Name, sc, s)
}

func (b *observeBalancer) ExitIdle() {
	if b.child != nil {
		b.child.ExitIdle()
	}
}

func (b *observeBalancer) Close() {
	b.unpublish()
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	if b.child != nil {
		b.child.Close()
		b.child = nil
	}
	b.rep.Close()
}

// setEndpoints records the resolver's endpoints, in order, keeping the
// counters of those that stay and dropping those that left and have no
// SubConn any more.
func (b *observeBalancer) setEndpoints(rs resolver.State) {
	eps := rs.Endpoints
	if len(eps) == 0 {
		for _, a := range rs.Addresses {
			eps = append(eps, resolver.Endpoint{Addresses: []resolver.Address{a}})
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, ep := range b.endpoints {
		ep.listed = false
	}
	byAddr := make(map[string]*endpoint, len(eps))
	order := make([]*endpoint, 0, len(eps))
	for _, e := range eps {
		if len(e.Addresses) == 0 {
			continue
		}
		key := e.Addresses[0].Addr
		ep := b.endpoints[key]
		if ep == nil {
			ep = newEndpoint(key)
			b.endpoints[key] = ep
		}
		if ep.listed { // a duplicate endpoint
			continue
		}
		ep.listed = true
		order = append(order, ep)
		for _, a := range e.Addresses {
			if _, dup := byAddr[a.Addr]; !dup {
				byAddr[a.Addr] = ep
			}
		}
	}
	for key, ep := range b.endpoints {
		if ep.listed {
			continue
		}
		if len(ep.subConns) == 0 {
			b.retired += ep.picks.Load()
			delete(b.endpoints, key)
			continue
		}
		order = append(order, ep)
		for sc := range ep.subConns {
			if _, ok := byAddr[sc.addr]; !ok {
				byAddr[sc.addr] = ep
			}
		}
	}
	b.byAddr, b.order = byAddr, order
}

// endpointFor returns the endpoint addr belongs to, creating an unlisted
// one for an address no endpoint names. Caller holds b.mu.
func (b *observeBalancer) endpointFor(addr string) *endpoint {
	if ep := b.byAddr[addr]; ep != nil {
		return ep
	}
	ep := b.endpoints[addr]
	if ep == nil {
		ep = newEndpoint(addr)
		b.endpoints[addr] = ep
	}
	b.byAddr[addr] = ep
	b.order = append(b.order, ep)
	return ep
}

// forget drops an unlisted endpoint whose last SubConn shut down. Caller
// holds b.mu.
func (b *observeBalancer) forget(ep *endpoint) {
	if ep.listed || len(ep.subConns) > 0 || b.endpoints[ep.addr] != ep {
		return
	}
	b.retired += ep.picks.Load()
	delete(b.endpoints, ep.addr)
	for a, e := range b.byAddr {
		if e == ep {
			delete(b.byAddr, a)
		}
	}
	for i, e := range b.order {
		if e == ep {
			b.order = append(b.order[:i:i], b.order[i+1:]...)
			break
		}
	}
}

// endpointCount is the number of endpoints the resolver lists: the most
// picks one call makes while avoiding endpoints it already tried. It is not
// the number of READY endpoints, because observe records a state only after
// the child has handled it, so while the child builds a picker the endpoint
// that just became READY is not counted yet. Asking once per endpoint finds
// every READY one a round-robin child offers; when all of them were tried,
// the extra picks only lead to the same last choice.
func (b *observeBalancer) endpointCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.order)
}

// clientConn is the balancer.ClientConn the child sees.
type clientConn struct {
	balancer.ClientConn
	b *observeBalancer
}

// NewSubConn creates the SubConn through grpc-go and hands the child a
// wrapper that knows its endpoint and watches its state.
func (c *clientConn) NewSubConn(addrs []resolver.Address, opts balancer.NewSubConnOptions) (balancer.SubConn, error) {
	if len(addrs) == 0 {
		return c.ClientConn.NewSubConn(addrs, opts)
	}
	sc := &subConn{
		b:        c.b,
		addr:     addrs[0].Addr,
		listener: opts.StateListener,
		state:    connectivity.Idle,
	}
	opts.StateListener = sc.updateState
	inner, err := c.ClientConn.NewSubConn(addrs, opts)
	if err != nil {
		return nil, err
	}
	sc.SubConn = inner
	b := c.b
	b.mu.Lock()
	sc.ep = b.endpointFor(sc.addr)
	sc.ep.subConns[sc] = struct{}{}
	b.mu.Unlock()
	return sc, nil
}

// RemoveSubConn forwards the deprecated call with grpc-go's own SubConn.
func (c *clientConn) RemoveSubConn(sc balancer.SubConn) {
	c.ClientConn.RemoveSubConn(unwrap(sc))
}

// UpdateAddresses forwards the deprecated call with grpc-go's own SubConn.
// The SubConn keeps counting for the endpoint it was created for.
func (c *clientConn) UpdateAddresses(sc balancer.SubConn, addrs []resolver.Address) {
	c.ClientConn.UpdateAddresses(unwrap(sc), addrs)
}

// UpdateState forwards the child's state with its picker wrapped.
func (c *clientConn) UpdateState(s balancer.State) {
	if s.Picker != nil {
		s.Picker = &picker{child: s.Picker, maxPicks: c.b.endpointCount()}
	}
	c.ClientConn.UpdateState(s)
}

func unwrap(sc balancer.SubConn) balancer.SubConn {
	if w, ok := sc.(*subConn); ok {
		return w.SubConn
	}
	return sc
}

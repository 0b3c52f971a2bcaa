package lbcore

import (
	"fmt"
	"sync"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/endpointsharding"
	"google.golang.org/grpc/balancer/pickfirst"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/grpclog"
	"google.golang.org/grpc/serviceconfig"

	"github.com/lbclient/lbclient/runtime/internal/lbmetrics"
	"github.com/lbclient/lbclient/runtime/internal/lbstats"
)

// Config is what a policy's parsed LBConfig offers the shared Balancer.
type Config interface {
	serviceconfig.LoadBalancingConfig
	// LatencyParams returns the validated latency params.
	LatencyParams() *Params
	// StatsSinkID returns the config's statsId.
	StatsSinkID() string
}

// PickerBuilder builds a policy's immutable picker snapshot. It is called
// with the Balancer's lock held, so it may keep state (a cached ring)
// between calls. ready is never empty; all and ready are sorted by address.
type PickerBuilder interface {
	Build(cfg Config, t *Tracker, all, ready []Child) balancer.Picker
}

// TotalCounter is a PickerBuilder whose pickers read Tracker.InFlight.
type TotalCounter interface {
	CountsTotal() bool
}

// Balancer is the part of lbclient's balancers that is the same for every
// policy: endpointsharding over pickfirst children (with the health
// listener enabled, as round_robin does, so client-side health checks
// work), a Tracker that keeps per-endpoint counters across picker rebuilds,
// a picker snapshot rebuilt on every state change, publication of the
// counters to the lbstats.Sink named by the config's statsId, and their
// report as metrics through the channel's MetricsRecorder (lbmetrics).
type Balancer struct {
	// Embedded to intercept UpdateState from endpointsharding.
	balancer.ClientConn

	name   string
	logger grpclog.LoggerV2
	child  balancer.Balancer
	pb     PickerBuilder
	t      *Tracker
	rep    *lbmetrics.Reporter

	mu     sync.Mutex
	cfg    Config
	sink   *lbstats.Sink
	closed bool
}

// NewBalancer builds the Balancer of policy name; def is the config used
// until the first UpdateClientConnState (and when it carries none).
//
// logger is the policy's grpclog component, made once at package
// initialisation: grpclog.Component registers the name in a map of its own
// without a lock, so two channels building balancers at once must not call
// it.
func NewBalancer(name string, logger grpclog.LoggerV2, cc balancer.ClientConn, opts balancer.BuildOptions, pb PickerBuilder, def Config, now Clock, rnd Rand) *Balancer {
	b := &Balancer{
		ClientConn: cc,
		name:       name,
		logger:     logger,
		pb:         pb,
		t:          NewTracker(now, rnd),
		cfg:        def,
	}
	b.t.SetParams(def.LatencyParams())
	if tc, ok := pb.(TotalCounter); ok {
		b.t.CountTotal = tc.CountsTotal()
	}
	b.child = endpointsharding.NewBalancer(b, opts, balancer.Get(pickfirst.Name).Build, endpointsharding.Options{})
	b.rep = lbmetrics.Start(cc.MetricsRecorder(), opts.Target.String(), name, b.t)
	return b
}

// Tracker returns the Balancer's Tracker.
func (b *Balancer) Tracker() *Tracker { return b.t }

// UpdateClientConnState installs the new config, then hands the endpoints to
// endpointsharding, which answers with UpdateState (inline), so the new
// picker already uses the new config.
func (b *Balancer) UpdateClientConnState(ccs balancer.ClientConnState) error {
	if ccs.BalancerConfig != nil {
		cfg, ok := ccs.BalancerConfig.(Config)
		if !ok {
			b.logger.Errorf("%s: received config of unexpected type %T", b.name, ccs.BalancerConfig)
			return balancer.ErrBadResolverState
		}
		b.mu.Lock()
		b.cfg = cfg
		b.t.SetParams(cfg.LatencyParams())
		b.setSinkLocked(cfg.StatsSinkID())
		b.mu.Unlock()
	}
	return b.child.UpdateClientConnState(balancer.ClientConnState{
		// Enable the health listener in pickfirst children for client-side
		// health checks and outlier detection, if configured.
		ResolverState: pickfirst.EnableHealthListener(ccs.ResolverState),
	})
}

func (b *Balancer) setSinkLocked(id string) {
	var sink *lbstats.Sink
	if id != "" {
		if sink = lbstats.Lookup(id); sink == nil {
			b.logger.Warningf("%s: no stats sink registered under statsId %q", b.name, id)
		}
	}
	if sink == b.sink {
		return
	}
	if b.sink != nil {
		b.sink.Unset(b.t)
	}
	if sink != nil {
		sink.Set(b.t, b.ClientConn.MetricsRecorder())
	}
	b.sink = sink
}

// UpdateState receives endpointsharding's aggregated state, reconciles the
// Tracker and publishes a new picker. With no READY endpoint it passes
// endpointsharding's own picker through: it queues or fails calls as the
// children's states dictate, and kicks IDLE children.
func (b *Balancer) UpdateState(state balancer.State) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	all, ready := b.t.Sync(endpointsharding.ChildStatesFromPicker(state.Picker))
	defer b.t.Published()
	if len(ready) == 0 {
		b.ClientConn.UpdateState(state)
		return
	}
	b.ClientConn.UpdateState(balancer.State{
		ConnectivityState: connectivity.Ready,
		Picker:            b.pb.Build(b.cfg, b.t, all, ready),
	})
}

// ResolverError implements balancer.Balancer.
func (b *Balancer) ResolverError(err error) { b.child.ResolverError(err) }

// ExitIdle implements balancer.Balancer.
func (b *Balancer) ExitIdle() { b.child.ExitIdle() }

// UpdateSubConnState implements balancer.Balancer; endpointsharding's
// children get SubConn states through their listeners, never through here.
func (b *Balancer) UpdateSubConnState(sc balancer.SubConn, s balancer.SubConnState) {
	b.logger.Errorf("%s: UpdateSubConnState(%v, %+v) called unexpectedly", b.name, sc, s)
}

// Close closes the children, withdraws the stats source and records the
// last metrics.
func (b *Balancer) Close() {
	b.child.Close()
	b.mu.Lock()
	b.closed = true
	b.setSinkLocked("")
	b.mu.Unlock()
	b.rep.Close()
}

// ConfigError formats a config error with the policy's name as prefix.
func ConfigError(policy string, err error) error {
	return fmt.Errorf("%s: %w", policy, err)
}

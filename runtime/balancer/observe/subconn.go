package observe

import (
	"fmt"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/connectivity"

	"github.com/lbclient/lbclient/runtime/internal/lbstats"
)

// endpoint holds one endpoint's counters. The counters are updated by
// pickers and Done callbacks on any goroutine; the other fields are guarded
// by the balancer's mu.
type endpoint struct {
	addr string // the endpoint's first address; immutable

	picks    atomic.Uint64
	inFlight atomic.Int64
	failures atomic.Uint64
	latency  atomic.Int64 // EWMA of call latency in nanoseconds; 0 before the first sample

	listed   bool                  // named by the latest resolver update
	subConns map[*subConn]struct{} // live SubConns (not yet SHUTDOWN)
}

func newEndpoint(addr string) *endpoint {
	return &endpoint{addr: addr, subConns: map[*subConn]struct{}{}}
}

// stateLocked aggregates the SubConns' states the way grpc-go aggregates a
// channel's: READY if any is READY, else CONNECTING, else IDLE, else
// TRANSIENT_FAILURE; IDLE with no SubConn. Caller holds the balancer's mu.
func (ep *endpoint) stateLocked() connectivity.State {
	var connecting, idle, failing bool
	for sc := range ep.subConns {
		switch sc.effectiveState() {
		case connectivity.Ready:
			return connectivity.Ready
		case connectivity.Connecting:
			connecting = true
		case connectivity.Idle:
			idle = true
		case connectivity.TransientFailure:
			failing = true
		}
	}
	switch {
	case connecting:
		return connectivity.Connecting
	case idle:
		return connectivity.Idle
	case failing:
		return connectivity.TransientFailure
	}
	return connectivity.Idle
}

func (ep *endpoint) snapshotLocked() lbstats.Endpoint {
	return lbstats.Endpoint{
		Addr:     ep.addr,
		State:    ep.stateLocked(),
		InFlight: ep.inFlight.Load(),
		Picks:    ep.picks.Load(),
		Failures: ep.failures.Load(),
		Latency:  time.Duration(ep.latency.Load()),
	}
}

// subConn wraps a SubConn of grpc-go's for the child. It embeds the real
// one, so every SubConn method is forwarded; observe's picker hands the
// real one back to grpc-go. State and health are guarded by the balancer's
// mu.
type subConn struct {
	balancer.SubConn
	b        *observeBalancer
	addr     string                      // the SubConn's first address
	ep       *endpoint                   // set once, before the child can pick it
	listener func(balancer.SubConnState) // the child's StateListener

	state     connectivity.State // latest connectivity state
	health    connectivity.State // latest health state, while watched
	watchedHC bool               // the child has a health listener registered
}

func (sc *subConn) String() string {
	if s, ok := sc.SubConn.(fmt.Stringer); ok {
		return s.String()
	}
	return sc.addr
}

// effectiveState is the connectivity state, narrowed by the health state
// while the child watches health. Caller holds the balancer's mu.
func (sc *subConn) effectiveState() connectivity.State {
	if sc.state == connectivity.Ready && sc.watchedHC {
		return sc.health
	}
	return sc.state
}

// updateState is the StateListener grpc-go calls. It forwards the state to
// the child first and records it after, so that a published READY never
// precedes the picker that uses it: the child builds and sends its picker
// inside the listener. For the same reason a child that watches health has
// registered its health listener by the time READY is recorded, and the
// endpoint shows READY only once health says SERVING.
func (sc *subConn) updateState(s balancer.SubConnState) {
	b := sc.b
	if sc.listener != nil {
		sc.listener(s)
	} else if child := b.child; child != nil {
		// A child that did not set a StateListener expects the deprecated
		// Balancer.UpdateSubConnState; grpc-go calls listeners on the
		// balancer goroutine, where b.child may be read.
		child.UpdateSubConnState(sc, s)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	sc.state = s.ConnectivityState
	if s.ConnectivityState != connectivity.Ready {
		// A health listener lives for one READY period.
		sc.watchedHC = false
	}
	if s.ConnectivityState == connectivity.Shutdown && sc.ep != nil {
		delete(sc.ep.subConns, sc)
		b.forget(sc.ep)
	}
}

// RegisterHealthListener registers the child's health listener with
// grpc-go, wrapped so that observe sees the health states too.
func (sc *subConn) RegisterHealthListener(listener func(balancer.SubConnState)) {
	b := sc.b
	b.mu.Lock()
	if listener == nil {
		sc.watchedHC = false
		b.mu.Unlock()
		sc.SubConn.RegisterHealthListener(nil)
		return
	}
	// Until the first health update the endpoint is not yet usable, as
	// pickfirst sees it.
	sc.watchedHC = true
	sc.health = connectivity.Connecting
	b.mu.Unlock()
	sc.SubConn.RegisterHealthListener(func(s balancer.SubConnState) {
		listener(s) // first, as in updateState
		b.mu.Lock()
		if sc.watchedHC {
			sc.health = s.ConnectivityState
		}
		b.mu.Unlock()
	})
}

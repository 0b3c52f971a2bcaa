// Package lbstats lets lbclient's balancers publish their per-endpoint
// counters to the runtime.Conn that they serve.
//
// A Conn creates a Sink and registers it under an ID that it places in its
// balancer's service config ("statsId"); the balancer, once built, looks the
// Sink up and sets itself as its Source. Conn.Endpoints then asks the Source.
package lbstats

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/connectivity"
)

// Endpoint is one endpoint's counters at one moment.
type Endpoint struct {
	// Addr is the endpoint's first address.
	Addr string
	// State is the endpoint's connectivity state.
	State connectivity.State
	// InFlight is the number of calls under way.
	InFlight int64
	// Picks is the number of calls the picker sent to the endpoint.
	Picks uint64
	// Failures is the number of calls that failed with a status that
	// counts against the endpoint (UNAVAILABLE and the like, timeouts for
	// lbclient's own policies).
	Failures uint64
	// Latency is a moving average of the latency of the calls the
	// endpoint answered; 0 before the first.
	Latency time.Duration
	// Weight is the endpoint's weight from the resolver under lbclient's
	// policies (1 when it gave none); 0 under grpc-go's, which do not
	// report it.
	Weight uint32
}

// Source is what a balancer offers: a snapshot of its endpoints.
type Source interface {
	Endpoints() []Endpoint
}

// Sink is the meeting point of one Conn and its balancer.
type Sink struct {
	src atomic.Pointer[sourceBox]
}

type sourceBox struct{ Source }

// Set makes s the Sink's source; nil clears it.
func (k *Sink) Set(s Source) {
	if s == nil {
		k.src.Store(nil)
		return
	}
	k.src.Store(&sourceBox{s})
}

// Unset clears the Sink's source if it is still s. A balancer calls it on
// Close: when grpc-go switches balancers, the new one may already have set
// itself before the old one closes, and Unset leaves the newcomer in place.
// s must be of a comparable type (a pointer, in practice).
func (k *Sink) Unset(s Source) {
	for {
		b := k.src.Load()
		if b == nil || b.Source != s {
			return
		}
		if k.src.CompareAndSwap(b, nil) {
			return
		}
	}
}

// Endpoints returns the source's snapshot, or nil when no balancer has set
// itself as the source.
func (k *Sink) Endpoints() []Endpoint {
	if b := k.src.Load(); b != nil {
		return b.Endpoints()
	}
	return nil
}

var (
	mu     sync.Mutex
	sinks  = map[string]*Sink{}
	nextID atomic.Uint64
)

// Register creates a Sink under a new ID and returns both, with the
// function that removes it again.
func Register() (id string, s *Sink, unregister func()) {
	id = "lbstats-" + strconv.FormatUint(nextID.Add(1), 10)
	s = new(Sink)
	mu.Lock()
	sinks[id] = s
	mu.Unlock()
	return id, s, func() {
		mu.Lock()
		delete(sinks, id)
		mu.Unlock()
	}
}

// Lookup returns the Sink registered under id, or nil.
func Lookup(id string) *Sink {
	mu.Lock()
	defer mu.Unlock()
	return sinks[id]
}

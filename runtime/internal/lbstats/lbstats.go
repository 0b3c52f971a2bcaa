// Package lbstats lets lbclient's balancers publish their per-endpoint
// counters to the runtime.Conn that they serve.
//
// A Conn creates a Sink and registers it under an ID that it places in its
// balancer's service config ("statsId"); the balancer, once built, looks the
// Sink up and sets itself as its Source, with its channel's metrics
// recorder. Conn.Endpoints then asks the Source, and the Conn's hedger
// records its metrics through the Sink's Recorder. The registry of Sinks is
// also the process's list of live Conns (Live), which the debug page
// reads.
package lbstats

import (
	"cmp"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/connectivity"
	estats "google.golang.org/grpc/experimental/stats"
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
	// Estimate is the latency estimate the picker ranks the endpoint by,
	// decayed to now, under lbclient's policies; 0 under grpc-go's.
	Estimate time.Duration
	// Ejected reports whether the endpoint's failures or timeouts in a
	// row have ejected it: pickers pass it by but for probes.
	Ejected bool
	// Ejections is the number of times the endpoint was ejected.
	Ejections uint64
	// Probes is the number of probe calls the endpoint got: calls sent to
	// measure it again while it was avoided or ejected.
	Probes uint64
}

// Source is what a balancer offers: a snapshot of its endpoints.
type Source interface {
	Endpoints() []Endpoint
}

// Sink is the meeting point of one Conn and its balancer.
type Sink struct {
	id    string
	seq   uint64
	owner atomic.Value // of ownerBox
	src   atomic.Pointer[sourceBox]
}

type sourceBox struct {
	Source
	rec estats.MetricsRecorder
}

type ownerBox struct{ v any }

// Set makes s the Sink's source, and rec (nil for none) the recorder of
// the channel it balances; a nil s clears both.
func (k *Sink) Set(s Source, rec estats.MetricsRecorder) {
	if s == nil {
		k.src.Store(nil)
		return
	}
	k.src.Store(&sourceBox{Source: s, rec: rec})
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

// ID returns the ID the Sink is registered under.
func (k *Sink) ID() string { return k.id }

// SetOwner records what the Sink serves (the runtime.Conn), for Live's
// callers.
func (k *Sink) SetOwner(o any) { k.owner.Store(ownerBox{o}) }

// Owner returns what SetOwner recorded, or nil.
func (k *Sink) Owner() any {
	b, _ := k.owner.Load().(ownerBox)
	return b.v
}

// Recorder returns a MetricsRecorder that forwards counts to the recorder
// of the channel whose balancer is the Sink's source at the time of each
// record, and drops them while there is none.
func (k *Sink) Recorder() estats.MetricsRecorder { return sinkRecorder{k: k} }

// sinkRecorder is Sink.Recorder's. Only counts are forwarded: they are all
// that lbclient records outside its balancers.
type sinkRecorder struct {
	estats.UnimplementedMetricsRecorder
	k *Sink
}

func (r sinkRecorder) RecordInt64Count(h *estats.Int64CountHandle, incr int64, labels ...string) {
	if b := r.k.src.Load(); b != nil && b.rec != nil {
		b.rec.RecordInt64Count(h, incr, labels...)
	}
}

var (
	mu     sync.Mutex
	sinks  = map[string]*Sink{}
	nextID atomic.Uint64
)

// Register creates a Sink under a new ID and returns both, with the
// function that removes it again.
func Register() (id string, s *Sink, unregister func()) {
	seq := nextID.Add(1)
	id = "lbstats-" + strconv.FormatUint(seq, 10)
	s = &Sink{id: id, seq: seq}
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

// Live returns the registered Sinks that have an owner, in the order they
// were registered.
func Live() []*Sink {
	mu.Lock()
	out := make([]*Sink, 0, len(sinks))
	for _, s := range sinks {
		if s.Owner() != nil {
			out = append(out, s)
		}
	}
	mu.Unlock()
	slices.SortFunc(out, func(a, b *Sink) int { return cmp.Compare(a.seq, b.seq) })
	return out
}

package consistenthash

import (
	"math"
	"slices"
	"sync/atomic"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/connectivity"

	"github.com/lbclient/lbclient/runtime/balancer/internal/lbcore"
	"github.com/lbclient/lbclient/runtime/internal/callinfo"
)

// picker is an immutable snapshot: the ring over every endpoint the
// resolver lists, whatever its state (so that a key's place on it does not
// move while its endpoint reconnects: its calls go to its successors
// meanwhile, and come back), their children, and the READY subset for
// calls without a key. Pick is lock-free.
type picker struct {
	t      *lbcore.Tracker
	all    []lbcore.Child // ring owners index into all
	ready  []lbcore.Child // non-empty
	ring   *ring
	factor float64
	// readyWeight is the sum of the READY endpoints' weights (N when
	// unweighted), over which the load bound shares the calls in flight.
	readyWeight float64
	params      *lbcore.Params
	// kicked[o] records that this snapshot asked the IDLE child all[o] to
	// connect, so that a burst of calls for its keys asks once. The next
	// snapshot (the child goes CONNECTING) starts afresh.
	kicked []atomic.Bool
}

// Pick routes a keyed call by the ring (see walk), bounded in load; a
// call without a key goes by power of two choices on peak-EWMA cost over
// the READY endpoints. Endpoints a hedged call already tried are passed
// over while another READY endpoint exists. No allocation.
func (p *picker) Pick(info balancer.PickInfo) (balancer.PickResult, error) {
	now := p.t.Now()
	ci := callinfo.From(info.Ctx)
	a := ci.Attempts
	if !ci.HasKey {
		i := p.t.ChooseP2C(p.ready, now, p.params, &ci)
		return p.t.Pick(&p.ready[i], info, now, &ci, 0)
	}
	// The endpoints to avoid: those the hedged call tried, while another
	// READY one exists.
	var tb [callinfo.MaxAttempts]string
	var avoid []string
	if a != nil {
		if tried := a.AppendTried(tb[:0]); lbcore.AnyUntried(p.all, tried) {
			avoid = tried
		}
	}
	start := p.ring.search(hashKey(ci.HashKey))
	if c, load := p.walk(start, p.limit(), now, ci.Stream, avoid); c != nil {
		return p.t.Pick(c, info, now, &ci, load)
	}
	// Every READY candidate is at the bound: concurrent picks raced past
	// the snapshot of the total. Take the key's first candidate anyway.
	return p.t.Pick(p.first(start, avoid), info, now, &ci, 0)
}

// limit returns the load bound per unit of weight, c × (in-flight + 1) /
// W, W being the READY endpoints' total weight (N unweighted) and the
// "+1" the call being placed (Mirrokni et al., section 2): an endpoint of
// weight w may hold ceil(limit × w) calls in flight (see bound).
func (p *picker) limit() float64 {
	return p.factor * float64(p.t.InFlight()+1) / p.readyWeight
}

// bound is the calls in flight c's endpoint may hold under limit.
func bound(limit float64, c *lbcore.Child) int64 {
	return int64(math.Ceil(limit * float64(c.Weight)))
}

// walk finds the key's endpoint: walking the ring from the key's position,
// the first endpoint that is READY, not ejected (lbcore.EjectAfter
// failures or lbcore.EjectAfterTimeouts timeouts in a row, and not due a
// probe), below its load bound (Mirrokni et al., scaled by its weight),
// and not in avoid (the
// endpoints a hedged call tried). walk counts the call in flight on the
// endpoint it returns, and returns that count; it returns nil when no
// READY endpoint has room.
//
// Only READY endpoints hold keys. This departs from gRFC A42's ring_hash
// picker, which queues a key's calls while its endpoint is IDLE or
// CONNECTING and moves them on only in TRANSIENT_FAILURE: a backend that
// accepts TCP connections and never speaks HTTP/2 (half-open: a hung
// process, a proxy with no upstream) stays CONNECTING until grpc's connect
// timeout, 20 s, and every call for its keys waited that long or ran out
// of time, while its ring successors could have served them. Here an
// endpoint that has never been READY holds no keys; one that is connecting
// again passes its keys on to their successors until it is READY, as A42
// does in TRANSIENT_FAILURE. An IDLE endpoint on the way is asked to
// connect (once per snapshot), so that it comes back.
func (p *picker) walk(start int, limit float64, now int64, stream bool, avoid []string) (*lbcore.Child, int64) {
	n := len(p.ring.owners)
	prev := int32(-1)
	for k := range n {
		i := start + k
		if i >= n {
			i -= n
		}
		o := p.ring.owners[i]
		if o == prev {
			continue // the same endpoint's next virtual node
		}
		prev = o
		c := &p.all[o]
		switch c.State {
		case connectivity.Ready:
			if slices.Contains(avoid, c.EP.Addr) {
				continue
			}
			if c.EP.Ejected(now, p.params.ProbeInterval) {
				continue
			}
			if load, ok := c.EP.TryAcquire(bound(limit, c), now, stream); ok {
				return c, load
			}
		case connectivity.Idle:
			p.exitIdle(o)
		}
		// CONNECTING, TRANSIENT_FAILURE, IDLE (or SHUTDOWN, which
		// endpointsharding never reports): on to the next endpoint.
	}
	return nil, 0
}

// exitIdle asks the IDLE child all[o] to connect, once per snapshot.
func (p *picker) exitIdle(o int32) {
	c := &p.all[o]
	if c.ExitIdle != nil && p.kicked[o].CompareAndSwap(false, true) {
		c.ExitIdle()
	}
}

// first returns the first READY, not avoided endpoint from start on,
// preferring one that is not failing; when every one is, calls go to them
// all the same (ejection fails open).
func (p *picker) first(start int, avoid []string) *lbcore.Child {
	n := len(p.ring.owners)
	var failing *lbcore.Child
	for k := range n {
		i := start + k
		if i >= n {
			i -= n
		}
		c := &p.all[p.ring.owners[i]]
		if c.Ready && !slices.Contains(avoid, c.EP.Addr) {
			if !c.EP.Failing() {
				return c
			}
			if failing == nil {
				failing = c
			}
		}
	}
	if failing != nil {
		return failing
	}
	return &p.ready[0] // unreachable: ready is non-empty and on the ring
}

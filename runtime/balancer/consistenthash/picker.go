package consistenthash

import (
	"math"

	"google.golang.org/grpc/balancer"

	"github.com/lbclient/lbclient/runtime/balancer/internal/lbcore"
	"github.com/lbclient/lbclient/runtime/internal/callinfo"
)

// picker is an immutable snapshot: the ring over every endpoint the
// resolver lists (so a key does not move while its endpoint reconnects, it
// spills to its successors and comes back), their children, and the READY
// subset for calls without a key. Pick is lock-free.
type picker struct {
	t      *lbcore.Tracker
	all    []lbcore.Child // ring owners index into all
	ready  []lbcore.Child // non-empty
	ring   *ring
	factor float64
	tau    float64
}

// Pick routes a keyed call to the first endpoint at or after the key's
// ring position that is READY and below the load bound; a call without a
// key goes by power of two choices on peak-EWMA cost. Endpoints a hedged
// call already tried are passed over while another READY endpoint exists.
// No allocation.
func (p *picker) Pick(info balancer.PickInfo) (balancer.PickResult, error) {
	now := p.t.Now()
	a := callinfo.AttemptsFrom(info.Ctx)
	key, ok := callinfo.HashKey(info.Ctx)
	if !ok {
		i := p.t.ChooseP2C(p.ready, now, p.tau, a)
		return p.t.Pick(&p.ready[i], info, now, a, false)
	}
	avoid := a != nil && lbcore.AnyUntried(p.all, a)
	start := p.ring.search(hashKey(key))
	if c := p.walk(start, p.limit(), a, avoid); c != nil {
		return p.t.Pick(c, info, now, a, true)
	}
	// Every candidate is at the bound: concurrent picks raced past the
	// snapshot of the total. Take the key's first candidate anyway.
	c := p.first(start, a, avoid)
	return p.t.Pick(c, info, now, a, false)
}

// limit is the load bound ceil(c × (in-flight + 1) / N), N being the READY
// endpoints, the "+1" the call being placed (Mirrokni et al., section 2).
func (p *picker) limit() int64 {
	avg := float64(p.t.InFlight()+1) / float64(len(p.ready))
	return int64(math.Ceil(p.factor * avg))
}

// walk returns the first endpoint from ring position start on that is
// READY, not avoided, and below limit, having counted the call in flight
// on it; nil when there is none.
func (p *picker) walk(start int, limit int64, a *callinfo.Attempts, avoid bool) *lbcore.Child {
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
		if !c.Ready || (avoid && a.Tried(c.EP.Addr)) {
			continue
		}
		if c.EP.TryAcquire(limit) {
			return c
		}
	}
	return nil
}

// first returns the first READY, not avoided endpoint from start on.
func (p *picker) first(start int, a *callinfo.Attempts, avoid bool) *lbcore.Child {
	n := len(p.ring.owners)
	for k := range n {
		i := start + k
		if i >= n {
			i -= n
		}
		c := &p.all[p.ring.owners[i]]
		if c.Ready && !(avoid && a.Tried(c.EP.Addr)) {
			return c
		}
	}
	return &p.ready[0] // unreachable: ready is non-empty and on the ring
}

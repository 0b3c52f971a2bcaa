package consistenthash

import (
	"math"
	"sync/atomic"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/connectivity"

	"github.com/lbclient/lbclient/runtime/balancer/internal/lbcore"
	"github.com/lbclient/lbclient/runtime/internal/callinfo"
)

// picker is an immutable snapshot: the ring over every endpoint the
// resolver lists (so a key does not move while its endpoint reconnects: its
// calls wait for it, or spill to its successors while it is in
// TRANSIENT_FAILURE, and come back), their children, and the READY subset
// for calls without a key. Pick is lock-free.
type picker struct {
	t      *lbcore.Tracker
	all    []lbcore.Child // ring owners index into all
	ready  []lbcore.Child // non-empty
	ring   *ring
	factor float64
	params *lbcore.Params
	// kicked[o] records that this snapshot asked the IDLE child all[o] to
	// connect, so that a burst of calls for its keys asks once. The next
	// snapshot (the child goes CONNECTING) starts afresh.
	kicked []atomic.Bool
}

// Pick routes a keyed call by gRFC A42's ring_hash rules (see walk),
// bounded in load; a call without a key goes by power of two choices on
// peak-EWMA cost over the READY endpoints. Endpoints a hedged call already
// tried are passed over while another READY endpoint exists. No allocation
// on the common path (the key's endpoint READY or queued).
func (p *picker) Pick(info balancer.PickInfo) (balancer.PickResult, error) {
	now := p.t.Now()
	a := callinfo.AttemptsFrom(info.Ctx)
	key, ok := callinfo.HashKey(info.Ctx)
	if !ok {
		i := p.t.ChooseP2C(p.ready, now, p.params, a)
		return p.t.Pick(&p.ready[i], info, now, a, false)
	}
	avoid := a != nil && lbcore.AnyUntried(p.all, a)
	start := p.ring.search(hashKey(key))
	c, err := p.walk(start, p.limit(), now, a, avoid)
	if err != nil {
		return balancer.PickResult{}, err
	}
	if c != nil {
		return p.t.Pick(c, info, now, a, true)
	}
	// Every READY candidate is at the bound: concurrent picks raced past
	// the snapshot of the total. Take the key's first candidate anyway.
	c = p.first(start, a, avoid)
	return p.t.Pick(c, info, now, a, false)
}

// limit is the load bound ceil(c × (in-flight + 1) / N), N being the READY
// endpoints, the "+1" the call being placed (Mirrokni et al., section 2).
func (p *picker) limit() int64 {
	avg := float64(p.t.InFlight()+1) / float64(len(p.ready))
	return int64(math.Ceil(p.factor * avg))
}

// walk applies the ring_hash picker of gRFC A42 ("xDS Ring Hash LB
// Policy"), as amended by gRFC A61 for pick_first children, whose
// TRANSIENT_FAILURE is sticky until they are READY again: walking the ring
// from the key's position, endpoints in TRANSIENT_FAILURE are passed over,
// and the first endpoint in any other state is the key's endpoint:
//
//   - READY: the call goes to it;
//   - IDLE: a connection is requested (the child's ExitIdle) and the pick
//     is queued (balancer.ErrNoSubConnAvailable): the channel picks again
//     with the next picker, once the child reports CONNECTING, then READY;
//   - CONNECTING: the pick is queued.
//
// So a key never lands elsewhere merely because its endpoint has not
// connected yet (right after dial, or after a reconnect), which would break
// affinity for its first calls; it moves on only while its endpoint is in
// TRANSIENT_FAILURE. A queued pick follows the call's wait-for-ready as
// usual: without it, a queued call still waits while the child connects,
// since gRPC fails fast only in TRANSIENT_FAILURE.
//
// Bounded load (Mirrokni et al.), hedging and outlier ejection extend the
// READY case: when the key's endpoint holds limit calls in flight, or a
// hedged call already tried it, or it failed lbcore.EjectAfter calls in a
// row and is not due a probe, the walk goes on to the next READY endpoint
// with room that the call has not tried, passing over endpoints in any
// other state; a spilled call never waits for a connection. walk counts the
// call in flight on the endpoint it returns; it returns nil and no error
// when no READY endpoint has room.
func (p *picker) walk(start int, limit, now int64, a *callinfo.Attempts, avoid bool) (*lbcore.Child, error) {
	n := len(p.ring.owners)
	prev := int32(-1)
	spilled := false // the key's endpoint was READY but full or tried
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
			spilled = true
			if avoid && a.Tried(c.EP.Addr) {
				continue
			}
			if c.EP.Ejected(now, p.params.ProbeInterval) {
				continue
			}
			if c.EP.TryAcquire(limit) {
				return c, nil
			}
		case connectivity.Idle:
			if !spilled {
				p.exitIdle(o)
				return nil, balancer.ErrNoSubConnAvailable
			}
		case connectivity.Connecting:
			if !spilled {
				return nil, balancer.ErrNoSubConnAvailable
			}
		}
		// TRANSIENT_FAILURE (or SHUTDOWN, which endpointsharding never
		// reports): on to the next endpoint.
	}
	return nil, nil
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
func (p *picker) first(start int, a *callinfo.Attempts, avoid bool) *lbcore.Child {
	n := len(p.ring.owners)
	var failing *lbcore.Child
	for k := range n {
		i := start + k
		if i >= n {
			i -= n
		}
		c := &p.all[p.ring.owners[i]]
		if c.Ready && !(avoid && a.Tried(c.EP.Addr)) {
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

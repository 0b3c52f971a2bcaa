package lbcore

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/experimental/balancer/weight"
	"google.golang.org/grpc/resolver"
)

// Endpoint weights.
//
// A resolver gives an endpoint a weight with grpc-go's
// experimental/balancer/weight attribute (lbclient's file and etcd
// resolvers do, and grpc-go's xDS layer does from EDS): an endpoint of
// weight 3 is to carry three times the calls of one of weight 1. A weight
// says how much an endpoint can take, not how fast it answers, so it
// scales load, never latency:
//
//   - the two candidates of a pick are drawn in proportion to weight (and
//     without replacement), so that an endpoint can get more than the 2/N
//     of the draws that uniform pairs give it;
//   - between two candidates whose costs are within the noise band, the
//     one with fewer calls in flight per unit of weight wins (see
//     lessLoadedPerWeight), and, as loaded, the one with the lower recent
//     pick rate per unit of weight (see pickRate), so that equal latencies
//     share calls by weight for one serial caller as for many;
//   - beyond the band, cost decides as without weights: a heavy endpoint
//     that has become ten times slower is avoided like any other.
//
// Cost itself is not divided by weight: it is what a call sent there is
// expected to wait, and it is measured on each endpoint at the load that
// endpoint carries (see Endpoint.Cost), so it already shows whether a
// heavy endpoint keeps up with its larger share. Dividing it by weight
// would make a weight-3 endpoint look three times cheaper at equal
// latency, beyond the band, and it would take nearly every call instead of
// three quarters of them.
//
// When every READY endpoint has the same weight (the common case, and
// every resolver that sets none) the picker runs the unweighted path,
// which costs nothing more.

// WeightOf returns ep's weight: its weight attribute, or 1 when it has
// none (or 0, which the attribute's users treat as unset).
func WeightOf(ep resolver.Endpoint) uint32 {
	return max(weight.FromEndpoint(ep).Weight, 1)
}

// weigh prepares ready for weighted picks: when the weights of ready
// differ, each child's cum is the sum of the weights up to and including
// its own; when they are all equal, cum stays 0 and picks take the
// unweighted path.
func weigh(ready []Child) {
	uniform := true
	for i := range ready {
		if ready[i].Weight != ready[0].Weight {
			uniform = false
			break
		}
	}
	if uniform {
		return
	}
	var sum uint64
	for i := range ready {
		sum += uint64(ready[i].Weight)
		ready[i].cum = sum
	}
}

// weighted reports whether ready's weights differ (see weigh).
func weighted(ready []Child) bool { return len(ready) > 0 && ready[0].cum != 0 }

// weightedPair draws two distinct indices of ready (a weighted set of at
// least two) with probability in proportion to weight, without
// replacement: the first from all, the second from the others.
func weightedPair(ready []Child, r1, r2 uint64) (int, int) {
	total := ready[len(ready)-1].cum
	i := searchCum(ready, below(r1, total))
	wi := uint64(ready[i].Weight)
	// The second: uniform over the weight of the others, mapped past i's
	// own range.
	u := below(r2, total-wi)
	if u >= ready[i].cum-wi {
		u += wi
	}
	return i, searchCum(ready, u)
}

// below maps 64 random bits to [0, n) (Lemire's multiply-shift).
func below(r, n uint64) uint64 {
	hi, _ := bits.Mul64(r, n)
	return hi
}

// searchCum returns the index of the child whose weight range holds u:
// the first with cum > u.
func searchCum(ready []Child, u uint64) int {
	lo, hi := 0, len(ready)-1
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if ready[m].cum > u {
			hi = m
		} else {
			lo = m + 1
		}
	}
	return lo
}

// lessLoadedPerWeight compares the calls in flight per unit of weight of
// two endpoints, ni of weight wi against nj of weight wj: -1 when the call
// belongs on i, +1 when on j, 0 when the counts cannot tell. The call
// belongs on i when i, with it, carries no more per unit of weight than j
// does without it, and the reverse; otherwise either choice overshoots,
// and the pick rates decide. (Comparing the counts alone, a weight-9
// endpoint beside weight-1 ones under sixteen callers settled at 10 calls
// in flight against their 2, and took 67% of the calls instead of 75%: a
// weight-1 endpoint cannot carry 1.33 calls.) Unweighted, this is "fewer
// calls in flight wins".
func lessLoadedPerWeight(ni, nj int64, wi, wj uint32) int {
	switch {
	case uint64(ni+1)*uint64(wj) <= uint64(nj)*uint64(wi):
		return -1
	case uint64(nj+1)*uint64(wi) <= uint64(ni)*uint64(wj):
		return 1
	}
	return 0
}

// pickRate is an endpoint's recent rate of unary picks in a weighted set:
// picks decayed with rateTau, packed in one word (the rate as a float32 in
// the high half, the time of the latest pick in units of rateUnit in the
// low half) so that it is read and moved with one atomic operation.
//
// It is the weighted tie-break, in place of the least recently picked of
// the unweighted one: comparing how long ago two endpoints were picked
// cannot share calls 1:1.5 (for a serial caller it splits them 1:1, and
// 1:3 only by the accident of an integer ratio), while comparing rates per
// unit of weight holds any ratio; and a rate, unlike a count of picks,
// forgets: an endpoint that joins, or comes back from being avoided, does
// not take every call until its count catches up with its peers'.
type pickRate struct{ w atomic.Uint64 }

const (
	// rateTau is the time over which pick rates decay: long enough to
	// hold many picks of a serial caller, short enough that an endpoint
	// that joins is level with the others within a second or two.
	rateTau = float64(time.Second)
	// rateShift sets rateUnit, the unit of the time stamp: 2^20 ns, about
	// a millisecond; the 32-bit stamp wraps after 52 days, and a rate
	// that old has decayed to nothing (see at).
	rateShift = 20
	rateUnit  = float64(1 << rateShift)
)

// at returns the rate as of now.
func (p *pickRate) at(now int64) float64 { return decayRate(p.w.Load(), now) }

func decayRate(w uint64, now int64) float64 {
	r := float64(math.Float32frombits(uint32(w >> 32)))
	if r == 0 {
		return 0
	}
	// Modular difference of the stamps: exact for gaps below 26 days; a
	// stamp from the future (a concurrent pick read the clock later)
	// counts as now.
	dt := int32(uint32(now>>rateShift) - uint32(w))
	if dt <= 0 {
		return r
	}
	return r * math.Exp(-float64(dt)*rateUnit/rateTau)
}

// add counts a pick at now.
func (p *pickRate) add(now int64) {
	for {
		old := p.w.Load()
		r := decayRate(old, now) + 1
		nw := uint64(math.Float32bits(float32(r)))<<32 | uint64(uint32(now>>rateShift))
		if p.w.CompareAndSwap(old, nw) {
			return
		}
	}
}

// lowerRatePerWeight reports whether ei has picked less recently, per unit
// of weight, than ej: the weighted tie-break (see pickRate).
func lowerRatePerWeight(ei, ej *Endpoint, wi, wj uint32, now int64) bool {
	return ei.rate.at(now)*float64(wj) <= ej.rate.at(now)*float64(wi)
}

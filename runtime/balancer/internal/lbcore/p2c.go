package lbcore

import (
	"math/bits"
	"slices"

	"github.com/lbclient/lbclient/runtime/internal/callinfo"
)

// maxStackCandidates is how many endpoints the avoid-set path handles
// without allocating (as a one-word bit set).
const maxStackCandidates = 64

// ChooseP2C returns the index in ready of the endpoint that takes the call
// ci describes (nil: a unary call, not hedged): of two distinct endpoints
// drawn at random (power of two choices, Mitzenmacher 2001), the one
// cheaper on Endpoint.Cost under p, by the rules of choose. For a hedged
// call, the endpoints its Attempts name are left out whenever an untried
// one exists. ready must not be empty. No allocation for up to 64
// endpoints.
func (t *Tracker) ChooseP2C(ready []Child, now int64, p *Params, ci *callinfo.Info) int {
	probe := true
	if ci != nil {
		// A stream measures nothing: it is no probe.
		probe = !ci.Stream
		if a := ci.Attempts; a != nil {
			if i, ok := t.chooseUntried(ready, now, p, a, probe); ok {
				return i
			}
		}
	}
	n := len(ready)
	if n == 1 {
		return 0
	}
	r := t.Rand()
	var i, j int
	if weighted(ready) {
		i, j = weightedPair(ready, r, t.Rand())
	} else {
		i, j = pair(r, n)
	}
	return t.choose(ready, i, j, now, p, r, probe)
}

// choose returns whichever of ready[i] and ready[j] should take the call.
// In order:
//
//  1. Probing. An endpoint with no unary call in flight that has had no
//     unary pick for its probe interval (p.ProbeInterval, longer while it
//     fails: see Endpoint.probeInterval) is due a probe, and wins over one
//     that is not.
//     Without it an endpoint whose estimate is high (a failure penalty, a
//     latency peak, an ejection) gets no call until the estimate decays
//     below its peers' (about tau × ln of the ratio: a minute), and with
//     no calls there is no sample to show it recovered. Busy endpoints are
//     never due, so the probe goes out only to those being avoided, one
//     per interval: claimProbe makes concurrent picks that drew the same
//     due endpoint agree on a single probe (the others take the other
//     endpoint drawn). A quiet client (a few calls per probe interval)
//     would find some avoided endpoint due at nearly every pick, and send
//     it a large share of its calls as probes; so probes also spend a
//     budget counted in picks, at most one in minPicksPerProbe, and while
//     it is spent due endpoints compare like any other.
//  2. Ejection. An endpoint that failed EjectAfter calls, or timed out
//     EjectAfterTimeouts, in a row (Failing) loses to one that did not, as
//     Envoy's outlier detection ejects it; being due a probe is how it gets
//     a call.
//  3. Cost, with noise in mind (see prefer): costs within noiseBand of
//     each other go by calls in flight, then take turns, so that identical
//     backends share a serial caller's calls instead of the one whose
//     estimate happens to be lowest taking all of them; beyond it the
//     cheaper wins all but always, softly, so that a real difference
//     decides (2× costlier: 9% of the draws; 3×: 0.4%). In a weighted
//     set, calls in flight and turns count per unit of weight (see
//     weights.go).
//
// r is the random word the pair was drawn from; the soft choice draws from
// a mix of it, so that a pick costs one random word. probe is false for a
// stream, which skips rule 1.
func (t *Tracker) choose(ready []Child, i, j int, now int64, p *Params, r uint64, probe bool) int {
	ei, ej := ready[i].EP, ready[j].EP
	var di, dj bool
	if probe {
		di, dj = ei.due(now, p.ProbeInterval), ej.due(now, p.ProbeInterval)
	}
	if di != dj {
		// Being due would decide: a probe, if the budget allows one.
		if mark, ok := t.probeBudget(ready); ok {
			if dj {
				i, j, ei = j, i, ej
			}
			if ei.claimProbe(now, p.ProbeInterval) && t.spendProbe(mark, ready) {
				ei.probes.Add(1)
				return i
			}
			return j // another pick sent the probe, or spent the budget
		}
		di, dj = false, false
	}
	if fi, fj := ei.Failing(), ej.Failing(); fi != fj {
		if fi {
			return j
		}
		return i
	}
	w, l := i, j
	if !t.prefer(&ready[i], &ready[j], now, p, mix(r)) {
		w, l = j, i
	}

	if di {
		// Both were due: cost decided which gets the probe, unless it
		// went out with a concurrent pick.
		if !ready[w].EP.claimProbe(now, p.ProbeInterval) {
			return l
		}
		ready[w].EP.probes.Add(1)
	}
	return w
}

// noiseBand is the cost ratio within which two endpoints count as equal:
// their estimates differ by less than the noise of a loaded machine's
// latencies (scheduling delays, GC pauses, the peak of the estimate).
const noiseBand = 1.5

// prefer reports whether ci's endpoint should take the call rather than
// cj's, given 64 random bits r:
//
//   - costs within noiseBand of each other are equal in latency, and the
//     one with fewer calls in flight wins (counts are exact, not noisy),
//     or, as loaded, the one picked longer ago, so that equal endpoints
//     take turns; in a weighted set, the one with fewer calls in flight
//     per unit of weight, then the one with the lower pick rate per unit
//     of weight;
//   - beyond it, the cheaper wins with probability ρ⁸/(1+ρ⁸), ρ being the
//     ratio of the costs over noiseBand (see softChoice).
//
// Why not the cheaper one always: costs are estimates, and the estimates
// of identical backends differ by noise. A strict comparison lets that
// noise decide every pick: with one serial caller nothing is in flight,
// cost is the estimate alone, and the endpoint whose estimate was lowest
// took every draw it was in (three identical backends got 1, 120 and 180
// of 300 calls; two got 165 and 1 calls a second, flipping every few
// seconds). Taking turns within the band shares a serial caller's calls
// evenly; the soft rule beyond it leaves the decision to differences well
// outside the noise, while an endpoint a little dearer than the band
// still gets some calls, and so samples that bring it back when its
// estimate was a fluke.
func (t *Tracker) prefer(chi, chj *Child, now int64, p *Params, r uint64) bool {
	ei, ej := chi.EP, chj.EP
	ci, cj := ei.Cost(now, p.Tau), ej.Cost(now, p.Tau)
	lo, hi := min(ci, cj), max(ci, cj)
	if hi <= lo*noiseBand {
		ni, nj := ei.InFlight(), ej.InFlight()
		if chi.cum == 0 { // unweighted
			if ni != nj {
				return ni < nj
			}
			return ei.lastPick.Load() <= ej.lastPick.Load()
		}
		if c := lessLoadedPerWeight(ni, nj, chi.Weight, chj.Weight); c != 0 {
			return c < 0
		}
		return lowerRatePerWeight(ei, ej, chi.Weight, chj.Weight, now)
	}
	// Weights are equal in an unweighted set (1, or all alike), and then
	// leave the odds as they are.
	return softChoice(ci, cj, chi.Weight, chj.Weight, r)
}

// softChoice reports whether the endpoint of cost ci and weight wi should
// win over the one of cost cj and weight wj, given 64 random bits r, when
// their costs differ by more than noiseBand: the dearer cost is taken over
// noiseBand, and the cheaper endpoint wins with probability b⁸/(a⁸+b⁸) of
// the two, each side's odds multiplied by its weight. A ratio of 2 then
// weighs as 1.33 (the dearer wins 9% of such draws), one of 3 as 2
// (0.4%), one of 10 as 6.7 (never, to a few parts in a million). So the
// soft zone is narrow: it lets an endpoint just beyond the noise get the
// odd call, whose answer brings it back if its estimate was a fluke, and
// keeps a backend that is 10× slower at rest, but only about 3× dearer
// than a busy fast one when the client itself is short of CPU, below 0.5%
// of the calls.
//
// Weights are prior odds, so that a real difference in latency still
// decides (3× dearer, a weight-3 endpoint wins 1.2% of such draws; 10×
// dearer, never), but the noise of a loaded machine, which often puts
// equal backends just beyond noiseBand of each other for a while, does not
// pull a weighted split towards an even one: with a serial caller over
// equal backends of weights 1 and 3, the heavy one took 63% of the calls
// when the odds ignored weight. Equal weights change nothing.
func softChoice(ci, cj float64, wi, wj uint32, r uint64) bool {
	if ci <= cj {
		cj /= noiseBand
	} else {
		ci /= noiseBand
	}
	a, b := ci*ci, cj*cj
	a, b = a*a, b*b
	a, b = a*a*float64(wj), b*b*float64(wi)
	if a+b == 0 {
		return r>>63 == 0
	}
	u := float64(r>>11) / (1 << 53) // uniform in [0, 1)
	return u*(a+b) < b
}

// mix turns the random word a pair was drawn from into one for the soft
// choice: a multiply by the 64-bit golden ratio (Fibonacci hashing), whose
// top bits depend on every bit of r, so that they are as good as fresh for
// a choice between the two the pair names.
func mix(r uint64) uint64 { return r * 0x9e3779b97f4a7c15 }

// minPicksPerProbe bounds probes to one pick in 20: 5% of a quiet client's
// calls at most, so an endpoint it avoids gets little of its traffic, and
// for a busy client (hundreds of calls per probe interval) no bound at all.
// A quiet client re-measures an avoided endpoint every 20 calls instead of
// every probe interval.
const minPicksPerProbe = 20

// pickCount sums the picks of the endpoints in ready. Only probes read it,
// so that picks pay for no shared counter.
func pickCount(ready []Child) uint64 {
	var n uint64
	for k := range ready {
		n += ready[k].EP.picks.Load()
	}
	return n
}

// probeBudget reports whether a probe may be sent: minPicksPerProbe picks
// over ready since the last probe. mark identifies the budget's state for
// spendProbe. When endpoints left since (the count went down), the budget
// starts over and allows a probe.
func (t *Tracker) probeBudget(ready []Child) (mark uint64, ok bool) {
	mark, n := t.probeMark.Load(), pickCount(ready)
	return mark, n < mark || n-mark >= minPicksPerProbe
}

// spendProbe spends the probe budget read as mark, and reports whether
// this pick did (rather than a concurrent one).
func (t *Tracker) spendProbe(mark uint64, ready []Child) bool {
	return t.probeMark.CompareAndSwap(mark, pickCount(ready))
}

// pair draws two distinct indices below n (n >= 2) from the random word r.
func pair(r uint64, n int) (int, int) {
	i := int(uint32(r) % uint32(n))
	j := int(uint32(r>>32) % uint32(n-1))
	if j >= i {
		j++
	}
	return i, j
}

// chooseUntried runs P2C over the endpoints a has not tried; ok is false
// when every ready endpoint was tried (the caller then ignores a). The
// untried endpoints are a bit set, on the stack up to 64 endpoints.
func (t *Tracker) chooseUntried(ready []Child, now int64, p *Params, a *callinfo.Attempts, probe bool) (int, bool) {
	var small [1]uint64
	set := small[:]
	if len(ready) > maxStackCandidates {
		set = make([]uint64, (len(ready)+63)/64)
	}
	n := 0
	for i := range ready {
		if !a.Tried(ready[i].EP.Addr) {
			set[i/64] |= 1 << (i % 64)
			n++
		}
	}
	switch n {
	case 0:
		return 0, false
	case 1:
		return nthBit(set, 0), true
	}
	r := t.Rand()
	x, y := pair(r, n)
	return t.choose(ready, nthBit(set, x), nthBit(set, y), now, p, r, probe), true
}

// nthBit returns the index of the n-th (from 0) set bit of set; there are
// more than n.
func nthBit(set []uint64, n int) int {
	for w, m := range set {
		if c := bits.OnesCount64(m); n >= c {
			n -= c
			continue
		}
		for range n {
			m &= m - 1 // clear the lowest set bit
		}
		return w*64 + bits.TrailingZeros64(m)
	}
	return -1 // unreachable while set has more than n bits
}

// AnyUntried reports whether some endpoint in children is ready and not in
// tried.
func AnyUntried(children []Child, tried []string) bool {
	for i := range children {
		if children[i].Ready && !slices.Contains(tried, children[i].EP.Addr) {
			return true
		}
	}
	return false
}

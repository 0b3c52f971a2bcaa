package lbcore

import "github.com/lbclient/lbclient/runtime/internal/callinfo"

// maxStackCandidates is how many untried endpoints the avoid-set path
// collects without allocating.
const maxStackCandidates = 64

// ChooseP2C returns the index in ready of the cheaper of two distinct
// endpoints drawn at random (power of two choices, Mitzenmacher 2001), the
// cost being Endpoint.Cost under p, except that an endpoint due a probe
// wins over one that is not (see cheaper). When a is non-nil (a hedged
// call), endpoints that a names are left out whenever an untried one
// exists. ready must not be empty. One random draw; no allocation for up to
// 64 untried endpoints.
func (t *Tracker) ChooseP2C(ready []Child, now int64, p *Params, a *callinfo.Attempts) int {
	if a != nil {
		if i, ok := t.chooseUntried(ready, now, p, a); ok {
			return i
		}
	}
	n := len(ready)
	if n == 1 {
		return 0
	}
	i, j := t.pair(n)
	return t.cheaper(ready, i, j, now, p)
}

// cheaper returns whichever of ready[i] and ready[j] should take the call.
//
// Probing: an endpoint with nothing in flight that has not been picked for
// p.ProbeInterval is due a probe, and is preferred to one that is not, as
// an endpoint never measured is preferred while idle. Without it an
// endpoint whose estimate is high (a failure penalty, a latency peak) gets
// no call until the estimate decays below its peers' (about tau × ln of
// the ratio: a minute), and with no calls there is no sample to show it
// recovered. Busy endpoints are never due, so the probe goes out only to
// those P2C was avoiding, one per interval: claimProbe makes concurrent
// picks that drew the same due endpoint agree on a single probe (the
// others take the other endpoint drawn). Two endpoints alike in this
// respect compare on cost, so among idle endpoints of a quiet client the
// faster still wins.
//
// A quiet client (a few calls per probe interval) would find some avoided
// endpoint due at nearly every pick, and send it a large share of its
// calls as probes. So probes also spend a budget counted in picks: at most
// one in minPicksPerProbe; while it is spent, due endpoints compare on
// cost like any other.
func (t *Tracker) cheaper(ready []Child, i, j int, now int64, p *Params) int {
	ei, ej := ready[i].EP, ready[j].EP
	di, dj := ei.due(now, p.ProbeInterval), ej.due(now, p.ProbeInterval)
	var mark uint64
	if di != dj {
		// Being due would decide: a probe, if the budget allows one.
		var ok bool
		if mark, ok = t.probeBudget(ready); !ok {
			di, dj = false, false
		}
	}
	if dj && !di || di == dj && ej.Cost(now, p.Tau) < ei.Cost(now, p.Tau) {
		i, j, di, dj, ei = j, i, dj, di, ej
	}
	if di {
		if !ei.claimProbe(now, p.ProbeInterval) {
			return j // another pick sent the probe
		}
		// Only a probe proper, one that wins by being due, spends the
		// budget; between two due endpoints cost decided.
		if !dj && !t.spendProbe(mark, ready) {
			return j // a concurrent pick spent the budget
		}
	}
	return i
}

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

// pair draws two distinct indices below n (n >= 2) from one random word.
func (t *Tracker) pair(n int) (int, int) {
	r := t.Rand()
	i := int(uint32(r) % uint32(n))
	j := int(uint32(r>>32) % uint32(n-1))
	if j >= i {
		j++
	}
	return i, j
}

// chooseUntried runs P2C over the endpoints a has not tried; ok is false
// when every ready endpoint was tried (the caller then ignores a).
func (t *Tracker) chooseUntried(ready []Child, now int64, p *Params, a *callinfo.Attempts) (int, bool) {
	var buf [maxStackCandidates]int
	cand := buf[:0]
	for i := range ready {
		if !a.Tried(ready[i].EP.Addr) {
			cand = append(cand, i)
		}
	}
	switch len(cand) {
	case 0:
		return 0, false
	case 1:
		return cand[0], true
	}
	x, y := t.pair(len(cand))
	return t.cheaper(ready, cand[x], cand[y], now, p), true
}

// AnyUntried reports whether some endpoint in children is ready and not
// named by a.
func AnyUntried(children []Child, a *callinfo.Attempts) bool {
	for i := range children {
		if children[i].Ready && !a.Tried(children[i].EP.Addr) {
			return true
		}
	}
	return false
}

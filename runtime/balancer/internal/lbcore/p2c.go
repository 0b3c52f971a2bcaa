package lbcore

import "github.com/lbclient/lbclient/runtime/internal/callinfo"

// maxStackCandidates is how many untried endpoints the avoid-set path
// collects without allocating.
const maxStackCandidates = 64

// ChooseP2C returns the index in ready of the cheaper of two distinct
// endpoints drawn at random (power of two choices, Mitzenmacher 2001), the
// cost being Endpoint.Cost. When a is non-nil (a hedged call), endpoints
// that a names are left out whenever an untried one exists. ready must not
// be empty. One random draw; no allocation for up to 64 untried endpoints.
func (t *Tracker) ChooseP2C(ready []Child, now int64, tau float64, a *callinfo.Attempts) int {
	if a != nil {
		if i, ok := t.chooseUntried(ready, now, tau, a); ok {
			return i
		}
	}
	n := len(ready)
	if n == 1 {
		return 0
	}
	i, j := t.pair(n)
	if ready[j].EP.Cost(now, tau) < ready[i].EP.Cost(now, tau) {
		return j
	}
	return i
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
func (t *Tracker) chooseUntried(ready []Child, now int64, tau float64, a *callinfo.Attempts) (int, bool) {
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
	i, j := cand[x], cand[y]
	if ready[j].EP.Cost(now, tau) < ready[i].EP.Cost(now, tau) {
		return j, true
	}
	return i, true
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

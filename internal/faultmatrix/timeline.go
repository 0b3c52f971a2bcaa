package faultmatrix

import (
	"slices"
	"sync"
	"time"
)

// RecoveredShare is the share, in fair shares (1/N), at or above which a
// backend counts as back to its share of the calls.
const RecoveredShare = 0.6

// timeline counts the calls of a run per bucket of time, by their start.
type timeline struct {
	index map[string]int // backend name → position
	width time.Duration
	start time.Time

	mu      sync.Mutex
	buckets []Bucket
}

func newTimeline(names []string, d, width time.Duration) *timeline {
	tl := &timeline{index: map[string]int{}, width: width}
	for i, n := range names {
		tl.index[n] = i
	}
	n := max(int((d+width-1)/width), 1)
	for i := range n {
		tl.buckets = append(tl.buckets, Bucket{Start: time.Duration(i) * width, Answered: make([]int, len(names))})
	}
	return tl
}

// begin marks the run's start.
func (tl *timeline) begin() { tl.start = time.Now() }

// since is the time since the run's start.
func (tl *timeline) since() time.Duration { return time.Since(tl.start) }

// add counts a call that started at at and was answered by backend, or
// lost with err.
func (tl *timeline) add(at time.Duration, backend string, err error) {
	k := min(int(at/tl.width), len(tl.buckets)-1)
	tl.mu.Lock()
	defer tl.mu.Unlock()
	b := &tl.buckets[k]
	if err != nil {
		b.Lost++
		return
	}
	if i, ok := tl.index[backend]; ok {
		b.Answered[i]++
	}
}

// recovery returns the time after which the odd backend's share of
// answered calls is at least RecoveredShare/N in every bucket: the end of
// the last bucket short of it (an empty bucket is short of it), 0 if none
// is. It reports false when the last bucket is short of it: no recovery
// within the run.
func recovery(o Outcome) (time.Duration, bool) {
	odd := slices.Index(o.Backends, o.Odd)
	want := RecoveredShare * o.FairShare()
	at, recovered := time.Duration(0), true
	for i, b := range o.Buckets {
		total := 0
		for _, n := range b.Answered {
			total += n
		}
		if total > 0 && odd >= 0 && float64(b.Answered[odd]) >= want*float64(total) {
			recovered = true
			continue
		}
		recovered = false
		at = o.Duration
		if i+1 < len(o.Buckets) {
			at = o.Buckets[i+1].Start
		}
	}
	return at, recovered
}

package hedge

import (
	"math"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"
)

// The adaptive delay is a percentile of a method's recent first-attempt
// latency, read from a log-linear histogram (the layout of HdrHistogram):
// each power of two between 1µs and 2^38ns (about 4.6 minutes) is split into
// 16 equal buckets, so a bucket is at most 1/16 (6.25%) of its value wide,
// and the percentile is interpolated linearly inside its bucket. Values
// outside the range count in the first or the last bucket.
//
// Memory is constant: two windows of 448 uint32 counts each (3.5 KiB per
// adaptive method). Samples go into the current window; when it holds
// windowSize samples it becomes the previous window and a fresh one starts.
// The percentile is read over both windows, so it always reflects between
// windowSize and 2×windowSize of the most recent samples, and a change of
// latency is fully reflected after at most 2×windowSize calls. Rotation by
// count rather than by time keeps the estimate statistically meaningful for
// methods called rarely, and makes it deterministic to test.
//
// A histogram was chosen over a streaming quantile estimator (P², t-digest,
// a stochastic-approximation "frugal" estimator) because its error is
// bounded by the bucket width for every distribution, it forgets old data
// simply, and any percentile can be read from it; streaming estimators
// either converge slowly, drift with non-stationary input or need tuning.
const (
	subBucketBits = 4
	subBuckets    = 1 << subBucketBits // buckets per power of two
	minExp        = 10                 // 2^10ns ≈ 1µs: the lowest bucket's start
	maxExp        = 38                 // 2^38ns ≈ 275s: the end of the range
	numBuckets    = (maxExp - minExp) * subBuckets

	// windowSize is the number of samples after which a window rotates.
	windowSize = 1000
	// minSamples is the number of samples below which the estimator has no
	// estimate and the fallback delay applies. A 95th percentile read from
	// fewer than 100 samples rests on a handful of them.
	minSamples = 100
	// refreshEvery is how often, in samples, the cached estimate is
	// recomputed; reading it costs one atomic load.
	refreshEvery = 16
)

// estimator estimates a percentile of a stream of durations. Record and
// Estimate are safe for concurrent use; Estimate is one atomic load.
type estimator struct {
	q float64 // the quantile, in (0, 1)

	mu      sync.Mutex
	cur     *[numBuckets]uint32
	prev    *[numBuckets]uint32
	curN    int // samples in cur
	prevN   int // samples in prev
	pending int // samples since the estimate was last computed

	est atomic.Int64 // the cached estimate in ns; 0 while there is none
}

func newEstimator(percentile float64) *estimator {
	return &estimator{
		q:    percentile / 100,
		cur:  new([numBuckets]uint32),
		prev: new([numBuckets]uint32),
	}
}

// bucketOf returns the index of the bucket that holds v nanoseconds.
func bucketOf(v int64) int {
	if v < 1<<minExp {
		return 0
	}
	if v >= 1<<maxExp {
		return numBuckets - 1
	}
	exp := bits.Len64(uint64(v)) - 1 // minExp ≤ exp < maxExp
	sub := int(v>>(exp-subBucketBits)) - subBuckets
	return (exp-minExp)*subBuckets + sub
}

// bucketBounds returns the lowest value of bucket i and its width.
func bucketBounds(i int) (lo, width int64) {
	exp := minExp + i/subBuckets
	sub := int64(i % subBuckets)
	width = int64(1) << (exp - subBucketBits)
	return (subBuckets + sub) * width, width
}

// Record adds one sample.
func (e *estimator) Record(d time.Duration) {
	b := bucketOf(int64(d))
	e.mu.Lock()
	e.cur[b]++
	e.curN++
	e.pending++
	if e.curN >= windowSize {
		e.prev, e.cur = e.cur, e.prev
		clear(e.cur[:])
		e.prevN, e.curN = e.curN, 0
		e.refreshLocked()
	} else if e.pending >= refreshEvery || e.est.Load() == 0 && e.curN+e.prevN >= minSamples {
		e.refreshLocked()
	}
	e.mu.Unlock()
}

// Estimate returns the current estimate, and false while fewer than
// minSamples samples have been recorded.
func (e *estimator) Estimate() (time.Duration, bool) {
	v := e.est.Load()
	return time.Duration(v), v > 0
}

func (e *estimator) refreshLocked() {
	e.pending = 0
	n := e.curN + e.prevN
	if n < minSamples {
		return
	}
	// The rank of the percentile among n samples, counted from 0, is
	// q×(n-1); find the bucket that holds it and interpolate inside it,
	// taking the bucket's samples as spread evenly over its width.
	rank := e.q * float64(n-1)
	var seen float64
	for i := range numBuckets {
		c := float64(e.cur[i]) + float64(e.prev[i])
		if c == 0 {
			continue
		}
		if seen+c > rank {
			lo, w := bucketBounds(i)
			v := float64(lo) + (rank-seen+0.5)/c*float64(w)
			e.est.Store(max(1, int64(math.Round(v))))
			return
		}
		seen += c
	}
	lo, w := bucketBounds(numBuckets - 1)
	e.est.Store(lo + w)
}

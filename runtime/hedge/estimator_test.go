package hedge

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBucketLayout(t *testing.T) {
	var end int64
	for i := range numBuckets {
		lo, w := bucketBounds(i)
		if i > 0 && lo != end {
			t.Fatalf("bucket %d starts at %d, want %d where bucket %d ends", i, lo, end, i-1)
		}
		if w*subBuckets > lo {
			t.Fatalf("bucket %d is %d wide at %d: more than 1/%d of its value", i, w, lo, subBuckets)
		}
		for _, v := range []int64{lo, lo + w/2, lo + w - 1} {
			if got := bucketOf(v); got != i {
				t.Fatalf("bucketOf(%d) = %d, want %d", v, got, i)
			}
		}
		end = lo + w
	}
	if got := bucketOf(0); got != 0 {
		t.Errorf("bucketOf(0) = %d, want 0", got)
	}
	if got := bucketOf(math.MaxInt64); got != numBuckets-1 {
		t.Errorf("bucketOf(max) = %d, want %d", got, numBuckets-1)
	}
}

// exactQuantile is the estimator's definition over the raw samples: the
// value at rank q×(n-1), interpolated between neighbours.
func exactQuantile(samples []time.Duration, q float64) float64 {
	s := slices.Clone(samples)
	slices.Sort(s)
	r := q * float64(len(s)-1)
	i := int(r)
	if i+1 >= len(s) {
		return float64(s[i])
	}
	return float64(s[i]) + (r-float64(i))*float64(s[i+1]-s[i])
}

func TestEstimatorAccuracy(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	dists := []struct {
		name string
		draw func() time.Duration
	}{
		{"uniform 1-100ms", func() time.Duration {
			return time.Millisecond + time.Duration(rng.Int64N(int64(99*time.Millisecond)))
		}},
		{"exponential mean 20ms", func() time.Duration {
			return time.Duration(rng.ExpFloat64() * float64(20*time.Millisecond))
		}},
		{"lognormal median 5ms", func() time.Duration {
			return time.Duration(math.Exp(rng.NormFloat64()*0.8) * float64(5*time.Millisecond))
		}},
		{"bimodal 2ms and 200ms", func() time.Duration {
			if rng.IntN(10) == 0 {
				return 200*time.Millisecond + time.Duration(rng.Int64N(int64(20*time.Millisecond)))
			}
			return 2*time.Millisecond + time.Duration(rng.Int64N(int64(time.Millisecond)))
		}},
	}
	worst := 0.0
	for _, d := range dists {
		for _, pct := range []float64{50, 90, 95, 99} {
			e := newEstimator(pct)
			var all []time.Duration
			for range 1900 {
				v := d.draw()
				all = append(all, v)
				e.Record(v)
			}
			// After 1900 samples the estimator holds the last 1900 (one
			// rotation at 1000); its estimate is refreshed every 16.
			e.mu.Lock()
			e.refreshLocked()
			e.mu.Unlock()
			got, ok := e.Estimate()
			if !ok {
				t.Fatalf("%s p%v: no estimate after 1900 samples", d.name, pct)
			}
			want := exactQuantile(all, pct/100)
			rel := math.Abs(float64(got)-want) / want
			worst = max(worst, rel)
			if rel > 1.0/subBuckets {
				t.Errorf("%s p%v = %v, want %v within %.1f%% (off by %.2f%%)",
					d.name, pct, got, time.Duration(want), 100.0/subBuckets, rel*100)
			}
		}
	}
	t.Logf("worst relative error: %.2f%%", worst*100)
}

func TestEstimatorNeedsMinSamples(t *testing.T) {
	e := newEstimator(95)
	for i := range minSamples - 1 {
		e.Record(time.Duration(i+1) * time.Millisecond)
	}
	if d, ok := e.Estimate(); ok {
		t.Fatalf("estimate %v after %d samples, want none before %d", d, minSamples-1, minSamples)
	}
	e.Record(time.Second)
	if _, ok := e.Estimate(); !ok {
		t.Fatalf("no estimate after %d samples", minSamples)
	}
}

func TestEstimatorForgets(t *testing.T) {
	e := newEstimator(95)
	for range 5 * windowSize {
		e.Record(100 * time.Millisecond)
	}
	// After 2×windowSize samples of the new latency, the old is gone.
	for range 2 * windowSize {
		e.Record(time.Millisecond)
	}
	d, _ := e.Estimate()
	if d < 900*time.Microsecond || d > 1100*time.Microsecond {
		t.Errorf("estimate = %v, want about 1ms once the old samples rotated out", d)
	}
}

func TestEstimatorConcurrent(t *testing.T) {
	e := newEstimator(95)
	done := make(chan struct{})
	for g := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 3000 {
				e.Record(time.Duration(g*1000+i%1000+1) * time.Microsecond)
				e.Estimate()
			}
		}()
	}
	for range 4 {
		<-done
	}
	if _, ok := e.Estimate(); !ok {
		t.Error("no estimate after 12000 samples")
	}
}

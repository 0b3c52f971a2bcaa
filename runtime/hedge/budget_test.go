package hedge

import (
	"sync"
	"testing"
)

func TestBudgetLongRun(t *testing.T) {
	for _, tc := range []struct {
		ratio float64
		burst int
		calls int
		// want is the extra attempts granted when every call asks for four:
		// burst + ⌊ratio×(calls-1)⌋, as the first call's deposit finds the
		// bucket full; within the documented bound, burst + ratio×calls.
		want int
	}{
		{ratio: 0.1, burst: 10, calls: 1000, want: 10 + 99},
		{ratio: 0.1, burst: 1, calls: 1000, want: 1 + 99},
		{ratio: 0, burst: 3, calls: 1000, want: 3},
		{ratio: 0.25, burst: 2, calls: 8, want: 2 + 1},
		{ratio: 4, burst: 4, calls: 100, want: 400},
	} {
		b := newBudget(tc.ratio, tc.burst)
		got := 0
		for range tc.calls {
			b.deposit()
			for range 4 {
				if b.take() {
					got++
				}
			}
		}
		if got != tc.want {
			t.Errorf("WithBudget(%v, %d), %d calls: %d extra attempts, want %d", tc.ratio, tc.burst, tc.calls, got, tc.want)
		}
	}
}

func TestBudgetConcurrent(t *testing.T) {
	b := newBudget(0.1, 10)
	var mu sync.Mutex
	var wg sync.WaitGroup
	got := 0
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				b.deposit()
				if b.take() {
					mu.Lock()
					got++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if limit := 10 + 8000/10; got > limit {
		t.Errorf("%d extra attempts granted over 8000 calls, want at most %d", got, limit)
	}
}

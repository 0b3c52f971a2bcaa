// Package loadgen drives a closed-loop load through a client and tallies
// what happened: latency percentiles, calls per backend, errors. The demo,
// the scenario tests and the benchmarks share it, so that they measure the
// same way.
package loadgen

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Call makes one call and returns the name of the backend that answered.
type Call func(ctx context.Context, i int) (backend string, err error)

// Load is a closed-loop load: Workers callers, each starting its next call
// when the last ends, until Calls calls are made or MaxDuration has passed,
// whichever comes first. Both bounds are required, so a load always stops
// by itself. A call under way when MaxDuration passes is let finish, for
// up to Grace more, so that a load stopped on time does not count calls it
// cut off as failures.
type Load struct {
	Calls       int
	Workers     int
	MaxDuration time.Duration
	// Between, when set, runs after every call: a hook to change the
	// backends mid-run (for example, stop one at call 500).
	Between func(i int)
	// Grace is how long the calls under way at MaxDuration may still
	// take, after which their context ends; 0 means DefaultGrace.
	Grace time.Duration
}

// DefaultGrace is Load.Grace's default.
const DefaultGrace = 10 * time.Second

// Result tallies a run.
type Result struct {
	Latencies  []time.Duration // of every call, sorted
	PerBackend map[string]int  // answered calls per backend
	Errors     int
	FirstError error
	Elapsed    time.Duration
}

// Run drives the load through call.
func (l Load) Run(ctx context.Context, call Call) (Result, error) {
	if l.Calls <= 0 || l.Workers <= 0 || l.MaxDuration <= 0 {
		return Result{}, fmt.Errorf("loadgen: Calls (%d), Workers (%d) and MaxDuration (%v) must all be positive", l.Calls, l.Workers, l.MaxDuration)
	}
	grace := l.Grace
	if grace <= 0 {
		grace = DefaultGrace
	}
	ctx, cancel := context.WithTimeout(ctx, l.MaxDuration+grace)
	defer cancel()
	stop := time.Now().Add(l.MaxDuration) // no call starts after it

	var (
		next atomic.Int64
		mu   sync.Mutex
		// Calls is a bound, not a promise: a load stopped by MaxDuration
		// may make far fewer, so only a modest number is reserved.
		res   = Result{PerBackend: map[string]int{}, Latencies: make([]time.Duration, 0, min(l.Calls, 1<<16))}
		wg    sync.WaitGroup
		start = time.Now()
	)
	for range l.Workers {
		wg.Go(func() {
			for ctx.Err() == nil && time.Now().Before(stop) {
				i := int(next.Add(1)) - 1
				if i >= l.Calls {
					return
				}
				t0 := time.Now()
				backend, err := call(ctx, i)
				d := time.Since(t0)
				mu.Lock()
				res.Latencies = append(res.Latencies, d)
				if err != nil {
					res.Errors++
					if res.FirstError == nil {
						res.FirstError = err
					}
				} else {
					res.PerBackend[backend]++
				}
				mu.Unlock()
				if l.Between != nil {
					l.Between(i)
				}
			}
		})
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	slices.Sort(res.Latencies)
	return res, nil
}

// Percentile returns the p-th percentile (0 < p ≤ 100) of the sorted
// latencies, by the nearest-rank method; 0 when there are none.
func (r Result) Percentile(p float64) time.Duration {
	n := len(r.Latencies)
	if n == 0 {
		return 0
	}
	rank := int(p/100*float64(n) + 0.999999999)
	rank = min(max(rank, 1), n)
	return r.Latencies[rank-1]
}

// Share returns the fraction of answered calls that backend answered.
func (r Result) Share(backend string) float64 {
	total := 0
	for _, n := range r.PerBackend {
		total += n
	}
	if total == 0 {
		return 0
	}
	return float64(r.PerBackend[backend]) / float64(total)
}

// Package closedloop runs a closed loop of calls in the background, for
// tests and benchmarks that change a fleet under load and then count what
// the load saw: every worker makes its next call as soon as the last one
// ends, until Stop or a time limit, whichever comes first.
package closedloop

import (
	"sync"
	"sync/atomic"
	"time"
)

// Load is a running closed loop.
type Load struct {
	stop          chan struct{}
	once          sync.Once
	wg            sync.WaitGroup
	calls, failed atomic.Int64
	mu            sync.Mutex
	errs          []error // the first few failures
}

// maxErrs is how many failures Load keeps for its report.
const maxErrs = 5

// Start starts workers goroutines calling call (with the worker's index and
// its call's number) until Stop, or until limit has passed, so that a load
// a test forgets to stop still ends by itself. call makes one call and
// returns its error; it bounds the call's own time.
func Start(workers int, limit time.Duration, call func(worker int, n int64) error) *Load {
	l := &Load{stop: make(chan struct{})}
	end := time.Now().Add(limit)
	for w := range workers {
		l.wg.Go(func() {
			for n := int64(0); time.Now().Before(end); n++ {
				select {
				case <-l.stop:
					return
				default:
				}
				err := call(w, n)
				l.calls.Add(1)
				if err != nil {
					l.failed.Add(1)
					l.mu.Lock()
					if len(l.errs) < maxErrs {
						l.errs = append(l.errs, err)
					}
					l.mu.Unlock()
				}
			}
		})
	}
	return l
}

// Calls returns the number of calls made so far, failed or not.
func (l *Load) Calls() int64 { return l.calls.Load() }

// Stop ends the loop, waits for the calls under way, and returns the
// number of calls made, failed, and the first failures. It may be called
// more than once.
func (l *Load) Stop() (calls, failed int64, errs []error) {
	l.once.Do(func() { close(l.stop) })
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.calls.Load(), l.failed.Load(), l.errs
}

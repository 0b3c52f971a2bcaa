package loadgen

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRunCountsEveryCall(t *testing.T) {
	l := Load{Calls: 100, Workers: 4, MaxDuration: time.Minute}
	res, err := l.Run(context.Background(), func(_ context.Context, i int) (string, error) {
		if i%10 == 0 {
			return "", errors.New("boom")
		}
		return []string{"a", "b"}[i%2], nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(res.Latencies); got != 100 {
		t.Errorf("recorded %d latencies, want 100", got)
	}
	if res.Errors != 10 || res.FirstError == nil {
		t.Errorf("Errors = %d (first %v), want 10", res.Errors, res.FirstError)
	}
	// Calls 0, 10, ... 90 fail, and all are even: "a" answers 40, "b" 50.
	if res.PerBackend["a"] != 40 || res.PerBackend["b"] != 50 {
		t.Errorf("PerBackend = %v, want a:40 b:50", res.PerBackend)
	}
	if got := res.Share("b"); got != 50.0/90 {
		t.Errorf("Share(b) = %v, want %v", got, 50.0/90)
	}
}

func TestRunStopsAtMaxDuration(t *testing.T) {
	// A call that never ends by itself ends with the grace after the
	// time bound; no call starts after the bound.
	l := Load{Calls: 1 << 30, Workers: 2, MaxDuration: 20 * time.Millisecond, Grace: 10 * time.Millisecond}
	res, err := l.Run(context.Background(), func(ctx context.Context, _ int) (string, error) {
		<-ctx.Done()
		return "", ctx.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Latencies) != 2 || res.Errors != 2 {
		t.Errorf("made %d calls, %d failed; want 2 and 2: one per worker, each ended by the time bound and its grace", len(res.Latencies), res.Errors)
	}
}

// TestRunLetsCallsUnderWayFinish: calls under way at MaxDuration finish
// (within the grace) and count as answered, not as failures.
func TestRunLetsCallsUnderWayFinish(t *testing.T) {
	l := Load{Calls: 1 << 30, Workers: 3, MaxDuration: 30 * time.Millisecond}
	res, err := l.Run(context.Background(), func(ctx context.Context, _ int) (string, error) {
		select {
		case <-time.After(25 * time.Millisecond):
			return "a", nil
		case <-ctx.Done():
			return "", ctx.Err()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || res.PerBackend["a"] < 3 {
		t.Errorf("%d answered, %d failed (first %v): want every call answered", res.PerBackend["a"], res.Errors, res.FirstError)
	}
}

func TestRunRejectsUnboundedLoads(t *testing.T) {
	for _, l := range []Load{{Workers: 1, MaxDuration: time.Second}, {Calls: 1, MaxDuration: time.Second}, {Calls: 1, Workers: 1}} {
		if _, err := l.Run(context.Background(), nil); err == nil {
			t.Errorf("Run(%+v) = nil error, want one", l)
		}
	}
}

func TestPercentile(t *testing.T) {
	var r Result
	for i := 1; i <= 1000; i++ {
		r.Latencies = append(r.Latencies, time.Duration(i))
	}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{{50, 500}, {99, 990}, {99.9, 999}, {100, 1000}, {0.01, 1}} {
		if got := r.Percentile(tc.p); got != tc.want {
			t.Errorf("Percentile(%v) = %v, want %v", tc.p, got, tc.want)
		}
	}
	if got := (Result{}).Percentile(50); got != 0 {
		t.Errorf("Percentile of nothing = %v, want 0", got)
	}
}

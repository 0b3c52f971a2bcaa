package closedloop

import (
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestCountsAndStops(t *testing.T) {
	bad := errors.New("bad")
	l := Start(3, time.Minute, func(w int, n int64) error {
		time.Sleep(time.Millisecond)
		if n%2 == 1 {
			return bad
		}
		return nil
	})
	time.Sleep(50 * time.Millisecond)
	calls, failed, errs := l.Stop()
	if calls < 6 || failed == 0 || failed > calls/2+3 {
		t.Errorf("%d calls, %d failed: want several, about every other one failed", calls, failed)
	}
	if len(errs) == 0 || len(errs) > maxErrs || !errors.Is(errs[0], bad) {
		t.Errorf("kept errors %v, want 1 to %d of %v", errs, maxErrs, bad)
	}
	again, _, _ := l.Stop() // a second Stop returns the same counts
	if again != calls {
		t.Errorf("second Stop: %d calls, first %d", again, calls)
	}
}

func TestEndsByItself(t *testing.T) {
	l := Start(2, 20*time.Millisecond, func(int, int64) error { time.Sleep(time.Millisecond); return nil })
	time.Sleep(100 * time.Millisecond)
	before := l.Calls()
	time.Sleep(30 * time.Millisecond)
	if after := l.Calls(); before == 0 || after != before {
		t.Errorf("calls %d, then %d, with no Stop: want some, then none past the 20ms limit", before, after)
	}
	l.Stop()
}

package discovery

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/lbclient/lbclient/runtime"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestChange runs the file and DNS changes once under PEAK_EWMA and checks
// what the goals rest on: counts, not times.
func TestChange(t *testing.T) {
	for _, src := range []string{"file", "dns"} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		r, err := RunChange(ctx, src, runtime.PeakEWMA, 4)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%+v", r)
		if r.Failed != 0 || r.LateCalls != 0 {
			t.Errorf("%s: %d of %d calls failed, %d reached the removed backend late", src, r.Failed, r.Calls, r.LateCalls)
		}
		if r.Share < 0.6 {
			t.Errorf("%s: the added backend took %.2f of its share", src, r.Share)
		}
	}
}

func TestSplit(t *testing.T) {
	for _, p := range []runtime.Policy{runtime.PeakEWMA, runtime.ConsistentHash} {
		r, err := RunSplit(context.Background(), p, 4, 2000)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%+v", r)
		if r.Failed != 0 || r.Heavy < 0.75*0.9 || r.Heavy > 0.75*1.1 {
			t.Errorf("%v: heavy share %.3f, %d failed; want 0.75 ±10%%, none", p, r.Heavy, r.Failed)
		}
	}
}

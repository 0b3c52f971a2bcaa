package peakewma

import (
	"context"
	rand "math/rand/v2"
	"testing"

	"google.golang.org/grpc/balancer"

	"github.com/lbclient/lbclient/runtime/balancer/internal/lbcore"
	"github.com/lbclient/lbclient/runtime/balancer/internal/lbtest"
	"github.com/lbclient/lbclient/runtime/internal/callinfo"
)

// newTestPicker builds the policy's picker over READY endpoints addrs with
// a fake clock (returned) and seeded randomness.
func newTestPicker(t *testing.T, addrs ...string) (*picker, *int64) {
	t.Helper()
	now := new(int64)
	tr := lbcore.NewTracker(func() int64 { return *now }, rand.New(rand.NewPCG(1, 2)).Uint64)
	all, ready := tr.Sync(lbtest.ChildStates(addrs, nil, nil))
	return pickerBuilder{}.Build(defaultConfig(), tr, all, ready).(*picker), now
}

func TestPickerAvoidsSlowAndBusy(t *testing.T) {
	p, now := newTestPicker(t, "fast", "slow", "busy")
	info := balancer.PickInfo{Ctx: context.Background()}
	// Teach the picker: one response each, "slow" at 50ms, the others 1ms.
	for _, a := range []string{"fast", "slow", "busy"} {
		for _, c := range p.ready {
			if c.EP.Addr == a {
				res, err := p.t.Pick(&c, info, *now, &callinfo.Info{}, 0)
				if err != nil {
					t.Fatal(err)
				}
				lat := int64(1e6)
				if a == "slow" {
					lat = 50e6
				}
				*now += lat
				res.Done(balancer.DoneInfo{BytesSent: true, BytesReceived: true})
			}
		}
	}
	// "busy" holds 1000 calls; they stay in flight. (Over the 52 s of the
	// run its unsampled estimate decays to the 100µs floor: 1000 calls in
	// flight still cost more than one at 50ms.)
	for _, c := range p.ready {
		if c.EP.Addr == "busy" {
			for range 1000 {
				if _, err := p.t.Pick(&c, info, *now, &callinfo.Info{}, 0); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	count := map[string]int{}
	for range 3000 {
		res, err := p.Pick(info)
		if err != nil {
			t.Fatal(err)
		}
		a := lbtest.AddrOf(res)
		count[a]++
		// Each endpoint keeps answering at its latency: the estimate
		// follows the latest responses, so answers at another latency
		// would change the costs under test.
		if a == "slow" {
			*now += 50e6
		} else {
			*now += 1e6
		}
		res.Done(balancer.DoneInfo{BytesSent: true, BytesReceived: true})
	}
	// P2C with distinct draws: the costliest endpoint is never chosen, the
	// cheapest is chosen whenever drawn (2/3 of draws), the middle one when
	// drawn with the costliest (1/3).
	if count["busy"] != 0 {
		t.Errorf("busy endpoint got %d calls, want 0", count["busy"])
	}
	if f := float64(count["fast"]) / 3000; f < 0.6 || f > 0.73 {
		t.Errorf("fast endpoint got %.0f%% of calls, want about 67%%", 100*f)
	}
}

func TestPickerHedgedCallAvoidsTried(t *testing.T) {
	p, _ := newTestPicker(t, "a", "b", "c", "d")
	for range 100 {
		a := new(callinfo.Attempts)
		a.Add("a")
		a.Add("b")
		res, err := p.Pick(balancer.PickInfo{Ctx: callinfo.WithAttempts(context.Background(), a)})
		if err != nil {
			t.Fatal(err)
		}
		got := lbtest.AddrOf(res)
		if got == "a" || got == "b" {
			t.Fatalf("hedged attempt went to tried endpoint %s", got)
		}
		if tried := a.Addrs(); len(tried) != 3 || tried[2] != got {
			t.Fatalf("attempts = %v, want the pick (%s) added", tried, got)
		}
		res.Done(balancer.DoneInfo{BytesSent: true, BytesReceived: true})
	}
}

func TestPickerAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items on purpose under the race detector")
	}
	p, _ := newTestPicker(t, "a", "b", "c")
	ctx, cancel := context.WithCancel(callinfo.WithHashKey(context.Background(), "k"))
	defer cancel()
	info := balancer.PickInfo{FullMethodName: "/s/m", Ctx: ctx}
	if allocs := testing.AllocsPerRun(1000, func() {
		res, _ := p.Pick(info)
		res.Done(balancer.DoneInfo{BytesSent: true, BytesReceived: true})
	}); allocs != 0 {
		t.Fatalf("Pick+Done: %v allocations, want 0", allocs)
	}
}

package consistenthash

import (
	"context"
	"fmt"
	"math"
	rand "math/rand/v2"
	"testing"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/endpointsharding"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/resolver"

	"github.com/lbclient/lbclient/runtime/balancer/internal/lbcore"
	"github.com/lbclient/lbclient/runtime/internal/callinfo"
)

// scPicker stands for a pickfirst child: it returns its SubConn.
type scPicker struct{ sc balancer.SubConn }

func (p scPicker) Pick(balancer.PickInfo) (balancer.PickResult, error) {
	return balancer.PickResult{SubConn: p.sc}, nil
}

type fakeSubConn struct {
	balancer.SubConn
	addr string
}

func addrOf(res balancer.PickResult) string { return res.SubConn.(*fakeSubConn).addr }

// newTestPicker builds the policy's picker over addrs (READY unless listed
// in down) with cfg, a fake clock and seeded randomness.
func newTestPicker(t *testing.T, cfg *LBConfig, addrs []string, down ...string) *picker {
	t.Helper()
	tr := lbcore.NewTracker(func() int64 { return 0 }, rand.New(rand.NewPCG(1, 2)).Uint64)
	var cs []endpointsharding.ChildState
	for _, a := range addrs {
		s := connectivity.Ready
		for _, d := range down {
			if d == a {
				s = connectivity.TransientFailure
			}
		}
		cs = append(cs, endpointsharding.ChildState{
			Endpoint: resolver.Endpoint{Addresses: []resolver.Address{{Addr: a}}},
			State:    balancer.State{ConnectivityState: s, Picker: scPicker{&fakeSubConn{addr: a}}},
		})
	}
	all, ready := tr.Sync(cs)
	return (&pickerBuilder{}).Build(cfg, tr, all, ready).(*picker)
}

func keyInfo(key string) balancer.PickInfo {
	return balancer.PickInfo{Ctx: callinfo.WithHashKey(context.Background(), key)}
}

func TestPickerAffinityUnderLightLoad(t *testing.T) {
	addrs := endpointAddrs(5)
	p := newTestPicker(t, defaultConfig(), addrs)
	r := newRing(addrs, DefaultVirtualNodes)
	for i := range 1000 {
		k := fmt.Sprintf("customer-%d", i)
		for range 3 {
			res, err := p.Pick(keyInfo(k))
			if err != nil {
				t.Fatal(err)
			}
			if got, want := addrOf(res), owner(r, addrs, k); got != want {
				t.Fatalf("key %q went to %s, want its owner %s", k, got, want)
			}
			res.Done(balancer.DoneInfo{})
		}
	}
}

func TestPickerSkipsEndpointsNotReady(t *testing.T) {
	addrs := endpointAddrs(5)
	r := newRing(addrs, DefaultVirtualNodes)
	down := addrs[2]
	p := newTestPicker(t, defaultConfig(), addrs, down)
	moved := 0
	for i := range 2000 {
		k := fmt.Sprintf("k%d", i)
		res, err := p.Pick(keyInfo(k))
		if err != nil {
			t.Fatal(err)
		}
		got := addrOf(res)
		if got == down {
			t.Fatalf("key %q went to the endpoint in TRANSIENT_FAILURE", k)
		}
		if owner(r, addrs, k) != down && got != owner(r, addrs, k) {
			t.Fatalf("key %q of a READY endpoint moved to %s", k, got)
		}
		if owner(r, addrs, k) == down {
			moved++
		}
		res.Done(balancer.DoneInfo{})
	}
	if moved == 0 {
		t.Fatal("no key belonged to the endpoint that went down")
	}
}

func TestPickerWithoutKeyUsesP2C(t *testing.T) {
	p := newTestPicker(t, defaultConfig(), endpointAddrs(4))
	count := map[string]int{}
	info := balancer.PickInfo{Ctx: context.Background()}
	var dones []func(balancer.DoneInfo)
	for range 400 {
		res, err := p.Pick(info)
		if err != nil {
			t.Fatalf("keyless call refused: %v", err)
		}
		count[addrOf(res)]++
		dones = append(dones, res.Done)
	}
	// Same latency estimate everywhere and no call finished: cost is the
	// in-flight count, and P2C keeps the endpoints level.
	for a, n := range count {
		if n < 90 || n > 110 {
			t.Errorf("%s got %d of 400 keyless calls, want about 100", a, n)
		}
	}
	for _, d := range dones {
		d(balancer.DoneInfo{})
	}
}

func TestPickerHedgedCallAvoidsTried(t *testing.T) {
	addrs := endpointAddrs(4)
	p := newTestPicker(t, defaultConfig(), addrs)
	r := newRing(addrs, DefaultVirtualNodes)
	for i := range 200 {
		k := fmt.Sprintf("k%d", i)
		home := owner(r, addrs, k)
		a := new(callinfo.Attempts)
		a.Add(home)
		res, err := p.Pick(balancer.PickInfo{Ctx: callinfo.WithAttempts(callinfo.WithHashKey(context.Background(), k), a)})
		if err != nil {
			t.Fatal(err)
		}
		got := addrOf(res)
		if got == home {
			t.Fatalf("hedge of key %q went back to %s", k, home)
		}
		if tried := a.Addrs(); len(tried) != 2 || tried[1] != got {
			t.Fatalf("attempts %v, want the pick %s added", tried, got)
		}
		res.Done(balancer.DoneInfo{})
	}
}

// TestBoundedLoadZipf drives the picker with a Zipf(1.1) key stream, a
// deterministic model of in-flight calls (up to 64 outstanding; when full,
// a random one completes), and checks the bound of Mirrokni et al. at every
// pick: the chosen endpoint holds at most ceil(c × (in-flight + 1) / N).
func TestBoundedLoadZipf(t *testing.T) {
	run := func(t *testing.T, factor float64) (maxOverAvg float64, violations int) {
		const n, outstanding, picks = 8, 64, 50000
		cfg := defaultConfig()
		cfg.BalanceFactor = factor
		p := newTestPicker(t, cfg, endpointAddrs(n))
		rng := rand.New(rand.NewPCG(11, 13))
		zipf := rand.NewZipf(rng, 1.1, 1, 9999)
		var dones []func(balancer.DoneInfo)
		load := func(addr string) int64 {
			for _, c := range p.all {
				if c.EP.Addr == addr {
					return c.EP.InFlight()
				}
			}
			return -1
		}
		for range picks {
			if len(dones) == outstanding {
				i := rng.IntN(len(dones))
				dones[i](balancer.DoneInfo{})
				dones[i] = dones[len(dones)-1]
				dones = dones[:len(dones)-1]
			}
			total := p.t.InFlight()
			limit := int64(math.Ceil(1.25 * float64(total+1) / n))
			res, err := p.Pick(keyInfo(fmt.Sprintf("key-%d", zipf.Uint64())))
			if err != nil {
				t.Fatal(err)
			}
			l := load(addrOf(res))
			if l > limit {
				violations++
			}
			if total+1 >= outstanding/2 { // the ratio is noise at tiny totals
				maxOverAvg = max(maxOverAvg, float64(l)/(float64(total+1)/n))
			}
			dones = append(dones, res.Done)
		}
		for _, d := range dones {
			d(balancer.DoneInfo{})
		}
		if p.t.InFlight() != 0 {
			t.Fatalf("%d calls still counted in flight", p.t.InFlight())
		}
		return maxOverAvg, violations
	}
	t.Run("bounded", func(t *testing.T) {
		ratio, violations := run(t, DefaultBalanceFactor)
		t.Logf("c=1.25: busiest endpoint at pick time held %.2f × the average", ratio)
		if violations != 0 {
			t.Errorf("%d picks exceeded ceil(1.25 × average)", violations)
		}
	})
	t.Run("unbounded for contrast", func(t *testing.T) {
		ratio, violations := run(t, MaxBalanceFactor)
		t.Logf("c=100: busiest endpoint at pick time held %.2f × the average", ratio)
		if violations == 0 {
			t.Errorf("the Zipf stream never overloaded an endpoint without the bound; the test proves nothing")
		}
	})
}

func TestPickerAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items on purpose under the race detector")
	}
	p := newTestPicker(t, defaultConfig(), endpointAddrs(4))
	for name, info := range map[string]balancer.PickInfo{
		"keyed":   keyInfo("customer-42"),
		"keyless": {Ctx: context.Background()},
	} {
		if allocs := testing.AllocsPerRun(1000, func() {
			res, _ := p.Pick(info)
			res.Done(balancer.DoneInfo{})
		}); allocs != 0 {
			t.Errorf("%s Pick+Done: %v allocations, want 0", name, allocs)
		}
	}
}

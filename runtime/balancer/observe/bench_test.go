package observe_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/connectivity"
	estats "google.golang.org/grpc/experimental/stats"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/serviceconfig"

	"github.com/lbclient/lbclient/runtime/balancer/observe"
	"github.com/lbclient/lbclient/runtime/internal/callinfo"
)

// fakeCC is a balancer.ClientConn that records the balancer's pickers and
// hands out fake SubConns, which it brings to READY (and SERVING) itself.
type fakeCC struct {
	balancer.ClientConn // nil: methods the balancers do not use panic

	mu       sync.Mutex
	subConns []*fakeSC
	state    balancer.State
}

type fakeSC struct {
	balancer.SubConn // nil
	addr             string
	listener         func(balancer.SubConnState)
	connect          bool
	ready            bool
	health           func(balancer.SubConnState)
}

func (sc *fakeSC) Connect()                                             { sc.connect = true }
func (sc *fakeSC) Shutdown()                                            {}
func (sc *fakeSC) UpdateAddresses([]resolver.Address)                   {}
func (sc *fakeSC) RegisterHealthListener(l func(balancer.SubConnState)) { sc.health = l }
func (sc *fakeSC) String() string                                       { return sc.addr }

func (cc *fakeCC) NewSubConn(addrs []resolver.Address, opts balancer.NewSubConnOptions) (balancer.SubConn, error) {
	sc := &fakeSC{addr: addrs[0].Addr, listener: opts.StateListener}
	cc.mu.Lock()
	cc.subConns = append(cc.subConns, sc)
	cc.mu.Unlock()
	return sc, nil
}

func (cc *fakeCC) UpdateState(s balancer.State) {
	cc.mu.Lock()
	cc.state = s
	cc.mu.Unlock()
}

func (cc *fakeCC) ResolveNow(resolver.ResolveNowOptions)   {}
func (cc *fakeCC) Target() string                          { return "fake:///" }
func (cc *fakeCC) MetricsRecorder() estats.MetricsRecorder { return noMetrics{} }

// connectAll plays grpc-go's part: every SubConn asked to connect goes
// CONNECTING then READY, and every health listener hears SERVING.
func (cc *fakeCC) connectAll(tb testing.TB) {
	for range 100 {
		progress := false
		cc.mu.Lock()
		scs := append([]*fakeSC(nil), cc.subConns...)
		cc.mu.Unlock()
		for _, sc := range scs {
			if sc.connect && !sc.ready {
				sc.ready = true
				sc.listener(balancer.SubConnState{ConnectivityState: connectivity.Connecting})
				sc.listener(balancer.SubConnState{ConnectivityState: connectivity.Ready})
				progress = true
			}
			if l := sc.health; l != nil {
				sc.health = nil
				l(balancer.SubConnState{ConnectivityState: connectivity.Ready})
				progress = true
			}
		}
		if !progress {
			return
		}
	}
	tb.Fatal("SubConns kept changing")
}

type noMetrics struct {
	estats.UnimplementedMetricsRecorder
}

func (noMetrics) RecordInt64Count(*estats.Int64CountHandle, int64, ...string)             {}
func (noMetrics) RecordFloat64Count(*estats.Float64CountHandle, float64, ...string)       {}
func (noMetrics) RecordInt64Histo(*estats.Int64HistoHandle, int64, ...string)             {}
func (noMetrics) RecordFloat64Histo(*estats.Float64HistoHandle, float64, ...string)       {}
func (noMetrics) RecordInt64Gauge(*estats.Int64GaugeHandle, int64, ...string)             {}
func (noMetrics) RecordInt64UpDownCount(*estats.Int64UpDownCountHandle, int64, ...string) {}
func (noMetrics) RegisterAsyncReporter(estats.AsyncMetricReporter, ...estats.AsyncMetric) func() {
	return func() {}
}

// readyPicker builds policy (a balancer name, with its JSON config) over n
// fake endpoints, brings them READY and returns the READY picker.
func readyPicker(tb testing.TB, policy, config string, n int) balancer.Picker {
	tb.Helper()
	cc := &fakeCC{}
	bb := balancer.Get(policy)
	b := bb.Build(cc, balancer.BuildOptions{})
	tb.Cleanup(b.Close)
	var cfg serviceconfig.LoadBalancingConfig
	if p, ok := bb.(balancer.ConfigParser); ok {
		var err error
		if cfg, err = p.ParseConfig(json.RawMessage(config)); err != nil {
			tb.Fatal(err)
		}
	}
	eps := make([]resolver.Endpoint, n)
	for i := range eps {
		eps[i] = resolver.Endpoint{Addresses: []resolver.Address{{Addr: fmt.Sprintf("10.0.0.%d:443", i+1)}}}
	}
	if err := b.UpdateClientConnState(balancer.ClientConnState{
		ResolverState:  resolver.State{Endpoints: eps},
		BalancerConfig: cfg,
	}); err != nil {
		tb.Fatal(err)
	}
	cc.connectAll(tb)
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.state.ConnectivityState != connectivity.Ready {
		tb.Fatalf("%s: state %v, want READY", policy, cc.state.ConnectivityState)
	}
	return cc.state.Picker
}

var benchDone = balancer.DoneInfo{BytesSent: true, BytesReceived: true}

func pickDone(tb testing.TB, p balancer.Picker, info balancer.PickInfo) balancer.SubConn {
	res, err := p.Pick(info)
	if err != nil {
		tb.Fatal(err)
	}
	if res.Done != nil {
		res.Done(benchDone)
	}
	return res.SubConn
}

func pickers(tb testing.TB) []struct {
	name string
	p    balancer.Picker
} {
	return []struct {
		name string
		p    balancer.Picker
	}{
		{"round_robin", readyPicker(tb, "round_robin", `{}`, 3)},
		{"observe+round_robin", readyPicker(tb, observe.Name, `{"childPolicy":[{"round_robin":{}}]}`, 3)},
	}
}

// TestFakeClientConnPicks checks the benchmark's set-up: both pickers
// rotate over the three endpoints, and observe hands back grpc-go's own
// SubConns.
func TestFakeClientConnPicks(t *testing.T) {
	for _, tc := range pickers(t) {
		seen := map[balancer.SubConn]int{}
		for range 30 {
			sc := pickDone(t, tc.p, balancer.PickInfo{Ctx: context.Background()})
			if _, ok := sc.(*fakeSC); !ok {
				t.Fatalf("%s: picked %T, want the ClientConn's own *fakeSC", tc.name, sc)
			}
			seen[sc]++
		}
		if len(seen) != 3 {
			t.Errorf("%s: 30 picks went to %d SubConns, want 3", tc.name, len(seen))
		}
		for sc, n := range seen {
			if n != 10 {
				t.Errorf("%s: %v picked %d times, want 10", tc.name, sc, n)
			}
		}
	}
}

// TestPickAllocs bounds what observe adds to a pick and its Done: at most
// one allocation (none once its pool is warm; the race detector empties
// pools at random).
func TestPickAllocs(t *testing.T) {
	ps := pickers(t)
	info := balancer.PickInfo{Ctx: context.Background()}
	bare := testing.AllocsPerRun(1000, func() { pickDone(t, ps[0].p, info) })
	wrapped := testing.AllocsPerRun(1000, func() { pickDone(t, ps[1].p, info) })
	if wrapped > bare+1 {
		t.Errorf("pick+done allocates %v with observe, %v without: observe adds more than 1", wrapped, bare)
	}
	// A hedged call's attempts, each avoiding the endpoints of the
	// earlier ones, allocate nothing once observe's pool is warm.
	a := new(callinfo.Attempts)
	hedged := balancer.PickInfo{Ctx: callinfo.WithAttempts(context.Background(), a)}
	if allocs := testing.AllocsPerRun(1000, func() {
		a.Reset()
		for range 3 {
			pickDone(t, ps[1].p, hedged)
		}
	}); allocs > 1 {
		t.Errorf("a hedged call's 3 picks+dones allocate %v with observe, want at most 1 (none with a warm pool)", allocs)
	}
}

func BenchmarkPick(b *testing.B) {
	ctx := context.Background()
	for _, tc := range pickers(b) {
		info := balancer.PickInfo{FullMethodName: "/svc/M", Ctx: ctx}
		b.Run(tc.name+"/serial", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				pickDone(b, tc.p, info)
			}
		})
		b.Run(tc.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					pickDone(b, tc.p, info)
				}
			})
		})
		if tc.name == "observe+round_robin" {
			// One hedged call of three attempts per iteration, each
			// attempt avoiding the endpoints of the earlier ones; the
			// Attempts and its context are the hedger's, made once and
			// reset per call.
			b.Run(tc.name+"/hedged-3-attempts", func(b *testing.B) {
				a := new(callinfo.Attempts)
				info := balancer.PickInfo{FullMethodName: "/svc/M", Ctx: callinfo.WithAttempts(ctx, a)}
				b.ReportAllocs()
				for b.Loop() {
					a.Reset()
					for range 3 {
						pickDone(b, tc.p, info)
					}
				}
			})
		}
	}
}

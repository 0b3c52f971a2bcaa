// Package lbtest holds what the tests and benchmarks of lbclient's
// balancers share: tiny gRPC backends on loopback, a channel over a manual
// resolver, and a recording parent policy that exposes the picker of any
// registered policy so benchmarks can time Pick itself.
package lbtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"google.golang.org/grpc"
	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/serviceconfig"
	"google.golang.org/grpc/stats/opentelemetry"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/lbclient/lbclient/internal/closedloop"
	"github.com/lbclient/lbclient/runtime/internal/callinfo"
	"github.com/lbclient/lbclient/runtime/internal/lbstats"
)

// FullMethod is the one method of the test service.
const FullMethod = "/lbtest.Echo/Call"

// Backend is one test server.
type Backend struct {
	Addr  string
	Calls atomic.Int64 // calls handled
	// Delay is how long each call takes; Fail, when set, is the status the
	// call ends with. Both are set before Start.
	Delay time.Duration
	Fail  codes.Code
	srv   *grpc.Server
	// failNow, when set, overrides Fail while the backend runs.
	failNow atomic.Pointer[codes.Code]
}

// SetFail makes every later call end with code (codes.OK: succeed),
// overriding Fail; safe while the backend serves.
func (b *Backend) SetFail(code codes.Code) { b.failNow.Store(&code) }

func (b *Backend) fail() codes.Code {
	if c := b.failNow.Load(); c != nil {
		return *c
	}
	return b.Fail
}

type echoServer interface{}

func (b *Backend) handle(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
	in := new(emptypb.Empty)
	if err := dec(in); err != nil {
		return nil, err
	}
	b.Calls.Add(1)
	if b.Delay > 0 {
		t := time.NewTimer(b.Delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
	if c := b.fail(); c != codes.OK {
		return nil, status.Error(c, "lbtest: failing backend")
	}
	return in, nil
}

// StartBackends starts one backend per spec on 127.0.0.1 and stops them
// when the test ends.
func StartBackends(tb testing.TB, specs ...*Backend) []*Backend {
	tb.Helper()
	for _, b := range specs {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatalf("listen: %v", err)
		}
		b.Addr = lis.Addr().String()
		b.srv = grpc.NewServer()
		b.srv.RegisterService(&grpc.ServiceDesc{
			ServiceName: "lbtest.Echo",
			HandlerType: (*echoServer)(nil),
			Methods:     []grpc.MethodDesc{{MethodName: "Call", Handler: b.handle}},
		}, struct{}{})
		go b.srv.Serve(lis)
		tb.Cleanup(b.srv.Stop)
	}
	return specs
}

// Addrs returns the backends' addresses.
func Addrs(bs []*Backend) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = b.Addr
	}
	return out
}

var schemeN atomic.Int64

// Dial returns a started channel to addrs (one endpoint each) over a manual
// resolver, with the given service config JSON; closed when the test ends.
func Dial(tb testing.TB, serviceConfig string, addrs []string) *grpc.ClientConn {
	tb.Helper()
	cc, _ := DialEndpoints(tb, serviceConfig, Endpoints(addrs))
	return cc
}

// Endpoints returns one endpoint per address.
func Endpoints(addrs []string) []resolver.Endpoint {
	eps := make([]resolver.Endpoint, len(addrs))
	for i, a := range addrs {
		eps[i] = resolver.Endpoint{Addresses: []resolver.Address{{Addr: a}}}
	}
	return eps
}

// DialEndpoints returns a started channel to eps over grpc-go's manual
// resolver, and the resolver, whose UpdateState changes the endpoints (and
// their attributes, such as weights) under the channel; closed when the
// test ends.
func DialEndpoints(tb testing.TB, serviceConfig string, eps []resolver.Endpoint, opts ...grpc.DialOption) (*grpc.ClientConn, *manual.Resolver) {
	tb.Helper()
	r := manual.NewBuilderWithScheme("lbtest" + strconv.FormatInt(schemeN.Add(1), 10))
	r.InitialState(resolver.State{Endpoints: eps})
	cc, err := grpc.NewClient(r.Scheme()+":///test", append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithResolvers(r),
		grpc.WithDefaultServiceConfig(serviceConfig)}, opts...)...)
	if err != nil {
		tb.Fatalf("NewClient: %v", err)
	}
	tb.Cleanup(func() { cc.Close() })
	cc.Connect()
	return cc, r
}

// Call makes one call of the test method.
func Call(ctx context.Context, cc grpc.ClientConnInterface, opts ...grpc.CallOption) error {
	return cc.Invoke(ctx, FullMethod, &emptypb.Empty{}, &emptypb.Empty{}, opts...)
}

// WaitReady waits until cc is READY.
func WaitReady(tb testing.TB, cc *grpc.ClientConn) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for s := cc.GetState(); s != connectivity.Ready; s = cc.GetState() {
		if !cc.WaitForStateChange(ctx, s) {
			tb.Fatalf("channel not READY: %v", s)
		}
	}
}

// WaitAllReady waits until sink reports n endpoints, all READY.
func WaitAllReady(tb testing.TB, sink *lbstats.Sink, n int) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		eps := sink.Endpoints()
		ready := 0
		for _, e := range eps {
			if e.State == connectivity.Ready {
				ready++
			}
		}
		if len(eps) == n && ready == n {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("endpoints not all READY: %+v", eps)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// RecorderName is the recording parent policy. Its config names the child
// policy and the child's config, and an id under which the child's latest
// READY picker can be fetched with Recorded:
//
//	{"lbtest_recorder": {"id": "x", "child": "round_robin", "childConfig": {}}}
const RecorderName = "lbtest_recorder"

func init() { balancer.Register(recorderBuilder{}) }

type recorderConfig struct {
	serviceconfig.LoadBalancingConfig `json:"-"`
	ID                                string          `json:"id"`
	Child                             string          `json:"child"`
	ChildConfig                       json.RawMessage `json:"childConfig"`
	parsed                            serviceconfig.LoadBalancingConfig
}

type recorderBuilder struct{}

func (recorderBuilder) Name() string { return RecorderName }

func (recorderBuilder) ParseConfig(js json.RawMessage) (serviceconfig.LoadBalancingConfig, error) {
	cfg := &recorderConfig{}
	if err := json.Unmarshal(js, cfg); err != nil {
		return nil, err
	}
	b := balancer.Get(cfg.Child)
	if b == nil {
		return nil, fmt.Errorf("lbtest_recorder: no policy %q", cfg.Child)
	}
	if p, ok := b.(balancer.ConfigParser); ok {
		if cfg.ChildConfig == nil {
			cfg.ChildConfig = json.RawMessage("{}")
		}
		c, err := p.ParseConfig(cfg.ChildConfig)
		if err != nil {
			return nil, err
		}
		cfg.parsed = c
	}
	return cfg, nil
}

func (recorderBuilder) Build(cc balancer.ClientConn, opts balancer.BuildOptions) balancer.Balancer {
	return &recorder{cc: cc, opts: opts}
}

var (
	recMu    sync.Mutex
	recorded = map[string]balancer.Picker{}
)

// Recorded returns the latest READY picker of the recorder with id.
func Recorded(id string) balancer.Picker {
	recMu.Lock()
	defer recMu.Unlock()
	return recorded[id]
}

type recorder struct {
	cc    balancer.ClientConn
	opts  balancer.BuildOptions
	id    atomic.Pointer[string]
	child balancer.Balancer
}

type recordingCC struct {
	balancer.ClientConn
	r *recorder
}

func (w recordingCC) UpdateState(s balancer.State) {
	if s.ConnectivityState == connectivity.Ready {
		if id := w.r.id.Load(); id != nil {
			recMu.Lock()
			recorded[*id] = s.Picker
			recMu.Unlock()
		}
	}
	w.ClientConn.UpdateState(s)
}

func (r *recorder) UpdateClientConnState(s balancer.ClientConnState) error {
	cfg := s.BalancerConfig.(*recorderConfig)
	r.id.Store(&cfg.ID)
	if r.child == nil {
		r.child = balancer.Get(cfg.Child).Build(recordingCC{r.cc, r}, r.opts)
	}
	s.BalancerConfig = cfg.parsed
	return r.child.UpdateClientConnState(s)
}

func (r *recorder) ResolverError(err error) {
	if r.child != nil {
		r.child.ResolverError(err)
	}
}

func (r *recorder) UpdateSubConnState(sc balancer.SubConn, s balancer.SubConnState) {}

func (r *recorder) ExitIdle() {
	if r.child != nil {
		r.child.ExitIdle()
	}
}

func (r *recorder) Close() {
	if r.child != nil {
		r.child.Close()
	}
	if id := r.id.Load(); id != nil {
		recMu.Lock()
		delete(recorded, *id)
		recMu.Unlock()
	}
}

// PickerOver starts n backends and a channel whose policy is child (with
// childConfig) and dial options opts, waits until the child's picker
// spreads picks over all n backends, and returns that picker: the real
// picker of the real policy, over real READY SubConns, as the channel would
// call it.
func PickerOver(tb testing.TB, n int, child, childConfig string, opts ...grpc.DialOption) balancer.Picker {
	tb.Helper()
	bs := make([]*Backend, n)
	for i := range bs {
		bs[i] = &Backend{}
	}
	StartBackends(tb, bs...)
	id := fmt.Sprintf("%s-%d", child, schemeN.Add(1))
	sc := fmt.Sprintf(`{"loadBalancingConfig":[{%q:{"id":%q,"child":%q,"childConfig":%s}}]}`, RecorderName, id, child, childConfig)
	cc, _ := DialEndpoints(tb, sc, Endpoints(Addrs(bs)), opts...)
	WaitReady(tb, cc)
	info := balancer.PickInfo{FullMethodName: FullMethod, Ctx: context.Background()}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if p := Recorded(id); p != nil {
			seen := map[balancer.SubConn]bool{}
			for range 64 * n {
				res, err := p.Pick(info)
				if err != nil {
					break
				}
				seen[res.SubConn] = true
				if res.Done != nil {
					res.Done(balancer.DoneInfo{BytesSent: true, BytesReceived: true})
				}
			}
			if len(seen) == n {
				return p
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	tb.Fatalf("%s: picker never reached all %d backends", child, n)
	return nil
}

// BenchmarkPick times Pick followed by the Done the channel would call,
// serially and under b.RunParallel.
func BenchmarkPick(b *testing.B, p balancer.Picker, ctx context.Context) {
	info := balancer.PickInfo{FullMethodName: FullMethod, Ctx: ctx}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			res, err := p.Pick(info)
			if err != nil {
				b.Fatal(err)
			}
			if res.Done != nil {
				res.Done(balancer.DoneInfo{BytesSent: true, BytesReceived: true})
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				res, err := p.Pick(info)
				if err != nil {
					b.Error(err)
					return
				}
				if res.Done != nil {
					res.Done(balancer.DoneInfo{BytesSent: true, BytesReceived: true})
				}
			}
		})
	})
	// One op is a hedged call's two attempts, the second avoiding the
	// endpoint of the first. The call's Attempts and context are made once
	// (the hedger's, not the picker's) and reset per call.
	b.Run("hedged-2-attempts", func(b *testing.B) {
		a := new(callinfo.Attempts)
		info := balancer.PickInfo{FullMethodName: FullMethod, Ctx: callinfo.WithAttempts(ctx, a)}
		b.ReportAllocs()
		for b.Loop() {
			a.Reset()
			for range 2 {
				res, err := p.Pick(info)
				if err != nil {
					b.Fatal(err)
				}
				if res.Done != nil {
					res.Done(balancer.DoneInfo{BytesSent: true, BytesReceived: true})
				}
			}
		}
	})
}

// StartLoad starts a closed loop of workers callers on cc, for up to a
// minute or until its Stop; ctx, when not nil, derives each call's context
// (a hash key, for example) from the worker and call number. Every call
// has a 10 s deadline.
func StartLoad(cc grpc.ClientConnInterface, workers int, ctx func(worker int, n int64) context.Context) *closedloop.Load {
	return closedloop.Start(workers, time.Minute, func(w int, n int64) error {
		base := context.Background()
		if ctx != nil {
			base = ctx(w, n)
		}
		c, cancel := context.WithTimeout(base, 10*time.Second)
		defer cancel()
		return Call(c, cc)
	})
}

// WaitCalls waits until b has handled more than n calls, and returns how
// long that took; it fails the test after limit.
func WaitCalls(tb testing.TB, b *Backend, n int64, limit time.Duration) time.Duration {
	tb.Helper()
	start := time.Now()
	for b.Calls.Load() <= n {
		if time.Since(start) > limit {
			tb.Fatalf("%s: no call within %v", b.Addr, limit)
		}
		time.Sleep(time.Millisecond)
	}
	return time.Since(start)
}

// BenchmarkPickMetrics times Pick and Done of child's picker over three
// backends on a channel that exports no metrics and on one that exports
// them through grpc-go's OpenTelemetry plugin to an OpenTelemetry SDK
// MeterProvider, in one run:
//
//   - "metrics=off" and "metrics=on" run BenchmarkPick on each;
//   - "interleaved" times both pickers in alternating blocks of picks on
//     the same goroutine, so that a loaded machine slows both alike, and
//     reports each one's ns per Pick+Done ("off-ns/pick", "on-ns/pick")
//     and their ratio ("on/off").
//
// Each checks that the picks reached the SDK.
func BenchmarkPickMetrics(b *testing.B, child, childConfig string, ctx context.Context) {
	withMetrics := func(b *testing.B) (grpc.DialOption, func()) {
		reader := sdkmetric.NewManualReader()
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
		var o opentelemetry.Options
		o.MetricsOptions.MeterProvider = mp
		return opentelemetry.DialOption(o), func() {
			defer mp.Shutdown(context.Background())
			if n := collectedPicks(b, reader); n == 0 {
				b.Fatalf("%s: no lbclient.lb.picks collected", child)
			}
		}
	}
	b.Run("metrics=off", func(b *testing.B) {
		BenchmarkPick(b, PickerOver(b, 3, child, childConfig), ctx)
	})
	b.Run("metrics=on", func(b *testing.B) {
		opt, check := withMetrics(b)
		BenchmarkPick(b, PickerOver(b, 3, child, childConfig, opt), ctx)
		check()
	})
	b.Run("interleaved", func(b *testing.B) {
		opt, check := withMetrics(b)
		pickers := [2]balancer.Picker{PickerOver(b, 3, child, childConfig), PickerOver(b, 3, child, childConfig, opt)}
		info := balancer.PickInfo{FullMethodName: FullMethod, Ctx: ctx}
		const block = 2048
		var spent [2]time.Duration
		picks := 0
		b.ReportAllocs()
		for round := 0; b.Loop(); round++ {
			for k := range 2 {
				which := (round + k) % 2 // alternate which goes first
				p := pickers[which]
				start := time.Now()
				for range block {
					res, err := p.Pick(info)
					if err != nil {
						b.Fatal(err)
					}
					if res.Done != nil {
						res.Done(balancer.DoneInfo{BytesSent: true, BytesReceived: true})
					}
				}
				spent[which] += time.Since(start)
			}
			picks += block
		}
		off, on := float64(spent[0])/float64(picks), float64(spent[1])/float64(picks)
		b.ReportMetric(off, "off-ns/pick")
		b.ReportMetric(on, "on-ns/pick")
		b.ReportMetric(on/off, "on/off")
		check()
	})
}

// collectedPicks returns the lbclient.lb.picks that reader collects.
func collectedPicks(tb testing.TB, reader *sdkmetric.ManualReader) int64 {
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		tb.Fatal(err)
	}
	var n int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if s, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == "lbclient.lb.picks" {
				for _, dp := range s.DataPoints {
					n += dp.Value
				}
			}
		}
	}
	return n
}

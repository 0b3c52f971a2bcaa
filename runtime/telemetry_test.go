package runtime_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/stats/opentelemetry"
	"google.golang.org/grpc/status"

	greeterv1 "github.com/lbclient/lbclient/gen/greeter/v1"
	"github.com/lbclient/lbclient/runtime"
)

// collect reads every metric the reader holds.
func collect(t *testing.T, r *sdkmetric.ManualReader) metricdata.ResourceMetrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatalf("Collect: %v", err)
	}
	return rm
}

// find returns the metric named name, or nil.
func find(rm metricdata.ResourceMetrics, name string) *metricdata.Metrics {
	for _, sm := range rm.ScopeMetrics {
		for i := range sm.Metrics {
			if sm.Metrics[i].Name == name {
				return &sm.Metrics[i]
			}
		}
	}
	return nil
}

// counter returns the sum of the int64 counter name over its data points
// whose attributes include want, and the number of such points; it fails
// the test when the metric is not a monotonic int64 sum.
func counter(t *testing.T, rm metricdata.ResourceMetrics, name string, want ...attribute.KeyValue) (int64, int) {
	t.Helper()
	m := find(rm, name)
	if m == nil {
		return 0, 0
	}
	sum, ok := m.Data.(metricdata.Sum[int64])
	if !ok || !sum.IsMonotonic {
		t.Fatalf("%s is %T (monotonic: %v), want a monotonic int64 sum", name, m.Data, ok && sum.IsMonotonic)
	}
	var total int64
	n := 0
	for _, dp := range sum.DataPoints {
		if hasAll(dp.Attributes, want) {
			total += dp.Value
			n++
		}
	}
	return total, n
}

func hasAll(set attribute.Set, want []attribute.KeyValue) bool {
	for _, kv := range want {
		if v, ok := set.Value(kv.Key); !ok || v != kv.Value {
			return false
		}
	}
	return true
}

// countingHandler is a user's own stats handler: it counts the attempts it
// sees begin.
type countingHandler struct{ begins atomic.Int64 }

func (h *countingHandler) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context {
	return ctx
}

func (h *countingHandler) HandleRPC(_ context.Context, s stats.RPCStats) {
	if _, ok := s.(*stats.Begin); ok {
		h.begins.Add(1)
	}
}

func (h *countingHandler) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}

func (h *countingHandler) HandleConn(context.Context, stats.ConnStats) {}

// TestMetricsAfterKnownCalls: 100 hedged calls with 100 hash keys under
// CONSISTENT_HASH over three backends, one failing every call (so that its
// keys fail in a row until it is ejected). What the OpenTelemetry reader collects agrees with
// what happened: picks are the attempts (the calls plus the hedged
// attempts, as grpc's own attempt counter, the backends and a user's own
// stats handler count them), the failing backend is ejected, the probe
// count is the endpoints', the hedge counters are Conn.Stats(), and the
// latency estimates put the failing backend far above the others.
func TestMetricsAfterKnownCalls(t *testing.T) {
	bs := startBackends(t, 3)
	failing := bs[1]
	failing.SetFailing(true)
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	user := &countingHandler{}
	// A long fixed delay: the calls hedge only when a first attempt fails
	// (UNAVAILABLE is non-fatal, so the next attempt goes at once), and
	// every attempt reaches its backend.
	rules := &runtime.ServiceRules{Service: service, Methods: map[string]runtime.MethodRules{
		sayHello: {Hedging: &runtime.HedgingPolicy{MaxAttempts: 3, Delay: 10 * time.Second, NonFatalCodes: []codes.Code{codes.Unavailable}}},
	}}
	conn, c := dial(t, bs, rules,
		runtime.WithPolicy(runtime.ConsistentHash),
		runtime.WithMeterProvider(mp),
		runtime.WithHedgingBudget(1, 1000),
		runtime.WithDialOptions(grpc.WithStatsHandler(user)))
	ctx := ctxFor(t)
	if err := conn.WaitForReady(ctx); err != nil {
		t.Fatal(err)
	}
	waitAllReady(t, conn, len(bs))

	const calls = 100
	for i := range calls {
		if _, err := c.SayHello(runtime.WithHashKey(ctx, fmt.Sprint("key-", i)), &greeterv1.HelloRequest{Name: "m"}); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}

	rm := collect(t, reader)
	target := attribute.String("grpc.target", conn.ClientConn().CanonicalTarget())
	policy := attribute.String("lbclient.policy", "lbclient_consistent_hash")
	method := attribute.String("grpc.method", sayHello)
	hs := conn.Stats().Hedging
	eps := conn.Endpoints()
	var epPicks, epProbes, epEjections uint64
	for _, e := range eps {
		epPicks += e.Picks
		epProbes += e.Probes
		epEjections += e.Ejections
	}
	var served int64
	for _, b := range bs {
		served += b.Calls()
	}
	picks, points := counter(t, rm, "lbclient.lb.picks", target, policy)
	attempts, _ := counter(t, rm, "grpc.client.attempt.started", target)
	t.Logf("picks %d (in %d points), grpc attempts %d, backends served %d, endpoints' picks %d; hedge stats %+v", picks, points, attempts, served, epPicks, hs.Counters)
	if want := int64(calls + hs.ExtraAttempts); picks != want || attempts != want || served != want || uint64(picks) != epPicks || user.begins.Load() != want {
		t.Errorf("lbclient.lb.picks %d, grpc.client.attempt.started %d, backends served %d, Endpoints' picks %d, user's stats handler saw %d attempts; want all %d (calls + hedged attempts)",
			picks, attempts, served, epPicks, user.begins.Load(), want)
	}
	if points != 1 {
		t.Errorf("lbclient.lb.picks has %d data points for the connection, want 1 (no per-endpoint label)", points)
	}
	ejections, _ := counter(t, rm, "lbclient.lb.ejections", target, policy)
	if ejections < 1 || uint64(ejections) != epEjections {
		t.Errorf("lbclient.lb.ejections %d, Endpoints' ejections %d; want equal and ≥ 1 (a backend fails every call)", ejections, epEjections)
	}
	probes, _ := counter(t, rm, "lbclient.lb.probes", target, policy)
	if uint64(probes) != epProbes {
		t.Errorf("lbclient.lb.probes %d, Endpoints' probes %d; want equal", probes, epProbes)
	}
	hedged, _ := counter(t, rm, "lbclient.hedge.attempts", target, method)
	wins, _ := counter(t, rm, "lbclient.hedge.wins", target, method)
	denied, dpoints := counter(t, rm, "lbclient.hedge.budget_exhausted", target, method)
	if uint64(hedged) != hs.ExtraAttempts || uint64(wins) != hs.HedgeWins || uint64(denied) != hs.BudgetDenied || hedged < 1 || wins < 1 {
		t.Errorf("lbclient.hedge.attempts %d, wins %d, budget_exhausted %d; want Conn.Stats() %+v, with at least one hedged attempt and win", hedged, wins, denied, hs.Counters)
	}
	t.Logf("lbclient.lb.ejections %d, lbclient.lb.probes %d, lbclient.hedge.attempts %d, wins %d, budget_exhausted %d", ejections, probes, hedged, wins, denied)
	if dpoints != 0 {
		t.Errorf("lbclient.hedge.budget_exhausted has %d points with an ample budget, want none", dpoints)
	}
	for _, e := range eps {
		if e.Addr == failing.Addr() && !e.Ejected {
			t.Errorf("failing backend %s not reported ejected: %+v", e.Addr, e)
		}
	}

	// The latency estimate: one point per endpoint, the failing one at
	// about the failure penalty (1 s), the others near their latency.
	m := find(rm, "lbclient.lb.latency_estimate")
	if m == nil {
		t.Fatal("no lbclient.lb.latency_estimate")
	}
	if m.Unit != "us" {
		t.Errorf("lbclient.lb.latency_estimate unit %q, want us", m.Unit)
	}
	g, ok := m.Data.(metricdata.Gauge[int64])
	if !ok {
		t.Fatalf("lbclient.lb.latency_estimate is %T, want an int64 gauge", m.Data)
	}
	est := map[string]int64{}
	for _, dp := range g.DataPoints {
		if !hasAll(dp.Attributes, []attribute.KeyValue{target, policy}) {
			t.Errorf("latency estimate point without the connection's labels: %v", dp.Attributes.ToSlice())
		}
		addr, _ := dp.Attributes.Value("lbclient.endpoint")
		est[addr.AsString()] = dp.Value
	}
	t.Logf("latency estimates (us): %v", est)
	if len(est) != len(bs) {
		t.Errorf("latency estimates for %d endpoints, want %d: %v", len(est), len(bs), est)
	}
	for _, b := range bs {
		v, ok := est[b.Addr()]
		switch {
		case !ok:
			t.Errorf("no latency estimate for %s", b.Addr())
		case b == failing && v < 500_000:
			t.Errorf("failing backend's estimate %dus, want about the 1 s failure penalty", v)
		case b != failing && (v <= 0 || v >= 500_000):
			t.Errorf("healthy backend %s's estimate %dus, want a loopback latency", b.Addr(), v)
		}
	}

	// After Close the counts stay, and no endpoint is reported any more.
	conn.Close()
	rm = collect(t, reader)
	if after, _ := counter(t, rm, "lbclient.lb.picks", target, policy); after != picks {
		t.Errorf("after Close lbclient.lb.picks is %d, want %d", after, picks)
	}
	if m := find(rm, "lbclient.lb.latency_estimate"); m != nil && len(m.Data.(metricdata.Gauge[int64]).DataPoints) != 0 {
		t.Errorf("after Close latency estimates are still reported: %+v", m.Data)
	}
}

// TestMetricsUnderGrpcPolicy: under grpc-go's round_robin, picks are
// reported with the child policy's name, and no latency estimate.
func TestMetricsUnderGrpcPolicy(t *testing.T) {
	bs := startBackends(t, 2)
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	conn, c := dial(t, bs, nil, runtime.WithPolicy(runtime.RoundRobin), runtime.WithMeterProvider(mp))
	ctx := ctxFor(t)
	waitAllReady(t, conn, len(bs))
	const calls = 40
	spread(t, ctx, c, calls)
	rm := collect(t, reader)
	target := attribute.String("grpc.target", conn.ClientConn().CanonicalTarget())
	if picks, _ := counter(t, rm, "lbclient.lb.picks", target, attribute.String("lbclient.policy", "round_robin")); picks != calls {
		t.Errorf("lbclient.lb.picks{lbclient.policy=round_robin} = %d, want %d", picks, calls)
	}
	if m := find(rm, "lbclient.lb.latency_estimate"); m != nil && len(m.Data.(metricdata.Gauge[int64]).DataPoints) != 0 {
		t.Errorf("latency estimates under round_robin: %+v", m.Data)
	}
}

// TestHedgedAttemptsAreGrpcAttemptsInTraces: under grpc-go's OpenTelemetry
// tracing, a hedged call is one "Sent." span with one "Attempt." child span
// per attempt, numbered by previous-rpc-attempts as grpc's own retries are.
func TestHedgedAttemptsAreGrpcAttemptsInTraces(t *testing.T) {
	bs := startBackends(t, 2)
	bs[0].SetFailing(true)
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	defer tp.Shutdown(context.Background())
	rules := &runtime.ServiceRules{Service: service, Methods: map[string]runtime.MethodRules{
		sayHello: {Hedging: &runtime.HedgingPolicy{MaxAttempts: 2, Delay: 10 * time.Second, NonFatalCodes: []codes.Code{codes.Unavailable}}},
	}}
	var o opentelemetry.Options
	o.TraceOptions.TracerProvider = tp
	o.TraceOptions.TextMapPropagator = propagation.TraceContext{}
	conn, c := dial(t, bs, rules, runtime.WithPolicy(runtime.RoundRobin), runtime.WithOpenTelemetry(o))
	ctx := ctxFor(t)
	waitAllReady(t, conn, len(bs))
	// Round robin alternates, so of a few calls some start on the failing
	// backend and hedge to the other.
	const calls = 6
	for i := range calls {
		if _, err := c.SayHello(ctx, &greeterv1.HelloRequest{Name: "t"}); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	hs := conn.Stats().Hedging
	if hs.ExtraAttempts == 0 {
		t.Fatalf("no call hedged: %+v", hs.Counters)
	}

	var sent []sdktrace.ReadOnlySpan
	attempts := map[[8]byte][]sdktrace.ReadOnlySpan{} // by parent span ID
	for _, s := range spans.Ended() {
		switch {
		case s.Name() == "Sent.greeter.v1.Greeter.SayHello":
			sent = append(sent, s)
		case s.Name() == "Attempt.greeter.v1.Greeter.SayHello":
			attempts[s.Parent().SpanID()] = append(attempts[s.Parent().SpanID()], s)
		}
	}
	if len(sent) != calls {
		t.Fatalf("%d Sent spans for %d calls, want one per call", len(sent), calls)
	}
	var total, twoAttempts int
	for _, s := range sent {
		as := attempts[s.SpanContext().SpanID()]
		total += len(as)
		seen := map[int64]bool{}
		for _, a := range as {
			if a.SpanContext().TraceID() != s.SpanContext().TraceID() {
				t.Errorf("attempt span in trace %s, its call in %s", a.SpanContext().TraceID(), s.SpanContext().TraceID())
			}
			for _, kv := range a.Attributes() {
				if kv.Key == "previous-rpc-attempts" {
					seen[kv.Value.AsInt64()] = true
				}
			}
		}
		for k := range len(as) {
			if !seen[int64(k)] {
				t.Errorf("call with %d attempt spans has none with previous-rpc-attempts %d: %v", len(as), k, seen)
			}
		}
		if len(as) == 2 {
			twoAttempts++
		}
	}
	if want := calls + int(hs.ExtraAttempts); total != want || twoAttempts != int(hs.Hedged) {
		t.Errorf("%d attempt spans (%d calls with two), want %d (calls + hedged attempts), %d hedged calls", total, twoAttempts, want, hs.Hedged)
	}
}

// TestTelemetryOptionErrors: the options name what is wrong.
func TestTelemetryOptionErrors(t *testing.T) {
	var tracingOnly opentelemetry.Options
	tracingOnly.TraceOptions.TracerProvider = sdktrace.NewTracerProvider()
	for _, tc := range []struct {
		name string
		opt  runtime.Option
		want string
	}{
		{"nil meter provider", runtime.WithMeterProvider(nil), "lbclient: WithMeterProvider: nil MeterProvider"},
		{"empty options", runtime.WithOpenTelemetry(opentelemetry.Options{}), "lbclient: WithOpenTelemetry: neither MetricsOptions.MeterProvider nor TraceOptions.TracerProvider is set"},
		{"tracer without propagator", runtime.WithOpenTelemetry(tracingOnly), "lbclient: WithOpenTelemetry: TraceOptions needs both a TracerProvider and a TextMapPropagator"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := runtime.Dial("static:///127.0.0.1:1", nil, runtime.WithInsecure(), tc.opt)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("Dial: %v, want %q", err, tc.want)
			}
		})
	}
}

// TestMetricsConcurrentCollect: collections running while calls go and the
// connection closes race with nothing (run under -race) and never see a
// count go back.
func TestMetricsConcurrentCollect(t *testing.T) {
	bs := startBackends(t, 3)
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	conn, c := dial(t, bs, nil, runtime.WithMeterProvider(mp))
	ctx := ctxFor(t)
	waitAllReady(t, conn, len(bs))
	target := attribute.String("grpc.target", conn.ClientConn().CanonicalTarget())

	var wg sync.WaitGroup
	stop := make(chan struct{})
	var last int64
	var backwards atomic.Bool
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			var rm metricdata.ResourceMetrics
			if err := reader.Collect(context.Background(), &rm); err != nil {
				return
			}
			if n, _ := counterQuiet(rm, "lbclient.lb.picks", target); n < last {
				backwards.Store(true)
			} else {
				last = n
			}
			time.Sleep(time.Millisecond)
		}
	})
	const calls = 200
	for range 4 {
		wg.Go(func() {
			for range calls / 4 {
				if _, err := c.SayHello(ctx, &greeterv1.HelloRequest{Name: "c"}); err != nil && status.Code(err) != codes.Canceled {
					t.Errorf("call: %v", err)
					return
				}
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	conn.Close()
	close(stop)
	wg.Wait()
	if backwards.Load() {
		t.Error("lbclient.lb.picks went back between collections")
	}
	var served int64
	for _, b := range bs {
		served += b.Calls()
	}
	if n, _ := counterQuiet(collect(t, reader), "lbclient.lb.picks", target); n < served || n > calls {
		t.Errorf("after Close lbclient.lb.picks is %d, want between the %d calls the backends served and the %d made", n, served, calls)
	}
}

// counterQuiet is counter without the test's failure reporting, for
// goroutines.
func counterQuiet(rm metricdata.ResourceMetrics, name string, want ...attribute.KeyValue) (int64, bool) {
	m := find(rm, name)
	if m == nil {
		return 0, false
	}
	sum, ok := m.Data.(metricdata.Sum[int64])
	if !ok {
		return 0, false
	}
	var total int64
	for _, dp := range sum.DataPoints {
		if hasAll(dp.Attributes, want) {
			total += dp.Value
		}
	}
	return total, true
}

// TestProbesMetric: under PEAK_EWMA a slow backend is avoided and probed
// every probe interval (250 ms); over a second and a half of serial calls
// lbclient.lb.probes counts those probes, as Conn.Endpoints does.
func TestProbesMetric(t *testing.T) {
	bs := startBackends(t, 2)
	bs[1].SetDelay(20 * time.Millisecond)
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	conn, c := dial(t, bs, nil, runtime.WithPolicy(runtime.PeakEWMA), runtime.WithMeterProvider(mp))
	ctx := ctxFor(t)
	waitAllReady(t, conn, len(bs))
	end := time.Now().Add(1500 * time.Millisecond)
	for i := 0; i < 20000 && time.Now().Before(end); i++ {
		if _, err := c.SayHello(ctx, &greeterv1.HelloRequest{Name: "p"}); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	var want uint64
	for _, e := range conn.Endpoints() {
		want += e.Probes
	}
	target := attribute.String("grpc.target", conn.ClientConn().CanonicalTarget())
	probes, _ := counter(t, collect(t, reader), "lbclient.lb.probes", target, attribute.String("lbclient.policy", "lbclient_peak_ewma"))
	t.Logf("lbclient.lb.probes %d, Endpoints' probes %d", probes, want)
	if probes < 2 || uint64(probes) != want {
		t.Errorf("lbclient.lb.probes %d, Endpoints' probes %d; want equal, and at least 2 probes of the slow backend in 1.5 s", probes, want)
	}
}

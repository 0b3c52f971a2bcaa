package hedge

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// The benchmarks measure the interceptor alone, over an invoker that
// answers at once (BenchmarkInterceptor*), and whole calls over loopback
// (BenchmarkLoopback*).

func okInvoker(_ context.Context, _ string, _, reply any, _ *grpc.ClientConn, _ ...grpc.CallOption) error {
	reply.(*wrapperspb.StringValue).Value = "ok"
	return nil
}

func benchInterceptor(b *testing.B, p Policy, fullMethod string, invoker grpc.UnaryInvoker) {
	hi, err := New(map[string]Policy{echoMethod: p})
	if err != nil {
		b.Fatal(err)
	}
	intercept := hi.UnaryClientInterceptor()
	ctx := context.Background()
	req := wrapperspb.String("hi")
	reply := new(wrapperspb.StringValue)
	b.ReportAllocs()
	for b.Loop() {
		if err := intercept(ctx, fullMethod, req, reply, nil, invoker); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkInterceptorPassThrough(b *testing.B) {
	benchInterceptor(b, Policy{MaxAttempts: 2, Delay: time.Hour}, "/hedgetest.Echo/Unhedged", okInvoker)
}

func BenchmarkInterceptorHedgedNoHedgeFixed(b *testing.B) {
	benchInterceptor(b, Policy{MaxAttempts: 2, Delay: time.Hour}, echoMethod, okInvoker)
}

func BenchmarkInterceptorHedgedNoHedgeAdaptive(b *testing.B) {
	benchInterceptor(b, Policy{MaxAttempts: 2, DelayPercentile: 95}, echoMethod, okInvoker)
}

// BenchmarkInterceptorHedgeWins: every first attempt hangs until cancelled,
// so every call sends a hedge, which wins; the loser is cancelled and
// waited for. The budget is large enough never to deny.
func BenchmarkInterceptorHedgeWins(b *testing.B) {
	hi, err := New(map[string]Policy{echoMethod: {MaxAttempts: 2, Delay: time.Microsecond}}, WithBudget(1, 1))
	if err != nil {
		b.Fatal(err)
	}
	intercept := hi.UnaryClientInterceptor()
	ctx := context.Background()
	req := wrapperspb.String("hi")
	reply := new(wrapperspb.StringValue)
	invoker := func(ctx context.Context, m string, req, r any, cc *grpc.ClientConn, opts ...grpc.CallOption) error {
		if r == any(reply) { // the first attempt receives into the caller's reply
			<-ctx.Done()
			return status.FromContextError(ctx.Err()).Err()
		}
		return okInvoker(ctx, m, req, r, cc, opts...)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := intercept(ctx, echoMethod, req, reply, nil, invoker); err != nil {
			b.Fatal(err)
		}
	}
	if s := hi.Stats(); s.HedgeWins != s.Calls {
		b.Fatalf("%d hedge wins in %d calls", s.HedgeWins, s.Calls)
	}
}

func benchLoopback(b *testing.B, fullMethodHedged string, p Policy) {
	f := startFleet(b, 1, func(_ context.Context, _ arrival, in *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		return in, nil
	})
	f.quiet.Store(true)
	hi, err := New(map[string]Policy{fullMethodHedged: p})
	if err != nil {
		b.Fatal(err)
	}
	cc, err := grpc.NewClient("passthrough:///"+f.backends[0].addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUnaryInterceptor(hi.UnaryClientInterceptor()))
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Close()
	ctx := context.Background()
	req := wrapperspb.String("hi")
	reply := new(wrapperspb.StringValue)
	b.ReportAllocs()
	for b.Loop() {
		if err := cc.Invoke(ctx, echoMethod, req, reply); err != nil {
			b.Fatal(err)
		}
	}
}

var noHedge = Policy{MaxAttempts: 2, Delay: time.Hour}

func BenchmarkLoopbackPassThrough(b *testing.B) {
	benchLoopback(b, "/hedgetest.Echo/Unhedged", noHedge)
}

func BenchmarkLoopbackHedgedNoHedge(b *testing.B) { benchLoopback(b, echoMethod, noHedge) }

// BenchmarkLoopbackHedgedNoHedgeTimeout adds the policy's timeout, which
// bounds all attempts and puts a deadline on the wire.
func BenchmarkLoopbackHedgedNoHedgeTimeout(b *testing.B) {
	p := noHedge
	p.Timeout = time.Minute
	benchLoopback(b, echoMethod, p)
}

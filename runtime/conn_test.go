package runtime_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/status"

	"github.com/lbclient/lbclient/example/backend"
	greeterv1 "github.com/lbclient/lbclient/gen/greeter/v1"
	"github.com/lbclient/lbclient/internal/testfleet"
	"github.com/lbclient/lbclient/runtime"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	service  = "greeter.v1.Greeter"
	sayHello = "/greeter.v1.Greeter/SayHello"
)

// startBackends serves n Greeters on loopback, stopped when the test ends.
func startBackends(t *testing.T, n int) backend.Fleet { return testfleet.Start(t, n) }

// dial dials the backends in plaintext and closes the connection when the
// test ends.
func dial(t *testing.T, bs backend.Fleet, rules *runtime.ServiceRules, opts ...runtime.Option) (*runtime.Conn, greeterv1.GreeterClient) {
	t.Helper()
	conn, err := runtime.Dial(bs.Target(), rules, append([]runtime.Option{runtime.WithInsecure()}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, greeterv1.NewGreeterClient(conn)
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// spread makes n calls and counts them per backend name.
func spread(t *testing.T, ctx context.Context, c greeterv1.GreeterClient, n int) map[string]int {
	t.Helper()
	per := map[string]int{}
	for i := range n {
		r, err := c.SayHello(ctx, &greeterv1.HelloRequest{Name: fmt.Sprint(i)}, grpc.WaitForReady(true))
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		per[r.GetBackend()]++
	}
	return per
}

func TestEveryPolicyServesCalls(t *testing.T) {
	bs := startBackends(t, 3)
	for _, p := range []runtime.Policy{runtime.PickFirst, runtime.RoundRobin, runtime.LeastRequest, runtime.WeightedRoundRobin, runtime.PeakEWMA, runtime.ConsistentHash} {
		t.Run(p.String(), func(t *testing.T) {
			ctx := ctxFor(t)
			conn, c := dial(t, bs, nil, runtime.WithPolicy(p))
			if p != runtime.PickFirst {
				waitAllReady(t, conn, len(bs))
			}
			per := spread(t, ctx, c, 60)
			switch p {
			case runtime.PickFirst:
				if len(per) != 1 {
					t.Errorf("pick_first spread calls over %v, want one backend", per)
				}
			case runtime.RoundRobin, runtime.WeightedRoundRobin:
				// Even turns; weighted_round_robin without load reports
				// starts from equal weights, give or take a few calls.
				for _, b := range bs {
					if n := per[b.Name()]; n < 17 || n > 23 {
						t.Errorf("calls per backend %v, want 20±3 each", per)
						break
					}
				}
			default:
				if len(per) != 3 {
					t.Errorf("calls per backend %v, want all three used", per)
				}
			}
			eps := conn.Endpoints()
			if len(eps) != 3 {
				t.Fatalf("Endpoints() = %+v, want 3", eps)
			}
			var picks uint64
			for _, e := range eps {
				picks += e.Picks
				if e.InFlight != 0 {
					t.Errorf("endpoint %s: %d in flight after every call ended", e.Addr, e.InFlight)
				}
			}
			if picks != 60 {
				t.Errorf("Endpoints() counts %d picks, want 60: %+v", picks, eps)
			}
		})
	}
}

func TestHashKeyKeepsAKeyOnOneBackend(t *testing.T) {
	bs := startBackends(t, 3)
	ctx := ctxFor(t)
	conn, c := dial(t, bs, nil, runtime.WithPolicy(runtime.ConsistentHash))
	// A key whose backend is not ready yet goes elsewhere meanwhile: start
	// once every backend is.
	waitAllReady(t, conn, len(bs))
	for _, key := range []string{"alice", "bob", "carol", "dave"} {
		kctx := runtime.WithHashKey(ctx, key)
		per := spread(t, kctx, c, 10)
		if len(per) != 1 {
			t.Errorf("key %q went to %v, want one backend", key, per)
		}
	}
}

func TestSecureByDefault(t *testing.T) {
	bs := startBackends(t, 1)
	conn, err := runtime.Dial(bs.Target(), nil) // no credentials option: TLS
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = greeterv1.NewGreeterClient(conn).SayHello(ctx, &greeterv1.HelloRequest{})
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "runtime.WithInsecure()") {
		t.Fatalf("TLS call to a plaintext server: %v; want UNAVAILABLE that points to WithInsecure", err)
	}
	if bs[0].Calls() != 0 {
		t.Errorf("the plaintext server answered %d calls over TLS", bs[0].Calls())
	}
}

// TestPlaintextHintReachesEveryPath: a TLS connection to a plaintext
// server names WithInsecure on every path its error takes: a fail-fast
// call, a wait_for_ready call that ends at its deadline, and
// Conn.WaitForReady; by default and with WithTLS alike.
func TestPlaintextHintReachesEveryPath(t *testing.T) {
	bs := startBackends(t, 1)
	const hint = "dial with runtime.WithInsecure() for a plaintext server"
	for _, tc := range []struct {
		name string
		opts []runtime.Option
		how  string
	}{
		{"default", nil, "uses TLS (the default)"},
		{"WithTLS", []runtime.Option{runtime.WithTLS(&tls.Config{ServerName: "greeter.internal"})}, "uses TLS (WithTLS)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := runtime.Dial(bs.Target(), &runtime.ServiceRules{Service: service}, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			c := greeterv1.NewGreeterClient(conn)
			wantIn := func(what string, err error, code codes.Code) {
				t.Helper()
				if status.Code(err) != code || !strings.Contains(err.Error(), hint) || !strings.Contains(err.Error(), tc.how) || !strings.Contains(err.Error(), bs[0].Addr()) {
					t.Errorf("%s: %v; want %v naming %s, %q and the hint %q", what, err, code, bs[0].Addr(), tc.how, hint)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err = c.SayHello(ctx, &greeterv1.HelloRequest{})
			wantIn("fail-fast call", err, codes.Unavailable)

			short, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_, err = c.SayHello(short, &greeterv1.HelloRequest{}, grpc.WaitForReady(true))
			wantIn("wait_for_ready call", err, codes.DeadlineExceeded)

			short, cancel = context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			err = conn.WaitForReady(short)
			if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), hint) || !strings.Contains(err.Error(), "not ready (TRANSIENT_FAILURE)") {
				t.Errorf("WaitForReady: %v; want the deadline, the state and the hint %q", err, hint)
			}
		})
	}
}

func TestWaitForReady(t *testing.T) {
	bs := startBackends(t, 2)
	conn, _ := dial(t, bs, nil)
	ctx := ctxFor(t)
	if err := conn.WaitForReady(ctx); err != nil {
		t.Fatalf("WaitForReady: %v", err)
	}
	if s := conn.State(); s != connectivity.Ready {
		t.Errorf("State() = %v after WaitForReady, want READY", s)
	}

	// Nothing listens on a stopped backend's port.
	dead := startBackends(t, 1)
	dead[0].Stop()
	conn2, _ := dial(t, dead, nil)
	short, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := conn2.WaitForReady(short)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "not ready") || !strings.Contains(err.Error(), dead[0].Addr()) {
		t.Fatalf("WaitForReady on a dead backend: %v; want a deadline error naming the target and state", err)
	}
}

func TestRetriesFromRules(t *testing.T) {
	bs := startBackends(t, 1)
	retry := &runtime.RetryPolicy{MaxAttempts: 3, InitialBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond, BackoffMultiplier: 2, RetryableCodes: []codes.Code{codes.Unavailable}}
	ctx := ctxFor(t)

	_, with := dial(t, bs, &runtime.ServiceRules{Service: service, Methods: map[string]runtime.MethodRules{sayHello: {Retry: retry}}})
	bs[0].FailNext(2)
	if _, err := with.SayHello(ctx, &greeterv1.HelloRequest{}, grpc.WaitForReady(true)); err != nil {
		t.Fatalf("two failures with three attempts allowed: %v", err)
	}
	if got := bs[0].Calls(); got != 3 {
		t.Errorf("backend saw %d attempts, want 3", got)
	}

	_, without := dial(t, bs, &runtime.ServiceRules{Service: service})
	bs[0].FailNext(1)
	if _, err := without.SayHello(ctx, &greeterv1.HelloRequest{}, grpc.WaitForReady(true)); status.Code(err) != codes.Unavailable {
		t.Fatalf("failure without retry rules: %v, want UNAVAILABLE", err)
	}

	// Options win: WithMethodRules takes the retry away again.
	_, overridden := dial(t, bs, &runtime.ServiceRules{Service: service, Methods: map[string]runtime.MethodRules{sayHello: {Retry: retry}}},
		runtime.WithMethodRules(sayHello, runtime.MethodRules{}))
	bs[0].FailNext(1)
	if _, err := overridden.SayHello(ctx, &greeterv1.HelloRequest{}, grpc.WaitForReady(true)); status.Code(err) != codes.Unavailable {
		t.Fatalf("failure with retry overridden away: %v, want UNAVAILABLE", err)
	}
}

func TestRetryThrottlingStopsRetries(t *testing.T) {
	bs := startBackends(t, 1)
	bs[0].SetFailing(true)
	retry := &runtime.RetryPolicy{MaxAttempts: 5, InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond, BackoffMultiplier: 1, RetryableCodes: []codes.Code{codes.Unavailable}}
	_, c := dial(t, bs, &runtime.ServiceRules{
		Service:         service,
		Defaults:        runtime.MethodRules{Retry: retry},
		RetryThrottling: &runtime.RetryThrottling{MaxTokens: 4, TokenRatio: 0.1},
	})
	ctx := ctxFor(t)
	const calls = 20
	for range calls {
		if _, err := c.SayHello(ctx, &greeterv1.HelloRequest{}, grpc.WaitForReady(true)); status.Code(err) != codes.Unavailable {
			t.Fatalf("call to a failing backend: %v, want UNAVAILABLE", err)
		}
	}
	// Unthrottled, 20 calls of 5 attempts would be 100 attempts. The bucket
	// of 4 tokens loses one per failure and allows retries only above 2, so
	// only the first few failures are retried.
	if got := bs[0].Calls(); got >= calls+5 {
		t.Errorf("backend saw %d attempts for %d calls; throttling should have stopped retries early", got, calls)
	}
	if got := bs[0].Calls(); got <= calls {
		t.Errorf("backend saw %d attempts for %d calls; the first failures should have been retried", got, calls)
	}
}

func TestTimeoutFromRules(t *testing.T) {
	bs := startBackends(t, 1)
	bs[0].SetDelay(10 * time.Second)
	_, c := dial(t, bs, &runtime.ServiceRules{Service: service, Defaults: runtime.MethodRules{Timeout: 50 * time.Millisecond, WaitForReady: true}})
	_, err := c.SayHello(ctxFor(t), &greeterv1.HelloRequest{})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("call to a hanging backend with a 50ms timeout: %v, want DEADLINE_EXCEEDED", err)
	}
}

// TestDefaultRulesWithoutService: rules that name no service, or none at
// all, still apply their defaults (to every method), as WithDefaultRules
// says; they used to be dropped.
func TestDefaultRulesWithoutService(t *testing.T) {
	bs := startBackends(t, 1)
	bs[0].SetDelay(10 * time.Second)
	defaults := runtime.MethodRules{Timeout: 50 * time.Millisecond, WaitForReady: true}
	for name, dialIt := range map[string]func() greeterv1.GreeterClient{
		"rules without a service": func() greeterv1.GreeterClient {
			_, c := dial(t, bs, &runtime.ServiceRules{Defaults: defaults})
			return c
		},
		"WithDefaultRules and no rules": func() greeterv1.GreeterClient {
			_, c := dial(t, bs, nil, runtime.WithDefaultRules(defaults))
			return c
		},
	} {
		_, err := dialIt().SayHello(ctxFor(t), &greeterv1.HelloRequest{})
		if status.Code(err) != codes.DeadlineExceeded {
			t.Errorf("%s: call to a hanging backend with a 50ms default timeout: %v, want DEADLINE_EXCEEDED", name, err)
		}
	}
}

func TestHealthCheckStopsCallsToNotServing(t *testing.T) {
	bs := startBackends(t, 3)
	for _, p := range []runtime.Policy{runtime.RoundRobin, runtime.PeakEWMA} {
		t.Run(p.String(), func(t *testing.T) {
			_, c := dial(t, bs, &runtime.ServiceRules{Service: service, HealthCheckService: service}, runtime.WithPolicy(p))
			ctx := ctxFor(t)
			spread(t, ctx, c, 30)
			sick := bs[1]
			sick.SetServing(false)
			defer sick.SetServing(true)
			// The health update reaches the client asynchronously: wait,
			// bounded, for a run of calls that avoids the sick backend.
			if !eventually(func() bool { return spread(t, ctx, c, 30)[sick.Name()] == 0 }) {
				t.Fatalf("calls still reach %s after it reported NOT_SERVING", sick.Name())
			}
			sick.SetServing(true)
			if !eventually(func() bool { return spread(t, ctx, c, 30)[sick.Name()] > 0 }) {
				t.Fatalf("no call reaches %s after it reported SERVING again", sick.Name())
			}
		})
	}
}

// waitAllReady waits, bounded, until conn has n READY endpoints.
func waitAllReady(t *testing.T, conn *runtime.Conn, n int) {
	t.Helper()
	if err := conn.WaitForReady(ctxFor(t)); err != nil {
		t.Fatal(err)
	}
	ok := eventually(func() bool {
		ready := 0
		for _, e := range conn.Endpoints() {
			if e.State == connectivity.Ready {
				ready++
			}
		}
		return ready == n
	})
	if !ok {
		t.Fatalf("endpoints never all READY: %+v", conn.Endpoints())
	}
}

// eventually polls cond every 20ms for at most 10s.
func eventually(cond func() bool) bool {
	for range 500 {
		if cond() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

func TestDialErrors(t *testing.T) {
	hedging := &runtime.HedgingPolicy{MaxAttempts: 2, Delay: time.Millisecond}
	for _, tc := range []struct {
		name   string
		target string
		rules  *runtime.ServiceRules
		opts   []runtime.Option
		want   string
	}{
		{"no target", "", &runtime.ServiceRules{Service: service}, nil,
			"lbclient: no target for greeter.v1.Greeter: pass one, or annotate the service with (lbclient.v1.service).default_target"},
		{"unknown scheme", "nope:///x:1", nil, nil,
			`lbclient: target "nope:///x:1": no resolver for scheme "nope" (known: dns, unix, passthrough, static, file, and those registered with resolver.Register or WithResolver)`},
		{"static target without addresses", "static:///", nil, nil,
			`lbclient: target "static:///": no addresses: write them as static:///host1:port,host2:port`},
		{"static target without a port", "static:///nohostport", nil, nil,
			`lbclient: target "static:///nohostport": address "nohostport": want host:port`},
		{"static target with a bad host", "static:///127.0.0.1:1,not a host:2", nil, nil,
			`lbclient: target "static:///127.0.0.1:1,not a host:2": address "not a host:2": "not a host" is neither an IP address nor a host name`},
		{"DNS target with spaces", "not a target", nil, nil,
			`lbclient: target "not a target": "not a target" is not a valid host name`},
		{"DNS target ending in a colon", "dns:///greeter.internal:", nil, nil,
			`lbclient: target "dns:///greeter.internal:": "greeter.internal:" ends with a colon and no port`},
		{"unix target without a path", "unix://", nil, nil,
			`lbclient: target "unix://": no socket path: write unix:///absolute/path or unix:relative/path`},
		{"two credentials", "static:///x:1", nil, []runtime.Option{runtime.WithInsecure(), runtime.WithTLS(nil)},
			"lbclient: WithTLS conflicts with WithInsecure: choose one transport security option"},
		{"nil option", "static:///x:1", nil, []runtime.Option{nil}, "lbclient: Dial: nil Option"},
		{"bad method name", "static:///x:1", nil, []runtime.Option{runtime.WithMethodRules("SayHello", runtime.MethodRules{})},
			`lbclient: WithMethodRules: method name "SayHello" is not of the form "/package.Service/Method"`},
		{"bad rules", "static:///x:1", &runtime.ServiceRules{Service: service, Defaults: runtime.MethodRules{Timeout: -1}}, nil,
			"lbclient: rules of greeter.v1.Greeter: default rules: Timeout: -1ns is negative"},
		{"bad option rules", "static:///x:1", &runtime.ServiceRules{Service: service}, []runtime.Option{runtime.WithMethodRules(sayHello, runtime.MethodRules{Retry: &runtime.RetryPolicy{MaxAttempts: 9, InitialBackoff: 1, MaxBackoff: 1, BackoffMultiplier: 1, RetryableCodes: []codes.Code{codes.Unavailable}}})},
			"lbclient: rules of greeter.v1.Greeter: rules of /greeter.v1.Greeter/SayHello: Retry.MaxAttempts: 9 is outside [2, 5]"},
		// Checked against the descriptors the binary registers: greeter.proto
		// through greeterv1, health.proto through grpc's health package.
		{"hedging a stream", "static:///x:1", nil, []runtime.Option{runtime.WithMethodRules("/greeter.v1.Greeter/Chat", runtime.MethodRules{Hedging: hedging})},
			"lbclient: rules of Dial: rules of /greeter.v1.Greeter/Chat: Hedging: hedging is only for unary methods, and greeter.v1.Greeter.Chat is bidi-streaming"},
		{"hedging a server stream", "static:///x:1", nil, []runtime.Option{runtime.WithMethodRules("/greeter.v1.Greeter/Watch", runtime.MethodRules{Hedging: hedging})},
			"lbclient: rules of Dial: rules of /greeter.v1.Greeter/Watch: Hedging: hedging is only for unary methods, and greeter.v1.Greeter.Watch is server-streaming"},
		{"hedging a method not marked idempotent", "static:///x:1", nil, []runtime.Option{runtime.WithMethodRules("/grpc.health.v1.Health/Check", runtime.MethodRules{Hedging: hedging})},
			"lbclient: rules of Dial: rules of /grpc.health.v1.Health/Check: Hedging: hedging needs idempotency_level IDEMPOTENT or NO_SIDE_EFFECTS, and that of grpc.health.v1.Health.Check is IDEMPOTENCY_UNKNOWN: a hedged call may run on several backends; " +
				`if its calls are safe to repeat, vouch for it with runtime.WithIdempotent("/grpc.health.v1.Health/Check")`},
		{"hedging a stream vouched for", "static:///x:1", nil, []runtime.Option{runtime.WithMethodRules("/grpc.health.v1.Health/Watch", runtime.MethodRules{Hedging: hedging})},
			"lbclient: rules of Dial: rules of /grpc.health.v1.Health/Watch: Hedging: hedging is only for unary methods, and grpc.health.v1.Health.Watch is server-streaming"},
		{"vouching for a stream", "static:///x:1", nil, []runtime.Option{runtime.WithIdempotent("/grpc.health.v1.Health/Watch")},
			"lbclient: WithIdempotent: grpc.health.v1.Health.Watch is server-streaming: only unary methods are hedged, so only they are vouched for"},
		{"vouching for a method the service lacks", "static:///x:1", nil, []runtime.Option{runtime.WithIdempotent("/grpc.health.v1.Health/Chek")},
			"lbclient: WithIdempotent: service grpc.health.v1.Health has no method Chek; its descriptor lists Check, List, Watch"},
		{"vouching for a bad name", "static:///x:1", nil, []runtime.Option{runtime.WithIdempotent("Check")},
			`lbclient: WithIdempotent: method name "Check" is not of the form "/package.Service/Method"`},
		{"method the service lacks", "static:///x:1", &runtime.ServiceRules{Service: service}, []runtime.Option{runtime.WithMethodRules("/greeter.v1.Greeter/SayHelo", runtime.MethodRules{Timeout: time.Second})},
			"lbclient: rules of greeter.v1.Greeter: rules of /greeter.v1.Greeter/SayHelo: service greeter.v1.Greeter has no method SayHelo; its descriptor lists SayHello, GreetAccount, Watch, Upload, Chat"},
		{"policy", "static:///x:1", nil, []runtime.Option{runtime.WithPolicy(runtime.Policy(99))}, "lbclient: WithPolicy: unknown policy Policy(99)"},
		{"dns refresh zero", "static:///x:1", nil, []runtime.Option{runtime.WithDNSRefresh(0)},
			"lbclient: WithDNSRefresh: 0 is not an interval: pass DefaultDNSRefresh (30s) for the default, or a negative duration to turn refresh off"},
		{"dns refresh short", "static:///x:1", nil, []runtime.Option{runtime.WithDNSRefresh(100 * time.Millisecond)},
			"lbclient: WithDNSRefresh: 100ms is outside [1s, 1h0m0s] (a negative interval turns refresh off)"},
		{"dns refresh in rules", "static:///x:1", &runtime.ServiceRules{Service: service, DNSRefresh: 2 * time.Hour}, nil,
			"lbclient: rules of greeter.v1.Greeter: DNSRefresh: 2h0m0s is outside [1s, 1h0m0s] (a negative interval turns refresh off)"},
		{"budget", "static:///x:1", nil, []runtime.Option{runtime.WithHedgingBudget(2, 10)}, "lbclient: WithHedgingBudget: ratio 2 is outside [0, 1]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := runtime.Dial(tc.target, tc.rules, tc.opts...)
			if err == nil {
				conn.Close()
				t.Fatalf("Dial succeeded, want error %q", tc.want)
			}
			if err.Error() != tc.want {
				t.Fatalf("Dial error:\n got %s\nwant %s", err, tc.want)
			}
		})
	}
}

// TestRulesCheckedOnlyAgainstKnownDescriptors: hedging an idempotent unary
// method is accepted, and rules for a service whose descriptor the binary
// does not hold are the caller's word.
func TestRulesCheckedOnlyAgainstKnownDescriptors(t *testing.T) {
	hedging := &runtime.HedgingPolicy{MaxAttempts: 2, Delay: time.Millisecond}
	for _, method := range []string{sayHello, "/unknown.v1.Service/Anything"} {
		conn, err := runtime.Dial("static:///127.0.0.1:1", nil, runtime.WithInsecure(),
			runtime.WithMethodRules(method, runtime.MethodRules{Hedging: hedging}))
		if err != nil {
			t.Errorf("hedging %s: %v", method, err)
			continue
		}
		conn.Close()
	}
}

// TestStreamIsNoLatencySample: a stream's lifetime is the caller's, not a
// measure of its backend; the Conn marks streams for its balancer, so a
// stream held open for a while leaves the endpoint's latency as the unary
// calls made it.
func TestStreamIsNoLatencySample(t *testing.T) {
	bs := startBackends(t, 1)
	conn, c := dial(t, bs, nil, runtime.WithPolicy(runtime.PeakEWMA))
	ctx := ctxFor(t)
	for range 20 {
		if _, err := c.SayHello(ctx, &greeterv1.HelloRequest{Name: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	before := conn.Endpoints()[0].Latency
	chat, err := c.Chat(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := chat.Send(&greeterv1.HelloRequest{Name: "x"}); err != nil {
		t.Fatal(err)
	}
	if _, err := chat.Recv(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the stream stays open
	if err := chat.CloseSend(); err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := chat.Recv(); err != nil {
			break
		}
	}
	ep := conn.Endpoints()[0]
	if ep.InFlight != 0 || ep.Picks != 21 {
		t.Fatalf("endpoint %+v, want 21 picks, nothing in flight", ep)
	}
	if ep.Latency != before {
		t.Errorf("latency %v after a 300ms stream, %v before: the stream was taken as a sample", ep.Latency, before)
	}
}

// TestCloseIsIdempotent: a second Close, such as a deferred one after an
// explicit one, returns nil, and calls after Close fail with CANCELED.
func TestCloseIsIdempotent(t *testing.T) {
	bs := startBackends(t, 1)
	conn, err := runtime.Dial(bs.Target(), nil, runtime.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Close(); err != nil {
		t.Fatalf("first Close: %v", err)
	}
	for i := range 2 {
		if err := conn.Close(); err != nil {
			t.Errorf("Close number %d: %v, want nil", i+2, err)
		}
	}
	_, err = greeterv1.NewGreeterClient(conn).SayHello(ctxFor(t), &greeterv1.HelloRequest{})
	if status.Code(err) != codes.Canceled {
		t.Errorf("call on a closed Conn: %v, want CANCELED", err)
	}
}

// tokenCreds are per-RPC credentials that may require transport security.
type tokenCreds struct{ secure bool }

func (tokenCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer t"}, nil
}
func (c tokenCreds) RequireTransportSecurity() bool { return c.secure }

// nilBuilder is a resolver builder type whose nil pointer reaches Dial.
type nilBuilder struct{ resolver.Builder }

// TestBadOptionArguments: an argument that would panic inside grpc-go, or
// make every call fail, is a Dial error that names the option.
func TestBadOptionArguments(t *testing.T) {
	var unary grpc.UnaryClientInterceptor = func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	for _, tc := range []struct {
		name string
		opts []runtime.Option
		want string
	}{
		{"nil dial option", []runtime.Option{runtime.WithDialOptions(grpc.WithUserAgent("x"), nil)},
			"lbclient: WithDialOptions: option 2 of 2 is nil"},
		{"nil unary interceptor", []runtime.Option{runtime.WithUnaryInterceptors(unary, nil, unary)},
			"lbclient: WithUnaryInterceptors: interceptor 2 of 3 is nil"},
		{"nil stream interceptor", []runtime.Option{runtime.WithStreamInterceptors(nil)},
			"lbclient: WithStreamInterceptors: interceptor 1 of 1 is nil"},
		{"nil per-RPC credentials", []runtime.Option{runtime.WithPerRPCCredentials(nil)},
			"lbclient: WithPerRPCCredentials: nil credentials"},
		{"nil pointer per-RPC credentials", []runtime.Option{runtime.WithPerRPCCredentials((*tokenCreds)(nil))},
			"lbclient: WithPerRPCCredentials: nil credentials"},
		{"nil transport credentials", []runtime.Option{runtime.WithTransportCredentials(nil)},
			"lbclient: WithTransportCredentials: nil credentials"},
		{"nil resolver", []runtime.Option{runtime.WithResolver(nil)},
			"lbclient: WithResolver: nil resolver builder"},
		{"nil pointer resolver", []runtime.Option{runtime.WithResolver((*nilBuilder)(nil))},
			"lbclient: WithResolver: nil resolver builder"},
		{"nil logger", []runtime.Option{runtime.WithLogger(nil)}, "lbclient: WithLogger: nil logger"},
		{"zero logger", []runtime.Option{runtime.WithLogger(new(slog.Logger))}, "lbclient: WithLogger: nil logger"},
		{"TLS version", []runtime.Option{runtime.WithTLS(&tls.Config{MinVersion: 0x0305})},
			"lbclient: WithTLS: MinVersion 0x0305 is not a TLS version: use tls.VersionTLS12 or tls.VersionTLS13"},
		{"TLS below 1.2", []runtime.Option{runtime.WithTLS(&tls.Config{MaxVersion: tls.VersionTLS11})},
			"lbclient: WithTLS: MaxVersion is TLS 1.1: gRPC runs on HTTP/2, which needs TLS 1.2 or later"},
		{"TLS versions crossed", []runtime.Option{runtime.WithTLS(&tls.Config{MinVersion: tls.VersionTLS13, MaxVersion: tls.VersionTLS12})},
			"lbclient: WithTLS: MinVersion TLS 1.3 is above MaxVersion TLS 1.2"},
		{"TLS server name with port", []runtime.Option{runtime.WithTLS(&tls.Config{ServerName: "greeter.internal:8443"})},
			`lbclient: WithTLS: ServerName "greeter.internal:8443" is not a host name: name the host alone, without port or scheme, as the server's certificate does`},
		{"TLS certificate without key", []runtime.Option{runtime.WithTLS(&tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{{1}}}}})},
			"lbclient: WithTLS: Certificates[0] has no private key: load it with tls.LoadX509KeyPair or tls.X509KeyPair"},
		{"secure per-RPC credentials in plaintext", []runtime.Option{runtime.WithInsecure(), runtime.WithPerRPCCredentials(tokenCreds{}), runtime.WithPerRPCCredentials(tokenCreds{secure: true})},
			"lbclient: WithPerRPCCredentials: credentials 2 (runtime_test.tokenCreds) require transport security, and WithInsecure dials in plaintext: dial with WithTLS or WithTransportCredentials instead"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := runtime.Dial("static:///127.0.0.1:1", nil, tc.opts...)
			if err == nil {
				conn.Close()
				t.Fatalf("Dial succeeded, want error %q", tc.want)
			}
			if err.Error() != tc.want {
				t.Fatalf("Dial error:\n got %s\nwant %s", err, tc.want)
			}
		})
	}
}

// TestTLSConfigsThatWork: WithTLS accepts the configs a gRPC handshake can
// complete with, IP server names and plain ones included.
func TestTLSConfigsThatWork(t *testing.T) {
	for _, cfg := range []*tls.Config{nil, {}, {ServerName: "greeter.internal"}, {ServerName: "::1"},
		{MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS13}, {InsecureSkipVerify: true}} {
		conn, err := runtime.Dial("static:///127.0.0.1:1", nil, runtime.WithTLS(cfg))
		if err != nil {
			t.Errorf("WithTLS(%+v): %v", cfg, err)
			continue
		}
		conn.Close()
	}
}

// slowHealth is a health service whose Check hangs, until the call ends,
// while hang is set.
type slowHealth struct {
	healthpb.UnimplementedHealthServer
	hang  bool
	calls atomic.Int64
}

func (h *slowHealth) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	h.calls.Add(1)
	if h.hang {
		<-ctx.Done()
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

// TestWithIdempotentHedgesAnUnmarkedMethod hedges grpc.health.v1.Health's
// Check, which health.proto does not mark idempotent: with WithIdempotent
// Dial accepts the rule, and every call whose first attempt goes to the
// backend that hangs is answered by a hedge to the other.
func TestWithIdempotentHedgesAnUnmarkedMethod(t *testing.T) {
	const check = "/grpc.health.v1.Health/Check"
	var addrs []string
	servers := []*slowHealth{{hang: true}, {}}
	for _, h := range servers {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s := grpc.NewServer()
		healthpb.RegisterHealthServer(s, h)
		go s.Serve(lis)
		t.Cleanup(s.Stop)
		addrs = append(addrs, lis.Addr().String())
	}
	rules := runtime.MethodRules{Hedging: &runtime.HedgingPolicy{MaxAttempts: 2, Delay: 20 * time.Millisecond}}
	if conn, err := runtime.Dial("static:///"+strings.Join(addrs, ","), nil, runtime.WithInsecure(), runtime.WithMethodRules(check, rules)); err == nil {
		conn.Close()
		t.Fatal("Dial accepted hedging of a method not marked idempotent, without WithIdempotent")
	}
	conn, err := runtime.Dial("static:///"+strings.Join(addrs, ","), nil, runtime.WithInsecure(),
		runtime.WithPolicy(runtime.RoundRobin), runtime.WithMethodRules(check, rules), runtime.WithIdempotent(check))
	if err != nil {
		t.Fatalf("Dial with WithIdempotent: %v", err)
	}
	defer conn.Close()
	waitAllReady(t, conn, 2)
	client := healthpb.NewHealthClient(conn)
	const calls = 20
	for i := range calls {
		if _, err := client.Check(ctxFor(t), &healthpb.HealthCheckRequest{}); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	st := conn.Stats().Hedging.Methods[check]
	if st.Calls != calls || st.Hedged == 0 || st.HedgeWins == 0 {
		t.Errorf("hedging stats of %s: %+v; want %d calls, some hedged and won by the hedge", check, st, calls)
	}
	if servers[0].calls.Load() == 0 {
		t.Errorf("no call reached the hanging backend: the test proves nothing")
	}
}

// TestTargetsThatDial: every form of target grpc-go resolves is accepted
// by Dial's syntax check.
func TestTargetsThatDial(t *testing.T) {
	for _, target := range []string{
		"localhost:50051", "greeter.internal", "dns:///greeter.internal:8443", "dns://8.8.8.8/greeter.internal:443",
		"dns:///[::1]:443", "127.0.0.1", "::1", "[::1]:50051", ":50051", "greeter.internal:https",
		"static:///127.0.0.1:1,[::1]:2,localhost:3", "unix:///tmp/lbclient.sock", "unix:relative.sock",
		"unix-abstract:name", "passthrough:///anything at all",
	} {
		conn, err := runtime.Dial(target, nil, runtime.WithInsecure())
		if err != nil {
			t.Errorf("Dial(%q): %v", target, err)
			continue
		}
		conn.Close()
	}
}

// TestLatencyIsZeroBeforeTheFirstAnswer: EndpointStats.Latency averages
// the calls an endpoint answered, so a connected endpoint that has had no
// call shows 0, not its balancer's prior, under every policy.
func TestLatencyIsZeroBeforeTheFirstAnswer(t *testing.T) {
	bs := startBackends(t, 2)
	for _, p := range []runtime.Policy{runtime.RoundRobin, runtime.PeakEWMA, runtime.ConsistentHash} {
		t.Run(p.String(), func(t *testing.T) {
			conn, c := dial(t, bs, nil, runtime.WithPolicy(p))
			waitAllReady(t, conn, len(bs))
			for _, e := range conn.Endpoints() {
				if e.Picks != 0 || e.Latency != 0 {
					t.Errorf("endpoint %s before any call: %d picks, latency %v; want 0 and 0", e.Addr, e.Picks, e.Latency)
				}
			}
			spread(t, ctxFor(t), c, 20)
			for _, e := range conn.Endpoints() {
				if e.Picks > 0 && e.Latency <= 0 {
					t.Errorf("endpoint %s after %d calls: latency %v, want > 0", e.Addr, e.Picks, e.Latency)
				}
			}
		})
	}
}

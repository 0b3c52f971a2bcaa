package xds_test

import (
	"context"
	"testing"
	"time"

	routepb "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	greeterv1 "github.com/lbclient/lbclient/gen/greeter/v1"
	"github.com/lbclient/lbclient/runtime"
	"github.com/lbclient/lbclient/runtime/xds/xdstest"
)

const (
	sayHello     = "/greeter.v1.Greeter/SayHello"
	greetAccount = "/greeter.v1.Greeter/GreetAccount"
	watch        = "/greeter.v1.Greeter/Watch"
)

// dialRules dials xds:///greeter with rules, closed when the test ends.
func dialRules(t *testing.T, opt runtime.Option, rules *runtime.ServiceRules) greeterv1.GreeterClient {
	t.Helper()
	conn, err := runtime.Dial("xds:///greeter", rules, opt, runtime.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return greeterv1.NewGreeterClient(conn)
}

// sayHello calls SayHello with a 10 s deadline of the caller's and returns
// the error and how long the call took.
func callSayHello(c greeterv1.GreeterClient, opts ...grpc.CallOption) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	_, err := c.SayHello(ctx, &greeterv1.HelloRequest{Name: "x"}, opts...)
	return time.Since(start), err
}

// TestRulesOnXDS checks what of the rules applies on an xds:/// target,
// where grpc-go takes each call's method config from the xDS route and
// ignores every other service config's: the rules' timeouts and
// wait-for-ready apply, the earlier of the rules' timeout and the route's
// max_stream_duration wins, and retries are the route's.
func TestRulesOnXDS(t *testing.T) {
	bs := startBackends(t, 1, nil)
	b := bs[0]
	cp, opt := startControlPlane(t)
	svc := xdstest.Service{Name: "greeter", Localities: oneLocality(endpoints(bs))}

	t.Run("rules' timeout, no route timeout", func(t *testing.T) {
		set(t, cp, svc)
		b.delay.Store(int64(3 * time.Second))
		defer b.delay.Store(0)
		c := dialRules(t, opt, &runtime.ServiceRules{Service: "greeter.v1.Greeter", Methods: map[string]runtime.MethodRules{
			sayHello: {Timeout: 200 * time.Millisecond},
		}})
		took, err := callSayHello(c)
		if status.Code(err) != codes.DeadlineExceeded || took > 2*time.Second {
			t.Errorf("SayHello with a 200ms rule against a 3s backend: %v after %v, want DEADLINE_EXCEEDED well before 3s", err, took)
		}
	})

	t.Run("route's max_stream_duration sooner", func(t *testing.T) {
		s := svc
		s.MaxStreamDuration = 200 * time.Millisecond
		set(t, cp, s)
		b.delay.Store(int64(3 * time.Second))
		defer b.delay.Store(0)
		c := dialRules(t, opt, &runtime.ServiceRules{Service: "greeter.v1.Greeter", Defaults: runtime.MethodRules{Timeout: 10 * time.Second}})
		took, err := callSayHello(c)
		if status.Code(err) != codes.DeadlineExceeded || took > 2*time.Second {
			t.Errorf("SayHello with a 10s rule and a 200ms route against a 3s backend: %v after %v, want DEADLINE_EXCEEDED well before 3s", err, took)
		}
	})

	t.Run("rules' timeout sooner than the route's", func(t *testing.T) {
		s := svc
		s.MaxStreamDuration = 10 * time.Second
		set(t, cp, s)
		b.delay.Store(int64(3 * time.Second))
		defer b.delay.Store(0)
		c := dialRules(t, opt, &runtime.ServiceRules{Service: "greeter.v1.Greeter", Defaults: runtime.MethodRules{Timeout: 200 * time.Millisecond}})
		took, err := callSayHello(c)
		if status.Code(err) != codes.DeadlineExceeded || took > 2*time.Second {
			t.Errorf("SayHello with a 200ms rule and a 10s route against a 3s backend: %v after %v, want DEADLINE_EXCEEDED well before 3s", err, took)
		}
	})

	t.Run("stream timeout", func(t *testing.T) {
		set(t, cp, svc)
		b.delay.Store(int64(time.Second))
		defer b.delay.Store(0)
		c := dialRules(t, opt, &runtime.ServiceRules{Service: "greeter.v1.Greeter", Methods: map[string]runtime.MethodRules{
			watch: {Timeout: 300 * time.Millisecond},
		}})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		start := time.Now()
		st, err := c.Watch(ctx, &greeterv1.WatchRequest{Name: "x", Count: 5})
		for err == nil {
			_, err = st.Recv()
		}
		if took := time.Since(start); status.Code(err) != codes.DeadlineExceeded || took > 3*time.Second {
			t.Errorf("Watch of 5 × 1s with a 300ms rule: %v after %v, want DEADLINE_EXCEEDED well before 5s", err, took)
		}
	})

	t.Run("wait for ready", func(t *testing.T) {
		s := svc
		s.Localities = nil // no endpoint: calls cannot be sent
		set(t, cp, s)
		c := dialRules(t, opt, &runtime.ServiceRules{Service: "greeter.v1.Greeter", Methods: map[string]runtime.MethodRules{
			sayHello:     {WaitForReady: true},
			greetAccount: {},
		}})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := c.GreetAccount(ctx, &greeterv1.GreetAccountRequest{}); status.Code(err) != codes.Unavailable {
			t.Errorf("GreetAccount without wait_for_ready and no endpoint: %v, want UNAVAILABLE at once", err)
		}
		if _, err := callSayHello(c, grpc.WaitForReady(false)); status.Code(err) != codes.Unavailable {
			t.Errorf("SayHello with the caller's WaitForReady(false) over the rule: %v, want UNAVAILABLE at once", err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := callSayHello(c)
			done <- err
		}()
		select {
		case err := <-done:
			t.Fatalf("SayHello with wait_for_ready and no endpoint ended at once: %v", err)
		case <-time.After(300 * time.Millisecond):
		}
		set(t, cp, svc) // the endpoint comes
		if err := <-done; err != nil {
			t.Errorf("SayHello that waited for ready: %v, want success once the control plane sent the endpoint", err)
		}
	})

	retry := &runtime.RetryPolicy{MaxAttempts: 3, InitialBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, BackoffMultiplier: 2, RetryableCodes: []codes.Code{codes.Unavailable}}
	t.Run("route's retry policy", func(t *testing.T) {
		s := svc
		s.Retry = &routepb.RetryPolicy{
			RetryOn:      "unavailable",
			NumRetries:   wrapperspb.UInt32(2),
			RetryBackOff: &routepb.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(10 * time.Millisecond)},
		}
		set(t, cp, s)
		c := dialRules(t, opt, &runtime.ServiceRules{Service: "greeter.v1.Greeter"})
		waitReady(t, c)
		before := b.calls.Load()
		b.failNext.Store(1)
		if _, err := callSayHello(c); err != nil {
			t.Errorf("SayHello failing once under the route's retry policy: %v, want success", err)
		}
		if n := b.calls.Load() - before; n != 2 {
			t.Errorf("the backend took %d attempts, want 2", n)
		}
	})

	t.Run("rules' retry policy is not applied", func(t *testing.T) {
		set(t, cp, svc)
		c := dialRules(t, opt, &runtime.ServiceRules{Service: "greeter.v1.Greeter", Defaults: runtime.MethodRules{Retry: retry}})
		waitReady(t, c)
		b.failNext.Store(1)
		defer b.failNext.Store(0)
		if _, err := callSayHello(c); status.Code(err) != codes.Unavailable {
			t.Errorf("SayHello failing once, with the rules' retry policy and none on the route: %v, want UNAVAILABLE (the route decides retries)", err)
		}
	})
}

// waitReady makes calls until one succeeds, so that the connection has its
// route and endpoint before the test counts attempts.
func waitReady(t *testing.T, c greeterv1.GreeterClient) {
	t.Helper()
	waitFor(t, "a first successful call", func() bool {
		_, err := callSayHello(c, grpc.WaitForReady(true))
		return err == nil
	})
}

// End-to-end tests of the generated client: the code in
// gen/greeter/v1/greeterv1lbclient against real Greeter servers on loopback.
package example_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/lbclient/lbclient/example/backend"
	greeterv1 "github.com/lbclient/lbclient/gen/greeter/v1"
	"github.com/lbclient/lbclient/gen/greeter/v1/greeterv1lbclient"
	"github.com/lbclient/lbclient/internal/testfleet"
	"github.com/lbclient/lbclient/runtime"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The generated client is a drop-in for protoc-gen-go-grpc's interface.
var _ greeterv1.GreeterClient = (*greeterv1lbclient.GreeterClient)(nil)

// startBackends serves n Greeters on loopback, stopped when the test ends.
func startBackends(t *testing.T, n int) backend.Fleet { return testfleet.Start(t, n) }

func newClient(t *testing.T, bs backend.Fleet, opts ...runtime.Option) *greeterv1lbclient.GreeterClient {
	t.Helper()
	c, err := greeterv1lbclient.NewGreeterClient(bs.Target(), append([]runtime.Option{runtime.WithInsecure()}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

// waitAllReady waits, bounded, until conn has n READY endpoints.
func waitAllReady(t *testing.T, conn *runtime.Conn, n int) {
	t.Helper()
	if err := conn.WaitForReady(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	for range 500 {
		ready := 0
		for _, e := range conn.Endpoints() {
			if e.State == connectivity.Ready {
				ready++
			}
		}
		if ready == n {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("endpoints never all READY: %+v", conn.Endpoints())
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestEveryMethodKindUnderEveryPolicy calls each kind of method through the
// generated client, under each policy, and checks with grpc.Peer where the
// calls went.
func TestEveryMethodKindUnderEveryPolicy(t *testing.T) {
	bs := startBackends(t, 3)
	byAddr := map[string]string{}
	for _, b := range bs {
		byAddr[b.Addr()] = b.Name()
	}
	for _, p := range []runtime.Policy{runtime.PickFirst, runtime.RoundRobin, runtime.LeastRequest, runtime.WeightedRoundRobin, runtime.PeakEWMA, runtime.ConsistentHash} {
		t.Run(p.String(), func(t *testing.T) {
			c := newClient(t, bs, runtime.WithPolicy(p))
			ctx := testCtx(t)
			if p != runtime.PickFirst {
				// Until every backend is ready, calls go to those that are.
				waitAllReady(t, c.Conn(), len(bs))
			}
			perPeer := map[string]int{}
			const calls = 30
			for i := range calls {
				var pr peer.Peer
				r, err := c.SayHello(ctx, &greeterv1.HelloRequest{Name: fmt.Sprint(i)}, grpc.Peer(&pr))
				if err != nil {
					t.Fatalf("SayHello: %v", err)
				}
				if byAddr[pr.Addr.String()] != r.GetBackend() {
					t.Fatalf("grpc.Peer says %s, the reply says %s", pr.Addr, r.GetBackend())
				}
				perPeer[r.GetBackend()]++
			}
			if p == runtime.PickFirst && len(perPeer) != 1 {
				t.Errorf("PICK_FIRST spread calls over %v", perPeer)
			}
			if p != runtime.PickFirst && len(perPeer) != 3 {
				t.Errorf("%v used %d of 3 backends: %v", p, len(perPeer), perPeer)
			}

			// Server streaming.
			w, err := c.Watch(ctx, &greeterv1.WatchRequest{Name: "w", Count: 3})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for {
				r, err := w.Recv()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, r.GetMessage())
			}
			if len(got) != 3 || got[2] != "Hello #3, w" {
				t.Errorf("Watch sent %q", got)
			}

			// Client streaming.
			up, err := c.Upload(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range []string{"a", "b", "c", "d"} {
				if err := up.Send(&greeterv1.HelloRequest{Name: n}); err != nil {
					t.Fatal(err)
				}
			}
			sum, err := up.CloseAndRecv()
			if err != nil || sum.GetCount() != 4 {
				t.Fatalf("Upload: %v, %v; want 4 names", sum, err)
			}

			// Bidirectional streaming.
			chat, err := c.Chat(ctx) //nolint:staticcheck // Chat is deprecated in the proto; it is still served.
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range []string{"x", "y"} {
				if err := chat.Send(&greeterv1.HelloRequest{Name: n}); err != nil {
					t.Fatal(err)
				}
				r, err := chat.Recv()
				if err != nil || r.GetMessage() != "Hello, "+n {
					t.Fatalf("Chat: %v, %v", r, err)
				}
			}
			if err := chat.CloseSend(); err != nil {
				t.Fatal(err)
			}
			if _, err := chat.Recv(); !errors.Is(err, io.EOF) {
				t.Fatalf("Chat after CloseSend: %v, want EOF", err)
			}
		})
	}
}

// TestHashKeyFromTheRequest checks that GreetAccount's hash_key
// (account.id) routes every call of an account to one backend, with no
// runtime.WithHashKey in sight.
func TestHashKeyFromTheRequest(t *testing.T) {
	bs := startBackends(t, 4)
	c := newClient(t, bs, runtime.WithPolicy(runtime.ConsistentHash))
	ctx := testCtx(t)
	waitAllReady(t, c.Conn(), len(bs))
	used := map[string]bool{}
	for i := range 40 {
		id := fmt.Sprintf("acct-%d", i)
		first := ""
		for range 5 {
			r, err := c.GreetAccount(ctx, &greeterv1.GreetAccountRequest{Account: &greeterv1.Account{Id: id}})
			if err != nil {
				t.Fatal(err)
			}
			if first == "" {
				first = r.GetBackend()
			} else if r.GetBackend() != first {
				t.Fatalf("account %s went to %s, then %s", id, first, r.GetBackend())
			}
		}
		used[first] = true
	}
	if len(used) < 3 {
		t.Errorf("40 accounts landed on %d of 4 backends; the key does not spread them", len(used))
	}
}

// TestRulesFromTheAnnotations checks the rules that greeter.proto's
// annotations give the generated client, in action.
func TestRulesFromTheAnnotations(t *testing.T) {
	rules := greeterv1lbclient.GreeterRules()
	if rules.Policy != runtime.PeakEWMA || rules.HealthCheckService != greeterv1lbclient.GreeterServiceName {
		t.Errorf("GreeterRules() = %+v; want PEAK_EWMA and health checking from the annotations", rules)
	}

	bs := startBackends(t, 1)
	c := newClient(t, bs)
	ctx := testCtx(t)
	// defaults.retry: three attempts on UNAVAILABLE (GreetAccount has no
	// retry of its own, so it keeps the defaults').
	bs[0].FailNext(2)
	if _, err := c.GreetAccount(ctx, &greeterv1.GreetAccountRequest{Account: &greeterv1.Account{Id: "a"}}); err != nil {
		t.Fatalf("two failures, three attempts from the defaults: %v", err)
	}
	// SayHello's timeout of 1s.
	bs[0].SetDelay(5 * time.Second)
	start := time.Now()
	_, err := c.SayHello(ctx, &greeterv1.HelloRequest{})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("SayHello against a 5s backend: %v, want DEADLINE_EXCEEDED from the 1s timeout", err)
	}
	if time.Since(start) >= 5*time.Second {
		t.Errorf("the call waited for the backend instead of its 1s timeout")
	}
}

func TestNewClientErrors(t *testing.T) {
	if _, err := greeterv1lbclient.NewGreeterClient("nope:///x:1", runtime.WithInsecure()); err == nil || !strings.Contains(err.Error(), `no resolver for scheme "nope"`) {
		t.Errorf("unknown scheme: %v", err)
	}
	if _, err := greeterv1lbclient.NewGreeterClient("static:///x:1", runtime.WithInsecure(), runtime.WithTLS(nil)); err == nil || !strings.Contains(err.Error(), "WithTLS conflicts with WithInsecure") {
		t.Errorf("two credentials: %v", err)
	}
}

// TestFromConn wraps a connection the caller owns: Close leaves it open.
func TestFromConn(t *testing.T) {
	bs := startBackends(t, 2)
	conn, err := runtime.Dial(bs.Target(), greeterv1lbclient.GreeterRules(), runtime.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := greeterv1lbclient.NewGreeterClientFromConn(conn)
	if c.Conn() != conn {
		t.Errorf("Conn() = %p, want the wrapped %p", c.Conn(), conn)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SayHello(testCtx(t), &greeterv1.HelloRequest{}); err != nil {
		t.Fatalf("call after closing a client that does not own its connection: %v", err)
	}
}

// TestDefaultsTimeoutSparesStreams: the Greeter's defaults set a 2s
// timeout, for unary and client-streaming calls; a Watch stream, whose
// replies come for as long as the caller reads, outlives it, while a
// unary call of the same client is still cut at 2s.
func TestDefaultsTimeoutSparesStreams(t *testing.T) {
	if d := greeterv1lbclient.GreeterRules().Defaults.Timeout; d != 2*time.Second {
		t.Fatalf("the Greeter's defaults have timeout %v; this test is written for 2s", d)
	}
	bs := startBackends(t, 1)
	c := newClient(t, bs)
	bs[0].SetStreamInterval(800 * time.Millisecond)
	start := time.Now()
	stream, err := c.Watch(testCtx(t), &greeterv1.WatchRequest{Name: "ada", Count: 4})
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for {
		_, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("Watch stream after %v and %d replies: %v", time.Since(start).Round(time.Millisecond), got, err)
		}
		got++
	}
	if got != 4 {
		t.Fatalf("Watch stream ended after %d replies, want 4", got)
	}
	if el := time.Since(start); el < 2*time.Second {
		t.Fatalf("Watch stream took %v, less than the defaults' timeout: the test proves nothing", el)
	}

	// Upload is client-streaming, with its own 10s; GreetAccount takes the
	// defaults' 2s.
	bs[0].SetDelay(10 * time.Second)
	_, err = c.GreetAccount(testCtx(t), &greeterv1.GreetAccountRequest{Account: &greeterv1.Account{Id: "a"}})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("unary call to a backend taking 10s: %v, want DEADLINE_EXCEEDED from the defaults' 2s", err)
	}
}

package backend_test

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/lbclient/lbclient/example/backend"
	greeterv1 "github.com/lbclient/lbclient/gen/greeter/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The tests below assert outcomes, not durations: a fault either outlasts a
// deadline by orders of magnitude or does not happen at all.
const (
	short = 100 * time.Millisecond // a deadline that a fault outlasts
	long  = time.Minute            // a fault, or a deadline nothing reaches
)

func start(t *testing.T) (*backend.Backend, greeterv1.GreeterClient) {
	t.Helper()
	b, err := backend.Start("b", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	cc, err := grpc.NewClient(b.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return b, greeterv1.NewGreeterClient(cc)
}

func sayHello(c greeterv1.GreeterClient, deadline time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	_, err := c.SayHello(ctx, &greeterv1.HelloRequest{Name: "t"})
	return err
}

// watch opens a Watch of count messages and returns how many arrived and
// how the stream ended (nil for a clean end).
func watch(c greeterv1.GreeterClient, count uint32, deadline time.Duration) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	s, err := c.Watch(ctx, &greeterv1.WatchRequest{Name: "t", Count: count})
	if err != nil {
		return 0, err
	}
	n := 0
	for {
		_, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		n++
	}
}

// waitFor polls cond, bounded, and fails the test if it stays false.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(long); time.Now().Before(end); time.Sleep(time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("gave up waiting for %s", what)
}

func TestSetHung(t *testing.T) {
	b, c := start(t)
	if err := sayHello(c, long); err != nil {
		t.Fatalf("before SetHung: %v", err)
	}
	b.SetHung(true)
	if err := sayHello(c, short); status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("hung: SayHello = %v, want DEADLINE_EXCEEDED", err)
	}
	if n, err := watch(c, 3, long); n != 3 || err != nil {
		t.Errorf("hung: Watch got %d messages, %v; want 3, streams unaffected", n, err)
	}
	// A call hanging when the backend is unhung goes on and is answered.
	hanging := make(chan error, 1)
	go func() { hanging <- sayHello(c, long) }()
	waitFor(t, "the hanging call to arrive", func() bool { return b.Calls() == 4 }) // 3 so far, and it
	b.SetHung(false)
	if err := <-hanging; err != nil {
		t.Errorf("call hanging at SetHung(false) = %v, want an answer", err)
	}
	if err := sayHello(c, long); err != nil {
		t.Errorf("after SetHung(false): %v", err)
	}
	if got := b.Cancelled(); got != 1 {
		t.Errorf("Cancelled = %d, want 1 (the call that hit its deadline)", got)
	}
}

func TestSetColdCalls(t *testing.T) {
	b, c := start(t)
	b.SetColdCalls(2, long)
	for i := range 2 {
		if err := sayHello(c, short); status.Code(err) != codes.DeadlineExceeded {
			t.Errorf("cold call %d = %v, want DEADLINE_EXCEEDED", i+1, err)
		}
	}
	for i := range 3 {
		if err := sayHello(c, long); err != nil {
			t.Errorf("call %d after the cold ones = %v, want an answer", i+3, err)
		}
	}
}

func TestSetStreamInterval(t *testing.T) {
	b, c := start(t)
	b.SetStreamInterval(long)
	if n, err := watch(c, 3, short); n != 0 || status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("Watch with a %v interval: %d messages, %v; want 0, DEADLINE_EXCEEDED", long, n, err)
	}
	b.SetStreamInterval(time.Millisecond)
	if n, err := watch(c, 3, long); n != 3 || err != nil {
		t.Errorf("Watch with a 1ms interval: %d messages, %v; want 3", n, err)
	}
	if err := sayHello(c, long); err != nil {
		t.Errorf("SayHello beside streams: %v", err)
	}
}

func TestHalfOpen(t *testing.T) {
	h, err := backend.StartHalfOpen("silent")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop()
	conn, err := net.Dial("tcp", h.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(short))
	buf := make([]byte, 1)
	if n, err := conn.Read(buf); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("Read from a half-open peer = %d bytes, %v; want none, a timeout", n, err)
	}
	waitFor(t, "the connection to be accepted", func() bool { return h.Conns() == 1 })

	// A gRPC call to it never gets an answer.
	cc, err := grpc.NewClient(h.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	err = sayHello(greeterv1.NewGreeterClient(cc), short)
	if code := status.Code(err); code != codes.DeadlineExceeded && code != codes.Unavailable {
		t.Errorf("SayHello to a half-open peer = %v, want DEADLINE_EXCEEDED or UNAVAILABLE", err)
	}

	h.Stop()
	conn.SetReadDeadline(time.Now().Add(long))
	if _, err := conn.Read(buf); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("Read after Stop = %v, want the connection closed", err)
	}
	if _, err := net.Dial("tcp", h.Addr()); err == nil {
		t.Errorf("Dial after Stop succeeded, want the listener closed")
	}
	if h.Conns() != 0 {
		t.Errorf("Conns after Stop = %d, want 0", h.Conns())
	}
}

// Package testfleet starts the example's Greeter backends on loopback for
// a test and dials them through lbclient's runtime: the setup that the
// runtime's, the debug page's and the example's tests share.
package testfleet

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/connectivity"

	"github.com/lbclient/lbclient/example/backend"
	greeterv1 "github.com/lbclient/lbclient/gen/greeter/v1"
	"github.com/lbclient/lbclient/runtime"
)

// Start serves n Greeters on 127.0.0.1, named backend-1 to backend-n, and
// stops them when the test ends.
func Start(tb testing.TB, n int) backend.Fleet {
	tb.Helper()
	f, err := backend.StartFleet(n)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(f.Stop)
	return f
}

// DialReady dials f's static:/// target in plaintext with opts (no rules),
// closes the connection when the test ends, and waits, for up to 30 s,
// until every backend of f is READY, so that calls spread over all of
// them from the first.
func DialReady(tb testing.TB, f backend.Fleet, opts ...runtime.Option) (*runtime.Conn, greeterv1.GreeterClient) {
	tb.Helper()
	conn, err := runtime.Dial(f.Target(), nil, append([]runtime.Option{runtime.WithInsecure()}, opts...)...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := conn.WaitForReady(ctx); err != nil {
		tb.Fatal(err)
	}
	for {
		ready := 0
		for _, e := range conn.Endpoints() {
			if e.State == connectivity.Ready {
				ready++
			}
		}
		if ready == len(f) {
			return conn, greeterv1.NewGreeterClient(conn)
		}
		if ctx.Err() != nil {
			tb.Fatalf("%d of %d endpoints READY: %+v", ready, len(f), conn.Endpoints())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

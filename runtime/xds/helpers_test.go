package xds_test

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clusterpb "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	greeterv1 "github.com/lbclient/lbclient/gen/greeter/v1"
	"github.com/lbclient/lbclient/runtime"
	"github.com/lbclient/lbclient/runtime/xds"
	"github.com/lbclient/lbclient/runtime/xds/xdstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// record is one call as a backend saw it: when it arrived, which backend
// took it, and over which client connection (the client's address, one
// per SubConn, so a policy that replaces another shows as new ones).
type record struct {
	at      time.Time
	backend int
	conn    string
}

// callLog is every call the backends of a test took, in arrival order.
type callLog struct {
	mu   sync.Mutex
	recs []record
}

func (l *callLog) add(r record) {
	l.mu.Lock()
	l.recs = append(l.recs, r)
	l.mu.Unlock()
}

// between returns the calls that arrived in [from, to).
func (l *callLog) between(from, to time.Time) []record {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []record
	for _, r := range l.recs {
		if !r.at.Before(from) && r.at.Before(to) {
			out = append(out, r)
		}
	}
	return out
}

// conns returns the client connections of recs.
func conns(recs []record) map[string]bool {
	m := map[string]bool{}
	for _, r := range recs {
		m[r.conn] = true
	}
	return m
}

// shares returns the share of recs each of n backends took.
func shares(recs []record, n int) []float64 {
	out := make([]float64, n)
	for _, r := range recs {
		out[r.backend]++
	}
	for i := range out {
		out[i] /= float64(max(len(recs), 1))
	}
	return out
}

// backend is a Greeter server on loopback that logs each call.
type backend struct {
	greeterv1.UnimplementedGreeterServer
	index    int
	addr     string
	srv      *grpc.Server
	log      *callLog
	calls    atomic.Int64
	delay    atomic.Int64 // time.Duration each call (and each Watch message) waits
	failNext atomic.Int64 // calls left to fail with UNAVAILABLE
}

func (b *backend) serve(ctx context.Context) error {
	b.calls.Add(1)
	if b.log != nil {
		conn := ""
		if p, ok := peer.FromContext(ctx); ok {
			conn = p.Addr.String()
		}
		b.log.add(record{at: time.Now(), backend: b.index, conn: conn})
	}
	if b.failNext.Add(-1) >= 0 {
		return status.Errorf(codes.Unavailable, "backend %d fails this call", b.index)
	}
	return wait(ctx, time.Duration(b.delay.Load()))
}

func wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
}

func (b *backend) SayHello(ctx context.Context, in *greeterv1.HelloRequest) (*greeterv1.HelloReply, error) {
	if err := b.serve(ctx); err != nil {
		return nil, err
	}
	return &greeterv1.HelloReply{Message: "Hello, " + in.GetName(), Backend: fmt.Sprint(b.index)}, nil
}

func (b *backend) GreetAccount(ctx context.Context, in *greeterv1.GreetAccountRequest) (*greeterv1.HelloReply, error) {
	if err := b.serve(ctx); err != nil {
		return nil, err
	}
	return &greeterv1.HelloReply{Message: "Hello, account " + in.GetAccount().GetId(), Backend: fmt.Sprint(b.index)}, nil
}

func (b *backend) Watch(in *greeterv1.WatchRequest, stream grpc.ServerStreamingServer[greeterv1.HelloReply]) error {
	b.calls.Add(1)
	for range in.GetCount() {
		if err := wait(stream.Context(), time.Duration(b.delay.Load())); err != nil {
			return err
		}
		if err := stream.Send(&greeterv1.HelloReply{Message: "Hello, " + in.GetName(), Backend: fmt.Sprint(b.index)}); err != nil {
			return err
		}
	}
	return nil
}

// startBackends serves n backends on 127.0.0.1 that log to log (nil: no
// log), stopped when the test ends.
func startBackends(t *testing.T, n int, log *callLog) []*backend {
	t.Helper()
	bs := make([]*backend, n)
	for i := range bs {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
		b := &backend{index: i, addr: lis.Addr().String(), srv: grpc.NewServer(), log: log}
		greeterv1.RegisterGreeterServer(b.srv, b)
		go b.srv.Serve(lis)
		t.Cleanup(b.srv.Stop)
		bs[i] = b
	}
	return bs
}

// endpoints returns one endpoint per backend, the i-th of weight
// weights[i] (none given: unweighted).
func endpoints(bs []*backend, weights ...uint32) []xdstest.Endpoint {
	eps := make([]xdstest.Endpoint, len(bs))
	for i, b := range bs {
		eps[i] = xdstest.Endpoint{Addr: b.addr}
		if len(weights) > 0 {
			eps[i].Weight = weights[i]
		}
	}
	return eps
}

// oneLocality puts eps in one locality.
func oneLocality(eps []xdstest.Endpoint) []xdstest.Locality {
	return []xdstest.Locality{{Zone: "z1", Endpoints: eps}}
}

// startControlPlane starts a management server, closed when the test
// ends, and returns it with the Dial option that makes a connection its
// client.
func startControlPlane(t *testing.T) (*xdstest.Server, runtime.Option) {
	t.Helper()
	cp, err := xdstest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cp.Close)
	opt, err := xds.WithBootstrap(cp.Bootstrap())
	if err != nil {
		t.Fatal(err)
	}
	return cp, opt
}

// set gives the control plane its configuration, failing the test on error.
func set(t *testing.T, cp *xdstest.Server, svcs ...xdstest.Service) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cp.Set(ctx, svcs...); err != nil {
		t.Fatal(err)
	}
}

// lbPolicy returns the cluster policy that selects name with config.
func lbPolicy(t *testing.T, name, config string) *clusterpb.LoadBalancingPolicy {
	t.Helper()
	p, err := xds.LoadBalancingPolicy(name, config)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// waitFor polls cond every 10 ms for up to 10 s, failing the test if it
// never holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 1000 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("gave up after 10 s waiting for %s", what)
}

// Package backend is the example's Greeter server: a real gRPC server on a
// loopback port whose latency and failures can be set while it runs, with
// grpc's health service beside it. The example server, the demo and the
// end-to-end tests all run it.
package backend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	greeterv1 "github.com/lbclient/lbclient/gen/greeter/v1"
)

// Backend is one Greeter server.
type Backend struct {
	greeterv1.UnimplementedGreeterServer

	name   string
	server *grpc.Server
	health *health.Server
	lis    net.Listener
	addr   string

	delay    atomic.Int64 // time.Duration added to each unary call
	failNext atomic.Int64 // unary calls left to fail with UNAVAILABLE
	failAll  atomic.Bool  // fail every unary call with UNAVAILABLE

	coldLeft  atomic.Int64 // unary calls left to take coldDelay instead of delay
	coldDelay atomic.Int64 // time.Duration of a cold call

	streamInterval atomic.Int64 // time.Duration Watch waits before each message

	hungMu sync.Mutex
	hung   chan struct{} // open while unary calls hang; nil when they do not

	calls     atomic.Int64
	cancelled atomic.Int64

	serveDone chan struct{}
	stopOnce  sync.Once
}

// Start serves a Backend named name on addr ("127.0.0.1:0" picks a port).
func Start(name, addr string) (*Backend, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("backend %s: %w", name, err)
	}
	b := &Backend{
		name:      name,
		server:    grpc.NewServer(),
		health:    health.NewServer(),
		lis:       lis,
		addr:      lis.Addr().String(),
		serveDone: make(chan struct{}),
	}
	greeterv1.RegisterGreeterServer(b.server, b)
	healthpb.RegisterHealthServer(b.server, b.health)
	b.health.SetServingStatus(greeterv1.Greeter_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	go func() {
		defer close(b.serveDone)
		b.server.Serve(lis)
	}()
	return b, nil
}

// Name returns the backend's name.
func (b *Backend) Name() string { return b.name }

// Addr returns the address the backend listens on.
func (b *Backend) Addr() string { return b.addr }

// SetDelay makes every unary call take at least d.
func (b *Backend) SetDelay(d time.Duration) { b.delay.Store(int64(d)) }

// FailNext makes the next n unary calls fail with UNAVAILABLE.
func (b *Backend) FailNext(n int) { b.failNext.Store(int64(n)) }

// SetFailing makes every unary call fail with UNAVAILABLE, or none.
func (b *Backend) SetFailing(fail bool) { b.failAll.Store(fail) }

// SetHung makes unary calls hang, or stop hanging: a hung backend accepts
// each unary call and then holds it until the caller's context ends (its
// deadline, or a cancel), like a server stuck on a lock. Calls that are
// hanging when SetHung(false) is called go on as usual. Streams are not
// affected.
func (b *Backend) SetHung(hung bool) {
	b.hungMu.Lock()
	defer b.hungMu.Unlock()
	switch {
	case hung && b.hung == nil:
		b.hung = make(chan struct{})
	case !hung && b.hung != nil:
		close(b.hung)
		b.hung = nil
	}
}

// hangs returns the channel that a unary call waits on while the backend
// is hung, or nil.
func (b *Backend) hangs() chan struct{} {
	b.hungMu.Lock()
	defer b.hungMu.Unlock()
	return b.hung
}

// SetColdCalls makes the next n unary calls take d each instead of the
// delay of SetDelay, as a backend that has just started does while its
// caches, pools and JIT warm up; the calls after them take the usual delay.
// It replaces any cold calls still left.
func (b *Backend) SetColdCalls(n int, d time.Duration) {
	b.coldDelay.Store(int64(d))
	b.coldLeft.Store(int64(n))
}

// SetStreamInterval makes Watch wait d before sending each of its
// messages, so that a Watch of Count n lasts about n × d: a long-lived
// stream. The wait ends early, with the stream, when the caller goes away.
func (b *Backend) SetStreamInterval(d time.Duration) { b.streamInterval.Store(int64(d)) }

// SetServing sets what the health service reports for the Greeter.
func (b *Backend) SetServing(serving bool) {
	s := healthpb.HealthCheckResponse_NOT_SERVING
	if serving {
		s = healthpb.HealthCheckResponse_SERVING
	}
	b.health.SetServingStatus(greeterv1.Greeter_ServiceDesc.ServiceName, s)
}

// Calls returns the number of calls the backend has received.
func (b *Backend) Calls() int64 { return b.calls.Load() }

// Cancelled returns the number of unary calls whose caller gave up while
// the backend was still working on them.
func (b *Backend) Cancelled() int64 { return b.cancelled.Load() }

// Stop stops the backend at once: open connections are closed and calls
// under way fail.
func (b *Backend) Stop() {
	b.stopOnce.Do(func() {
		b.health.Shutdown()
		b.server.Stop()
		<-b.serveDone
	})
}

// unary does what every unary call does: count, fail when told to, hang
// when hung, wait the delay (or the cold delay).
func (b *Backend) unary(ctx context.Context) error {
	b.calls.Add(1)
	if b.failAll.Load() {
		return status.Errorf(codes.Unavailable, "backend %s is failing", b.name)
	}
	if b.failNext.Add(-1) >= 0 {
		return status.Errorf(codes.Unavailable, "backend %s failed this call", b.name)
	}
	if hung := b.hangs(); hung != nil {
		select {
		case <-hung:
		case <-ctx.Done():
			b.cancelled.Add(1)
			return status.FromContextError(ctx.Err()).Err()
		}
	}
	d := time.Duration(b.delay.Load())
	if b.coldLeft.Load() > 0 && b.coldLeft.Add(-1) >= 0 {
		d = time.Duration(b.coldDelay.Load())
	}
	if err := b.wait(ctx, d); err != nil {
		b.cancelled.Add(1)
		return status.FromContextError(err).Err()
	}
	return nil
}

// wait waits d, or until ctx ends, and returns ctx's error in that case.
func (b *Backend) wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// SayHello greets in.Name.
func (b *Backend) SayHello(ctx context.Context, in *greeterv1.HelloRequest) (*greeterv1.HelloReply, error) {
	if err := b.unary(ctx); err != nil {
		return nil, err
	}
	return &greeterv1.HelloReply{Message: "Hello, " + in.GetName(), Backend: b.name}, nil
}

// GreetAccount greets the holder of in.Account.
func (b *Backend) GreetAccount(ctx context.Context, in *greeterv1.GreetAccountRequest) (*greeterv1.HelloReply, error) {
	if err := b.unary(ctx); err != nil {
		return nil, err
	}
	return &greeterv1.HelloReply{Message: "Hello, account " + in.GetAccount().GetId(), Backend: b.name}, nil
}

// Watch sends in.Count greetings, each after the stream interval (see
// SetStreamInterval).
func (b *Backend) Watch(in *greeterv1.WatchRequest, stream grpc.ServerStreamingServer[greeterv1.HelloReply]) error {
	b.calls.Add(1)
	for i := range in.GetCount() {
		if err := b.wait(stream.Context(), time.Duration(b.streamInterval.Load())); err != nil {
			return status.FromContextError(err).Err()
		}
		msg := fmt.Sprintf("Hello #%d, %s", i+1, in.GetName())
		if err := stream.Send(&greeterv1.HelloReply{Message: msg, Backend: b.name}); err != nil {
			return err
		}
	}
	return nil
}

// Upload counts the names sent.
func (b *Backend) Upload(stream grpc.ClientStreamingServer[greeterv1.HelloRequest, greeterv1.UploadSummary]) error {
	b.calls.Add(1)
	var n uint32
	for {
		_, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(&greeterv1.UploadSummary{Count: n})
		}
		if err != nil {
			return err
		}
		n++
	}
}

// Chat greets each name as it arrives.
func (b *Backend) Chat(stream grpc.BidiStreamingServer[greeterv1.HelloRequest, greeterv1.HelloReply]) error {
	b.calls.Add(1)
	for {
		in, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := stream.Send(&greeterv1.HelloReply{Message: "Hello, " + in.GetName(), Backend: b.name}); err != nil {
			return err
		}
	}
}

// Fleet is a set of backends.
type Fleet []*Backend

// StartFleet serves n backends on loopback ports, named backend-1 to
// backend-n.
func StartFleet(n int) (Fleet, error) {
	f := make(Fleet, 0, n)
	for i := range n {
		b, err := Start(fmt.Sprintf("backend-%d", i+1), "127.0.0.1:0")
		if err != nil {
			f.Stop()
			return nil, err
		}
		f = append(f, b)
	}
	return f, nil
}

// Stop stops every backend.
func (f Fleet) Stop() {
	for _, b := range f {
		b.Stop()
	}
}

// Target returns the static:/// target that lists every backend.
func (f Fleet) Target() string {
	addrs := make([]string, len(f))
	for i, b := range f {
		addrs[i] = b.Addr()
	}
	return "static:///" + strings.Join(addrs, ",")
}

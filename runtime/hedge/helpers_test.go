package hedge

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/base"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/lbclient/lbclient/runtime/internal/callinfo"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitLimit bounds every wait of the tests; it is never asserted on.
const waitLimit = 10 * time.Second

// echoMethod is the one method of the tests' service, registered by hand.
const echoMethod = "/hedgetest.Echo/Echo"

var echoDesc = grpc.ServiceDesc{
	ServiceName: "hedgetest.Echo",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Echo",
		Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			in := new(wrapperspb.StringValue)
			if err := dec(in); err != nil {
				return nil, err
			}
			return srv.(*backend).serve(ctx, in)
		},
	}},
}

// arrival is one request as a backend saw it.
type arrival struct {
	n           int // 1-based, counted across the fleet
	backend     int
	md          metadata.MD
	hasDeadline bool
}

// fleet is a set of backends on loopback that share one handler and count
// arrivals together, so that tests can tell the attempts apart.
type fleet struct {
	backends []*backend
	handle   func(ctx context.Context, a arrival, in *wrapperspb.StringValue) (*wrapperspb.StringValue, error)

	quiet    atomic.Bool // do not record arrivals (benchmarks)
	count    atomic.Int64
	mu       sync.Mutex
	arrivals []arrival
	arrived  chan arrival // every arrival, as it comes
	canceled chan int     // the arrival number of handlers that saw cancellation
}

type backend struct {
	f    *fleet
	idx  int
	addr string
}

func (b *backend) serve(ctx context.Context, in *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
	f := b.f
	md, _ := metadata.FromIncomingContext(ctx)
	_, hasDeadline := ctx.Deadline()
	a := arrival{n: int(f.count.Add(1)), backend: b.idx, md: md, hasDeadline: hasDeadline}
	if f.quiet.Load() {
		return f.handle(ctx, a, in)
	}
	f.mu.Lock()
	f.arrivals = append(f.arrivals, a)
	f.mu.Unlock()
	f.arrived <- a
	return f.handle(ctx, a, in)
}

// startFleet starts n backends that run handle.
func startFleet(t testing.TB, n int, handle func(ctx context.Context, a arrival, in *wrapperspb.StringValue) (*wrapperspb.StringValue, error)) *fleet {
	t.Helper()
	f := &fleet{handle: handle, arrived: make(chan arrival, 1024), canceled: make(chan int, 1024)}
	for i := range n {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		b := &backend{f: f, idx: i, addr: lis.Addr().String()}
		srv := grpc.NewServer()
		srv.RegisterService(&echoDesc, b)
		go srv.Serve(lis)
		t.Cleanup(srv.Stop)
		f.backends = append(f.backends, b)
	}
	return f
}

func (f *fleet) seen() []arrival {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.arrivals)
}

// waitArrival returns the next arrival.
func (f *fleet) waitArrival(t *testing.T) arrival {
	t.Helper()
	return recv(t, f.arrived, "an arrival at the backends")
}

// waitCanceled returns the arrival number of the next handler that saw its
// call cancelled.
func (f *fleet) waitCanceled(t *testing.T) int {
	t.Helper()
	return recv(t, f.canceled, "a cancellation at the backends")
}

// blockUntilCanceled is a handler's answer that waits for the client to
// cancel, and records that it did.
func (f *fleet) blockUntilCanceled(ctx context.Context, a arrival) (*wrapperspb.StringValue, error) {
	<-ctx.Done()
	f.canceled <- a.n
	return nil, status.FromContextError(ctx.Err()).Err()
}

func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitLimit):
		t.Fatalf("no %s within %v", what, waitLimit)
		panic("unreachable")
	}
}

// dial connects to the fleet through hi, then through extra interceptors
// that see each attempt. With one backend it dials it directly; with more,
// through a manual resolver and the avoid-tried test balancer.
func dial(t *testing.T, f *fleet, hi *Interceptor, after ...grpc.UnaryClientInterceptor) *grpc.ClientConn {
	t.Helper()
	ints := append([]grpc.UnaryClientInterceptor{hi.UnaryClientInterceptor()}, after...)
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithChainUnaryInterceptor(ints...),
	}
	target := "passthrough:///" + f.backends[0].addr
	if len(f.backends) > 1 {
		r := manual.NewBuilderWithScheme("hedgetest")
		var addrs []resolver.Address
		for _, b := range f.backends {
			addrs = append(addrs, resolver.Address{Addr: b.addr})
		}
		r.InitialState(resolver.State{Addresses: addrs})
		opts = append(opts, grpc.WithResolvers(r),
			grpc.WithDefaultServiceConfig(fmt.Sprintf(`{"loadBalancingConfig":[{%q:{}}]}`, avoidBalancerName)))
		target = "hedgetest:///fleet"
	}
	cc, err := grpc.NewClient(target, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// result is the outcome of one call.
type result struct {
	reply string
	err   error
}

// echo makes one call of echoMethod.
func echo(ctx context.Context, cc *grpc.ClientConn, in string, opts ...grpc.CallOption) result {
	out := new(wrapperspb.StringValue)
	err := cc.Invoke(ctx, echoMethod, wrapperspb.String(in), out, opts...)
	return result{out.GetValue(), err}
}

// goEcho makes one call on its own goroutine.
func goEcho(ctx context.Context, cc *grpc.ClientConn, in string, opts ...grpc.CallOption) <-chan result {
	ch := make(chan result, 1)
	go func() { ch <- echo(ctx, cc, in, opts...) }()
	return ch
}

// fakeTimers replaces the hedging delay's timers with ones the test fires.
type fakeTimers struct {
	timers chan *fakeTimer
}

type fakeTimer struct {
	d       time.Duration
	f       func()
	stopped atomic.Bool
}

func (t *fakeTimer) Stop() bool { return !t.stopped.Swap(true) }

// fire runs the timer's function as a real timer would, stopped or not: a
// real timer may fire while it is being stopped.
func (t *fakeTimer) fire() { t.f() }

func useFakeTimers(t *testing.T) *fakeTimers {
	ft := &fakeTimers{timers: make(chan *fakeTimer, 1024)}
	old := afterFunc
	afterFunc = func(d time.Duration, f func()) stopper {
		tm := &fakeTimer{d: d, f: f}
		ft.timers <- tm
		return tm
	}
	t.Cleanup(func() { afterFunc = old })
	return ft
}

// next returns the next timer armed.
func (ft *fakeTimers) next(t *testing.T) *fakeTimer {
	t.Helper()
	return recv(t, ft.timers, "timer armed")
}

// avoidBalancerName is a test balancer whose picker honours
// callinfo.Attempts as lbclient's pickers do: it picks the first ready
// endpoint, in address order, that the call has not tried. It waits for
// every endpoint to be ready, so that tests do not depend on connection
// timing.
const avoidBalancerName = "hedgetest_avoid_tried"

func init() {
	balancer.Register(base.NewBalancerBuilder(avoidBalancerName, avoidPickerBuilder{}, base.Config{}))
}

type avoidPickerBuilder struct{}

// fleetSize is how many ready endpoints the test picker waits for.
var fleetSize atomic.Int64

func (avoidPickerBuilder) Build(info base.PickerBuildInfo) balancer.Picker {
	if int64(len(info.ReadySCs)) < fleetSize.Load() {
		return base.NewErrPicker(balancer.ErrNoSubConnAvailable)
	}
	p := &avoidPicker{}
	for sc, sci := range info.ReadySCs {
		p.ends = append(p.ends, endpoint{sci.Address.Addr, sc})
	}
	slices.SortFunc(p.ends, func(a, b endpoint) int {
		if a.addr < b.addr {
			return -1
		}
		return 1
	})
	return p
}

type endpoint struct {
	addr string
	sc   balancer.SubConn
}

type avoidPicker struct{ ends []endpoint }

func (p *avoidPicker) Pick(info balancer.PickInfo) (balancer.PickResult, error) {
	a := callinfo.AttemptsFrom(info.Ctx)
	for _, e := range p.ends {
		if a == nil || !a.Tried(e.addr) {
			if a != nil {
				a.Add(e.addr)
			}
			return balancer.PickResult{SubConn: e.sc}, nil
		}
	}
	return balancer.PickResult{SubConn: p.ends[0].sc}, nil
}

// newInterceptor returns an Interceptor hedging echoMethod by p.
func newInterceptor(t *testing.T, p Policy, opts ...Option) *Interceptor {
	t.Helper()
	hi, err := New(map[string]Policy{echoMethod: p}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return hi
}

// counters returns echoMethod's counters.
func counters(hi *Interceptor) Counters {
	return hi.Stats().Methods[echoMethod].Counters
}

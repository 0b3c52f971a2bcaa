package observe_test

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	_ "google.golang.org/grpc/balancer/leastrequest"       // least_request_experimental
	_ "google.golang.org/grpc/balancer/weightedroundrobin" // weighted_round_robin
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/lbclient/lbclient/runtime/balancer/observe"
	"github.com/lbclient/lbclient/runtime/internal/callinfo"
	"github.com/lbclient/lbclient/runtime/internal/lbstats"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	serviceName = "lbclient.observe.test.Echo"
	callMethod  = "/" + serviceName + "/Call"
)

// backend is one test server. Its handler answers with code (OK by
// default) and, when hold is set, waits for it to close first.
type backend struct {
	addr   string
	srv    *grpc.Server
	health *health.Server

	mu      sync.Mutex
	code    codes.Code
	hold    chan struct{}
	entered chan string // receives addr when a held call arrives
}

type echoServer interface{}

func (b *backend) call(ctx context.Context, _ *emptypb.Empty) (*emptypb.Empty, error) {
	b.mu.Lock()
	code, hold, entered := b.code, b.hold, b.entered
	b.mu.Unlock()
	if hold != nil {
		entered <- b.addr
		select {
		case <-hold:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if code != codes.OK {
		return nil, status.Error(code, "test backend answers "+code.String())
	}
	return &emptypb.Empty{}, nil
}

func (b *backend) setCode(c codes.Code) {
	b.mu.Lock()
	b.code = c
	b.mu.Unlock()
}

func (b *backend) setHold(hold chan struct{}, entered chan string) {
	b.mu.Lock()
	b.hold, b.entered = hold, entered
	b.mu.Unlock()
}

var echoDesc = grpc.ServiceDesc{
	ServiceName: serviceName,
	HandlerType: (*echoServer)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Call",
		Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			in := new(emptypb.Empty)
			if err := dec(in); err != nil {
				return nil, err
			}
			return srv.(*backend).call(ctx, in)
		},
	}},
}

func startBackends(t *testing.T, n int) []*backend {
	t.Helper()
	bs := make([]*backend, n)
	for i := range bs {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
		b := &backend{addr: lis.Addr().String(), srv: grpc.NewServer(), health: health.NewServer()}
		b.srv.RegisterService(&echoDesc, b)
		healthpb.RegisterHealthServer(b.srv, b.health)
		b.health.SetServingStatus(serviceName, healthpb.HealthCheckResponse_SERVING)
		go b.srv.Serve(lis)
		t.Cleanup(b.srv.Stop)
		bs[i] = b
	}
	return bs
}

// client dials the backends through observe over child (a
// loadBalancingConfig entry such as {"round_robin":{}}), with health
// checking of serviceName when healthCheck is set.
func client(t *testing.T, bs []*backend, child string, healthCheck bool) (*grpc.ClientConn, *lbstats.Sink) {
	t.Helper()
	cc, sink, _ := clientWithResolver(t, bs, child, healthCheck)
	return cc, sink
}

func clientWithResolver(t *testing.T, bs []*backend, child string, healthCheck bool) (*grpc.ClientConn, *lbstats.Sink, *manual.Resolver) {
	t.Helper()
	id, sink, unregister := lbstats.Register()
	t.Cleanup(unregister)
	r := manual.NewBuilderWithScheme("observe-test")
	eps := make([]resolver.Endpoint, len(bs))
	for i, b := range bs {
		eps[i] = resolver.Endpoint{Addresses: []resolver.Address{{Addr: b.addr}}}
	}
	r.InitialState(resolver.State{Endpoints: eps})
	sc := fmt.Sprintf(`{"loadBalancingConfig":[{%q:{"statsId":%q,"childPolicy":[%s]}}]`, observe.Name, id, child)
	if healthCheck {
		sc += fmt.Sprintf(`,"healthCheckConfig":{"serviceName":%q}`, serviceName)
	}
	sc += "}"
	cc, err := grpc.NewClient("observe-test:///backends",
		grpc.WithResolvers(r),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(sc),
	)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() { cc.Close() })
	cc.Connect()
	return cc, sink, r
}

// call makes one call and returns the address it went to ("" when grpc
// did not report a peer) and its error.
func call(ctx context.Context, cc *grpc.ClientConn) (string, error) {
	var p peer.Peer
	err := cc.Invoke(ctx, callMethod, &emptypb.Empty{}, new(emptypb.Empty), grpc.Peer(&p), grpc.WaitForReady(true))
	if p.Addr == nil {
		return "", err
	}
	return p.Addr.String(), err
}

// waitFor polls cond, boundedly, failing the test if it never holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 2000 {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("gave up waiting for %s", what)
}

func byAddr(eps []lbstats.Endpoint) map[string]lbstats.Endpoint {
	m := make(map[string]lbstats.Endpoint, len(eps))
	for _, e := range eps {
		m[e.Addr] = e
	}
	return m
}

func waitReady(t *testing.T, sink *lbstats.Sink, addrs ...string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%v READY", addrs), func() bool {
		m := byAddr(sink.Endpoints())
		for _, a := range addrs {
			if m[a].State != connectivity.Ready {
				return false
			}
		}
		return true
	})
}

func addrsOf(bs []*backend) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = b.addr
	}
	return out
}

// run makes n calls and returns how many went to each address.
func run(t *testing.T, cc *grpc.ClientConn, n int, wantErr codes.Code) map[string]uint64 {
	t.Helper()
	got := map[string]uint64{}
	for range n {
		addr, err := call(t.Context(), cc)
		if c := status.Code(err); c != wantErr && !(wantErr == codes.OK && err == nil) {
			t.Fatalf("call: got %v, want code %v", err, wantErr)
		}
		got[addr]++
	}
	return got
}

// aboutEven reports whether round_robin's count n is want, give or take
// one: grpc-go starts every new picker at a random place in the rotation,
// and a late ExitIdle (from ClientConn.Connect) or a health update may
// build one in the middle of a run.
func aboutEven(n, want uint64) bool { return n+1 >= want && n <= want+1 }

// checkDelta asserts that between before and after each endpoint's picks
// grew by the calls the peers report, and that nothing is in flight.
func checkDelta(t *testing.T, before, after []lbstats.Endpoint, peers map[string]uint64) {
	t.Helper()
	b, a := byAddr(before), byAddr(after)
	for addr, e := range a {
		if got, want := e.Picks-b[addr].Picks, peers[addr]; got != want {
			t.Errorf("%s: picks grew by %d, grpc.Peer counted %d calls", addr, got, want)
		}
		if e.InFlight != 0 {
			t.Errorf("%s: %d calls in flight after all calls returned", addr, e.InFlight)
		}
	}
	for addr := range peers {
		if _, ok := a[addr]; !ok {
			t.Errorf("calls went to %s, which is not published (published: %+v)", addr, after)
		}
	}
}

func TestRoundRobinCountsMatchPeers(t *testing.T) {
	bs := startBackends(t, 3)
	cc, sink := client(t, bs, `{"round_robin":{}}`, false)
	waitReady(t, sink, addrsOf(bs)...)

	before := sink.Endpoints()
	peers := run(t, cc, 30, codes.OK)
	after := sink.Endpoints()
	checkDelta(t, before, after, peers)

	if len(after) != 3 {
		t.Fatalf("published %d endpoints, want 3: %+v", len(after), after)
	}
	for i, e := range after {
		if e.Addr != bs[i].addr {
			t.Errorf("endpoint %d is %s, want %s (resolver order)", i, e.Addr, bs[i].addr)
		}
		if e.State != connectivity.Ready {
			t.Errorf("%s: state %v, want READY", e.Addr, e.State)
		}
		if !aboutEven(peers[e.Addr], 10) {
			t.Errorf("%s: got %d of 30 calls, want 10±1 under round_robin", e.Addr, peers[e.Addr])
		}
		if e.Failures != 0 {
			t.Errorf("%s: %d failures, want 0", e.Addr, e.Failures)
		}
		if e.Latency <= 0 {
			t.Errorf("%s: latency estimate %v, want > 0", e.Addr, e.Latency)
		}
	}
}

func TestFailuresCounted(t *testing.T) {
	bs := startBackends(t, 3)
	cc, sink := client(t, bs, `{"round_robin":{}}`, false)
	waitReady(t, sink, addrsOf(bs)...)

	bs[1].setCode(codes.Unavailable)
	bs[2].setCode(codes.NotFound) // the server's answer, not a failure
	before := sink.Endpoints()
	peers := map[string]uint64{}
	for range 30 {
		addr, err := call(t.Context(), cc)
		peers[addr]++
		want := map[string]codes.Code{bs[0].addr: codes.OK, bs[1].addr: codes.Unavailable, bs[2].addr: codes.NotFound}[addr]
		if status.Code(err) != want {
			t.Fatalf("call to %s: got %v, want %v", addr, err, want)
		}
	}
	after := sink.Endpoints()
	checkDelta(t, before, after, peers)

	b, a := byAddr(before), byAddr(after)
	for _, be := range bs {
		got := a[be.addr].Failures - b[be.addr].Failures
		want := uint64(0)
		if be == bs[1] {
			want = peers[be.addr]
		}
		if got != want || (be == bs[1] && want == 0) {
			t.Errorf("%s: failures grew by %d, want %d", be.addr, got, want)
		}
	}
}

func TestInFlight(t *testing.T) {
	bs := startBackends(t, 3)
	cc, sink := client(t, bs, `{"round_robin":{}}`, false)
	waitReady(t, sink, addrsOf(bs)...)

	hold, entered := make(chan struct{}), make(chan string, 3)
	for _, b := range bs {
		b.setHold(hold, entered)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := call(t.Context(), cc)
		errc <- err
	}()
	addr := <-entered
	for _, e := range sink.Endpoints() {
		want := int64(0)
		if e.Addr == addr {
			want = 1
		}
		if e.InFlight != want {
			t.Errorf("%s: %d in flight while one call is held at %s, want %d", e.Addr, e.InFlight, addr, want)
		}
	}
	close(hold)
	if err := <-errc; err != nil {
		t.Fatalf("held call: %v", err)
	}
	for _, e := range sink.Endpoints() {
		if e.InFlight != 0 {
			t.Errorf("%s: %d in flight after the call returned", e.Addr, e.InFlight)
		}
	}
}

func TestAvoidSet(t *testing.T) {
	bs := startBackends(t, 3)
	cc, sink := client(t, bs, `{"round_robin":{}}`, false)
	waitReady(t, sink, addrsOf(bs)...)

	// With two of three endpoints tried, round_robin offers a tried one
	// first for two calls in three, so observe must ask again. The test
	// does not rely on where round_robin's rotation stands: grpc-go starts
	// each new picker at a random place, and a late ExitIdle builds one.
	for i := range 12 {
		untried := bs[i%3].addr
		a := new(callinfo.Attempts)
		var tried []string
		for _, b := range bs {
			if b.addr != untried {
				a.Add(b.addr)
				tried = append(tried, b.addr)
			}
		}
		got, err := call(callinfo.WithAttempts(t.Context(), a), cc)
		if err != nil {
			t.Fatal(err)
		}
		if got != untried {
			t.Errorf("call %d went to %s; its attempts had tried %v", i, got, tried)
		}
		if want := append(tried, untried); fmt.Sprint(a.Addrs()) != fmt.Sprint(want) {
			t.Errorf("call %d: Attempts.Addrs() = %v, want %v", i, a.Addrs(), want)
		}
	}

	// All tried: the pick stands and is recorded.
	a := new(callinfo.Attempts)
	for _, b := range bs {
		a.Add(b.addr)
	}
	got, err := call(callinfo.WithAttempts(t.Context(), a), cc)
	if err != nil {
		t.Fatal(err)
	}
	if addrs := a.Addrs(); len(addrs) != 4 || addrs[3] != got {
		t.Errorf("Attempts.Addrs() = %v after a call to %s, want the three tried and then %s", addrs, got, got)
	}
}

func TestHealthCheckNotServingGetsNoCalls(t *testing.T) {
	bs := startBackends(t, 3)
	bs[1].health.SetServingStatus(serviceName, healthpb.HealthCheckResponse_NOT_SERVING)
	cc, sink := client(t, bs, `{"round_robin":{}}`, true)
	waitReady(t, sink, bs[0].addr, bs[2].addr)
	waitFor(t, bs[1].addr+" TRANSIENT_FAILURE", func() bool {
		return byAddr(sink.Endpoints())[bs[1].addr].State == connectivity.TransientFailure
	})

	before := sink.Endpoints()
	peers := run(t, cc, 30, codes.OK)
	checkDelta(t, before, sink.Endpoints(), peers)
	if n := peers[bs[1].addr]; n != 0 {
		t.Errorf("NOT_SERVING backend got %d calls", n)
	}
	if !aboutEven(peers[bs[0].addr], 15) || !aboutEven(peers[bs[2].addr], 15) {
		t.Errorf("calls: %v, want 15±1 each on the serving backends", peers)
	}

	// Serving again: it rejoins.
	bs[1].health.SetServingStatus(serviceName, healthpb.HealthCheckResponse_SERVING)
	waitReady(t, sink, bs[1].addr)
	peers = run(t, cc, 30, codes.OK)
	if n := peers[bs[1].addr]; !aboutEven(n, 10) {
		t.Errorf("backend serving again got %d of 30 calls, want 10±1", n)
	}
}

func TestPickFirst(t *testing.T) {
	bs := startBackends(t, 3)
	cc, sink := client(t, bs, `{"pick_first":{}}`, false)
	waitReady(t, sink, bs[0].addr)

	before := sink.Endpoints()
	peers := run(t, cc, 20, codes.OK)
	checkDelta(t, before, sink.Endpoints(), peers)
	if peers[bs[0].addr] != 20 {
		t.Errorf("pick_first sent calls to %v, want all 20 to %s", peers, bs[0].addr)
	}
}

func TestLeastRequest(t *testing.T) {
	bs := startBackends(t, 3)
	cc, sink := client(t, bs, `{"least_request_experimental":{"choiceCount":2}}`, false)
	waitReady(t, sink, addrsOf(bs)...)

	before := sink.Endpoints()
	peers := run(t, cc, 60, codes.OK)
	checkDelta(t, before, sink.Endpoints(), peers)
	var total uint64
	for _, n := range peers {
		total += n
	}
	if total != 60 {
		t.Errorf("peers counted %d calls, want 60", total)
	}
}

func TestFirstRegisteredChildWins(t *testing.T) {
	bs := startBackends(t, 2)
	cc, sink := client(t, bs, `{"no_such_policy":{}},{"round_robin":{}},{"pick_first":{}}`, false)
	waitReady(t, sink, addrsOf(bs)...)
	peers := run(t, cc, 10, codes.OK)
	if peers[bs[0].addr] != 5 || peers[bs[1].addr] != 5 {
		t.Errorf("calls %v, want round_robin's 5 and 5", peers)
	}
}

func TestEndpointsClearedOnClose(t *testing.T) {
	bs := startBackends(t, 2)
	cc, sink := client(t, bs, `{"round_robin":{}}`, false)
	waitReady(t, sink, addrsOf(bs)...)
	run(t, cc, 4, codes.OK)
	if err := cc.Close(); err != nil {
		t.Fatal(err)
	}
	if eps := sink.Endpoints(); eps != nil {
		t.Errorf("Endpoints() after Close = %+v, want nil", eps)
	}
}

// TestWeightedRoundRobin is a smoke test: without ORCA load reports the
// backends carry no weights and weighted_round_robin spreads calls evenly;
// it builds under observe, routes, and the counts agree.
func TestWeightedRoundRobin(t *testing.T) {
	bs := startBackends(t, 3)
	cc, sink := client(t, bs, `{"weighted_round_robin":{}}`, false)
	waitReady(t, sink, addrsOf(bs)...)

	before := sink.Endpoints()
	peers := run(t, cc, 30, codes.OK)
	checkDelta(t, before, sink.Endpoints(), peers)
	for _, b := range bs {
		if peers[b.addr] == 0 {
			t.Errorf("%s got no calls of 30: %v", b.addr, peers)
		}
	}
}

func TestResolverUpdateDropsEndpoint(t *testing.T) {
	bs := startBackends(t, 3)
	cc, sink, r := clientWithResolver(t, bs, `{"round_robin":{}}`, false)
	waitReady(t, sink, addrsOf(bs)...)

	r.UpdateState(resolver.State{Endpoints: []resolver.Endpoint{
		{Addresses: []resolver.Address{{Addr: bs[2].addr}}},
		{Addresses: []resolver.Address{{Addr: bs[0].addr}}},
	}})
	waitFor(t, bs[1].addr+" to leave", func() bool { return len(sink.Endpoints()) == 2 })
	eps := sink.Endpoints()
	if eps[0].Addr != bs[2].addr || eps[1].Addr != bs[0].addr {
		t.Errorf("endpoints %+v, want %s then %s (the resolver's new order)", eps, bs[2].addr, bs[0].addr)
	}
	before := sink.Endpoints()
	peers := run(t, cc, 20, codes.OK)
	checkDelta(t, before, sink.Endpoints(), peers)
	if peers[bs[1].addr] != 0 {
		t.Errorf("dropped backend got %d calls", peers[bs[1].addr])
	}
}

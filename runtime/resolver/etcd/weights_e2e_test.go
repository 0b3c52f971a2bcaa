package etcdresolver_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.etcd.io/etcd/client/v3/naming/endpoints"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/roundrobin"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/experimental/balancer/weight"

	greeterv1 "github.com/lbclient/lbclient/gen/greeter/v1"
	"github.com/lbclient/lbclient/runtime"
	etcdresolver "github.com/lbclient/lbclient/runtime/resolver/etcd"
)

// recorderName is a policy that records the endpoints and weights the
// resolver hands the channel, and balances with round_robin.
const recorderName = "etcdresolver_test_recorder"

func init() { balancer.Register(recorderBuilder{}) }

type recorderBuilder struct{}

func (recorderBuilder) Name() string { return recorderName }

func (recorderBuilder) Build(cc balancer.ClientConn, opts balancer.BuildOptions) balancer.Balancer {
	return &recorder{Balancer: balancer.Get(roundrobin.Name).Build(cc, opts)}
}

// recorded is what the recorder last saw: weight by address (0: none),
// and how many states it was given.
var recorded struct {
	sync.Mutex
	weights map[string]uint32
	updates int
}

type recorder struct{ balancer.Balancer }

func (r *recorder) UpdateClientConnState(s balancer.ClientConnState) error {
	w := map[string]uint32{}
	for _, ep := range s.ResolverState.Endpoints {
		for _, a := range ep.Addresses {
			w[a.Addr] = weight.FromEndpoint(ep).Weight
		}
	}
	recorded.Lock()
	recorded.weights = w
	recorded.updates++
	recorded.Unlock()
	return r.Balancer.UpdateClientConnState(s)
}

func recordedState() (map[string]uint32, int) {
	recorded.Lock()
	defer recorded.Unlock()
	return recorded.weights, recorded.updates
}

// waitRecorded waits, bounded, until the recorder saw want.
func waitRecorded(t *testing.T, want map[string]uint32) {
	t.Helper()
	if _, ok := waitFor(10*time.Second, func() bool {
		got, _ := recordedState()
		return cmp.Equal(got, want)
	}); !ok {
		got, _ := recordedState()
		t.Fatalf("balancer's endpoints and weights (-want +got):\n%s", cmp.Diff(want, got))
	}
}

// TestWeightsReachTheBalancer registers endpoints with and without a
// weight in their metadata, two keys for one address, and then bad
// weights, and checks what a real channel's balancer is given.
func TestWeightsReachTheBalancer(t *testing.T) {
	srv := startEtcd(t)
	reg := newRegistry(t, newClient(t, srv.clientAddr))
	bs := startBackends(t, 5)
	a, b, c, d, e := bs[0].Addr(), bs[1].Addr(), bs[2].Addr(), bs[3].Addr(), bs[4].Addr()
	reg.add(a, map[string]any{"weight": 3}, 0)
	reg.add(b, nil, 0)
	reg.add(c, map[string]any{"zone": "us-east1-b"}, 0)
	reg.add(d, "v1.2", 0) // metadata of the server's own, with no weight
	if err := reg.em.AddEndpoint(ctxT(t), prefix+"/e-old", endpointOf(e, 2)); err != nil {
		t.Fatal(err)
	}
	if err := reg.em.AddEndpoint(ctxT(t), prefix+"/e-new", endpointOf(e, 4)); err != nil {
		t.Fatal(err)
	}

	cc, err := grpc.NewClient("etcd:///"+prefix,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithResolvers(etcdresolver.NewBuilder(newClient(t, srv.clientAddr))),
		grpc.WithDefaultServiceConfig(fmt.Sprintf(`{"loadBalancingConfig":[{%q:{}}]}`, recorderName)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	cc.Connect()
	want := map[string]uint32{a: 3, b: 0, c: 0, d: 0, e: 4}
	waitRecorded(t, want)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := greeterv1.NewGreeterClient(cc).SayHello(ctx, &greeterv1.HelloRequest{Name: "w"}, grpc.WaitForReady(true)); err != nil {
		t.Fatalf("call through the recording policy: %v", err)
	}
	if n := grpcLog.count(`"`+prefix+`/e-new"`, `"`+prefix+`/e-old"`, "register "+e+" with different weights"); n != 1 {
		t.Errorf("two keys of %s with different weights logged %d times, want once", e, n)
	}

	// A new weight replaces the old; the largest is taken as it is.
	reg.add(a, map[string]any{"weight": 5}, 0)
	reg.add(c, map[string]any{"weight": uint32(1<<32 - 1)}, 0)
	want[a], want[c] = 5, 1<<32-1
	waitRecorded(t, want)

	// Bad weights leave a at 5 and hand the channel nothing new; a bad
	// weight on a new key adds no endpoint. Each is logged once.
	_, before := recordedState()
	bad := []any{0, -1, "3", 1.5, uint64(1 << 32), nil}
	for _, w := range bad {
		reg.add(a, map[string]any{"weight": w}, 0)
	}
	reg.add("127.0.0.1:1", map[string]any{"weight": 0}, 0)
	reg.add(b, map[string]any{"weight": 2}, 0) // a change after them all
	want[b] = 2
	waitRecorded(t, want)
	if _, after := recordedState(); after != before+1 {
		t.Errorf("the channel was given %d states for one good change among bad ones, want 1", after-before)
	}
	if n := grpcLog.count(`"`+key(a)+`"`, "Metadata weight", "want a whole number from 1 to 4294967295", "last good value ("+a+", weight 5) stays in use"); n != len(bad) {
		t.Errorf("%d bad weights of %s logged %d times, want once each", len(bad), key(a), n)
	}
	if n := grpcLog.count(`"`+key("127.0.0.1:1")+`"`, "Metadata weight 0", "adds no endpoint"); n != 1 {
		t.Errorf("bad weight of a new key logged %d times, want once", n)
	}

	// Deleting the newer key of e leaves the older one's weight.
	if err := reg.em.DeleteEndpoint(ctxT(t), prefix+"/e-new"); err != nil {
		t.Fatal(err)
	}
	want[e] = 2
	waitRecorded(t, want)
}

func endpointOf(addr string, w int) endpoints.Endpoint {
	return endpoints.Endpoint{Addr: addr, Metadata: map[string]any{"weight": w}}
}

// TestCloseStopsEverything dials and closes connections over one etcd
// client and checks that nothing of theirs is left running: not the
// resolver's goroutine nor its watch.
func TestCloseStopsEverything(t *testing.T) {
	srv := startEtcd(t)
	reg := newRegistry(t, newClient(t, srv.clientAddr))
	bs := startBackends(t, 2)
	b := bs[0]
	reg.add(b.Addr(), nil, 0)
	cli := newClient(t, srv.clientAddr)
	if _, err := cli.Get(ctxT(t), prefix); err != nil { // the client connected
		t.Fatal(err)
	}
	ignore := goleak.IgnoreCurrent()
	for range 3 {
		conn, err := runtime.Dial("etcd:///"+prefix, nil, runtime.WithInsecure(),
			runtime.WithResolver(etcdresolver.NewBuilder(cli)))
		if err != nil {
			t.Fatal(err)
		}
		waitEndpoints(t, conn, b.Addr())
		// A change delivered: the watch is established. (The etcd client
		// keeps a watch stream open, until it is closed or the stream is
		// used again, when a watch is cancelled before etcd confirmed it.)
		reg.add(bs[1].Addr(), nil, 0)
		waitEndpoints(t, conn, addrs(bs...)...)
		reg.del(bs[1].Addr())
		if err := conn.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// The watch's goroutines in the etcd client and server end shortly
	// after the resolver lets go of it: give them seconds.
	var err error
	for range 100 {
		if err = goleak.Find(ignore); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal(err)
}

package etcdresolver_test

import (
	"context"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/lbclient/lbclient/example/backend"
	greeterv1 "github.com/lbclient/lbclient/gen/greeter/v1"
	"github.com/lbclient/lbclient/runtime"
	etcdresolver "github.com/lbclient/lbclient/runtime/resolver/etcd"
)

// callDelay is each backend's latency: the closed loops then make a few
// hundred calls a second rather than spin the machine's cores.
const callDelay = 2 * time.Millisecond

func slowBackends(t *testing.T, n int) []*backend.Backend {
	bs := startBackends(t, n)
	for _, b := range bs {
		b.SetDelay(callDelay)
	}
	return bs
}

func addrs(bs ...*backend.Backend) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = b.Addr()
	}
	return out
}

// checkNoNewCalls waits until conn's balancer no longer lists b (the
// resolver has delivered b's removal), then checks that b, which still
// serves, gets no call while the load goes on. The short settling wait
// lets a call picked just before the change reach b.
//
// It returns when the removal was seen.
func checkNoNewCalls(t *testing.T, conn *runtime.Conn, b *backend.Backend, l load, within time.Duration) time.Time {
	t.Helper()
	took, ok := waitFor(within, func() bool { return !hasEndpoint(conn, b.Addr()) })
	if !ok {
		t.Fatalf("%s still among the endpoints %v after %v", b.Addr(), conn.Endpoints(), took)
	}
	seen := time.Now()
	time.Sleep(100 * time.Millisecond)
	before, loadBefore := b.Calls(), l.Calls()
	time.Sleep(time.Second)
	if got := b.Calls() - before; got != 0 {
		t.Errorf("%s got %d new calls after its removal was delivered", b.Addr(), got)
	}
	if l.Calls() == loadBefore {
		t.Errorf("no call was made in the second after %s's removal: the check saw no load", b.Addr())
	}
	return seen
}

// TestMembership registers three backends, dials them under a closed loop
// of calls with the example's rules, adds a fourth and removes one of the
// first three, under ROUND_ROBIN and PEAK_EWMA. The added backend must get
// its first call within 1 s of AddEndpoint and a share of at least 0.6/N
// within 5 s more; the removed one, which keeps serving, must get no call
// after the change is delivered; no call may fail.
func TestMembership(t *testing.T) {
	for _, p := range []runtime.Policy{runtime.RoundRobin, runtime.PeakEWMA} {
		t.Run(p.String(), func(t *testing.T) {
			srv := startEtcd(t)
			reg := newRegistry(t, newClient(t, srv.clientAddr))
			bs := slowBackends(t, 4)
			for _, b := range bs[:3] {
				reg.add(b.Addr(), nil, 0)
			}
			c := dial(t, newClient(t, srv.clientAddr), runtime.WithPolicy(p))
			waitEndpoints(t, c.Conn(), addrs(bs[:3]...)...)
			l := startLoad(t, c, 4)
			if _, ok := waitFor(10*time.Second, func() bool { return l.Calls() > 100 }); !ok {
				t.Fatalf("load made %d calls in 10s", l.Calls())
			}

			added := bs[3]
			start := time.Now()
			reg.add(added.Addr(), nil, 0)
			_, ok := waitFor(10*time.Second, func() bool { return added.Calls() > 0 })
			first := time.Since(start)
			if !ok || first > time.Second {
				t.Fatalf("added backend's first call came after %v, want within 1s", first)
			}
			// Its share, over windows of half a second, must reach 0.6/N.
			const n = 4
			var share float64
			reached := time.Duration(-1)
			sinceFirst := time.Now()
			for time.Since(sinceFirst) < 5*time.Second {
				b0, t0 := added.Calls(), sum(calls(bs))
				time.Sleep(500 * time.Millisecond)
				share = float64(added.Calls()-b0) / float64(sum(calls(bs))-t0)
				if share >= 0.6/n {
					reached = time.Since(sinceFirst)
					break
				}
			}
			t.Logf("added backend: first call %v after AddEndpoint; share %.3f (goal >= %.3f) reached within %v of it", first, share, 0.6/n, reached)
			if reached < 0 {
				t.Errorf("added backend's share was %.3f in the last window, 5s after its first call; want >= %.3f", share, 0.6/n)
			}

			removed := bs[0]
			start = time.Now()
			reg.del(removed.Addr())
			seen := checkNoNewCalls(t, c.Conn(), removed, l, 10*time.Second)
			t.Logf("removed backend: gone from the endpoints %v after DeleteEndpoint was sent; calls per backend %v", seen.Sub(start), calls(bs))
			l.checkNoFailures(t)
		})
	}
}

func sum(xs []int64) int64 {
	var s int64
	for _, x := range xs {
		s += x
	}
	return s
}

// TestLeaseEnds registers each of three backends on a lease of its own,
// kept alive by an etcd client of its own, as servers do. One revokes its
// lease (a graceful shutdown); one dies: its server and its client stop,
// and its lease expires. Both must leave the endpoints, the first with no
// call after its removal is delivered, and no call may fail.
func TestLeaseEnds(t *testing.T) {
	srv := startEtcd(t)
	bs := slowBackends(t, 3)
	type registration struct {
		cli   *clientv3.Client
		lease clientv3.LeaseID
		stop  context.CancelFunc
	}
	regs := make([]registration, len(bs))
	for i, b := range bs {
		cli := newClient(t, srv.clientAddr)
		g, err := cli.Grant(ctxT(t), 2)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		ka, err := cli.KeepAlive(ctx, g.ID)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for range ka { // closed when ctx ends or the client closes
			}
		}()
		newRegistry(t, cli).add(b.Addr(), nil, g.ID)
		regs[i] = registration{cli: cli, lease: g.ID, stop: cancel}
	}
	c := dial(t, newClient(t, srv.clientAddr))
	waitEndpoints(t, c.Conn(), addrs(bs...)...)
	l := startLoad(t, c, 4)

	start := time.Now()
	if _, err := regs[0].cli.Revoke(ctxT(t), regs[0].lease); err != nil {
		t.Fatal(err)
	}
	seen := checkNoNewCalls(t, c.Conn(), bs[0], l, 10*time.Second)
	t.Logf("revoked lease: endpoint gone %v after Revoke was sent", seen.Sub(start))

	dead := bs[1]
	dead.Stop()
	regs[1].stop()
	regs[1].cli.Close()
	start = time.Now()
	took, ok := waitFor(20*time.Second, func() bool { return !hasEndpoint(c.Conn(), dead.Addr()) })
	if !ok {
		t.Fatalf("dead backend %s still among the endpoints %v after %v (lease TTL 2s)", dead.Addr(), c.Conn().Endpoints(), took)
	}
	t.Logf("dead backend: endpoint gone %v after it stopped (lease TTL 2s)", took)
	waitEndpoints(t, c.Conn(), bs[2].Addr())
	l.checkNoFailures(t)
}

// TestEtcdRestart stops the etcd server under a connection and its load,
// and starts it again on the same data and ports. Meanwhile the endpoints
// stay in use; after it, a backend added is found and one deleted goes.
func TestEtcdRestart(t *testing.T) {
	srv := startEtcd(t)
	admin := newClient(t, srv.clientAddr)
	reg := newRegistry(t, admin)
	bs := slowBackends(t, 3)
	reg.add(bs[0].Addr(), nil, 0)
	reg.add(bs[1].Addr(), nil, 0)
	c := dial(t, newClient(t, srv.clientAddr))
	waitEndpoints(t, c.Conn(), addrs(bs[:2]...)...)
	l := startLoad(t, c, 4)

	srv.Stop()
	before := calls(bs)
	time.Sleep(time.Second)
	after := calls(bs)
	if after[0] == before[0] || after[1] == before[1] {
		t.Errorf("with etcd down, calls per backend went from %v to %v: want both still called", before, after)
	}
	waitEndpoints(t, c.Conn(), addrs(bs[:2]...)...)
	srv.Start()

	start := time.Now()
	reg.add(bs[2].Addr(), nil, 0)
	added := time.Since(start)
	took, ok := waitFor(30*time.Second, func() bool { return bs[2].Calls() > 0 })
	if !ok {
		t.Fatalf("backend added after the restart got no call in %v; endpoints %v", took, c.Conn().Endpoints())
	}
	t.Logf("after the restart: AddEndpoint took %v (the admin client reconnecting), first call %v after it", added, took)
	reg.del(bs[0].Addr())
	checkNoNewCalls(t, c.Conn(), bs[0], l, 10*time.Second)
	l.checkNoFailures(t)
}

// TestCompactedWatch cuts the resolver's etcd client off from etcd while
// a backend is deleted, another added and the history compacted, so the
// watch cannot resume where it was: the resolver must read the keys
// again and find the change, keeping its endpoints in use meanwhile. A bad
// value that was there before is logged once, not again on the new read.
func TestCompactedWatch(t *testing.T) {
	srv := startEtcd(t)
	admin := newClient(t, srv.clientAddr)
	reg := newRegistry(t, admin)
	px := startProxy(t, srv.clientAddr)
	bs := slowBackends(t, 3)
	reg.add(bs[0].Addr(), nil, 0)
	reg.add(bs[1].Addr(), nil, 0)
	broken := prefix + "/broken"
	reg.putRaw(broken, `{"Addr": "127.0.0.1:1"`)
	c := dial(t, newClient(t, px.addr))
	waitEndpoints(t, c.Conn(), addrs(bs[:2]...)...)
	if n := grpcLog.count(broken, "not valid JSON"); n != 1 {
		t.Fatalf("bad value of %s logged %d times, want once", broken, n)
	}
	l := startLoad(t, c, 4)

	px.cut()
	reg.del(bs[0].Addr())
	reg.add(bs[2].Addr(), nil, 0)
	resp, err := admin.Get(ctxT(t), prefix, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Compact(ctxT(t), resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if !hasEndpoint(c.Conn(), bs[0].Addr()) || hasEndpoint(c.Conn(), bs[2].Addr()) {
		t.Fatalf("cut off from etcd, the endpoints changed: %v", c.Conn().Endpoints())
	}
	px.restore()

	start := time.Now()
	took, ok := waitFor(30*time.Second, func() bool { return hasEndpoint(c.Conn(), bs[2].Addr()) && !hasEndpoint(c.Conn(), bs[0].Addr()) })
	if !ok {
		t.Fatalf("endpoints %v after %v, want %s and %s", c.Conn().Endpoints(), took, bs[1].Addr(), bs[2].Addr())
	}
	t.Logf("after the partition: endpoints caught up %v after the proxy was restored", time.Since(start))
	checkNoNewCalls(t, c.Conn(), bs[0], l, 10*time.Second)
	if n := grpcLog.count(prefix, "compacted"); n == 0 {
		t.Errorf("no compaction logged: the watch did not go through its compacted path; log: %v", grpcLog.lines)
	}
	if n := grpcLog.count(broken, "not valid JSON"); n != 1 {
		t.Errorf("bad value of %s logged %d times after the read again, want once", broken, n)
	}
	l.checkNoFailures(t)
}

// TestBadValue overwrites a registered backend's value with one that is not
// JSON and adds a key whose value is not JSON either: the backend keeps its
// last good value and its calls, the new key adds nothing, each is logged
// once per change, and a later good write and a delete take effect.
func TestBadValue(t *testing.T) {
	srv := startEtcd(t)
	reg := newRegistry(t, newClient(t, srv.clientAddr))
	bs := slowBackends(t, 2)
	reg.add(bs[0].Addr(), nil, 0)
	reg.add(bs[1].Addr(), nil, 0)
	c := dial(t, newClient(t, srv.clientAddr))
	waitEndpoints(t, c.Conn(), addrs(bs...)...)
	l := startLoad(t, c, 4)

	garbage := prefix + "/garbage"
	reg.putRaw(key(bs[0].Addr()), `{"Addr": "`+bs[0].Addr()+`", "Metadata": {"weight": 2}`)
	reg.putRaw(garbage, "not json")
	logged := func(k string, n int) bool { return grpcLog.count(`"`+k+`"`, "not valid JSON") >= n }
	if _, ok := waitFor(10*time.Second, func() bool { return logged(key(bs[0].Addr()), 1) && logged(garbage, 1) }); !ok {
		t.Fatalf("bad values not logged; log: %v", grpcLog.lines)
	}
	if n := grpcLog.count(key(bs[0].Addr()), "stays in use"); n != 1 {
		t.Errorf("log of %s does not say its last good value stays in use (%d lines)", key(bs[0].Addr()), n)
	}
	if n := grpcLog.count(garbage, "adds no endpoint"); n != 1 {
		t.Errorf("log of %s does not say it adds no endpoint (%d lines)", garbage, n)
	}
	before := bs[0].Calls()
	if _, ok := waitFor(10*time.Second, func() bool { return bs[0].Calls() > before+50 }); !ok {
		t.Errorf("backend whose value went bad got %d calls since, want it still called", bs[0].Calls()-before)
	}
	waitEndpoints(t, c.Conn(), addrs(bs...)...)

	// The same bad value written again is a change, logged again; nothing
	// else is logged twice.
	reg.putRaw(garbage, "not json")
	if _, ok := waitFor(10*time.Second, func() bool { return logged(garbage, 2) }); !ok {
		t.Fatalf("second bad write of %s not logged", garbage)
	}
	time.Sleep(200 * time.Millisecond)
	if n := grpcLog.count(`"`+key(bs[0].Addr())+`"`, "not valid JSON"); n != 1 {
		t.Errorf("bad value of %s logged %d times, want once", key(bs[0].Addr()), n)
	}
	if n := grpcLog.count(`"`+garbage+`"`, "not valid JSON"); n != 2 {
		t.Errorf("two bad writes of %s logged %d times, want twice", garbage, n)
	}

	reg.del(bs[0].Addr())
	checkNoNewCalls(t, c.Conn(), bs[0], l, 10*time.Second)
	l.checkNoFailures(t)
}

// TestEmptySet deregisters every backend: the channel gets the empty set,
// calls that do not wait for ready fail with UNAVAILABLE instead of
// reaching the backend, which still serves, and a backend registered again
// is called again.
func TestEmptySet(t *testing.T) {
	srv := startEtcd(t)
	reg := newRegistry(t, newClient(t, srv.clientAddr))
	b := startBackends(t, 1)[0]
	reg.add(b.Addr(), nil, 0)
	conn, err := runtime.Dial("etcd:///"+prefix, nil, runtime.WithInsecure(),
		runtime.WithPolicy(runtime.RoundRobin),
		runtime.WithResolver(etcdresolver.NewBuilder(newClient(t, srv.clientAddr))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	client := greeterv1.NewGreeterClient(conn)
	call := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := client.SayHello(ctx, &greeterv1.HelloRequest{Name: "empty"})
		return err
	}
	if err := call(); err != nil {
		t.Fatal(err)
	}

	reg.del(b.Addr())
	if _, ok := waitFor(10*time.Second, func() bool { return len(conn.Endpoints()) == 0 }); !ok {
		t.Fatalf("endpoints %v after every key was deleted, want none", conn.Endpoints())
	}
	before := b.Calls()
	for range 10 {
		err := call()
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("call with no endpoint: %v, want UNAVAILABLE", err)
		}
	}
	if got := b.Calls() - before; got != 0 {
		t.Errorf("deregistered backend got %d calls", got)
	}
	if n := grpcLog.count("no endpoints under", prefix); n == 0 {
		t.Errorf("the empty set was not logged")
	}

	reg.add(b.Addr(), nil, 0)
	if _, ok := waitFor(10*time.Second, func() bool { return call() == nil }); !ok {
		t.Fatalf("backend registered again is not called: %v", call())
	}
}

// TestTargetErrors checks that a target without a prefix, one with an
// authority and a builder without a client fail calls with an error that
// says what is wrong.
func TestTargetErrors(t *testing.T) {
	srv := startEtcd(t)
	cli := newClient(t, srv.clientAddr)
	for _, tc := range []struct {
		target string
		cli    *clientv3.Client
		want   string
	}{
		{"etcd:///", cli, `etcd resolver: target "etcd:///" has no key prefix: write etcd:///<key prefix>`},
		{"etcd://localhost:2379/services/greeter", cli, `etcd resolver: target "etcd://localhost:2379/services/greeter" names the authority "localhost:2379"`},
		{"etcd:///services/greeter", nil, "etcd resolver: NewBuilder was given a nil *clientv3.Client"},
	} {
		t.Run(tc.target, func(t *testing.T) {
			cc, err := grpc.NewClient(tc.target,
				grpc.WithTransportCredentials(insecure.NewCredentials()),
				grpc.WithResolvers(etcdresolver.NewBuilder(tc.cli)))
			if err != nil {
				t.Fatal(err)
			}
			defer cc.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err = greeterv1.NewGreeterClient(cc).SayHello(ctx, &greeterv1.HelloRequest{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("call error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

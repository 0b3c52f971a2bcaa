package etcdresolver_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/naming/endpoints"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/grpclog"

	"github.com/lbclient/lbclient/example/backend"
	greeterv1 "github.com/lbclient/lbclient/gen/greeter/v1"
	"github.com/lbclient/lbclient/gen/greeter/v1/greeterv1lbclient"
	"github.com/lbclient/lbclient/internal/closedloop"
	"github.com/lbclient/lbclient/runtime"
	etcdresolver "github.com/lbclient/lbclient/runtime/resolver/etcd"
)

// grpcLog records what grpc-go's components log, the resolver's included.
var grpcLog = &logRecorder{}

func TestMain(m *testing.M) {
	// Before anything of grpc runs: SetLoggerV2 is not safe to call
	// concurrently with logging. Every severity goes to the first writer.
	grpclog.SetLoggerV2(grpclog.NewLoggerV2(grpcLog, io.Discard, io.Discard))
	goleak.VerifyTestMain(m)
}

// logRecorder keeps the lines logged by the resolver's component.
type logRecorder struct {
	mu    sync.Mutex
	lines []string
}

func (l *logRecorder) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte("[lbclient_etcd_resolver]")) {
		l.mu.Lock()
		l.lines = append(l.lines, strings.TrimSpace(string(p)))
		l.mu.Unlock()
		if testing.Verbose() {
			os.Stderr.Write(p)
		}
	}
	return len(p), nil
}

// count returns how many of the resolver's lines contain every one of subs.
func (l *logRecorder) count(subs ...string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
next:
	for _, line := range l.lines {
		for _, s := range subs {
			if !strings.Contains(line, s) {
				continue next
			}
		}
		n++
	}
	return n
}

// etcdServer is a real etcd member, in process, on loopback ports, with
// its data in a directory of the test's. Stop and Start again restart it
// on the same directory and ports.
type etcdServer struct {
	t          *testing.T
	dir        string
	clientAddr string // 127.0.0.1:port, fixed by the first start
	peerAddr   string
	e          *embed.Etcd
}

func startEtcd(t *testing.T) *etcdServer {
	t.Helper()
	s := &etcdServer{t: t, dir: t.TempDir(), clientAddr: "127.0.0.1:0", peerAddr: "127.0.0.1:0"}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// Start starts the member and waits until it serves.
func (s *etcdServer) Start() {
	s.t.Helper()
	cfg := embed.NewConfig()
	cfg.Name = "test"
	cfg.Dir = s.dir
	client := url.URL{Scheme: "http", Host: s.clientAddr}
	peer := url.URL{Scheme: "http", Host: s.peerAddr}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	// A one-member cluster elects itself after an election timeout: short
	// ones keep each start quick. No fsync: the data dir is the test's.
	cfg.TickMs, cfg.ElectionMs = 10, 100
	cfg.UnsafeNoFsync = true
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		s.t.Fatalf("start etcd in %s: %v", s.dir, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		e.Close()
		s.t.Fatal("etcd not ready after 30s")
	}
	s.e = e
	s.clientAddr = e.Clients[0].Addr().String()
	s.peerAddr = e.Peers[0].Addr().String()
}

// Stop stops the member and waits until it has stopped.
func (s *etcdServer) Stop() {
	if s.e != nil {
		s.e.Close()
		s.e = nil
	}
}

// newClient returns an etcd client of addr, closed when the test ends.
func newClient(t *testing.T, addr string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{addr},
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		t.Fatalf("etcd client of %s: %v", addr, err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

const prefix = "services/greeter"

// registry registers backends under prefix the standard way.
type registry struct {
	t   *testing.T
	cli *clientv3.Client
	em  endpoints.Manager
}

func newRegistry(t *testing.T, cli *clientv3.Client) *registry {
	em, err := endpoints.NewManager(cli, prefix)
	if err != nil {
		t.Fatal(err)
	}
	return &registry{t: t, cli: cli, em: em}
}

func key(addr string) string { return prefix + "/" + addr }

// add registers addr with metadata md (nil: none), on lease (0: none).
func (r *registry) add(addr string, md any, lease clientv3.LeaseID) {
	r.t.Helper()
	var opts []clientv3.OpOption
	if lease != 0 {
		opts = append(opts, clientv3.WithLease(lease))
	}
	if err := r.em.AddEndpoint(ctxT(r.t), key(addr), endpoints.Endpoint{Addr: addr, Metadata: md}, opts...); err != nil {
		r.t.Fatalf("AddEndpoint %s: %v", addr, err)
	}
}

func (r *registry) del(addr string) {
	r.t.Helper()
	if err := r.em.DeleteEndpoint(ctxT(r.t), key(addr)); err != nil {
		r.t.Fatalf("DeleteEndpoint %s: %v", addr, err)
	}
}

// putRaw writes value under k as it is.
func (r *registry) putRaw(k, value string) {
	r.t.Helper()
	if _, err := r.cli.Put(ctxT(r.t), k, value); err != nil {
		r.t.Fatalf("put %s: %v", k, err)
	}
}

// startBackends serves n Greeters on loopback, stopped when the test ends.
func startBackends(t *testing.T, n int) []*backend.Backend {
	t.Helper()
	f, err := backend.StartFleet(n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	return f
}

// dial returns the example's Greeter client, with the example's rules,
// over the etcd target of prefix.
func dial(t *testing.T, cli *clientv3.Client, opts ...runtime.Option) *greeterv1lbclient.GreeterClient {
	t.Helper()
	opts = append([]runtime.Option{runtime.WithInsecure(), runtime.WithResolver(etcdresolver.NewBuilder(cli))}, opts...)
	c, err := greeterv1lbclient.NewGreeterClient("etcd:///"+prefix, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// waitEndpoints waits, bounded, until conn's balancer has exactly addrs,
// all READY.
func waitEndpoints(t *testing.T, conn *runtime.Conn, addrs ...string) {
	t.Helper()
	want := map[string]bool{}
	for _, a := range addrs {
		want[a] = true
	}
	conn.ClientConn().Connect() // leave IDLE, if the connection is
	deadline := time.Now().Add(30 * time.Second)
	for {
		eps := conn.Endpoints()
		ok := len(eps) == len(want)
		for _, e := range eps {
			if !want[e.Addr] || e.State != connectivity.Ready {
				ok = false
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("endpoints are %+v, want %v all READY", eps, addrs)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// hasEndpoint reports whether conn's balancer lists addr.
func hasEndpoint(conn *runtime.Conn, addr string) bool {
	for _, e := range conn.Endpoints() {
		if e.Addr == addr {
			return true
		}
	}
	return false
}

// load is a closed loop of SayHello calls from a few workers, each call
// made as soon as the last returned. It stops by itself after a minute.
// load is a closed loop of SayHello calls that the test stops, or that
// stops by itself after a minute.
type load struct{ *closedloop.Load }

func startLoad(t *testing.T, c *greeterv1lbclient.GreeterClient, workers int) load {
	l := load{closedloop.Start(workers, time.Minute, func(int, int64) error {
		_, err := c.SayHello(context.Background(), &greeterv1.HelloRequest{Name: "load"})
		return err
	})}
	t.Cleanup(func() { l.Stop() })
	return l
}

// checkNoFailures stops the load and fails the test if any call failed.
func (l load) checkNoFailures(t *testing.T) {
	t.Helper()
	calls, failed, errs := l.Stop()
	t.Logf("closed loop: %d calls, %d failed", calls, failed)
	if failed != 0 {
		t.Errorf("%d of %d calls failed, first errors: %v", failed, calls, errs)
	}
}

// calls returns each backend's call counter.
func calls(bs []*backend.Backend) []int64 {
	out := make([]int64, len(bs))
	for i, b := range bs {
		out[i] = b.Calls()
	}
	return out
}

// waitFor polls cond every few milliseconds until it holds or within
// passes, and returns how long it took and whether it held.
func waitFor(within time.Duration, cond func() bool) (time.Duration, bool) {
	start := time.Now()
	for {
		if cond() {
			return time.Since(start), true
		}
		if time.Since(start) > within {
			return time.Since(start), false
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// proxy forwards TCP connections from a loopback port to target, and can
// cut every connection and refuse new ones for a while: a network
// partition between a client and etcd.
type proxy struct {
	t      *testing.T
	target string
	addr   string

	mu    sync.Mutex
	lis   net.Listener
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	p := &proxy{t: t, target: target, addr: "127.0.0.1:0", conns: map[net.Conn]struct{}{}}
	p.listen()
	t.Cleanup(p.cut)
	return p
}

func (p *proxy) listen() {
	p.t.Helper()
	lis, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatalf("proxy listen on %s: %v", p.addr, err)
	}
	p.addr = lis.Addr().String()
	p.mu.Lock()
	p.lis = lis
	p.mu.Unlock()
	p.wg.Go(func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			if p.lis != lis { // cut while this one was being dialled
				p.mu.Unlock()
				c.Close()
				up.Close()
				return
			}
			p.conns[c], p.conns[up] = struct{}{}, struct{}{}
			p.mu.Unlock()
			pipe := func(dst, src net.Conn) {
				io.Copy(dst, src)
				dst.Close()
				src.Close()
			}
			p.wg.Go(func() { pipe(up, c) })
			p.wg.Go(func() { pipe(c, up) })
		}
	})
}

// cut closes the listener and every connection, and waits for the
// forwarding goroutines.
func (p *proxy) cut() {
	p.mu.Lock()
	if p.lis != nil {
		p.lis.Close()
		p.lis = nil
	}
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
	p.mu.Unlock()
	p.wg.Wait()
}

// restore listens again on the same port.
func (p *proxy) restore() { p.listen() }

func (p *proxy) String() string { return fmt.Sprintf("proxy %s → %s", p.addr, p.target) }

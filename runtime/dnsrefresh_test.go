package runtime_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/lbclient/lbclient/example/backend"
	greeterv1 "github.com/lbclient/lbclient/gen/greeter/v1"
	"github.com/lbclient/lbclient/gen/greeter/v1/greeterv1lbclient"
	"github.com/lbclient/lbclient/internal/dnstest"
	"github.com/lbclient/lbclient/runtime"
)

// refresh is the DNS refresh interval of these tests: the shortest allowed.
const refresh = runtime.MinDNSRefresh

// startDNS serves DNS on loopback until the test ends.
func startDNS(t *testing.T) *dnstest.Server {
	t.Helper()
	s, err := dnstest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// startLoopbackFleet serves n Greeters on 127.0.0.1, 127.0.0.2, … with one
// port (dnstest.LoopbackFleet), stopped when the test ends.
func startLoopbackFleet(t *testing.T, n int) (backend.Fleet, string) {
	t.Helper()
	f, port, err := dnstest.LoopbackFleet(n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	return f, port
}

// logRecord is one record a connection logged.
type logRecord struct {
	time   time.Time
	level  slog.Level
	msg    string
	target string
	addrs  []string
}

// logCapture is an slog.Handler that keeps every record.
type logCapture struct {
	mu      sync.Mutex
	records []logRecord
}

func (*logCapture) Enabled(context.Context, slog.Level) bool { return true }
func (h *logCapture) WithAttrs([]slog.Attr) slog.Handler     { return h }
func (h *logCapture) WithGroup(string) slog.Handler          { return h }

func (h *logCapture) Handle(_ context.Context, r slog.Record) error {
	rec := logRecord{time: r.Time, level: r.Level, msg: r.Message}
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "target":
			rec.target = a.Value.String()
		case "addresses":
			rec.addrs, _ = a.Value.Any().([]string)
		}
		return true
	})
	h.mu.Lock()
	h.records = append(h.records, rec)
	h.mu.Unlock()
	return nil
}

// matching returns the records of level or above whose message contains s.
func (h *logCapture) matching(level slog.Level, s string) []logRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []logRecord
	for _, r := range h.records {
		if r.level >= level && strings.Contains(r.msg, s) {
			out = append(out, r)
		}
	}
	return out
}

// call is one call of the closed-loop load.
type call struct {
	start   time.Time
	backend string // the backend that answered; "" when the call failed
	err     error
}

// load keeps workers calls in flight, each worker calling again as soon as
// its call returns, until stop.
type load struct {
	mu     sync.Mutex
	calls  []call
	stop   chan struct{}
	wg     sync.WaitGroup
	finish func() // stops the workers and waits for them; idempotent
}

func startLoad(t *testing.T, c *greeterv1lbclient.GreeterClient, workers int) *load {
	l := &load{stop: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // bounds the loop if stop never comes
	for w := range workers {
		l.wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				start := time.Now()
				r, err := c.SayHello(ctx, &greeterv1.HelloRequest{Name: fmt.Sprint(w, "-", i)})
				if ctx.Err() != nil {
					return
				}
				l.mu.Lock()
				l.calls = append(l.calls, call{start: start, backend: r.GetBackend(), err: err})
				l.mu.Unlock()
			}
		})
	}
	l.finish = sync.OnceFunc(func() { close(l.stop); l.wg.Wait(); cancel() })
	t.Cleanup(l.finish)
	return l
}

// snapshot returns the calls so far.
func (l *load) snapshot() []call {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.calls)
}

// failures returns the failed calls so far.
func (l *load) failures() []call {
	var out []call
	for _, c := range l.snapshot() {
		if c.err != nil {
			out = append(out, c)
		}
	}
	return out
}

// poll calls cond every 10ms until it holds or d has passed, and reports
// whether it held.
func poll(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// counts returns the calls each backend has received.
func counts(fleet []*backend.Backend) []int64 {
	out := make([]int64, len(fleet))
	for i, b := range fleet {
		out[i] = b.Calls()
	}
	return out
}

// TestDNSRefreshFollowsTheFleet runs a closed-loop load through a client
// with the example's rules while the DNS zone changes under it: a backend
// added to DNS gets its first call within the refresh interval plus one
// second and then at least 0.6/N of the calls; a backend removed from DNS
// gets no call begun after the connection saw the change; no call fails.
func TestDNSRefreshFollowsTheFleet(t *testing.T) {
	for _, p := range []runtime.Policy{runtime.PeakEWMA, runtime.RoundRobin} {
		t.Run(p.String(), func(t *testing.T) {
			testFollowsTheFleet(t, p)
		})
	}
}

func testFollowsTheFleet(t *testing.T, policy runtime.Policy) {
	const name = "backends.test"
	fleet, port := startLoopbackFleet(t, 4)
	for _, b := range fleet {
		b.SetDelay(2 * time.Millisecond)
	}
	ip := func(i int) string { h, _, _ := net.SplitHostPort(fleet[i].Addr()); return h }
	ns := startDNS(t)
	ns.Set(name, ip(0), ip(1), ip(2))

	logs := new(logCapture)
	target := ns.Target(name, port)
	c, err := greeterv1lbclient.NewGreeterClient(target, runtime.WithInsecure(), runtime.WithPolicy(policy),
		runtime.WithDNSRefresh(refresh), runtime.WithLogger(slog.New(logs)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	l := startLoad(t, c, 6)
	if !poll(10*time.Second, func() bool {
		n := counts(fleet)
		return n[0] > 0 && n[1] > 0 && n[2] > 0
	}) {
		t.Fatalf("the three backends in DNS did not all get calls: %v", counts(fleet))
	}

	// A backend joins.
	added := time.Now()
	ns.Set(name, ip(0), ip(1), ip(2), ip(3))
	if !poll(refresh+time.Second, func() bool { return fleet[3].Calls() > 0 }) {
		t.Fatalf("backend %s added to DNS got no call within %v (refresh %v + 1s)", fleet[3].Addr(), refresh+time.Second, refresh)
	}
	first := time.Since(added)
	t.Logf("added backend: first call %v after the DNS change (refresh %v)", first.Round(time.Millisecond), refresh)

	// Its share of the calls, over windows of 500ms, reaches 0.6/N.
	const n = 4
	want := 0.6 / n
	var shares []string
	firstCall := time.Now()
	prev := counts(fleet)
	reached := poll(5*time.Second, func() bool {
		time.Sleep(500 * time.Millisecond)
		now := counts(fleet)
		var total, mine int64
		for i := range now {
			total += now[i] - prev[i]
		}
		mine = now[3] - prev[3]
		prev = now
		share := float64(mine) / float64(max(total, 1))
		shares = append(shares, fmt.Sprintf("%.2f", share))
		return total > 0 && share >= want
	})
	t.Logf("added backend: shares per 500ms window %v, goal %.2f reached %v after its first call", shares, want, time.Since(firstCall).Round(time.Millisecond))
	if !reached {
		t.Fatalf("added backend never reached %.2f of the calls within 5s of its first call: shares %v", want, shares)
	}

	// A backend leaves (it keeps running: only DNS changed).
	removed := fleet[1]
	ns.Set(name, ip(0), ip(2), ip(3))
	var seen time.Time
	if !poll(refresh+5*time.Second, func() bool {
		for _, r := range logs.matching(slog.LevelDebug, "endpoints changed") {
			if len(r.addrs) == 3 && !slices.Contains(r.addrs, removed.Addr()) {
				seen = r.time
				return true
			}
		}
		return false
	}) {
		t.Fatalf("the connection never saw %s leave DNS", removed.Addr())
	}
	time.Sleep(2 * refresh) // calls go on after the change
	var after, others int
	for _, cl := range l.snapshot() {
		if cl.start.After(seen) {
			others++
			if cl.backend == removed.Name() {
				after++
			}
		}
	}
	if others == 0 {
		t.Fatal("no call after the removal was seen")
	}
	if after != 0 {
		t.Errorf("backend %s removed from DNS answered %d of the %d calls begun after the connection saw the change", removed.Addr(), after, others)
	}
	t.Logf("removed backend: 0 of %d calls begun after the change was seen", others)

	l.finish()
	if f := l.failures(); len(f) > 0 {
		t.Errorf("%d of %d calls failed under the changing fleet; first: %v", len(f), len(l.snapshot()), f[0].err)
	}
}

// TestDNSAnswerWithoutAddressesKeepsTheSet: an answer with no addresses
// (NXDOMAIN, then NODATA) and a failing DNS server (SERVFAIL) keep the last
// good set, so calls go on succeeding; each problem is logged once, naming
// the target, however many refreshes it lasts, and the recovery once.
func TestDNSAnswerWithoutAddressesKeepsTheSet(t *testing.T) {
	const name = "flaky.test"
	fleet, port := startLoopbackFleet(t, 2)
	ip := func(i int) string { h, _, _ := net.SplitHostPort(fleet[i].Addr()); return h }
	ns := startDNS(t)
	ns.Set(name, ip(0), ip(1))

	logs := new(logCapture)
	target := ns.Target(name, port)
	c, err := greeterv1lbclient.NewGreeterClient(target, runtime.WithInsecure(),
		runtime.WithDNSRefresh(refresh), runtime.WithLogger(slog.New(logs)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	l := startLoad(t, c, 4)
	if !poll(10*time.Second, func() bool { n := counts(fleet); return n[0] > 0 && n[1] > 0 }) {
		t.Fatalf("the backends in DNS did not both get calls: %v", counts(fleet))
	}

	phases := []struct {
		name     string
		breakDNS func()
		want     string // in the warning
	}{
		{"NXDOMAIN", func() { ns.Remove(name) }, "no addresses"},
		{"NODATA", func() { ns.Set(name) }, "no addresses"},
		{"SERVFAIL", func() { ns.Failing(name) }, "server misbehaving"},
	}
	for _, ph := range phases {
		warnsBefore := len(logs.matching(slog.LevelWarn, ""))
		recoveredBefore := len(logs.matching(slog.LevelInfo, "resolving again"))
		lookups := ns.Lookups(name)
		callsBefore := len(l.snapshot())
		ph.breakDNS()
		// Let the connection ask at least three times while DNS is broken.
		if !poll(5*refresh+5*time.Second, func() bool { return ns.Lookups(name) >= lookups+3 }) {
			t.Fatalf("%s: DNS was asked %d times in the phase, want 3", ph.name, ns.Lookups(name)-lookups)
		}
		if got := len(l.snapshot()) - callsBefore; got == 0 {
			t.Errorf("%s: no call completed while DNS was broken", ph.name)
		}
		if f := l.failures(); len(f) > 0 {
			t.Errorf("%s: %d calls failed so far; first: %v", ph.name, len(f), f[0].err)
		}
		warns := logs.matching(slog.LevelWarn, "")[warnsBefore:]
		if len(warns) != 1 {
			t.Errorf("%s: %d warnings over %d lookups, want 1: %+v", ph.name, len(warns), ns.Lookups(name)-lookups, warns)
		} else {
			w := warns[0]
			if w.target != target || !strings.Contains(w.msg, ph.want) || !strings.Contains(w.msg, "keeping the last 2") {
				t.Errorf("%s: warning %q (target %q), want one about %q naming target %q and the 2 addresses kept", ph.name, w.msg, w.target, ph.want, target)
			}
		}
		ns.Set(name, ip(0), ip(1))
		if !poll(refresh+5*time.Second, func() bool {
			return len(logs.matching(slog.LevelInfo, "resolving again")) > recoveredBefore
		}) {
			t.Fatalf("%s: no recovery logged once DNS answered again", ph.name)
		}
		if got := len(logs.matching(slog.LevelInfo, "resolving again")) - recoveredBefore; got != 1 {
			t.Errorf("%s: recovery logged %d times, want 1", ph.name, got)
		}
	}

	// Both backends still take calls.
	before := counts(fleet)
	if !poll(10*time.Second, func() bool {
		n := counts(fleet)
		return n[0] > before[0] && n[1] > before[1]
	}) {
		t.Errorf("after DNS recovered, the backends did not both get calls: %v then %v", before, counts(fleet))
	}
	l.finish()
	if f := l.failures(); len(f) > 0 {
		t.Errorf("%d of %d calls failed while DNS was broken; first: %v", len(f), len(l.snapshot()), f[0].err)
	}
}

// TestDNSRefreshIsPerConnection: the refresh re-resolves the lbclient
// connection's target on the schedule its rules give, while a plain grpc-go connection in the
// same process keeps grpc-go's behaviour: one lookup, then none while its
// backend stays healthy.
func TestDNSRefreshIsPerConnection(t *testing.T) {
	fleet, port := startLoopbackFleet(t, 1)
	ns := startDNS(t)
	ns.Set("refreshed.test", "127.0.0.1")
	ns.Set("plain.test", "127.0.0.1")

	// The interval comes from the rules, as generated code passes it.
	conn, err := runtime.Dial(ns.Target("refreshed.test", port), &runtime.ServiceRules{DNSRefresh: refresh}, runtime.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	plain, err := grpc.NewClient(ns.Target("plain.test", port), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	ctx := ctxFor(t)
	for _, cc := range []grpc.ClientConnInterface{conn, plain} {
		if _, err := greeterv1.NewGreeterClient(cc).SayHello(ctx, &greeterv1.HelloRequest{Name: "x"}, grpc.WaitForReady(true)); err != nil {
			t.Fatal(err)
		}
	}
	if !poll(4*refresh+5*time.Second, func() bool { return ns.Lookups("refreshed.test") >= 4 }) {
		t.Fatalf("the lbclient connection looked its name up %d times, want 4 or more", ns.Lookups("refreshed.test"))
	}
	if got := ns.Lookups("plain.test"); got != 1 {
		t.Errorf("the plain grpc-go connection looked its name up %d times, want 1: its resolver changed", got)
	}
	if fleet[0].Calls() != 2 {
		t.Errorf("backend got %d calls, want 2", fleet[0].Calls())
	}
}

// TestDNSRefreshOff: a negative interval, which wins over the rules' as
// options do, leaves grpc-go's resolver as it is: one lookup while the
// backend stays healthy.
func TestDNSRefreshOff(t *testing.T) {
	_, port := startLoopbackFleet(t, 1)
	ns := startDNS(t)
	ns.Set("off.test", "127.0.0.1")
	ns.Set("on.test", "127.0.0.1")
	off, err := runtime.Dial(ns.Target("off.test", port), &runtime.ServiceRules{DNSRefresh: refresh}, runtime.WithInsecure(), runtime.WithDNSRefresh(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer off.Close()
	on, err := runtime.Dial(ns.Target("on.test", port), nil, runtime.WithInsecure(), runtime.WithDNSRefresh(refresh))
	if err != nil {
		t.Fatal(err)
	}
	defer on.Close()
	ctx := ctxFor(t)
	for _, cc := range []*runtime.Conn{off, on} {
		if err := cc.WaitForReady(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if !poll(3*refresh+5*time.Second, func() bool { return ns.Lookups("on.test") >= 3 }) {
		t.Fatalf("the refreshing connection looked its name up %d times, want 3 or more", ns.Lookups("on.test"))
	}
	if got := ns.Lookups("off.test"); got != 1 {
		t.Errorf("with refresh off the name was looked up %d times, want 1", got)
	}
}

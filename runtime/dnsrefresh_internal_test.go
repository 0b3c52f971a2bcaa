package runtime

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/serviceconfig"
)

// These tests drive refreshingResolver through a scripted inner resolver:
// grpc-go's dns resolver cannot be made to report late on demand, which is
// the case they check. The end-to-end behaviour against a real DNS server
// is in dnsrefresh_test.go.

// scriptedBuilder builds scriptedResolvers and keeps the ClientConn each
// was given, so the test can report through old and new ones at will.
type scriptedBuilder struct {
	mu    sync.Mutex
	ccs   []resolver.ClientConn
	built []*scriptedResolver
	// onBuild, when set, reports through cc before Build returns, as
	// grpc-go's dns resolver does for an IP address.
	onBuild func(cc resolver.ClientConn)
}

func (b *scriptedBuilder) Scheme() string { return "dns" }

func (b *scriptedBuilder) Build(_ resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	if b.onBuild != nil {
		b.onBuild(cc)
	}
	r := &scriptedResolver{}
	b.mu.Lock()
	b.ccs = append(b.ccs, cc)
	b.built = append(b.built, r)
	b.mu.Unlock()
	return r, nil
}

func (b *scriptedBuilder) cc(i int) resolver.ClientConn {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ccs[i]
}

type scriptedResolver struct {
	mu         sync.Mutex
	closed     bool
	resolveNow int
}

func (r *scriptedResolver) ResolveNow(resolver.ResolveNowOptions) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		panic("ResolveNow after Close")
	}
	r.resolveNow++
}

func (r *scriptedResolver) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
}

// recordingCC is grpc's side: it records what reaches it.
type recordingCC struct {
	mu     sync.Mutex
	states [][]string // addresses of each state
	errs   []error
}

func (c *recordingCC) UpdateState(s resolver.State) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.states = append(c.states, stateAddrs(s))
	return nil
}

func (c *recordingCC) ReportError(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.errs = append(c.errs, err)
}

func (c *recordingCC) NewAddress([]resolver.Address) { panic("NewAddress") }

func (c *recordingCC) ParseServiceConfig(string) *serviceconfig.ParseResult { return nil }

func (c *recordingCC) got() ([][]string, []error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]string(nil), c.states...), append([]error(nil), c.errs...)
}

func stateOf(addrs ...string) resolver.State {
	var s resolver.State
	for _, a := range addrs {
		s.Endpoints = append(s.Endpoints, resolver.Endpoint{Addresses: []resolver.Address{{Addr: a}}})
	}
	return s
}

func buildRefreshing(t *testing.T, inner *scriptedBuilder, logger *slog.Logger) (*refreshingResolver, *recordingCC) {
	t.Helper()
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	b := newDNSRefreshBuilder(inner, MaxDNSRefresh, logger) // the schedule never fires: the test refreshes by hand
	cc := new(recordingCC)
	res, err := b.Build(resolver.Target{URL: *mustParseURL(t, "dns:///svc.test:443")}, cc, resolver.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r, ok := res.(*refreshingResolver)
	if !ok {
		t.Fatalf("Build returned %T, want a *refreshingResolver", res)
	}
	t.Cleanup(r.Close)
	return r, cc
}

func TestRefreshDropsTheReplacedResolversReports(t *testing.T) {
	inner := new(scriptedBuilder)
	r, cc := buildRefreshing(t, inner, nil)
	if err := inner.cc(0).UpdateState(stateOf("10.0.0.1:443")); err != nil {
		t.Fatal(err)
	}
	r.refresh()
	if !inner.built[0].closed {
		t.Error("the replaced resolver was not closed")
	}
	inner.cc(0).UpdateState(stateOf("10.0.0.9:443")) // late: dropped
	inner.cc(0).ReportError(errors.New("late"))      // late: dropped
	inner.cc(1).UpdateState(stateOf("10.0.0.2:443"))
	r.ResolveNow(resolver.ResolveNowOptions{})
	if n := inner.built[1].resolveNow; n != 1 {
		t.Errorf("ResolveNow reached the current resolver %d times, want 1", n)
	}
	r.Close()
	if !inner.built[1].closed {
		t.Error("Close did not close the current resolver")
	}
	inner.cc(1).UpdateState(stateOf("10.0.0.3:443")) // after Close: dropped
	r.ResolveNow(resolver.ResolveNowOptions{})       // after Close: a no-op

	states, errs := cc.got()
	want := "[[10.0.0.1:443] [10.0.0.2:443]]"
	if fmt.Sprint(states) != want || len(errs) != 0 {
		t.Errorf("grpc got states %v and errors %v, want states %s and no error", states, errs, want)
	}
}

// TestRefreshOrdersReportsUnderRace reports from the current and the
// replaced resolvers at once while the resolver is replaced again and
// again: once a generation's state has reached grpc, no older one's may
// follow.
func TestRefreshOrdersReportsUnderRace(t *testing.T) {
	inner := new(scriptedBuilder)
	r, cc := buildRefreshing(t, inner, nil)
	report := func(gen int) {
		for i := range 50 {
			inner.cc(gen).UpdateState(stateOf(fmt.Sprintf("10.%d.0.%d:443", gen, i%3+1)))
		}
	}
	var wg sync.WaitGroup
	const gens = 20
	for g := 1; g <= gens; g++ {
		wg.Go(func() { report(g - 1) })
		r.refresh()
		wg.Go(func() { report(g - 1) })
		wg.Go(func() { report(g) })
	}
	wg.Wait()

	states, _ := cc.got()
	last := 0
	for i, s := range states {
		var gen, a, b, c int
		if _, err := fmt.Sscanf(s[0], "10.%d.%d.%d:%d", &gen, &a, &b, &c); err != nil {
			t.Fatalf("state %d: %v: %v", i, s, err)
		}
		if gen < last {
			t.Fatalf("state %d from generation %d reached grpc after one from generation %d", i, gen, last)
		}
		last = gen
	}
	if last != gens {
		t.Errorf("the last state came from generation %d, want %d", last, gens)
	}
}

// TestRefreshKeepsTheLastGoodSet: an empty state or an error before the
// first good set goes to grpc; after it, both are dropped and logged once
// per problem, and a good set logs the recovery once.
func TestRefreshKeepsTheLastGoodSet(t *testing.T) {
	var logs strings.Builder
	inner := new(scriptedBuilder)
	_, cc := buildRefreshing(t, inner, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})))
	in := inner.cc(0)

	in.UpdateState(stateOf())                  // before any good set: passed on
	in.ReportError(errors.New("lookup fails")) // likewise
	in.UpdateState(stateOf("10.0.0.1:443", "10.0.0.2:443"))
	for range 3 {
		in.UpdateState(stateOf())
		in.UpdateState(resolver.State{})
	}
	for range 3 {
		in.ReportError(errors.New("server misbehaving"))
	}
	in.UpdateState(stateOf("10.0.0.2:443"))

	states, errs := cc.got()
	if want := "[[] [10.0.0.1:443 10.0.0.2:443] [10.0.0.2:443]]"; fmt.Sprint(states) != want {
		t.Errorf("grpc got states %v, want %s", states, want)
	}
	if len(errs) != 1 || errs[0].Error() != "lookup fails" {
		t.Errorf("grpc got errors %v, want only the one before the first good set", errs)
	}
	var lines []string
	for l := range strings.Lines(logs.String()) {
		lines = append(lines, strings.TrimSpace(l))
	}
	want := []string{
		`level=WARN msg="lbclient: dns: DNS answered with no addresses; keeping the last 2" target=dns:///svc.test:443`,
		`level=WARN msg="lbclient: dns: server misbehaving; keeping the last 2 addresses" target=dns:///svc.test:443`,
		`level=INFO msg="lbclient: dns: resolving again" target=dns:///svc.test:443 addresses=[10.0.0.2:443]`,
	}
	if len(lines) != len(want) {
		t.Fatalf("logged %d lines, want %d:\n%s", len(lines), len(want), logs.String())
	}
	for i, l := range lines {
		if _, rest, ok := strings.Cut(l, " level="); !ok || "level="+rest != want[i] {
			t.Errorf("log line %d:\n got %s\nwant %s", i, l, want[i])
		}
	}
}

// TestRefreshLeavesIPAddressesAlone: an IP address needs no refresh, and
// a resolver that reports during Build (as grpc-go's does for one) is
// heard.
func TestRefreshLeavesIPAddressesAlone(t *testing.T) {
	for _, tc := range []struct {
		endpoint string
		ip       bool
	}{
		{"10.0.0.1:443", true}, {"[::1]:443", true}, {"::1", true}, {"10.0.0.1", true},
		{"svc.test:443", false}, {"svc.test", false}, {"localhost:443", false},
	} {
		if got := literalIP(tc.endpoint); got != tc.ip {
			t.Errorf("literalIP(%q) = %v, want %v", tc.endpoint, got, tc.ip)
		}
	}

	inner := &scriptedBuilder{onBuild: func(cc resolver.ClientConn) { cc.UpdateState(stateOf("10.0.0.1:443")) }}
	b := newDNSRefreshBuilder(inner, MinDNSRefresh, slog.New(slog.NewTextHandler(io.Discard, nil)))
	cc := new(recordingCC)
	res, err := b.Build(resolver.Target{URL: *mustParseURL(t, "dns:///10.0.0.1:443")}, cc, resolver.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	if _, ok := res.(*refreshingResolver); ok {
		t.Error("an IP address got a refreshing resolver")
	}
	_, cc2 := buildRefreshing(t, inner, nil)
	for _, c := range []*recordingCC{cc, cc2} {
		if states, _ := c.got(); fmt.Sprint(states) != "[[10.0.0.1:443]]" {
			t.Errorf("grpc got %v, want the state reported during Build", states)
		}
	}
}

func mustParseURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

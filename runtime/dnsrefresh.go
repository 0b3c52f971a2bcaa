package runtime

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/dns"
	"google.golang.org/grpc/serviceconfig"
)

// The bounds and the default of the DNS refresh interval (WithDNSRefresh,
// ServiceRules.DNSRefresh and the dns_refresh annotation).
//
// grpc-go's own DNS resolver resolves once when the connection is made and
// then only when a connection to a backend is lost, and never more often
// than every 30 s (dns.MinResolutionInterval). As long as every backend
// stays healthy, a backend added to DNS gets no calls at all. lbclient
// re-resolves dns targets on a schedule instead.
const (
	// DefaultDNSRefresh is the refresh interval when neither the rules nor
	// WithDNSRefresh choose one. It matches grpc-go's own limit on
	// re-resolution (30 s) and the cache of Kubernetes' CoreDNS (its
	// default Corefile says "cache 30"): an answer asked for more often
	// would mostly come from that cache, so refreshing faster would add
	// queries without seeing changes sooner.
	DefaultDNSRefresh = 30 * time.Second
	// MinDNSRefresh is the shortest refresh interval. DNS TTLs count whole
	// seconds, so no cache can have a newer answer sooner; shorter
	// intervals would only multiply queries (two per refresh, A and AAAA,
	// for every connection).
	MinDNSRefresh = time.Second
	// MaxDNSRefresh is the longest refresh interval. Past an hour the
	// schedule no longer bounds how long a new backend waits in any useful
	// way; to rely on grpc-go's re-resolution on connection loss alone,
	// turn refresh off with a negative interval instead.
	MaxDNSRefresh = time.Hour
)

// checkDNSRefresh checks a refresh interval that is set: negative (off) or
// within [MinDNSRefresh, MaxDNSRefresh].
func checkDNSRefresh(d time.Duration) error {
	if d < 0 || (d >= MinDNSRefresh && d <= MaxDNSRefresh) {
		return nil
	}
	return fmt.Errorf("%v is outside [%v, %v] (a negative interval turns refresh off)", d, MinDNSRefresh, MaxDNSRefresh)
}

// dnsRefreshBuilder is the resolver builder of one Conn for the "dns"
// scheme. It wraps the dns builder that the connection would otherwise use
// (grpc-go's, or the one given with WithResolver) and makes every resolver
// it builds re-resolve every interval. Dial hands it to grpc.WithResolvers,
// so it serves that connection only: grpc-go's process-wide "dns" resolver
// and its dns.MinResolutionInterval stay as they are for every other
// connection.
type dnsRefreshBuilder struct {
	inner    resolver.Builder
	interval time.Duration
	logger   *slog.Logger
}

// newDNSRefreshBuilder wraps inner, or when inner is nil the "dns" builder
// registered with grpc-go (grpc-go's own unless the program replaced it).
func newDNSRefreshBuilder(inner resolver.Builder, interval time.Duration, logger *slog.Logger) *dnsRefreshBuilder {
	if inner == nil {
		inner = resolver.Get("dns")
	}
	if inner == nil {
		inner = dns.NewBuilder()
	}
	return &dnsRefreshBuilder{inner: inner, interval: interval, logger: logger}
}

// Scheme returns "dns".
func (b *dnsRefreshBuilder) Scheme() string { return "dns" }

// Build builds the inner resolver for target and starts the schedule that
// replaces it with a fresh one every interval.
//
// A fresh resolver is what makes the schedule work: grpc-go's dns resolver
// looks the name up as soon as it is built, then waits for ResolveNow and
// ignores it until 30 s have passed since its last lookup
// (internal/resolver/dns, dnsResolver.watcher and MinResolutionInterval),
// so ResolveNow alone cannot re-resolve sooner, and the only other way,
// setting MinResolutionInterval, would change every connection of the
// process. Closing a resolver cancels its lookup and waits for its
// goroutine (dnsResolver.Close), so replacing one leaves nothing behind.
func (b *dnsRefreshBuilder) Build(target resolver.Target, cc resolver.ClientConn, opts resolver.BuildOptions) (resolver.Resolver, error) {
	// grpc-go's dns resolver answers an IP address once and never again
	// (dnsBuilder.Build returns a deadResolver): nothing to refresh.
	if literalIP(target.Endpoint()) {
		return b.inner.Build(target, cc, opts)
	}
	r := &refreshingResolver{
		builder:  b.inner,
		target:   target,
		opts:     opts,
		cc:       cc,
		interval: b.interval,
		logger:   b.logger,
		source:   target.URL.String(),
		gen:      1,
		done:     make(chan struct{}),
	}
	// An inner Build may report before it returns (grpc-go's does for an
	// IP address), so the generation it reports under is current already.
	inner, err := b.inner.Build(target, &refreshCC{r: r, gen: 1}, opts)
	if err != nil {
		return nil, err
	}
	r.inner = inner
	r.wg.Add(1)
	go r.run()
	return r, nil
}

// literalIP reports whether the host of a dns target's endpoint
// ("host:port", "[v6]:port" or a bare host) is an IP address.
func literalIP(endpoint string) bool {
	host := endpoint
	if h, _, err := net.SplitHostPort(endpoint); err == nil {
		host = h
	}
	_, err := netip.ParseAddr(strings.Trim(host, "[]"))
	return err == nil
}

// refreshingResolver is the resolver that dnsRefreshBuilder builds: it owns
// one inner resolver at a time, replaces it every interval (less up to a
// fifth, at random), and passes on what the current one reports.
//
// Each inner resolver reports through a refreshCC stamped with the
// generation it was built under. An update is passed on only while its
// generation is current and the resolver is open, and under mu, so an old
// inner resolver's late update can never land after its successor's, nor
// after Close.
type refreshingResolver struct {
	builder  resolver.Builder
	target   resolver.Target
	opts     resolver.BuildOptions
	cc       resolver.ClientConn
	interval time.Duration
	logger   *slog.Logger
	source   string // the target as a URL, naming the source in log messages

	// lifeMu serialises the inner resolver's lifecycle: its replacement,
	// ResolveNow and Close. An inner resolver's Build, ResolveNow and
	// Close may report (grpc-go's Close waits for a lookup that is
	// reporting), which takes mu; nothing holding mu takes lifeMu, so the
	// two cannot deadlock.
	lifeMu sync.Mutex
	inner  resolver.Resolver

	mu      sync.Mutex
	gen     uint64   // generation of the current inner resolver
	closed  bool     // Close was called: nothing more is passed on
	good    []string // sorted addresses of the last set passed on; nil before the first
	problem string   // the problem last logged, until a good set clears it

	done chan struct{} // closed by Close: stops run
	wg   sync.WaitGroup
}

// run replaces the inner resolver on schedule until Close.
func (r *refreshingResolver) run() {
	defer r.wg.Done()
	t := time.NewTimer(r.nextRefresh())
	defer t.Stop()
	for {
		select {
		case <-r.done:
			return
		case <-t.C:
		}
		r.refresh()
		t.Reset(r.nextRefresh())
	}
}

// nextRefresh returns the wait before the next refresh: the interval less
// up to a fifth of it, at random. The jitter spreads the queries of
// clients that started together (a fleet deploying at once); taking it
// only off the interval keeps the interval the bound on how stale the
// endpoints can be.
func (r *refreshingResolver) nextRefresh() time.Duration {
	return r.interval - rand.N(r.interval/5+1)
}

// refresh closes the inner resolver and builds a fresh one, which resolves
// at once.
func (r *refreshingResolver) refresh() {
	r.lifeMu.Lock()
	defer r.lifeMu.Unlock()
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.gen++
	gen := r.gen
	r.mu.Unlock()

	// From here the old resolver's reports are stale and dropped.
	if r.inner != nil {
		r.inner.Close()
		r.inner = nil
	}
	inner, err := r.builder.Build(r.target, &refreshCC{r: r, gen: gen}, r.opts)
	if err != nil {
		// The same target built before, so this is not expected; the
		// endpoints stay as they are and the next refresh tries again.
		r.report(fmt.Sprintf("rebuilding the resolver: %v", err))
		return
	}
	r.inner = inner
}

// ResolveNow passes grpc's hint (a connection was lost) to the inner
// resolver, which rate-limits it as grpc-go's dns resolver does.
func (r *refreshingResolver) ResolveNow(o resolver.ResolveNowOptions) {
	r.lifeMu.Lock()
	defer r.lifeMu.Unlock()
	if r.inner != nil {
		r.inner.ResolveNow(o)
	}
}

// Close stops the schedule and closes the inner resolver; it returns once
// neither runs, and nothing is passed on to grpc after it.
func (r *refreshingResolver) Close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	r.mu.Unlock()
	close(r.done)
	r.wg.Wait()
	r.lifeMu.Lock()
	defer r.lifeMu.Unlock()
	if r.inner != nil {
		r.inner.Close()
		r.inner = nil
	}
}

// current reports whether an inner resolver of generation gen may still
// report. The caller holds mu.
func (r *refreshingResolver) current(gen uint64) bool {
	return !r.closed && gen == r.gen
}

// update passes s on to grpc, unless it has no addresses while a good set
// exists: an empty answer (the name removed, NXDOMAIN, or a record set
// emptied) is far more often a mistake or a hiccup of DNS than a fleet
// that has really gone, and passing it on would fail every call. The set
// is kept, and the problem logged once. Before the first good set an empty
// state is passed on, so that calls fail with grpc's own error about it.
func (r *refreshingResolver) update(gen uint64, s resolver.State) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.current(gen) {
		return nil
	}
	addrs := stateAddrs(s)
	if len(addrs) == 0 && r.good != nil {
		r.reportLocked(fmt.Sprintf("DNS answered with no addresses; keeping the last %d", len(r.good)))
		return nil
	}
	err := r.cc.UpdateState(s)
	if len(addrs) == 0 {
		return err
	}
	if r.problem != "" {
		r.logger.Info("lbclient: dns: resolving again", "target", r.source, "addresses", addrs)
		r.problem = ""
	}
	if !slices.Equal(addrs, r.good) {
		r.logger.Debug("lbclient: dns: endpoints changed", "target", r.source, "addresses", addrs, "before", r.good)
		r.good = addrs
	}
	return err
}

// reportError passes err on to grpc before the first good set; after it,
// the set is kept and err logged once.
func (r *refreshingResolver) reportError(gen uint64, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.current(gen) {
		return
	}
	if r.good == nil {
		r.cc.ReportError(err)
		return
	}
	r.reportLocked(fmt.Sprintf("%v; keeping the last %d addresses", err, len(r.good)))
}

// report logs problem unless it is the one logged last.
func (r *refreshingResolver) report(problem string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reportLocked(problem)
}

func (r *refreshingResolver) reportLocked(problem string) {
	if problem == r.problem {
		return
	}
	r.problem = problem
	r.logger.Warn("lbclient: dns: "+problem, "target", r.source)
}

// stateAddrs returns the sorted addresses of s's endpoints, or of its
// addresses when it lists no endpoints.
func stateAddrs(s resolver.State) []string {
	var out []string
	for _, e := range s.Endpoints {
		for _, a := range e.Addresses {
			out = append(out, a.Addr)
		}
	}
	if len(s.Endpoints) == 0 {
		for _, a := range s.Addresses {
			out = append(out, a.Addr)
		}
	}
	slices.Sort(out)
	return out
}

// refreshCC is the resolver.ClientConn that one inner resolver reports to,
// stamped with the generation it was built under.
type refreshCC struct {
	r   *refreshingResolver
	gen uint64
}

// UpdateState passes s on through the refreshing resolver.
func (c *refreshCC) UpdateState(s resolver.State) error { return c.r.update(c.gen, s) }

// ReportError passes err on through the refreshing resolver.
func (c *refreshCC) ReportError(err error) { c.r.reportError(c.gen, err) }

// NewAddress is the old form of UpdateState.
func (c *refreshCC) NewAddress(addrs []resolver.Address) {
	c.r.update(c.gen, resolver.State{Addresses: addrs})
}

// ParseServiceConfig is grpc's. Dial disables the resolver's service
// config, so grpc-go's dns resolver never asks for it: it looks up TXT
// records only without BuildOptions.DisableServiceConfig (dnsBuilder.Build).
func (c *refreshCC) ParseServiceConfig(js string) *serviceconfig.ParseResult {
	return c.r.cc.ParseServiceConfig(js)
}

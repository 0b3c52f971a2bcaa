package runtime

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/resolver"

	// Client-side health checking (healthCheckConfig) and the policies that
	// grpc-go does not register by default.
	_ "google.golang.org/grpc/balancer/leastrequest"
	_ "google.golang.org/grpc/balancer/weightedroundrobin"
	_ "google.golang.org/grpc/health"

	"github.com/lbclient/lbclient/internal/targets"
	"github.com/lbclient/lbclient/runtime/hedge"
	"github.com/lbclient/lbclient/runtime/internal/lbstats"
	_ "github.com/lbclient/lbclient/runtime/resolver/file"
	_ "github.com/lbclient/lbclient/runtime/resolver/static"
)

// Conn is a client connection dialled by Dial: a grpc.ClientConn with
// lbclient's rules, balancer and interceptors. It implements
// grpc.ClientConnInterface, so generated clients and protoc-gen-go-grpc's
// stubs alike can call through it. It is safe for concurrent use.
type Conn struct {
	cc         *grpc.ClientConn
	target     string
	policy     Policy
	stats      *lbstats.Sink
	unregister func()
	hedger     *hedge.Interceptor // nil when no method hedges
	handshakes *handshakeLog      // nil unless lbclient made the TLS credentials

	closeOnce sync.Once
	closeErr  error
}

// Dial returns a connection to target that applies rules (nil means none)
// and opts; options win over rules. Like grpc.NewClient, on which it builds,
// Dial does no I/O: the connection is made by the first call, or by
// WaitForReady. An empty target means rules.DefaultTarget.
func Dial(target string, rules *ServiceRules, opts ...Option) (*Conn, error) {
	var o options
	for _, opt := range opts {
		if opt == nil {
			return nil, errors.New("lbclient: Dial: nil Option")
		}
		if err := opt.apply(&o); err != nil {
			return nil, err
		}
	}
	if err := o.checkPerRPC(); err != nil {
		return nil, err
	}
	r := effectiveRules(rules, &o)
	if target == "" {
		target = r.DefaultTarget
	}
	if err := checkTarget(target, r.Service, o.resolvers); err != nil {
		return nil, err
	}
	if err := validateRules(r, o.idempotent); err != nil {
		return nil, fmt.Errorf("lbclient: rules of %s: %w", cmp.Or(r.Service, "Dial"), err)
	}
	logger := cmp.Or(o.logger, slog.Default())

	statsID, sink, unregister := lbstats.Register()
	dialled := false
	defer func() {
		if !dialled {
			unregister()
		}
	}()
	sc, err := serviceConfig(r, statsID, o.deterministic)
	if err != nil {
		return nil, err
	}
	c := &Conn{target: target, policy: r.Policy.resolve(), stats: sink, unregister: unregister}

	creds := o.creds
	if creds == nil { // TLS by default; the hint points plaintext servers to WithInsecure
		creds = newTLSWithHints(credentials.NewTLS(nil), "the default")
	}
	if h, ok := creds.(*tlsWithHints); ok {
		c.handshakes = h.log
	}
	dialOpts := append(o.telemetryDialOptions(),
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultServiceConfig(sc),
		grpc.WithResolvers(connResolvers(o.resolvers, r.DNSRefresh, logger)...),
		grpc.WithChainStreamInterceptor(markStream),
	)
	// The rules are the service config. A resolver's own config (DNS TXT
	// records) would replace them, so it is ignored — except for xDS, whose
	// resolver's config is how the control plane routes (see xdsrules.go
	// for what of the rules applies there).
	resolverConfig := resolverOwnsServiceConfig(target)
	if !resolverConfig {
		dialOpts = append(dialOpts, grpc.WithDisableServiceConfig())
	}
	for _, p := range o.perRPC {
		dialOpts = append(dialOpts, grpc.WithPerRPCCredentials(p))
	}
	unary := slices.Clone(o.unary)
	if hedged := hedgedMethods(r); len(hedged) > 0 {
		h, err := hedge.New(hedged, append(o.hedgeBudget, hedge.WithMetricsRecorder(sink.Recorder()))...)
		if err != nil {
			return nil, fmt.Errorf("lbclient: rules of %s: %w", cmp.Or(r.Service, "Dial"), err)
		}
		c.hedger = h
		unary = append(unary, h.UnaryClientInterceptor())
	}
	var rulesStream grpc.StreamClientInterceptor
	if resolverConfig {
		if cr := newCallRules(r); cr != nil {
			unary = append(unary, cr.unary)
			rulesStream = cr.stream
		}
		if skipped := notAppliedUnderXDS(r); len(skipped) > 0 {
			logger.Info("lbclient: the xDS control plane's route and cluster decide these, not the rules", "target", target, "service", r.Service, "rules", strings.Join(skipped, "; "))
		}
	}
	if len(unary) > 0 {
		dialOpts = append(dialOpts, grpc.WithChainUnaryInterceptor(unary...))
	}
	if len(o.stream) > 0 {
		dialOpts = append(dialOpts, grpc.WithChainStreamInterceptor(o.stream...))
	}
	if rulesStream != nil {
		dialOpts = append(dialOpts, grpc.WithChainStreamInterceptor(rulesStream))
	}
	dialOpts = append(dialOpts, o.dialOptions...)

	cc, err := grpc.NewClient(target, dialOpts...)
	if err != nil {
		return nil, fmt.Errorf("lbclient: dial %q: %w", target, err)
	}
	c.cc = cc
	dialled = true
	sink.SetOwner(c) // listed by the debug page (runtime/lbdebug) until Close
	logger.Debug("lbclient: dialled", "target", target, "service", r.Service,
		"policy", r.Policy.resolve().String(), "credentials", cmp.Or(o.credsOption, "TLS (default)"), "serviceConfig", sc)
	return c, nil
}

// effectiveRules applies the options to a copy of rules.
func effectiveRules(rules *ServiceRules, o *options) *ServiceRules {
	var r ServiceRules
	if rules != nil {
		r = *rules
	}
	r.Methods = maps.Clone(r.Methods)
	if o.policy != PolicyUnspecified {
		r.Policy = o.policy
	}
	if o.defaults != nil {
		r.Defaults = *o.defaults
	}
	if o.healthCheck != nil {
		r.HealthCheckService = *o.healthCheck
	}
	if o.subsetSize != nil {
		r.SubsetSize = *o.subsetSize
	}
	if o.dnsRefresh != nil {
		r.DNSRefresh = *o.dnsRefresh
	}
	if len(o.methods) > 0 && r.Methods == nil {
		r.Methods = make(map[string]MethodRules, len(o.methods))
	}
	maps.Copy(r.Methods, o.methods)
	return &r
}

// connResolvers returns the resolvers of one connection: those of
// WithResolver, with the "dns" scheme's made to refresh every interval
// (DefaultDNSRefresh when 0; not at all when negative). The refreshing
// builder wraps the dns builder grpc would have used: the first of
// WithResolver's for the scheme, as grpc.ClientConn picks the first, or else
// the registered one. It serves every target grpc resolves by DNS, bare
// "host:port" ones included (grpc.NewClient's default scheme is "dns").
func connResolvers(given []resolver.Builder, interval time.Duration, logger *slog.Logger) []resolver.Builder {
	if interval < 0 {
		return given
	}
	interval = cmp.Or(interval, DefaultDNSRefresh)
	out := make([]resolver.Builder, 0, len(given)+1)
	var inner resolver.Builder
	for _, b := range given {
		if b.Scheme() == "dns" {
			if inner == nil {
				inner = b
			}
			continue
		}
		out = append(out, b)
	}
	return append(out, newDNSRefreshBuilder(inner, interval, logger))
}

// checkTarget catches the target mistakes that grpc.NewClient would only
// report at the first call, or never: an empty target, an unknown scheme
// (grpc would hand "foo:///x" to DNS as a host name), and a target of a
// built-in scheme whose syntax cannot work (a static list without valid
// addresses, a DNS name with spaces), checked as the generator checks a
// default_target.
func checkTarget(target, service string, extra []resolver.Builder) error {
	if target == "" {
		if service != "" {
			return fmt.Errorf("lbclient: no target for %s: pass one, or annotate the service with (lbclient.v1.service).default_target", service)
		}
		return errors.New("lbclient: no target")
	}
	scheme, explicit := targets.Scheme(target)
	for _, b := range extra {
		if b.Scheme() == scheme {
			return nil // the caller's resolver reads its targets its own way
		}
	}
	if explicit && resolver.Get(scheme) == nil {
		return fmt.Errorf("lbclient: target %q: no resolver for scheme %q (known: dns, unix, passthrough, static, file, and those registered with resolver.Register or WithResolver)", target, scheme)
	}
	if err := targets.Check(target); err != nil {
		return fmt.Errorf("lbclient: target %q: %w", target, err)
	}
	return nil
}

// Invoke performs a unary call. It implements grpc.ClientConnInterface.
func (c *Conn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	return c.cc.Invoke(ctx, method, args, reply, opts...)
}

// NewStream begins a streaming call. It implements grpc.ClientConnInterface.
func (c *Conn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return c.cc.NewStream(ctx, desc, method, opts...)
}

// Target returns the target the connection was dialled with.
func (c *Conn) Target() string { return c.target }

// Policy returns the load-balancing policy the connection was dialled
// with (PeakEWMA for PolicyUnspecified). Under xds:/// targets the control
// plane may choose another.
func (c *Conn) Policy() Policy { return c.policy }

// ClientConn returns the underlying grpc.ClientConn, for APIs that need one
// (grpc's reflection and channelz clients, for example).
func (c *Conn) ClientConn() *grpc.ClientConn { return c.cc }

// State returns the connection's connectivity state.
func (c *Conn) State() connectivity.State { return c.cc.GetState() }

// WaitForReady connects, if the connection is idle, and blocks until it is
// READY or ctx ends. It is the blocking dial of old grpc.Dial, done on a
// connection that exists: the error says what state the connection was
// stuck in and, when the last TLS handshake failed, how (with the hint to
// use WithInsecure when the server answered in plaintext).
func (c *Conn) WaitForReady(ctx context.Context) error {
	for {
		s := c.cc.GetState()
		switch s {
		case connectivity.Ready:
			return nil
		case connectivity.Idle:
			c.cc.Connect()
		case connectivity.Shutdown:
			return fmt.Errorf("lbclient: %s: connection is closed", c.target)
		}
		if !c.cc.WaitForStateChange(ctx, s) {
			if herr := c.handshakes.lastError(); herr != nil && s != connectivity.Ready {
				return fmt.Errorf("lbclient: %s: not ready (%s): %w; the last TLS handshake failed: %v", c.target, s, ctx.Err(), herr)
			}
			return fmt.Errorf("lbclient: %s: not ready (%s): %w", c.target, s, ctx.Err())
		}
	}
}

// EndpointStats is one endpoint's counters, as its balancer keeps them.
type EndpointStats struct {
	// Addr is the endpoint's address.
	Addr string
	// State is its connectivity state.
	State connectivity.State
	// InFlight is the number of calls under way.
	InFlight int64
	// Picks is the number of calls sent to it.
	Picks uint64
	// Failures is the number of calls that failed in a way that counts
	// against the endpoint: UNAVAILABLE and the like, and, under PEAK_EWMA
	// and CONSISTENT_HASH, DEADLINE_EXCEEDED (a timeout).
	Failures uint64
	// Latency is a moving average of the latency of the calls the
	// endpoint answered (an eighth of the way per answer); 0 before its
	// first answer.
	Latency time.Duration
	// Weight is the endpoint's weight as the resolver gave it, under
	// PEAK_EWMA and CONSISTENT_HASH (1 when it gave none); 0 under
	// grpc-go's policies, which do not report it.
	Weight uint32
	// Estimate is the latency estimate that PEAK_EWMA and CONSISTENT_HASH
	// rank the endpoint by, decayed to now (it falls while the endpoint
	// is idle); the default RTT before its first answer. 0 under grpc-go's
	// policies, whose pickers use none.
	Estimate time.Duration
	// Ejected reports whether the endpoint is ejected under PEAK_EWMA or
	// CONSISTENT_HASH: its failures or timeouts in a row reached the
	// ejection threshold, and calls pass it by, but for probes, until it
	// answers.
	Ejected bool
	// Ejections is the number of times the endpoint was ejected.
	Ejections uint64
	// Probes is the number of probe calls it got: calls sent to measure
	// it again while it was avoided or ejected.
	Probes uint64
}

// Endpoints returns a snapshot of the connection's endpoints, sorted by
// address. It is empty until the balancer has heard from the resolver.
func (c *Conn) Endpoints() []EndpointStats {
	eps := c.stats.Endpoints()
	out := make([]EndpointStats, len(eps))
	for i, e := range eps {
		out[i] = EndpointStats(e)
	}
	slices.SortFunc(out, func(a, b EndpointStats) int { return strings.Compare(a.Addr, b.Addr) })
	return out
}

// Stats are the connection's call-level counters.
type Stats struct {
	// Hedging counts the hedging interceptor's work; zero when no method
	// hedges.
	Hedging hedge.Stats
}

// Stats returns the connection's call-level counters.
func (c *Conn) Stats() Stats {
	var s Stats
	if c.hedger != nil {
		s.Hedging = c.hedger.Stats()
	}
	return s
}

// Close tears the connection down. Calls under way fail with CANCELED.
// Close is idempotent, as net/http's closers are: the first call closes and
// returns what closing returned, and later calls do nothing and return nil,
// so that a deferred Close after an explicit one reports no error.
func (c *Conn) Close() error {
	first := false
	c.closeOnce.Do(func() {
		first = true
		c.closeErr = c.cc.Close()
		c.unregister()
	})
	if !first {
		return nil
	}
	return c.closeErr
}

// Package hedge is lbclient's hedging interceptor: a unary client
// interceptor that, when an answer is slow, sends further attempts of the
// same call to other backends and takes the first answer. grpc-go ignores
// the hedgingPolicy of the service config; this package implements it, after
// gRFC A6, outside the engine.
//
//	hi, err := hedge.New(map[string]hedge.Policy{
//		"/greeter.v1.Greeter/SayHello": {MaxAttempts: 3, DelayPercentile: 95},
//		"/greeter.v1.Greeter/Lookup":   {MaxAttempts: 2, Delay: 50 * time.Millisecond,
//			NonFatalCodes: []codes.Code{codes.Unavailable}},
//	})
//	cc, err := grpc.NewClient(target, grpc.WithChainUnaryInterceptor(hi.UnaryClientInterceptor()), ...)
//
// Only idempotent methods may be hedged: a call may run on several backends.
// lbclient's generated code and runtime.Dial build the Interceptor from the
// rules in the .proto annotations; this package does not import the runtime.
// On a runtime.Conn, give hedging as rules (runtime.WithMethodRules, with
// runtime.WithIdempotent for a method whose .proto does not mark it), where
// Dial checks it and Conn.Stats reports it, rather than passing an
// Interceptor to runtime.WithUnaryInterceptors, which does neither.
//
// # A hedged call
//
// The first attempt is sent at once. While no attempt has answered, a
// further attempt is sent after each delay, up to MaxAttempts in all. The
// first attempt to end with OK, or with a status not in NonFatalCodes, wins:
// the call returns its result and the other attempts are cancelled at once.
// An attempt that ends with a non-fatal status does not end the call; the
// next attempt is then sent at once rather than after the delay (gRFC A6).
// When every attempt has ended with a non-fatal status, the call returns the
// status of the last one to end: it is the freshest word from the backends,
// and the one gRPC's own retries would return.
//
// The call returns only once every attempt has returned (the losers are
// cancelled first, so this is prompt), so that no attempt outlives the call:
// the caller may reuse the request and the reply, and no goroutine is left.
//
// Every attempt runs the rest of the interceptor chain and the invoker, so
// interceptors placed after this one, per-RPC credentials and stats handlers
// see each attempt. Every attempt's context derives from the caller's: it
// carries the caller's outgoing metadata and deadline, and one shared
// *callinfo.Attempts, through which lbclient's pickers send each attempt to
// an endpoint that the call has not tried yet. No attempt starts once the
// caller's context is done.
//
// Each attempt but the first receives into a new message of the reply's
// type; the winner's is copied into the caller's reply (proto.Reset, then
// proto.Merge). The request is shared by the attempts and must not be
// modified while the call runs, as with any gRPC call.
//
// Call options go to every attempt, except these, which are handled so that
// they describe the call: grpc.Header, grpc.Trailer and grpc.Peer are
// filled from the attempt whose result the call returns, and grpc.OnFinish
// runs once, with the call's error. Replies that are not proto messages, and
// methods without a Policy, pass straight through, unhedged.
//
// # Delay
//
// Policy.Delay fixes the delay. Policy.DelayPercentile makes it adaptive:
// that percentile of the latency of the method's first attempts over its
// last 1000 to 2000 calls, read from a log-linear histogram of constant size
// (see estimator.go), clamped to [WithDelayBounds' min, max] (default 1ms to
// 10s). Until 100 latencies have been seen the fallback delay applies
// (WithFallbackDelay, default 100ms, clamped to the same bounds).
//
// The estimator sees first attempts only, since the delay is how long to
// wait for a first attempt. A first attempt that succeeds gives its latency;
// one cancelled because another attempt won gives the time it had run, a
// lower bound of its latency. Without those lower bounds the slowest first
// attempts, cut short by the hedges they caused, would never be seen, and
// the percentile would sink, hedge earlier, and sink again. Failed attempts
// give nothing.
//
// # Budget
//
// Extra attempts draw on a token bucket shared by all the methods of an
// Interceptor (WithBudget, default ratio 0.1, burst 20): it starts with
// burst tokens, every call of a hedged method adds ratio tokens (up to
// burst), and every extra attempt takes one. When less than one token is
// left the call sends no further attempts, and goes on with those it has
// sent. Over any n calls, extra attempts ≤ burst + ratio×n.
//
// # Metrics
//
// With WithMetricsRecorder the Interceptor records three counters through
// grpc-go's metrics registry (google.golang.org/grpc/experimental/stats),
// each labelled with the channel's canonical target (grpc.target) and the
// method (grpc.method): lbclient.hedge.attempts (extra attempts sent),
// lbclient.hedge.wins (calls answered with OK by an extra attempt) and
// lbclient.hedge.budget_exhausted (extra attempts not sent for want of
// budget). They equal the ExtraAttempts, HedgeWins and BudgetDenied of
// Stats. Each is recorded when it happens: on an extra attempt, which
// already starts a goroutine and a reply, or at the end of a call an extra
// attempt won; a call that is not hedged records nothing.
package hedge

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	estats "google.golang.org/grpc/experimental/stats"
	"google.golang.org/protobuf/proto"
)

// maxAttempts is the most attempts a call may make (gRFC A6 caps it at 5).
const maxAttempts = 5

// Defaults of the options.
const (
	DefaultBudgetRatio = 0.1
	// DefaultBudgetBurst is 20 so that a spike in which every call of a
	// client with a dozen or two calls in flight needs a hedge at once (a
	// backend that hangs under them, a stall of the client itself) is
	// hedged whole: with 10, a hang under 16 callers left some calls
	// stuck on the hung backend unhedged until their deadline.
	DefaultBudgetBurst   = 20
	DefaultMinDelay      = time.Millisecond
	DefaultMaxDelay      = 10 * time.Second
	DefaultFallbackDelay = 100 * time.Millisecond
)

// Time sits behind package variables so that tests can control it.
var (
	now       = time.Now
	afterFunc = func(d time.Duration, f func()) stopper { return time.AfterFunc(d, f) }
)

// stopper is a timer that can be stopped: *time.Timer.
type stopper interface{ Stop() bool }

// Option configures an Interceptor.
type Option func(*config)

type config struct {
	ratio              float64
	burst              int
	minDelay, maxDelay time.Duration
	fallback           time.Duration
	rec                estats.MetricsRecorder
}

// WithMetricsRecorder makes the Interceptor record the lbclient.hedge.*
// metrics (see the package comment) through rec. lbclient's runtime passes
// a recorder that forwards to the channel's own, so that the metrics reach
// the stats handlers that record grpc-go's (the OpenTelemetry plugin of
// runtime.WithMeterProvider, for one).
func WithMetricsRecorder(rec estats.MetricsRecorder) Option {
	return func(c *config) { c.rec = rec }
}

// WithBudget bounds hedging: each call of a hedged method earns ratio
// tokens, up to burst; each extra attempt spends one. Ratio is 0 to 1000
// (0 leaves only the first burst extra attempts), burst is 1 to 1000.
// The default is WithBudget(0.1, 20): hedging adds at most 10% to the
// load, plus a burst of 20 extra attempts.
func WithBudget(ratio float64, burst int) Option {
	return func(c *config) { c.ratio, c.burst = ratio, burst }
}

// WithDelayBounds bounds the adaptive delay of DelayPercentile policies;
// 0 < min ≤ max. The default is 1ms to 10s. Fixed delays are not bounded.
func WithDelayBounds(min, max time.Duration) Option {
	return func(c *config) { c.minDelay, c.maxDelay = min, max }
}

// WithFallbackDelay sets the delay of DelayPercentile policies while a
// method has too few latencies for a percentile (fewer than 100); > 0,
// clamped to the delay bounds. The default is 100ms.
func WithFallbackDelay(d time.Duration) Option {
	return func(c *config) { c.fallback = d }
}

func (c *config) validate() error {
	switch {
	case math.IsNaN(c.ratio) || c.ratio < 0 || c.ratio > 1000:
		return fmt.Errorf("hedge: WithBudget ratio is %v, want 0 to 1000", c.ratio)
	case c.burst < 1 || c.burst > 1000:
		return fmt.Errorf("hedge: WithBudget burst is %d, want 1 to 1000", c.burst)
	case c.minDelay <= 0 || c.maxDelay < c.minDelay:
		return fmt.Errorf("hedge: WithDelayBounds is %v to %v, want 0 < min ≤ max", c.minDelay, c.maxDelay)
	case c.fallback <= 0:
		return fmt.Errorf("hedge: WithFallbackDelay is %v, want more than 0", c.fallback)
	case c.rec == nil:
		return fmt.Errorf("hedge: WithMetricsRecorder: nil recorder")
	}
	return nil
}

// Interceptor hedges the unary calls of the methods it has a Policy for.
// It is safe for concurrent use.
type Interceptor struct {
	methods map[string]*method
	budget  *budget
	rec     estats.MetricsRecorder // never nil
}

// method is the state of one hedged method.
type method struct {
	maxAttempts int
	delay       time.Duration // the fixed delay; 0 when adaptive
	timeout     time.Duration // bounds the whole call; 0 for none
	nonFatal    uint32        // bit c is set when code c is non-fatal
	est         *estimator    // nil when the delay is fixed
	minDelay    time.Duration
	maxDelay    time.Duration
	fallback    time.Duration

	calls, hedged, extra, wins, denied atomic.Uint64
}

// New returns an Interceptor that hedges the methods in methods, keyed by
// full method name ("/package.Service/Method"), each by its Policy. It
// reports the first invalid method name, Policy or option.
func New(methods map[string]Policy, opts ...Option) (*Interceptor, error) {
	cfg := config{
		ratio:    DefaultBudgetRatio,
		burst:    DefaultBudgetBurst,
		minDelay: DefaultMinDelay,
		maxDelay: DefaultMaxDelay,
		fallback: DefaultFallbackDelay,
		rec:      noMetrics{},
	}
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	i := &Interceptor{
		methods: make(map[string]*method, len(methods)),
		budget:  newBudget(cfg.ratio, cfg.burst),
		rec:     cfg.rec,
	}
	// Validate in a fixed order so that the error is the same every time.
	for _, name := range slices.Sorted(maps.Keys(methods)) {
		p := methods[name]
		if err := validateMethod(name); err != nil {
			return nil, err
		}
		if err := p.Validate(); err != nil {
			return nil, fmt.Errorf("hedge: method %q: %s", name, strings.TrimPrefix(err.Error(), "hedge: "))
		}
		m := &method{
			maxAttempts: p.MaxAttempts,
			delay:       p.Delay,
			timeout:     p.Timeout,
			minDelay:    cfg.minDelay,
			maxDelay:    cfg.maxDelay,
			fallback:    min(max(cfg.fallback, cfg.minDelay), cfg.maxDelay),
		}
		for _, c := range p.NonFatalCodes {
			m.nonFatal |= 1 << c
		}
		if p.DelayPercentile > 0 {
			m.est = newEstimator(p.DelayPercentile)
		}
		i.methods[name] = m
	}
	return i, nil
}

// UnaryClientInterceptor returns the interceptor, to be installed with
// grpc.WithChainUnaryInterceptor (or runtime.WithUnaryInterceptors). Place
// it before interceptors that should see each attempt, after those that
// should see the call once.
func (i *Interceptor) UnaryClientInterceptor() grpc.UnaryClientInterceptor {
	return i.intercept
}

func (i *Interceptor) intercept(ctx context.Context, fullMethod string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	m := i.methods[fullMethod]
	if m == nil {
		return invoker(ctx, fullMethod, req, reply, cc, opts...)
	}
	rep, ok := reply.(proto.Message)
	if !ok {
		return invoker(ctx, fullMethod, req, reply, cc, opts...)
	}
	return i.hedge(ctx, m, fullMethod, req, rep, cc, invoker, opts)
}

// isNonFatal reports whether code c lets the other attempts go on.
func (m *method) isNonFatal(c codes.Code) bool {
	return c <= maxCode && m.nonFatal&(1<<c) != 0
}

// hedgeDelay returns the delay before each further attempt of a call.
func (m *method) hedgeDelay() time.Duration {
	if m.est == nil {
		return m.delay
	}
	d, ok := m.est.Estimate()
	if !ok {
		return m.fallback
	}
	return min(max(d, m.minDelay), m.maxDelay)
}

// Counters count the calls of hedged methods; methods without a Policy are
// not counted.
type Counters struct {
	// Calls is the number of calls.
	Calls uint64
	// Hedged is the number of calls that sent at least one extra attempt.
	Hedged uint64
	// ExtraAttempts is the number of attempts sent beyond the first.
	ExtraAttempts uint64
	// HedgeWins is the number of calls answered with OK by an extra
	// attempt.
	HedgeWins uint64
	// BudgetDenied is the number of extra attempts not sent because the
	// budget was spent (at most one per call: a denied call stops hedging).
	BudgetDenied uint64
}

func (c *Counters) add(o Counters) {
	c.Calls += o.Calls
	c.Hedged += o.Hedged
	c.ExtraAttempts += o.ExtraAttempts
	c.HedgeWins += o.HedgeWins
	c.BudgetDenied += o.BudgetDenied
}

// MethodStats are the counters of one method and its current delay.
type MethodStats struct {
	Counters
	// Delay is the delay the next call would wait before hedging: the
	// fixed delay, or the current adaptive one.
	Delay time.Duration
}

// Stats are an Interceptor's counters, in total and per method.
type Stats struct {
	Counters
	// Methods holds every hedged method's stats, by full method name.
	Methods map[string]MethodStats
}

// Stats returns a snapshot of the counters. Counters of one call are
// updated as the call goes, so a snapshot taken while calls run may count
// a call in Calls and not yet in HedgeWins.
func (i *Interceptor) Stats() Stats {
	s := Stats{Methods: make(map[string]MethodStats, len(i.methods))}
	for name, m := range i.methods {
		ms := MethodStats{
			Counters: Counters{
				Calls:         m.calls.Load(),
				Hedged:        m.hedged.Load(),
				ExtraAttempts: m.extra.Load(),
				HedgeWins:     m.wins.Load(),
				BudgetDenied:  m.denied.Load(),
			},
			Delay: m.hedgeDelay(),
		}
		s.Methods[name] = ms
		s.add(ms.Counters)
	}
	return s
}

// noMetrics is the recorder of an Interceptor without WithMetricsRecorder.
type noMetrics struct {
	estats.UnimplementedMetricsRecorder
}

// record adds one to counter h for the call's method on cc's target.
func (i *Interceptor) record(h *estats.Int64CountHandle, cc *grpc.ClientConn, method string) {
	var target string
	if cc != nil {
		target = cc.CanonicalTarget()
	}
	h.Record(i.rec, 1, target, method)
}

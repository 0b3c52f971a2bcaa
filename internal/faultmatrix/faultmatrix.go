// Package faultmatrix measures how each load-balancing policy behaves when
// one backend of a fleet misbehaves: hung, hung mid-run, half-open, ten
// times slower, failing fast, cold, or beside long streams. A cell of the
// matrix is one scenario, one client variant and a number of callers, run
// on a fleet of its own (example/backend on 127.0.0.1) with a closed-loop
// load (example/loadgen) for a fixed time; its Outcome counts calls, lost
// calls and calls per backend, and keeps every latency.
//
// The goals (Goals, Check) are data, so that the root module's test and the
// benchmark harness judge outcomes the same way: the test asserts the goals
// that rest on counts and shares, the harness also those that rest on
// latencies.
package faultmatrix

import (
	"fmt"
	"math"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/lbclient/lbclient/example/loadgen"
	"github.com/lbclient/lbclient/runtime"
)

// Scenario is what the odd backend, the last of the fleet, does.
type Scenario string

// The scenarios.
const (
	// Hung: the odd backend holds every unary call until its deadline,
	// from the start.
	Hung Scenario = "hung"
	// HangsMidRun: the odd backend becomes hung at half the run.
	HangsMidRun Scenario = "hangs mid-run"
	// HalfOpen: the odd address accepts TCP connections and never answers.
	HalfOpen Scenario = "half-open"
	// Slow: the odd backend takes SlowFactor times the fast delay.
	Slow Scenario = "10× slow"
	// FailsFast: the odd backend answers UNAVAILABLE to every unary call
	// from half the run on.
	FailsFast Scenario = "fails fast"
	// Identical: every backend is healthy.
	Identical Scenario = "identical"
	// Streams: every backend is healthy, and Watch streams run beside the
	// unary calls for the whole run.
	Streams Scenario = "streams"
	// ColdStart: the odd backend's first ColdCalls unary calls take
	// SlowFactor times the fast delay.
	ColdStart Scenario = "cold start"
)

// Scenarios are every scenario, in report order.
var Scenarios = []Scenario{Hung, HangsMidRun, HalfOpen, Slow, FailsFast, Identical, Streams, ColdStart}

// HasOdd reports whether the scenario has a misbehaving backend.
func (s Scenario) HasOdd() bool { return s != Identical && s != Streams }

// Variant is one client configuration.
type Variant struct {
	Name   string
	Policy runtime.Policy
	Hedge  bool // SayHello hedged (HedgingRules)
	Keys   bool // every call carries a hash key from a Zipf stream (ZipfKeys)
	// Baseline marks grpc-go's own policies, printed beside lbclient's for
	// comparison; no goal applies to them.
	Baseline bool
}

// The variants.
var (
	RoundRobin     = Variant{Name: "round_robin", Policy: runtime.RoundRobin, Baseline: true}
	LeastRequest   = Variant{Name: "least_request", Policy: runtime.LeastRequest, Baseline: true}
	PeakEWMA       = Variant{Name: "PEAK_EWMA", Policy: runtime.PeakEWMA}
	PeakEWMAHedged = Variant{Name: "PEAK_EWMA + hedging", Policy: runtime.PeakEWMA, Hedge: true}
	HashKeyed      = Variant{Name: "CONSISTENT_HASH keyed", Policy: runtime.ConsistentHash, Keys: true}
	HashKeyless    = Variant{Name: "CONSISTENT_HASH keyless", Policy: runtime.ConsistentHash}
)

// Variants are every variant, in report order: the baselines, then
// lbclient's.
var Variants = []Variant{RoundRobin, LeastRequest, PeakEWMA, PeakEWMAHedged, HashKeyed, HashKeyless}

// Lbclient are the variants on lbclient's own policies, those the goals
// are about.
var Lbclient = []Variant{PeakEWMA, PeakEWMAHedged, HashKeyed, HashKeyless}

// Callers are the numbers of concurrent callers of the matrix.
var Callers = []int{1, 16}

// HedgingRules are the SayHello rules of the hedged variant: two attempts,
// the second after the 97th percentile of recent latency, UNAVAILABLE not
// fatal (SayHello's annotation, without its timeout: the caller's context
// carries the deadline).
var HedgingRules = runtime.MethodRules{Hedging: &runtime.HedgingPolicy{
	MaxAttempts: 2, DelayPercentile: 97, NonFatalCodes: []codes.Code{codes.Unavailable},
}}

// Cell is one run of the matrix.
type Cell struct {
	Scenario Scenario
	Variant  Variant
	Callers  int
}

func (c Cell) String() string {
	return fmt.Sprintf("%s, %s, %s", c.Scenario, c.Variant.Name, CallersString(c.Callers))
}

// CallersString is "1 caller" or "n callers".
func CallersString(n int) string {
	if n == 1 {
		return "1 caller"
	}
	return fmt.Sprintf("%d callers", n)
}

// Config sizes the cells.
type Config struct {
	Backends   int           // N, the fleet's size; the last backend is the odd one
	Fast       time.Duration // delay of a healthy backend's unary call
	SlowFactor int           // the slow backend's and the cold calls' delay, in Fast
	Deadline   time.Duration // of every unary call
	Duration   time.Duration // of a cell's load; mid-run faults start at half of it
	// ColdDuration is the duration of a cold-start cell, long enough to
	// see the odd backend back to its share; 0 means Duration.
	ColdDuration time.Duration
	// HungDuration, when set, is the duration of the hung cells.
	HungDuration time.Duration
	MaxCalls     int // bound of a cell's calls, beside its duration

	Streamers      int           // goroutines opening Watch streams in Streams
	StreamCount    uint32        // messages per stream
	StreamInterval time.Duration // the backends' wait before each message

	ColdCalls int           // slow calls of the cold backend
	Bucket    time.Duration // width of the timeline's buckets

	ReadyTimeout time.Duration // bound of the wait for READY backends
	Seed         uint64        // of the hash keys
}

// DefaultConfig is the benchmark's configuration: 1 ms backends, cells of
// 1.25 s (cold start: 2.75 s, to see a recovery of up to 2 s with time to
// spare), so that 3 rounds of the 96 cells take about 8 minutes.
func DefaultConfig() Config {
	return Config{Backends: 4, Fast: time.Millisecond, SlowFactor: 10, Deadline: 300 * time.Millisecond,
		Duration: 1250 * time.Millisecond, ColdDuration: 2750 * time.Millisecond, MaxCalls: 200_000,
		Streamers: 4, StreamCount: 10, StreamInterval: 50 * time.Millisecond,
		ColdCalls: 5, Bucket: 250 * time.Millisecond, ReadyTimeout: 10 * time.Second, Seed: 1}
}

// TestConfig is the configuration of the root module's test, which runs
// under the race detector on a loaded 2-core machine, where a call spends
// a few milliseconds in the client alone: 5 ms backends (50 ms slow), so
// that the slow one is still several times slower than a fast one as the
// client sees them, and cells of 2 s (cold start: 4 s, so that its second
// half begins at the 2 s of the recovery goal; hung: 5 s, since a lone
// caller makes only a few hundred calls, and a hung backend costs it its
// first call and a probe or two whatever the cell's length).
func TestConfig() Config {
	return Config{Backends: 4, Fast: 5 * time.Millisecond, SlowFactor: 10, Deadline: 300 * time.Millisecond,
		Duration: 2 * time.Second, ColdDuration: 4 * time.Second, HungDuration: 5 * time.Second, MaxCalls: 50_000,
		Streamers: 4, StreamCount: 10, StreamInterval: 20 * time.Millisecond,
		ColdCalls: 5, Bucket: 250 * time.Millisecond, ReadyTimeout: 10 * time.Second, Seed: 1}
}

// duration is the load's duration in sc.
func (c Config) duration(sc Scenario) time.Duration {
	switch {
	case sc == ColdStart && c.ColdDuration > 0:
		return c.ColdDuration
	case (sc == Hung || sc == HangsMidRun) && c.HungDuration > 0:
		return c.HungDuration
	}
	return c.Duration
}

// Outcome is what one cell measured. The embedded loadgen.Result holds the
// unary calls' latencies (sorted, lost calls included), the answered calls
// per backend, the lost calls (Errors), the first error and the elapsed
// time; its Percentile and Share read them.
type Outcome struct {
	Cell
	loadgen.Result
	Backends []string      // names, backend-1 to backend-N
	Odd      string        // the misbehaving backend's name; "" when none misbehaves
	Duration time.Duration // the load's configured duration
	Extra    uint64        // hedging's extra attempts during the run
	Buckets  []Bucket      // the run's timeline, from its start
	// Recovery is, in ColdStart, the time from the run's start after which
	// the odd backend's share of answered calls is at least 0.6/N in every
	// bucket; Recovered is false when even the last bucket is short of it.
	Recovery  time.Duration
	Recovered bool
	Streams   int // Watch streams that ran to their end (Streams)
}

// Bucket counts the calls that started within one slice of the run.
type Bucket struct {
	Start    time.Duration // from the run's start
	Answered []int         // per backend, in Outcome.Backends' order
	Lost     int
}

// Calls is the number of unary calls made.
func (o Outcome) Calls() int { return len(o.Latencies) }

// Lost is the number of unary calls that ended in an error.
func (o Outcome) Lost() int { return o.Errors }

// LostRatio is lost calls per call made.
func (o Outcome) LostRatio() float64 { return ratio(float64(o.Errors), float64(o.Calls())) }

// OddShare is the odd backend's share of answered calls; 0 when there is
// no odd backend.
func (o Outcome) OddShare() float64 {
	if o.Odd == "" {
		return 0
	}
	return o.Share(o.Odd)
}

// RecoverySeconds is Recovery in seconds, +Inf when the odd backend was
// not back to its share within the run.
func (o Outcome) RecoverySeconds() float64 {
	if !o.Recovered {
		return math.Inf(1)
	}
	return o.Recovery.Seconds()
}

// ExtraRatio is hedging's extra attempts per call made.
func (o Outcome) ExtraRatio() float64 { return ratio(float64(o.Extra), float64(o.Calls())) }

// FairShare is 1/N.
func (o Outcome) FairShare() float64 { return 1 / float64(len(o.Backends)) }

// ShareRange is the smallest and largest share of answered calls over the
// backends.
func (o Outcome) ShareRange() (lo, hi float64) {
	lo, hi = 1, 0
	for _, b := range o.Backends {
		s := o.Share(b)
		lo, hi = min(lo, s), max(hi, s)
	}
	return lo, hi
}

// ShareDeviation is the largest distance of a backend's share from the fair
// share, in fair shares: 0.4 means some backend got 0.6/N or 1.4/N.
func (o Outcome) ShareDeviation() float64 {
	lo, hi := o.ShareRange()
	f := o.FairShare()
	return max(f-lo, hi-f) / f
}

// OddShareSince is the odd backend's share of the answered calls that
// started at from or later.
func (o Outcome) OddShareSince(from time.Duration) float64 {
	odd, total := 0, 0
	for _, b := range o.Buckets {
		if b.Start < from {
			continue
		}
		for i, n := range b.Answered {
			total += n
			if o.Backends[i] == o.Odd {
				odd += n
			}
		}
	}
	return ratio(float64(odd), float64(total))
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

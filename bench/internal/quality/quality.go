// Package quality measures how well each policy picks: a closed-loop load
// (example/loadgen) on four Greeter backends on 127.0.0.1, all healthy, one
// ten times slower, or one that starts failing with UNAVAILABLE mid-run.
package quality

import (
	"context"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/lbclient/lbclient/example/backend"
	"github.com/lbclient/lbclient/example/loadgen"
	greeterv1 "github.com/lbclient/lbclient/gen/greeter/v1"
	"github.com/lbclient/lbclient/gen/greeter/v1/greeterv1lbclient"
	"github.com/lbclient/lbclient/internal/faultmatrix"
	"github.com/lbclient/lbclient/runtime"
)

// Scenario is the state of the fleet.
type Scenario string

// The scenarios.
const (
	Healthy Scenario = "all healthy"
	Skewed  Scenario = "one 10× slower"
	Failing Scenario = "one starts failing"
)

// Scenarios are every scenario, in report order.
var Scenarios = []Scenario{Healthy, Skewed, Failing}

// Variant is one client configuration.
type Variant struct {
	Name   string
	Policy runtime.Policy
	Hedge  bool // SayHello hedged: 2 attempts, adaptive p97 delay
	Keys   bool // calls carry hash keys from a Zipf stream
}

// Variants are the clients compared, in report order.
var Variants = []Variant{
	{Name: "round_robin", Policy: runtime.RoundRobin},
	{Name: "least_request", Policy: runtime.LeastRequest},
	{Name: "PEAK_EWMA", Policy: runtime.PeakEWMA},
	{Name: "PEAK_EWMA + hedging p97", Policy: runtime.PeakEWMA, Hedge: true},
	{Name: "CONSISTENT_HASH (Zipf keys)", Policy: runtime.ConsistentHash, Keys: true},
}

// HedgingRules are the rules of the hedged variant: those of SayHello's
// annotation (two attempts, adaptive p97 delay, UNAVAILABLE not fatal),
// without its timeout, so that latencies are not cut.
var HedgingRules = runtime.MethodRules{Hedging: &runtime.HedgingPolicy{
	MaxAttempts: 2, DelayPercentile: 97, NonFatalCodes: []codes.Code{codes.Unavailable},
}}

// Config sizes a run.
type Config struct {
	Backends    int
	Fast, Slow  time.Duration // delay of each backend, and of the slow one
	Calls       int           // measured calls per run
	Warmup      int           // calls before measuring, not counted
	Workers     int           // concurrent callers
	FailAt      int           // in Failing, the measured call after which the last backend fails
	MaxDuration time.Duration // bound of each load
	Seed        uint64        // of the key stream
}

// DefaultConfig is the configuration of the report.
func DefaultConfig() Config {
	return Config{Backends: 4, Fast: time.Millisecond, Slow: 10 * time.Millisecond,
		Calls: 10000, Warmup: 500, Workers: 8, FailAt: 2500, MaxDuration: time.Minute, Seed: 1}
}

// Outcome is one run of one variant in one scenario.
type Outcome struct {
	Scenario Scenario
	Variant  Variant
	loadgen.Result
	Backends []string // names, in order
	Odd      string   // the slow or failing backend; "" when all are healthy
	Extra    uint64   // extra attempts of hedging during the measured calls
	Calls    int
}

// ExtraRatio is extra attempts per measured call.
func (o Outcome) ExtraRatio() float64 { return float64(o.Extra) / float64(o.Calls) }

// Run runs v in sc once, on a fleet of its own.
func Run(ctx context.Context, sc Scenario, v Variant, cfg Config) (Outcome, error) {
	fleet := make([]*backend.Backend, 0, cfg.Backends)
	defer func() {
		for _, b := range fleet {
			b.Stop()
		}
	}()
	addrs := make([]string, 0, cfg.Backends)
	names := make([]string, 0, cfg.Backends)
	for i := range cfg.Backends {
		b, err := backend.Start(fmt.Sprintf("backend-%d", i+1), "127.0.0.1:0")
		if err != nil {
			return Outcome{}, err
		}
		b.SetDelay(cfg.Fast)
		fleet = append(fleet, b)
		addrs = append(addrs, b.Addr())
		names = append(names, b.Name())
	}
	odd := fleet[len(fleet)-1]
	out := Outcome{Scenario: sc, Variant: v, Backends: names, Calls: cfg.Calls}
	if sc != Healthy {
		out.Odd = odd.Name()
	}
	if sc == Skewed {
		odd.SetDelay(cfg.Slow)
	}

	opts := []runtime.Option{runtime.WithInsecure(), runtime.WithPolicy(v.Policy)}
	if v.Hedge {
		opts = append(opts, runtime.WithMethodRules(greeterv1lbclient.GreeterSayHelloFullMethodName, HedgingRules))
	}
	conn, err := runtime.Dial("static:///"+strings.Join(addrs, ","), nil, opts...)
	if err != nil {
		return Outcome{}, err
	}
	defer conn.Close()
	client := greeterv1lbclient.NewGreeterClientFromConn(conn)
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = conn.WaitForReady(wctx)
	cancel()
	if err != nil {
		return Outcome{}, err
	}

	var keys []string
	if v.Keys {
		keys = faultmatrix.ZipfKeys(cfg.Warmup+cfg.Calls, cfg.Seed)
	}
	call := func(offset int) loadgen.Call {
		return func(ctx context.Context, i int) (string, error) {
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			if keys != nil {
				ctx = runtime.WithHashKey(ctx, keys[offset+i])
			}
			r, err := client.SayHello(ctx, &greeterv1.HelloRequest{Name: "bench"})
			return r.GetBackend(), err
		}
	}
	if cfg.Warmup > 0 {
		warm := loadgen.Load{Calls: cfg.Warmup, Workers: cfg.Workers, MaxDuration: cfg.MaxDuration}
		if _, err := warm.Run(ctx, call(0)); err != nil {
			return Outcome{}, err
		}
	}
	before := conn.Stats().Hedging.ExtraAttempts
	load := loadgen.Load{Calls: cfg.Calls, Workers: cfg.Workers, MaxDuration: cfg.MaxDuration}
	if sc == Failing {
		load.Between = func(i int) {
			if i == cfg.FailAt {
				odd.SetFailing(true)
			}
		}
	}
	res, err := load.Run(ctx, call(cfg.Warmup))
	if err != nil {
		return Outcome{}, err
	}
	out.Result = res
	out.Extra = conn.Stats().Hedging.ExtraAttempts - before
	return out, nil
}

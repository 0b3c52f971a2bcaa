package faultmatrix

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// baselineScenarios are those where round_robin's figures say something:
// the fault shows in them, as lost calls or the slow backend's share.
var baselineScenarios = []Scenario{Hung, Slow, FailsFast}

// testPairs are the cells TestMatrix runs, by scenario and variant, one
// per number of callers: every lbclient variant in every scenario, and
// round_robin beside where it tells something. least_request is left to
// the benchmark, for time.
func testPairs() [][]Cell {
	var ps [][]Cell
	for _, sc := range Scenarios {
		vs := Lbclient
		if contains(baselineScenarios, sc) {
			vs = append([]Variant{RoundRobin}, Lbclient...)
		}
		for _, v := range vs {
			var p []Cell
			for _, n := range Callers {
				p = append(p, Cell{Scenario: sc, Variant: v, Callers: n})
			}
			ps = append(ps, p)
		}
	}
	return ps
}

func name(sc Scenario, v Variant) string {
	return strings.NewReplacer(" ", "_", "×", "x").Replace(string(sc) + "/" + v.Name)
}

func contains[T comparable](xs []T, x T) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// TestMatrix runs the test-sized matrix and asserts every goal that rests
// on counts and shares (Check with timing off); latencies are logged, never
// asserted. Some goals may not be met by the balancers of the day: each
// failure names its cell, the measured value and the goal.
func TestMatrix(t *testing.T) {
	if testing.Short() {
		t.Skip("the fault matrix runs real servers for about a minute")
	}
	cfg := TestConfig()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	set := Set{}
	var mu sync.Mutex
	start := time.Now()
	// The 1- and 16-caller cells of a scenario and variant run side by
	// side, each on its own fleet and client: the lone caller adds little
	// load, and the pairs halve the test's time, so that the cells can be
	// long enough for their counts to mean something.
	for _, pair := range testPairs() {
		t.Run(name(pair[0].Scenario, pair[0].Variant), func(t *testing.T) {
			for _, c := range pair {
				t.Run(fmt.Sprint(c.Callers), func(t *testing.T) {
					t.Parallel()
					o, err := Run(ctx, c, cfg)
					if err != nil {
						t.Fatal(err)
					}
					checkCounts(t, o)
					mu.Lock()
					set.Add(o)
					mu.Unlock()
				})
			}
		})
	}
	t.Logf("%d cells in %v\n%s", len(set), time.Since(start).Round(time.Millisecond), table(set))
	for _, v := range Check(set, false) {
		switch {
		case v.Missing:
			t.Logf("%v", v) // its cell was filtered out by -run
		case !v.Pass:
			t.Errorf("%v", v)
		default:
			t.Logf("%v", v)
		}
	}
}

// checkCounts checks what must hold in any cell, whatever the policy: the
// calls add up, no hedge without hedging, the healthy scenarios lose
// (almost) no call, and the fault bites round_robin, which does not avoid
// it.
func checkCounts(t *testing.T, o Outcome) {
	t.Helper()
	answered := 0
	for _, n := range o.PerBackend {
		answered += n
	}
	inBuckets := 0
	for _, b := range o.Buckets {
		inBuckets += b.Lost
		for _, n := range b.Answered {
			inBuckets += n
		}
	}
	if o.Calls() == 0 || answered+o.Lost() != o.Calls() || inBuckets != o.Calls() {
		t.Errorf("%s: %d calls, %d answered + %d lost, %d in the timeline", o.Cell, o.Calls(), answered, o.Lost(), inBuckets)
	}
	if !o.Variant.Hedge && o.Extra != 0 {
		t.Errorf("%s: %d extra attempts without hedging", o.Cell, o.Extra)
	}
	switch o.Scenario {
	case Identical, Streams, Slow, ColdStart:
		// Every backend answers well within the deadline; a stall of a
		// loaded machine may cost a call, a broken harness many more.
		if o.LostRatio() > 0.01 {
			t.Errorf("%s: %d of %d calls lost with every backend answering within the deadline; first: %v", o.Cell, o.Lost(), o.Calls(), o.FirstError)
		}
	}
	if o.Scenario == Streams && o.Streams == 0 {
		t.Errorf("%s: no Watch stream ran to its end", o.Cell)
	}
	if o.Scenario == HalfOpen && o.OddShare() != 0 {
		t.Errorf("%s: the half-open address answered %.1f%% of calls", o.Cell, 100*o.OddShare())
	}
	if o.Variant != RoundRobin {
		return
	}
	switch o.Scenario {
	case Hung, FailsFast:
		if o.Lost() == 0 {
			t.Errorf("%s: round_robin lost no call: the fault did not happen", o.Cell)
		}
	case Slow:
		if s := o.OddShare(); s < 0.6*o.FairShare() {
			t.Errorf("%s: round_robin sent the slow backend %.1f%%, want about its turn", o.Cell, 100*s)
		}
	}
}

// table prints one line per cell: counts, shares, latencies (for reading,
// not asserted).
func table(set Set) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-14s %-24s %3s %6s %5s %8s %13s %7s %7s %7s %6s  %s\n",
		"scenario", "variant", "n", "calls", "lost", "odd", "shares", "p50", "p90", "p99", "extra", "")
	for _, p := range testPairs() {
		for _, o := range append(set[p[0]], set[p[1]]...) {
			lo, hi := o.ShareRange()
			odd := "-"
			if o.Odd != "" {
				odd = fmt.Sprintf("%.1f%%", 100*o.OddShare())
			}
			note := ""
			switch o.Scenario {
			case ColdStart:
				note = fmt.Sprintf("second half %.1f%%, recovery %v", 100*o.OddShareSince(o.Duration/2), recoveryString(o))
			case Streams:
				note = fmt.Sprintf("%d streams", o.Streams)
			}
			fmt.Fprintf(&b, "%-14s %-24s %3d %6d %5d %8s %5.1f–%5.1f%% %7s %7s %7s %5.1f%%  %s\n",
				o.Scenario, o.Variant.Name, o.Callers, o.Calls(), o.Lost(), odd, 100*lo, 100*hi,
				ms(o.Percentile(50)), ms(o.Percentile(90)), ms(o.Percentile(99)), 100*o.ExtraRatio(), note)
		}
	}
	return b.String()
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond)) }

func recoveryString(o Outcome) string {
	if !o.Recovered {
		return "none"
	}
	return o.Recovery.String()
}

package main

import (
	"context"
	"fmt"
	"log"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/lbclient/lbclient/bench/internal/chart"
	fm "github.com/lbclient/lbclient/internal/faultmatrix"
)

// faultsChart is the section's chart: latency percentiles with one 10×
// slow backend, 16 callers.
const faultsChart = "faults-10x-slow.svg"

func (r *report) faults() error {
	cfg, reps := fm.DefaultConfig(), 3
	if r.quick {
		cfg.Duration, cfg.ColdDuration, cfg.Deadline = 100*time.Millisecond, 200*time.Millisecond, 100*time.Millisecond
		cfg.Bucket, cfg.StreamCount, cfg.StreamInterval = 50*time.Millisecond, 5, 2*time.Millisecond
		reps = 1
	}
	set, err := runFaults(cfg, reps)
	if err != nil {
		return err
	}
	verdicts := fm.Check(set, true)

	var b strings.Builder
	fmt.Fprintf(&b, "## 4. Fault matrix\n\n")
	fmt.Fprintf(&b, "%d Greeter backends (`example/backend`) on 127.0.0.1, each unary call taking %v; the odd one is backend-%d. ", cfg.Backends, cfg.Fast, cfg.Backends)
	fmt.Fprintf(&b, "Scenarios: **%s** (the odd backend holds every unary call until the caller's deadline), **%s** (it does from half the run on), **%s** (its address accepts TCP connections and never writes a byte; the client is not waited on to connect it), **%s** (it takes %v), **%s** (it answers UNAVAILABLE from half the run on), **%s**, **%s** (%d goroutines keep opening `Watch` streams of %d messages, one every %v, for the whole run; only unary calls are measured), **%s** (its first %d calls take %v). ",
		fm.Hung, fm.HangsMidRun, fm.HalfOpen, fm.Slow, time.Duration(cfg.SlowFactor)*cfg.Fast, fm.FailsFast, fm.Identical,
		fm.Streams, cfg.Streamers, cfg.StreamCount, cfg.StreamInterval, fm.ColdStart, cfg.ColdCalls, time.Duration(cfg.SlowFactor)*cfg.Fast)
	fmt.Fprintf(&b, "Each cell is a fresh fleet and a fresh `runtime.Dial(\"static:///…\", nil, WithInsecure(), WithPolicy(p))` called through the generated `greeterv1lbclient` client, waited on until every real backend is READY and given no warm-up call; a closed loop of 1 or 16 callers (`example/loadgen`) runs for %v (cold start: %v), every `SayHello` with a %v deadline and no retries, so that picking alone shows; a call that errors is lost. ",
		cfg.Duration, cfg.ColdDuration, cfg.Deadline)
	fmt.Fprintf(&b, "Variants: grpc-go's round_robin and least_request as the baseline; PEAK_EWMA; PEAK_EWMA + hedging (SayHello hedged: 2 attempts after the p97 of recent latency, UNAVAILABLE not fatal, default budget); CONSISTENT_HASH with a key per call from a Zipf stream (s = 1.1 over 1000 accounts) and without keys. ")
	fmt.Fprintf(&b, "%d rounds, interleaved (each round runs every cell once, the variants' order rotated); every figure is the median with the min–max over the rounds. The scenarios, variants and goals are `internal/faultmatrix`, whose test (`go test ./internal/faultmatrix`) runs the same matrix at test scale and asserts the goals that rest on counts and shares.\n\n", reps)

	for _, sc := range fm.Scenarios {
		fmt.Fprintf(&b, "### %s\n\n", sc)
		faultsTable(&b, set, sc, cfg)
	}
	if err := faultsChartFile(filepath.Join(r.chartDir, faultsChart), set, reps); err != nil {
		return err
	}
	fmt.Fprintf(&b, "![latency percentiles, one 10× slow backend, 16 callers](bench/charts/%s)\n\n", faultsChart)

	fmt.Fprintf(&b, "### Against the goals\n\n| goal | cell | measured | goal | met? |\n|---|---|---:|---|---|\n")
	for _, v := range verdicts {
		fmt.Fprintf(&b, "| %s | %s, %s, %s | %s | %s | %s |\n", v.Goal.ID, v.Cell.Scenario, v.Cell.Variant.Name, fm.CallersString(v.Cell.Callers), verdictValue(v), v.Goal.Want(), verdictMet(v))
	}
	fmt.Fprintln(&b)
	for _, g := range fm.Goals {
		r.goal("%s", goalRow(g, verdicts))
	}
	faultsReading(&b, set, verdicts, cfg)
	r.add("%s", b.String())
	return nil
}

// runFaults runs every cell reps times, round by round.
func runFaults(cfg fm.Config, reps int) (fm.Set, error) {
	ctx := context.Background()
	set := fm.Set{}
	for rep := range reps {
		t0 := time.Now()
		for _, sc := range fm.Scenarios {
			for i := range fm.Variants {
				v := fm.Variants[(i+rep)%len(fm.Variants)]
				for _, n := range fm.Callers {
					o, err := fm.Run(ctx, fm.Cell{Scenario: sc, Variant: v, Callers: n}, cfg)
					if err != nil {
						return nil, err
					}
					set.Add(o)
				}
			}
		}
		log.Printf("faults: round %d/%d in %v", rep+1, reps, time.Since(t0).Round(time.Second))
	}
	return set, nil
}

// column is one figure of a scenario's table, shown for 1 and 16 callers.
type column struct {
	title string
	cell  func(os []fm.Outcome) string
}

func figure(f func(fm.Outcome) float64, format string) func([]fm.Outcome) string {
	return func(os []fm.Outcome) string { return summaryOf(os, f).Format(format) }
}

func latency(p float64) func([]fm.Outcome) string {
	return figure(func(o fm.Outcome) float64 { return float64(o.Percentile(p)) / float64(time.Millisecond) }, "%.2f")
}

func faultsColumns(sc fm.Scenario) []column {
	cols := []column{
		{"calls", figure(func(o fm.Outcome) float64 { return float64(o.Calls()) }, "%.0f")},
		{"lost", figure(func(o fm.Outcome) float64 { return float64(o.Lost()) }, "%.0f")},
	}
	if sc.HasOdd() {
		cols = append(cols, column{"odd share %", figure(func(o fm.Outcome) float64 { return 100 * o.OddShare() }, "%.1f")})
	} else {
		cols = append(cols, column{"shares %", func(os []fm.Outcome) string {
			lo := summaryOf(os, func(o fm.Outcome) float64 { l, _ := o.ShareRange(); return 100 * l })
			hi := summaryOf(os, func(o fm.Outcome) float64 { _, h := o.ShareRange(); return 100 * h })
			return fmt.Sprintf("%.1f–%.1f", lo.Median, hi.Median)
		}})
	}
	cols = append(cols,
		column{"p50 ms", latency(50)}, column{"p90 ms", latency(90)},
		column{"p99 ms", latency(99)}, column{"p99.9 ms", latency(99.9)},
		column{"extra %", figure(func(o fm.Outcome) float64 { return 100 * o.ExtraRatio() }, "%.1f")})
	if sc == fm.ColdStart {
		cols = append(cols, column{"recovery s", func(os []fm.Outcome) string {
			s := summaryOf(os, fm.Outcome.RecoverySeconds).Format("%.2f")
			return strings.ReplaceAll(s, "+Inf", "∞")
		}})
	}
	return cols
}

// faultsTable writes one scenario's table: a row per variant, each figure
// for 1 and for 16 callers.
func faultsTable(b *strings.Builder, set fm.Set, sc fm.Scenario, cfg fm.Config) {
	cols := faultsColumns(sc)
	fmt.Fprintf(b, "| variant |")
	for _, c := range cols {
		for _, n := range fm.Callers {
			fmt.Fprintf(b, " %s (%d) |", c.title, n)
		}
	}
	fmt.Fprintf(b, "\n|---|%s\n", strings.Repeat("---:|", len(cols)*len(fm.Callers)))
	for _, v := range fm.Variants {
		fmt.Fprintf(b, "| %s |", v.Name)
		for _, c := range cols {
			for _, n := range fm.Callers {
				fmt.Fprintf(b, " %s |", c.cell(set[fm.Cell{Scenario: sc, Variant: v, Callers: n}]))
			}
		}
		fmt.Fprintln(b)
	}
	fmt.Fprintln(b)
	switch {
	case sc == fm.ColdStart:
		fmt.Fprintf(b, "(n) is the number of callers. Recovery is the time from the run's start after which backend-%d's share of answered calls is at least %.0f%% of 1/N in every later %v bucket; ∞: not within the %v run.\n\n",
			cfg.Backends, 100*fm.RecoveredShare, cfg.Bucket, cfg.ColdDuration)
	case !sc.HasOdd():
		fmt.Fprintf(b, "(n) is the number of callers. Shares: the smallest and largest backend's share of answered calls (medians).\n\n")
	default:
		fmt.Fprintf(b, "(n) is the number of callers. Odd share: backend-%d's share of answered calls. Latencies include lost calls.\n\n", cfg.Backends)
	}
}

// faultsChartFile draws the latency percentiles of every variant with one
// 10× slow backend at 16 callers, pooled over the rounds, and PEAK_EWMA's
// on identical backends, dashed, for reference.
func faultsChartFile(path string, set fm.Set, reps int) error {
	var series []chart.Series
	for _, v := range fm.Variants {
		series = append(series, chart.Series{Name: v.Name, Latencies: pooledFaults(set[fm.Cell{Scenario: fm.Slow, Variant: v, Callers: 16}])})
	}
	series = append(series, chart.Series{Name: "PEAK_EWMA, identical backends", Dashed: true,
		Latencies: pooledFaults(set[fm.Cell{Scenario: fm.Identical, Variant: fm.PeakEWMA, Callers: 16}])})
	title := fmt.Sprintf("SayHello latency, one 10× slow backend of 4, 16 callers (%d runs pooled)", reps)
	return chart.Percentiles(path, title, series)
}

func pooledFaults(os []fm.Outcome) []time.Duration {
	var all []time.Duration
	for _, o := range os {
		all = append(all, o.Latencies...)
	}
	slices.Sort(all)
	return all
}

func verdictValue(v fm.Verdict) string {
	if v.Missing {
		return "not measured"
	}
	if v.Rounds <= 1 || v.Min == v.Max {
		return v.Goal.Unit.Format(v.Value)
	}
	return fmt.Sprintf("%s (%s–%s)", v.Goal.Unit.Format(v.Value), v.Goal.Unit.Format(v.Min), v.Goal.Unit.Format(v.Max))
}

func verdictMet(v fm.Verdict) string {
	if v.Missing {
		return "—"
	}
	return yesNo(v.Pass)
}

// goalRow is a goal's line in "Goals at a glance": its worst cell, and how
// many cells meet it.
func goalRow(g *fm.Goal, verdicts []fm.Verdict) string {
	met, n := 0, 0
	var worst *fm.Verdict
	for i, v := range verdicts {
		if v.Goal != g || v.Missing {
			continue
		}
		n++
		if v.Pass {
			met++
		}
		if worst == nil || worse(g, v, *worst) {
			worst = &verdicts[i]
		}
	}
	if worst == nil {
		return fmt.Sprintf("| fault matrix: %s | not measured | — |", g.Text)
	}
	return fmt.Sprintf("| fault matrix: %s (%s) | worst %s (%s); %d of %d cells meet it | %s |",
		g.Text, g.Want(), g.Unit.Format(worst.Value), worst.Cell, met, n, yesNo(met == n))
}

// worse reports whether a is further from meeting g than b.
func worse(g *fm.Goal, a, b fm.Verdict) bool {
	if g.Op == fm.AtLeast {
		return a.Value < b.Value
	}
	return a.Value > b.Value
}

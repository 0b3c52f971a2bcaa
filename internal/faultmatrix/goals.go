package faultmatrix

import (
	"fmt"
	"math"
	"slices"
)

// Op is how a measured value must compare with its goal's threshold.
type Op string

// The comparisons.
const (
	AtMost  Op = "≤"
	Below   Op = "<"
	AtLeast Op = "≥"
)

func (op Op) holds(v, threshold float64) bool {
	switch op {
	case AtMost:
		return v <= threshold
	case Below:
		return v < threshold
	case AtLeast:
		return v >= threshold
	}
	return false
}

// Unit is how a goal's values read.
type Unit int

// The units.
const (
	Percent Unit = iota // a fraction, printed in percent
	Count               // a number of calls
	Times               // a ratio to the reference cell
	Seconds             // a duration in seconds; +Inf is "not within the run"
	OfFair              // a share, in fair shares (1/N)
	OffFair             // a distance from the fair share, in fair shares
)

// Format prints v in unit u.
func (u Unit) Format(v float64) string {
	switch u {
	case Percent:
		return fmt.Sprintf("%.2f%%", 100*v)
	case Count:
		return fmt.Sprintf("%.0f", v)
	case Times:
		return fmt.Sprintf("%.2f×", v)
	case Seconds:
		if math.IsInf(v, 1) {
			return "not within the run"
		}
		return fmt.Sprintf("%.2f s", v)
	case OfFair:
		return fmt.Sprintf("%.0f%% of 1/N", 100*v)
	case OffFair:
		return fmt.Sprintf("%.0f%% off 1/N", 100*v)
	}
	return fmt.Sprint(v)
}

// Goal is one requirement of the matrix, over a set of cells.
type Goal struct {
	ID        string // short and stable, for logs
	Text      string // the requirement in words
	Metric    string // what is measured, as in "lost calls"
	Scenarios []Scenario
	Variants  []Variant
	Callers   []int
	// Measure reads the goal's figure from one round of a cell.
	Measure func(Outcome) float64
	// Ref, when set, is the scenario whose cell of the same variant and
	// callers the figure is compared with: the value judged is then the
	// median of Measure over the cell's rounds divided by its median over
	// the reference's.
	Ref       Scenario
	Op        Op
	Threshold float64
	// TestThreshold, when set, is the threshold of the race-detector test
	// (Check without timing), for a figure that the client's own speed
	// moves: a slow backend's share depends on how much slower than a fast
	// one it looks, and the race detector's cost per call, a few
	// milliseconds, blurs a 10× difference into a 6× one.
	TestThreshold float64
	Unit          Unit
	// Timing marks the goals that rest on latencies (percentiles, the
	// recovery time, hedges sent on a latency percentile): the benchmark
	// checks them; a test, which must not assert timings, does not.
	Timing bool
}

// Want prints the goal's condition, such as "lost calls ≤ 1.00%".
func (g *Goal) Want() string { return g.want(g.Threshold) }

func (g *Goal) want(threshold float64) string {
	return fmt.Sprintf("%s %s %s", g.Metric, g.Op, g.Unit.Format(threshold))
}

// Cells are the cells the goal applies to.
func (g *Goal) Cells() []Cell {
	var cs []Cell
	for _, sc := range g.Scenarios {
		for _, v := range g.Variants {
			for _, n := range g.Callers {
				cs = append(cs, Cell{Scenario: sc, Variant: v, Callers: n})
			}
		}
	}
	return cs
}

// ShareTolerance is how far, in fair shares, a backend's share may be from
// 1/N when every backend is alike: within [0.6/N, 1.4/N].
const ShareTolerance = 0.4

func lost(o Outcome) float64 { return float64(o.Lost()) }

// smallest is the smallest share of a backend, in fair shares.
func smallest(o Outcome) float64 {
	lo, _ := o.ShareRange()
	return lo / o.FairShare()
}

func percentile(p float64) func(Outcome) float64 {
	return func(o Outcome) float64 { return float64(o.Percentile(p)) }
}

func oddShareSecondHalf(o Outcome) float64 {
	return o.OddShareSince(o.Duration/2) / o.FairShare()
}

var (
	hungScenarios = []Scenario{Hung, HangsMidRun}
	bothCallers   = []int{1, 16}
	pe            = []Variant{PeakEWMA}
)

// Goals are the matrix's goals. round_robin and least_request have none:
// they are the baseline printed beside.
var Goals = []*Goal{
	{ID: "hung-lost", Text: "a hung backend (from the start, or from mid-run) costs PEAK_EWMA and CONSISTENT_HASH (keyed and keyless) at most 1% of calls",
		Metric: "lost calls", Scenarios: hungScenarios, Variants: []Variant{PeakEWMA, HashKeyed, HashKeyless}, Callers: bothCallers,
		Measure: Outcome.LostRatio, Op: AtMost, Threshold: 0.01, Unit: Percent},
	{ID: "hung-hedged-lost", Text: "a hung backend costs PEAK_EWMA + hedging no call",
		Metric: "lost calls", Scenarios: hungScenarios, Variants: []Variant{PeakEWMAHedged}, Callers: bothCallers,
		Measure: lost, Op: AtMost, Threshold: 0, Unit: Count},
	{ID: "half-open-lost", Text: "a half-open address costs lbclient's variants no call",
		Metric: "lost calls", Scenarios: []Scenario{HalfOpen}, Variants: Lbclient, Callers: bothCallers,
		Measure: lost, Op: AtMost, Threshold: 0, Unit: Count},
	{ID: "slow-share", Text: "PEAK_EWMA sends a 10× slow backend under 0.5% of calls (16 callers)",
		Metric: "slow backend's share", Scenarios: []Scenario{Slow}, Variants: pe, Callers: []int{16},
		Measure: Outcome.OddShare, Op: Below, Threshold: 0.005, TestThreshold: 0.01, Unit: Percent},
	{ID: "slow-p99", Text: "with a 10× slow backend, PEAK_EWMA's p99 is at most 1.5× its p99 on identical backends (16 callers)",
		Metric: "p99 ÷ identical p99", Scenarios: []Scenario{Slow}, Variants: pe, Callers: []int{16}, Ref: Identical,
		Measure: percentile(99), Op: AtMost, Threshold: 1.5, Unit: Times, Timing: true},
	{ID: "slow-hedged-p999", Text: "with a 10× slow backend, PEAK_EWMA + hedging's p99.9 is at most 1.5× its p99.9 on identical backends (16 callers)",
		Metric: "p99.9 ÷ identical p99.9", Scenarios: []Scenario{Slow}, Variants: []Variant{PeakEWMAHedged}, Callers: []int{16}, Ref: Identical,
		Measure: percentile(99.9), Op: AtMost, Threshold: 1.5, Unit: Times, Timing: true},
	{ID: "slow-hedged-extra", Text: "with a 10× slow backend, hedging sends at most 5% extra calls (16 callers)",
		Metric: "extra calls", Scenarios: []Scenario{Slow}, Variants: []Variant{PeakEWMAHedged}, Callers: []int{16},
		Measure: Outcome.ExtraRatio, Op: AtMost, Threshold: 0.05, Unit: Percent, Timing: true},
	{ID: "identical-share", Text: "on identical backends every backend gets within [0.6/N, 1.4/N] of the calls (CONSISTENT_HASH keyed is uneven by design: Zipf keys)",
		Metric: "largest share's distance from 1/N", Scenarios: []Scenario{Identical}, Variants: []Variant{PeakEWMA, PeakEWMAHedged, HashKeyless}, Callers: bothCallers,
		Measure: Outcome.ShareDeviation, Op: AtMost, Threshold: ShareTolerance, Unit: OffFair},
	{ID: "streams-p90", Text: "long streams beside unary calls keep unary p90 within 1.5× of identical's",
		Metric: "unary p90 ÷ identical p90", Scenarios: []Scenario{Streams}, Variants: Lbclient, Callers: bothCallers, Ref: Identical,
		Measure: percentile(90), Op: AtMost, Threshold: 1.5, Unit: Times, Timing: true},
	// Streams count in their endpoint's load while open, so unary calls
	// lean away from the endpoints that hold more of them, and shares move
	// with the streams; what must not happen is a backend starved because
	// a stream's lifetime was taken for its latency.
	{ID: "streams-share", Text: "long streams do not starve a backend of PEAK_EWMA's unary calls: every share at least 0.5/N",
		Metric: "smallest share", Scenarios: []Scenario{Streams}, Variants: pe, Callers: bothCallers,
		Measure: smallest, Op: AtLeast, Threshold: 0.5, Unit: OfFair},
	{ID: "cold-recovery", Text: "a cold backend is back to its share (≥ 0.6/N in every later 250 ms bucket) within 2 s",
		Metric: "recovery", Scenarios: []Scenario{ColdStart}, Variants: []Variant{PeakEWMA, HashKeyless}, Callers: bothCallers,
		Measure: Outcome.RecoverySeconds, Op: AtMost, Threshold: 2, Unit: Seconds, Timing: true},
	{ID: "cold-share", Text: "a cold backend gets at least 0.6/N of the calls over the second half of the run",
		Metric: "its share, second half", Scenarios: []Scenario{ColdStart}, Variants: []Variant{PeakEWMA, HashKeyless}, Callers: bothCallers,
		Measure: oddShareSecondHalf, Op: AtLeast, Threshold: RecoveredShare, Unit: OfFair},
}

// Set holds the outcomes of cells, one per round.
type Set map[Cell][]Outcome

// Add adds o to its cell's rounds.
func (s Set) Add(o Outcome) { s[o.Cell] = append(s[o.Cell], o) }

// Verdict is one goal judged on one cell.
type Verdict struct {
	Goal *Goal
	Cell Cell
	// Value is the median over the rounds (with a reference, the ratio of
	// the medians), Min and Max the range of the rounds (with a reference,
	// of each round's ratio to the reference's same round).
	Value, Min, Max float64
	Rounds          int
	Threshold       float64 // the goal's, or its TestThreshold in a test
	Pass            bool    // Value meets the goal
	Missing         bool    // the set lacks the cell or its reference
}

func (v Verdict) String() string {
	if v.Missing {
		return fmt.Sprintf("%s: %s: not measured (goal %s)", v.Cell, v.Goal.ID, v.Goal.Want())
	}
	verdict := "met"
	if !v.Pass {
		verdict = "NOT MET"
	}
	return fmt.Sprintf("%s: %s %s, goal %s: %s", v.Cell, v.Goal.Metric, v.Goal.Unit.Format(v.Value), v.Goal.want(v.Threshold), verdict)
}

// Check judges every goal on every cell it applies to. With timing set
// (the benchmark), every goal, on its Threshold; without (the test), the
// goals that rest on counts and shares only, on their TestThreshold where
// they have one.
func Check(set Set, timing bool) []Verdict {
	var out []Verdict
	for _, g := range Goals {
		if g.Timing && !timing {
			continue
		}
		threshold := g.Threshold
		if !timing && g.TestThreshold != 0 {
			threshold = g.TestThreshold
		}
		for _, c := range g.Cells() {
			out = append(out, judge(set, g, c, threshold))
		}
	}
	return out
}

func judge(set Set, g *Goal, c Cell, threshold float64) Verdict {
	v := Verdict{Goal: g, Cell: c, Threshold: threshold}
	xs := measure(set[c], g.Measure)
	if len(xs) == 0 {
		v.Missing = true
		return v
	}
	v.Rounds = len(xs)
	if g.Ref == "" {
		sorted := slices.Sorted(slices.Values(xs))
		v.Value, v.Min, v.Max = median(sorted), sorted[0], sorted[len(sorted)-1]
	} else {
		refs := measure(set[Cell{Scenario: g.Ref, Variant: c.Variant, Callers: c.Callers}], g.Measure)
		if len(refs) == 0 {
			v.Missing = true
			return v
		}
		v.Value = ratio(median(slices.Sorted(slices.Values(xs))), median(slices.Sorted(slices.Values(refs))))
		// The range is that of the rounds' own ratios, round i of the
		// cell to round i of the reference.
		n := min(len(xs), len(refs))
		paired := make([]float64, n)
		for i := range n {
			paired[i] = ratio(xs[i], refs[i])
		}
		v.Min, v.Max = slices.Min(paired), slices.Max(paired)
	}
	v.Pass = g.Op.holds(v.Value, threshold)
	return v
}

func measure(os []Outcome, f func(Outcome) float64) []float64 {
	xs := make([]float64, len(os))
	for i, o := range os {
		xs[i] = f(o)
	}
	return xs
}

// median of sorted xs.
func median(xs []float64) float64 {
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

package faultmatrix

import (
	"math"
	"testing"
	"time"

	"github.com/lbclient/lbclient/example/loadgen"
)

var names = []string{"backend-1", "backend-2", "backend-3", "backend-4"}

// outcome builds an Outcome of c with answered calls per backend, lost
// calls and latencies of lat each.
func outcome(c Cell, answered []int, lost int, lat time.Duration) Outcome {
	o := Outcome{Cell: c, Backends: names, Duration: time.Second, Result: loadgen.Result{PerBackend: map[string]int{}, Errors: lost}}
	if c.Scenario.HasOdd() {
		o.Odd = names[len(names)-1]
	}
	total := lost
	for i, n := range answered {
		o.PerBackend[names[i]] = n
		total += n
	}
	for range total {
		o.Latencies = append(o.Latencies, lat)
	}
	return o
}

func verdict(t *testing.T, vs []Verdict, id string, c Cell) Verdict {
	t.Helper()
	for _, v := range vs {
		if v.Goal.ID == id && v.Cell == c {
			return v
		}
	}
	t.Fatalf("no verdict %s on %s", id, c)
	return Verdict{}
}

func TestCheckCountsAndShares(t *testing.T) {
	hung := Cell{Scenario: Hung, Variant: PeakEWMA, Callers: 16}
	ident := Cell{Scenario: Identical, Variant: HashKeyless, Callers: 1}
	set := Set{}
	set.Add(outcome(hung, []int{330, 330, 330, 0}, 10, time.Millisecond)) // 10 of 1000: 1%, met
	set.Add(outcome(hung, []int{330, 330, 330, 0}, 20, time.Millisecond)) // 2%
	set.Add(outcome(hung, []int{330, 330, 330, 0}, 0, time.Millisecond))  // median of 0, 1, 2%: met
	set.Add(outcome(ident, []int{140, 100, 100, 60}, 0, time.Millisecond))

	vs := Check(set, false)
	for _, v := range vs {
		if v.Goal.Timing {
			t.Errorf("Check without timing judged %s", v.Goal.ID)
		}
	}
	v := verdict(t, vs, "hung-lost", hung)
	if v.Missing || !v.Pass || v.Rounds != 3 || math.Abs(v.Value-10.0/1000) > 1e-9 || v.Min != 0 || math.Abs(v.Max-20.0/1010) > 1e-9 {
		t.Errorf("hung-lost = %+v, want met at the median 1%%, range 0–2%%", v)
	}
	// Shares 35%, 25%, 25%, 15%: 40% off 1/N, the edge, met; one more
	// call to backend-1 breaks it.
	v = verdict(t, vs, "identical-share", ident)
	if !v.Pass || math.Abs(v.Value-0.4) > 1e-9 {
		t.Errorf("identical-share = %+v, want met at 40%% off", v)
	}
	set[ident] = []Outcome{outcome(ident, []int{150, 100, 100, 50}, 0, time.Millisecond)}
	if v := verdict(t, Check(set, false), "identical-share", ident); v.Pass {
		t.Errorf("identical-share with a 12.5%% backend = %+v, want not met", v)
	}
	if v := verdict(t, vs, "half-open-lost", Cell{Scenario: HalfOpen, Variant: PeakEWMA, Callers: 1}); !v.Missing {
		t.Errorf("a cell not in the set = %+v, want Missing", v)
	}
}

func TestCheckAgainstReference(t *testing.T) {
	slow := Cell{Scenario: Slow, Variant: PeakEWMA, Callers: 16}
	ident := Cell{Scenario: Identical, Variant: PeakEWMA, Callers: 16}
	set := Set{}
	set.Add(outcome(slow, []int{333, 333, 333, 1}, 0, 3*time.Millisecond))
	if v := verdict(t, Check(set, true), "slow-p99", slow); !v.Missing {
		t.Errorf("slow-p99 without its reference = %+v, want Missing", v)
	}
	set.Add(outcome(ident, []int{250, 250, 250, 250}, 0, 2*time.Millisecond))
	if v := verdict(t, Check(set, true), "slow-p99", slow); v.Missing || !v.Pass || v.Value != 1.5 {
		t.Errorf("slow-p99 = %+v, want 3 ms ÷ 2 ms = 1.5×, met", v)
	}
	if v := verdict(t, Check(set, true), "slow-share", slow); !v.Pass || v.Value != 0.001 {
		t.Errorf("slow-share = %+v, want 0.1%%, met", v)
	}

	// Over rounds: the ratio of the medians (4 ms ÷ 2 ms), the range of
	// the rounds' own ratios (3÷2, 4÷20, 30÷2).
	set = Set{}
	for i, ms := range []time.Duration{3, 4, 30} {
		set.Add(outcome(slow, []int{333, 333, 333, 1}, 0, ms*time.Millisecond))
		set.Add(outcome(ident, []int{250, 250, 250, 250}, 0, []time.Duration{2, 20, 2}[i]*time.Millisecond))
	}
	if v := verdict(t, Check(set, true), "slow-p99", slow); v.Pass || v.Value != 2 || v.Min != 0.2 || v.Max != 15 || v.Rounds != 3 {
		t.Errorf("slow-p99 over 3 rounds = %v (%v–%v, %d rounds), want 2× (0.2–15, 3 rounds), not met", v, v.Min, v.Max, v.Rounds)
	}
}

func TestRecovery(t *testing.T) {
	o := Outcome{Cell: Cell{Scenario: ColdStart}, Backends: names, Odd: names[3], Duration: time.Second}
	for i, odd := range []int{0, 5, 30, 20} { // of 100 per bucket; 15 is the bar
		o.Buckets = append(o.Buckets, Bucket{Start: time.Duration(i) * 250 * time.Millisecond, Answered: []int{40, 30, 30 - odd, odd}})
	}
	if at, ok := recovery(o); !ok || at != 500*time.Millisecond {
		t.Errorf("recovery = %v, %v; want 500ms, true", at, ok)
	}
	o.Buckets[3].Answered = []int{40, 40, 10, 10}
	if at, ok := recovery(o); ok || at != time.Second {
		t.Errorf("recovery with the last bucket short = %v, %v; want 1s, false", at, ok)
	}
	if got := o.OddShareSince(500 * time.Millisecond); got != 0.2 {
		t.Errorf("OddShareSince(500ms) = %v, want 0.2 (40 of 200)", got)
	}
}

func TestGoalsApplyToLbclientOnly(t *testing.T) {
	for _, g := range Goals {
		if len(g.Cells()) == 0 || g.Measure == nil {
			t.Errorf("goal %s has no cell or no value", g.ID)
		}
		for _, v := range g.Variants {
			if v.Baseline {
				t.Errorf("goal %s applies to the baseline %s", g.ID, v.Name)
			}
		}
	}
}

// TestMatrixCoversGoals checks that TestMatrix runs every cell that a goal
// it asserts needs, so that a goal cannot go unchecked.
func TestMatrixCoversGoals(t *testing.T) {
	run := map[Cell]bool{}
	for _, p := range testPairs() {
		for _, c := range p {
			run[c] = true
		}
	}
	for _, g := range Goals {
		if g.Timing {
			continue
		}
		for _, c := range g.Cells() {
			if !run[c] {
				t.Errorf("goal %s: TestMatrix does not run %s", g.ID, c)
			}
			if g.Ref != "" && !run[Cell{Scenario: g.Ref, Variant: c.Variant, Callers: c.Callers}] {
				t.Errorf("goal %s: TestMatrix does not run the reference of %s", g.ID, c)
			}
		}
	}
}

func TestZipfKeys(t *testing.T) {
	a, b := ZipfKeys(1000, 7), ZipfKeys(1000, 7)
	count := map[string]int{}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("key %d differs between two streams of one seed", i)
		}
		count[a[i]]++
	}
	if count["account-0"] < 50 {
		t.Errorf("the hottest key came %d times in 1000, want a skewed stream", count["account-0"])
	}
}

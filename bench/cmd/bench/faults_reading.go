package main

import (
	"fmt"
	"math"
	"strings"
	"time"

	fm "github.com/lbclient/lbclient/internal/faultmatrix"
)

// faultsReading writes the section's reading of the numbers.
func faultsReading(b *strings.Builder, set fm.Set, verdicts []fm.Verdict, cfg fm.Config) {
	med := func(sc fm.Scenario, v fm.Variant, n int, f func(fm.Outcome) float64) float64 {
		return summaryOf(set[fm.Cell{Scenario: sc, Variant: v, Callers: n}], f).Median
	}
	lostPct := func(sc fm.Scenario, v fm.Variant, n int) string {
		return fmt.Sprintf("%.2f%%", 100*med(sc, v, n, fm.Outcome.LostRatio))
	}
	lost := func(sc fm.Scenario, v fm.Variant, n int) string {
		return fmt.Sprintf("%.0f", med(sc, v, n, func(o fm.Outcome) float64 { return float64(o.Lost()) }))
	}
	both := func(f func(fm.Scenario, fm.Variant, int) string, sc fm.Scenario, v fm.Variant) string {
		return f(sc, v, 1) + " / " + f(sc, v, 16)
	}
	oddPct := func(v fm.Variant) string {
		return fmt.Sprintf("%.1f%%", 100*med(fm.Slow, v, 16, fm.Outcome.OddShare))
	}
	pct := func(sc fm.Scenario, v fm.Variant, n int, p float64) float64 {
		return med(sc, v, n, func(o fm.Outcome) float64 { return float64(o.Percentile(p)) / float64(time.Millisecond) })
	}

	fmt.Fprintf(b, "**Reading.** Figures are for 1 / 16 callers. ")
	fmt.Fprintf(b, "A backend hung from the start costs round_robin %s of its calls and least_request %s (a call sent to it waits out the %v deadline); ",
		both(lostPct, fm.Hung, fm.RoundRobin), both(lostPct, fm.Hung, fm.LeastRequest), cfg.Deadline)
	fmt.Fprintf(b, "PEAK_EWMA loses %s, CONSISTENT_HASH keyed %s and keyless %s, and PEAK_EWMA + hedging %s calls. ",
		both(lostPct, fm.Hung, fm.PeakEWMA), both(lostPct, fm.Hung, fm.HashKeyed), both(lostPct, fm.Hung, fm.HashKeyless), both(lost, fm.Hung, fm.PeakEWMAHedged))
	fmt.Fprintf(b, "When it hangs at half the run, PEAK_EWMA loses %s, CONSISTENT_HASH keyed %s and keyless %s, hedging %s calls. ",
		both(lostPct, fm.HangsMidRun, fm.PeakEWMA), both(lostPct, fm.HangsMidRun, fm.HashKeyed), both(lostPct, fm.HangsMidRun, fm.HashKeyless), both(lost, fm.HangsMidRun, fm.PeakEWMAHedged))

	var halfOpen []string
	for _, v := range fm.Variants {
		if n := med(fm.HalfOpen, v, 16, func(o fm.Outcome) float64 { return float64(o.Lost()) }) + med(fm.HalfOpen, v, 1, func(o fm.Outcome) float64 { return float64(o.Lost()) }); n > 0 {
			halfOpen = append(halfOpen, fmt.Sprintf("%s (%s calls)", v.Name, both(lost, fm.HalfOpen, v)))
		}
	}
	if len(halfOpen) == 0 {
		fmt.Fprintf(b, "A half-open address costs no variant a call. ")
	} else {
		fmt.Fprintf(b, "A half-open address costs calls to %s; the other variants lose none. ", strings.Join(halfOpen, ", "))
	}

	peP99, idP99 := pct(fm.Slow, fm.PeakEWMA, 16, 99), pct(fm.Identical, fm.PeakEWMA, 16, 99)
	heP999, idHeP999 := pct(fm.Slow, fm.PeakEWMAHedged, 16, 99.9), pct(fm.Identical, fm.PeakEWMAHedged, 16, 99.9)
	fmt.Fprintf(b, "With one backend %d× slower, at 16 callers, round_robin sends it %s of the calls, least_request %s, PEAK_EWMA %s (p99 %.2f ms against %.2f ms on identical backends, %.2f×) and PEAK_EWMA + hedging %s (p99.9 %.2f ms against %.2f ms, %.2f×, for %.1f%% extra calls); CONSISTENT_HASH keyed %s. ",
		cfg.SlowFactor, oddPct(fm.RoundRobin), oddPct(fm.LeastRequest), oddPct(fm.PeakEWMA), peP99, idP99, peP99/idP99,
		oddPct(fm.PeakEWMAHedged), heP999, idHeP999, heP999/idHeP999, 100*med(fm.Slow, fm.PeakEWMAHedged, 16, fm.Outcome.ExtraRatio), oddPct(fm.HashKeyed))
	fmt.Fprintf(b, "A backend that fails fast from half the run on (no retries) costs round_robin %s calls, least_request %s, PEAK_EWMA %s, PEAK_EWMA + hedging %s, CONSISTENT_HASH keyed %s and keyless %s. ",
		both(lost, fm.FailsFast, fm.RoundRobin), both(lost, fm.FailsFast, fm.LeastRequest), both(lost, fm.FailsFast, fm.PeakEWMA),
		both(lost, fm.FailsFast, fm.PeakEWMAHedged), both(lost, fm.FailsFast, fm.HashKeyed), both(lost, fm.FailsFast, fm.HashKeyless))

	shares := func(sc fm.Scenario, v fm.Variant, n int) string {
		lo := med(sc, v, n, func(o fm.Outcome) float64 { l, _ := o.ShareRange(); return 100 * l })
		hi := med(sc, v, n, func(o fm.Outcome) float64 { _, h := o.ShareRange(); return 100 * h })
		return fmt.Sprintf("%.0f–%.0f%%", lo, hi)
	}
	fmt.Fprintf(b, "On identical backends, PEAK_EWMA's backend shares span %s, CONSISTENT_HASH keyless's %s, round_robin's %s. ",
		both(shares, fm.Identical, fm.PeakEWMA), both(shares, fm.Identical, fm.HashKeyless), both(shares, fm.Identical, fm.RoundRobin))
	fmt.Fprintf(b, "Beside long streams they span %s for PEAK_EWMA, whose unary p90 is %.2f× / %.2f× that of identical backends. ",
		both(shares, fm.Streams, fm.PeakEWMA), pct(fm.Streams, fm.PeakEWMA, 1, 90)/pct(fm.Identical, fm.PeakEWMA, 1, 90),
		pct(fm.Streams, fm.PeakEWMA, 16, 90)/pct(fm.Identical, fm.PeakEWMA, 16, 90))
	recovery := func(sc fm.Scenario, v fm.Variant, n int) string {
		s := med(sc, v, n, fm.Outcome.RecoverySeconds)
		if math.IsInf(s, 1) {
			return "∞"
		}
		return fmt.Sprintf("%.2f s", s)
	}
	fmt.Fprintf(b, "Time until a cold backend is back to its share: PEAK_EWMA %s, CONSISTENT_HASH keyless %s, round_robin %s (∞: not within the %v run). ",
		both(recovery, fm.ColdStart, fm.PeakEWMA), both(recovery, fm.ColdStart, fm.HashKeyless), both(recovery, fm.ColdStart, fm.RoundRobin), cfg.ColdDuration)

	met, n := 0, 0
	var notMet []string
	for _, v := range verdicts {
		if v.Missing {
			continue
		}
		n++
		if v.Pass {
			met++
		} else if len(notMet) == 0 || notMet[len(notMet)-1] != v.Goal.ID {
			notMet = append(notMet, v.Goal.ID)
		}
	}
	fmt.Fprintf(b, "Of %d goal cells, %d are met", n, met)
	if len(notMet) > 0 {
		fmt.Fprintf(b, "; goals with cells not met: %s", strings.Join(notMet, ", "))
	}
	fmt.Fprintf(b, ". At 1 caller a cell makes about a thousand calls, so p99.9 is its slowest call or two: read the tails with their ranges.\n\n")
}

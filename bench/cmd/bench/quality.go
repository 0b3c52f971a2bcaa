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
	"github.com/lbclient/lbclient/bench/internal/quality"
	"github.com/lbclient/lbclient/bench/internal/stats"
)

// Goals of the issue for hedging.
const (
	goalHedgeP999 = 1.5  // hedged p99.9 with one slow backend ÷ all-healthy p99.9
	goalHedgeCost = 0.05 // extra attempts per call
)

var percentiles = []float64{50, 90, 99, 99.9}

func (r *report) quality() error {
	cfg, reps := quality.DefaultConfig(), 3
	if r.quick {
		cfg.Calls, cfg.Warmup, cfg.FailAt, reps = 400, 50, 100, 1
	}
	ctx := context.Background()
	// outcomes[scenario][variant] holds the runs, interleaved: each round
	// runs every scenario and variant once.
	outcomes := map[quality.Scenario]map[string][]quality.Outcome{}
	for rep := range reps {
		for _, sc := range quality.Scenarios {
			if outcomes[sc] == nil {
				outcomes[sc] = map[string][]quality.Outcome{}
			}
			for _, v := range quality.Variants {
				o, err := quality.Run(ctx, sc, v, cfg)
				if err != nil {
					return fmt.Errorf("%s, %s: %w", sc, v.Name, err)
				}
				outcomes[sc][v.Name] = append(outcomes[sc][v.Name], o)
			}
			log.Printf("quality: round %d/%d, %s", rep+1, reps, sc)
		}
	}

	var b strings.Builder
	fmt.Fprintf(&b, "## 2. Picking quality\n\n")
	fmt.Fprintf(&b, "%d Greeter backends (`example/backend`) on 127.0.0.1, each call taking %v; a closed-loop load (`example/loadgen`) of %d workers makes %d `SayHello` calls per run after %d warm-up calls that are not counted. ",
		cfg.Backends, cfg.Fast, cfg.Workers, cfg.Calls, cfg.Warmup)
	fmt.Fprintf(&b, "Scenarios: **%s**; **%s** (backend-%d takes %v); **%s** (backend-%d answers every call with UNAVAILABLE from measured call %d on). ",
		quality.Healthy, quality.Skewed, cfg.Backends, cfg.Slow, quality.Failing, cfg.Backends, cfg.FailAt)
	fmt.Fprintf(&b, "Clients: `runtime.Dial(\"static:///…\", nil, WithInsecure(), WithPolicy(p))` called through the generated `greeterv1lbclient` client, with no rules (no timeouts, no retries) so that picking alone shows; ")
	fmt.Fprintf(&b, "the hedged client adds `WithMethodRules(SayHello, MethodRules{Hedging: &HedgingPolicy{MaxAttempts: 2, DelayPercentile: 97, NonFatalCodes: [UNAVAILABLE]}})` (SayHello's annotation without its timeout), with the default budget (10%% + burst 20); ")
	fmt.Fprintf(&b, "CONSISTENT_HASH calls carry a key drawn from a Zipf stream (s = 1.1 over 1000 accounts). ")
	fmt.Fprintf(&b, "Every run gets a fresh fleet and client; %d rounds, interleaved. Latencies include failed calls; \"extra calls\" is `Conn.Stats().Hedging.ExtraAttempts` per measured call.\n\n", reps)

	for _, sc := range quality.Scenarios {
		fmt.Fprintf(&b, "### %s\n\n", sc)
		fmt.Fprintf(&b, "| client | p50 ms | p90 ms | p99 ms | p99.9 ms | share per backend | errors | extra calls |\n|---|---:|---:|---:|---:|---|---:|---:|\n")
		for _, v := range quality.Variants {
			os := outcomes[sc][v.Name]
			fmt.Fprintf(&b, "| %s |", v.Name)
			for _, p := range percentiles {
				fmt.Fprintf(&b, " %s |", pctSummary(os, p).Format("%.2f"))
			}
			var shares []string
			for _, be := range os[0].Backends {
				s := summaryOf(os, func(o quality.Outcome) float64 { return 100 * o.Share(be) })
				mark := ""
				if be == os[0].Odd {
					mark = "**"
				}
				shares = append(shares, fmt.Sprintf("%s%.0f%%%s", mark, s.Median, mark))
			}
			errs := summaryOf(os, func(o quality.Outcome) float64 { return float64(o.Errors) })
			extra := summaryOf(os, func(o quality.Outcome) float64 { return 100 * o.ExtraRatio() })
			fmt.Fprintf(&b, " %s | %s | %s%% |\n", strings.Join(shares, " / "), errs.Format("%.0f"), extra.Format("%.1f"))
		}
		fmt.Fprintf(&b, "\nShares are the median share of answered calls per backend, backend-1 to backend-%d; the odd backend in bold.\n\n", cfg.Backends)
		file := "quality-" + slug(string(sc)) + ".svg"
		var series []chart.Series
		for _, v := range quality.Variants {
			series = append(series, chart.Series{Name: v.Name, Latencies: pooled(outcomes[sc][v.Name])})
		}
		if sc != quality.Healthy {
			series = append(series, chart.Series{Name: "PEAK_EWMA + hedging, all healthy", Dashed: true,
				Latencies: pooled(outcomes[quality.Healthy]["PEAK_EWMA + hedging p97"])})
		}
		title := fmt.Sprintf("SayHello latency, %d backends, %s (%d runs pooled)", cfg.Backends, sc, reps)
		if err := chart.Percentiles(filepath.Join(r.chartDir, file), title, series); err != nil {
			return err
		}
		fmt.Fprintf(&b, "![latency percentiles, %s](bench/charts/%s)\n\n", sc, file)
	}

	// The hedging goal.
	const hv, pv = "PEAK_EWMA + hedging p97", "PEAK_EWMA"
	hedged := pctSummary(outcomes[quality.Skewed][hv], 99.9)
	healthyHedged := pctSummary(outcomes[quality.Healthy][hv], 99.9)
	healthyPlain := pctSummary(outcomes[quality.Healthy][pv], 99.9)
	unhedged := pctSummary(outcomes[quality.Skewed][pv], 99.9)
	rr := pctSummary(outcomes[quality.Skewed]["round_robin"], 99.9)
	extra := summaryOf(outcomes[quality.Skewed][hv], func(o quality.Outcome) float64 { return o.ExtraRatio() })
	ratio := hedged.Median / healthyHedged.Median
	ratioPlain := hedged.Median / healthyPlain.Median
	met := ratio <= goalHedgeP999 && extra.Median <= goalHedgeCost
	fmt.Fprintf(&b, "### Hedging against the goal (p99.9 with one slow backend within %.1f× of all-healthy p99.9, for ≤ %.0f%% extra calls)\n\n", goalHedgeP999, 100*goalHedgeCost)
	fmt.Fprintf(&b, "| | p99.9 ms | ÷ all-healthy (same client) | extra calls |\n|---|---:|---:|---:|\n")
	fmt.Fprintf(&b, "| all healthy, PEAK_EWMA + hedging | %s | 1 | %s%% |\n", healthyHedged.Format("%.2f"),
		summaryOf(outcomes[quality.Healthy][hv], func(o quality.Outcome) float64 { return 100 * o.ExtraRatio() }).Format("%.1f"))
	fmt.Fprintf(&b, "| all healthy, PEAK_EWMA | %s | %.2f | 0%% |\n", healthyPlain.Format("%.2f"), healthyPlain.Median/healthyHedged.Median)
	fmt.Fprintf(&b, "| one slow, PEAK_EWMA + hedging | %s | **%.2f** | %s%% |\n", hedged.Format("%.2f"), ratio, summaryOf(outcomes[quality.Skewed][hv], func(o quality.Outcome) float64 { return 100 * o.ExtraRatio() }).Format("%.1f"))
	fmt.Fprintf(&b, "| one slow, PEAK_EWMA | %s | %.2f | 0%% |\n", unhedged.Format("%.2f"), unhedged.Median/healthyHedged.Median)
	fmt.Fprintf(&b, "| one slow, round_robin | %s | %.2f | 0%% |\n\n", rr.Format("%.2f"), rr.Median/healthyHedged.Median)
	r.goal("| hedged p99.9 (one 10× slow backend) ≤ %.1f× all-healthy p99.9, for ≤ %.0f%% extra calls | %.2f× (%.2f ms vs %.2f ms; %.2f× vs unhedged PEAK_EWMA healthy), %.1f%% extra calls | %s |",
		goalHedgeP999, 100*goalHedgeCost, ratio, hedged.Median, healthyHedged.Median, ratioPlain, 100*extra.Median, yesNo(met))

	r.qualityReading(&b, outcomes, cfg, ratio, extra.Median, met)
	r.add("%s", b.String())
	return nil
}

// qualityReading writes the section's reading of the numbers.
func (r *report) qualityReading(b *strings.Builder, outcomes map[quality.Scenario]map[string][]quality.Outcome, cfg quality.Config, ratio, extra float64, met bool) {
	sk := outcomes[quality.Skewed]
	share := func(v string) float64 {
		return summaryOf(sk[v], func(o quality.Outcome) float64 { return 100 * o.Share(o.Odd) }).Median
	}
	p99 := func(sc quality.Scenario, v string) float64 { return pctSummary(outcomes[sc][v], 99).Median }
	fmt.Fprintf(b, "**Reading.** With one backend %d× slower, round_robin keeps sending it %.0f%% of calls and its p99 is %.2f ms; ",
		int(cfg.Slow/cfg.Fast), share("round_robin"), p99(quality.Skewed, "round_robin"))
	fmt.Fprintf(b, "least_request sends it %.0f%% (p99 %.2f ms) and PEAK_EWMA %.0f%% (p99 %.2f ms). ",
		share("least_request"), p99(quality.Skewed, "least_request"), share("PEAK_EWMA"), p99(quality.Skewed, "PEAK_EWMA"))
	fmt.Fprintf(b, "Hedging on top of PEAK_EWMA brings p99.9 to %.2f× the all-healthy p99.9 of the same client for %.1f%% extra calls: the goal is %s. ",
		ratio, 100*extra, map[bool]string{true: "met", false: "not met"}[met])
	fmt.Fprintf(b, "CONSISTENT_HASH is not a latency policy: each key stays on its backend, so the Zipf keys that hash to the slow one pay its latency (its share there is %.0f%%; bounded loads move only the overflow of the hottest keys). ",
		share("CONSISTENT_HASH (Zipf keys)"))
	fl := outcomes[quality.Failing]
	errs := func(v string) float64 {
		return summaryOf(fl[v], func(o quality.Outcome) float64 { return float64(o.Errors) }).Median
	}
	fmt.Fprintf(b, "When backend-%d starts failing (no retries configured, so every failure the picker lets through is an error the caller sees), round_robin returns %.0f errors out of %d calls, least_request %.0f (a failing backend answers fast, so it looks idle), PEAK_EWMA %.0f, PEAK_EWMA with hedging %.0f (UNAVAILABLE is non-fatal there, so the second attempt goes elsewhere) and CONSISTENT_HASH %.0f (after 5 failures in a row the backend's keys go to their ring successors, but for a probe per interval, an interval that lengthens while it fails). ",
		cfg.Backends, errs("round_robin"), cfg.Calls, errs("least_request"), errs("PEAK_EWMA"), errs("PEAK_EWMA + hedging p97"), errs("CONSISTENT_HASH (Zipf keys)"))
	fmt.Fprintf(b, "p99.9 rests on the %d slowest of %d calls per run: read it with its range.\n\n", cfg.Calls/1000, cfg.Calls)
}

func pctSummary(os []quality.Outcome, p float64) stats.Summary {
	return summaryOf(os, func(o quality.Outcome) float64 { return float64(o.Percentile(p)) / float64(time.Millisecond) })
}

func pooled(os []quality.Outcome) []time.Duration {
	var all []time.Duration
	for _, o := range os {
		all = append(all, o.Latencies...)
	}
	slices.Sort(all)
	return all
}

func slug(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
	}
	return strings.TrimSuffix(b.String(), "-")
}

package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/lbclient/lbclient/bench/internal/discovery"
	"github.com/lbclient/lbclient/bench/internal/stats"
	"github.com/lbclient/lbclient/runtime"
)

// discovery reports how connections follow a changing fleet through the
// file and DNS resolvers, and how weights split calls.
func (r *report) discovery() error {
	rounds, workers, splitCalls := 3, 8, 10000
	if r.quick {
		rounds, splitCalls = 1, 1000
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var b strings.Builder
	fmt.Fprintf(&b, "## 7. Discovery\n\n")
	fmt.Fprintf(&b, "A fleet of three backends (1 ms each) under a closed loop of %d callers through the generated client with the example's rules; a fourth is added to the source, then, once it has its share, one of the first three is removed (`bench/internal/discovery`). ", workers)
	fmt.Fprintf(&b, "`file` rewrites a `file:///` target's JSON (a temporary file renamed over it); `dns` changes the A records of a real DNS server on loopback, the connection refreshing every %v. ", discovery.DNSRefresh)
	fmt.Fprintf(&b, "Medians (min–max) of %d rounds. \"Share\" is the added backend's share of the calls in the second that starts a second after its first call, 1 being its fair quarter; \"late calls\" are calls the removed backend answered that started after the connection stopped listing it.\n\n", rounds)
	fmt.Fprintf(&b, "| source | policy | added: first call after | added: share | removed: dropped after | late calls | failed calls | calls |\n|---|---|---:|---:|---:|---:|---:|---:|\n")
	worstFirst := map[string]time.Duration{}
	minShare, late, failed := 10.0, int64(0), int64(0)
	for _, src := range []string{"file", "dns"} {
		for _, p := range []runtime.Policy{runtime.RoundRobin, runtime.PeakEWMA} {
			var first, share, dropped []float64
			var lateN, failedN, callsN int64
			for range rounds {
				c, err := discovery.RunChange(ctx, src, p, workers)
				if err != nil {
					return err
				}
				first = append(first, float64(c.FirstCall)/float64(time.Millisecond))
				share = append(share, c.Share)
				dropped = append(dropped, float64(c.Dropped)/float64(time.Millisecond))
				lateN += c.LateCalls
				failedN += c.Failed
				callsN += c.Calls
				worstFirst[src] = max(worstFirst[src], c.FirstCall)
				minShare = min(minShare, c.Share)
			}
			late += lateN
			failed += failedN
			fmt.Fprintf(&b, "| %s | %v | %s ms | %s | %s ms | %d | %d | %d |\n", src, p, stats.Of(first).Format("%.0f"), stats.Of(share).Format("%.2f"), stats.Of(dropped).Format("%.0f"), lateN, failedN, callsN)
		}
	}
	fmt.Fprintf(&b, "\nThe etcd resolver (`runtime/resolver/etcd`, a module of its own) is measured by its tests against an in-process etcd server; they assert the same goals.\n\n")

	fmt.Fprintf(&b, "Weights: two equal backends (1 ms) weighted 1 and 3 in a `file:///` target; %d GreetAccount calls over 1000 accounts (CONSISTENT_HASH routes by them; PEAK_EWMA ignores them). The heavy backend's share, goal 0.75 ±10%% (0.675–0.825), medians (min–max) of %d rounds:\n\n", splitCalls, rounds)
	fmt.Fprintf(&b, "| policy | 1 caller | 16 callers |\n|---|---:|---:|\n")
	splitOK := true
	for _, p := range []runtime.Policy{runtime.PeakEWMA, runtime.ConsistentHash} {
		fmt.Fprintf(&b, "| %v |", p)
		for _, w := range []int{1, 16} {
			var heavy []float64
			for range rounds {
				s, err := discovery.RunSplit(ctx, p, w, splitCalls)
				if err != nil {
					return err
				}
				if s.Failed != 0 {
					return fmt.Errorf("weights, %v, %d callers: %d calls failed", p, w, s.Failed)
				}
				heavy = append(heavy, s.Heavy)
			}
			m := stats.Of(heavy).Median
			splitOK = splitOK && m >= 0.675 && m <= 0.825
			fmt.Fprintf(&b, " %s |", stats.Of(heavy).Format("%.3f"))
		}
		fmt.Fprintf(&b, "\n")
	}
	fmt.Fprintf(&b, "\n")
	r.add("%s", b.String())
	r.goal("| an added backend's first call within refresh + 1 s (DNS) or 1 s (file), then ≥ 0.6 of its share | dns %v, file %v (worst of the rounds); share ≥ %.2f | %s |",
		worstFirst["dns"].Round(time.Millisecond), worstFirst["file"].Round(time.Millisecond), minShare,
		yesNo(worstFirst["dns"] <= discovery.DNSRefresh+time.Second && worstFirst["file"] <= time.Second && minShare >= 0.6))
	r.goal("| a removed backend: 0 failed calls, 0 calls after the change is seen | %d failed, %d late | %s |", failed, late, yesNo(failed == 0 && late == 0))
	r.goal("| weights 1:3 split 1:3 ±10%% (PEAK_EWMA, CONSISTENT_HASH; medians) | see section 7 | %s |", yesNo(splitOK))
	return nil
}

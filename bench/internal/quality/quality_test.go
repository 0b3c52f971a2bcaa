package quality

import (
	"context"
	"testing"
	"time"
)

// TestRunTiny runs every variant in every scenario with a tiny load and
// checks the counts add up; it asserts no latency.
func TestRunTiny(t *testing.T) {
	cfg := Config{Backends: 4, Fast: 0, Slow: 2 * time.Millisecond, Calls: 200, Warmup: 20, Workers: 4,
		FailAt: 50, MaxDuration: 20 * time.Second, Seed: 1}
	for _, sc := range Scenarios {
		for _, v := range Variants {
			o, err := Run(context.Background(), sc, v, cfg)
			if err != nil {
				t.Fatalf("%s, %s: %v", sc, v.Name, err)
			}
			answered := 0
			for _, n := range o.PerBackend {
				answered += n
			}
			if answered+o.Errors != cfg.Calls || len(o.Latencies) != cfg.Calls {
				t.Errorf("%s, %s: %d answered + %d errors, %d latencies, want %d calls", sc, v.Name, answered, o.Errors, len(o.Latencies), cfg.Calls)
			}
			if sc != Failing && o.Errors != 0 {
				t.Errorf("%s, %s: %d errors (first: %v)", sc, v.Name, o.Errors, o.FirstError)
			}
			if !v.Hedge && o.Extra != 0 {
				t.Errorf("%s, %s: %d extra attempts without hedging", sc, v.Name, o.Extra)
			}
			if sc == Healthy && v.Name == "round_robin" {
				for _, b := range o.Backends {
					if s := o.Share(b); s < 0.15 || s > 0.35 {
						t.Errorf("round_robin on a healthy fleet sent %.0f%% to %s, want about 25%%", 100*s, b)
					}
				}
			}
		}
	}
}

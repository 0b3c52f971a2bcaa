package subsetsim

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestGoals: 1000 clients over 100 backends. Random subsetting of 20
// loads the busiest backend at most 1.3× the mean with uniform clients;
// the aperture of 20 keeps connections and load within 1.05× the mean;
// every approach covers every backend. The full mesh is the check of the
// arithmetic: every ratio exactly 1.
func TestGoals(t *testing.T) {
	for _, a := range Approaches {
		r, err := Run(a, 1000, 100, 1)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s %d: %.1f conns/client; conns max/mean %.3f; load max/mean %.3f (p99 %.3f), skewed %.3f (%.3f); moves: client joins %d, backend joins %d",
			a.Name, a.Size, r.ConnsPerClient, r.ConnsMaxMean, r.UniformMaxMean, r.UniformP99Mean, r.SkewedMaxMean, r.SkewedP99Mean, r.ClientJoinMoves, r.BackendJoinMoves)
		if r.Uncovered != 0 {
			t.Errorf("%s %d: %d backends in no subset", a.Name, a.Size, r.Uncovered)
		}
		switch {
		case a.Size == 0:
			if r.ConnsMaxMean != 1 || r.UniformMaxMean > 1+1e-9 || r.ClientJoinMoves != 0 || r.ConnsPerClient != 100 {
				t.Errorf("full mesh: %+v", r)
			}
		case a.Deterministic && a.Size == 20:
			if r.ConnsMaxMean > 1.05 || r.UniformMaxMean > 1.05 {
				t.Errorf("aperture of 20: conns max/mean %.3f, load max/mean %.3f; want <= 1.05", r.ConnsMaxMean, r.UniformMaxMean)
			}
		case !a.Deterministic && a.Size == 20:
			if r.UniformMaxMean > 1.3 {
				t.Errorf("random subsets of 20: load max/mean %.3f, want <= 1.3", r.UniformMaxMean)
			}
			if r.ClientJoinMoves != 0 {
				t.Errorf("random subsets: a client joining moved %d of the others' connections", r.ClientJoinMoves)
			}
		}
	}
}

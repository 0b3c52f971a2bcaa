package stats

import "testing"

func TestOf(t *testing.T) {
	s := Of([]float64{5, 1, 3, 2, 4})
	if s.Median != 3 || s.Min != 1 || s.Max != 5 || s.N != 5 {
		t.Fatalf("Of = %+v", s)
	}
	if s := Of([]float64{1, 2, 3, 4}); s.Median != 2.5 {
		t.Fatalf("even median = %v, want 2.5", s.Median)
	}
	if got := Of([]float64{1, 3}).Format("%.0f"); got != "2 (1–3)" {
		t.Fatalf("Format = %q", got)
	}
	if s := Of(nil); s.N != 0 {
		t.Fatalf("Of(nil) = %+v", s)
	}
}

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lbclient/lbclient/bench/internal/overhead"
)

func quickReport(t *testing.T) *report {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	r := &report{root: filepath.Join(wd, "..", "..", ".."), quick: true}
	r.machine()
	return r
}

// TestRulesQuick renders the rules comparison from a tiny run.
func TestRulesQuick(t *testing.T) {
	overhead.SetBenchTime(5 * time.Millisecond)
	s := overhead.StartServer()
	defer s.Stop()
	r := quickReport(t)
	out, err := r.overheadRules(s, 1, 2, 2, 20, 10, 50)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"generated GreetAccount, annotations' rules", "price of hedging", "#### 64 KiB, parallel", "minus grpc stub"} {
		if !strings.Contains(out, want) {
			t.Errorf("rules section lacks %q", want)
		}
	}
	if len(r.summary) != 2 {
		t.Errorf("%d goal lines, want 2: %q", len(r.summary), r.summary)
	}
}

// TestPickersQuick renders the picker table from a tiny run of the real
// benchmarks.
func TestPickersQuick(t *testing.T) {
	r := quickReport(t)
	if err := r.pickers(); err != nil {
		t.Fatal(err)
	}
	if len(r.sections) != 1 || len(r.summary) != 3 {
		t.Fatalf("%d sections, %d goal lines; want 1 and 3", len(r.sections), len(r.summary))
	}
	for _, want := range []string{"## 5. Picker cost", "| grpc-go least_request | serial |", "PEAK_EWMA"} {
		if !strings.Contains(r.sections[0], want) {
			t.Errorf("picker section lacks %q:\n%s", want, r.sections[0])
		}
	}
}

// TestSubsettingSection renders the subsetting table and its goals.
func TestSubsettingSection(t *testing.T) {
	r := quickReport(t)
	if err := r.subsetting(); err != nil {
		t.Fatal(err)
	}
	if len(r.sections) != 1 || len(r.summary) != 3 {
		t.Fatalf("%d sections, %d goal lines; want 1 and 3", len(r.sections), len(r.summary))
	}
	for _, want := range []string{"## 6. Subsetting", "| deterministic aperture | 20 |", "| random subsetting | 10 |"} {
		if !strings.Contains(r.sections[0], want) {
			t.Errorf("subsetting section lacks %q:\n%s", want, r.sections[0])
		}
	}
	for _, g := range r.summary {
		if !strings.HasSuffix(g, "| yes |") {
			t.Errorf("goal not met: %s", g)
		}
	}
}

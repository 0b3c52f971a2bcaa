package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	fm "github.com/lbclient/lbclient/internal/faultmatrix"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestFaultsQuick runs the fault matrix section in its -quick form and
// checks that the report has every table, the goals and the chart; it
// asserts no figure.
func TestFaultsQuick(t *testing.T) {
	r := &report{quick: true, chartDir: t.TempDir()}
	if err := r.faults(); err != nil {
		t.Fatal(err)
	}
	if len(r.sections) != 1 {
		t.Fatalf("%d sections, want 1", len(r.sections))
	}
	s := r.sections[0]
	for _, want := range []string{"## 4. Fault matrix", "### Against the goals", "**Reading.**", "](bench/charts/" + faultsChart + ")"} {
		if !strings.Contains(s, want) {
			t.Errorf("section lacks %q", want)
		}
	}
	for _, sc := range fm.Scenarios {
		if !strings.Contains(s, "### "+string(sc)+"\n") {
			t.Errorf("section lacks the table of %s", sc)
		}
		for _, v := range fm.Variants {
			if !strings.Contains(s, "| "+v.Name+" |") {
				t.Errorf("section lacks the row of %s", v.Name)
			}
		}
	}
	if strings.Contains(s, "not measured") {
		t.Errorf("a goal's cell was not measured")
	}
	if len(r.summary) != len(fm.Goals) {
		t.Errorf("%d goal rows, want %d", len(r.summary), len(fm.Goals))
	}
	if fi, err := os.Stat(filepath.Join(r.chartDir, faultsChart)); err != nil || fi.Size() == 0 {
		t.Errorf("chart: %v", err)
	}
}

package main

import (
	"bytes"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestRun runs the example small and checks that it went through every
// step without a failed call, and that one account's calls stayed on one
// backend.
func TestRun(t *testing.T) {
	var out bytes.Buffer
	if err := run(&out, 400, 4); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	t.Log("\n" + got)
	for _, s := range steps {
		if !strings.Contains(got, s.name) {
			t.Errorf("no line for step %q", s.name)
		}
	}
	if !strings.Contains(got, "\n0 calls failed\n") {
		t.Errorf("calls failed")
	}
	for _, line := range strings.Split(got, "\n") {
		if strings.HasPrefix(line, "CONSISTENT_HASH, one account") && !strings.Contains(line, "100%") {
			t.Errorf("one account's calls spread: %s", line)
		}
	}
}

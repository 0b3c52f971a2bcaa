package faultmatrix

import (
	"context"
	"testing"
)

func TestZZDebug(t *testing.T) {
	for range 3 {
		for _, c := range []Cell{{Scenario: HangsMidRun, Variant: PeakEWMAHedged, Callers: 16}, } {
			o, err := Run(context.Background(), c, TestConfig())
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%v: calls %d lost %d first %v per backend %v extra %d streams %d", c, o.Calls(), o.Lost(), o.FirstError, o.PerBackend, o.Extra, o.Streams)
		}
	}
}

package main

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/lbclient/lbclient/example/backend"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// exported is the part of the stdout exporter's JSON that the test reads.
type exported struct {
	ScopeMetrics []struct {
		Metrics []struct {
			Name string
			Unit string
			Data struct {
				DataPoints []struct {
					Attributes []struct{ Key string }
					Value      float64
				}
			}
		}
	}
}

// TestMetricsToStdout: with -metrics the client's run exports, after its
// calls, lbclient's metrics beside grpc-go's: a pick for each of its calls
// (12 SayHello, 3 GreetAccount, a Watch and an Upload stream) and a
// latency estimate per backend; and once more when it exits, when the
// connection is closed and reports no estimate.
func TestMetricsToStdout(t *testing.T) {
	f, err := backend.StartFleet(3)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	var out bytes.Buffer
	if err := run(f.Target(), 12, &out, time.Hour); err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(&out)
	for i, want := range []struct {
		when      string
		estimates int
	}{{"after the calls", len(f)}, {"at exit", 0}} {
		var e exported
		if err := dec.Decode(&e); err != nil {
			t.Fatalf("export %d (%s): %v\n%s", i, want.when, err, out.String())
		}
		var picks float64
		estimates, attempts := 0, 0
		for _, sm := range e.ScopeMetrics {
			for _, m := range sm.Metrics {
				switch m.Name {
				case "lbclient.lb.picks":
					for _, dp := range m.Data.DataPoints {
						picks += dp.Value
					}
				case "lbclient.lb.latency_estimate":
					estimates = len(m.Data.DataPoints)
				case "grpc.client.attempt.started":
					attempts = len(m.Data.DataPoints)
				}
			}
		}
		if picks < 12+3+2 || estimates != want.estimates || attempts == 0 {
			t.Errorf("%s: lbclient.lb.picks %v, %d latency estimates, grpc.client.attempt.started in %d points; want at least 17 picks, %d estimates, grpc's attempts", want.when, picks, estimates, attempts, want.estimates)
		}
	}
}

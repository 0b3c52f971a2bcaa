package peakewma

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/balancer"
)

// TestConfigRoundTrip marshals each parsed config and parses the result
// again, as grpc-go does when a parent policy (random_subsetting, the xDS
// balancers) hands the config on: the second parse must give the same
// config, and marshalling that must give the same JSON.
func TestConfigRoundTrip(t *testing.T) {
	parser := balancer.Get(Name).(balancer.ConfigParser)
	for _, tc := range []struct{ name, js string }{
		{"empty", `{}`},
		{"all fields", `{"decayWindow":"2s","defaultRtt":"5ms","failurePenalty":"250ms","probeInterval":"500ms","failureCodes":["UNAVAILABLE","DEADLINE_EXCEEDED"],"statsId":"lbstats-7"}`},
		{"protobuf JSON duration", `{"decayWindow":"1.5s","probeInterval":"0.01s"}`},
		{"empty failureCodes turns failures off", `{"failureCodes":[]}`},
		{"null failureCodes is the default", `{"failureCodes":null}`},
		{"bounds", `{"decayWindow":"1h","defaultRtt":"1ns","failurePenalty":"1h","probeInterval":"10ms"}`},
		{"unknown fields dropped", `{"choiceCount":3,"statsId":"s"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			first, err := parser.ParseConfig(json.RawMessage(tc.js))
			if err != nil {
				t.Fatalf("ParseConfig(%s): %v", tc.js, err)
			}
			js, err := json.Marshal(first)
			if err != nil {
				t.Fatalf("json.Marshal(%+v): %v", first, err)
			}
			second, err := parser.ParseConfig(js)
			if err != nil {
				t.Fatalf("ParseConfig of the marshalled config %s: %v", js, err)
			}
			if d := cmp.Diff(first, second, cmp.AllowUnexported(LBConfig{})); d != "" {
				t.Errorf("%s marshals to %s, which parses differently (-first +second):\n%s", tc.js, js, d)
			}
			again, err := json.Marshal(second)
			if err != nil {
				t.Fatal(err)
			}
			if string(again) != string(js) {
				t.Errorf("second marshal %s, first %s", again, js)
			}
		})
	}
}

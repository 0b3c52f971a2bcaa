package observe

import (
	"encoding/json"
	"reflect"
	"testing"

	"google.golang.org/grpc/balancer"
	_ "google.golang.org/grpc/balancer/leastrequest"       // least_request_experimental
	_ "google.golang.org/grpc/balancer/randomsubsetting"   // random_subsetting_experimental
	_ "google.golang.org/grpc/balancer/weightedroundrobin" // weighted_round_robin

	_ "github.com/lbclient/lbclient/runtime/balancer/consistenthash"
	_ "github.com/lbclient/lbclient/runtime/balancer/peakewma"
)

// TestConfigRoundTrip marshals each parsed config and parses the result
// again, as grpc-go does when a parent policy (random_subsetting, the xDS
// balancers) hands the config on: the child policy, its config and the
// stats id must come through, and marshalling the second parse must give
// the same JSON as the first.
func TestConfigRoundTrip(t *testing.T) {
	parser := balancer.Get(Name).(balancer.ConfigParser)
	for _, tc := range []struct {
		name, js  string
		wantChild string
	}{
		{"round_robin", `{"statsId":"s1","childPolicy":[{"round_robin":{}}]}`, "round_robin"},
		{"pick_first with its config", `{"childPolicy":[{"pick_first":{"shuffleAddressList":true}}]}`, "pick_first"},
		{"null child config", `{"childPolicy":[{"pick_first":null}]}`, "pick_first"},
		{"least_request", `{"statsId":"s2","childPolicy":[{"least_request_experimental":{"choiceCount":3}}]}`, "least_request_experimental"},
		{"weighted_round_robin", `{"childPolicy":[{"weighted_round_robin":{"blackoutPeriod":"1s","errorUtilizationPenalty":0.5}}]}`, "weighted_round_robin"},
		{"first registered kept alone", `{"childPolicy":[{"no_such_policy":{"x":1}},{"pick_first":{}},{"round_robin":{}}]}`, "pick_first"},
		{"lbclient_peak_ewma", `{"childPolicy":[{"lbclient_peak_ewma":{"decayWindow":"2s","failureCodes":[]}}]}`, "lbclient_peak_ewma"},
		{"lbclient_consistent_hash", `{"childPolicy":[{"lbclient_consistent_hash":{"virtualNodes":40}}]}`, "lbclient_consistent_hash"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			first, err := parser.ParseConfig(json.RawMessage(tc.js))
			if err != nil {
				t.Fatalf("ParseConfig(%s): %v", tc.js, err)
			}
			js, err := json.Marshal(first)
			if err != nil {
				t.Fatalf("json.Marshal: %v", err)
			}
			second, err := parser.ParseConfig(js)
			if err != nil {
				t.Fatalf("ParseConfig of the marshalled config %s: %v", js, err)
			}
			c1, c2 := first.(*lbConfig), second.(*lbConfig)
			if c2.child.Name != tc.wantChild || c1.child.Name != tc.wantChild {
				t.Errorf("%s marshals to %s: child %q, then %q; want %q", tc.js, js, c1.child.Name, c2.child.Name, tc.wantChild)
			}
			if c2.StatsID != c1.StatsID {
				t.Errorf("%s marshals to %s: statsId %q, then %q", tc.js, js, c1.StatsID, c2.StatsID)
			}
			if !reflect.DeepEqual(c1.child.Config, c2.child.Config) {
				t.Errorf("%s marshals to %s: child config %+v, then %+v", tc.js, js, c1.child.Config, c2.child.Config)
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

// TestConfigRoundTripUnderRandomSubsetting parses random_subsetting's
// config with observe as its child and marshals it, which is what
// random_subsetting does before it builds the child: the observe config in
// that JSON must parse to the same child.
func TestConfigRoundTripUnderRandomSubsetting(t *testing.T) {
	const js = `{"subsetSize":2,"childPolicy":[{"lbclient_observe":{"statsId":"s","childPolicy":[{"least_request_experimental":{"choiceCount":3}}]}}]}`
	parent := balancer.Get("random_subsetting_experimental").(balancer.ConfigParser)
	cfg, err := parent.ParseConfig(json.RawMessage(js))
	if err != nil {
		t.Fatalf("ParseConfig(%s): %v", js, err)
	}
	out, err := json.Marshal(cfg)
	if err != nil {
		t.Fatalf("json.Marshal: %v", err)
	}
	var back struct {
		ChildPolicy []map[string]json.RawMessage `json:"childPolicy"`
	}
	if err := json.Unmarshal(out, &back); err != nil || len(back.ChildPolicy) != 1 || back.ChildPolicy[0][Name] == nil {
		t.Fatalf("random_subsetting's config marshals to %s (%v), want one %s child", out, err, Name)
	}
	child, err := balancer.Get(Name).(balancer.ConfigParser).ParseConfig(back.ChildPolicy[0][Name])
	if err != nil {
		t.Fatalf("observe's config as random_subsetting marshals it, %s: %v", back.ChildPolicy[0][Name], err)
	}
	if c := child.(*lbConfig); c.child.Name != "least_request_experimental" || c.StatsID != "s" {
		t.Errorf("observe's config came back as child %q, statsId %q; want least_request_experimental, s", c.child.Name, c.StatsID)
	}
}

package lbtest

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/balancer"
)

// ConfigRoundTrip marshals policy name's parsed config of each JSON in
// configs (keyed by case name) and parses the result again, as grpc-go does
// when a parent policy (random_subsetting, the xDS balancers) hands the
// config on: the second parse must give the same config (compared with
// opts, which let cmp see the config type's unexported fields), and
// marshalling that must give the same JSON.
func ConfigRoundTrip(t *testing.T, name string, configs map[string]string, opts ...cmp.Option) {
	t.Helper()
	parser := balancer.Get(name).(balancer.ConfigParser)
	for tc, js := range configs {
		t.Run(tc, func(t *testing.T) {
			first, err := parser.ParseConfig(json.RawMessage(js))
			if err != nil {
				t.Fatalf("ParseConfig(%s): %v", js, err)
			}
			out, err := json.Marshal(first)
			if err != nil {
				t.Fatalf("json.Marshal(%+v): %v", first, err)
			}
			second, err := parser.ParseConfig(out)
			if err != nil {
				t.Fatalf("ParseConfig of the marshalled config %s: %v", out, err)
			}
			if d := cmp.Diff(first, second, opts...); d != "" {
				t.Errorf("%s marshals to %s, which parses differently (-first +second):\n%s", js, out, d)
			}
			again, err := json.Marshal(second)
			if err != nil {
				t.Fatal(err)
			}
			if string(again) != string(out) {
				t.Errorf("second marshal %s, first %s", again, out)
			}
		})
	}
}

package observe

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/balancer"
)

func TestParseConfig(t *testing.T) {
	parser := balancer.Get(Name).(balancer.ConfigParser)
	for _, tc := range []struct {
		name      string
		js        string
		wantChild string
		wantStats string
	}{
		{"round_robin", `{"statsId":"s1","childPolicy":[{"round_robin":{}}]}`, "round_robin", "s1"},
		{"no statsId", `{"childPolicy":[{"pick_first":{}}]}`, "pick_first", ""},
		{"first registered wins", `{"childPolicy":[{"no_such_policy":{}},{"pick_first":{}},{"round_robin":{}}]}`, "pick_first", ""},
		{"child config parsed", `{"childPolicy":[{"pick_first":{"shuffleAddressList":true}}]}`, "pick_first", ""},
		{"null child config", `{"childPolicy":[{"pick_first":null}]}`, "pick_first", ""},
		{"unknown fields ignored", `{"childPolicy":[{"round_robin":{}}],"future":1}`, "round_robin", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parser.ParseConfig([]byte(tc.js))
			if err != nil {
				t.Fatalf("ParseConfig(%s): %v", tc.js, err)
			}
			cfg := got.(*lbConfig)
			if cfg.child.Name != tc.wantChild || cfg.StatsID != tc.wantStats {
				t.Errorf("ParseConfig(%s) = child %q, statsId %q; want %q, %q", tc.js, cfg.child.Name, cfg.StatsID, tc.wantChild, tc.wantStats)
			}
		})
	}
	t.Run("child config kept", func(t *testing.T) {
		got, err := parser.ParseConfig([]byte(`{"childPolicy":[{"pick_first":{"shuffleAddressList":true}}]}`))
		if err != nil {
			t.Fatal(err)
		}
		// pick_first's config type is unexported: look at its fields.
		if cc := fmt.Sprintf("%+v", got.(*lbConfig).child.Config); !strings.Contains(cc, "ShuffleAddressList:true") {
			t.Errorf("child config %s lost shuffleAddressList", cc)
		}
	})
}

func TestParseConfigErrors(t *testing.T) {
	parser := balancer.Get(Name).(balancer.ConfigParser)
	for _, tc := range []struct {
		name, js, want string
	}{
		{"not JSON", `{`, "invalid config"},
		{"not an object", `[]`, "invalid config"},
		{"statsId not a string", `{"statsId":1,"childPolicy":[{"round_robin":{}}]}`, "invalid config"},
		{"childPolicy missing", `{"statsId":"s"}`, `"childPolicy" is required`},
		{"childPolicy null", `{"childPolicy":null}`, `"childPolicy" is required`},
		{"childPolicy not a list", `{"childPolicy":{"round_robin":{}}}`, "invalid config"},
		{"childPolicy empty", `{"childPolicy":[]}`, "no registered policy"},
		{"entry with two policies", `{"childPolicy":[{"round_robin":{},"pick_first":{}}]}`, "entry 0 must hold exactly one policy, has 2"},
		{"empty entry", `{"childPolicy":[{"no_such_policy":{}},{}]}`, "entry 1 must hold exactly one policy, has 0"},
		{"none registered", `{"childPolicy":[{"no_such_policy":{}},{"nor_this":{}}]}`, `no registered policy among ["no_such_policy" "nor_this"]`},
		{"bad child config", `{"childPolicy":[{"pick_first":{"shuffleAddressList":"yes"}}]}`, `"childPolicy" "pick_first": `},
		{"itself as child", `{"childPolicy":[{"lbclient_observe":{}}]}`, `cannot be "lbclient_observe" itself`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parser.ParseConfig([]byte(tc.js))
			if err == nil {
				t.Fatalf("ParseConfig(%s): no error, want one containing %q", tc.js, tc.want)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, Name+": ") || !strings.Contains(msg, tc.want) {
				t.Errorf("ParseConfig(%s) error %q, want prefix %q and %q", tc.js, msg, Name+": ", tc.want)
			}
		})
	}
}

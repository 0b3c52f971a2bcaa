package observe

import (
	"encoding/json"
	"fmt"

	"google.golang.org/grpc/serviceconfig"

	"github.com/lbclient/lbclient/runtime/balancer/internal/childpolicy"
)

// lbConfig is the parsed form of
//
//	{"statsId": "<id>", "childPolicy": [{"round_robin": {}}]}
type lbConfig struct {
	serviceconfig.LoadBalancingConfig `json:"-"`

	// StatsID names the lbstats.Sink the balancer publishes its endpoints
	// to. Empty means that nothing is published; the avoid set still works.
	StatsID string `json:"statsId,omitempty"`

	// child is the first registered policy of childPolicy.
	child childpolicy.Child
}

// MarshalJSON writes the config back in the form parseConfig reads, with
// the chosen child as the only entry of "childPolicy":
//
//	{"statsId": "<id>", "childPolicy": [{"<child>": <its config>}]}
//
// grpc-go marshals a parsed config and parses the result again wherever a
// parent policy hands its child's config on (random_subsetting_experimental,
// and the xDS balancers from the cluster's policy down), so the child must
// survive the round trip.
func (c *lbConfig) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		StatsID     string                       `json:"statsId,omitempty"`
		ChildPolicy []map[string]json.RawMessage `json:"childPolicy"`
	}{c.StatsID, c.child.List()})
}

// rawConfig is the JSON shape before the child policy is resolved.
type rawConfig struct {
	StatsID     string                       `json:"statsId"`
	ChildPolicy []map[string]json.RawMessage `json:"childPolicy"`
}

func parseConfig(js json.RawMessage) (*lbConfig, error) {
	var raw rawConfig
	if err := json.Unmarshal(js, &raw); err != nil {
		return nil, fmt.Errorf("%s: invalid config %s: %v", Name, js, err)
	}
	child, err := childpolicy.Parse(Name, raw.ChildPolicy)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", Name, err)
	}
	return &lbConfig{StatsID: raw.StatsID, child: child}, nil
}

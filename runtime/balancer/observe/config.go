package observe

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/serviceconfig"
)

// lbConfig is the parsed form of
//
//	{"statsId": "<id>", "childPolicy": [{"round_robin": {}}]}
type lbConfig struct {
	serviceconfig.LoadBalancingConfig `json:"-"`

	// StatsID names the lbstats.Sink the balancer publishes its endpoints
	// to. Empty means that nothing is published; the avoid set still works.
	StatsID string `json:"statsId,omitempty"`

	// childName and childConfig are the first registered policy of
	// childPolicy and its config as parsed by that policy (nil when the
	// policy has no config parser); childJSON is that policy's config as
	// it was written, which MarshalJSON writes back.
	childName   string
	childConfig serviceconfig.LoadBalancingConfig
	childJSON   json.RawMessage
}

// MarshalJSON writes the config back in the form parseConfig reads, with
// the chosen child as the only entry of "childPolicy":
//
//	{"statsId": "<id>", "childPolicy": [{"<child>": <its config>}]}
//
// grpc-go marshals a parsed config and parses the result again wherever a
// parent policy hands its child's config on (random_subsetting_experimental,
// and the xDS balancers from the cluster's policy down), so the child must
// survive the round trip. The child's config is written as it was parsed
// rather than marshalled from its parsed form, which need not marshal back
// (its fields may be unexported, as this very type's are).
func (c *lbConfig) MarshalJSON() ([]byte, error) {
	child := c.childJSON
	if len(child) == 0 {
		child = json.RawMessage("{}")
	}
	return json.Marshal(struct {
		StatsID     string                       `json:"statsId,omitempty"`
		ChildPolicy []map[string]json.RawMessage `json:"childPolicy"`
	}{c.StatsID, []map[string]json.RawMessage{{c.childName: child}}})
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
	if raw.ChildPolicy == nil {
		return nil, errors.New(Name + `: "childPolicy" is required`)
	}
	name, cfg, childJS, err := parseChildPolicy(raw.ChildPolicy)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", Name, err)
	}
	return &lbConfig{StatsID: raw.StatsID, childName: name, childConfig: cfg, childJSON: childJS}, nil
}

// parseChildPolicy picks the child from a list in loadBalancingConfig form
// the way grpc-go picks the top-level policy of a service config (gRFC A24,
// internal/serviceconfig.BalancerConfig): entries are tried in order, each
// must hold exactly one name/config pair, unregistered names are skipped,
// the first registered name wins and its config must then be valid. It
// returns the policy's name, its parsed config and its config's JSON ({} for
// none).
func parseChildPolicy(list []map[string]json.RawMessage) (string, serviceconfig.LoadBalancingConfig, json.RawMessage, error) {
	names := make([]string, 0, len(list))
	for i, entry := range list {
		if len(entry) != 1 {
			return "", nil, nil, fmt.Errorf(`"childPolicy" entry %d must hold exactly one policy, has %d`, i, len(entry))
		}
		var (
			name string
			js   json.RawMessage
		)
		for name, js = range entry {
		}
		names = append(names, name)
		if name == Name {
			return "", nil, nil, fmt.Errorf(`"childPolicy" cannot be %q itself`, Name)
		}
		b := balancer.Get(name)
		if b == nil {
			continue
		}
		if len(bytes.TrimSpace(js)) == 0 || bytes.Equal(bytes.TrimSpace(js), []byte("null")) {
			js = json.RawMessage("{}")
		}
		p, ok := b.(balancer.ConfigParser)
		if !ok {
			return name, nil, js, nil
		}
		cfg, err := p.ParseConfig(js)
		if err != nil {
			return "", nil, nil, fmt.Errorf(`"childPolicy" %q: %v`, name, err)
		}
		return name, cfg, js, nil
	}
	return "", nil, nil, fmt.Errorf(`"childPolicy" has no registered policy among %q`, names)
}

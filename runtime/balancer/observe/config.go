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
	// policy has no config parser).
	childName   string
	childConfig serviceconfig.LoadBalancingConfig
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
	name, cfg, err := parseChildPolicy(raw.ChildPolicy)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", Name, err)
	}
	return &lbConfig{StatsID: raw.StatsID, childName: name, childConfig: cfg}, nil
}

// parseChildPolicy picks the child from a list in loadBalancingConfig form
// the way grpc-go picks the top-level policy of a service config (gRFC A24,
// internal/serviceconfig.BalancerConfig): entries are tried in order, each
// must hold exactly one name/config pair, unregistered names are skipped,
// the first registered name wins and its config must then be valid.
func parseChildPolicy(list []map[string]json.RawMessage) (string, serviceconfig.LoadBalancingConfig, error) {
	names := make([]string, 0, len(list))
	for i, entry := range list {
		if len(entry) != 1 {
			return "", nil, fmt.Errorf(`"childPolicy" entry %d must hold exactly one policy, has %d`, i, len(entry))
		}
		var (
			name string
			js   json.RawMessage
		)
		for name, js = range entry {
		}
		names = append(names, name)
		if name == Name {
			return "", nil, fmt.Errorf(`"childPolicy" cannot be %q itself`, Name)
		}
		b := balancer.Get(name)
		if b == nil {
			continue
		}
		p, ok := b.(balancer.ConfigParser)
		if !ok {
			return name, nil, nil
		}
		if len(bytes.TrimSpace(js)) == 0 || bytes.Equal(bytes.TrimSpace(js), []byte("null")) {
			js = json.RawMessage("{}")
		}
		cfg, err := p.ParseConfig(js)
		if err != nil {
			return "", nil, fmt.Errorf(`"childPolicy" %q: %v`, name, err)
		}
		return name, cfg, nil
	}
	return "", nil, fmt.Errorf(`"childPolicy" has no registered policy among %q`, names)
}

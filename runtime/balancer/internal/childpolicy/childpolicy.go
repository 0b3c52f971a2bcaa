// Package childpolicy is the "childPolicy" field of lbclient's parent
// policies (lbclient_observe, lbclient_deterministic_subset): a list in
// loadBalancingConfig form, parsed as grpc-go parses a service config's
// policy list, and written back as it was read so that the config survives
// grpc-go's marshal-and-parse round trips.
package childpolicy

import (
	"bytes"
	"encoding/json"
	"fmt"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/serviceconfig"
)

// Child is the policy a parent delegates to.
type Child struct {
	// Name is the policy's registered name.
	Name string
	// Config is its config as the policy parsed it; nil when the policy
	// has no config parser.
	Config serviceconfig.LoadBalancingConfig
	// JSON is its config as it was written ({} for none), which List
	// writes back: a parsed config need not marshal back (its fields may be
	// unexported).
	JSON json.RawMessage
}

// Parse picks the child from list the way grpc-go picks the top-level
// policy of a service config (gRFC A24, internal/serviceconfig's
// BalancerConfig): entries are tried in order, each must hold exactly one
// name/config pair, unregistered names are skipped, the first registered
// name wins and its config must then be valid. parent, the parent's own
// name, is refused as its own child. Errors name the "childPolicy" field.
func Parse(parent string, list []map[string]json.RawMessage) (Child, error) {
	if list == nil {
		return Child{}, fmt.Errorf(`"childPolicy" is required`)
	}
	names := make([]string, 0, len(list))
	for i, entry := range list {
		if len(entry) != 1 {
			return Child{}, fmt.Errorf(`"childPolicy" entry %d must hold exactly one policy, has %d`, i, len(entry))
		}
		var (
			name string
			js   json.RawMessage
		)
		for name, js = range entry {
		}
		names = append(names, name)
		if name == parent {
			return Child{}, fmt.Errorf(`"childPolicy" cannot be %q itself`, parent)
		}
		b := balancer.Get(name)
		if b == nil {
			continue
		}
		if t := bytes.TrimSpace(js); len(t) == 0 || bytes.Equal(t, []byte("null")) {
			js = json.RawMessage("{}")
		}
		p, ok := b.(balancer.ConfigParser)
		if !ok {
			return Child{Name: name, JSON: js}, nil
		}
		cfg, err := p.ParseConfig(js)
		if err != nil {
			return Child{}, fmt.Errorf(`"childPolicy" %q: %v`, name, err)
		}
		return Child{Name: name, Config: cfg, JSON: js}, nil
	}
	return Child{}, fmt.Errorf(`"childPolicy" has no registered policy among %q`, names)
}

// List returns c as the one entry of a "childPolicy" list, for a parent's
// MarshalJSON.
func (c Child) List() []map[string]json.RawMessage {
	js := c.JSON
	if len(js) == 0 {
		js = json.RawMessage("{}")
	}
	return []map[string]json.RawMessage{{c.Name: js}}
}

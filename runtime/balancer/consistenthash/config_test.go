package consistenthash

import (
	"encoding/json"
	"testing"

	"google.golang.org/grpc/balancer"
)

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name       string
		js         string
		wantVnodes int
		wantFactor float64
		wantTau    float64
		wantErr    string
	}{
		{name: "defaults", js: `{}`, wantVnodes: 160, wantFactor: 1.25, wantTau: 10e9},
		{name: "all fields", js: `{"virtualNodes":40,"balanceFactor":2,"decayWindow":"5s","statsId":"s"}`, wantVnodes: 40, wantFactor: 2, wantTau: 5e9},
		{name: "upper bounds", js: `{"virtualNodes":4096,"balanceFactor":100}`, wantVnodes: 4096, wantFactor: 100, wantTau: 10e9},
		{name: "one virtual node", js: `{"virtualNodes":1,"balanceFactor":1.01}`, wantVnodes: 1, wantFactor: 1.01, wantTau: 10e9},
		{name: "too many virtual nodes", js: `{"virtualNodes":4097}`, wantErr: "lbclient_consistent_hash: virtualNodes: 4097 out of range [1, 4096]"},
		{name: "negative virtual nodes", js: `{"virtualNodes":-1}`, wantErr: "lbclient_consistent_hash: virtualNodes: -1 out of range [1, 4096]"},
		{name: "balance factor 1", js: `{"balanceFactor":1}`, wantErr: "lbclient_consistent_hash: balanceFactor: 1 out of range (1, 100]"},
		{name: "balance factor below 1", js: `{"balanceFactor":0.5}`, wantErr: "lbclient_consistent_hash: balanceFactor: 0.5 out of range (1, 100]"},
		{name: "balance factor too large", js: `{"balanceFactor":101}`, wantErr: "lbclient_consistent_hash: balanceFactor: 101 out of range (1, 100]"},
		{name: "probeInterval checked", js: `{"probeInterval":"2h"}`, wantErr: "lbclient_consistent_hash: probeInterval: 2h0m0s out of range [10ms, 1h0m0s]"},
		{name: "shared field checked", js: `{"decayWindow":"0.1ms"}`, wantErr: "lbclient_consistent_hash: decayWindow: 100µs out of range [1ms, 1h0m0s]"},
		{name: "wrong type", js: `{"virtualNodes":"many"}`, wantErr: "lbclient_consistent_hash: json: cannot unmarshal string into Go struct field LBConfig.virtualNodes of type int"},
	}
	parser := balancer.Get(Name).(balancer.ConfigParser)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parser.ParseConfig(json.RawMessage(tc.js))
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("ParseConfig(%s) error = %v, want %q", tc.js, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseConfig(%s): %v", tc.js, err)
			}
			cfg := got.(*LBConfig)
			if cfg.vnodes() != tc.wantVnodes || cfg.factor() != tc.wantFactor || cfg.LatencyParams().Tau != tc.wantTau {
				t.Errorf("vnodes %d, factor %v, tau %v; want %d, %v, %v", cfg.vnodes(), cfg.factor(), cfg.LatencyParams().Tau, tc.wantVnodes, tc.wantFactor, tc.wantTau)
			}
		})
	}
}

package runtime

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
)

func TestServiceConfig(t *testing.T) {
	rules := &ServiceRules{
		Service:            "greeter.v1.Greeter",
		Policy:             RoundRobin,
		HealthCheckService: "greeter.v1.Greeter",
		Defaults:           MethodRules{Timeout: 2 * time.Second, WaitForReady: true},
		Methods: map[string]MethodRules{
			"/greeter.v1.Greeter/SayHello": {
				Timeout: 250 * time.Millisecond,
				Retry: &RetryPolicy{
					MaxAttempts:       3,
					InitialBackoff:    20 * time.Millisecond,
					MaxBackoff:        time.Second,
					BackoffMultiplier: 2,
					RetryableCodes:    []codes.Code{codes.Unavailable, codes.Canceled},
				},
			},
			"/greeter.v1.Greeter/Chat": {},
			// The hedging interceptor enforces a hedged method's timeout
			// over all its attempts; grpc must not add one per attempt.
			"/greeter.v1.Greeter/Hedged": {
				Timeout:      time.Second,
				WaitForReady: true,
				Hedging:      &HedgingPolicy{MaxAttempts: 2, Delay: time.Millisecond},
			},
		},
		RetryThrottling: &RetryThrottling{MaxTokens: 10, TokenRatio: 0.5},
	}
	got, err := serviceConfig(rules, "id-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{
	  "loadBalancingConfig": [{"lbclient_observe": {"statsId": "id-1", "childPolicy": [{"round_robin": {}}]}}],
	  "methodConfig": [
	    {"name": [{"service": "greeter.v1.Greeter"}], "waitForReady": true, "timeout": "2s"},
	    {"name": [{"service": "greeter.v1.Greeter", "method": "Chat"}]},
	    {"name": [{"service": "greeter.v1.Greeter", "method": "Hedged"}], "waitForReady": true},
	    {"name": [{"service": "greeter.v1.Greeter", "method": "SayHello"}], "timeout": "0.25s",
	     "retryPolicy": {"maxAttempts": 3, "initialBackoff": "0.02s", "maxBackoff": "1s",
	                     "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE", "CANCELLED"]}}
	  ],
	  "retryThrottling": {"maxTokens": 10, "tokenRatio": 0.5},
	  "healthCheckConfig": {"serviceName": "greeter.v1.Greeter"}
	}`
	if d := cmp.Diff(decode(t, want), decode(t, got)); d != "" {
		t.Errorf("service config (-want +got):\n%s", d)
	}
	// grpc itself must accept it.
	cc, err := grpc.NewClient("passthrough:///unused", grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultServiceConfig(got))
	if err != nil {
		t.Fatalf("grpc rejects the service config: %v\n%s", err, got)
	}
	cc.Close()
}

func TestLoadBalancingConfigPerPolicy(t *testing.T) {
	for p, want := range map[Policy]string{
		PolicyUnspecified:  `{"lbclient_peak_ewma": {"statsId": "s"}}`,
		PeakEWMA:           `{"lbclient_peak_ewma": {"statsId": "s"}}`,
		ConsistentHash:     `{"lbclient_consistent_hash": {"statsId": "s"}}`,
		PickFirst:          `{"lbclient_observe": {"statsId": "s", "childPolicy": [{"pick_first": {}}]}}`,
		RoundRobin:         `{"lbclient_observe": {"statsId": "s", "childPolicy": [{"round_robin": {}}]}}`,
		LeastRequest:       `{"lbclient_observe": {"statsId": "s", "childPolicy": [{"least_request_experimental": {}}]}}`,
		WeightedRoundRobin: `{"lbclient_observe": {"statsId": "s", "childPolicy": [{"weighted_round_robin": {}}]}}`,
	} {
		t.Run(p.String(), func(t *testing.T) {
			sc, err := serviceConfig(&ServiceRules{Policy: p}, "s", nil)
			if err != nil {
				t.Fatal(err)
			}
			got := decode(t, sc)["loadBalancingConfig"].([]any)[0]
			if d := cmp.Diff(decode(t, want), got); d != "" {
				t.Errorf("loadBalancingConfig (-want +got):\n%s", d)
			}
			cc, err := grpc.NewClient("passthrough:///unused", grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultServiceConfig(sc))
			if err != nil {
				t.Fatalf("grpc rejects the service config of %v: %v\n%s", p, err, sc)
			}
			cc.Close()
		})
	}
}

func TestSubsetConfig(t *testing.T) {
	pe := `{"lbclient_peak_ewma": {"statsId": "s"}}`
	for _, tc := range []struct {
		name  string
		rules ServiceRules
		det   *deterministicSubset
		want  string
	}{
		{"none", ServiceRules{}, nil, pe},
		{"random", ServiceRules{SubsetSize: 20}, nil, `{"random_subsetting_experimental": {"subsetSize": 20, "childPolicy": [` + pe + `]}}`},
		{"deterministic wins", ServiceRules{SubsetSize: 20}, &deterministicSubset{size: 10, index: 3, count: 50},
			`{"lbclient_deterministic_subset": {"subsetSize": 10, "clientIndex": 3, "clientCount": 50, "childPolicy": [` + pe + `]}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc, err := serviceConfig(&tc.rules, "s", tc.det)
			if err != nil {
				t.Fatal(err)
			}
			got := decode(t, sc)["loadBalancingConfig"].([]any)[0]
			if d := cmp.Diff(decode(t, tc.want), got); d != "" {
				t.Errorf("loadBalancingConfig (-want +got):\n%s", d)
			}
			cc, err := grpc.NewClient("passthrough:///unused", grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultServiceConfig(sc))
			if err != nil {
				t.Fatalf("grpc rejects the service config: %v\n%s", err, sc)
			}
			cc.Close()
		})
	}
}

func TestJSONDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		time.Second:             "1s",
		1500 * time.Millisecond: "1.5s",
		time.Nanosecond:         "0.000000001s",
		90 * time.Second:        "90s",
	} {
		if got := jsonDuration(d); got != want {
			t.Errorf("jsonDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestCodeNamesRoundTrip(t *testing.T) {
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		var back codes.Code
		if err := back.UnmarshalJSON([]byte(`"` + codeName(c) + `"`)); err != nil || back != c {
			t.Errorf("codeName(%v) = %q, which grpc reads as %v (%v)", c, codeName(c), back, err)
		}
	}
}

func decode(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("bad JSON %s: %v", s, err)
	}
	return m
}

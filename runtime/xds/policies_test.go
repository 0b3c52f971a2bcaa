package xds_test

import (
	"strings"
	"testing"

	xdstypepb "github.com/cncf/xds/go/xds/type/v3"
	clusterpb "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corepb "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	_ "google.golang.org/grpc/balancer/randomsubsetting" // random_subsetting_experimental
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/lbclient/lbclient/runtime/balancer/observe"
	"github.com/lbclient/lbclient/runtime/balancer/peakewma"
	"github.com/lbclient/lbclient/runtime/xds"
	"github.com/lbclient/lbclient/runtime/xds/xdstest"
)

// TestClusterPolicies selects policies by TypedStruct whose configs grpc-go
// marshals and parses again on the way down its xDS balancers: observe over
// grpc-go's round_robin and least_request, and random_subsetting over
// observe and over PEAK_EWMA. Every call must succeed and the calls must
// reach every backend, or exactly the subset.
func TestClusterPolicies(t *testing.T) {
	for _, tc := range []struct {
		name, policy, config string
		reach                int
	}{
		{"observe over round_robin", observe.Name, `{"childPolicy":[{"round_robin":{}}]}`, 4},
		{"observe over least_request", observe.Name, `{"childPolicy":[{"least_request_experimental":{"choiceCount":3}}]}`, 4},
		{"random_subsetting over observe", "random_subsetting_experimental", `{"subsetSize":2,"childPolicy":[{"lbclient_observe":{"childPolicy":[{"round_robin":{}}]}}]}`, 2},
		{"random_subsetting over PEAK_EWMA", "random_subsetting_experimental", `{"subsetSize":2,"childPolicy":[{"lbclient_peak_ewma":{"failureCodes":[]}}]}`, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bs := startBackends(t, 4, nil)
			cp, opt := startControlPlane(t)
			set(t, cp, xdstest.Service{Name: "greeter", Policy: lbPolicy(t, tc.policy, tc.config), Localities: oneLocality(endpoints(bs))})
			c := dialRules(t, opt, nil)
			for i := range 200 {
				if _, err := callSayHello(c); err != nil {
					t.Fatalf("call %d: %v", i, err)
				}
			}
			reached := 0
			for _, b := range bs {
				if b.calls.Load() > 0 {
					reached++
				}
			}
			if reached != tc.reach {
				t.Errorf("calls reached %d backends, want %d", reached, tc.reach)
			}
			if r := cp.Rejected(); len(r) > 0 {
				t.Errorf("the client rejected the configuration: %+v", r)
			}
		})
	}
}

// typedStruct is a cluster policy of name with config as is, unchecked.
func typedStruct(t *testing.T, name string, config map[string]any) *clusterpb.LoadBalancingPolicy {
	t.Helper()
	s, err := structpb.NewStruct(config)
	if err != nil {
		t.Fatal(err)
	}
	a, err := anypb.New(&xdstypepb.TypedStruct{TypeUrl: xds.TypeURLPrefix + name, Value: s})
	if err != nil {
		t.Fatal(err)
	}
	return &clusterpb.LoadBalancingPolicy{Policies: []*clusterpb.LoadBalancingPolicy_Policy{{
		TypedExtensionConfig: &corepb.TypedExtensionConfig{Name: name, TypedConfig: a},
	}}}
}

// TestInvalidPolicyConfigRejected sends a PEAK_EWMA config out of bounds:
// the client must reject the cluster with PEAK_EWMA's own error, as for a
// service config, and keep the policy it had, whose calls go on.
func TestInvalidPolicyConfigRejected(t *testing.T) {
	bs := startBackends(t, 2, nil)
	cp, opt := startControlPlane(t)
	svc := xdstest.Service{Name: "greeter", Policy: lbPolicy(t, peakewma.Name, ""), Localities: oneLocality(endpoints(bs))}
	set(t, cp, svc)
	c := dialRules(t, opt, nil)
	waitReady(t, c)

	svc.Policy = typedStruct(t, peakewma.Name, map[string]any{"decayWindow": "500us"})
	set(t, cp, svc)
	const want = "lbclient_peak_ewma: decayWindow: 500µs out of range [1ms, 1h0m0s]"
	waitFor(t, "the client to reject the cluster", func() bool {
		for _, r := range cp.Rejected() {
			if strings.Contains(r.Message, want) {
				return true
			}
		}
		return false
	})
	for i := range 50 {
		if _, err := callSayHello(c); err != nil {
			t.Fatalf("call %d after the rejected update: %v", i, err)
		}
	}
}

// TestLoadBalancingPolicy checks the helper's validation and output.
func TestLoadBalancingPolicy(t *testing.T) {
	for _, tc := range []struct{ name, config, wantErr string }{
		{peakewma.Name, `{"decayWindow":"500us"}`, "lbclient/xds: LoadBalancingPolicy: lbclient_peak_ewma: decayWindow: 500µs out of range [1ms, 1h0m0s]"},
		{"lbclient_consistent_hash", `{"virtualNodes":5000}`, "lbclient/xds: LoadBalancingPolicy: lbclient_consistent_hash: virtualNodes: 5000 out of range [1, 4096]"},
		{observe.Name, `{}`, `lbclient/xds: LoadBalancingPolicy: lbclient_observe: "childPolicy" is required`},
		{"no_such_policy", ``, `lbclient/xds: LoadBalancingPolicy: no policy "no_such_policy" is registered`},
	} {
		if _, err := xds.LoadBalancingPolicy(tc.name, tc.config); err == nil || err.Error() != tc.wantErr {
			t.Errorf("LoadBalancingPolicy(%s, %s) error %v, want %q", tc.name, tc.config, err, tc.wantErr)
		}
	}
	p, err := xds.LoadBalancingPolicy(peakewma.Name, `{"decayWindow":"2s","failureCodes":["UNAVAILABLE","INTERNAL"]}`)
	if err != nil {
		t.Fatal(err)
	}
	var ts xdstypepb.TypedStruct
	if err := p.GetPolicies()[0].GetTypedExtensionConfig().GetTypedConfig().UnmarshalTo(&ts); err != nil {
		t.Fatal(err)
	}
	if ts.GetTypeUrl() != "type.googleapis.com/lbclient_peak_ewma" || ts.GetValue().GetFields()["decayWindow"].GetStringValue() != "2s" ||
		len(ts.GetValue().GetFields()["failureCodes"].GetListValue().GetValues()) != 2 {
		t.Errorf("LoadBalancingPolicy made %v", &ts)
	}
}

// TestWithBootstrapErrors checks that a bootstrap without a control plane
// is an error at once, naming what is missing.
func TestWithBootstrapErrors(t *testing.T) {
	for _, tc := range []struct{ bootstrap, want string }{
		{`{`, "lbclient/xds: WithBootstrap: bootstrap is not JSON"},
		{`{"node":{"id":"n"}}`, `"xds_servers" needs an entry with a "server_uri"`},
		{`{"xds_servers":[{}]}`, `"xds_servers" needs an entry with a "server_uri"`},
	} {
		if _, err := xds.WithBootstrap([]byte(tc.bootstrap)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("WithBootstrap(%s) error %v, want one containing %q", tc.bootstrap, err, tc.want)
		}
	}
}

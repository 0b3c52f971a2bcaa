package runtime

import (
	"testing"
	"time"
)

// TestCallRulesLookup checks that the rules applied on xds:/// targets are
// looked up as grpc-go looks up a service config's method configs: a
// method's entry is complete, the defaults are the service's, and a hedged
// method's timeout is left to the hedging interceptor.
func TestCallRulesLookup(t *testing.T) {
	r := &ServiceRules{
		Service:  "greeter.v1.Greeter",
		Defaults: MethodRules{Timeout: 2 * time.Second, WaitForReady: true},
		Methods: map[string]MethodRules{
			"/greeter.v1.Greeter/Own":    {Timeout: 250 * time.Millisecond},
			"/greeter.v1.Greeter/Empty":  {},
			"/greeter.v1.Greeter/Hedged": {Timeout: time.Second, WaitForReady: true, Hedging: &HedgingPolicy{MaxAttempts: 2, Delay: time.Millisecond}},
		},
	}
	cr := newCallRules(r)
	if cr == nil {
		t.Fatal("newCallRules returned nil for rules with timeouts")
	}
	for _, tc := range []struct {
		method string
		want   callRule
	}{
		{"/greeter.v1.Greeter/Own", callRule{timeout: 250 * time.Millisecond}},
		{"/greeter.v1.Greeter/Empty", callRule{}},
		{"/greeter.v1.Greeter/Hedged", callRule{waitForReady: true}},
		{"/greeter.v1.Greeter/Other", callRule{timeout: 2 * time.Second, waitForReady: true}},
		{"/other.v1.Other/Call", callRule{}},
		{"/greeter.v1.GreeterX/Call", callRule{}},
	} {
		if got := cr.lookup(tc.method); got != tc.want {
			t.Errorf("lookup(%s) = %+v, want %+v", tc.method, got, tc.want)
		}
	}
	if cr := newCallRules(&ServiceRules{Service: "s", Methods: map[string]MethodRules{"/s/M": {HashKey: "id"}}}); cr != nil {
		t.Errorf("newCallRules of rules without timeouts or wait-for-ready = %+v, want nil", cr)
	}
	// Defaults without a service cover every method, as grpc's default
	// method config does.
	cr = newCallRules(&ServiceRules{Defaults: MethodRules{Timeout: time.Second}})
	if cr == nil {
		t.Fatal("newCallRules of defaults without a service = nil, want them for every method")
	}
	if got := cr.lookup("/any.v1.Service/Method"); got != (callRule{timeout: time.Second}) {
		t.Errorf("defaults without a service: lookup = %+v, want the 1s timeout", got)
	}
}

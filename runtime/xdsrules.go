package runtime

import (
	"context"
	"maps"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
)

// What wins where on an xds:/// target.
//
// The control plane owns the routing: grpc-go's xDS resolver supplies the
// service config (its loadBalancingConfig picks the cluster, and the
// cluster's policy picks the endpoint), and a config selector that gives
// each call its method config from the matched route. grpc-go then ignores
// the method configs of any other service config, lbclient's included. So
// that the annotations keep meaning what they say, Dial applies the rules
// that xDS has no say in, or only a bound, itself:
//
//   - Timeout: applied by lbclient as the call's deadline, as grpc-go would
//     apply the service config's. The route's max_stream_duration
//     (grpc_timeout_header_max, or the listener's max_stream_duration) is
//     applied by grpc-go too: the earlier deadline wins, as between the
//     caller's deadline and a service config's timeout. A hedged method's
//     timeout bounds all its attempts together, as on every target.
//   - WaitForReady: applied by lbclient as a call option ahead of the
//     caller's, which win. xDS has no such setting.
//   - Retry and RetryThrottling: the route's retry_policy (or its virtual
//     host's) governs retries; the rules' are not applied, because grpc-go
//     takes a call's retry policy from the config selector alone.
//   - HealthCheckService: not applied; the xDS service config has no
//     healthCheckConfig (EDS health status filters endpoints instead).
//   - Hedging and hash keys: lbclient's interceptor and pickers, unchanged.
//     A hash key routes under lbclient_consistent_hash; grpc-go's ring_hash
//     hashes by the route's hash_policy instead.
//   - Policy: the cluster's load-balancing policy; the rules' is not used.

// resolverOwnsServiceConfig reports whether target's resolver, not the
// rules, supplies grpc's service config: xds:/// targets, whose resolver's
// config is how the control plane routes.
func resolverOwnsServiceConfig(target string) bool {
	return strings.HasPrefix(target, "xds:")
}

// callRule is what the rules interceptors apply to a call of one method.
type callRule struct {
	timeout      time.Duration // 0: none (or the hedging interceptor's)
	waitForReady bool
}

// callRules holds the callRule of each method, for a connection whose
// service config is the resolver's.
type callRules struct {
	methods  map[string]callRule // by full method name; complete entries
	prefix   string              // "/<service>/": methods that take defaults
	defaults callRule
}

// newCallRules returns the timeouts and wait-for-ready of r, looked up as
// grpc-go looks up a service config's method configs: a method's own entry,
// else the defaults for methods of r.Service (of any service when it
// names none). It returns nil when
// no method has any.
func newCallRules(r *ServiceRules) *callRules {
	rule := func(m MethodRules) callRule {
		c := callRule{waitForReady: m.WaitForReady}
		if m.Hedging == nil { // a hedged method's timeout is the hedger's
			c.timeout = m.Timeout
		}
		return c
	}
	cr := &callRules{methods: make(map[string]callRule, len(r.Methods))}
	set := false
	for full, m := range r.Methods {
		c := rule(m)
		cr.methods[full] = c
		set = set || c != callRule{}
	}
	// The defaults cover the methods of r.Service, or every method when it
	// names none (as in the service config, see serviceConfig).
	cr.prefix = "/"
	if r.Service != "" {
		cr.prefix = "/" + r.Service + "/"
	}
	cr.defaults = rule(r.Defaults)
	set = set || cr.defaults != callRule{}
	if !set {
		return nil
	}
	return cr
}

func (cr *callRules) lookup(method string) callRule {
	if c, ok := cr.methods[method]; ok {
		return c
	}
	if strings.HasPrefix(method, cr.prefix) {
		return cr.defaults
	}
	return callRule{}
}

// waitForReady is the call option a rule's WaitForReady becomes.
var waitForReady = []grpc.CallOption{grpc.WaitForReady(true)}

// apply returns ctx with the rule's deadline and opts behind its call
// options, and the cancel func of the deadline (nil without one).
func (c callRule) apply(ctx context.Context, opts []grpc.CallOption) (context.Context, context.CancelFunc, []grpc.CallOption) {
	var cancel context.CancelFunc
	if c.timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
	}
	if c.waitForReady {
		opts = append(slices.Clip(waitForReady), opts...)
	}
	return ctx, cancel, opts
}

// unary is the innermost unary interceptor: grpc-go applies a service
// config's method config there too, below hedging and the caller's
// interceptors.
func (cr *callRules) unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	c := cr.lookup(method)
	if c == (callRule{}) {
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	ctx, cancel, opts := c.apply(ctx, opts)
	if cancel != nil {
		defer cancel()
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

// stream is the innermost stream interceptor. A timeout bounds the whole
// stream, as a service config's does; its timer is released when the
// stream ends.
func (cr *callRules) stream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	c := cr.lookup(method)
	if c == (callRule{}) {
		return streamer(ctx, desc, cc, method, opts...)
	}
	ctx, cancel, opts := c.apply(ctx, opts)
	if cancel != nil {
		opts = append(opts, grpc.OnFinish(func(error) { cancel() }))
	}
	s, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil && cancel != nil {
		cancel()
	}
	return s, err
}

// notAppliedUnderXDS lists the rules that an xds:/// target does not apply
// (see above), for Dial's log.
func notAppliedUnderXDS(r *ServiceRules) []string {
	var out []string
	if r.Defaults.Retry != nil && r.Service != "" {
		out = append(out, "retry policy of "+r.Service+"'s defaults")
	}
	for _, full := range slices.Sorted(maps.Keys(r.Methods)) {
		if r.Methods[full].Retry != nil {
			out = append(out, "retry policy of "+full)
		}
	}
	if r.RetryThrottling != nil {
		out = append(out, "retry throttling")
	}
	if r.HealthCheckService != "" {
		out = append(out, "health checking of "+r.HealthCheckService)
	}
	if r.Policy != PolicyUnspecified {
		out = append(out, "policy "+r.Policy.String())
	}
	return out
}

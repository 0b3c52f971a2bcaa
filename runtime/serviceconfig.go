package runtime

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/lbclient/lbclient/runtime/balancer/consistenthash"
	"github.com/lbclient/lbclient/runtime/balancer/observe"
	"github.com/lbclient/lbclient/runtime/balancer/peakewma"
)

// grpc-go's names for the policies it implements.
const (
	pickFirstName          = "pick_first"
	roundRobinName         = "round_robin"
	leastRequestName       = "least_request_experimental"
	weightedRoundRobinName = "weighted_round_robin"
)

// The JSON form of grpc's service config (gRFC A2, and the
// grpc.service_config.ServiceConfig message), as far as lbclient writes it.
type serviceConfigJSON struct {
	LoadBalancingConfig []map[string]any     `json:"loadBalancingConfig"`
	MethodConfig        []methodConfigJSON   `json:"methodConfig,omitempty"`
	RetryThrottling     *retryThrottlingJSON `json:"retryThrottling,omitempty"`
	HealthCheckConfig   *healthCheckJSON     `json:"healthCheckConfig,omitempty"`
}

type methodNameJSON struct {
	Service string `json:"service"`
	Method  string `json:"method,omitempty"`
}

type methodConfigJSON struct {
	Name         []methodNameJSON `json:"name"`
	WaitForReady *bool            `json:"waitForReady,omitempty"`
	Timeout      string           `json:"timeout,omitempty"`
	RetryPolicy  *retryPolicyJSON `json:"retryPolicy,omitempty"`
}

type retryPolicyJSON struct {
	MaxAttempts          int      `json:"maxAttempts"`
	InitialBackoff       string   `json:"initialBackoff"`
	MaxBackoff           string   `json:"maxBackoff"`
	BackoffMultiplier    float64  `json:"backoffMultiplier"`
	RetryableStatusCodes []string `json:"retryableStatusCodes"`
}

type retryThrottlingJSON struct {
	MaxTokens  int     `json:"maxTokens"`
	TokenRatio float64 `json:"tokenRatio"`
}

type healthCheckJSON struct {
	ServiceName string `json:"serviceName"`
}

// serviceConfig renders the effective rules as grpc service config JSON.
// statsID names the lbstats sink the balancer publishes its counters to;
// det, when set, is WithDeterministicSubset's subsetting.
// Hedging is left out: grpc-go ignores hedgingPolicy, so lbclient's
// interceptor does it.
func serviceConfig(r *ServiceRules, statsID string, det *deterministicSubset) (string, error) {
	sc := serviceConfigJSON{
		LoadBalancingConfig: []map[string]any{subsetConfig(loadBalancingConfig(r.Policy, statsID), r.SubsetSize, det)},
	}
	if r.HealthCheckService != "" {
		sc.HealthCheckConfig = &healthCheckJSON{ServiceName: r.HealthCheckService}
	}
	if t := r.RetryThrottling; t != nil {
		sc.RetryThrottling = &retryThrottlingJSON{MaxTokens: t.MaxTokens, TokenRatio: t.TokenRatio}
	}
	// The defaults apply to the service's methods, or, with no service
	// named (Dial with rules of its own making, or none and
	// WithDefaultRules), to every method: grpc's default method config, a
	// name with neither service nor method (gRFC A2).
	if mc, ok := methodConfig(r.Defaults, methodNameJSON{Service: r.Service}); ok {
		sc.MethodConfig = append(sc.MethodConfig, mc)
	}
	for _, full := range slices.Sorted(maps.Keys(r.Methods)) {
		svc, method, err := splitFullMethod(full)
		if err != nil {
			return "", err
		}
		// A method entry is complete, so it is written even when empty:
		// otherwise the service defaults would apply to it.
		mc, _ := methodConfig(r.Methods[full], methodNameJSON{Service: svc, Method: method})
		sc.MethodConfig = append(sc.MethodConfig, mc)
	}
	b, err := json.Marshal(sc)
	if err != nil {
		return "", fmt.Errorf("lbclient: service config: %w", err)
	}
	return string(b), nil
}

// loadBalancingConfig is the loadBalancingConfig entry of policy p. grpc-go's
// own policies run under lbclient's observe parent, which counts picks,
// in-flight calls and failures per endpoint for Conn.Endpoints and keeps
// hedged attempts apart.
func loadBalancingConfig(p Policy, statsID string) map[string]any {
	child := func(name string) map[string]any {
		return map[string]any{observe.Name: map[string]any{
			"statsId":     statsID,
			"childPolicy": []map[string]any{{name: map[string]any{}}},
		}}
	}
	switch p.resolve() {
	case PickFirst:
		return child(pickFirstName)
	case RoundRobin:
		return child(roundRobinName)
	case LeastRequest:
		return child(leastRequestName)
	case WeightedRoundRobin:
		return child(weightedRoundRobinName)
	case ConsistentHash:
		return map[string]any{consistenthash.Name: map[string]any{"statsId": statsID}}
	default:
		return map[string]any{peakewma.Name: map[string]any{"statsId": statsID}}
	}
}

// methodConfig converts m to a methodConfig entry for name, and reports
// whether it holds anything grpc acts on.
func methodConfig(m MethodRules, name methodNameJSON) (methodConfigJSON, bool) {
	mc := methodConfigJSON{Name: []methodNameJSON{name}}
	set := false
	if m.WaitForReady {
		t := true
		mc.WaitForReady = &t
		set = true
	}
	// A hedged method's timeout bounds all its attempts together and is
	// enforced by the hedging interceptor (hedge.Policy.Timeout). Written
	// here too, it would make grpc-go wrap every attempt in a second,
	// redundant deadline: three allocations per attempt for nothing.
	if m.Timeout > 0 && m.Hedging == nil {
		mc.Timeout = jsonDuration(m.Timeout)
		set = true
	}
	if rp := m.Retry; rp != nil {
		mc.RetryPolicy = &retryPolicyJSON{
			MaxAttempts:          rp.MaxAttempts,
			InitialBackoff:       jsonDuration(rp.InitialBackoff),
			MaxBackoff:           jsonDuration(rp.MaxBackoff),
			BackoffMultiplier:    rp.BackoffMultiplier,
			RetryableStatusCodes: codeNames(rp.RetryableCodes),
		}
		set = true
	}
	return mc, set
}

// jsonDuration writes d as the JSON form of google.protobuf.Duration:
// seconds with up to nine decimals and an "s".
func jsonDuration(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "s"
}

// codeNames returns the canonical names of cs ("UNAVAILABLE").
func codeNames(cs []codes.Code) []string {
	names := make([]string, len(cs))
	for i, c := range cs {
		names[i] = codeName(c)
	}
	return names
}

// canonicalCodeNames are the status codes' names in gRPC's specification
// (doc/statuscodes.md), as the annotations and grpc's service config write them.
var canonicalCodeNames = [...]string{
	codes.OK:                 "OK",
	codes.Canceled:           "CANCELLED",
	codes.Unknown:            "UNKNOWN",
	codes.InvalidArgument:    "INVALID_ARGUMENT",
	codes.DeadlineExceeded:   "DEADLINE_EXCEEDED",
	codes.NotFound:           "NOT_FOUND",
	codes.AlreadyExists:      "ALREADY_EXISTS",
	codes.PermissionDenied:   "PERMISSION_DENIED",
	codes.ResourceExhausted:  "RESOURCE_EXHAUSTED",
	codes.FailedPrecondition: "FAILED_PRECONDITION",
	codes.Aborted:            "ABORTED",
	codes.OutOfRange:         "OUT_OF_RANGE",
	codes.Unimplemented:      "UNIMPLEMENTED",
	codes.Internal:           "INTERNAL",
	codes.Unavailable:        "UNAVAILABLE",
	codes.DataLoss:           "DATA_LOSS",
	codes.Unauthenticated:    "UNAUTHENTICATED",
}

// codeName returns the canonical name of c ("UNAVAILABLE"), or its number
// for a code outside the specification.
func codeName(c codes.Code) string {
	if int(c) < len(canonicalCodeNames) {
		return canonicalCodeNames[c]
	}
	return strconv.FormatUint(uint64(c), 10)
}

// splitFullMethod splits "/pkg.Service/Method" into its service and method.
func splitFullMethod(full string) (service, method string, err error) {
	rest, ok := strings.CutPrefix(full, "/")
	if ok {
		service, method, ok = strings.Cut(rest, "/")
	}
	if !ok || service == "" || method == "" || strings.Contains(method, "/") {
		return "", "", fmt.Errorf("method name %q is not of the form \"/package.Service/Method\"", full)
	}
	return service, method, nil
}

package overhead

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	greeterv1 "github.com/lbclient/lbclient/gen/greeter/v1"
	"github.com/lbclient/lbclient/gen/greeter/v1/greeterv1lbclient"
	"github.com/lbclient/lbclient/runtime"
	"github.com/lbclient/lbclient/runtime/hedge"
)

// The rules comparison: the generated client with the example's rules
// against protoc-gen-go-grpc's stub dialled with the service config that
// lbclient's runtime writes for the same rules, so that grpc-go's own
// timeout, retry, wait-for-ready and throttling machinery is in both and the
// ratio is what lbclient adds.

// ServiceConfigOf returns the service config JSON that runtime.Dial writes
// for rules, as the runtime logs it at Debug level ("lbclient: dialled",
// attribute serviceConfig); the connection is closed at once, before any
// I/O.
func ServiceConfigOf(rules *runtime.ServiceRules) (string, error) {
	h := &scCapture{}
	conn, err := runtime.Dial(Target, rules, runtime.WithInsecure(), runtime.WithLogger(slog.New(h)))
	if err != nil {
		return "", err
	}
	conn.Close()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sc == "" {
		return "", errors.New("runtime.Dial logged no serviceConfig")
	}
	return h.sc, nil
}

// scCapture is a slog.Handler that keeps the serviceConfig attribute.
type scCapture struct {
	mu sync.Mutex
	sc string
}

func (h *scCapture) Enabled(context.Context, slog.Level) bool { return true }
func (h *scCapture) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *scCapture) WithGroup(string) slog.Handler            { return h }
func (h *scCapture) Handle(_ context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "serviceConfig" {
			h.mu.Lock()
			h.sc = a.Value.String()
			h.mu.Unlock()
		}
		return true
	})
	return nil
}

// WithRoundRobin returns service config sc with its loadBalancingConfig
// replaced by round_robin, grpc-go's own: the rest (methodConfig,
// retryThrottling, healthCheckConfig) is kept as it is.
func WithRoundRobin(sc string) (string, error) {
	var m map[string]any
	if err := json.Unmarshal([]byte(sc), &m); err != nil {
		return "", err
	}
	m["loadBalancingConfig"] = []any{map[string]any{"round_robin": map[string]any{}}}
	b, err := json.Marshal(m)
	return string(b), err
}

// Unhedged returns a copy of rules without hedging: each hedged method keeps
// its timeout and wait_for_ready. For a hedged method lbclient leaves the
// timeout out of the service config, because its hedging interceptor
// enforces it over all attempts; without hedging the timeout is in the
// service config, where grpc-go enforces it.
func Unhedged(rules *runtime.ServiceRules) *runtime.ServiceRules {
	r := *rules
	r.Methods = maps.Clone(rules.Methods)
	for name, m := range r.Methods {
		if m.Hedging != nil {
			m.Hedging = nil
			r.Methods[name] = m
		}
	}
	return &r
}

// SayHelloRetried is SayHello's rule of the example with its hedging
// replaced by the service defaults' retry policy: an unhedged method with
// timeout (1s), wait_for_ready and retry, as GreetAccount has, but without
// a hash key.
func SayHelloRetried() runtime.MethodRules {
	r := greeterv1lbclient.GreeterRules()
	m := r.Methods[greeterv1lbclient.GreeterSayHelloFullMethodName]
	m.Hedging = nil
	m.Retry = r.Defaults.Retry
	return m
}

// StubWithServiceConfig is protoc-gen-go-grpc's stub on grpc.NewClient with
// service config sc, calling method.
func StubWithServiceConfig(name, sc, method string) Variant {
	return Variant{Name: name, Baseline: true, Dial: func(s *Server) (Client, error) {
		cc, err := grpc.NewClient(Target, s.DialOption(),
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultServiceConfig(sc))
		if err != nil {
			return Client{}, err
		}
		return Client{Greeter: greeterv1.NewGreeterClient(cc), Method: method, Close: func() { cc.Close() }}, nil
	}}
}

// Generated is the lbclient-generated client, NewGreeterClient with the
// annotations' rules and opts, calling method.
func Generated(name, base, method string, opts ...runtime.Option) Variant {
	return Variant{Name: name, Base: base, Dial: func(s *Server) (Client, error) {
		opts := append([]runtime.Option{runtime.WithInsecure(), runtime.WithDialOptions(s.DialOption())}, opts...)
		c, err := greeterv1lbclient.NewGreeterClient(Target, opts...)
		if err != nil {
			return Client{}, err
		}
		return Client{Greeter: c, Method: method, Close: func() { c.Close() },
			Hedging: func() hedge.Counters { return c.Conn().Stats().Hedging.Counters }}, nil
	}}
}

// RuleRow is one lbclient client of the rules comparison and what it is.
type RuleRow struct {
	Variant
	// Method is the method it calls (SayHello or GreetAccount).
	Method string
	// Hedged is true for the hedged SayHello, which grpc-go cannot do: its
	// ratio is the price of hedging, not held to the overhead goal.
	Hedged bool
}

// Names of the rules comparison's baselines.
const (
	StubBare       = "grpc stub, round_robin, no rules"
	StubRules      = "grpc stub + service config of the annotations (hedging off)"
	StubRulesRetry = "grpc stub + service config with SayHello retried"
)

// RulesVariants are the clients of the rules comparison: the baselines
// (the bare stub first, then protoc-gen-go-grpc's stub dialled with the
// runtime's service config, LB policy swapped to round_robin) and the
// generated client with the rules, each paired with its baseline. It also
// returns the two service configs, for the report.
//
//   - GreetAccount under the annotations' rules (timeout 2s, wait_for_ready,
//     retry, retry throttling, and its hash key put on the context by the
//     generated method), against the stub's GreetAccount with the service
//     config of the annotations;
//   - SayHello with its hedging replaced by the defaults' retry (timeout 1s,
//     wait_for_ready, retry), against the stub's SayHello with the service
//     config of those rules;
//   - the hedged SayHello of the annotations (timeout 1s over its attempts,
//     wait_for_ready, hedging at p97), against the stub's SayHello with the
//     annotations' service config without hedging (timeout 1s per call,
//     wait_for_ready): the price of hedging.
func RulesVariants() (baselines []Variant, rows []RuleRow, scRules, scRetry string, err error) {
	ann := greeterv1lbclient.GreeterRules()
	scRules, err = ServiceConfigOf(Unhedged(ann))
	if err == nil {
		scRules, err = WithRoundRobin(scRules)
	}
	if err != nil {
		return nil, nil, "", "", fmt.Errorf("service config of the annotations: %w", err)
	}
	retried := greeterv1lbclient.GreeterRules()
	retried.Methods[greeterv1lbclient.GreeterSayHelloFullMethodName] = SayHelloRetried()
	scRetry, err = ServiceConfigOf(retried)
	if err == nil {
		scRetry, err = WithRoundRobin(scRetry)
	}
	if err != nil {
		return nil, nil, "", "", fmt.Errorf("service config with SayHello retried: %w", err)
	}
	if !strings.Contains(scRetry, `"retryPolicy"`) || !strings.Contains(scRules, `"timeout"`) {
		return nil, nil, "", "", fmt.Errorf("unexpected service configs:\n%s\n%s", scRules, scRetry)
	}
	p := PlainStub()
	p.Name = StubBare
	baselines = []Variant{
		p,
		StubWithServiceConfig(StubRules, scRules, ""),
		StubWithServiceConfig(StubRules+", GreetAccount", scRules, GreetAccount),
		StubWithServiceConfig(StubRulesRetry, scRetry, ""),
	}
	rows = []RuleRow{
		{Variant: Generated("generated GreetAccount, annotations' rules", StubRules+", GreetAccount", GreetAccount), Method: GreetAccount},
		{Variant: Generated("generated SayHello, hedging replaced by the defaults' retry", StubRulesRetry, "",
			runtime.WithMethodRules(greeterv1lbclient.GreeterSayHelloFullMethodName, SayHelloRetried())), Method: SayHello},
		{Variant: Generated("generated SayHello, hedged (annotations' rules)", StubRules, ""), Method: SayHello, Hedged: true},
	}
	return baselines, rows, scRules, scRetry, nil
}

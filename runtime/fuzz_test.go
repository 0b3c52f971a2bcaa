package runtime

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"

	"github.com/lbclient/lbclient/runtime/hedge"
)

// FuzzValidateRules builds rules from the fuzzer's numbers and names, in
// the defaults or in one method's entry, and checks what Dial relies on:
// validateRules never panics, and rules it accepts always become a service
// config that grpc-go's own parser accepts (balancer configs included) and
// hedging policies that the hedge package accepts. Rules that passed
// validation only to fail inside JSON encoding (a +Inf multiplier) or in
// grpc-go are what it looks for.
//
//	go test ./runtime -run '^$' -fuzz '^FuzzValidateRules$' -parallel 1 -fuzztime 2m
func FuzzValidateRules(f *testing.F) {
	parse := serviceConfigParser(f)
	f.Add("greeter.v1.Greeter", "/greeter.v1.Greeter/SayHello", false, 5, int64(time.Second), true,
		3, int64(10*time.Millisecond), int64(time.Second), 2.0, []byte{14},
		0, int64(0), 0.0, []byte(nil), 10, 0.1)
	f.Add("", "/unknown.v1.S/M", true, 6, int64(0), false,
		0, int64(0), int64(0), 0.0, []byte(nil),
		2, int64(0), 95.0, []byte{14, 4}, 0, 0.0)
	f.Add("s.S", "/s.S/M", false, 1, int64(-1), true,
		5, int64(2*time.Second), int64(time.Second), math.Inf(1), []byte{0, 14, 14, 99},
		2, int64(time.Millisecond), 0.0, []byte(nil), 1001, math.NaN())
	// Valid but for a non-finite number each.
	f.Add("s.S", "/s.S/M", true, 5, int64(0), false,
		2, int64(time.Millisecond), int64(time.Second), math.Inf(1), []byte{14},
		0, int64(0), 0.0, []byte(nil), 0, 0.0)
	f.Add("s.S", "/s.S/M", false, 5, int64(0), false,
		0, int64(0), int64(0), 0.0, []byte(nil),
		0, int64(0), 0.0, []byte(nil), 10, math.Inf(1))
	f.Fuzz(func(t *testing.T, service, method string, inDefaults bool, policy int, timeout int64, waitForReady bool,
		retryAttempts int, initialBackoff, maxBackoff int64, multiplier float64, retryCodes []byte,
		hedgeAttempts int, delay int64, percentile float64, nonFatal []byte,
		maxTokens int, tokenRatio float64) {
		m := MethodRules{Timeout: time.Duration(timeout), WaitForReady: waitForReady}
		if retryAttempts != 0 {
			m.Retry = &RetryPolicy{MaxAttempts: retryAttempts, InitialBackoff: time.Duration(initialBackoff),
				MaxBackoff: time.Duration(maxBackoff), BackoffMultiplier: multiplier, RetryableCodes: fuzzCodes(retryCodes)}
		}
		if hedgeAttempts != 0 {
			m.Hedging = &HedgingPolicy{MaxAttempts: hedgeAttempts, Delay: time.Duration(delay),
				DelayPercentile: percentile, NonFatalCodes: fuzzCodes(nonFatal)}
		}
		r := &ServiceRules{Service: service, Policy: Policy(policy)}
		if inDefaults {
			r.Defaults = m
		} else {
			r.Methods = map[string]MethodRules{method: m}
		}
		if maxTokens != 0 {
			r.RetryThrottling = &RetryThrottling{MaxTokens: maxTokens, TokenRatio: tokenRatio}
		}
		if validateRules(r, map[string]bool{method: true}) != nil {
			return
		}
		sc, err := serviceConfig(r, "lbstats-fuzz", nil)
		if err != nil {
			t.Fatalf("valid rules %+v (method %+v): serviceConfig: %v", r, m, err)
		}
		if !json.Valid([]byte(sc)) {
			t.Fatalf("valid rules %+v: service config is not JSON: %s", r, sc)
		}
		if err := parse(sc); err != nil {
			t.Fatalf("valid rules %+v (method %+v): grpc refuses the service config %s: %v", r, m, sc, err)
		}
		if hedged := hedgedMethods(r); len(hedged) > 0 {
			if _, err := hedge.New(hedged); err != nil {
				t.Fatalf("valid rules %+v (method %+v): hedge.New: %v", r, m, err)
			}
		}
	})
}

// fuzzCodes reads each byte as a status code, canonical or not.
func fuzzCodes(b []byte) []codes.Code {
	var cs []codes.Code
	for _, c := range b {
		cs = append(cs, codes.Code(c))
	}
	return cs
}

// serviceConfigParser returns grpc-go's service config parser, as a
// resolver meets it: through the ClientConn of a channel built with a
// manual resolver, closed when the test ends.
func serviceConfigParser(f testing.TB) func(string) error {
	r := manual.NewBuilderWithScheme("lbclient-fuzz")
	built := make(chan resolver.ClientConn, 1)
	r.BuildCallback = func(_ resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) { built <- cc }
	cc, err := grpc.NewClient(r.Scheme()+":///fuzz", grpc.WithResolvers(r), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { cc.Close() })
	cc.Connect()
	var rcc resolver.ClientConn
	select {
	case rcc = <-built:
	case <-time.After(10 * time.Second):
		f.Fatal("the manual resolver was not built within 10s")
	}
	return func(sc string) error {
		res := rcc.ParseServiceConfig(sc)
		return res.Err
	}
}

// TestServiceConfigParser checks FuzzValidateRules' oracle: grpc-go's
// parser accepts the service config of valid rules and refuses a policy it
// does not know and a malformed config of lbclient's own balancer.
func TestServiceConfigParser(t *testing.T) {
	parse := serviceConfigParser(t)
	r := &ServiceRules{Service: "s.S", Policy: ConsistentHash, Defaults: MethodRules{Timeout: time.Second}}
	sc, err := serviceConfig(r, "lbstats-test", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := parse(sc); err != nil {
		t.Errorf("grpc refuses the service config of valid rules %s: %v", sc, err)
	}
	for _, bad := range []string{
		`{"loadBalancingConfig":[{"no_such_policy":{}}]}`,
		`{"loadBalancingConfig":[{"lbclient_consistent_hash":{"statsId":7}}]}`,
		`{"methodConfig":[{"name":[{"service":"s.S"}],"timeout":"forever"}]}`,
	} {
		if parse(bad) == nil {
			t.Errorf("grpc accepts the service config %s", bad)
		}
	}
}

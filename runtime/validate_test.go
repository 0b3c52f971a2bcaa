package runtime

import (
	"math"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
)

func TestValidateRules(t *testing.T) {
	retry := func(f func(*RetryPolicy)) *RetryPolicy {
		r := &RetryPolicy{MaxAttempts: 3, InitialBackoff: time.Millisecond, MaxBackoff: time.Second, BackoffMultiplier: 2, RetryableCodes: []codes.Code{codes.Unavailable}}
		f(r)
		return r
	}
	hedging := func(f func(*HedgingPolicy)) *HedgingPolicy {
		h := &HedgingPolicy{MaxAttempts: 2, Delay: time.Millisecond}
		f(h)
		return h
	}
	const m = "/s.S/M"
	for _, tc := range []struct {
		name  string
		rules ServiceRules
		want  string
	}{
		{"ok", ServiceRules{Methods: map[string]MethodRules{m: {Retry: retry(func(*RetryPolicy) {})}}}, ""},
		{"policy", ServiceRules{Policy: 42}, "Policy: unknown policy Policy(42)"},
		{"negative timeout", ServiceRules{Defaults: MethodRules{Timeout: -time.Second}}, "default rules: Timeout: -1s is negative"},
		{"retry attempts", ServiceRules{Methods: map[string]MethodRules{m: {Retry: retry(func(r *RetryPolicy) { r.MaxAttempts = 6 })}}}, "rules of /s.S/M: Retry.MaxAttempts: 6 is outside [2, 5]"},
		{"initial backoff", ServiceRules{Methods: map[string]MethodRules{m: {Retry: retry(func(r *RetryPolicy) { r.InitialBackoff = 0 })}}}, "rules of /s.S/M: Retry.InitialBackoff: 0s is not greater than 0"},
		{"max backoff", ServiceRules{Methods: map[string]MethodRules{m: {Retry: retry(func(r *RetryPolicy) { r.MaxBackoff = -1 })}}}, "rules of /s.S/M: Retry.MaxBackoff: -1ns is not greater than 0"},
		{"multiplier", ServiceRules{Methods: map[string]MethodRules{m: {Retry: retry(func(r *RetryPolicy) { r.BackoffMultiplier = 0 })}}}, "rules of /s.S/M: Retry.BackoffMultiplier: 0 is not a finite number greater than 0"},
		{"multiplier infinite", ServiceRules{Methods: map[string]MethodRules{m: {Retry: retry(func(r *RetryPolicy) { r.BackoffMultiplier = math.Inf(1) })}}}, "rules of /s.S/M: Retry.BackoffMultiplier: +Inf is not a finite number greater than 0"},
		{"multiplier NaN", ServiceRules{Defaults: MethodRules{Retry: retry(func(r *RetryPolicy) { r.BackoffMultiplier = math.NaN() })}}, "default rules: Retry.BackoffMultiplier: NaN is not a finite number greater than 0"},
		{"initial backoff above max", ServiceRules{Methods: map[string]MethodRules{m: {Retry: retry(func(r *RetryPolicy) { r.InitialBackoff = 2 * time.Second })}}}, "rules of /s.S/M: Retry.InitialBackoff: 2s is greater than MaxBackoff 1s"},
		{"initial backoff equal to max", ServiceRules{Methods: map[string]MethodRules{m: {Retry: retry(func(r *RetryPolicy) { r.InitialBackoff = time.Second })}}}, ""},
		{"duplicate codes count once", ServiceRules{Methods: map[string]MethodRules{m: {Retry: retry(func(r *RetryPolicy) { r.RetryableCodes = []codes.Code{codes.Unavailable, codes.Unavailable} })}}}, ""},
		{"no codes", ServiceRules{Methods: map[string]MethodRules{m: {Retry: retry(func(r *RetryPolicy) { r.RetryableCodes = nil })}}}, "rules of /s.S/M: Retry.RetryableCodes: empty: name at least one code to retry"},
		{"retry OK", ServiceRules{Methods: map[string]MethodRules{m: {Retry: retry(func(r *RetryPolicy) { r.RetryableCodes = []codes.Code{codes.OK} })}}}, "rules of /s.S/M: Retry.RetryableCodes: OK cannot be retried"},
		{"both", ServiceRules{Methods: map[string]MethodRules{m: {Retry: retry(func(*RetryPolicy) {}), Hedging: hedging(func(*HedgingPolicy) {})}}}, "rules of /s.S/M: Retry and Hedging are both set: a method retries or hedges, not both"},
		{"hedge attempts", ServiceRules{Methods: map[string]MethodRules{m: {Hedging: hedging(func(h *HedgingPolicy) { h.MaxAttempts = 1 })}}}, "rules of /s.S/M: Hedging: hedge: MaxAttempts is 1, want 2 to 5"},
		{"hedge delay", ServiceRules{Methods: map[string]MethodRules{m: {Hedging: hedging(func(h *HedgingPolicy) { h.Delay = 0 })}}}, "rules of /s.S/M: Hedging: hedge: neither Delay nor DelayPercentile is set, want one of them"},
		{"hedge both delays", ServiceRules{Methods: map[string]MethodRules{m: {Hedging: hedging(func(h *HedgingPolicy) { h.DelayPercentile = 95 })}}}, "rules of /s.S/M: Hedging: hedge: Delay is 1ms and DelayPercentile is 95, want only one of them"},
		{"hedge percentile", ServiceRules{Methods: map[string]MethodRules{m: {Hedging: hedging(func(h *HedgingPolicy) { h.Delay, h.DelayPercentile = 0, 100 })}}}, "rules of /s.S/M: Hedging: hedge: DelayPercentile is 100, want more than 0 and less than 100"},
		{"hedge in defaults", ServiceRules{Defaults: MethodRules{Hedging: hedging(func(*HedgingPolicy) {})}}, "default rules: Hedging: hedging is for named idempotent methods: give it with WithMethodRules"},
		{"method name", ServiceRules{Methods: map[string]MethodRules{"SayHello": {}}}, `method name "SayHello" is not of the form "/package.Service/Method"`},
		{"throttling tokens", ServiceRules{RetryThrottling: &RetryThrottling{MaxTokens: 1001, TokenRatio: 1}}, "RetryThrottling.MaxTokens: 1001 is outside [1, 1000]"},
		{"dns refresh off", ServiceRules{DNSRefresh: -1}, ""},
		{"dns refresh bounds", ServiceRules{DNSRefresh: MinDNSRefresh}, ""},
		{"dns refresh upper bound", ServiceRules{DNSRefresh: MaxDNSRefresh}, ""},
		{"dns refresh short", ServiceRules{DNSRefresh: 500 * time.Millisecond}, "DNSRefresh: 500ms is outside [1s, 1h0m0s] (a negative interval turns refresh off)"},
		{"dns refresh long", ServiceRules{DNSRefresh: MaxDNSRefresh + time.Second}, "DNSRefresh: 1h0m1s is outside [1s, 1h0m0s] (a negative interval turns refresh off)"},
		{"throttling ratio", ServiceRules{RetryThrottling: &RetryThrottling{MaxTokens: 10}}, "RetryThrottling.TokenRatio: 0 is not a finite number greater than 0"},
		{"throttling ratio infinite", ServiceRules{RetryThrottling: &RetryThrottling{MaxTokens: 10, TokenRatio: math.Inf(1)}}, "RetryThrottling.TokenRatio: +Inf is not a finite number greater than 0"},
		{"hedge percentile NaN", ServiceRules{Methods: map[string]MethodRules{m: {Hedging: hedging(func(h *HedgingPolicy) { h.Delay, h.DelayPercentile = 0, math.NaN() })}}}, "rules of /s.S/M: Hedging: hedge: DelayPercentile is NaN, want more than 0 and less than 100"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := validateRules(&tc.rules, nil)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("validateRules: %v, want no error", err)
				}
				if _, err := serviceConfig(&tc.rules, "id", nil); err != nil {
					t.Fatalf("valid rules, yet serviceConfig: %v", err)
				}
				return
			}
			if err == nil || err.Error() != tc.want {
				t.Fatalf("validateRules error = %v\nwant %s", err, tc.want)
			}
		})
	}
}

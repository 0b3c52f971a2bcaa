package runtime

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"google.golang.org/grpc/codes"
)

// The bounds of the rules, as in gRFC A6 for retries and hedging (grpc
// clamps maxAttempts above 5 silently; lbclient says so instead) and the
// service config's retryThrottling.
const (
	minAttempts  = 2
	maxAttempts  = 5
	maxRetryToks = 1000
)

// validateRules checks r after the options are applied.
func validateRules(r *ServiceRules) error {
	var errs []error
	if r.Policy < PolicyUnspecified || r.Policy > ConsistentHash {
		errs = append(errs, fmt.Errorf("Policy: unknown policy %v", r.Policy))
	}
	if r.Defaults.Hedging != nil {
		errs = append(errs, errors.New("default rules: Hedging: hedging is for named idempotent methods: give it with WithMethodRules"))
	}
	if err := validateMethodRules(r.Defaults); err != nil {
		errs = append(errs, fmt.Errorf("default rules: %w", err))
	}
	for _, full := range slices.Sorted(maps.Keys(r.Methods)) {
		if _, _, err := splitFullMethod(full); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := validateMethodRules(r.Methods[full]); err != nil {
			errs = append(errs, fmt.Errorf("rules of %s: %w", full, err))
		}
	}
	if t := r.RetryThrottling; t != nil {
		if t.MaxTokens < 1 || t.MaxTokens > maxRetryToks {
			errs = append(errs, fmt.Errorf("RetryThrottling.MaxTokens: %d is outside [1, %d]", t.MaxTokens, maxRetryToks))
		}
		if !(t.TokenRatio > 0) {
			errs = append(errs, fmt.Errorf("RetryThrottling.TokenRatio: %v is not greater than 0", t.TokenRatio))
		}
	}
	return errors.Join(errs...)
}

// validateMethodRules checks the shape of m. Whether hedging suits the
// method (idempotent, unary) is known only to the generator, from the
// .proto; it checks that too.
func validateMethodRules(m MethodRules) error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if m.Timeout < 0 {
		add("Timeout: %v is negative", m.Timeout)
	}
	if m.Retry != nil && m.Hedging != nil {
		add("Retry and Hedging are both set: a method retries or hedges, not both")
	}
	if rp := m.Retry; rp != nil {
		if rp.MaxAttempts < minAttempts || rp.MaxAttempts > maxAttempts {
			add("Retry.MaxAttempts: %d is outside [%d, %d]", rp.MaxAttempts, minAttempts, maxAttempts)
		}
		if rp.InitialBackoff <= 0 {
			add("Retry.InitialBackoff: %v is not greater than 0", rp.InitialBackoff)
		}
		if rp.MaxBackoff <= 0 {
			add("Retry.MaxBackoff: %v is not greater than 0", rp.MaxBackoff)
		}
		if !(rp.BackoffMultiplier > 0) {
			add("Retry.BackoffMultiplier: %v is not greater than 0", rp.BackoffMultiplier)
		}
		if len(rp.RetryableCodes) == 0 {
			add("Retry.RetryableCodes: empty: name at least one code to retry")
		}
		for _, c := range rp.RetryableCodes {
			if c == codes.OK || int(c) >= len(canonicalCodeNames) {
				add("Retry.RetryableCodes: %s cannot be retried", codeName(c))
			}
		}
	}
	if hp := m.Hedging; hp != nil {
		if err := hedgePolicy(hp).Validate(); err != nil {
			errs = append(errs, fmt.Errorf("Hedging: %w", err))
		}
	}
	return errors.Join(errs...)
}

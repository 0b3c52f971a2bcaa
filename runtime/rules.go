package runtime

import (
	"time"

	"google.golang.org/grpc/codes"
)

// ServiceRules are the rules of one service's client, as the annotations of
// the .proto file give them: generated constructors pass them to Dial as a Go
// literal. The fields mirror the lbclient.v1.ServiceRules message.
type ServiceRules struct {
	// Service is the full name of the service, such as "greeter.v1.Greeter".
	Service string
	// DefaultTarget is dialled when the constructor is given "".
	DefaultTarget string
	// Policy is the load-balancing policy; PolicyUnspecified means PeakEWMA.
	Policy Policy
	// HealthCheckService, when not empty, turns on client-side health
	// checking against this service name of grpc.health.v1.Health.
	HealthCheckService string
	// DNSRefresh is how often targets resolved by DNS are looked up again
	// (WithDNSRefresh has the details): 0 means DefaultDNSRefresh, a
	// negative value turns refresh off, and any other value must be within
	// [MinDNSRefresh, MaxDNSRefresh].
	DNSRefresh time.Duration
	// SubsetSize, when not zero, connects each client to that many of the
	// target's backends (WithSubsetSize has the details); at most
	// MaxSubsetSize.
	SubsetSize int
	// Defaults apply to every method that has no entry in Methods, streams
	// included. They cannot hedge: hedging is only for idempotent unary
	// methods, named one by one in Methods (the generator refuses hedging
	// in the defaults of the annotations, and Dial refuses it here).
	// Generated rules give every server-streaming and bidi method an entry
	// of its own when the annotations' defaults have a timeout, so that
	// the timeout, meant for calls that end with their request, does not
	// cut long streams.
	Defaults MethodRules
	// Methods holds the rules of the methods that have their own, keyed by
	// full method name ("/greeter.v1.Greeter/SayHello"). An entry is
	// complete: it replaces Defaults for that method. Generated code has
	// already merged each method's annotation over the service defaults.
	Methods map[string]MethodRules
	// RetryThrottling bounds retries across all calls (gRFC A6); nil leaves
	// retries unthrottled.
	RetryThrottling *RetryThrottling
}

// MethodRules are the rules for calls of one method. The fields mirror the
// lbclient.v1.MethodRules message. The zero value means no rules: no
// timeout, fail fast, no retries, no hedging.
type MethodRules struct {
	// Timeout is the deadline of each call when the caller's context has
	// none sooner; zero means none.
	Timeout time.Duration
	// WaitForReady makes calls wait for a ready backend instead of failing
	// fast with UNAVAILABLE.
	WaitForReady bool
	// Retry retries failed attempts through grpc-go's retry support.
	// Not together with Hedging.
	Retry *RetryPolicy
	// Hedging sends further attempts of slow calls to other backends.
	// Only for idempotent unary methods; not together with Retry.
	Hedging *HedgingPolicy
	// HashKey is the dotted path of the request field whose value routes
	// the call under ConsistentHash. Generated methods extract it; it is
	// kept here so that the rules read as the .proto wrote them.
	HashKey string
}

// RetryPolicy is gRPC's retry policy (gRFC A6), carried into grpc-go's
// service config.
type RetryPolicy struct {
	// MaxAttempts counts every attempt, the first included: 2 to 5.
	MaxAttempts int
	// InitialBackoff is the backoff before the first retry; > 0 and at
	// most MaxBackoff, which caps every backoff.
	InitialBackoff time.Duration
	// MaxBackoff bounds the backoff; > 0.
	MaxBackoff time.Duration
	// BackoffMultiplier grows the backoff after each retry; a finite
	// number > 0.
	BackoffMultiplier float64
	// RetryableCodes are the status codes that are retried; at least one.
	// They are a set: a code listed twice counts once.
	RetryableCodes []codes.Code
}

// HedgingPolicy sends further attempts of a slow call to other backends
// (package runtime/hedge). Exactly one of Delay and DelayPercentile is set.
type HedgingPolicy struct {
	// MaxAttempts counts every attempt, the first included: 2 to 5.
	MaxAttempts int
	// Delay is the fixed wait before each further attempt.
	Delay time.Duration
	// DelayPercentile, when not zero, makes the wait adaptive: the given
	// percentile (such as 95) of the method's recent latency.
	DelayPercentile float64
	// NonFatalCodes are the status codes that do not end the call: the
	// other attempts go on. A code listed twice counts once.
	NonFatalCodes []codes.Code
}

// RetryThrottling is gRPC's retry throttling (gRFC A6): a token bucket of
// MaxTokens that loses a token on each failure and regains TokenRatio on
// each success; retries stop while it holds half or less.
type RetryThrottling struct {
	// MaxTokens is the size of the bucket: 1 to 1000.
	MaxTokens int
	// TokenRatio is the tokens regained per successful call; a finite
	// number > 0.
	TokenRatio float64
}

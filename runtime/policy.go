package runtime

import "fmt"

// Policy chooses how a connection picks the backend for each call. It mirrors
// the lbclient.v1.Policy enum of the annotations.
type Policy int

// The load-balancing policies. The zero value, PolicyUnspecified, means
// PeakEWMA.
const (
	// PolicyUnspecified selects the default policy, PeakEWMA.
	PolicyUnspecified Policy = iota
	// PickFirst sends every call to the first address that connects
	// (grpc-go's pick_first).
	PickFirst
	// RoundRobin rotates calls over ready backends (grpc-go's round_robin).
	RoundRobin
	// LeastRequest picks the less busy of two random backends (grpc-go's
	// least_request_experimental).
	LeastRequest
	// WeightedRoundRobin weighs backends by the load they report through
	// ORCA (grpc-go's weighted_round_robin).
	WeightedRoundRobin
	// PeakEWMA picks the cheaper of two random backends, cost being the
	// peak-sensitive moving average of latency times in-flight calls
	// (package runtime/balancer/peakewma).
	PeakEWMA
	// ConsistentHash routes calls by their hash key, with bounded loads
	// (package runtime/balancer/consistenthash).
	ConsistentHash
)

var policyNames = [...]string{
	PolicyUnspecified:  "POLICY_UNSPECIFIED",
	PickFirst:          "PICK_FIRST",
	RoundRobin:         "ROUND_ROBIN",
	LeastRequest:       "LEAST_REQUEST",
	WeightedRoundRobin: "WEIGHTED_ROUND_ROBIN",
	PeakEWMA:           "PEAK_EWMA",
	ConsistentHash:     "CONSISTENT_HASH",
}

// String returns the policy's name as written in the annotations.
func (p Policy) String() string {
	if p >= 0 && int(p) < len(policyNames) {
		return policyNames[p]
	}
	return fmt.Sprintf("Policy(%d)", int(p))
}

// resolve returns the policy that p stands for: PeakEWMA for
// PolicyUnspecified, p itself otherwise.
func (p Policy) resolve() Policy {
	if p == PolicyUnspecified {
		return PeakEWMA
	}
	return p
}

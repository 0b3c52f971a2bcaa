package peakewma

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lbclient/lbclient/runtime/balancer/internal/lbtest"
)

// TestConfigRoundTrip: every parsed config survives grpc-go's marshal and
// parse again (lbtest.ConfigRoundTrip).
func TestConfigRoundTrip(t *testing.T) {
	lbtest.ConfigRoundTrip(t, Name, map[string]string{
		"empty":                                 `{}`,
		"all fields":                            `{"decayWindow":"2s","defaultRtt":"5ms","failurePenalty":"250ms","probeInterval":"500ms","failureCodes":["UNAVAILABLE","DEADLINE_EXCEEDED"],"statsId":"lbstats-7"}`,
		"protobuf JSON duration":                `{"decayWindow":"1.5s","probeInterval":"0.01s"}`,
		"empty failureCodes turns failures off": `{"failureCodes":[]}`,
		"null failureCodes is the default":      `{"failureCodes":null}`,
		"bounds":                                `{"decayWindow":"1h","defaultRtt":"1ns","failurePenalty":"1h","probeInterval":"10ms"}`,
		"unknown fields dropped":                `{"choiceCount":3,"statsId":"s"}`,
	}, cmp.AllowUnexported(LBConfig{}))
}

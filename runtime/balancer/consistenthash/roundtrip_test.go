package consistenthash

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
		"all fields":                            `{"virtualNodes":40,"balanceFactor":1.5,"decayWindow":"2s","defaultRtt":"5ms","failurePenalty":"250ms","probeInterval":"500ms","failureCodes":["UNAVAILABLE","INTERNAL"],"statsId":"lbstats-3"}`,
		"bounds":                                `{"virtualNodes":4096,"balanceFactor":100}`,
		"one node":                              `{"virtualNodes":1,"balanceFactor":1.0001}`,
		"empty failureCodes turns failures off": `{"failureCodes":[]}`,
		"unknown fields dropped":                `{"hashKey":"x","statsId":"s"}`,
	}, cmp.AllowUnexported(LBConfig{}))
}

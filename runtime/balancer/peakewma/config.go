package peakewma

import (
	"encoding/json"

	"google.golang.org/grpc/serviceconfig"

	"github.com/lbclient/lbclient/runtime/balancer/internal/lbcore"
)

// LBConfig is the policy's JSON config. Every field is optional:
//
//	{
//	  "decayWindow":    "10s",             // EWMA time constant tau; [1ms, 1h]
//	  "defaultRtt":     "30ms",            // estimate before the first response; (0, 1m]
//	  "failurePenalty": "1s",              // latency sample a failed call counts as; (0, 1h]
//	  "probeInterval":  "250ms",           // idle this long without a pick: one probe call (longer while failing); [10ms, 1h]
//	  "failureCodes":   ["UNAVAILABLE"],   // codes that count as failures; [] for none
//	  "statsId":        ""                 // lbstats sink to publish endpoints to
//	}
//
// Durations are Go duration strings. The defaults are explained on
// lbcore.DefaultDecayWindow, lbcore.DefaultRTT, lbcore.DefaultFailurePenalty,
// lbcore.DefaultProbeInterval and lbcore.DefaultFailureCodes. Unknown fields are ignored, as grpc-go's
// own policies do.
type LBConfig struct {
	serviceconfig.LoadBalancingConfig `json:"-"`
	lbcore.LatencyConfig

	params *lbcore.Params
}

// LatencyParams implements lbcore.Config.
func (c *LBConfig) LatencyParams() *lbcore.Params { return c.params }

// StatsSinkID implements lbcore.Config.
func (c *LBConfig) StatsSinkID() string { return c.StatsID }

func defaultConfig() *LBConfig {
	return &LBConfig{params: lbcore.DefaultParams()}
}

// ParseConfig implements balancer.ConfigParser. Errors start with
// "lbclient_peak_ewma: ".
func (builder) ParseConfig(js json.RawMessage) (serviceconfig.LoadBalancingConfig, error) {
	return parseConfig(js)
}

func parseConfig(js json.RawMessage) (*LBConfig, error) {
	cfg := &LBConfig{}
	if err := json.Unmarshal(js, cfg); err != nil {
		return nil, lbcore.ConfigError(Name, err)
	}
	p, err := cfg.LatencyConfig.Params()
	if err != nil {
		return nil, lbcore.ConfigError(Name, err)
	}
	cfg.params = p
	return cfg, nil
}

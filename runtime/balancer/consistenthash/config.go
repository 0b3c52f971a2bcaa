package consistenthash

import (
	"encoding/json"
	"fmt"

	"google.golang.org/grpc/serviceconfig"

	"github.com/lbclient/lbclient/runtime/balancer/internal/lbcore"
)

const (
	// DefaultVirtualNodes is the number of ring positions per endpoint (per
	// unit of weight, when the resolver gives weights).
	// 160 is libketama's choice (40 MD5 digests × 4 points), the de facto
	// standard for memcached-style rings: the share of keys an endpoint owns
	// then deviates from 1/N by about 1/sqrt(160) ≈ 8%, and a ring of 100
	// endpoints is 16k entries (256 KiB), searched in 14 steps.
	DefaultVirtualNodes = 160
	// MaxVirtualNodes bounds ring size (and its build time) per endpoint.
	MaxVirtualNodes = 4096
	// DefaultBalanceFactor is c in Mirrokni et al.: no endpoint holds more
	// than ceil(c × average) calls in flight. 1.25 (HAProxy's
	// hash-balance-factor 125, which implements the same paper) keeps every
	// backend within 25% of the mean load, yet leaves enough headroom that
	// under light or even load keys stay on their own endpoint; smaller
	// factors trade affinity for balance, larger ones the reverse.
	DefaultBalanceFactor = 1.25
	// MaxBalanceFactor is the largest c accepted; beyond it the bound no
	// longer binds in practice.
	MaxBalanceFactor = 100.0
)

// LBConfig is the policy's JSON config. Every field is optional:
//
//	{
//	  "virtualNodes":   160,               // ring positions per endpoint (per unit of weight); [1, 4096]
//	  "balanceFactor":  1.25,              // c of the load bound; (1, 100]
//	  "decayWindow":    "10s",             // as PEAK_EWMA: used for calls with no key
//	  "defaultRtt":     "30ms",            //   and for the latency in the stats
//	  "failurePenalty": "1s",
//	  "probeInterval":  "250ms",
//	  "failureCodes":   ["UNAVAILABLE"],
//	  "statsId":        ""                 // lbstats sink to publish endpoints to
//	}
//
// Durations are Go duration strings. Unknown fields are ignored, as
// grpc-go's own policies do.
type LBConfig struct {
	serviceconfig.LoadBalancingConfig `json:"-"`
	lbcore.LatencyConfig

	// VirtualNodes is the number of ring positions per endpoint, per unit
	// of its weight. Default
	// DefaultVirtualNodes; bounds [1, MaxVirtualNodes].
	VirtualNodes int `json:"virtualNodes,omitempty"`
	// BalanceFactor is c, the bound on an endpoint's load relative to the
	// average. Default DefaultBalanceFactor; bounds (1, MaxBalanceFactor].
	BalanceFactor float64 `json:"balanceFactor,omitempty"`

	params *lbcore.Params
}

// LatencyParams implements lbcore.Config.
func (c *LBConfig) LatencyParams() *lbcore.Params { return c.params }

// StatsSinkID implements lbcore.Config.
func (c *LBConfig) StatsSinkID() string { return c.StatsID }

func (c *LBConfig) vnodes() int {
	if c.VirtualNodes == 0 {
		return DefaultVirtualNodes
	}
	return c.VirtualNodes
}

func (c *LBConfig) factor() float64 {
	if c.BalanceFactor == 0 {
		return DefaultBalanceFactor
	}
	return c.BalanceFactor
}

func defaultConfig() *LBConfig {
	return &LBConfig{params: lbcore.DefaultParams()}
}

// ParseConfig implements balancer.ConfigParser. Errors start with
// "lbclient_consistent_hash: ".
func (builder) ParseConfig(js json.RawMessage) (serviceconfig.LoadBalancingConfig, error) {
	return parseConfig(js)
}

func parseConfig(js json.RawMessage) (*LBConfig, error) {
	cfg := &LBConfig{}
	if err := json.Unmarshal(js, cfg); err != nil {
		return nil, lbcore.ConfigError(Name, err)
	}
	if cfg.VirtualNodes < 0 || cfg.VirtualNodes > MaxVirtualNodes {
		return nil, lbcore.ConfigError(Name, fmt.Errorf("virtualNodes: %d out of range [1, %d]", cfg.VirtualNodes, MaxVirtualNodes))
	}
	// "c = 1 + ε for ε > 0" — Mirrokni et al., section 1.1: at c = 1 every
	// endpoint is capped at the exact average and keys scatter.
	if cfg.BalanceFactor != 0 && !(cfg.BalanceFactor > 1 && cfg.BalanceFactor <= MaxBalanceFactor) {
		return nil, lbcore.ConfigError(Name, fmt.Errorf("balanceFactor: %v out of range (1, %v]", cfg.BalanceFactor, MaxBalanceFactor))
	}
	p, err := cfg.LatencyConfig.Params()
	if err != nil {
		return nil, lbcore.ConfigError(Name, err)
	}
	cfg.params = p
	return cfg, nil
}

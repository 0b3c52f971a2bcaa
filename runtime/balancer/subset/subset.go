// Package subset implements lbclient's deterministic subsetting policy,
// registered with grpc-go as "lbclient_deterministic_subset": each client
// of a large fleet connects to about subsetSize backends, chosen by
// Finagle's deterministic aperture (see Aperture) from the client's index
// among the fleet's clients, so that every backend gets the same number of
// connections and the same share of the calls, give or take one client's.
//
// The policy sits above the one that picks (PEAK_EWMA, CONSISTENT_HASH,
// or grpc-go's): it sorts the resolver's endpoints by address, keeps those
// the aperture covers, and hands them to its child with their weights
// multiplied by the part of them the aperture covers (in sixteenths; see
// FullWeight), so that a child that weighs endpoints (lbclient's
// policies) sends the two partly covered ends their part of the calls.
//
//	{"loadBalancingConfig": [{"lbclient_deterministic_subset": {
//	  "subsetSize": 20, "clientIndex": 7, "clientCount": 300,
//	  "childPolicy": [{"lbclient_peak_ewma": {}}]
//	}}]}
//
// runtime.WithDeterministicSubset writes this config. Every client must be
// given a distinct index in [0, clientCount) and the same count: a
// StatefulSet's ordinal and its replica count, or what a resolver knows
// (see SetClient). Clients that share an index share an aperture.
//
// Compare grpc-go's random_subsetting_experimental (gRFC A68,
// runtime.WithSubsetSize), which needs no index: each client hashes the
// endpoints with a seed of its own and keeps the first subsetSize. Its
// connections and load per backend spread binomially — with 1000 clients
// of 20 over 100 backends, the busiest backend has about 1.14× the mean
// (about 1.2× with subsets of 10; random seeds make each run differ) — where the aperture's are within one connection of
// the mean and its load is exactly the mean (BENCHMARKS.md, subsetting).
// The aperture pays on membership changes: every aperture shifts a little
// when a client or a backend joins (about 180 and 1300 connections of
// 20900 open or close), where a random subset changes only if the new
// backend hashes into it (0 and about 420 of 20000).
package subset

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sync"

	"google.golang.org/grpc/attributes"
	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/experimental/balancer/weight"
	"google.golang.org/grpc/grpclog"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/serviceconfig"

	"github.com/lbclient/lbclient/runtime/balancer/internal/childpolicy"
)

// Name is the name the policy is registered under.
const Name = "lbclient_deterministic_subset"

// FullWeight is the weight factor of a backend the aperture covers whole;
// one it covers in part gets its part of it, rounded, at least 1. Sixteen
// steps keep the two partial ends within 1/32 of a backend's share of
// their exact part, and a CONSISTENT_HASH child's ring (virtualNodes per
// unit of weight) small.
const FullWeight = 16

var logger = grpclog.Component(Name)

func init() { balancer.Register(builder{}) }

type builder struct{}

func (builder) Name() string { return Name }

func (builder) Build(cc balancer.ClientConn, opts balancer.BuildOptions) balancer.Balancer {
	return &subsetBalancer{cc: cc, opts: opts}
}

// LBConfig is the policy's parsed config.
type LBConfig struct {
	serviceconfig.LoadBalancingConfig `json:"-"`

	// SubsetSize is the number of backends each client connects to, about
	// (the aperture's partly covered ends may add one); at least 1.
	SubsetSize int `json:"subsetSize"`
	// ClientIndex and ClientCount place the client on the ring. A
	// ClientCount of 0 takes both from the resolver's state (SetClient).
	ClientIndex int `json:"clientIndex"`
	ClientCount int `json:"clientCount"`

	// child is the first registered policy of childPolicy.
	child childpolicy.Child
}

// MarshalJSON writes the config as ParseConfig reads it, so that grpc-go
// (random_subsetting, xDS, gracefulswitch), which marshals parsed configs
// and parses them again, gets the same policy back.
func (c *LBConfig) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		SubsetSize  int                          `json:"subsetSize"`
		ClientIndex int                          `json:"clientIndex"`
		ClientCount int                          `json:"clientCount"`
		ChildPolicy []map[string]json.RawMessage `json:"childPolicy"`
	}{c.SubsetSize, c.ClientIndex, c.ClientCount, c.child.List()})
}

// ParseConfig implements balancer.ConfigParser. Errors start with
// "lbclient_deterministic_subset: " and name the field.
func (builder) ParseConfig(js json.RawMessage) (serviceconfig.LoadBalancingConfig, error) {
	return parseConfig(js)
}

func parseConfig(js json.RawMessage) (*LBConfig, error) {
	var raw struct {
		SubsetSize  int                          `json:"subsetSize"`
		ClientIndex int                          `json:"clientIndex"`
		ClientCount int                          `json:"clientCount"`
		ChildPolicy []map[string]json.RawMessage `json:"childPolicy"`
	}
	d := json.NewDecoder(bytes.NewReader(js))
	d.DisallowUnknownFields()
	if err := d.Decode(&raw); err != nil {
		return nil, fmt.Errorf("%s: invalid config %s: %v", Name, js, err)
	}
	switch {
	case raw.SubsetSize < 1:
		return nil, fmt.Errorf("%s: subsetSize %d: want at least 1", Name, raw.SubsetSize)
	case raw.ClientCount < 0:
		return nil, fmt.Errorf("%s: clientCount %d: want at least 1, or 0 to take it from the resolver", Name, raw.ClientCount)
	case raw.ClientCount > 0 && (raw.ClientIndex < 0 || raw.ClientIndex >= raw.ClientCount):
		return nil, fmt.Errorf("%s: clientIndex %d is outside [0, clientCount %d)", Name, raw.ClientIndex, raw.ClientCount)
	}
	child, err := childpolicy.Parse(Name, raw.ChildPolicy)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", Name, err)
	}
	return &LBConfig{SubsetSize: raw.SubsetSize, ClientIndex: raw.ClientIndex, ClientCount: raw.ClientCount, child: child}, nil
}

// clientKey is the resolver state attribute that SetClient writes.
type clientKey struct{}

type clientPlace struct{ index, count int }

// SetClient returns state with the client's index and the fleet's client
// count attached, for a config whose clientCount is 0: the way for a
// resolver that knows the fleet's clients (a membership service, a
// StatefulSet's peers) to place this client.
func SetClient(state resolver.State, index, count int) resolver.State {
	state.Attributes = state.Attributes.WithValue(clientKey{}, clientPlace{index, count})
	return state
}

func clientFrom(a *attributes.Attributes) (clientPlace, bool) {
	p, ok := a.Value(clientKey{}).(clientPlace)
	return p, ok && p.count > 0 && p.index >= 0 && p.index < p.count
}

// subsetBalancer keeps the aperture's endpoints and hands them to its
// child, built from the config's child policy (and rebuilt when the
// config names another).
type subsetBalancer struct {
	cc   balancer.ClientConn
	opts balancer.BuildOptions

	mu        sync.Mutex
	child     balancer.Balancer
	childName string
	warned    bool // the missing client place was logged
}

func (b *subsetBalancer) UpdateClientConnState(s balancer.ClientConnState) error {
	cfg, ok := s.BalancerConfig.(*LBConfig)
	if !ok {
		logger.Errorf("%s: received config of unexpected type %T", Name, s.BalancerConfig)
		return balancer.ErrBadResolverState
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.child == nil || b.childName != cfg.child.Name {
		if b.child != nil {
			b.child.Close()
		}
		b.child = balancer.Get(cfg.child.Name).Build(b.cc, b.opts)
		b.childName = cfg.child.Name
	}
	index, count := cfg.ClientIndex, cfg.ClientCount
	if count == 0 {
		if p, ok := clientFrom(s.ResolverState.Attributes); ok {
			index, count = p.index, p.count
		} else if !b.warned {
			b.warned = true
			logger.Warningf("%s: clientCount is 0 and the resolver gave no client index and count (subset.SetClient): connecting to every endpoint", Name)
		}
	}
	state := s.ResolverState
	state.Endpoints = Select(state.Endpoints, cfg.SubsetSize, index, count)
	return b.child.UpdateClientConnState(balancer.ClientConnState{ResolverState: state, BalancerConfig: cfg.child.Config})
}

// Select returns the endpoints of eps in the aperture of client index of
// count (count 0: all of them), sorted by first address, each weighted by
// its resolver weight (1 when none) × the part of it covered, in
// FullWeight units. Endpoints without an address are dropped.
func Select(eps []resolver.Endpoint, size, index, count int) []resolver.Endpoint {
	sorted := slices.DeleteFunc(slices.Clone(eps), func(e resolver.Endpoint) bool { return len(e.Addresses) == 0 })
	slices.SortStableFunc(sorted, func(a, b resolver.Endpoint) int { return cmp.Compare(a.Addresses[0].Addr, b.Addresses[0].Addr) })
	if count == 0 {
		return sorted
	}
	shares := Aperture(len(sorted), size, index, count)
	out := make([]resolver.Endpoint, 0, len(shares))
	for _, sh := range shares {
		ep := sorted[sh.Index]
		w := uint64(max(weight.FromEndpoint(ep).Weight, 1))
		part := max(1, uint64(math.Round(sh.Fraction*FullWeight)))
		out = append(out, weight.Set(ep, weight.EndpointInfo{Weight: uint32(min(w*part, math.MaxUint32))}))
	}
	return out
}

func (b *subsetBalancer) ResolverError(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.child != nil {
		b.child.ResolverError(err)
	}
}

func (b *subsetBalancer) UpdateSubConnState(sc balancer.SubConn, s balancer.SubConnState) {
	logger.Errorf("%s: UpdateSubConnState(%v, %+v) called unexpectedly", Name, sc, s)
}

func (b *subsetBalancer) ExitIdle() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.child != nil {
		b.child.ExitIdle()
	}
}

func (b *subsetBalancer) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.child != nil {
		b.child.Close()
		b.child = nil
	}
}

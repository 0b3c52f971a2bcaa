// Package subsetsim simulates subsetting over a large fleet, without a
// network: which backends each of many clients connects to, under grpc-go's
// random subsetting (its real balancer, fed endpoints and read back) and
// lbclient's deterministic aperture (runtime/balancer/subset's Select, the
// function its balancer calls), and what load and connections each backend
// gets.
//
// A client's calls are split over its subset in proportion to the weights
// the subsetting gives (equal under random subsetting; each backend's part
// under the aperture), which is the split lbclient's pickers make between
// backends of equal latency (within 1–2%: lbcore's TestWeightedShares), so
// the loads are that expected split rather than a count of simulated
// picks, and the figures are exact for the subsets drawn.
package subsetsim

import (
	"encoding/json"
	"fmt"
	"math"
	rand "math/rand/v2"
	"slices"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/randomsubsetting"
	"google.golang.org/grpc/experimental/balancer/weight"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/serviceconfig"

	"github.com/lbclient/lbclient/runtime/balancer/subset"
)

// Approach is one way of choosing each client's backends.
type Approach struct {
	Name string
	// Size is the subset size; 0 for the full mesh.
	Size int
	// Deterministic selects lbclient's aperture over random subsetting.
	Deterministic bool
}

// Approaches are the ones the benchmark compares.
var Approaches = []Approach{
	{Name: "full mesh"},
	{Name: "random subsetting", Size: 10},
	{Name: "random subsetting", Size: 20},
	{Name: "deterministic aperture", Size: 10, Deterministic: true},
	{Name: "deterministic aperture", Size: 20, Deterministic: true},
}

// Result is one approach over one fleet.
type Result struct {
	Approach
	// ConnsPerClient is the mean number of backends a client connects to.
	ConnsPerClient float64
	// Conns is connections per backend: max/mean.
	ConnsMaxMean float64
	// Uncovered is the number of backends in no client's subset.
	Uncovered int
	// Load is per backend, for uniform and skewed client rates: max/mean
	// and p99/mean.
	UniformMaxMean, UniformP99Mean float64
	SkewedMaxMean, SkewedP99Mean   float64
	// ClientJoinMoves and BackendJoinMoves count the connections that
	// existing clients open or close when one client, or one backend,
	// joins the fleet.
	ClientJoinMoves, BackendJoinMoves int
}

// link is one client's connection to a backend and the weight of its
// calls there.
type link struct {
	backend int
	weight  float64
}

// Run simulates a over clients × backends. Skewed rates are log-normal
// (σ = 1: the busiest client of a thousand makes about 20× the median's
// calls), drawn from seed, as is random subsetting's hashing.
func Run(a Approach, clients, backends int, seed uint64) (Result, error) {
	res := Result{Approach: a}
	sim, err := newFleet(a, clients, backends, seed)
	if err != nil {
		return res, err
	}
	subsets := sim.subsets(clients, backends)
	conns := make([]float64, backends)
	var total float64
	for _, s := range subsets {
		total += float64(len(s))
		for _, l := range s {
			conns[l.backend]++
		}
	}
	res.ConnsPerClient = total / float64(clients)
	res.ConnsMaxMean, _ = maxP99OverMean(conns)
	for _, c := range conns {
		if c == 0 {
			res.Uncovered++
		}
	}
	rnd := rand.New(rand.NewPCG(seed, seed^0x5bd1e995))
	uniform, skewed := make([]float64, clients), make([]float64, clients)
	for i := range clients {
		uniform[i] = 1
		skewed[i] = math.Exp(rnd.NormFloat64())
	}
	res.UniformMaxMean, res.UniformP99Mean = maxP99OverMean(loads(subsets, uniform, backends))
	res.SkewedMaxMean, res.SkewedP99Mean = maxP99OverMean(loads(subsets, skewed, backends))

	// One more client: what the others change.
	grown := sim.subsets(clients+1, backends)
	res.ClientJoinMoves = moves(subsets, grown[:clients])
	// One more backend, with the clients as they were.
	res.BackendJoinMoves = moves(subsets, sim.subsets(clients, backends+1))
	return res, nil
}

// loads spreads each client's rate over its subset by weight.
func loads(subsets [][]link, rates []float64, backends int) []float64 {
	out := make([]float64, backends+1)
	for c, s := range subsets {
		var sum float64
		for _, l := range s {
			sum += l.weight
		}
		for _, l := range s {
			out[l.backend] += rates[c] * l.weight / sum
		}
	}
	return out[:backends]
}

// moves counts the backends each client gained or lost from before to
// after.
func moves(before, after [][]link) int {
	n := 0
	for c := range before {
		was := map[int]bool{}
		for _, l := range before[c] {
			was[l.backend] = true
		}
		for _, l := range after[c] {
			if was[l.backend] {
				delete(was, l.backend)
			} else {
				n++ // opened
			}
		}
		n += len(was) // closed
	}
	return n
}

// maxP99OverMean returns max/mean and p99/mean of xs.
func maxP99OverMean(xs []float64) (float64, float64) {
	s := slices.Clone(xs)
	slices.Sort(s)
	var sum float64
	for _, x := range s {
		sum += x
	}
	mean := sum / float64(len(s))
	p99 := s[int(math.Ceil(0.99*float64(len(s))))-1]
	return s[len(s)-1] / mean, p99 / mean
}

// fleet chooses subsets. Random subsetting keeps one real balancer per
// client, whose seed then holds across fleet changes, as a client's does.
type fleet struct {
	a        Approach
	balancer []*subsettingClient
	cfg      serviceconfig.LoadBalancingConfig
	seed     uint64
}

func newFleet(a Approach, clients, backends int, seed uint64) (*fleet, error) {
	f := &fleet{a: a, seed: seed}
	if a.Size > 0 && !a.Deterministic {
		parser := balancer.Get(randomsubsetting.Name).(balancer.ConfigParser)
		cfg, err := parser.ParseConfig(json.RawMessage(fmt.Sprintf(`{"subsetSize":%d,"childPolicy":[{%q:{}}]}`, a.Size, recorderName)))
		if err != nil {
			return nil, err
		}
		f.cfg = cfg
	}
	return f, nil
}

// endpoints are the fleet's backends, named by index.
func endpoints(n int) ([]resolver.Endpoint, map[string]int) {
	eps := make([]resolver.Endpoint, n)
	index := make(map[string]int, n)
	for i := range eps {
		addr := fmt.Sprintf("10.%d.%d.%d:8080", i>>16&255, i>>8&255, i&255)
		eps[i] = resolver.Endpoint{Addresses: []resolver.Address{{Addr: addr}}}
		index[addr] = i
	}
	return eps, index
}

// subsets returns each client's links over a fleet of backends.
func (f *fleet) subsets(clients, backends int) [][]link {
	eps, index := endpoints(backends)
	out := make([][]link, clients)
	for c := range clients {
		var chosen []resolver.Endpoint
		switch {
		case f.a.Size == 0:
			chosen = eps
		case f.a.Deterministic:
			chosen = subset.Select(eps, f.a.Size, c, clients)
		default:
			chosen = f.client(c).subset(f.cfg, eps)
		}
		for _, ep := range chosen {
			w := float64(max(weight.FromEndpoint(ep).Weight, 1))
			out[c] = append(out[c], link{backend: index[ep.Addresses[0].Addr], weight: w})
		}
	}
	return out
}

// client returns random subsetting's balancer of client c, built on first
// use; the seeds come from grpc-go's own randomness, as in a real client.
func (f *fleet) client(c int) *subsettingClient {
	for len(f.balancer) <= c {
		f.balancer = append(f.balancer, newSubsettingClient())
	}
	return f.balancer[c]
}

package subsetsim

import (
	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/randomsubsetting"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/serviceconfig"
)

// recorderName is the child policy under random subsetting in the
// simulation: it records the endpoints random subsetting hands it.
const recorderName = "lbclient_subsetsim_recorder"

func init() { balancer.Register(recorderBuilder{}) }

type recorderBuilder struct{}

func (recorderBuilder) Name() string { return recorderName }

// lastBuilt hands the recorder a Build made to the subsettingClient whose
// balancer built it; the simulation is single-threaded.
var lastBuilt *recorder

func (recorderBuilder) Build(balancer.ClientConn, balancer.BuildOptions) balancer.Balancer {
	lastBuilt = &recorder{}
	return lastBuilt
}

type recorder struct{ endpoints []resolver.Endpoint }

func (r *recorder) UpdateClientConnState(s balancer.ClientConnState) error {
	r.endpoints = s.ResolverState.Endpoints
	return nil
}
func (r *recorder) ResolverError(error)                                        {}
func (r *recorder) UpdateSubConnState(balancer.SubConn, balancer.SubConnState) {}
func (r *recorder) ExitIdle()                                                  {}
func (r *recorder) Close()                                                     {}

// subsettingClient is one client's random_subsetting_experimental
// balancer, grpc-go's own, over the recorder.
type subsettingClient struct {
	b     balancer.Balancer
	child *recorder
}

// noCC is the channel above the balancer: the recorder never creates
// SubConns or reports a state, so nothing of it is called.
type noCC struct{ balancer.ClientConn }

func newSubsettingClient() *subsettingClient {
	return &subsettingClient{b: balancer.Get(randomsubsetting.Name).Build(noCC{}, balancer.BuildOptions{})}
}

// subset hands eps to the balancer and returns the subset its child got.
func (s *subsettingClient) subset(cfg serviceconfig.LoadBalancingConfig, eps []resolver.Endpoint) []resolver.Endpoint {
	_ = s.b.UpdateClientConnState(balancer.ClientConnState{
		ResolverState:  resolver.State{Endpoints: eps},
		BalancerConfig: cfg,
	})
	if s.child == nil {
		s.child = lastBuilt
	}
	return s.child.endpoints
}

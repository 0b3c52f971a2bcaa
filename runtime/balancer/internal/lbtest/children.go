package lbtest

import (
	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/endpointsharding"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/resolver"
)

// FakeSubConn stands for a SubConn to Addr in picker unit tests.
type FakeSubConn struct {
	balancer.SubConn
	Addr string
}

// subConnPicker stands for a pickfirst child: it returns its SubConn.
type subConnPicker struct{ sc balancer.SubConn }

func (p subConnPicker) Pick(balancer.PickInfo) (balancer.PickResult, error) {
	return balancer.PickResult{SubConn: p.sc}, nil
}

// ChildStates returns the endpointsharding child states of endpoints addrs,
// one address each, whose pickers return a FakeSubConn. state gives each
// endpoint's connectivity state (nil: all READY); exitIdle, when not nil,
// is what the child's ExitIdle calls, with the child's address.
func ChildStates(addrs []string, state func(addr string) connectivity.State, exitIdle func(addr string)) []endpointsharding.ChildState {
	cs := make([]endpointsharding.ChildState, 0, len(addrs))
	for _, a := range addrs {
		s := connectivity.Ready
		if state != nil {
			s = state(a)
		}
		c := endpointsharding.ChildState{
			Endpoint: resolver.Endpoint{Addresses: []resolver.Address{{Addr: a}}},
			State:    balancer.State{ConnectivityState: s, Picker: subConnPicker{&FakeSubConn{Addr: a}}},
		}
		if exitIdle != nil {
			c.ExitIdle = func() { exitIdle(a) }
		}
		cs = append(cs, c)
	}
	return cs
}

// AddrOf returns the address of the FakeSubConn that a pick returned.
func AddrOf(res balancer.PickResult) string { return res.SubConn.(*FakeSubConn).Addr }

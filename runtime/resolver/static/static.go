// Package static is the resolver for lbclient's "static" scheme: a fixed
// list of backends written in the target itself.
//
//	static:///10.0.0.1:8443,10.0.0.2:8443,[::1]:8443
//
// Each address is one endpoint. The runtime package registers the scheme
// when it is imported; nothing else needs to be done to use it.
package static

import (
	"fmt"

	"google.golang.org/grpc/resolver"

	"github.com/lbclient/lbclient/internal/targets"
)

// Scheme is the target scheme of this resolver.
const Scheme = "static"

func init() {
	resolver.Register(Builder{})
}

// Builder builds resolvers for "static:///" targets. It is registered with
// grpc-go under Scheme by this package's init.
type Builder struct{}

// Scheme returns "static".
func (Builder) Scheme() string { return Scheme }

// Build parses the addresses of target and hands them to cc once.
func (Builder) Build(target resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	state, err := ParseTarget(target.Endpoint())
	if err != nil {
		return nil, err
	}
	if err := cc.UpdateState(state); err != nil {
		return nil, fmt.Errorf("static resolver: %q: %w", target.Endpoint(), err)
	}
	return nopResolver{}, nil
}

// ParseTarget parses the endpoint part of a static target, a
// comma-separated list of host:port, into a resolver state with one
// endpoint per address. An empty list, an empty entry, an address without a
// valid host or port, or a duplicate address is an error that names it.
// runtime.Dial checks its targets with the same parser, so that a bad list
// fails the Dial rather than the first call.
func ParseTarget(list string) (resolver.State, error) {
	addrs, err := targets.SplitStatic(list)
	if err != nil {
		return resolver.State{}, fmt.Errorf("static resolver: %w", err)
	}
	eps := make([]resolver.Endpoint, len(addrs))
	for i, addr := range addrs {
		eps[i] = resolver.Endpoint{Addresses: []resolver.Address{{Addr: addr}}}
	}
	return resolver.State{Endpoints: eps}, nil
}

// nopResolver is the static resolver once built: the list never changes, so
// there is nothing to resolve again.
type nopResolver struct{}

func (nopResolver) ResolveNow(resolver.ResolveNowOptions) {}
func (nopResolver) Close()                                {}

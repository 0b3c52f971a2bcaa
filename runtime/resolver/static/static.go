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
	"strings"

	"google.golang.org/grpc/resolver"

	"github.com/lbclient/lbclient/runtime/resolver/internal/hostport"
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
// port or a duplicate address is an error that names it.
func ParseTarget(list string) (resolver.State, error) {
	if strings.TrimSpace(list) == "" {
		return resolver.State{}, fmt.Errorf("static resolver: no addresses: write them as static:///host1:port,host2:port")
	}
	parts := strings.Split(list, ",")
	seen := make(map[string]bool, len(parts))
	eps := make([]resolver.Endpoint, 0, len(parts))
	for i, p := range parts {
		addr := strings.TrimSpace(p)
		if addr == "" {
			return resolver.State{}, fmt.Errorf("static resolver: address %d of %q is empty", i+1, list)
		}
		if err := hostport.Check(addr); err != nil {
			return resolver.State{}, fmt.Errorf("static resolver: %w", err)
		}
		if seen[addr] {
			return resolver.State{}, fmt.Errorf("static resolver: address %q is listed twice", addr)
		}
		seen[addr] = true
		eps = append(eps, resolver.Endpoint{Addresses: []resolver.Address{{Addr: addr}}})
	}
	return resolver.State{Endpoints: eps}, nil
}

// nopResolver is the static resolver once built: the list never changes, so
// there is nothing to resolve again.
type nopResolver struct{}

func (nopResolver) ResolveNow(resolver.ResolveNowOptions) {}
func (nopResolver) Close()                                {}

// Package hostport holds the rule that lbclient's resolvers apply to the
// address of each endpoint they are given, so that every scheme accepts
// and rejects the same addresses with the same words.
package hostport

import (
	"fmt"
	"net"
)

// Check reports whether addr is host:port with a host and a port, as
// grpc-go's dialer needs it. IPv6 hosts are bracketed ("[::1]:8443"); the
// port may be a number or a service name. The error quotes addr.
func Check(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		return fmt.Errorf("address %q: want host:port", addr)
	}
	if host == "" {
		return fmt.Errorf("address %q has no host", addr)
	}
	return nil
}

// Package dnstest is a real DNS server on a loopback UDP port, and a fleet
// of backends on loopback addresses for it to name: what the DNS refresh's
// tests and the benchmark's discovery section resolve against.
package dnstest

import (
	"fmt"
	"net"
	"slices"
	"sync"

	"github.com/miekg/dns"

	"github.com/lbclient/lbclient/example/backend"
)

// Server is authoritative for the names it is given. A name it was never
// given is NXDOMAIN; a name given no addresses answers NOERROR with none
// (NODATA).
type Server struct {
	srv    *dns.Server
	addr   string
	served chan error

	mu       sync.Mutex
	hosts    map[string][]string // FQDN → IPv4 addresses
	servfail map[string]bool     // FQDN → answer SERVFAIL
	lookups  map[string]int      // FQDN → A questions answered
}

// Start serves DNS on 127.0.0.1 and a free port until Close.
func Start() (*Server, error) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{
		addr:     pc.LocalAddr().String(),
		hosts:    map[string][]string{},
		servfail: map[string]bool{},
		lookups:  map[string]int{},
		served:   make(chan error, 1),
	}
	started := make(chan struct{})
	s.srv = &dns.Server{PacketConn: pc, Handler: s, NotifyStartedFunc: func() { close(started) }}
	go func() { s.served <- s.srv.ActivateAndServe() }()
	select {
	case <-started:
		return s, nil
	case err := <-s.served:
		return nil, fmt.Errorf("DNS server: %w", err)
	}
}

// Close stops the server and waits for it.
func (s *Server) Close() {
	s.srv.Shutdown()
	<-s.served
}

// ServeDNS answers from the zone as it is now.
func (s *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	if len(req.Question) == 1 {
		q := req.Question[0]
		s.mu.Lock()
		if q.Qtype == dns.TypeA {
			s.lookups[q.Name]++
		}
		ips, ok := s.hosts[q.Name]
		switch {
		case s.servfail[q.Name]:
			m.Rcode = dns.RcodeServerFailure
		case !ok:
			m.Rcode = dns.RcodeNameError
		case q.Qtype == dns.TypeA:
			for _, ip := range ips {
				m.Answer = append(m.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 1},
					A:   net.ParseIP(ip),
				})
			}
		}
		s.mu.Unlock()
	}
	w.WriteMsg(m)
}

// Set makes name (without the final dot) answer ips; none means NODATA.
func (s *Server) Set(name string, ips ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hosts[dns.Fqdn(name)] = slices.Clone(ips)
	delete(s.servfail, dns.Fqdn(name))
}

// Remove makes name NXDOMAIN.
func (s *Server) Remove(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.hosts, dns.Fqdn(name))
	delete(s.servfail, dns.Fqdn(name))
}

// Failing makes name answer SERVFAIL.
func (s *Server) Failing(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.servfail[dns.Fqdn(name)] = true
}

// Lookups returns how many A questions about name were answered.
func (s *Server) Lookups(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lookups[dns.Fqdn(name)]
}

// Target is the gRPC target of name:port resolved by this server.
func (s *Server) Target(name, port string) string {
	return "dns://" + s.addr + "/" + net.JoinHostPort(name, port)
}

// LoopbackFleet serves n Greeters, named b1 to bn, on 127.0.0.1, 127.0.0.2,
// … with one port, as DNS A records describe a fleet: the addresses
// differ, the port comes from the target. Linux routes all of 127.0.0.0/8
// to the loopback interface. Stop them with backend.Fleet's Stop.
func LoopbackFleet(n int) (backend.Fleet, string, error) {
	for range 5 { // a port free on 127.0.0.1 may be taken on another address
		first, err := backend.Start("b1", "127.0.0.1:0")
		if err != nil {
			return nil, "", err
		}
		_, port, _ := net.SplitHostPort(first.Addr())
		fleet := backend.Fleet{first}
		for i := 2; i <= n; i++ {
			b, err := backend.Start(fmt.Sprintf("b%d", i), fmt.Sprintf("127.0.0.%d:%s", i, port))
			if err != nil {
				break
			}
			fleet = append(fleet, b)
		}
		if len(fleet) == n {
			return fleet, port, nil
		}
		fleet.Stop()
	}
	return nil, "", fmt.Errorf("dnstest: no port free on 127.0.0.1 to 127.0.0.%d", n)
}

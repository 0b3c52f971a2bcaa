package static_test

import (
	"net"
	"net/url"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/resolver"

	"github.com/lbclient/lbclient/internal/targets"
	"github.com/lbclient/lbclient/runtime/resolver/static"
)

// FuzzParseTarget checks the static scheme's parser on any list: it never
// panics; a list it accepts gives one endpoint per entry, each a host:port
// listed once, and the addresses joined again parse to the same; and
// runtime.Dial's check of a target (targets.Check) accepts exactly the
// static targets whose list the resolver, handed the endpoint as grpc-go
// parses it, accepts, so that Dial refuses what the resolver would and
// nothing more.
//
//	go test ./runtime/resolver/static -run '^$' -fuzz '^FuzzParseTarget$' -parallel 1 -fuzztime 1m
func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{
		"127.0.0.1:1", "a:1,b:2, [::1]:3", "", "a:1,,b:2", "a", "a:", ":80", "a:1,a:1",
		"[fe80::1%25eth0]:443", "host:https", "not a host:1", "a:1#frag", "a:1?q=1", "%zz:1", "10.0.0.1:8443,10.0.0.2:8443",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, list string) {
		st, err := static.ParseTarget(list)
		if err == nil {
			if len(st.Endpoints) == 0 || len(st.Endpoints) != strings.Count(list, ",")+1 {
				t.Fatalf("ParseTarget(%q): %d endpoints for %d entries", list, len(st.Endpoints), strings.Count(list, ",")+1)
			}
			var addrs []string
			for _, e := range st.Endpoints {
				if len(e.Addresses) != 1 {
					t.Fatalf("ParseTarget(%q): endpoint %v has %d addresses", list, e, len(e.Addresses))
				}
				a := e.Addresses[0].Addr
				if _, _, err := net.SplitHostPort(a); err != nil || a != strings.TrimSpace(a) || slices.Contains(addrs, a) {
					t.Fatalf("ParseTarget(%q): address %q is not a trimmed host:port listed once (%v)", list, a, err)
				}
				addrs = append(addrs, a)
			}
			again, err := static.ParseTarget(strings.Join(addrs, ","))
			if err != nil || len(again.Endpoints) != len(addrs) {
				t.Fatalf("ParseTarget(%q) gave %q, which does not parse again alike: %v", list, addrs, err)
			}
		}

		target := "static:///" + list
		u, uerr := url.Parse(target)
		if uerr != nil {
			return // grpc-go would resolve it with DNS; targets.Check says why
		}
		_, berr := static.ParseTarget(resolver.Target{URL: *u}.Endpoint())
		if cerr := targets.Check(target); (cerr == nil) != (berr == nil) {
			t.Fatalf("target %q: Dial's check says %v, the resolver %v", target, cerr, berr)
		}
	})
}

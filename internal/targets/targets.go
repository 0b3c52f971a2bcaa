// Package targets checks the syntax of gRPC target strings the way grpc-go
// will read them, so that a target that cannot work is refused where it is
// written: by the generator for a default_target annotation, by
// runtime.Dial for a target in code. It also parses the address list of
// lbclient's static scheme, which the static resolver serves.
//
// Only the syntax of the schemes that grpc-go and lbclient register
// themselves is checked (dns, static, file, unix, unix-abstract,
// passthrough);
// a target of any other scheme is its resolver's business.
package targets

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
)

// DefaultScheme is the scheme grpc.NewClient resolves a target with when the
// target names no scheme it has a resolver for.
const DefaultScheme = "dns"

// builtin are the schemes whose syntax Check knows.
var builtin = map[string]func(u *url.URL, endpoint string) error{
	"dns":           checkDNS,
	"static":        checkStatic,
	"unix":          checkUnix,
	"unix-abstract": checkUnix,
	"passthrough":   func(*url.URL, string) error { return nil },
	"file":          checkFile,
}

// Scheme returns the scheme grpc-go resolves target with, given that the
// schemes of the form "scheme:/..." have resolvers ("passthrough:///x",
// "example:///x") and, of the others, only the built-in ones do
// ("unix:path"); everything else is a host for DNS ("localhost:50051").
// It reports whether the scheme was written in the target.
func Scheme(target string) (scheme string, explicit bool) {
	u, err := url.Parse(target)
	if err != nil || u.Scheme == "" {
		return DefaultScheme, false
	}
	if _, ok := builtin[u.Scheme]; ok || strings.Contains(target, ":/") {
		return u.Scheme, true
	}
	return DefaultScheme, false
}

// Check reports why grpc-go could not resolve target, as far as its syntax
// tells: a DNS target without a valid host name, a static target without
// valid addresses, a unix target without a path. A nil error says nothing
// of whether the target resolves or whether its scheme has a resolver.
func Check(target string) error {
	if target == "" {
		return fmt.Errorf("empty target")
	}
	scheme, explicit := Scheme(target)
	check, known := builtin[scheme]
	if !known {
		return nil
	}
	raw := target
	if !explicit {
		raw = DefaultScheme + ":///" + target
	}
	u, err := url.Parse(raw)
	if err != nil {
		if _, terr := url.Parse(target); terr != nil {
			err = terr // the target's own error, rather than its DNS form's
		}
		return fmt.Errorf("not a URL: %v", err)
	}
	endpoint := u.Path
	if endpoint == "" {
		endpoint = u.Opaque
	}
	return check(u, strings.TrimPrefix(endpoint, "/"))
}

// checkDNS checks a dns target's host and port as grpc-go's DNS resolver
// reads them: host, host:port, IP, [IPv6]:port; no port means 443.
func checkDNS(_ *url.URL, endpoint string) error {
	if endpoint == "" {
		return fmt.Errorf("no host name: write dns:///host:port")
	}
	if _, err := netip.ParseAddr(endpoint); err == nil {
		return nil
	}
	host, port, err := net.SplitHostPort(endpoint)
	if err != nil {
		if host, _, err = net.SplitHostPort(endpoint + ":443"); err != nil {
			return fmt.Errorf("%q is not host or host:port", endpoint)
		}
	} else if port == "" {
		return fmt.Errorf("%q ends with a colon and no port", endpoint)
	} else if !validPort(port) {
		return fmt.Errorf("port %q of %q is neither a number nor a service name", port, endpoint)
	}
	if host == "" { // ":80" is the local host, as for net.Dial
		return nil
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	if !validHostName(host) {
		return fmt.Errorf("%q is not a valid host name", host)
	}
	return nil
}

// validHostName reports whether host can be looked up in DNS: dot-separated
// labels of letters, digits, hyphens and underscores, a hyphen neither
// first nor last, labels of at most 63 bytes, at most 253 in all.
func validHostName(host string) bool {
	host = strings.TrimSuffix(host, ".")
	if host == "" || len(host) > 253 {
		return false
	}
	for label := range strings.SplitSeq(host, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}

// validPort reports whether port is a port number or a service name such as
// "https".
func validPort(port string) bool {
	for _, r := range port {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return port != ""
}

func checkStatic(_ *url.URL, endpoint string) error {
	_, err := SplitStatic(endpoint)
	return err
}

func checkUnix(u *url.URL, endpoint string) error {
	if u.Host != "" {
		return fmt.Errorf("%s targets take no authority, and this one has %q: write %s:///absolute/path or %s:relative/path", u.Scheme, u.Host, u.Scheme, u.Scheme)
	}
	if u.Path == "" && u.Opaque == "" {
		return fmt.Errorf("no socket path: write %s:///absolute/path or %s:relative/path", u.Scheme, u.Scheme)
	}
	return nil
}

// SplitStatic parses the endpoint of a static target, a comma-separated
// list of host:port, into its addresses, blanks around each trimmed. An
// empty list, an empty entry, an address without a valid host or port, and
// an address listed twice are errors that name it.
func SplitStatic(list string) ([]string, error) {
	if strings.TrimSpace(list) == "" {
		return nil, fmt.Errorf("no addresses: write them as static:///host1:port,host2:port")
	}
	parts := strings.Split(list, ",")
	seen := make(map[string]bool, len(parts))
	addrs := make([]string, 0, len(parts))
	for i, p := range parts {
		addr := strings.TrimSpace(p)
		if addr == "" {
			return nil, fmt.Errorf("address %d of %q is empty", i+1, list)
		}
		if err := CheckAddress(addr); err != nil {
			return nil, err
		}
		if seen[addr] {
			return nil, fmt.Errorf("address %q is listed twice", addr)
		}
		seen[addr] = true
		addrs = append(addrs, addr)
	}
	return addrs, nil
}

// CheckAddress reports whether addr is an endpoint address grpc-go can
// dial: host:port, the host an IP address (IPv6 in brackets) or a host
// name, the port a number or a service name. The rule is the same for
// every lbclient resolver (static, file, etcd), and the error quotes addr.
func CheckAddress(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		return fmt.Errorf("address %q: want host:port", addr)
	}
	if host == "" {
		return fmt.Errorf("address %q has no host", addr)
	}
	if _, err := netip.ParseAddr(host); err != nil && !validHostName(host) {
		return fmt.Errorf("address %q: %q is neither an IP address nor a host name", addr, host)
	}
	if !validPort(port) {
		return fmt.Errorf("address %q: port %q is neither a number nor a service name", addr, port)
	}
	return nil
}

// checkFile checks a file target as lbclient's file resolver reads it: no
// authority, an absolute path.
func checkFile(u *url.URL, _ string) error {
	if u.Host != "" || !strings.HasPrefix(u.Path, "/") {
		return fmt.Errorf("file targets take an absolute path and no host: write file:///absolute/path.json")
	}
	return nil
}

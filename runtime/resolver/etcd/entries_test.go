package etcdresolver

import (
	"encoding/json"
	"net/url"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/client/v3/naming/endpoints"
	"google.golang.org/grpc/experimental/balancer/weight"
	"google.golang.org/grpc/resolver"
)

// managerValue is the value endpoints.Manager writes for ep: the JSON of
// its internal update record, which is ep's fields beside an operation.
func managerValue(t *testing.T, ep endpoints.Endpoint) string {
	t.Helper()
	b, err := json.Marshal(struct {
		Op       uint8
		Addr     string
		Metadata any
	}{0, ep.Addr, ep.Metadata})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseValue(t *testing.T) {
	for _, tc := range []struct {
		name    string
		value   string
		want    entry
		wantErr string
	}{
		{name: "manager, no metadata", value: managerValue(t, endpoints.Endpoint{Addr: "10.0.0.1:80"}), want: entry{addr: "10.0.0.1:80"}},
		{name: "manager, weight", value: managerValue(t, endpoints.Endpoint{Addr: "10.0.0.1:80", Metadata: map[string]any{"weight": 3}}), want: entry{addr: "10.0.0.1:80", weight: 3}},
		{name: "manager, other metadata", value: managerValue(t, endpoints.Endpoint{Addr: "[::1]:80", Metadata: map[string]any{"zone": "z"}}), want: entry{addr: "[::1]:80"}},
		{name: "metadata a string", value: `{"Addr":"h:1","Metadata":"v1"}`, want: entry{addr: "h:1"}},
		{name: "metadata a list", value: `{"Addr":"h:1","Metadata":[1,2]}`, want: entry{addr: "h:1"}},
		{name: "metadata null", value: `{"Addr":"h:1","Metadata":null}`, want: entry{addr: "h:1"}},
		{name: "largest weight", value: `{"Addr":"h:1","Metadata":{"weight":4294967295}}`, want: entry{addr: "h:1", weight: 1<<32 - 1}},
		{name: "field names in any case", value: `{"addr":"h:1","metadata":{"weight":2}}`, want: entry{addr: "h:1", weight: 2}},

		{name: "empty", value: ``, wantErr: "the value is not valid JSON: unexpected end of JSON input (at byte 0)"},
		{name: "not JSON", value: `not json`, wantErr: "the value is not valid JSON: invalid character 'o' in literal null (expecting 'u') (at byte 2)"},
		{name: "truncated", value: `{"Addr":"h:1"`, wantErr: "the value is not valid JSON: unexpected end of JSON input (at byte 13)"},
		{name: "a bare address", value: `"h:1"`, wantErr: `the value is not an endpoint (the JSON of endpoints.Endpoint, {"Addr": "host:port", "Metadata": ...}): json: cannot unmarshal string into Go value of type struct { Addr string; Metadata json.RawMessage }`},
		{name: "Addr a number", value: `{"Addr":80}`, wantErr: `the value is not an endpoint (the JSON of endpoints.Endpoint, {"Addr": "host:port", "Metadata": ...}): json: cannot unmarshal number into Go struct field .Addr of type string`},
		{name: "no Addr", value: `{"Metadata":{"weight":1}}`, wantErr: "the value has no Addr"},
		{name: "no port", value: `{"Addr":"10.0.0.1"}`, wantErr: `Addr "10.0.0.1": want host:port`},
		{name: "empty port", value: `{"Addr":"10.0.0.1:"}`, wantErr: `Addr "10.0.0.1:": want host:port`},
		{name: "no host", value: `{"Addr":":80"}`, wantErr: `Addr ":80": want host:port`},
		{name: "weight 0", value: `{"Addr":"h:1","Metadata":{"weight":0}}`, wantErr: "Metadata weight 0: want a whole number from 1 to 4294967295"},
		{name: "weight negative", value: `{"Addr":"h:1","Metadata":{"weight":-2}}`, wantErr: "Metadata weight -2: want a whole number from 1 to 4294967295"},
		{name: "weight a string", value: `{"Addr":"h:1","Metadata":{"weight":"3"}}`, wantErr: `Metadata weight "3": want a whole number from 1 to 4294967295`},
		{name: "weight a fraction", value: `{"Addr":"h:1","Metadata":{"weight":2.5}}`, wantErr: "Metadata weight 2.5: want a whole number from 1 to 4294967295"},
		{name: "weight in exponent form", value: `{"Addr":"h:1","Metadata":{"weight":1e3}}`, wantErr: "Metadata weight 1e3: want a whole number from 1 to 4294967295"},
		{name: "weight too large", value: `{"Addr":"h:1","Metadata":{"weight":4294967296}}`, wantErr: "Metadata weight 4294967296: want a whole number from 1 to 4294967295"},
		{name: "weight null", value: `{"Addr":"h:1","Metadata":{"weight":null}}`, wantErr: "Metadata weight null: want a whole number from 1 to 4294967295"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseValue([]byte(tc.value))
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("parseValue(%s) = %v, %v; want error %q", tc.value, got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseValue(%s): %v", tc.value, err)
			}
			if got != tc.want {
				t.Errorf("parseValue(%s) = %+v, want %+v", tc.value, got, tc.want)
			}
		})
	}
}

func kv(key, value string, rev int64) *mvccpb.KeyValue {
	return &mvccpb.KeyValue{Key: []byte(key), Value: []byte(value), ModRevision: rev}
}

// summary is endpoints as address → weight (0: none), for comparison.
func summary(t *testing.T, eps []resolver.Endpoint) map[string]uint32 {
	t.Helper()
	out := map[string]uint32{}
	for _, ep := range eps {
		if len(ep.Addresses) != 1 {
			t.Fatalf("endpoint %v has %d addresses, want 1", ep, len(ep.Addresses))
		}
		if _, dup := out[ep.Addresses[0].Addr]; dup {
			t.Fatalf("address %s is in two endpoints", ep.Addresses[0].Addr)
		}
		out[ep.Addresses[0].Addr] = weight.FromEndpoint(ep).Weight
	}
	return out
}

func TestEndpointSet(t *testing.T) {
	s := newEndpointSet()
	check := func(step string, wantChanged bool, want map[string]uint32) {
		t.Helper()
		eps, changed := s.endpoints()
		if changed != wantChanged {
			t.Errorf("%s: changed = %v, want %v", step, changed, wantChanged)
		}
		if d := cmp.Diff(want, summary(t, eps)); d != "" {
			t.Errorf("%s: endpoints (-want +got):\n%s", step, d)
		}
	}
	check("nothing read: the empty set is a set", true, map[string]uint32{})
	check("nothing read again", false, map[string]uint32{})

	s.replace([]*mvccpb.KeyValue{
		kv("p/a", `{"Addr":"a:1","Metadata":{"weight":3}}`, 2),
		kv("p/b", `{"Addr":"b:1"}`, 3),
		kv("p/bad", `{`, 4),
	})
	check("read", true, map[string]uint32{"a:1": 3, "b:1": 0})

	s.put(kv("p/a", `{"Addr":"a:1","Metadata":{"weight":0}}`, 5))
	check("bad weight keeps the last good value", false, map[string]uint32{"a:1": 3, "b:1": 0})

	s.put(kv("p/b2", `{"Addr":"b:1","Metadata":{"weight":2}}`, 6))
	check("a second key for b, written later, wins", true, map[string]uint32{"a:1": 3, "b:1": 2})
	s.put(kv("p/b", `{"Addr":"b:1","Metadata":{"weight":4}}`, 7))
	check("the first key rewritten wins", true, map[string]uint32{"a:1": 3, "b:1": 4})
	s.remove("p/b")
	check("the first key deleted", true, map[string]uint32{"a:1": 3, "b:1": 2})

	// A read after a broken watch: p/a is still bad (kept at its last good
	// value), p/b2 went, p/c came.
	s.replace([]*mvccpb.KeyValue{
		kv("p/a", `{"Addr":"a:1","Metadata":{"weight":0}}`, 5),
		kv("p/c", `{"Addr":"c:1"}`, 9),
	})
	check("read again", true, map[string]uint32{"a:1": 3, "c:1": 0})
	if rev, ok := s.bad["p/a"]; !ok || rev != 5 {
		t.Errorf("bad value of p/a at revision 5 forgotten: %v", s.bad)
	}
	if _, ok := s.bad["p/bad"]; ok {
		t.Errorf("bad value of p/bad, gone in the read, still remembered")
	}

	s.remove("p/a")
	s.remove("p/c")
	check("every key deleted", true, map[string]uint32{})
}

func TestParseTarget(t *testing.T) {
	for _, tc := range []struct{ target, want, wantErr string }{
		{target: "etcd:///services/greeter", want: "services/greeter/"},
		{target: "etcd:///services/greeter/", want: "services/greeter/"},
		{target: "etcd:////services/greeter", want: "/services/greeter/"},
		{target: "etcd:///", wantErr: `etcd resolver: target "etcd:///" has no key prefix: write etcd:///<key prefix>, the target the servers register under with endpoints.NewManager`},
		{target: "etcd://h:2379/x", wantErr: `etcd resolver: target "etcd://h:2379/x" names the authority "h:2379": the cluster is the one of the client given to NewBuilder; write etcd:///<key prefix>`},
	} {
		u, err := url.Parse(tc.target)
		if err != nil {
			t.Fatal(err)
		}
		got, err := parseTarget(resolver.Target{URL: *u})
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("parseTarget(%s) = %q, %v; want error %q", tc.target, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseTarget(%s) = %q, %v; want %q", tc.target, got, err, tc.want)
		}
	}
}

func TestDelay(t *testing.T) {
	within := func(failures int, want time.Duration) {
		t.Helper()
		lo, hi := time.Duration(float64(want)*0.8), time.Duration(float64(want)*1.2)
		for range 100 {
			if d := delay(failures); d < lo || d > hi {
				t.Fatalf("delay(%d) = %v, want %v ± 20%%", failures, d, want)
			}
		}
	}
	within(0, 100*time.Millisecond)
	within(1, 160*time.Millisecond)
	within(2, 256*time.Millisecond)
	within(20, 5*time.Second)
	within(1000, 5*time.Second)
}

package file_test

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/experimental/balancer/weight"
	"google.golang.org/grpc/resolver"

	"github.com/lbclient/lbclient/runtime/resolver/file"
)

// entry is what Parse makes of one endpoint, for comparisons.
type entry struct {
	Addr   string
	Weight uint32 // 0: no weight attribute
	Zone   string
}

func entries(st resolver.State) []entry {
	var out []entry
	for _, e := range st.Endpoints {
		out = append(out, entry{Addr: e.Addresses[0].Addr, Weight: weight.FromEndpoint(e).Weight, Zone: file.Zone(e)})
	}
	return out
}

func TestParse(t *testing.T) {
	const name = "/etc/lb/eps.json"
	for _, tc := range []struct {
		desc, data string
		want       []entry
		wantErr    string
	}{
		{desc: "one address", data: `{"endpoints": [{"address": "10.0.0.1:8443"}]}`,
			want: []entry{{Addr: "10.0.0.1:8443"}}},
		{desc: "weights and zones", data: `{"endpoints": [
			{"address": "10.0.0.1:8443", "weight": 3, "zone": "us-east1-b"},
			{"address": "[::1]:8443", "weight": 4294967295},
			{"address": "orders.internal:https", "zone": "us-east1-c"}]}`,
			want: []entry{{"10.0.0.1:8443", 3, "us-east1-b"}, {"[::1]:8443", 4294967295, ""}, {"orders.internal:https", 0, "us-east1-c"}}},
		{desc: "null is absent", data: `{"endpoints": [{"address": "a:1", "weight": null, "zone": null}]}`,
			want: []entry{{Addr: "a:1"}}},
		{desc: "empty zone", data: `{"endpoints": [{"address": "a:1", "zone": ""}]}`,
			want: []entry{{Addr: "a:1"}}},

		{desc: "empty file", data: " \n", wantErr: "file resolver: /etc/lb/eps.json: the file is empty"},
		{desc: "syntax", data: "{\"endpoints\": [\n  {\"address\": \"a:1\"},\n  {\"address\": \"b:1\",}\n]}",
			wantErr: "file resolver: /etc/lb/eps.json:3:21: invalid character '}' looking for beginning of object key string"},
		{desc: "cut short", data: "{\"endpoints\": [\n  {\"address\": \"a:1\"},\n  {\"addr",
			wantErr: "file resolver: /etc/lb/eps.json:3:9: unexpected end of JSON input"},
		{desc: "column in characters", data: `{"endpoints": [{"address": "a:1", "zone": "zürich"} x`,
			wantErr: "file resolver: /etc/lb/eps.json:1:53: invalid character 'x' after array element"},
		{desc: "two values", data: `{"endpoints": [{"address": "a:1"}]} {"endpoints": []}`,
			wantErr: "file resolver: /etc/lb/eps.json:1:37: invalid character '{' after top-level value"},
		{desc: "not an object", data: `[{"address": "a:1"}]`,
			wantErr: `file resolver: /etc/lb/eps.json: the file holds a list, want an object {"endpoints": [...]}`},
		{desc: "unknown field", data: `{"endpoints": [{"address": "a:1"}], "version": 2}`,
			wantErr: `file resolver: /etc/lb/eps.json: unknown field "version" (known: endpoints)`},
		{desc: "no endpoints field", data: `{}`,
			wantErr: `file resolver: /etc/lb/eps.json: no "endpoints" field`},
		{desc: "endpoints not a list", data: `{"endpoints": {"address": "a:1"}}`,
			wantErr: `file resolver: /etc/lb/eps.json: "endpoints" is an object, want a list`},
		{desc: "endpoints null", data: `{"endpoints": null}`,
			wantErr: `file resolver: /etc/lb/eps.json: "endpoints" is null, want a list`},
		{desc: "empty list", data: `{"endpoints": []}`,
			wantErr: `file resolver: /etc/lb/eps.json: "endpoints" is empty`},
		{desc: "endpoint not an object", data: `{"endpoints": ["a:1"]}`,
			wantErr: `file resolver: /etc/lb/eps.json: endpoint 1 is a string, want an object {"address": "host:port"}`},
		{desc: "unknown endpoint field", data: `{"endpoints": [{"address": "a:1"}, {"address": "b:1", "wieght": 2}]}`,
			wantErr: `file resolver: /etc/lb/eps.json: endpoint 2: unknown field "wieght" (known: address, weight, zone)`},
		{desc: "no address", data: `{"endpoints": [{"weight": 2}]}`,
			wantErr: `file resolver: /etc/lb/eps.json: endpoint 1 has no "address"`},
		{desc: "null address", data: `{"endpoints": [{"address": null}]}`,
			wantErr: `file resolver: /etc/lb/eps.json: endpoint 1 has no "address"`},
		{desc: "address not a string", data: `{"endpoints": [{"address": 8443}]}`,
			wantErr: `file resolver: /etc/lb/eps.json: endpoint 1: "address" is a number, want a string "host:port"`},
		{desc: "no port", data: `{"endpoints": [{"address": "10.0.0.1"}]}`,
			wantErr: `file resolver: /etc/lb/eps.json: endpoint 1: address "10.0.0.1": want host:port`},
		{desc: "no host", data: `{"endpoints": [{"address": ":8443"}]}`,
			wantErr: `file resolver: /etc/lb/eps.json: endpoint 1: address ":8443" has no host`},
		{desc: "listed twice", data: `{"endpoints": [{"address": "a:1"}, {"address": "b:1"}, {"address": "a:1", "weight": 2}]}`,
			wantErr: `file resolver: /etc/lb/eps.json: endpoint 3: address "a:1" is listed twice (also endpoint 1)`},
		{desc: "weight 0", data: `{"endpoints": [{"address": "a:1", "weight": 0}]}`,
			wantErr: `file resolver: /etc/lb/eps.json: endpoint 1 (a:1): weight 0: want an integer from 1 to 4294967295`},
		{desc: "weight negative", data: `{"endpoints": [{"address": "a:1", "weight": -2}]}`,
			wantErr: `file resolver: /etc/lb/eps.json: endpoint 1 (a:1): weight -2: want an integer from 1 to 4294967295`},
		{desc: "weight fraction", data: `{"endpoints": [{"address": "a:1", "weight": 1.5}]}`,
			wantErr: `file resolver: /etc/lb/eps.json: endpoint 1 (a:1): weight 1.5: want an integer from 1 to 4294967295`},
		{desc: "weight too large", data: `{"endpoints": [{"address": "a:1", "weight": 4294967296}]}`,
			wantErr: `file resolver: /etc/lb/eps.json: endpoint 1 (a:1): weight 4294967296: want an integer from 1 to 4294967295`},
		{desc: "weight a string", data: `{"endpoints": [{"address": "a:1", "weight": "3"}]}`,
			wantErr: `file resolver: /etc/lb/eps.json: endpoint 1 (a:1): "weight" is a string, want an integer from 1 to 4294967295`},
		{desc: "zone not a string", data: `{"endpoints": [{"address": "a:1", "zone": 7}]}`,
			wantErr: `file resolver: /etc/lb/eps.json: endpoint 1 (a:1): "zone" is a number, want a string`},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			st, err := file.Parse(name, []byte(tc.data))
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("Parse error = %v\nwant %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if d := cmp.Diff(tc.want, entries(st)); d != "" {
				t.Errorf("endpoints (-want +got):\n%s", d)
			}
		})
	}
}

// TestParseNoAttributes checks that an endpoint the file gives no weight
// and no zone has no attributes at all: a policy that looks for a weight
// finds none, rather than a zero one.
func TestParseNoAttributes(t *testing.T) {
	st, err := file.Parse("eps.json", []byte(`{"endpoints": [{"address": "a:1"}, {"address": "b:1", "weight": 2}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if a := st.Endpoints[0].Attributes; a != nil {
		t.Errorf("endpoint without weight or zone has attributes %v", a)
	}
	if st.Endpoints[1].Attributes == nil {
		t.Errorf("endpoint with a weight has no attributes")
	}
}

// FuzzParse checks that Parse never panics, that what it accepts is a
// non-empty list of distinct host:port endpoints with weights in range, and
// that every error names the file.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{"endpoints": [{"address": "10.0.0.1:8443", "weight": 3, "zone": "us-east1-b"}]}`,
		`{"endpoints": [{"address": "[::1]:1"}, {"address": "b:2", "weight": null}]}`,
		`{"endpoints": []}`,
		`{"endpoints": [{"address": "a:1"}, {"address": "a:1"}]}`,
		`{"endpoints": [{"address": "a:1", "weight": 1e3}]}`,
		"{\n\"endpoints\": [\n{\"address\"",
		`[]`,
		``,
	} {
		f.Add([]byte(s))
	}
	const name = "/fuzz/eps.json"
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := file.Parse(name, data)
		if err != nil {
			if msg := err.Error(); len(msg) < len("file resolver: "+name) || msg[:len("file resolver: "+name)] != "file resolver: "+name {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if len(st.Endpoints) == 0 {
			t.Fatalf("accepted %q with no endpoints", data)
		}
		if !json.Valid(data) {
			t.Fatalf("accepted invalid JSON %q", data)
		}
		seen := map[string]bool{}
		for _, e := range st.Endpoints {
			if len(e.Addresses) != 1 {
				t.Fatalf("endpoint %v has %d addresses", e, len(e.Addresses))
			}
			a := e.Addresses[0].Addr
			if seen[a] {
				t.Fatalf("accepted %q with address %q twice", data, a)
			}
			seen[a] = true
		}
	})
}

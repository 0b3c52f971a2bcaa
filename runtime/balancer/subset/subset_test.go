package subset

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"go.uber.org/goleak"
	"google.golang.org/grpc/experimental/balancer/weight"
	"google.golang.org/grpc/resolver"

	_ "github.com/lbclient/lbclient/runtime/balancer/peakewma"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestAperture(t *testing.T) {
	for _, tc := range []struct {
		backends, size, index, count int
		want                         string
	}{
		// 6 backends, 3 clients of 2: exact thirds.
		{6, 2, 0, 3, "[{0 1} {1 1}]"},
		{6, 2, 2, 3, "[{4 1} {5 1}]"},
		// 4 clients of 2 over 6: 1.33 apertures over a point, widened to
		// 2 (3 backends), 1.5 backends apart, the ends in half.
		{6, 2, 1, 4, "[{1 0.5} {2 1} {3 1} {4 0.5}]"},
		// The last aperture wraps round the ring.
		{6, 2, 3, 4, "[{4 0.5} {5 1} {0 1} {1 0.5}]"},
		// Fewer clients than it takes to cover the ring: each is widened
		// to 1/count.
		{6, 1, 1, 2, "[{3 1} {4 1} {5 1}]"},
		// 1.4 apertures over a point: widened to 2, 5 backends of 10
		// where size asks for 3.5 (4 clients × 3 = 1.2 → 2 slots of 1/4).
		{10, 3, 1, 4, "[{2 0.5} {3 1} {4 1} {5 1} {6 1} {7 0.5}]"},
		// Wider than the fleet: all, whole.
		{3, 5, 0, 10, "[{0 1} {1 1} {2 1}]"},
		// Widened to the whole ring: all, whole.
		{3, 2, 1, 2, "[{0 1} {1 1} {2 1}]"},
		// 1000 clients of 20 over 100: 200 apertures over each point
		// already, no widening; client 5 starts half-way into backend 0.
		{100, 20, 5, 1000, "[{0 0.5} {1 1} {2 1} {3 1} {4 1} {5 1} {6 1} {7 1} {8 1} {9 1} {10 1} {11 1} {12 1} {13 1} {14 1} {15 1} {16 1} {17 1} {18 1} {19 1} {20 0.5}]"},
	} {
		if got := fmt.Sprint(Aperture(tc.backends, tc.size, tc.index, tc.count)); got != tc.want {
			t.Errorf("Aperture(%d, %d, %d, %d) = %s, want %s", tc.backends, tc.size, tc.index, tc.count, got, tc.want)
		}
	}
}

// TestApertureCoversEvenly: over a fleet, every backend is in some
// aperture, its connections are within one of the mean, and its share of
// the calls is the same as every other's, whether size × count / backends
// is whole or not.
func TestApertureCoversEvenly(t *testing.T) {
	for _, tc := range []struct{ backends, size, count int }{{100, 20, 1000}, {100, 10, 1000}, {100, 20, 7}, {37, 5, 101}} {
		t.Run(fmt.Sprint(tc), func(t *testing.T) {
			conns := make([]int, tc.backends)
			load := make([]float64, tc.backends)
			for i := range tc.count {
				shares := Aperture(tc.backends, tc.size, i, tc.count)
				var sum float64
				for _, s := range shares {
					sum += s.Fraction
				}
				for _, s := range shares {
					conns[s.Index]++
					load[s.Index] += s.Fraction / sum
				}
			}
			minC, maxC := conns[0], conns[0]
			minL, maxL := load[0], load[0]
			for k := range conns {
				minC, maxC = min(minC, conns[k]), max(maxC, conns[k])
				minL, maxL = min(minL, load[k]), max(maxL, load[k])
			}
			if minC == 0 {
				t.Fatal("a backend is in no aperture")
			}
			if maxC-minC > 1 {
				t.Errorf("connections per backend span %d..%d, want within one", minC, maxC)
			}
			mean := float64(tc.count) / float64(tc.backends)
			if maxL/mean > 1+1e-9 || minL/mean < 1-1e-9 {
				t.Errorf("load per backend %.3f..%.3f of the mean, want equal", minL/mean, maxL/mean)
			}
		})
	}
}

func endpoints(addrs ...string) []resolver.Endpoint {
	var eps []resolver.Endpoint
	for _, a := range addrs {
		eps = append(eps, resolver.Endpoint{Addresses: []resolver.Address{{Addr: a}}})
	}
	return eps
}

func TestSelectSortsAndWeighs(t *testing.T) {
	eps := endpoints("f", "b", "d", "a", "e", "c")
	eps[1] = weight.Set(eps[1], weight.EndpointInfo{Weight: 3}) // b
	var got []string
	for _, e := range Select(eps, 2, 1, 4) {
		got = append(got, fmt.Sprintf("%s:%d", e.Addresses[0].Addr, weight.FromEndpoint(e).Weight))
	}
	// Sorted a..f; client 1 of 4 covers half of b, c, d, half of e. b's
	// resolver weight 3 multiplies its part.
	if want := "[b:24 c:16 d:16 e:8]"; fmt.Sprint(got) != want {
		t.Errorf("Select = %v, want %s", got, want)
	}
	if got := len(Select(eps, 2, 0, 0)); got != 6 {
		t.Errorf("count 0 selected %d endpoints, want all 6", got)
	}
}

func TestParseConfig(t *testing.T) {
	good := `{"subsetSize":20,"clientIndex":3,"clientCount":100,"childPolicy":[{"no_such_policy":{}},{"lbclient_peak_ewma":{"probeInterval":"100ms"}}]}`
	cfg, err := parseConfig(json.RawMessage(good))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.child.Name != "lbclient_peak_ewma" || cfg.child.Config == nil {
		t.Fatalf("child %q (config %v), want lbclient_peak_ewma parsed", cfg.child.Name, cfg.child.Config)
	}
	// The round trip grpc-go makes: marshal the parsed config, parse it
	// again, get the same config.
	js, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	again, err := parseConfig(js)
	if err != nil {
		t.Fatalf("parsing the marshalled config %s: %v", js, err)
	}
	if again.SubsetSize != 20 || again.ClientIndex != 3 || again.ClientCount != 100 || again.child.Name != cfg.child.Name || string(again.child.JSON) != string(cfg.child.JSON) {
		t.Errorf("round trip: %s gave %+v, want %+v", js, again, cfg)
	}
	for _, tc := range []struct{ js, want string }{
		{`{"clientIndex":0,"clientCount":3,"childPolicy":[{"round_robin":{}}]}`, "subsetSize 0"},
		{`{"subsetSize":2,"clientIndex":3,"clientCount":3,"childPolicy":[{"round_robin":{}}]}`, "clientIndex 3 is outside [0, clientCount 3)"},
		{`{"subsetSize":2,"clientCount":-1,"childPolicy":[{"round_robin":{}}]}`, "clientCount -1"},
		{`{"subsetSize":2,"clientCount":3}`, `"childPolicy" is required`},
		{`{"subsetSize":2,"clientCount":3,"childPolicy":[{"nope":{}}]}`, "has no registered policy"},
		{`{"subsetSize":2,"clientCount":3,"childPolicy":[{"lbclient_peak_ewma":{"probeInterval":"1ns"}}]}`, `"childPolicy" "lbclient_peak_ewma"`},
		{`{"subsetSize":2,"clientCount":3,"subset":1,"childPolicy":[{"round_robin":{}}]}`, "unknown field"},
	} {
		_, err := parseConfig(json.RawMessage(tc.js))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), Name+": ") {
			t.Errorf("parseConfig(%s) = %v, want an error with %q", tc.js, err, tc.want)
		}
	}
}

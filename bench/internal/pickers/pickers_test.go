package pickers

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const sample = `goos: linux
goarch: amd64
pkg: github.com/lbclient/lbclient/runtime/balancer/peakewma
cpu: AMD EPYC
BenchmarkPick/least_request_experimental/serial-2         	  758098	       132.7 ns/op	      72 B/op	       3 allocs/op
BenchmarkPick/lbclient_peak_ewma/serial-2                 	  664732	       170.3 ns/op	       0 B/op	       0 allocs/op
BenchmarkPick/lbclient_peak_ewma/serial-2                 	  664732	       171.5 ns/op	       0 B/op	       0 allocs/op
PASS
pkg: github.com/lbclient/lbclient/runtime/balancer/observe
BenchmarkPick/observe+round_robin/hedged-3-attempts-2         	  174351	       644.1 ns/op	     192 B/op	       5 allocs/op
BenchmarkPick/observe+round_robin/hedged-3-attempts-2 some log line
ok  	github.com/lbclient/lbclient/runtime/balancer/observe	0.718s
`

func TestParse(t *testing.T) {
	rs, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 3 {
		t.Fatalf("%d results, want 3: %+v", len(rs), rs)
	}
	lr, pe, h := rs[0], rs[1], rs[2]
	if !lr.LeastRequest() || lr.Lbclient() || lr.Path() != "serial" || lr.AllocsPerOp[0] != 3 || lr.BytesPerOp[0] != 72 {
		t.Errorf("least_request: %+v", lr)
	}
	if pe.Name != "lbclient_peak_ewma/serial" || !pe.Lbclient() || len(pe.NsPerOp) != 2 || pe.NsPerOp[1] != 171.5 || pe.Attempts() != 1 {
		t.Errorf("peak_ewma: %+v", pe)
	}
	if !strings.HasSuffix(h.Pkg, "/observe") || !h.Hedged() || h.Attempts() != 3 || h.Case() != "observe+round_robin" || len(h.NsPerOp) != 1 {
		t.Errorf("hedged: %+v, attempts %d", h, h.Attempts())
	}
}

// TestRunTiny runs the real benchmarks for one iteration each, and checks
// that least_request and lbclient's pickers are among the results; it
// asserts no timing.
func TestRunTiny(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(wd, "..", "..", "..")
	rs, raw, err := Run(root, 1, "1x", nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, raw)
	}
	var lr, lb, parallel int
	for _, r := range rs {
		if len(r.NsPerOp) != 1 || len(r.AllocsPerOp) != 1 {
			t.Errorf("%s %s: %+v", r.Pkg, r.Name, r)
		}
		if r.LeastRequest() {
			lr++
		}
		if r.Lbclient() {
			lb++
		}
		if r.Path() == "parallel" {
			parallel++
		}
	}
	if lr == 0 || lb == 0 || parallel == 0 {
		t.Errorf("least_request %d, lbclient %d, parallel %d results; want some of each:\n%s", lr, lb, parallel, raw)
	}
}

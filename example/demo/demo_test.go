package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/lbclient/lbclient/runtime"
	"github.com/lbclient/lbclient/runtime/lbdebug"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// TestSkewedBackendGetsLittleTraffic runs the demo's slow-backend scenario
// and checks shares, not times: PEAK_EWMA, with or without hedging, sends
// the backend that is ten times slower well under its fair quarter.
//
// The backends answer in 5 and 50 ms rather than the demo's 1 and 10: the
// race detector and the test packages that go test runs beside this one
// add milliseconds of scheduling delay to every call on a 2-core machine,
// which at 1 ms blurs fast and slow backends alike into noise.
func TestSkewedBackendGetsLittleTraffic(t *testing.T) {
	const scale = 5
	f, err := startFleet(4, scale*fastDelay)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	slow := f[3]
	slow.SetDelay(scale * slowDelay)
	cfg := config{calls: 1200, workers: 8}
	for _, v := range skewVariants() {
		r, err := drive(testCtx(t), f, v, cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		if r.Errors != 0 {
			t.Errorf("%s: %d errors, first %v", v.name, r.Errors, r.FirstError)
		}
		share := r.Share(slow.Name())
		t.Logf("%s: slow backend share %.1f%%, extra calls %d", v.name, 100*share, r.hedging.ExtraAttempts)
		switch v.name {
		case "ROUND_ROBIN":
			if share < 0.20 {
				t.Errorf("ROUND_ROBIN sent the slow backend %.1f%%, want its turn (25%%)", 100*share)
			}
		case "PEAK_EWMA", "PEAK_EWMA + hedging p97":
			if share >= 0.10 {
				t.Errorf("%s sent the slow backend %.1f%% of calls, want < 10%%", v.name, 100*share)
			}
		}
		if !strings.Contains(v.name, "hedging") && r.hedging.ExtraAttempts != 0 {
			t.Errorf("%s sent %d hedges with hedging off", v.name, r.hedging.ExtraAttempts)
		}
	}
}

// TestFailover runs the demo's failover scenario: with the annotations'
// rules no call fails while a backend dies, and the restarted backend is
// called again.
func TestFailover(t *testing.T) {
	cfg := config{calls: 1200, workers: 8}
	fo, err := failoverRun(testCtx(t), variant{name: "annotations", rules: true}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if fo.Errors != 0 {
		t.Errorf("%d of %d calls failed with the annotations' rules; first: %v; hedging: %+v", fo.Errors, cfg.calls, fo.FirstError, fo.hedging)
	}
	if fo.backAfter == 0 {
		t.Errorf("the restarted backend got no call within the bound")
	}
}

// TestDemoRuns runs the whole demo small and checks that every section
// printed.
func TestDemoRuns(t *testing.T) {
	var out bytes.Buffer
	if err := run(&out, config{calls: 300, workers: 4}); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	for _, want := range []string{"== Spread", "== One slow backend", "== Failover", "== Key affinity", "PEAK_EWMA + hedging p97"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
}

// TestFleetChangesLoseNothing runs the fleet scenario: the backends the
// file adds take at least 0.6 of their share in the second after the one
// they were added in, the one it drops gets no call in the last second,
// and no call fails, under ROUND_ROBIN and PEAK_EWMA.
func TestFleetChangesLoseNothing(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []runtime.Policy{runtime.RoundRobin, runtime.PeakEWMA} {
		r, err := fleetRun1(testCtx(t), filepath.Join(dir, "fleet.json"), p, config{workers: 8})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%v: %d calls, %d failed; per second: %v", p, r.calls, r.failed, r.seconds)
		if r.failed != 0 {
			t.Errorf("%v: %d of %d calls failed", p, r.failed, r.calls)
		}
		if len(r.seconds) != int(fleetRun/time.Second) {
			t.Fatalf("%v: %d seconds recorded, want %d", p, len(r.seconds), int(fleetRun/time.Second))
		}
		share := func(s, b int) float64 {
			var n int64
			for _, c := range r.seconds[s] {
				n += c
			}
			return float64(r.seconds[s][b]) / float64(n)
		}
		grown := int(grownAt/time.Second) + 1 // the second after the one of the change
		for _, b := range []int{3, 4} {
			if got := share(grown, b) * 5; got < 0.6 {
				t.Errorf("%v: backend-%d took %.2f of its share in second %d", p, b+1, got, grown)
			}
		}
		if got := r.seconds[len(r.seconds)-1][0]; got != 0 {
			t.Errorf("%v: the dropped backend-1 answered %d calls in the last second", p, got)
		}
	}
}

// TestDebugPage: with -debug the demo serves the debug page, which lists
// the clients the scenarios have open, with their calls; the root
// redirects to it.
func TestDebugPage(t *testing.T) {
	url, stop, err := serveDebug("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	f, err := startFleet(4, fastDelay)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	f[3].SetDelay(slowDelay)
	v := skewVariants()[2] // PEAK_EWMA
	c, closeConn, err := v.client(f.Target())
	if err != nil {
		t.Fatal(err)
	}
	defer closeConn()
	if _, err := driveClient(testCtx(t), c, v, config{calls: 200, workers: 4}, nil); err != nil {
		t.Fatal(err)
	}

	root, err := http.Get(strings.TrimSuffix(url, debugPath) + "/")
	if err != nil {
		t.Fatal(err)
	}
	root.Body.Close()
	if root.Request.URL.Path != debugPath {
		t.Errorf("root served %s, want a redirect to %s", root.Request.URL.Path, debugPath)
	}
	resp, err := http.Get(url + "?format=json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p lbdebug.Page
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	var found bool
	for _, conn := range p.Conns {
		if conn.Target == f.Target() {
			found = true
			if conn.Policy != "PEAK_EWMA" || conn.Picks < 200 || len(conn.Endpoints) != 4 {
				t.Errorf("page shows %+v, want PEAK_EWMA, at least 200 picks over 4 endpoints", conn)
			}
		}
	}
	if !found {
		t.Errorf("page lists %+v, not the demo's client of %s", p.Conns, f.Target())
	}
}

// TestUnknownScenario: -scenarios names what it does not know.
func TestUnknownScenario(t *testing.T) {
	err := run(io.Discard, config{calls: 10, workers: 1, only: []string{"skew", "nope"}})
	if err == nil || err.Error() != `demo: -scenarios: unknown scenario "nope" (want spread, skew, failover, affinity or fleet)` {
		t.Errorf("run: %v", err)
	}
}

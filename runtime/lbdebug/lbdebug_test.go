package lbdebug_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"

	"github.com/lbclient/lbclient/example/backend"
	greeterv1 "github.com/lbclient/lbclient/gen/greeter/v1"
	"github.com/lbclient/lbclient/internal/testfleet"
	"github.com/lbclient/lbclient/runtime"
	"github.com/lbclient/lbclient/runtime/lbdebug"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const sayHello = "/greeter.v1.Greeter/SayHello"

func fleet(t *testing.T, n int) backend.Fleet { return testfleet.Start(t, n) }

func dial(t *testing.T, f backend.Fleet, opts ...runtime.Option) (*runtime.Conn, greeterv1.GreeterClient) {
	return testfleet.DialReady(t, f, opts...)
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func page(t *testing.T, url string) lbdebug.Page {
	t.Helper()
	code, body := get(t, url+"?format=json")
	if code != http.StatusOK {
		t.Fatalf("GET ?format=json: %d %s", code, body)
	}
	var p lbdebug.Page
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatalf("JSON: %v\n%s", err, body)
	}
	return p
}

func connByID(p lbdebug.Page, target string) *lbdebug.Conn {
	for i := range p.Conns {
		if p.Conns[i].Target == target {
			return &p.Conns[i]
		}
	}
	return nil
}

// TestJSONShowsKnownTraffic: two connections with known traffic, one
// hedged over a fleet with a failing backend: the JSON lists both with
// what their Endpoints and Stats say, and drops one once it is closed.
func TestJSONShowsKnownTraffic(t *testing.T) {
	srv := httptest.NewServer(lbdebug.Handler())
	defer srv.Close()

	fa := fleet(t, 3)
	fa[2].SetFailing(true)
	connA, a := dial(t, fa,
		runtime.WithPolicy(runtime.ConsistentHash),
		runtime.WithMethodRules(sayHello, runtime.MethodRules{Hedging: &runtime.HedgingPolicy{
			MaxAttempts: 2, Delay: 10 * time.Second, NonFatalCodes: []codes.Code{codes.Unavailable}}}))
	fb := fleet(t, 2)
	connB, b := dial(t, fb, runtime.WithPolicy(runtime.RoundRobin))

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const callsA, callsB = 60, 20
	for i := range callsA {
		if _, err := a.SayHello(runtime.WithHashKey(ctx, fmt.Sprint(i)), &greeterv1.HelloRequest{Name: "a"}); err != nil {
			t.Fatalf("call %d on A: %v", i, err)
		}
	}
	for i := range callsB {
		if _, err := b.SayHello(ctx, &greeterv1.HelloRequest{Name: "b"}); err != nil {
			t.Fatalf("call %d on B: %v", i, err)
		}
	}

	p := page(t, srv.URL)
	ca, cb := connByID(p, fa.Target()), connByID(p, fb.Target())
	if ca == nil || cb == nil {
		t.Fatalf("page lists %+v, want both connections", p.Conns)
	}
	hs := connA.Stats().Hedging
	if ca.Policy != "CONSISTENT_HASH" || cb.Policy != "ROUND_ROBIN" || ca.State != "READY" {
		t.Errorf("policies %q, %q, state %q; want CONSISTENT_HASH, ROUND_ROBIN, READY", ca.Policy, cb.Policy, ca.State)
	}
	if ca.Hedging == nil || ca.Hedging.Calls != callsA || ca.Hedging.ExtraAttempts != hs.ExtraAttempts || ca.Hedging.Wins != hs.HedgeWins || hs.ExtraAttempts == 0 {
		t.Errorf("A's hedging %+v, want %d calls and Conn.Stats' %+v, some hedged", ca.Hedging, callsA, hs.Counters)
	}
	if cb.Hedging != nil {
		t.Errorf("B hedges nothing, page shows %+v", cb.Hedging)
	}
	if want := uint64(callsA + hs.ExtraAttempts); ca.Picks != want {
		t.Errorf("A's picks %d, want %d (calls + hedged attempts)", ca.Picks, want)
	}
	var share float64
	want := connA.Endpoints()
	if len(ca.Endpoints) != len(want) {
		t.Fatalf("A's endpoints %+v, want %+v", ca.Endpoints, want)
	}
	for i, e := range ca.Endpoints {
		w := want[i]
		share += e.Share
		if e.Addr != w.Addr || e.Picks != w.Picks || e.Failures != w.Failures || e.Ejected != w.Ejected || e.Ejections != w.Ejections || e.Probes != w.Probes || e.State != w.State.String() || e.Weight != w.Weight {
			t.Errorf("A's endpoint %+v, Conn.Endpoints says %+v", e, w)
		}
		if e.Addr == fa[2].Addr() && (!e.Ejected || e.Ejections != 1 || e.EstimateUs < 500_000) {
			t.Errorf("failing endpoint %+v, want ejected once, an estimate near the 1 s penalty", e)
		}
		if e.Addr != fa[2].Addr() && (e.Ejected || e.EstimateUs <= 0 || e.EstimateUs >= 500_000 || e.LatencyUs <= 0) {
			t.Errorf("healthy endpoint %+v, want not ejected, with a loopback latency", e)
		}
	}
	if share < 0.999 || share > 1.001 {
		t.Errorf("A's shares add up to %v, want 1", share)
	}
	for _, e := range cb.Endpoints {
		if e.Picks != callsB/2 || e.EstimateUs != 0 || e.LatencyUs <= 0 || e.Share != 0.5 {
			t.Errorf("B's endpoint %+v, want %d picks, half the share, a latency and no estimate under round_robin", e, callsB/2)
		}
	}

	connB.Close()
	p = page(t, srv.URL)
	if connByID(p, fb.Target()) != nil || connByID(p, fa.Target()) == nil {
		t.Errorf("after closing B the page lists %+v, want A alone", p.Conns)
	}
}

// TestHTML: the HTML page names each connection and endpoint, escapes what
// it shows, reloads itself as asked, needs nothing from elsewhere, and
// refuses what it does not understand.
func TestHTML(t *testing.T) {
	srv := httptest.NewServer(lbdebug.Handler())
	defer srv.Close()
	code, body := get(t, srv.URL)
	if code != http.StatusOK || !strings.Contains(body, `id="no-conns"`) {
		t.Errorf("with no connection: %d, page without the empty notice:\n%s", code, body)
	}

	f := fleet(t, 2)
	conn, c := dial(t, f)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for range 10 {
		if _, err := c.SayHello(ctx, &greeterv1.HelloRequest{Name: "h"}); err != nil {
			t.Fatal(err)
		}
	}
	code, body = get(t, srv.URL+"?refresh=7")
	if code != http.StatusOK {
		t.Fatalf("GET: %d %s", code, body)
	}
	for _, want := range []string{
		`<meta http-equiv="refresh" content="7">`,
		`data-target="` + conn.Target() + `"`,
		`data-addr="` + f[0].Addr() + `"`,
		`data-addr="` + f[1].Addr() + `"`,
		`<span class="policy">PEAK_EWMA</span>`,
		`<span class="total">10</span>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	for _, bad := range []string{"http://", "https://", "<script", "<link", "@import", "url("} {
		if strings.Contains(body, bad) {
			t.Errorf("page refers to %q: it must need nothing from elsewhere", bad)
		}
	}
	if _, body := get(t, srv.URL+"?refresh=0"); strings.Contains(body, `http-equiv="refresh"`) {
		t.Error("?refresh=0 still reloads")
	}

	for _, tc := range []struct{ query, want string }{
		{"?format=xml", `lbdebug: unknown format "xml": want json or html`},
		{"?refresh=-1", `lbdebug: refresh "-1": want whole seconds from 0 (off) to 3600`},
		{"?refresh=soon", `lbdebug: refresh "soon"`},
	} {
		code, body := get(t, srv.URL+tc.query)
		if code != http.StatusBadRequest || !strings.HasPrefix(body, tc.want) {
			t.Errorf("GET %s: %d %q, want 400 %q", tc.query, code, body, tc.want)
		}
	}
}

// TestHTMLEscapes: a target is the caller's text; the page escapes it.
func TestHTMLEscapes(t *testing.T) {
	srv := httptest.NewServer(lbdebug.Handler())
	defer srv.Close()
	f := fleet(t, 1)
	target := "passthrough:///" + f[0].Addr() + "?<b>x</b>"
	conn, err := runtime.Dial(target, nil, runtime.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, body := get(t, srv.URL)
	if strings.Contains(body, "<b>x</b>") || !strings.Contains(body, "&lt;b&gt;x&lt;/b&gt;") {
		t.Errorf("target not escaped:\n%s", body)
	}
	p := page(t, srv.URL)
	if !slices.ContainsFunc(p.Conns, func(c lbdebug.Conn) bool { return c.Target == target }) {
		t.Errorf("JSON lacks the target %q: %+v", target, p.Conns)
	}
}

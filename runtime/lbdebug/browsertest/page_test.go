package browsertest

import (
	"context"
	"fmt"
	"math"
	"net/http/httptest"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"go.uber.org/goleak"

	"github.com/lbclient/lbclient/example/backend"
	greeterv1 "github.com/lbclient/lbclient/gen/greeter/v1"
	"github.com/lbclient/lbclient/internal/testfleet"
	"github.com/lbclient/lbclient/runtime"
	"github.com/lbclient/lbclient/runtime/lbdebug"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const sayHello = "/greeter.v1.Greeter/SayHello"

// browserTimeout bounds everything the browser does in a test: generous,
// for a slow shared machine on which Chromium takes seconds to start.
const browserTimeout = 3 * time.Minute

// newBrowser starts headless Chromium and returns a context whose tabs run
// in it; the browser is closed, and its processes waited for, when the
// test ends.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	var path string
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		t.Fatal("no chromium on PATH: scripts/test installs Debian's chromium package when it is missing (apt-get install chromium)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // the tests run as root, where Chromium's sandbox refuses to start
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1400, 1000),
	)
	// The timeout bounds the browser's whole life: when it ends, the
	// browser is stopped and every later action fails.
	root, rootCancel := context.WithTimeout(context.Background(), browserTimeout)
	actx, acancel := chromedp.NewExecAllocator(root, opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		// Close the browser gracefully, waiting at most 30 s, then make
		// sure its processes are gone.
		tctx, tcancel := context.WithTimeout(ctx, 30*time.Second)
		chromedp.Cancel(tctx)
		tcancel()
		cancel()
		acancel()
		rootCancel()
	})
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("starting %s: %v", path, err)
	}
	return ctx
}

func fleet(t *testing.T, n int) backend.Fleet { return testfleet.Start(t, n) }

func dial(t *testing.T, f backend.Fleet, opts ...runtime.Option) (*runtime.Conn, greeterv1.GreeterClient) {
	return testfleet.DialReady(t, f, opts...)
}

// shownConn is what the page shows of a connection, read from its DOM.
type shownConn struct {
	ID        string         `json:"id"`
	Target    string         `json:"target"`
	Policy    string         `json:"policy"`
	Total     int64          `json:"total"`
	Hedging   *shownHedging  `json:"hedging"`
	Endpoints []shownEndoint `json:"endpoints"`
}

type shownHedging struct {
	Calls int64 `json:"calls"`
	Extra int64 `json:"extra"`
	Wins  int64 `json:"wins"`
}

type shownEndoint struct {
	Addr      string  `json:"addr"`
	State     string  `json:"state"`
	Picks     int64   `json:"picks"`
	Share     string  `json:"share"`
	ShareBar  float64 `json:"shareBar"` // the bar's drawn width over its track's
	Latency   string  `json:"latency"`
	LatBar    float64 `json:"latBar"`
	Ejected   bool    `json:"ejected"`
	EjectText string  `json:"ejectText"`
	Ejections int64   `json:"ejections"`
}

// readPage reads every connection the page in the browser shows, with the
// bars' widths as laid out; null while the page is (re)loading.
const readPage = `(document.readyState !== 'complete' || !document.querySelector('p.meta')) ? null :
Array.from(document.querySelectorAll('section.conn')).map(s => {
  const num = (el, sel) => Number(el.querySelector(sel).textContent);
  const bar = (r, sel) => r.querySelector(sel + ' .bar span').getBoundingClientRect().width /
                          r.querySelector(sel + ' .bar').getBoundingClientRect().width;
  const h = s.querySelector('.hedging');
  return {
    id: s.id, target: s.dataset.target,
    policy: s.querySelector('.policy').textContent,
    total: num(s, '.total'),
    hedging: h ? {calls: num(h, '.calls'), extra: num(h, '.extra'), wins: num(h, '.wins')} : null,
    endpoints: Array.from(s.querySelectorAll('tr.endpoint')).map(r => ({
      addr: r.dataset.addr,
      state: r.querySelector('td.state').textContent,
      picks: num(r, 'td.picks'),
      share: r.querySelector('td.share .bartext').textContent,
      shareBar: bar(r, 'td.share'),
      latency: r.querySelector('td.lat .bartext').textContent,
      latBar: bar(r, 'td.lat'),
      ejected: r.classList.contains('ejected'),
      ejectText: r.querySelector('td.ejected').textContent,
      ejections: num(r, 'td.ejections'),
    })),
  };
})`

// readOnce reads the connections the page shows, by target; ok is false
// while the page reloads (the page reloads itself every second, and a read
// can fall between two documents).
func readOnce(ctx context.Context) (conns map[string]shownConn, ok bool, err error) {
	shown, err := chromedp.Run(ctx, chromedp.Evaluate[*[]shownConn](readPage))
	if err != nil || shown == nil {
		return nil, false, err
	}
	conns = map[string]shownConn{}
	for _, c := range *shown {
		conns[c.Target] = c
	}
	return conns, true, nil
}

// read returns what the loaded page shows.
func read(t *testing.T, ctx context.Context) map[string]shownConn {
	t.Helper()
	return waitFor(t, ctx, "a loaded page", func(map[string]shownConn) bool { return true })
}

// waitFor polls the page as the browser shows it, without navigating,
// until it is loaded and ok holds, for up to a minute. A read that fails
// while the page reloads (its document went away under the script) is
// tried again.
func waitFor(t *testing.T, ctx context.Context, what string, ok func(map[string]shownConn) bool) map[string]shownConn {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		got, loaded, err := readOnce(ctx)
		if loaded && ok(got) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page never showed %s; it shows %+v (last error: %v)", what, got, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestPageInBrowser: three connections with known traffic — PEAK_EWMA
// with hedging over a fleet with one slow backend, ROUND_ROBIN, and
// CONSISTENT_HASH with a failing backend — as headless Chromium shows the
// page: every endpoint's picks as Conn.Endpoints counts them, share bars
// in proportion to the picks, the slow backend's latency bar the longest,
// the failing backend ejected; the page reloads itself to show new calls,
// and drops a connection once it is closed.
func TestPageInBrowser(t *testing.T) {
	ctx := newBrowser(t)
	srv := httptest.NewServer(lbdebug.Handler())
	defer srv.Close()

	fa := fleet(t, 3)
	slow := fa[2]
	// Slow enough to stand out whatever the machine's load: a hedge
	// overtakes its calls after 25 ms, so its estimate stays at 25 ms or
	// more, where loopback answers take a millisecond or two.
	slow.SetDelay(60 * time.Millisecond)
	connA, a := dial(t, fa, runtime.WithPolicy(runtime.PeakEWMA),
		runtime.WithMethodRules(sayHello, runtime.MethodRules{Hedging: &runtime.HedgingPolicy{MaxAttempts: 2, Delay: 25 * time.Millisecond}}))
	fb := fleet(t, 2)
	connB, b := dial(t, fb, runtime.WithPolicy(runtime.RoundRobin))
	fc := fleet(t, 2)
	failing := fc[0]
	failing.SetFailing(true)
	connC, c := dial(t, fc, runtime.WithPolicy(runtime.ConsistentHash))

	cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const callsA, callsB, callsC = 150, 20, 40
	for i := range callsA {
		if _, err := a.SayHello(cctx, &greeterv1.HelloRequest{Name: "a"}); err != nil {
			t.Fatalf("call %d on A: %v", i, err)
		}
	}
	for i := range callsB {
		if _, err := b.SayHello(cctx, &greeterv1.HelloRequest{Name: "b"}); err != nil {
			t.Fatalf("call %d on B: %v", i, err)
		}
	}
	for i := range callsC {
		c.SayHello(runtime.WithHashKey(cctx, fmt.Sprint("key-", i)), &greeterv1.HelloRequest{Name: "c"}) // the failing backend's keys fail
	}

	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/?refresh=1"), chromedp.WaitVisible(chromedp.CSS("section.conn"))); err != nil {
		t.Fatalf("loading the page: %v", err)
	}
	shown := read(t, ctx)
	pa, pb, pc := shown[fa.Target()], shown[fb.Target()], shown[fc.Target()]
	if pa.Policy != "PEAK_EWMA" || pb.Policy != "ROUND_ROBIN" || pc.Policy != "CONSISTENT_HASH" {
		t.Fatalf("page shows policies %q, %q, %q; want PEAK_EWMA, ROUND_ROBIN, CONSISTENT_HASH (page: %+v)", pa.Policy, pb.Policy, pc.Policy, shown)
	}

	// A: the picks as counted, bars in proportion, the slow backend's
	// share the smallest and its latency bar the longest.
	hs := connA.Stats().Hedging
	if pa.Hedging == nil || pa.Hedging.Calls != callsA || pa.Hedging.Extra != int64(hs.ExtraAttempts) || pa.Hedging.Wins != int64(hs.HedgeWins) {
		t.Errorf("A's hedging shows %+v, want %d calls and Conn.Stats' %+v", pa.Hedging, callsA, hs.Counters)
	}
	checkPicks(t, "A", pa, connA.Endpoints())
	var slowRow shownEndoint
	for _, e := range pa.Endpoints {
		if e.Addr == slow.Addr() {
			slowRow = e
		}
	}
	t.Logf("A as shown: %+v", pa.Endpoints)
	for _, e := range pa.Endpoints {
		if e.Addr == slow.Addr() {
			continue
		}
		if e.ShareBar <= slowRow.ShareBar || e.LatBar >= 0.5 {
			t.Errorf("fast backend %s: share bar %.2f, latency bar %.2f; slow backend: %.2f, %.2f; want a longer share bar and a latency bar under half the slow one's", e.Addr, e.ShareBar, e.LatBar, slowRow.ShareBar, slowRow.LatBar)
		}
	}
	if slowRow.LatBar < 0.99 {
		t.Errorf("slow backend's latency bar %.2f (%s), want the full width", slowRow.LatBar, slowRow.Latency)
	}

	// B: round robin halves the calls.
	checkPicks(t, "B", pb, connB.Endpoints())
	for _, e := range pb.Endpoints {
		if e.Share != "50.0%" || math.Abs(e.ShareBar-0.5) > 0.02 || e.Ejected || e.EjectText != "no" {
			t.Errorf("B's endpoint %+v, want 50.0%% of the picks, a half bar, not ejected", e)
		}
	}

	// C: the failing backend is ejected, once.
	checkPicks(t, "C", pc, connC.Endpoints())
	for _, e := range pc.Endpoints {
		if (e.Addr == failing.Addr()) != e.Ejected {
			t.Errorf("C's endpoint %+v: ejected %v, want only the failing backend %s", e, e.Ejected, failing.Addr())
		}
		if e.Addr == failing.Addr() && (e.EjectText != "ejected" || e.Ejections != 1) {
			t.Errorf("failing backend shows %q with %d ejections, want \"ejected\", 1", e.EjectText, e.Ejections)
		}
	}

	// The page reloads itself: more calls on B show up without the test
	// navigating.
	for i := range callsB {
		if _, err := b.SayHello(cctx, &greeterv1.HelloRequest{Name: "b"}); err != nil {
			t.Fatalf("call %d on B: %v", i, err)
		}
	}
	waitFor(t, ctx, fmt.Sprintf("B's %d picks", 2*callsB), func(m map[string]shownConn) bool { return m[fb.Target()].Total == 2*callsB })

	// A closed connection leaves the page.
	connB.Close()
	got := waitFor(t, ctx, "B gone", func(m map[string]shownConn) bool { _, ok := m[fb.Target()]; return !ok })
	if _, ok := got[fa.Target()]; !ok {
		t.Errorf("A left the page with B: %+v", got)
	}
}

// checkPicks compares a connection's rows with its Endpoints: the same
// addresses and picks, states, and share bars in proportion to the picks.
func checkPicks(t *testing.T, name string, shown shownConn, want []runtime.EndpointStats) {
	t.Helper()
	if len(shown.Endpoints) != len(want) {
		t.Fatalf("%s: page shows %d endpoints, Conn.Endpoints has %d: %+v", name, len(shown.Endpoints), len(want), shown)
	}
	var total int64
	for _, w := range want {
		total += int64(w.Picks)
	}
	if shown.Total != total {
		t.Errorf("%s: page shows %d picks in all, want %d", name, shown.Total, total)
	}
	for i, e := range shown.Endpoints {
		w := want[i]
		if e.Addr != w.Addr || e.Picks != int64(w.Picks) || e.State != w.State.String() {
			t.Errorf("%s: row %+v, Conn.Endpoints has %+v", name, e, w)
		}
		if share := float64(w.Picks) / float64(total); math.Abs(e.ShareBar-share) > 0.02 {
			t.Errorf("%s: %s's share bar is %.3f of its track, want %.3f", name, e.Addr, e.ShareBar, share)
		}
	}
}

package file_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/resolver"

	"github.com/lbclient/lbclient/example/backend"
	greeterv1 "github.com/lbclient/lbclient/gen/greeter/v1"
	"github.com/lbclient/lbclient/runtime"
	"github.com/lbclient/lbclient/runtime/resolver/file"
)

// startBackends serves n Greeters on 127.0.0.1, stopped when the test
// ends. Each call takes a millisecond, which keeps a closed loop of a few
// callers from taking both of the machine's cores.
func startBackends(t *testing.T, n int) backend.Fleet {
	t.Helper()
	f, err := backend.StartFleet(n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	for _, b := range f {
		b.SetDelay(time.Millisecond)
	}
	return f
}

// endpointsJSON is the file that lists bs.
func endpointsJSON(bs ...*backend.Backend) string {
	var eps []string
	for _, b := range bs {
		eps = append(eps, fmt.Sprintf("    {%q: %q}", "address", b.Addr()))
	}
	return "{\"endpoints\": [\n" + strings.Join(eps, ",\n") + "\n]}\n"
}

// writeAtomic replaces the file at path as config tools do: it writes a
// temporary file beside it and renames it over path.
func writeAtomic(t *testing.T, path, content string) {
	t.Helper()
	tmp, err := os.CreateTemp(filepath.Dir(path), ".eps-*.tmp")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tmp.WriteString(content); err != nil {
		t.Fatal(err)
	}
	if err := tmp.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		t.Fatal(err)
	}
}

// writeInPlace truncates the file at path and writes content into it, as
// an editor or a shell redirection does.
func writeInPlace(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// dial dials the file at path through the lbclient runtime, with no rules
// (no retries: a failed call shows), closed when the test ends.
func dial(t *testing.T, path string, policy runtime.Policy) *runtime.Conn {
	t.Helper()
	conn, err := runtime.Dial("file://"+path, nil, runtime.WithInsecure(), runtime.WithPolicy(policy))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Cleanup(func() {
		if t.Failed() {
			for _, l := range logs.matching(path) {
				t.Log(l)
			}
		}
	})
	return conn
}

// call is one call of a load.
type call struct {
	start, end time.Time
	peer       string
	err        error
}

// load is a closed loop of callers: each makes its next call when its
// last one has returned.
type load struct {
	stop  chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex
	calls []call
}

func startLoad(t *testing.T, conn grpc.ClientConnInterface, callers int) *load {
	t.Helper()
	l := &load{stop: make(chan struct{})}
	client := greeterv1.NewGreeterClient(conn)
	for range callers {
		l.wg.Go(func() {
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				var p peer.Peer
				c := call{start: time.Now()}
				_, c.err = client.SayHello(ctx, &greeterv1.HelloRequest{Name: "file"}, grpc.Peer(&p))
				c.end = time.Now()
				cancel()
				if p.Addr != nil {
					c.peer = p.Addr.String()
				}
				l.mu.Lock()
				l.calls = append(l.calls, c)
				l.mu.Unlock()
			}
		})
	}
	t.Cleanup(func() { l.end() })
	return l
}

// end stops the load and waits for its callers; it returns every call made.
func (l *load) end() []call {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.calls
}

// failed returns the calls of l that failed, with their errors.
func failed(calls []call) []string {
	var out []string
	for _, c := range calls {
		if c.err != nil {
			out = append(out, c.err.Error())
		}
	}
	return out
}

// poll calls cond every 5 ms until it is true or timeout has passed, and
// returns how long it took and whether cond became true.
func poll(timeout time.Duration, cond func() bool) (time.Duration, bool) {
	start := time.Now()
	for {
		if cond() {
			return time.Since(start), true
		}
		if time.Since(start) > timeout {
			return time.Since(start), false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitCalls waits, bounded, until every one of bs has served a call.
func waitCalls(t *testing.T, bs ...*backend.Backend) {
	t.Helper()
	if _, ok := poll(10*time.Second, func() bool {
		for _, b := range bs {
			if b.Calls() == 0 {
				return false
			}
		}
		return true
	}); !ok {
		for _, b := range bs {
			t.Logf("%s %s: %d calls", b.Name(), b.Addr(), b.Calls())
		}
		t.Fatal("not every backend got calls within 10 s")
	}
}

// listed reports whether conn's balancer has an endpoint for addr.
func listed(conn *runtime.Conn, addr string) bool {
	for _, e := range conn.Endpoints() {
		if e.Addr == addr {
			return true
		}
	}
	return false
}

// TestAddedBackend adds a fourth backend to the file under load and checks
// the goals: its first call within 1 s of the write, and at least 0.6/N of
// the calls within 5 s more, N being the number of backends.
func TestAddedBackend(t *testing.T) {
	for _, policy := range []runtime.Policy{runtime.RoundRobin, runtime.PeakEWMA} {
		t.Run(policy.String(), func(t *testing.T) {
			bs := startBackends(t, 4)
			path := filepath.Join(t.TempDir(), "eps.json")
			writeAtomic(t, path, endpointsJSON(bs[:3]...))
			conn := dial(t, path, policy)
			l := startLoad(t, conn, 4)
			waitCalls(t, bs[:3]...)
			added := bs[3]
			if n := added.Calls(); n != 0 {
				t.Fatalf("backend not in the file yet got %d calls", n)
			}

			writeAtomic(t, path, endpointsJSON(bs...))
			first, ok := poll(10*time.Second, func() bool { return added.Calls() > 0 })
			if !ok {
				t.Fatalf("added backend got no call within 10 s")
			}
			t.Logf("added backend's first call %v after the write", first.Round(time.Millisecond))
			if first > time.Second {
				t.Errorf("added backend's first call came %v after the write, want within 1 s", first)
			}

			// Its share of the calls of each 1 s window, sampled every
			// 100 ms, until it reaches 0.6/N or 5 s have passed.
			type sample struct {
				at           time.Time
				added, total int64
			}
			snap := func() sample {
				s := sample{at: time.Now(), added: added.Calls()}
				for _, b := range bs {
					s.total += b.Calls()
				}
				return s
			}
			want := 0.6 / float64(len(bs))
			samples := []sample{snap()}
			start := samples[0].at
			var share float64
			reached := false
			for time.Since(start) < 5*time.Second && !reached {
				time.Sleep(100 * time.Millisecond)
				now := snap()
				samples = append(samples, now)
				old := samples[0]
				for _, s := range samples {
					if now.at.Sub(s.at) >= time.Second {
						old = s
					}
				}
				if now.at.Sub(old.at) < time.Second || now.total == old.total {
					continue
				}
				share = float64(now.added-old.added) / float64(now.total-old.total)
				reached = share >= want
			}
			t.Logf("added backend's share %.1f%% of the last second's calls, %v after its first call (goal %.1f%%)",
				100*share, time.Since(start).Round(100*time.Millisecond), 100*want)
			if !reached {
				t.Errorf("added backend's share stayed below %.1f%% for 5 s after its first call (last: %.1f%%)", 100*want, 100*share)
			}
			if f := failed(l.end()); len(f) > 0 {
				t.Errorf("%d calls failed, the first: %s", len(f), f[0])
			}
		})
	}
}

// TestRemovedBackend removes a backend from the file under load, while a
// call is under way on it: no call that starts once the balancer no longer
// lists it goes to it, and no call fails, the one under way on it
// included.
func TestRemovedBackend(t *testing.T) {
	for _, policy := range []runtime.Policy{runtime.RoundRobin, runtime.PeakEWMA} {
		t.Run(policy.String(), func(t *testing.T) {
			bs := startBackends(t, 4)
			path := filepath.Join(t.TempDir(), "eps.json")
			writeAtomic(t, path, endpointsJSON(bs...))
			conn := dial(t, path, policy)
			l := startLoad(t, conn, 4)
			waitCalls(t, bs...)
			removed := bs[3]
			// Slow, so that a call is under way on it when it goes: a call
			// it counts from now on takes 300 ms.
			removed.SetDelay(300 * time.Millisecond)
			n := removed.Calls()
			if _, ok := poll(10*time.Second, func() bool { return removed.Calls() > n }); !ok {
				t.Fatalf("no call reached the backend to remove once it was slowed, within 10 s: %+v", conn.Endpoints())
			}

			written := time.Now()
			writeAtomic(t, path, endpointsJSON(bs[:3]...))
			took, ok := poll(10*time.Second, func() bool { return !listed(conn, removed.Addr()) })
			if !ok {
				t.Fatalf("balancer still lists the removed backend 10 s after the write: %+v", conn.Endpoints())
			}
			seen := time.Now()
			t.Logf("balancer dropped the removed backend %v after the write", took.Round(time.Millisecond))
			servedAtSeen := removed.Calls()
			time.Sleep(time.Second) // the load goes on without it
			calls := l.end()

			var before, after, across int
			for _, c := range calls {
				if c.peer != removed.Addr() {
					continue
				}
				if c.start.After(seen) {
					after++
				} else {
					before++
				}
				if c.start.Before(written) && c.end.After(seen) {
					across++
				}
			}
			if across == 0 {
				t.Fatal("no call to the removed backend was under way across its removal: the test shows nothing")
			}
			if after != 0 {
				t.Errorf("%d calls that started after the change was seen went to the removed backend", after)
			}
			if got := removed.Calls(); got != int64(before) {
				t.Errorf("removed backend served %d calls (%d when the change was seen), callers saw %d reach it", got, servedAtSeen, before)
			}
			if f := failed(calls); len(f) > 0 {
				t.Errorf("%d of %d calls failed, the first: %s", len(f), len(calls), f[0])
			}
			t.Logf("%d calls, %d to the removed backend, all started before it was dropped, %d under way across its removal; 0 failed", len(calls), before, across)
		})
	}
}

// TestInPlaceWrite rewrites the file in place (truncate, then write)
// rather than renaming a new one over it.
func TestInPlaceWrite(t *testing.T) {
	bs := startBackends(t, 2)
	path := filepath.Join(t.TempDir(), "eps.json")
	writeInPlace(t, path, endpointsJSON(bs[0]))
	conn := dial(t, path, runtime.RoundRobin)
	l := startLoad(t, conn, 2)
	waitCalls(t, bs[0])

	writeInPlace(t, path, endpointsJSON(bs[1]))
	if _, ok := poll(10*time.Second, func() bool { return !listed(conn, bs[0].Addr()) }); !ok {
		t.Fatalf("balancer still lists %s 10 s after the file was rewritten without it", bs[0].Addr())
	}
	waitCalls(t, bs[1])
	old := bs[0].Calls()
	time.Sleep(300 * time.Millisecond)
	if f := failed(l.end()); len(f) > 0 {
		t.Errorf("%d calls failed, the first: %s", len(f), f[0])
	}
	if got := bs[0].Calls(); got != old {
		t.Errorf("backend taken out of the file got %d more calls", got-old)
	}
}

// TestBadWritesKeepTheLastGoodSet writes a half-written file and an
// invalid one over a good one: calls keep succeeding on the old set, each
// problem is logged once, naming the file (and the line and column of a
// syntax error), and a good file is taken again.
func TestBadWritesKeepTheLastGoodSet(t *testing.T) {
	bs := startBackends(t, 3)
	path := filepath.Join(t.TempDir(), "eps.json")
	writeAtomic(t, path, endpointsJSON(bs[0], bs[1]))
	conn := dial(t, path, runtime.RoundRobin)
	l := startLoad(t, conn, 4)
	waitCalls(t, bs[0], bs[1])

	// keeps checks that both backends of the good set go on serving.
	keeps := func(what string) {
		t.Helper()
		n0, n1 := bs[0].Calls(), bs[1].Calls()
		if _, ok := poll(10*time.Second, func() bool { return bs[0].Calls() > n0+20 && bs[1].Calls() > n1+20 }); !ok {
			t.Fatalf("after %s, the good set's backends stopped serving: %d and %d calls since", what, bs[0].Calls()-n0, bs[1].Calls()-n1)
		}
	}
	// logged waits until the resolver has logged an error containing msg
	// and returns the lines.
	logged := func(msg string) []string {
		t.Helper()
		if _, ok := poll(10*time.Second, func() bool { return len(logs.matching("ERROR", msg)) > 0 }); !ok {
			t.Fatalf("no error logged containing %q within 10 s", msg)
		}
		return logs.matching("ERROR", msg)
	}

	// A writer cut off half-way through, in place: the second endpoint
	// ends at line 3, column 5, with its name half written.
	half := fmt.Sprintf("{\"endpoints\": [\n  {\"address\": %q},\n  {\"ad", bs[2].Addr())
	writeInPlace(t, path, half)
	syntaxErr := path + ":3:7: unexpected end of JSON input"
	lines := logged(syntaxErr)
	t.Logf("logged: %s", lines[0])
	if !strings.Contains(lines[0], "keeping the last good set of 2 endpoints") {
		t.Errorf("log line does not say the last good set is kept: %s", lines[0])
	}
	keeps("a half-written file")

	// An invalid file renamed into place, twice: logged once.
	bad := fmt.Sprintf(`{"endpoints": [{"address": %q, "weight": 0}]}`, bs[2].Addr())
	writeAtomic(t, path, bad)
	weightErr := path + ": endpoint 1 (" + bs[2].Addr() + "): weight 0"
	logged(weightErr)
	time.Sleep(500 * time.Millisecond) // past the coalescing of changes
	writeAtomic(t, path, bad)
	time.Sleep(500 * time.Millisecond)
	keeps("an invalid file")
	if n := len(logs.matching("ERROR", weightErr)); n != 1 {
		t.Errorf("the same problem was logged %d times, want once", n)
	}
	if n := len(logs.matching("ERROR", syntaxErr)); n != 1 {
		t.Errorf("the syntax error was logged %d times, want once", n)
	}
	if n := bs[2].Calls(); n != 0 {
		t.Errorf("the backend only bad files named got %d calls", n)
	}

	// A good file again: taken, and said so.
	writeAtomic(t, path, endpointsJSON(bs[2]))
	waitCalls(t, bs[2])
	if _, ok := poll(10*time.Second, func() bool { return len(logs.matching("INFO", path+" is good again")) > 0 }); !ok {
		t.Errorf("the resolver did not log that the file is good again")
	}
	if f := failed(l.end()); len(f) > 0 {
		t.Errorf("%d calls failed, the first: %s", len(f), f[0])
	}
}

// TestMissingFile dials a file that does not exist yet: calls fail with an
// error that names it, and work once it is written.
func TestMissingFile(t *testing.T) {
	for _, tc := range []struct {
		desc string
		dir  func(t *testing.T) string // the file's directory, which may not exist yet
	}{
		{"directory exists", func(t *testing.T) string { return t.TempDir() }},
		{"directory missing too", func(t *testing.T) string { return filepath.Join(t.TempDir(), "later") }},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			bs := startBackends(t, 1)
			dir := tc.dir(t)
			path := filepath.Join(dir, "eps.json")
			conn := dial(t, path, runtime.RoundRobin)
			client := greeterv1.NewGreeterClient(conn)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := client.SayHello(ctx, &greeterv1.HelloRequest{})
			if want := "file resolver: " + path + " does not exist"; err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("call before the file exists: error %v, want one containing %q", err, want)
			}
			t.Logf("call before the file exists: %v", err)
			// Past the reads that follow the start of the watch: from now
			// on, only a watch event (or, while the directory is missing,
			// the retry every second) reads the file.
			time.Sleep(300 * time.Millisecond)

			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			writeAtomic(t, path, endpointsJSON(bs[0]))
			var last error
			took, ok := poll(10*time.Second, func() bool {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				_, last = client.SayHello(ctx, &greeterv1.HelloRequest{})
				return last == nil
			})
			if !ok {
				t.Fatalf("calls still fail 10 s after the file was written: %v", last)
			}
			t.Logf("first successful call %v after the file was written", took.Round(time.Millisecond))
		})
	}
}

// TestDirectoryReplaced removes the file's directory and creates it again:
// the resolver keeps the last good set meanwhile and watches the new
// directory.
func TestDirectoryReplaced(t *testing.T) {
	bs := startBackends(t, 2)
	dir := filepath.Join(t.TempDir(), "lb")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "eps.json")
	writeAtomic(t, path, endpointsJSON(bs[0]))
	conn := dial(t, path, runtime.RoundRobin)
	l := startLoad(t, conn, 2)
	waitCalls(t, bs[0])

	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if _, ok := poll(10*time.Second, func() bool { return len(logs.matching("ERROR", path+" does not exist; keeping")) > 0 }); !ok {
		t.Fatal("the missing file was not logged within 10 s")
	}
	n := bs[0].Calls()
	if _, ok := poll(10*time.Second, func() bool { return bs[0].Calls() > n+20 }); !ok {
		t.Fatal("calls stopped when the file's directory went away")
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeAtomic(t, path, endpointsJSON(bs[1]))
	waitCalls(t, bs[1])
	// And the new directory is watched, not only re-read: a change is seen
	// within the second that a re-read would take.
	old := bs[0].Calls()
	writeAtomic(t, path, endpointsJSON(bs[0], bs[1]))
	if _, ok := poll(10*time.Second, func() bool { return bs[0].Calls() > old }); !ok {
		t.Fatal("a change in the new directory was not seen")
	}
	if f := failed(l.end()); len(f) > 0 {
		t.Errorf("%d calls failed, the first: %s", len(f), f[0])
	}
}

// TestSymlinkSwap updates the file as Kubernetes updates a ConfigMap
// volume: the file is a link through "..data", a link to a timestamped
// directory, and an update writes a new directory and renames a new
// "..data" link over the old one.
func TestSymlinkSwap(t *testing.T) {
	bs := startBackends(t, 2)
	dir := t.TempDir()
	version := func(name string, b *backend.Backend) {
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		writeInPlace(t, filepath.Join(dir, name, "eps.json"), endpointsJSON(b))
	}
	version("..2026_01_01_v1", bs[0])
	if err := os.Symlink("..2026_01_01_v1", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "eps.json")
	if err := os.Symlink("..data/eps.json", path); err != nil {
		t.Fatal(err)
	}
	conn := dial(t, path, runtime.RoundRobin)
	l := startLoad(t, conn, 2)
	waitCalls(t, bs[0])

	version("..2026_01_01_v2", bs[1])
	if err := os.Symlink("..2026_01_01_v2", filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	// The old version stays: the swap alone must be seen.
	took, ok := poll(10*time.Second, func() bool { return bs[1].Calls() > 0 })
	if !ok {
		t.Fatal("the swapped-in version's backend got no call within 10 s")
	}
	t.Logf("first call to the new version's backend %v after the swap", took.Round(time.Millisecond))
	if took > time.Second {
		t.Errorf("the swap was seen after %v, want within 1 s", took)
	}
	if f := failed(l.end()); len(f) > 0 {
		t.Errorf("%d calls failed, the first: %s", len(f), f[0])
	}
}

// TestSymlinkElsewhere follows a link to a file in another directory that
// is edited in place there.
func TestSymlinkElsewhere(t *testing.T) {
	bs := startBackends(t, 2)
	real := filepath.Join(t.TempDir(), "real.json")
	writeInPlace(t, real, endpointsJSON(bs[0]))
	path := filepath.Join(t.TempDir(), "eps.json")
	if err := os.Symlink(real, path); err != nil {
		t.Fatal(err)
	}
	conn := dial(t, path, runtime.RoundRobin)
	l := startLoad(t, conn, 2)
	waitCalls(t, bs[0])
	writeInPlace(t, real, endpointsJSON(bs[1]))
	took, ok := poll(10*time.Second, func() bool { return bs[1].Calls() > 0 })
	if !ok {
		t.Fatal("an edit of the link's target was not seen within 10 s")
	}
	if took > time.Second {
		t.Errorf("the edit was seen after %v, want within 1 s", took)
	}
	if f := failed(l.end()); len(f) > 0 {
		t.Errorf("%d calls failed, the first: %s", len(f), f[0])
	}
}

// The recording policy is round_robin with a window: it records the
// endpoints, weights and zones of each resolver state it gets.
const recordingPolicy = "file_test_recording"

var (
	recordedMu sync.Mutex
	recorded   [][]entry
)

func recordings() [][]entry {
	recordedMu.Lock()
	defer recordedMu.Unlock()
	return append([][]entry(nil), recorded...)
}

func init() { balancer.Register(recordingBuilder{}) }

type recordingBuilder struct{}

func (recordingBuilder) Name() string { return recordingPolicy }

func (recordingBuilder) Build(cc balancer.ClientConn, opts balancer.BuildOptions) balancer.Balancer {
	return &recordingBalancer{Balancer: balancer.Get("round_robin").Build(cc, opts)}
}

type recordingBalancer struct{ balancer.Balancer }

func (b *recordingBalancer) UpdateClientConnState(s balancer.ClientConnState) error {
	recordedMu.Lock()
	recorded = append(recorded, entries(s.ResolverState))
	recordedMu.Unlock()
	return b.Balancer.UpdateClientConnState(s)
}

// TestWeightsReachTheBalancer dials the file with a plain grpc.ClientConn
// and a policy that records what it is given: the weights and zones of the
// file, and a new state only when the endpoints change.
func TestWeightsReachTheBalancer(t *testing.T) {
	recordedMu.Lock()
	recorded = nil // from an earlier run, under -count
	recordedMu.Unlock()
	bs := startBackends(t, 2)
	path := filepath.Join(t.TempDir(), "eps.json")
	a, b := bs[0].Addr(), bs[1].Addr()
	writeAtomic(t, path, fmt.Sprintf(`{"endpoints": [{"address": %q, "weight": 3, "zone": "us-east1-b"}, {"address": %q}]}`, a, b))
	cc, err := grpc.NewClient("file://"+path,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(fmt.Sprintf(`{"loadBalancingConfig": [{%q: {}}]}`, recordingPolicy)))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := greeterv1.NewGreeterClient(cc).SayHello(ctx, &greeterv1.HelloRequest{}, grpc.WaitForReady(true)); err != nil {
		t.Fatal(err)
	}
	want1 := []entry{{Addr: a, Weight: 3, Zone: "us-east1-b"}, {Addr: b}}
	if got := recordings(); len(got) != 1 || fmt.Sprint(got[0]) != fmt.Sprint(want1) {
		t.Fatalf("balancer got %v, want one state %v", got, want1)
	}

	// The same endpoints, written differently: no new state.
	writeAtomic(t, path, fmt.Sprintf("{\n  \"endpoints\": [\n    {\"zone\": \"us-east1-b\", \"weight\": 3, \"address\": %q},\n    {\"address\": %q}\n  ]\n}\n", a, b))
	time.Sleep(500 * time.Millisecond) // past the coalescing of changes
	writeAtomic(t, path, fmt.Sprintf(`{"endpoints": [{"address": %q, "weight": 1}, {"address": %q, "weight": 3, "zone": "us-east1-c"}]}`, a, b))
	want2 := []entry{{Addr: a, Weight: 1}, {Addr: b, Weight: 3, Zone: "us-east1-c"}}
	if _, ok := poll(10*time.Second, func() bool { return len(recordings()) >= 2 }); !ok {
		t.Fatalf("balancer got no second state within 10 s: %v", recordings())
	}
	got := recordings()
	if len(got) != 2 {
		t.Fatalf("balancer got %d states, want 2 (the rewrite with the same endpoints is no change): %v", len(got), got)
	}
	if fmt.Sprint(got[1]) != fmt.Sprint(want2) {
		t.Errorf("second state %v, want %v", got[1], want2)
	}
}

// TestBadTargets checks that a target without an absolute path is a Build
// error that names it.
func TestBadTargets(t *testing.T) {
	for _, tc := range []struct{ target, wantErr string }{
		{"file:eps.json", `file resolver: target "file:eps.json" has no absolute path: want file:///absolute/path.json`},
		{"file://", `file resolver: target "file:" has no absolute path: want file:///absolute/path.json`},
		{"file://eps.json", `file resolver: target "file://eps.json" names host "eps.json": want file:///absolute/path.json (only local files are read)`},
		{"file://localhost/etc/eps.json", `file resolver: target "file://localhost/etc/eps.json" names host "localhost": want file:///absolute/path.json (only local files are read)`},
		{"file:///etc/lb/", `file resolver: target "file:///etc/lb/" names a directory: want file:///absolute/path.json`},
	} {
		u, err := url.Parse(tc.target)
		if err != nil {
			t.Fatal(err)
		}
		r, err := file.Builder{}.Build(resolver.Target{URL: *u}, nil, resolver.BuildOptions{})
		if err == nil {
			r.Close()
			t.Errorf("Build(%q) succeeded, want error %q", tc.target, tc.wantErr)
			continue
		}
		if err.Error() != tc.wantErr {
			t.Errorf("Build(%q) error:\n%s\nwant:\n%s", tc.target, err, tc.wantErr)
		}
	}
}

// TestBadTargetRefusedByDial: a file target without an absolute path is
// refused by Dial at once, as the generator refuses it as a default_target,
// rather than failing its first call.
func TestBadTargetRefusedByDial(t *testing.T) {
	for _, target := range []string{"file:eps.json", "file://host/eps.json"} {
		_, err := runtime.Dial(target, nil, runtime.WithInsecure())
		if want := "file targets take an absolute path and no host"; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Dial(%q): error %v, want one containing %q", target, err, want)
		}
	}
}

// TestBadFirstFile dials files that are wrong from the start: calls fail
// with an error that names the file and the problem, and work once the
// file is fixed.
func TestBadFirstFile(t *testing.T) {
	for _, tc := range []struct {
		desc    string
		make    func(t *testing.T, path string)
		wantErr string // after the path
	}{
		{"syntax error", func(t *testing.T, path string) { writeAtomic(t, path, "{\"endpoints\": [\n  {\"address\": 8443]}") },
			":2:19: invalid character ']' after object key:value pair"},
		{"no endpoints", func(t *testing.T, path string) { writeAtomic(t, path, `{"endpoints": []}`) },
			`: "endpoints" is empty`},
		{"a directory", func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o755); err != nil {
				t.Fatal(err)
			}
		}, " is a directory, want a file"},
		{"a named pipe", mkfifo, " is not a regular file (mode p"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			bs := startBackends(t, 1)
			path := filepath.Join(t.TempDir(), "eps.json")
			tc.make(t, path)
			conn := dial(t, path, runtime.RoundRobin)
			client := greeterv1.NewGreeterClient(conn)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := client.SayHello(ctx, &greeterv1.HelloRequest{})
			if want := "file resolver: " + path + tc.wantErr; err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("call on a bad file: error %v, want one containing %q", err, want)
			}
			if err := os.RemoveAll(path); err != nil {
				t.Fatal(err)
			}
			writeAtomic(t, path, endpointsJSON(bs[0]))
			var last error
			if _, ok := poll(10*time.Second, func() bool {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				_, last = client.SayHello(ctx, &greeterv1.HelloRequest{})
				return last == nil
			}); !ok {
				t.Fatalf("calls still fail 10 s after the file was fixed: %v", last)
			}
		})
	}
}

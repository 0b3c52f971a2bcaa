package observe

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/lbclient/lbclient/runtime/internal/callinfo"
)

// scriptedPicker returns its script's SubConns in turn and records the
// DoneInfos its results receive.
type scriptedPicker struct {
	script []*subConn
	errAt  int // index whose pick fails; -1 for none
	picks  int
	done   []string // "addr:code" for each Done, in order
}

func (p *scriptedPicker) Pick(balancer.PickInfo) (balancer.PickResult, error) {
	i := p.picks
	p.picks++
	if i == p.errAt {
		return balancer.PickResult{}, balancer.ErrNoSubConnAvailable
	}
	sc := p.script[i%len(p.script)]
	return balancer.PickResult{SubConn: sc, Done: func(di balancer.DoneInfo) {
		what := "released"
		if di.BytesSent {
			what = status.Code(di.Err).String()
		}
		p.done = append(p.done, sc.addr+":"+what)
	}}, nil
}

// innerSC stands for grpc-go's SubConn.
type innerSC struct {
	balancer.SubConn
	addr string
}

func testSubConns(addrs ...string) map[string]*subConn {
	m := map[string]*subConn{}
	for _, a := range addrs {
		m[a] = &subConn{SubConn: &innerSC{addr: a}, addr: a, ep: newEndpoint(a)}
	}
	return m
}

var sent = balancer.DoneInfo{BytesSent: true, BytesReceived: true}

func TestPickAvoidsTried(t *testing.T) {
	scs := testSubConns("a", "b", "c")
	for _, tc := range []struct {
		name      string
		maxPicks  int
		script    []string
		errAt     int
		tried     []string
		wantAddr  string
		wantPicks int      // calls to the child's Pick
		wantDone  []string // Dones after the call ends
	}{
		{"no attempts", 3, []string{"a"}, -1, nil, "a", 1, []string{"a:OK"}},
		{"untried", 3, []string{"a"}, -1, []string{"b"}, "a", 1, []string{"a:OK"}},
		{"tried, next is free", 3, []string{"a", "b"}, -1, []string{"a"}, "b", 2, []string{"a:released", "b:OK"}},
		{"two tried", 3, []string{"a", "b", "c"}, -1, []string{"a", "b"}, "c", 3, []string{"a:released", "b:released", "c:OK"}},
		{"bounded by maxPicks", 2, []string{"a"}, -1, []string{"a"}, "a", 2, []string{"a:released", "a:OK"}},
		{"one endpoint: no second pick", 1, []string{"a", "b"}, -1, []string{"a"}, "a", 1, []string{"a:OK"}},
		{"all tried: last pick stands", 3, []string{"a", "b", "c"}, -1, []string{"a", "b", "c"}, "c", 3, []string{"a:released", "b:released", "c:OK"}},
		{"second pick fails: first stands", 3, []string{"a", "b"}, 1, []string{"a"}, "a", 2, []string{"a:OK"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			child := &scriptedPicker{errAt: tc.errAt}
			for _, a := range tc.script {
				child.script = append(child.script, scs[a])
			}
			ctx := context.Background()
			var att *callinfo.Attempts
			if tc.tried != nil {
				att = new(callinfo.Attempts)
				for _, a := range tc.tried {
					att.Add(a)
				}
				ctx = callinfo.WithAttempts(ctx, att)
			}
			before := scs[tc.wantAddr].ep.picks.Load()
			p := &picker{child: child, maxPicks: tc.maxPicks}
			res, err := p.Pick(balancer.PickInfo{Ctx: ctx})
			if err != nil {
				t.Fatalf("Pick: %v", err)
			}
			if got := res.SubConn.(*innerSC).addr; got != tc.wantAddr {
				t.Errorf("picked %s, want %s", got, tc.wantAddr)
			}
			if child.picks != tc.wantPicks {
				t.Errorf("child picked %d times, want %d", child.picks, tc.wantPicks)
			}
			if got := scs[tc.wantAddr].ep.picks.Load() - before; got != 1 {
				t.Errorf("picks of %s grew by %d, want 1", tc.wantAddr, got)
			}
			if att != nil {
				want := fmt.Sprint(append(append([]string(nil), tc.tried...), tc.wantAddr))
				if got := fmt.Sprint(att.Addrs()); got != want {
					t.Errorf("attempts %s, want %s", got, want)
				}
			}
			res.Done(sent)
			if got, want := fmt.Sprint(child.done), fmt.Sprint(tc.wantDone); got != want {
				t.Errorf("child's Dones %s, want %s", got, want)
			}
			for a, sc := range scs {
				if n := sc.ep.inFlight.Load(); n != 0 {
					t.Errorf("%s: %d in flight after Done", a, n)
				}
			}
		})
	}
}

func TestPickError(t *testing.T) {
	child := &scriptedPicker{errAt: 0}
	_, err := (&picker{child: child, maxPicks: 3}).Pick(balancer.PickInfo{Ctx: context.Background()})
	if !errors.Is(err, balancer.ErrNoSubConnAvailable) {
		t.Errorf("Pick error %v, want the child's %v", err, balancer.ErrNoSubConnAvailable)
	}
}

func TestDoneAccounting(t *testing.T) {
	for _, tc := range []struct {
		name                    string
		di                      balancer.DoneInfo
		wantPicks, wantFailures uint64
		wantLatency             bool
	}{
		{"ok", sent, 1, 0, true},
		{"discarded by grpc", balancer.DoneInfo{}, 0, 0, false},
		{"unavailable before sending", balancer.DoneInfo{Err: status.Error(codes.Unavailable, "")}, 1, 1, false},
		{"unavailable", withErr(codes.Unavailable), 1, 1, false},
		{"resource exhausted", withErr(codes.ResourceExhausted), 1, 1, false},
		{"internal", withErr(codes.Internal), 1, 1, false},
		{"data loss", withErr(codes.DataLoss), 1, 1, false},
		{"deadline", withErr(codes.DeadlineExceeded), 1, 0, false},
		{"canceled", withErr(codes.Canceled), 1, 0, false},
		{"not found", withErr(codes.NotFound), 1, 0, true},
		{"unknown", withErr(codes.Unknown), 1, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc := testSubConns("a")["a"]
			var childDI *balancer.DoneInfo
			child := pickerFunc(func(balancer.PickInfo) (balancer.PickResult, error) {
				return balancer.PickResult{SubConn: sc, Done: func(di balancer.DoneInfo) { childDI = &di }}, nil
			})
			res, err := (&picker{child: child, maxPicks: 1}).Pick(balancer.PickInfo{Ctx: context.Background()})
			if err != nil {
				t.Fatal(err)
			}
			if n := sc.ep.inFlight.Load(); n != 1 {
				t.Errorf("%d in flight during the call, want 1", n)
			}
			res.Done(tc.di)
			ep := sc.ep
			if ep.picks.Load() != tc.wantPicks || ep.failures.Load() != tc.wantFailures || ep.inFlight.Load() != 0 {
				t.Errorf("picks %d, failures %d, in flight %d; want %d, %d, 0",
					ep.picks.Load(), ep.failures.Load(), ep.inFlight.Load(), tc.wantPicks, tc.wantFailures)
			}
			if got := ep.latency.Load() != 0; got != tc.wantLatency {
				t.Errorf("latency sampled: %v, want %v", got, tc.wantLatency)
			}
			if childDI == nil || !errors.Is(childDI.Err, tc.di.Err) || childDI.BytesSent != tc.di.BytesSent {
				t.Errorf("child's Done got %+v, want %+v", childDI, tc.di)
			}
		})
	}
}

func withErr(c codes.Code) balancer.DoneInfo {
	return balancer.DoneInfo{Err: status.Error(c, ""), BytesSent: true, BytesReceived: true}
}

type pickerFunc func(balancer.PickInfo) (balancer.PickResult, error)

func (f pickerFunc) Pick(i balancer.PickInfo) (balancer.PickResult, error) { return f(i) }

func TestLatencyEWMA(t *testing.T) {
	var clock int64
	saved := nanotime
	nanotime = func() int64 { return clock }
	t.Cleanup(func() { nanotime = saved })

	sc := testSubConns("a")["a"]
	p := &picker{child: pickerFunc(func(balancer.PickInfo) (balancer.PickResult, error) {
		return balancer.PickResult{SubConn: sc}, nil
	}), maxPicks: 1}
	callTaking := func(d time.Duration) time.Duration {
		res, err := p.Pick(balancer.PickInfo{Ctx: context.Background()})
		if err != nil {
			t.Fatal(err)
		}
		clock += int64(d)
		res.Done(sent)
		return time.Duration(sc.ep.latency.Load())
	}
	// The first sample sets the estimate; each later one moves it 1/8 of
	// the way.
	for i, step := range []struct{ sample, want time.Duration }{
		{80 * time.Millisecond, 80 * time.Millisecond},
		{160 * time.Millisecond, 90 * time.Millisecond},
		{90 * time.Millisecond, 90 * time.Millisecond},
		{10 * time.Millisecond, 80 * time.Millisecond},
	} {
		if got := callTaking(step.sample); got != step.want {
			t.Errorf("after sample %d (%v): estimate %v, want %v", i, step.sample, got, step.want)
		}
	}
}

package xds_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	greeterv1 "github.com/lbclient/lbclient/gen/greeter/v1"
	"github.com/lbclient/lbclient/gen/greeter/v1/greeterv1lbclient"
	"github.com/lbclient/lbclient/internal/closedloop"
	"github.com/lbclient/lbclient/runtime"
	"github.com/lbclient/lbclient/runtime/balancer/consistenthash"
	"github.com/lbclient/lbclient/runtime/balancer/peakewma"
	"github.com/lbclient/lbclient/runtime/xds/xdstest"
)

// load is a closed loop of GreetAccount calls through the generated
// client, each with an account of its own (so a hash key of its own), from
// workers callers. Half the callers fail fast (grpc.WaitForReady(false)
// over the rules' wait_for_ready), so that a moment without a usable
// policy would show as failed calls rather than waits.
// startLoad runs a closed loop of GreetAccount calls, each for an account
// of its own, half of the workers waiting for ready and half failing fast.
func startLoad(c *greeterv1lbclient.GreeterClient, workers int) *closedloop.Load {
	return closedloop.Start(workers, 2*time.Minute, func(w int, n int64) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := c.GreetAccount(ctx, &greeterv1.GreetAccountRequest{Account: &greeterv1.Account{Id: fmt.Sprintf("acct-%d-%d", w, n)}},
			grpc.WaitForReady(w%2 == 0))
		return err
	})
}

// syncBuffer is a bytes.Buffer safe for the logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// switchPolicy gives the control plane svc, whose cluster has a policy of
// another name than before, and returns how long after the update the
// calls went over the new policy's connections alone: the later of the
// first call on a new connection and the last call on an old one. grpc-go
// builds the new policy beside the old one and closes the old one, so
// every call after the switch goes over a connection first seen after it.
func switchPolicy(t *testing.T, cp *xdstest.Server, log *callLog, svc xdstest.Service) time.Duration {
	t.Helper()
	u := time.Now()
	old := conns(log.between(time.Time{}, u))
	set(t, cp, svc)
	var took time.Duration
	waitFor(t, "the calls to move to the new policy's connections", func() bool {
		now := time.Now()
		var firstNew, lastOld time.Time
		for _, r := range log.between(u, now) {
			if old[r.conn] {
				lastOld = r.at
			} else if firstNew.IsZero() {
				firstNew = r.at
			}
		}
		// Settled: new connections carry calls, and for 300 ms no
		// call went over an old one.
		if firstNew.IsZero() || now.Sub(firstNew) < 300*time.Millisecond || now.Sub(lastOld) < 300*time.Millisecond {
			return false
		}
		took = firstNew.Sub(u)
		if lastOld.After(firstNew) {
			took = lastOld.Sub(u)
		}
		return true
	})
	return took
}

// measure returns the calls that arrive during the next d.
func measure(log *callLog, d time.Duration) []record {
	from := time.Now()
	time.Sleep(d)
	return log.between(from, time.Now())
}

func checkHeavyShare(t *testing.T, what string, recs []record, heavy ...int) {
	t.Helper()
	sh := shares(recs, 4)
	var h float64
	for _, i := range heavy {
		h += sh[i]
	}
	t.Logf("%s: %d calls, shares %.3f, weight-3 side %.3f (light:heavy 1:%.2f)", what, len(recs), sh, h, h/(1-h))
	if h < 0.75*0.9 || h > 0.75*1.1 {
		t.Errorf("%s: the weight-3 side took %.3f of the calls, want 0.75 ±10%%", what, h)
	}
}

// TestControlPlaneDrivesPolicyAndWeights runs the generated Greeter client
// on xds:///greeter against go-control-plane's server and four backends,
// under a closed loop of 8 callers, while the control plane changes the
// cluster: ROUND_ROBIN, then PEAK_EWMA, then EDS weights 1:1:3:3, then
// CONSISTENT_HASH, then two localities of weights 1 and 3. After each
// change it asserts where the calls go; a policy switch must take effect
// within 1 s of the update, a weight change must open no connection, and
// no call may fail throughout, on the one connection dialled at the start.
func TestControlPlaneDrivesPolicyAndWeights(t *testing.T) {
	log := new(callLog)
	bs := startBackends(t, 4, log)
	for _, b := range bs {
		b.delay.Store(int64(time.Millisecond))
	}
	cp, opt := startControlPlane(t)
	svc := xdstest.Service{Name: "greeter", Localities: oneLocality(endpoints(bs))}
	set(t, cp, svc) // lb_policy ROUND_ROBIN, as control planes leave it by default

	var logged syncBuffer
	client, err := greeterv1lbclient.NewGreeterClient("xds:///greeter", opt, runtime.WithInsecure(),
		runtime.WithLogger(slog.New(slog.NewTextHandler(&logged, nil))))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := client.Conn().WaitForReady(ctx); err != nil {
		t.Fatal(err)
	}
	if got := logged.String(); !strings.Contains(got, "retry policy of /greeter.v1.Greeter/GreetAccount") || !strings.Contains(got, "policy PEAK_EWMA") {
		t.Errorf("Dial's log does not say which rules the control plane decides: %s", got)
	}

	l := startLoad(client, 8)
	ended := false
	defer func() {
		if !ended {
			l.Stop()
		}
	}()

	// ROUND_ROBIN (grpc-go's, under xds_wrr_locality): a quarter each.
	waitFor(t, "every backend to get calls", func() bool {
		for _, b := range bs {
			if b.calls.Load() == 0 {
				return false
			}
		}
		return true
	})
	sh := shares(measure(log, time.Second), 4)
	t.Logf("ROUND_ROBIN: shares %.3f", sh)
	for i, s := range sh {
		if s < 0.2 || s > 0.3 {
			t.Errorf("ROUND_ROBIN: backend %d took %.3f of the calls, want 0.25 ±0.05", i, s)
		}
	}

	// PEAK_EWMA, configured through the TypedStruct.
	svc.Policy = lbPolicy(t, peakewma.Name, `{"decayWindow":"2s","probeInterval":"100ms"}`)
	took := switchPolicy(t, cp, log, svc)
	t.Logf("ROUND_ROBIN → PEAK_EWMA took effect %v after the update", took)
	if took > time.Second {
		t.Errorf("ROUND_ROBIN → PEAK_EWMA took effect %v after the update, want within 1s", took)
	}
	sh = shares(measure(log, time.Second), 4)
	t.Logf("PEAK_EWMA, equal weights: shares %.3f", sh)
	for i, s := range sh {
		if s < 0.125 || s > 0.375 {
			t.Errorf("PEAK_EWMA, equal weights: backend %d took %.3f of the calls, want 0.25 ±50%% for identical backends", i, s)
		}
	}

	// EDS weights 1:1:3:3: the heavy pair takes three quarters, over the
	// connections PEAK_EWMA already has.
	w := time.Now()
	before := conns(log.between(time.Time{}, w))
	svc.Localities = oneLocality(endpoints(bs, 1, 1, 3, 3))
	set(t, cp, svc)
	time.Sleep(500 * time.Millisecond)
	checkHeavyShare(t, "PEAK_EWMA, EDS weights 1:1:3:3", measure(log, 2*time.Second), 2, 3)
	for c := range conns(log.between(w, time.Now())) {
		if !before[c] {
			t.Errorf("a weight update opened a connection (%s): the policy was rebuilt", c)
		}
	}

	// CONSISTENT_HASH, same weights: ring nodes in proportion.
	svc.Policy = lbPolicy(t, consistenthash.Name, `{"virtualNodes":400,"balanceFactor":1.5}`)
	took = switchPolicy(t, cp, log, svc)
	t.Logf("PEAK_EWMA → CONSISTENT_HASH took effect %v after the update", took)
	if took > time.Second {
		t.Errorf("PEAK_EWMA → CONSISTENT_HASH took effect %v after the update, want within 1s", took)
	}
	checkHeavyShare(t, "CONSISTENT_HASH, EDS weights 1:1:3:3", measure(log, 2*time.Second), 2, 3)

	// Two localities of weights 1 and 3, endpoints unweighted: what the
	// policy sees is each endpoint's share of the priority, so the
	// localities split the calls 1:3.
	svc.Localities = []xdstest.Locality{
		{Zone: "a", Weight: 1, Endpoints: endpoints(bs[:2])},
		{Zone: "b", Weight: 3, Endpoints: endpoints(bs[2:])},
	}
	set(t, cp, svc)
	time.Sleep(time.Second)
	checkHeavyShare(t, "CONSISTENT_HASH, locality weights 1:3", measure(log, 2*time.Second), 2, 3)

	calls, failed, errs := l.Stop()
	ended = true
	t.Logf("%d calls, %d failed", calls, failed)
	if failed != 0 {
		t.Errorf("%d of %d calls failed; first: %v", failed, calls, errs)
	}

	// One account stays on one backend.
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var where string
	for i := range 50 {
		r, err := client.GreetAccount(ctx, &greeterv1.GreetAccountRequest{Account: &greeterv1.Account{Id: "acct-42"}})
		if err != nil {
			t.Fatalf("GreetAccount %d: %v", i, err)
		}
		if where == "" {
			where = r.GetBackend()
		} else if r.GetBackend() != where {
			t.Fatalf("GreetAccount %d for acct-42 went to backend %s, earlier ones to %s", i, r.GetBackend(), where)
		}
	}
	perBackend := make([]int, len(bs))
	seen := map[string]bool{}
	for _, r := range log.between(time.Time{}, time.Now()) {
		if !seen[r.conn] {
			seen[r.conn] = true
			perBackend[r.backend]++
		}
	}
	t.Logf("client connections per backend over the run: %v (one per policy, and one more after the locality change)", perBackend)
}

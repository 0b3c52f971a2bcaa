package lbcore

import (
	"container/heap"
	"math/rand/v2"
	"testing"
	"time"

	"google.golang.org/grpc/balancer"
)

// completion is a call in flight in closedLoop: it ends at end.
type completion struct {
	end  int64
	done func(balancer.DoneInfo)
}

type completions []completion

func (c completions) Len() int           { return len(c) }
func (c completions) Less(i, j int) bool { return c[i].end < c[j].end }
func (c completions) Swap(i, j int)      { c[i], c[j] = c[j], c[i] }
func (c *completions) Push(x any)        { *c = append(*c, x.(completion)) }
func (c *completions) Pop() any {
	old := *c
	x := old[len(old)-1]
	*c = old[:len(old)-1]
	return x
}

// closedLoop runs n calls of a closed-loop load on the fake clock: workers
// callers, each starting its next call as soon as the previous one ends, a
// call to addr lasting latency(addr). It returns the calls per endpoint.
func closedLoop(t *testing.T, s *sim, n, workers int, latency func(addr string) time.Duration) map[string]int {
	count := map[string]int{}
	var q completions
	start := func() {
		i := s.tr.ChooseP2C(s.ready, s.clk.now, s.tr.Params(), nil)
		addr := s.ready[i].EP.Addr
		count[addr]++
		heap.Push(&q, completion{s.clk.now + int64(latency(addr)), pickDone(t, s.tr, &s.ready[i], nil)})
	}
	for range workers {
		start()
	}
	for range n - workers {
		c := heap.Pop(&q).(completion)
		s.clk.now = c.end
		c.done(balancer.DoneInfo{BytesSent: true, BytesReceived: true})
		start()
	}
	for q.Len() > 0 {
		c := heap.Pop(&q).(completion)
		s.clk.now = c.end
		c.done(balancer.DoneInfo{BytesSent: true, BytesReceived: true})
	}
	return count
}

// TestSlowEndpointGetsLittleTrafficDespiteStalls is the demo's skewed
// fleet on the fake clock: 8 closed-loop callers over three 1 ms endpoints
// and one 10 ms endpoint, where one fast call in 100 is stretched by a
// stall of 2-6 ms (a GC pause or a descheduled goroutine on a small
// machine). Each stall is a peak that the estimate takes at once. If it
// then decays over the decay window (10 s, tens of thousands of fast
// responses later), the fast endpoints' estimates sit at their latest
// stall, a few times their latency, and the slow endpoint wins every P2C
// round against a fast one with three or four calls in flight: about 3%
// of calls, which puts the slow endpoint's latency at p99. A peak must be
// forgotten after a few responses that contradict it instead.
func TestSlowEndpointGetsLittleTrafficDespiteStalls(t *testing.T) {
	s := newSim(t, 5, 0, 0, "fast-1", "fast-2", "fast-3", "slow")
	rnd := rand.New(rand.NewPCG(9, 9))
	latency := func(addr string) time.Duration {
		if addr == "slow" {
			return 10*time.Millisecond + time.Duration(rnd.Int64N(int64(500*time.Microsecond)))
		}
		d := time.Millisecond + time.Duration(rnd.Int64N(int64(500*time.Microsecond)))
		if rnd.IntN(100) == 0 {
			d += 2*time.Millisecond + time.Duration(rnd.Int64N(int64(4*time.Millisecond)))
		}
		return d
	}
	closedLoop(t, s, 20000, 8, latency) // warm up: every estimate measured
	const n = 100000
	count := closedLoop(t, s, n, 8, latency)
	share := float64(count["slow"]) / n
	t.Logf("calls per endpoint: %v; slow share %.2f%%", count, 100*share)
	if share >= 0.01 {
		t.Errorf("slow endpoint got %.2f%% of calls, want < 1%% (its latency must stay out of p99)", 100*share)
	}
	for _, a := range []string{"fast-1", "fast-2", "fast-3"} {
		if got := float64(count[a]) / n; got < 0.30 || got > 0.37 {
			t.Errorf("%s got %.1f%% of calls, want about a third", a, 100*got)
		}
	}
}

// TestEWMAStallIsNoPeak: a fast endpoint (1 ms, a response every 250 µs)
// has one 10 ms stall. The estimate rises a quarter of the way (a peak
// taken at once, as Finagle and linkerd2-proxy do, would make the
// endpoint look ten times slower than its peers on one response, and an
// endpoint so avoided gets no response to contradict it), and the
// responses after it bring it back within a few dozen responses (about
// ResponseWindow·ln(peak/latency)), not after the decay window as a
// time-weighted EWMA does when 10 ms of responses weigh 1e-3 of tau.
func TestEWMAStallIsNoPeak(t *testing.T) {
	var e EWMA
	e.Init(30*ms, 0)
	now := int64(0)
	step := int64(250 * time.Microsecond)
	for range 100 {
		now += step
		e.Observe(1*ms, 1, now, params)
	}
	now += step
	e.Observe(10*ms, 1, now, params) // a stall
	if got := e.Estimate(now, tau); got < 3*ms || got > 3.5*ms {
		t.Fatalf("after the stall: %v, want a quarter of the way to 10ms", time.Duration(got))
	}
	for range 20 { // 5 ms of fast responses
		now += step
		e.Observe(1*ms, 1, now, params)
	}
	if got := e.Estimate(now, tau); got > 1.2*ms {
		t.Errorf("20 responses of 1ms after a 10ms stall: estimate %v, want < 1.2ms", time.Duration(got))
	}
}

// TestEWMASlowEndpointNotHiddenByFewFastResponses: the response window
// must not let a slow endpoint look fast after a lucky response or two,
// nor an endpoint that is slow one call in four look better than its mean
// latency (3.25 ms).
func TestEWMASlowEndpointNotHiddenByFewFastResponses(t *testing.T) {
	var e EWMA
	e.Init(30*ms, 0)
	now := int64(0)
	e.Observe(10*ms, 1, now, params)
	for range 2 {
		now += int64(time.Millisecond)
		e.Observe(1*ms, 1, now, params)
	}
	if got := e.Estimate(now, tau); got < 7*ms {
		t.Errorf("10ms endpoint after two 1ms responses: %v, want >= 7ms", time.Duration(got))
	}
	lo := 10 * ms
	for i := range 400 { // one call in four takes 10ms, the others 1ms
		now += int64(time.Millisecond)
		rtt := 1 * ms
		if i%4 == 0 {
			rtt = 10 * ms
		}
		e.Observe(rtt, 1, now, params)
		lo = min(lo, e.Estimate(now, tau))
	}
	if lo < 3.25*ms {
		t.Errorf("endpoint slow one call in four: estimate fell to %v, want >= its mean, 3.25ms, throughout", time.Duration(lo))
	}
}

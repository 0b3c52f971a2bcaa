package lbcore

import (
	"testing"
	"time"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/endpointsharding"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"
)

// TestEjectionsCounted: an ejection is counted once, when the streak
// reaches the threshold, not for each failure beyond it; a new streak
// after an answer counts again, and so does one of timeouts.
func TestEjectionsCounted(t *testing.T) {
	clk := &fakeClock{}
	tr := newTestTracker(clk, 1)
	_, ready := tr.Sync([]endpointsharding.ChildState{child("a", connectivity.Ready, &fakePicker{})})
	ep := ready[0].EP
	end := func(c codes.Code) {
		var err error
		if c != codes.OK {
			err = status.Error(c, "")
		}
		pickDone(t, tr, &ready[0], nil)(balancer.DoneInfo{Err: err, BytesSent: true})
	}
	for range 3 * EjectAfter {
		end(codes.Unavailable)
	}
	if got := ep.ejects.Load(); got != 1 {
		t.Fatalf("%d ejections after %d failures in a row, want 1", got, 3*EjectAfter)
	}
	end(codes.OK)
	for range EjectAfterTimeouts {
		end(codes.DeadlineExceeded)
	}
	if got := ep.ejects.Load(); got != 2 {
		t.Fatalf("%d ejections after an answer and %d timeouts, want 2", got, EjectAfterTimeouts)
	}
	eps := tr.Endpoints()
	if len(eps) != 1 || eps[0].Ejections != 2 || !eps[0].Ejected {
		t.Fatalf("Endpoints = %+v, want 2 ejections, ejected", eps)
	}
	if c := tr.MetricCounts(); c.Ejections != 2 || c.Picks != uint64(3*EjectAfter+1+EjectAfterTimeouts) {
		t.Fatalf("MetricCounts = %+v, want 2 ejections and every pick", c)
	}
}

// TestProbesCounted: of the calls a failing endpoint gets while its peers
// take the rest, all but the first few (a new endpoint is tried at once)
// are probes, and the count says so; the counts survive the endpoint's
// removal.
func TestProbesCounted(t *testing.T) {
	s := newSim(t, 3, time.Millisecond, 4, "a", "b", "bad")
	s.fails = func(addr string) bool { return addr == "bad" }
	calls := 0
	for range 20000 {
		calls += s.run(1)["bad"]
	}
	var bad *Endpoint
	for _, c := range s.ready {
		if c.EP.Addr == "bad" {
			bad = c.EP
		}
	}
	probes := bad.probes.Load()
	t.Logf("failing endpoint: %d calls, %d of them probes, %d ejections", calls, probes, bad.ejects.Load())
	if probes == 0 || probes > uint64(calls) || uint64(calls)-probes > EjectAfter {
		t.Errorf("%d probes of the %d calls to the failing endpoint, want all but its first few", probes, calls)
	}
	if bad.ejects.Load() != 1 {
		t.Errorf("%d ejections of an endpoint that never answered, want 1", bad.ejects.Load())
	}
	before := s.tr.MetricCounts()
	// The resolver drops bad: its counts stay in the totals.
	s.tr.Sync([]endpointsharding.ChildState{
		child("a", connectivity.Ready, &fakePicker{}),
		child("b", connectivity.Ready, &fakePicker{}),
	})
	if after := s.tr.MetricCounts(); after.Picks < before.Picks || after.Probes != before.Probes || after.Ejections != before.Ejections {
		t.Errorf("MetricCounts went from %+v to %+v when an endpoint left, want no count lost", before, after)
	}
}

package lbmetrics

import (
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	estats "google.golang.org/grpc/experimental/stats"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// syncRecorder is a stats handler's MetricsRecorder that records counts
// and never calls async reporters, as a recorder without asynchronous
// metrics does.
type syncRecorder struct {
	estats.UnimplementedMetricsRecorder
	mu           sync.Mutex
	counts       map[string]int64 // by metric name
	labels       [][]string
	unregistered atomic.Int64
}

func (r *syncRecorder) RecordInt64Count(h *estats.Int64CountHandle, incr int64, labels ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if incr <= 0 {
		panic("a counter recorded a non-positive increment")
	}
	r.counts[h.Descriptor().Name] += incr
	r.labels = append(r.labels, slices.Clone(labels))
}

func (r *syncRecorder) RegisterAsyncReporter(estats.AsyncMetricReporter, ...estats.AsyncMetric) func() {
	return func() { r.unregistered.Add(1) }
}

func (r *syncRecorder) get(name string) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts[name]
}

type source struct {
	mu sync.Mutex
	c  Counts
}

func (s *source) set(c Counts) {
	s.mu.Lock()
	s.c = c
	s.mu.Unlock()
}

func (s *source) MetricCounts() Counts {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.c
}

func (s *source) AppendEstimates(dst []Estimate) []Estimate {
	return append(dst, Estimate{Addr: "10.0.0.1:443", Latency: 1500 * time.Microsecond})
}

// TestFlushWithoutCollection: with a recorder that never collects
// asynchronously, the counts reach it every FlushInterval, only their
// growth (a count that goes back records nothing), and the rest at Close.
func TestFlushWithoutCollection(t *testing.T) {
	defer func(d time.Duration) { FlushInterval = d }(FlushInterval)
	FlushInterval = 10 * time.Millisecond
	rec := &syncRecorder{counts: map[string]int64{}}
	src := &source{}
	r := Start(rec, "dns:///x", "lbclient_peak_ewma", src)
	src.set(Counts{Picks: 10, Ejections: 1, Probes: 2})
	waitFor(t, func() bool { return rec.get("lbclient.lb.picks") == 10 && rec.get("lbclient.lb.probes") == 2 })
	src.set(Counts{Picks: 8, Ejections: 1, Probes: 2}) // two picks taken back
	time.Sleep(5 * FlushInterval)
	if got := rec.get("lbclient.lb.picks"); got != 10 {
		t.Fatalf("picks %d after the count went back, want 10 still", got)
	}
	src.set(Counts{Picks: 13, Ejections: 2, Probes: 2})
	r.Close()
	r.Close() // idempotent
	if p, e := rec.get("lbclient.lb.picks"), rec.get("lbclient.lb.ejections"); p != 13 || e != 2 {
		t.Errorf("after Close picks %d, ejections %d; want 13, 2", p, e)
	}
	if n := rec.unregistered.Load(); n != 1 {
		t.Errorf("async reporter unregistered %d times, want once", n)
	}
	src.set(Counts{Picks: 20})
	time.Sleep(5 * FlushInterval)
	if got := rec.get("lbclient.lb.picks"); got != 13 {
		t.Errorf("picks %d recorded after Close, want none past 13", got)
	}
	for _, l := range rec.labels {
		if !slices.Equal(l, []string{"dns:///x", "lbclient_peak_ewma"}) {
			t.Errorf("recorded with labels %q, want the target and the policy", l)
		}
	}
}

// asyncRecorder records what an async reporter reports.
type asyncRecorder struct {
	got map[string]int64 // endpoint → value
}

func (a *asyncRecorder) RecordInt64AsyncGauge(h *estats.Int64AsyncGaugeHandle, v int64, labels ...string) {
	a.got[labels[2]] = v
}

// TestReportRecordsCountsThenGauges: a collection's Report records the
// counts first, then each endpoint's estimate in microseconds.
func TestReportRecordsCountsThenGauges(t *testing.T) {
	rec := &syncRecorder{counts: map[string]int64{}}
	src := &source{}
	r := Start(rec, "dns:///x", "p", src)
	defer r.Close()
	src.set(Counts{Picks: 4})
	ar := &asyncRecorder{got: map[string]int64{}}
	if err := r.Report(ar); err != nil {
		t.Fatal(err)
	}
	if got := rec.get("lbclient.lb.picks"); got != 4 {
		t.Errorf("Report recorded %d picks, want 4", got)
	}
	if v := ar.got["10.0.0.1:443"]; v != 1500 {
		t.Errorf("estimate reported %dus, want 1500", v)
	}
}

func TestNilRecorder(t *testing.T) {
	r := Start(nil, "t", "p", &source{})
	r.Flush()
	r.SetPolicy("q")
	r.Close()
	if r != nil {
		t.Fatal("Start(nil) returned a Reporter")
	}
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10 s")
		}
		time.Sleep(time.Millisecond)
	}
}

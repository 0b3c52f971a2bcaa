package observe

import (
	"github.com/lbclient/lbclient/runtime/internal/lbmetrics"
	"github.com/lbclient/lbclient/runtime/internal/lbstats"
)

// source is what observe sets as its lbstats.Sink's Source. It is a
// separate value per publication so that Unset removes exactly this one.
type source struct{ b *observeBalancer }

// Endpoints returns one entry per endpoint: the resolver's endpoints in
// its order, then any address the child connected to that no endpoint
// names. It returns nil once the balancer is closed.
func (s *source) Endpoints() []lbstats.Endpoint {
	b := s.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	out := make([]lbstats.Endpoint, 0, len(b.order))
	for _, ep := range b.order {
		out = append(out, ep.snapshotLocked())
	}
	return out
}

// metricsSource is observe's lbmetrics.Source: the picks of every endpoint,
// those it dropped included.
type metricsSource struct{ b *observeBalancer }

func (s metricsSource) MetricCounts() lbmetrics.Counts {
	b := s.b
	b.mu.Lock()
	defer b.mu.Unlock()
	n := b.retired
	for _, ep := range b.endpoints {
		n += ep.picks.Load()
	}
	return lbmetrics.Counts{Picks: n}
}

// AppendEstimates appends nothing: grpc-go's pickers rank endpoints by no
// latency estimate.
func (metricsSource) AppendEstimates(dst []lbmetrics.Estimate) []lbmetrics.Estimate { return dst }

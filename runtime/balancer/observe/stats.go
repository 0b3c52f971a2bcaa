package observe

import "github.com/lbclient/lbclient/runtime/internal/lbstats"

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

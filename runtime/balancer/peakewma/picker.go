package peakewma

import (
	"google.golang.org/grpc/balancer"

	"github.com/lbclient/lbclient/runtime/balancer/internal/lbcore"
	"github.com/lbclient/lbclient/runtime/internal/callinfo"
)

// picker is an immutable snapshot of the READY endpoints. The counters it
// reads live in the endpoints, which outlive it; Pick is lock-free.
type picker struct {
	t      *lbcore.Tracker
	ready  []lbcore.Child // non-empty
	params *lbcore.Params
}

// Pick chooses by power of two choices on cost, leaving out the endpoints a
// hedged call already tried when another READY one exists, and chains the
// child's Done behind the accounting of the call. No allocation.
func (p *picker) Pick(info balancer.PickInfo) (balancer.PickResult, error) {
	now := p.t.Now()
	ci := callinfo.From(info.Ctx)
	i := p.t.ChooseP2C(p.ready, now, p.params, &ci)
	return p.t.Pick(&p.ready[i], info, now, &ci, 0)
}

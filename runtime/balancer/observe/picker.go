package observe

import (
	"sync"
	"time"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/lbclient/lbclient/runtime/internal/callinfo"
)

// nanotime is the time source of the latency estimate: monotonic
// nanoseconds since an arbitrary origin. Tests replace it. time.Since on a
// time with a monotonic reading costs one clock read, time.Now two.
var nanotime = func() int64 { return int64(time.Since(origin)) }

var origin = time.Now()

// latencyWeight is the weight, as a right shift, of each new latency
// sample in the estimate: est += (sample - est) / 8. One eighth is TCP's
// smoothed round-trip-time gain (RFC 6298, alpha = 1/8): steady under
// noise, and a lasting change shows after a dozen or so calls.
const latencyWeight = 3

// picker wraps the child's picker. It is immutable; Pick is lock-free.
type picker struct {
	child balancer.Picker
	// maxPicks is the most picks one call makes while avoiding endpoints:
	// the number of endpoints when the child published its picker.
	maxPicks int
}

// Pick asks the child, re-asks while the child's choice is an endpoint the
// call's earlier attempts already went to (at most maxPicks picks in all,
// then the last one stands), counts the pick and returns grpc-go's own
// SubConn with a Done that ends the count.
func (p *picker) Pick(info balancer.PickInfo) (balancer.PickResult, error) {
	res, err := p.child.Pick(info)
	if err != nil {
		return res, err
	}
	sc, ok := res.SubConn.(*subConn)
	if !ok {
		// Not one of observe's: cannot happen with a well-behaved child.
		return res, nil
	}
	if a := callinfo.AttemptsFrom(info.Ctx); a != nil {
		for n := 1; n < p.maxPicks && a.Tried(sc.ep.addr); n++ {
			next, err := p.child.Pick(info)
			if err != nil {
				break
			}
			nsc, ok := next.SubConn.(*subConn)
			if !ok {
				release(next)
				break
			}
			release(res)
			res, sc = next, nsc
		}
		a.Add(sc.ep.addr)
	}
	ep := sc.ep
	ep.picks.Add(1)
	ep.inFlight.Add(1)
	c := getCall()
	c.ep, c.start, c.childDone = ep, nanotime(), res.Done
	return balancer.PickResult{SubConn: sc.SubConn, Done: c.done, Metadata: res.Metadata}, nil
}

// release tells the child that a pick it made will not be used, the way
// grpc-go does when a picked SubConn turns out not to be ready.
func release(r balancer.PickResult) {
	if r.Done != nil {
		r.Done(balancer.DoneInfo{})
	}
}

// call carries one picked call to its Done. Calls are pooled, and each
// holds its Done bound once, so that a pick allocates nothing: grpc-go
// calls Done exactly once per pick it keeps or discards.
type call struct {
	ep        *endpoint
	start     int64 // nanotime at the pick
	childDone func(balancer.DoneInfo)
	done      func(balancer.DoneInfo) // c.finish
}

var callPool sync.Pool // of *call

func getCall() *call {
	if c, ok := callPool.Get().(*call); ok {
		return c
	}
	c := new(call)
	c.done = c.finish
	return c
}

func (c *call) finish(di balancer.DoneInfo) {
	ep, start, childDone := c.ep, c.start, c.childDone
	*c = call{done: c.done}
	callPool.Put(c)
	ep.finish(di, time.Duration(nanotime()-start))
	if childDone != nil {
		childDone(di)
	}
}

// finish ends the count of one call.
func (ep *endpoint) finish(di balancer.DoneInfo, elapsed time.Duration) {
	ep.inFlight.Add(-1)
	if di.Err == nil && !di.BytesSent && !di.BytesReceived {
		// grpc-go discarded the pick (the SubConn was no longer ready)
		// and picks again: the call did not go here.
		ep.picks.Add(^uint64(0))
		return
	}
	switch kind := classify(di.Err); kind {
	case outcomeFailure:
		ep.failures.Add(1)
	case outcomeAnswered:
		ep.observeLatency(elapsed)
	}
}

type outcome int

const (
	// outcomeAnswered: the endpoint answered (OK or an application
	// error); the call's latency feeds the estimate.
	outcomeAnswered outcome = iota
	// outcomeFailure: the call failed in a way that speaks against the
	// endpoint; counted in Failures.
	outcomeFailure
	// outcomeCut: the caller gave up (deadline or cancellation); neither
	// a failure of the endpoint nor a full latency sample.
	outcomeCut
)

// classify sorts a call's final error. Failures are the codes that speak of
// the endpoint or the connection to it rather than of the request:
//
//	UNAVAILABLE         the server is down, draining, or unreachable
//	RESOURCE_EXHAUSTED  the server is overloaded (or a quota ran out)
//	INTERNAL            a broken server, or a transport/protocol error
//	DATA_LOSS           corrupt data on the way
//
// DEADLINE_EXCEEDED and CANCELLED are the caller's doing (its deadline, a
// hedged call dropping the slower attempt) and count as neither. Every
// other code, including UNKNOWN (a plain error from a handler), is the
// server's answer to the request.
func classify(err error) outcome {
	if err == nil {
		return outcomeAnswered
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.ResourceExhausted, codes.Internal, codes.DataLoss:
		return outcomeFailure
	case codes.DeadlineExceeded, codes.Canceled:
		return outcomeCut
	}
	return outcomeAnswered
}

// observeLatency feeds one sample to the estimate; the first sample sets it.
func (ep *endpoint) observeLatency(d time.Duration) {
	s := int64(d)
	if s <= 0 {
		s = 1 // keep 0 for "no estimate yet"
	}
	for {
		old := ep.latency.Load()
		est := s
		if old != 0 {
			est = old + (s-old)>>latencyWeight
			if est <= 0 {
				est = 1
			}
		}
		if ep.latency.CompareAndSwap(old, est) {
			return
		}
	}
}

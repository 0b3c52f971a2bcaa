package hedge

import (
	"context"
	"errors"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/lbclient/lbclient/runtime/internal/callinfo"
	"github.com/lbclient/lbclient/runtime/internal/lbmetrics"
)

// call is the state of one hedged call. The first attempt runs on the
// caller's goroutine; further attempts run on their own, started by the
// delay's timer or by a non-fatal failure. Everything below mu is guarded
// by it.
type call struct {
	i      *Interceptor
	m      *method
	budget *budget
	parent context.Context // the caller's context
	// ctx is the attempts' context: parent, with the policy's timeout if
	// any, Attempts, and cancel, which ends the losers.
	ctx     context.Context
	cancel  context.CancelFunc
	method  string
	req     any
	cc      *grpc.ClientConn
	invoker grpc.UnaryInvoker
	delay   time.Duration

	// opts are the caller's call options, less those in outs.
	opts []grpc.CallOption
	// outs is not nil when the caller passed call options that must not be
	// shared by the attempts (Header, Trailer, Peer, OnFinish).
	outs *outputs

	attempts callinfo.Attempts
	replies  [maxAttempts]proto.Message // replies[0] is the caller's reply
	// replyType makes the replies of further attempts. It is taken before
	// the first attempt starts: asking replies[0] later would read it while
	// the first attempt decodes into it.
	replyType protoreflect.MessageType

	mu       sync.Mutex
	timer    stopper
	timerGen uint64 // identifies the current timer; stale timers do nothing
	sent     int    // attempts started
	inFlight int    // attempts started and not returned
	decided  bool   // an attempt won: OK or a fatal status
	noMore   bool   // no further attempt will start
	ended    bool   // decided or noMore, and nothing in flight
	result   error  // the winner's result, else the last non-fatal failure
	resultAt int    // the attempt that gave result
	done     chan struct{}
}

// outputs holds the caller's call options that describe one attempt, and
// each attempt's own copy of what they receive.
type outputs struct {
	headers, trailers []*metadata.MD
	peers             []*peer.Peer
	onFinish          []func(error)
	perAttempt        [maxAttempts]attemptOutputs
}

type attemptOutputs struct {
	header, trailer metadata.MD
	peer            peer.Peer
}

func (i *Interceptor) hedge(ctx context.Context, m *method, fullMethod string, req any, reply proto.Message, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts []grpc.CallOption) error {
	m.calls.Add(1)
	i.budget.deposit()
	c := &call{
		i:       i,
		m:       m,
		budget:  i.budget,
		parent:  ctx,
		method:  fullMethod,
		req:     req,
		cc:      cc,
		invoker: invoker,
		delay:   m.hedgeDelay(),
		opts:    opts,
	}
	c.replies[0] = reply
	c.replyType = reply.ProtoReflect().Type()
	c.splitOptions()
	// One context bounds the attempts by the timeout and ends the losers:
	// a timeout context is also a cancel context.
	var (
		actx   context.Context
		cancel context.CancelFunc
	)
	if m.timeout > 0 {
		actx, cancel = context.WithTimeout(ctx, m.timeout)
	} else {
		actx, cancel = context.WithCancel(ctx)
	}
	c.ctx, c.cancel = callinfo.WithAttempts(actx, &c.attempts), cancel

	c.mu.Lock()
	c.sent, c.inFlight = 1, 1
	c.armLocked()
	c.mu.Unlock()

	var start time.Time
	if m.est != nil {
		start = now()
	}
	err := invoker(c.ctx, fullMethod, req, reply, cc, c.optsFor(0)...)
	var elapsed time.Duration
	if m.est != nil {
		elapsed = now().Sub(start)
	}

	c.mu.Lock()
	lost := c.decided // another attempt won before this one returned
	c.finishLocked(0, err)
	ended := c.ended
	if !ended {
		c.done = make(chan struct{})
	}
	c.mu.Unlock()

	// Feed the first attempt's latency to the estimator: exact when it
	// succeeded, a lower bound when it was cut short because another
	// attempt won (see the package comment); nothing when the caller gave
	// up or the timeout ended the call.
	if m.est != nil && ctx.Err() == nil && !errors.Is(actx.Err(), context.DeadlineExceeded) && (err == nil || lost) {
		m.est.Record(elapsed)
	}

	if !ended {
		<-c.done
	}
	c.cancel()
	return c.finishCall()
}

// finishCall hands the result to the caller once every attempt has
// returned: the winner's reply and outputs, and OnFinish.
func (c *call) finishCall() error {
	k, err := c.resultAt, c.result
	if err == nil && k != 0 {
		proto.Reset(c.replies[0])
		proto.Merge(c.replies[0], c.replies[k])
		c.m.wins.Add(1)
		c.i.record(lbmetrics.HedgeWins, c.cc, c.method)
	}
	if o := c.outs; o != nil {
		a := &o.perAttempt[k]
		for _, h := range o.headers {
			*h = a.header
		}
		for _, t := range o.trailers {
			*t = a.trailer
		}
		for _, p := range o.peers {
			*p = a.peer
		}
		for _, f := range o.onFinish {
			f(err)
		}
	}
	return err
}

// armLocked starts the timer of the next attempt, if there is one to come.
func (c *call) armLocked() {
	c.stopTimerLocked()
	if c.sent >= c.m.maxAttempts {
		return
	}
	gen := c.timerGen
	c.timer = afterFunc(c.delay, func() { c.onTimer(gen) })
}

func (c *call) stopTimerLocked() {
	c.timerGen++
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
}

func (c *call) onTimer(gen uint64) {
	c.mu.Lock()
	if gen == c.timerGen && !c.decided && !c.noMore {
		c.launchLocked()
	}
	c.mu.Unlock()
}

// launchLocked starts the next attempt, unless the call has made all its
// attempts, the caller's context is done, or the budget is spent; in those
// cases the call starts no further attempt.
func (c *call) launchLocked() {
	if c.noMore {
		return
	}
	// Both contexts: a parent that is done closes its own channel before
	// it cancels its children.
	if c.sent >= c.m.maxAttempts || c.parent.Err() != nil || c.ctx.Err() != nil {
		c.stopLocked()
		return
	}
	if !c.budget.take() {
		c.m.denied.Add(1)
		c.i.record(lbmetrics.HedgeBudgetExhausted, c.cc, c.method)
		c.stopLocked()
		return
	}
	k := c.sent
	c.sent++
	c.inFlight++
	if k == 1 {
		c.m.hedged.Add(1)
	}
	c.m.extra.Add(1)
	c.i.record(lbmetrics.HedgeAttempts, c.cc, c.method)
	c.replies[k] = c.replyType.New().Interface()
	c.armLocked()
	go c.run(k)
}

func (c *call) stopLocked() {
	c.noMore = true
	c.stopTimerLocked()
}

// run runs attempt k, k > 0.
func (c *call) run(k int) {
	err := c.invoker(c.ctx, c.method, c.req, c.replies[k], c.cc, c.optsFor(k)...)
	c.mu.Lock()
	c.finishLocked(k, err)
	c.mu.Unlock()
}

// finishLocked takes in the result of attempt k.
func (c *call) finishLocked(k int, err error) {
	c.inFlight--
	if !c.decided {
		c.result, c.resultAt = err, k
		if err == nil || !c.m.isNonFatal(status.Code(err)) {
			c.decided = true
			c.stopLocked()
			c.cancel() // the other attempts, at once
		} else {
			c.launchLocked() // the next attempt, without waiting (gRFC A6)
		}
	}
	if c.inFlight == 0 && !c.ended {
		// Nothing in flight: either an attempt won, or launchLocked could
		// not start another, which set noMore. Either way the call ends.
		c.ended = true
		c.stopTimerLocked()
		if c.done != nil {
			close(c.done)
		}
	}
}

// splitOptions sets c.outs when the caller's options include some that
// must not be shared by the attempts, and removes those from c.opts.
func (c *call) splitOptions() {
	n := 0
	for _, o := range c.opts {
		switch o.(type) {
		case grpc.HeaderCallOption, grpc.TrailerCallOption, grpc.PeerCallOption, grpc.OnFinishCallOption:
			n++
		}
	}
	if n == 0 {
		return
	}
	outs := &outputs{}
	rest := make([]grpc.CallOption, 0, len(c.opts)-n)
	for _, o := range c.opts {
		switch o := o.(type) {
		case grpc.HeaderCallOption:
			outs.headers = append(outs.headers, o.HeaderAddr)
		case grpc.TrailerCallOption:
			outs.trailers = append(outs.trailers, o.TrailerAddr)
		case grpc.PeerCallOption:
			outs.peers = append(outs.peers, o.PeerAddr)
		case grpc.OnFinishCallOption:
			outs.onFinish = append(outs.onFinish, o.OnFinish)
		default:
			rest = append(rest, o)
		}
	}
	c.opts, c.outs = rest, outs
}

// optsFor returns the call options of attempt k: the caller's, with
// Header, Trailer and Peer pointed at the attempt's own outputs.
func (c *call) optsFor(k int) []grpc.CallOption {
	o := c.outs
	if o == nil || len(o.headers)+len(o.trailers)+len(o.peers) == 0 {
		// Capped, so that an interceptor down the chain that appends to
		// its options copies them instead of racing with other attempts.
		return c.opts[:len(c.opts):len(c.opts)]
	}
	a := &o.perAttempt[k]
	opts := make([]grpc.CallOption, len(c.opts), len(c.opts)+3)
	copy(opts, c.opts)
	if len(o.headers) > 0 {
		opts = append(opts, grpc.Header(&a.header))
	}
	if len(o.trailers) > 0 {
		opts = append(opts, grpc.Trailer(&a.trailer))
	}
	if len(o.peers) > 0 {
		opts = append(opts, grpc.Peer(&a.peer))
	}
	return opts
}

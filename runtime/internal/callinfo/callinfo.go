// Package callinfo carries per-call facts from lbclient's interceptors and
// generated code to its pickers, through the call's context: the hash key
// that routes a call under consistent hashing, the set of endpoints a
// hedged call has already tried, and whether the call is a stream.
//
// Every fact lives in one Info, which each With function copies into a
// context of its own together with the facts already on ctx, so that a
// picker reads them all with a single context lookup (From): a lookup
// walks the chain of contexts, and a picker would otherwise pay that walk
// once per fact.
package callinfo

import (
	"context"
	"sync/atomic"
)

// Info is what a call's context tells lbclient's pickers.
type Info struct {
	// HashKey routes the call under consistent hashing when HasKey is set.
	HashKey string
	HasKey  bool
	// Attempts is shared by the attempts of a hedged call; nil otherwise.
	Attempts *Attempts
	// Stream marks a streaming call: its lifetime is the caller's choice,
	// not a measure of the endpoint.
	Stream bool
}

type infoKey struct{}

// infoCtx carries an Info. One allocation per With, instead of two for
// context.WithValue and a value boxed in an interface.
type infoCtx struct {
	context.Context
	info Info
}

// Value returns the infoCtx itself for infoKey: a pointer, which an
// interface holds without allocating.
func (c *infoCtx) Value(k any) any {
	if _, ok := k.(infoKey); ok {
		return c
	}
	return c.Context.Value(k)
}

func lookup(ctx context.Context) *infoCtx {
	c, _ := ctx.Value(infoKey{}).(*infoCtx)
	return c
}

// From returns the Info on ctx; the zero Info when there is none.
func From(ctx context.Context) Info {
	if c := lookup(ctx); c != nil {
		return c.info
	}
	return Info{}
}

// with returns a copy of ctx carrying the Info of ctx as set changes it.
func with(ctx context.Context, set func(*Info)) context.Context {
	c := &infoCtx{Context: ctx}
	if outer := lookup(ctx); outer != nil {
		c.info = outer.info
	}
	set(&c.info)
	return c
}

// WithHashKey returns a copy of ctx that carries key as the call's hash key.
func WithHashKey(ctx context.Context, key string) context.Context {
	return with(ctx, func(i *Info) { i.HashKey, i.HasKey = key, true })
}

// HashKey returns the hash key in ctx, and whether there is one.
func HashKey(ctx context.Context) (string, bool) {
	i := From(ctx)
	return i.HashKey, i.HasKey
}

// WithAttempts returns a copy of ctx that carries a.
func WithAttempts(ctx context.Context, a *Attempts) context.Context {
	return with(ctx, func(i *Info) { i.Attempts = a })
}

// AttemptsFrom returns the Attempts in ctx, or nil when the call is not
// hedged. Pickers that find one avoid the endpoints it names whenever
// another ready endpoint exists, and Add the endpoint they pick.
func AttemptsFrom(ctx context.Context) *Attempts { return From(ctx).Attempts }

// WithStream returns a copy of ctx that marks the call as a stream.
func WithStream(ctx context.Context) context.Context {
	return with(ctx, func(i *Info) { i.Stream = true })
}

// MaxAttempts is how many attempts an Attempts records: a hedged call
// makes at most 5 (gRFC A6), and a transparent retry of grpc re-picks for
// the same attempt now and then. Attempts beyond it are not recorded: the
// avoid-set keeps the first ones.
const MaxAttempts = 8

// Attempts records the endpoints the attempts of one call went to, in the
// order they were picked, so that each further attempt of a hedged call
// can be sent elsewhere, and which attempt answered first, so that the
// attempts it overtook count against their endpoints. It is shared by the
// attempts of one call and safe for concurrent use, and lock-free: each
// attempt claims a slot, fills it and marks it ready, and readers read
// only ready slots. Its zero value is ready to use.
type Attempts struct {
	claimed atomic.Int32
	ready   [MaxAttempts]atomic.Bool
	addrs   [MaxAttempts]string // addrs[k] is written once, before ready[k]
	won     atomic.Int32        // ordinal of the first attempt that answered, plus one
}

// Tried reports whether an attempt of the call already went to addr.
func (a *Attempts) Tried(addr string) bool {
	for k := range a.recorded() {
		if a.ready[k].Load() && a.addrs[k] == addr {
			return true
		}
	}
	return false
}

// recorded is how many slots may hold an attempt.
func (a *Attempts) recorded() int { return min(int(a.claimed.Load()), MaxAttempts) }

// Add records that an attempt went to addr and returns the attempt's
// ordinal: 0 for the first pick of the call, 1 for the next, and so on.
func (a *Attempts) Add(addr string) int {
	k := int(a.claimed.Add(1)) - 1
	if k < MaxAttempts {
		a.addrs[k] = addr
		a.ready[k].Store(true)
	}
	return k
}

// Answered records that the attempt with ordinal k got an answer from its
// endpoint. Only the first answer is kept.
func (a *Attempts) Answered(k int) { a.won.CompareAndSwap(0, int32(k)+1) }

// Overtaken reports whether an attempt picked after the one with ordinal
// k answered first: k had been waiting longer than a later attempt's whole
// call.
func (a *Attempts) Overtaken(k int) bool { return int(a.won.Load()) > k+1 }

// AppendTried appends the endpoints tried so far, in order, to dst and
// returns the result: with room for them in dst (MaxAttempts), a snapshot
// that a picker can search without allocating.
func (a *Attempts) AppendTried(dst []string) []string {
	for k := range a.recorded() {
		if a.ready[k].Load() {
			dst = append(dst, a.addrs[k])
		}
	}
	return dst
}

// Addrs returns the endpoints tried so far, in order.
func (a *Attempts) Addrs() []string { return a.AppendTried(nil) }

// Reset forgets every attempt, so that a can serve another call. No
// attempt of the previous call may be under way.
func (a *Attempts) Reset() {
	for k := range a.recorded() {
		a.ready[k].Store(false)
		a.addrs[k] = ""
	}
	a.claimed.Store(0)
	a.won.Store(0)
}

// Package callinfo carries per-call facts from lbclient's interceptors and
// generated code to its pickers, through the call's context: the hash key
// that routes a call under consistent hashing, and the set of endpoints a
// hedged call has already tried.
package callinfo

import (
	"context"
	"sync"
)

type hashKeyKey struct{}

// hashKeyCtx carries a hash key. It is context.WithValue made for one
// string: one allocation per call instead of two (WithValue's context and
// the string boxed in an interface), on the path of every keyed call.
type hashKeyCtx struct {
	context.Context
	key string
}

// Value returns the hashKeyCtx itself for hashKeyKey: a pointer, which an
// interface holds without allocating.
func (c *hashKeyCtx) Value(k any) any {
	if _, ok := k.(hashKeyKey); ok {
		return c
	}
	return c.Context.Value(k)
}

// WithHashKey returns a copy of ctx that carries key as the call's hash key.
func WithHashKey(ctx context.Context, key string) context.Context {
	return &hashKeyCtx{Context: ctx, key: key}
}

// HashKey returns the hash key in ctx, and whether there is one.
func HashKey(ctx context.Context) (string, bool) {
	if c, ok := ctx.Value(hashKeyKey{}).(*hashKeyCtx); ok {
		return c.key, true
	}
	return "", false
}

// Attempts records the endpoints the attempts of one call went to, so that
// each further attempt of a hedged call can be sent elsewhere. It is shared
// by the attempts of one call and safe for concurrent use.
type Attempts struct {
	mu    sync.Mutex
	addrs []string
}

// Tried reports whether an attempt of the call already went to addr.
func (a *Attempts) Tried(addr string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, t := range a.addrs {
		if t == addr {
			return true
		}
	}
	return false
}

// Add records that an attempt went to addr.
func (a *Attempts) Add(addr string) {
	a.mu.Lock()
	a.addrs = append(a.addrs, addr)
	a.mu.Unlock()
}

// Addrs returns the endpoints tried so far, in order.
func (a *Attempts) Addrs() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.addrs...)
}

type attemptsKey struct{}

// WithAttempts returns a copy of ctx that carries a.
func WithAttempts(ctx context.Context, a *Attempts) context.Context {
	return context.WithValue(ctx, attemptsKey{}, a)
}

// AttemptsFrom returns the Attempts in ctx, or nil when the call is not
// hedged. Pickers that find one avoid the endpoints it names whenever
// another ready endpoint exists, and Add the endpoint they pick.
func AttemptsFrom(ctx context.Context) *Attempts {
	a, _ := ctx.Value(attemptsKey{}).(*Attempts)
	return a
}

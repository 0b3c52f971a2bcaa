package hedge

import (
	"math"
	"sync/atomic"
)

// tokenUnit is one token in the bucket's fixed-point arithmetic: counting in
// millionths keeps the bucket exact (ten deposits of 0.1 make exactly one
// token, which float64 does not) and lets it live in one atomic integer.
const tokenUnit = 1_000_000

// budget is the token bucket that bounds hedging, like gRPC's retry
// throttling (gRFC A6) turned around: instead of failures draining the
// bucket, extra attempts do.
//
//   - The bucket holds at most burst tokens and starts full.
//   - Every call of a hedged method deposits ratio tokens (capped at burst).
//   - Every extra attempt withdraws one whole token, and is not sent when
//     the bucket holds less than one.
//
// So over any run of n calls, extra attempts ≤ burst + ratio×n: with the
// default ratio of 0.1 and burst of 10, hedging adds at most 10% to the load
// in the long run, plus a burst of 10 extra attempts. One budget is shared
// by all the methods of an Interceptor, as gRPC's throttling is per channel.
type budget struct {
	credit int64 // ratio, in millionths of a token
	max    int64 // burst, in millionths of a token
	tokens atomic.Int64
}

func newBudget(ratio float64, burst int) *budget {
	b := &budget{
		credit: int64(math.Round(ratio * tokenUnit)),
		max:    int64(burst) * tokenUnit,
	}
	b.tokens.Store(b.max)
	return b
}

// deposit adds the credit of one call.
func (b *budget) deposit() {
	for {
		t := b.tokens.Load()
		if t >= b.max {
			return
		}
		if b.tokens.CompareAndSwap(t, min(t+b.credit, b.max)) {
			return
		}
	}
}

// take withdraws one token for an extra attempt, and reports whether there
// was one to take.
func (b *budget) take() bool {
	for {
		t := b.tokens.Load()
		if t < tokenUnit {
			return false
		}
		if b.tokens.CompareAndSwap(t, t-tokenUnit) {
			return true
		}
	}
}

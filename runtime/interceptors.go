package runtime

import (
	"context"

	"google.golang.org/grpc"

	"github.com/lbclient/lbclient/runtime/hedge"
	"github.com/lbclient/lbclient/runtime/internal/callinfo"
)

// WithHashKey returns a copy of ctx that routes the call made with it by
// key under the ConsistentHash policy. Generated methods whose rules have a
// HashKey do this themselves; hand-written calls use it directly. Other
// policies ignore the key.
func WithHashKey(ctx context.Context, key string) context.Context {
	return callinfo.WithHashKey(ctx, key)
}

// markStream tells lbclient's pickers that the call is a stream, whose
// lifetime is no measure of its endpoint's latency (see callinfo.Info).
// It is the first stream interceptor of every Conn.
func markStream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return streamer(callinfo.WithStream(ctx), desc, cc, method, opts...)
}

// hedgedMethods returns the hedging policies of the methods that hedge.
// A hedged method's timeout goes with its policy: it bounds the call, all
// attempts together.
func hedgedMethods(r *ServiceRules) map[string]hedge.Policy {
	var out map[string]hedge.Policy
	for full, m := range r.Methods {
		if hp := m.Hedging; hp != nil {
			if out == nil {
				out = make(map[string]hedge.Policy)
			}
			p := hedgePolicy(hp)
			p.Timeout = m.Timeout
			out[full] = p
		}
	}
	return out
}

// hedgePolicy converts hp to the hedge package's Policy.
func hedgePolicy(hp *HedgingPolicy) hedge.Policy {
	return hedge.Policy{
		MaxAttempts:     hp.MaxAttempts,
		Delay:           hp.Delay,
		DelayPercentile: hp.DelayPercentile,
		NonFatalCodes:   hp.NonFatalCodes,
	}
}

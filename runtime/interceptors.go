package runtime

import (
	"context"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

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

// plaintextHint adds a hint to the error of a call that failed because the
// connection speaks TLS, the default, to a server that speaks plaintext:
// grpc's own message names the TLS record but not the option to use.
func plaintextHint(err error, target string) error {
	s, ok := status.FromError(err)
	if !ok || s.Code() != codes.Unavailable || !strings.Contains(s.Message(), "first record does not look like a TLS handshake") {
		return err
	}
	return status.Errorf(codes.Unavailable, "%s (lbclient: the connection to %s uses TLS, the default, and the server answered in plaintext: dial with runtime.WithInsecure() for a plaintext server)", s.Message(), target)
}

func plaintextHintUnary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	err := invoker(ctx, method, req, reply, cc, opts...)
	if err != nil {
		err = plaintextHint(err, cc.Target())
	}
	return err
}

func plaintextHintStream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	s, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		err = plaintextHint(err, cc.Target())
	}
	return s, err
}

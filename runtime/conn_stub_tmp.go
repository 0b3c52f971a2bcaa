//go:build !lbclientwip

package runtime

import (
	"context"
	"errors"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"time"

	"github.com/lbclient/lbclient/runtime/internal/callinfo"
)

// Option configures Dial.
type Option interface{ apply(*config) }

type config struct{}

// Conn is a client connection.
type Conn struct{ cc *grpc.ClientConn }

// Dial dials target with rules.
func Dial(target string, rules *ServiceRules, opts ...Option) (*Conn, error) {
	return nil, errors.New("not yet")
}

// Invoke implements grpc.ClientConnInterface.
func (c *Conn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	return c.cc.Invoke(ctx, method, args, reply, opts...)
}

// NewStream implements grpc.ClientConnInterface.
func (c *Conn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return c.cc.NewStream(ctx, desc, method, opts...)
}

// Close closes.
func (c *Conn) Close() error { return c.cc.Close() }

// WaitForReady waits.
func (c *Conn) WaitForReady(ctx context.Context) error { return nil }

// EndpointStats is one endpoint.
type EndpointStats struct {
	Addr     string
	State    connectivity.State
	InFlight int64
	Picks    uint64
	Failures uint64
	Latency  time.Duration
}

// Endpoints snapshot.
func (c *Conn) Endpoints() []EndpointStats { return nil }

// WithHashKey returns a copy of ctx carrying key.
func WithHashKey(ctx context.Context, key string) context.Context {
	return callinfo.WithHashKey(ctx, key)
}

// WithInsecure dials without TLS.
func WithInsecure() Option { return nil }

// WithPolicy sets the policy.
func WithPolicy(p Policy) Option { return nil }

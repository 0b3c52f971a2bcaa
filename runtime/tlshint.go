package runtime

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync/atomic"

	"google.golang.org/grpc/credentials"
)

// firstRecordNotTLS is crypto/tls's RecordHeaderError message when the
// server's first bytes are no TLS record: a plaintext server, typically one
// speaking HTTP/2 without TLS.
const firstRecordNotTLS = "first record does not look like a TLS handshake"

// tlsWithHints are the TLS credentials of a Conn that dials with TLS, by
// default or with WithTLS. They add lbclient's hint to the handshake error
// of a server that answers in plaintext, so that every error grpc-go
// builds from it carries the hint: a fail-fast call's, a wait_for_ready
// call's DEADLINE_EXCEEDED ("latest balancer error: ..."), the state the
// balancer reports. They also keep the last handshake error for
// Conn.WaitForReady, whose only word from grpc-go is the state.
type tlsWithHints struct {
	credentials.TransportCredentials
	option string        // how TLS was chosen, for the hint
	log    *handshakeLog // shared by clones
}

// handshakeLog holds the error of the last TLS handshake of a Conn, nil
// once one succeeds.
type handshakeLog struct {
	last atomic.Pointer[error]
}

func (l *handshakeLog) record(err error) {
	if err == nil {
		l.last.Store(nil)
		return
	}
	l.last.Store(&err)
}

// lastError returns the error of the last handshake, nil if it succeeded
// or none was made.
func (l *handshakeLog) lastError() error {
	if l == nil {
		return nil
	}
	if p := l.last.Load(); p != nil {
		return *p
	}
	return nil
}

func newTLSWithHints(creds credentials.TransportCredentials, option string) *tlsWithHints {
	return &tlsWithHints{TransportCredentials: creds, option: option, log: new(handshakeLog)}
}

// ClientHandshake runs the TLS handshake and names WithInsecure when the
// server answered in plaintext.
func (c *tlsWithHints) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info, err := c.TransportCredentials.ClientHandshake(ctx, authority, raw)
	if err != nil {
		var rh tls.RecordHeaderError
		if errors.As(err, &rh) && rh.Msg == firstRecordNotTLS {
			err = &plaintextServerError{err: err, addr: raw.RemoteAddr().String(), option: c.option}
		}
	}
	c.log.record(err)
	return conn, info, err
}

// Clone returns a copy that shares the handshake log.
func (c *tlsWithHints) Clone() credentials.TransportCredentials {
	return &tlsWithHints{TransportCredentials: c.TransportCredentials.Clone(), option: c.option, log: c.log}
}

// plaintextServerError is a TLS handshake error with a server that answered
// in plaintext.
type plaintextServerError struct {
	err    error
	addr   string
	option string
}

func (e *plaintextServerError) Error() string {
	return fmt.Sprintf("%v (lbclient: %s answered in plaintext, and the connection uses TLS (%s): dial with runtime.WithInsecure() for a plaintext server)", e.err, e.addr, e.option)
}

func (e *plaintextServerError) Unwrap() error { return e.err }

package backend

import (
	"fmt"
	"net"
	"sync"
)

// HalfOpen is a TCP listener that accepts connections and never writes a
// byte to them: a peer that is up at the TCP level and dead above it, as a
// process wedged before its server loop, a host whose kernel still answers
// while the application is stuck, or a proxy with no upstream. A gRPC
// client's connection to it stays CONNECTING, its HTTP/2 handshake
// unanswered, until the client gives up on it.
type HalfOpen struct {
	name string
	lis  net.Listener
	done chan struct{} // closed when the accept loop has returned

	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	stopped bool
	once    sync.Once
}

// StartHalfOpen listens on a loopback port (127.0.0.1:0) and holds every
// connection it accepts open, silent, until Stop.
func StartHalfOpen(name string) (*HalfOpen, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("half-open %s: %w", name, err)
	}
	h := &HalfOpen{name: name, lis: lis, done: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	go h.accept()
	return h, nil
}

func (h *HalfOpen) accept() {
	defer close(h.done)
	for {
		c, err := h.lis.Accept()
		if err != nil {
			return // closed by Stop
		}
		h.mu.Lock()
		if h.stopped {
			c.Close()
		} else {
			h.conns[c] = struct{}{}
		}
		h.mu.Unlock()
	}
}

// Name returns the listener's name.
func (h *HalfOpen) Name() string { return h.name }

// Addr returns the address it listens on.
func (h *HalfOpen) Addr() string { return h.lis.Addr().String() }

// Conns returns the number of connections it holds open.
func (h *HalfOpen) Conns() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.conns)
}

// Stop closes the listener and every connection it accepted, and returns
// when its goroutine has ended.
func (h *HalfOpen) Stop() {
	h.once.Do(func() {
		h.mu.Lock()
		h.stopped = true
		for c := range h.conns {
			c.Close()
		}
		clear(h.conns)
		h.mu.Unlock()
		h.lis.Close()
		<-h.done
	})
}

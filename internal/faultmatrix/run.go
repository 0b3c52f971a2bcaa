package faultmatrix

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/connectivity"

	"github.com/lbclient/lbclient/example/backend"
	"github.com/lbclient/lbclient/example/loadgen"
	greeterv1 "github.com/lbclient/lbclient/gen/greeter/v1"
	"github.com/lbclient/lbclient/gen/greeter/v1/greeterv1lbclient"
	"github.com/lbclient/lbclient/runtime"
)

// fleet is a cell's servers: N backends, or N-1 and a half-open listener
// in the last place.
type fleet struct {
	backends []*backend.Backend // the real ones
	half     *backend.HalfOpen
	names    []string
	addrs    []string
}

func startFleet(sc Scenario, cfg Config) (*fleet, error) {
	f := &fleet{}
	for i := range cfg.Backends {
		name := fmt.Sprintf("backend-%d", i+1)
		if sc == HalfOpen && i == cfg.Backends-1 {
			h, err := backend.StartHalfOpen(name)
			if err != nil {
				f.stop()
				return nil, err
			}
			f.half = h
			f.names, f.addrs = append(f.names, name), append(f.addrs, h.Addr())
			continue
		}
		b, err := backend.Start(name, "127.0.0.1:0")
		if err != nil {
			f.stop()
			return nil, err
		}
		b.SetDelay(cfg.Fast)
		f.backends = append(f.backends, b)
		f.names, f.addrs = append(f.names, name), append(f.addrs, b.Addr())
	}
	return f, nil
}

func (f *fleet) stop() {
	for _, b := range f.backends {
		b.Stop()
	}
	if f.half != nil {
		f.half.Stop()
	}
}

// odd is the last backend, nil when it is the half-open listener.
func (f *fleet) odd() *backend.Backend {
	if f.half != nil {
		return nil
	}
	return f.backends[len(f.backends)-1]
}

// Run runs one cell on a fleet and a client of its own, and returns what it
// measured. The client makes no warm-up call: it waits, bounded by
// cfg.ReadyTimeout, until every backend that can be READY is, and starts
// the load.
func Run(ctx context.Context, c Cell, cfg Config) (Outcome, error) {
	f, err := startFleet(c.Scenario, cfg)
	if err != nil {
		return Outcome{}, err
	}
	defer f.stop()
	slow := time.Duration(cfg.SlowFactor) * cfg.Fast
	odd := f.odd()
	switch c.Scenario {
	case Hung:
		odd.SetHung(true)
	case Slow:
		odd.SetDelay(slow)
	case ColdStart:
		odd.SetColdCalls(cfg.ColdCalls, slow)
	case Streams:
		for _, b := range f.backends {
			b.SetStreamInterval(cfg.StreamInterval)
		}
	}

	conn, err := dial(c.Variant, f.addrs)
	if err != nil {
		return Outcome{}, err
	}
	defer conn.Close()
	if err := waitReady(ctx, conn, f, cfg.ReadyTimeout); err != nil {
		return Outcome{}, fmt.Errorf("%s: %w", c, err)
	}
	client := greeterv1lbclient.NewGreeterClientFromConn(conn)

	d := cfg.duration(c.Scenario)
	out := Outcome{Cell: c, Backends: f.names, Duration: d}
	if c.Scenario.HasOdd() {
		out.Odd = f.names[len(f.names)-1]
	}
	var keys []string
	if c.Variant.Keys {
		keys = ZipfKeys(cfg.MaxCalls, cfg.Seed)
	}
	tl := newTimeline(f.names, d, cfg.Bucket)
	req := &greeterv1.HelloRequest{Name: "faultmatrix"}
	call := func(ctx context.Context, i int) (string, error) {
		at := tl.since()
		// The load's context ends at its duration; a call under way then
		// runs to its own deadline, so that the bound loses no call.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.Deadline)
		defer cancel()
		if keys != nil {
			ctx = runtime.WithHashKey(ctx, keys[i%len(keys)])
		}
		r, err := client.SayHello(ctx, req)
		tl.add(at, r.GetBackend(), err)
		return r.GetBackend(), err
	}

	var streams sync.WaitGroup
	sctx, stopStreams := context.WithCancel(ctx)
	var streamed atomic.Int64
	if c.Scenario == Streams {
		for range cfg.Streamers {
			streams.Go(func() { streamed.Add(int64(watchLoop(sctx, client, cfg.StreamCount))) })
		}
	}
	before := conn.Stats().Hedging.ExtraAttempts
	tl.begin()
	switch c.Scenario {
	case HangsMidRun:
		t := time.AfterFunc(d/2, func() { odd.SetHung(true) })
		defer t.Stop()
	case FailsFast:
		t := time.AfterFunc(d/2, func() { odd.SetFailing(true) })
		defer t.Stop()
	}
	load := loadgen.Load{Calls: cfg.MaxCalls, Workers: c.Callers, MaxDuration: d}
	res, err := load.Run(ctx, call)
	stopStreams()
	streams.Wait()
	if err != nil {
		return Outcome{}, err
	}
	out.Result = res
	out.Extra = conn.Stats().Hedging.ExtraAttempts - before
	out.Buckets = tl.buckets
	out.Streams = int(streamed.Load())
	if c.Scenario == ColdStart {
		out.Recovery, out.Recovered = recovery(out)
	}
	return out, nil
}

func dial(v Variant, addrs []string) (*runtime.Conn, error) {
	opts := []runtime.Option{runtime.WithInsecure(), runtime.WithPolicy(v.Policy)}
	if v.Hedge {
		opts = append(opts, runtime.WithMethodRules(greeterv1lbclient.GreeterSayHelloFullMethodName, HedgingRules))
	}
	return runtime.Dial("static:///"+strings.Join(addrs, ","), nil, opts...)
}

// waitReady connects conn and polls its endpoints until every real backend
// of f is READY; the half-open listener never is, and is not waited for.
func waitReady(ctx context.Context, conn *runtime.Conn, f *fleet, bound time.Duration) error {
	want := map[string]bool{}
	for _, b := range f.backends {
		want[b.Addr()] = true
	}
	conn.ClientConn().Connect()
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		ready := 0
		for _, e := range conn.Endpoints() {
			if want[e.Addr] && e.State == connectivity.Ready {
				ready++
			}
		}
		if ready == len(want) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d backends READY after %v: %v", ready, len(want), bound, conn.Endpoints())
		case <-tick.C:
		}
	}
}

// watchLoop opens Watch streams of count messages one after another until
// ctx ends, and returns how many ran to their end.
func watchLoop(ctx context.Context, client *greeterv1lbclient.GreeterClient, count uint32) int {
	done := 0
	for ctx.Err() == nil {
		s, err := client.Watch(ctx, &greeterv1.WatchRequest{Name: "faultmatrix", Count: count})
		for err == nil {
			_, err = s.Recv()
		}
		if errors.Is(err, io.EOF) {
			done++
			continue
		}
		// Not an end: wait a little before the next stream, so that a
		// stream that cannot open does not spin.
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
	return done
}

package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc/connectivity"

	"github.com/lbclient/lbclient/example/backend"
	"github.com/lbclient/lbclient/example/loadgen"
	greeterv1 "github.com/lbclient/lbclient/gen/greeter/v1"
	"github.com/lbclient/lbclient/gen/greeter/v1/greeterv1lbclient"
	"github.com/lbclient/lbclient/runtime"
	"github.com/lbclient/lbclient/runtime/hedge"
)

// Latencies of the backends: every call takes at least this long.
const (
	fastDelay = time.Millisecond
	slowDelay = 10 * fastDelay
)

// startFleet serves n backends on loopback, each taking delay per call.
func startFleet(n int, delay time.Duration) (backend.Fleet, error) {
	f, err := backend.StartFleet(n)
	if err != nil {
		return nil, err
	}
	for _, b := range f {
		b.SetDelay(delay)
	}
	return f, nil
}

// variant is one client configuration of a scenario.
type variant struct {
	name string
	// opts configure the generated client. With rules false, the client
	// is dialled without the annotations' rules (runtime.Dial with nil
	// rules), to show what they are worth.
	opts  []runtime.Option
	rules bool
	// key, when set, gives each call a hash key.
	key func(i int) string
}

// noHedging turns SayHello's hedging off, keeping its other rules.
var noHedging = runtime.WithMethodRules(greeterv1lbclient.GreeterSayHelloFullMethodName, runtime.MethodRules{
	Timeout:      time.Second,
	WaitForReady: true,
})

// client returns a client of v and the function that closes its
// connection.
func (v variant) client(target string) (*greeterv1lbclient.GreeterClient, func() error, error) {
	opts := append([]runtime.Option{runtime.WithInsecure()}, v.opts...)
	if v.rules {
		c, err := greeterv1lbclient.NewGreeterClient(target, opts...)
		if err != nil {
			return nil, nil, err
		}
		return c, c.Close, nil
	}
	conn, err := runtime.Dial(target, nil, opts...)
	if err != nil {
		return nil, nil, err
	}
	// A client from a connection does not own it: close the connection.
	return greeterv1lbclient.NewGreeterClientFromConn(conn), conn.Close, nil
}

// result is one variant's run.
type result struct {
	variant
	loadgen.Result
	hedging hedge.Counters // the client's hedging counters after the load
	calls   int
}

// drive runs a closed-loop load of SayHello calls through a new client of
// v, and closes the client.
func drive(ctx context.Context, f backend.Fleet, v variant, cfg config, between func(int)) (result, error) {
	c, closeConn, err := v.client(f.Target())
	if err != nil {
		return result{}, err
	}
	defer closeConn()
	return driveClient(ctx, c, v, cfg, between)
}

// driveClient runs a closed-loop load of SayHello calls through c.
func driveClient(ctx context.Context, c *greeterv1lbclient.GreeterClient, v variant, cfg config, between func(int)) (result, error) {
	if err := c.Conn().WaitForReady(ctx); err != nil {
		return result{}, err
	}
	load := loadgen.Load{Calls: cfg.calls, Workers: cfg.workers, MaxDuration: cmp.Or(cfg.duration, 2*time.Minute), Between: between}
	res, err := load.Run(ctx, func(ctx context.Context, i int) (string, error) {
		if v.key != nil {
			ctx = runtime.WithHashKey(ctx, v.key(i))
		}
		r, err := c.SayHello(ctx, &greeterv1.HelloRequest{Name: "demo"})
		return r.GetBackend(), err
	})
	return result{variant: v, Result: res, hedging: c.Conn().Stats().Hedging.Counters, calls: cfg.calls}, err
}

func table(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }

func pct(x float64) string { return fmt.Sprintf("%.1f%%", 100*x) }

// spreadScenario: three healthy backends; where do calls go?
func spreadScenario(ctx context.Context, w io.Writer, cfg config) error {
	f, err := startFleet(3, fastDelay)
	if err != nil {
		return err
	}
	defer f.Stop()
	fmt.Fprintf(w, "\n== Spread: 3 healthy backends (%v each) ==\n", fastDelay)
	tw := table(w)
	fmt.Fprintf(tw, "policy\t")
	for _, b := range f {
		fmt.Fprintf(tw, "%s\t", b.Name())
	}
	fmt.Fprintf(tw, "p50\tp99\terrors\t\n")
	for _, p := range []runtime.Policy{runtime.PickFirst, runtime.RoundRobin, runtime.LeastRequest, runtime.PeakEWMA, runtime.ConsistentHash} {
		v := variant{name: p.String(), opts: []runtime.Option{runtime.WithPolicy(p), noHedging}, rules: true}
		if p == runtime.ConsistentHash {
			v.key = func(i int) string { return fmt.Sprint("account-", i%100) }
		}
		r, err := drive(ctx, f, v, cfg, nil)
		if err != nil {
			return err
		}
		fmt.Fprintf(tw, "%s\t", v.name)
		for _, b := range f {
			fmt.Fprintf(tw, "%s\t", pct(r.Share(b.Name())))
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t\n", ms(r.Percentile(50)), ms(r.Percentile(99)), r.Errors)
	}
	return tw.Flush()
}

// skewVariants are the clients compared with one slow backend.
func skewVariants() []variant {
	return []variant{
		{name: "ROUND_ROBIN", opts: []runtime.Option{runtime.WithPolicy(runtime.RoundRobin), noHedging}, rules: true},
		{name: "LEAST_REQUEST", opts: []runtime.Option{runtime.WithPolicy(runtime.LeastRequest), noHedging}, rules: true},
		{name: "PEAK_EWMA", opts: []runtime.Option{runtime.WithPolicy(runtime.PeakEWMA), noHedging}, rules: true},
		{name: "PEAK_EWMA + hedging p97", opts: []runtime.Option{runtime.WithPolicy(runtime.PeakEWMA)}, rules: true},
	}
}

// skewScenario: four backends, one ten times slower.
func skewScenario(ctx context.Context, w io.Writer, cfg config) error {
	f, err := startFleet(4, fastDelay)
	if err != nil {
		return err
	}
	defer f.Stop()
	slow := f[3]
	slow.SetDelay(slowDelay)
	fmt.Fprintf(w, "\n== One slow backend: 4 backends, %s takes %v, the others %v ==\n", slow.Name(), slowDelay, fastDelay)
	tw := table(w)
	fmt.Fprintf(tw, "policy\tp50\tp90\tp99\tp99.9\tto slow\textra calls\terrors\t\n")
	for _, v := range skewVariants() {
		r, err := drive(ctx, f, v, cfg, nil)
		if err != nil {
			return err
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t\n", v.name,
			ms(r.Percentile(50)), ms(r.Percentile(90)), ms(r.Percentile(99)), ms(r.Percentile(99.9)),
			pct(r.Share(slow.Name())), pct(float64(r.hedging.ExtraAttempts)/float64(r.calls)), r.Errors)
	}
	return tw.Flush()
}

// failoverScenario: one of four backends is killed a quarter of the way
// through the load and restarted on the same port halfway through.
func failoverScenario(ctx context.Context, w io.Writer, cfg config) error {
	fmt.Fprintf(w, "\n== Failover: 4 backends, backend-2 killed at call %d, restarted on its port at call %d ==\n", cfg.calls/4, cfg.calls/2)
	tw := table(w)
	fmt.Fprintf(tw, "client\tfailed calls\tp99\tbackend-2 called again\t\n")
	for _, v := range []variant{
		{name: "annotations (retry, wait_for_ready, hedging)", rules: true},
		{name: "no rules", rules: false},
	} {
		fo, err := failoverRun(ctx, v, cfg)
		if err != nil {
			return err
		}
		back := "not within 10s"
		if fo.backAfter > 0 {
			back = fmt.Sprintf("%v after restart", fo.backAfter.Round(time.Millisecond))
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t\n", v.name, fo.Errors, ms(fo.Percentile(99)), back)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "(a restarted backend is called again once grpc's reconnect backoff lets the client reconnect)")
	return nil
}

// failover is the outcome of one failoverRun.
type failover struct {
	result
	// backAfter is how long after its restart the restarted backend got
	// its first call; 0 if it got none within the bound.
	backAfter time.Duration
}

// failoverRun drives one client through the failover: the load, then calls
// until the restarted backend is called again (at most 10s).
func failoverRun(ctx context.Context, v variant, cfg config) (failover, error) {
	f, err := startFleet(4, fastDelay)
	if err != nil {
		return failover{}, err
	}
	defer func() { f.Stop() }()
	victim := f[1]
	addr := victim.Addr()

	// The kill and the restart run beside the load, as in life.
	kill, restart := make(chan struct{}), make(chan struct{})
	between := func(i int) {
		switch i {
		case cfg.calls / 4:
			close(kill)
		case cfg.calls / 2:
			close(restart)
		}
	}
	type restarted struct {
		b   *backend.Backend
		at  time.Time
		err error
	}
	back := make(chan restarted, 1)
	go func() {
		<-kill
		victim.Stop()
		<-restart
		b, err := backend.Start(victim.Name(), addr)
		if err == nil {
			b.SetDelay(fastDelay)
		}
		back <- restarted{b, time.Now(), err}
	}()

	c, closeConn, err := v.client(f.Target())
	if err != nil {
		return failover{}, err
	}
	defer closeConn()
	r, err := driveClient(ctx, c, v, cfg, between)
	if err != nil {
		return failover{}, err
	}
	rb := <-back
	if rb.err != nil {
		return failover{}, rb.err
	}
	f[1] = rb.b
	fo := failover{result: r}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		if rb.b.Calls() > 0 {
			fo.backAfter = time.Since(rb.at)
			break
		}
		c.SayHello(ctx, &greeterv1.HelloRequest{Name: "probe"})
		time.Sleep(time.Millisecond)
	}
	return fo, nil
}

// allReady waits until conn reports n READY endpoints, or ctx ends.
func allReady(ctx context.Context, conn *runtime.Conn, n int) error {
	for {
		ready := 0
		for _, e := range conn.Endpoints() {
			if e.State == connectivity.Ready {
				ready++
			}
		}
		if ready == n {
			return nil
		}
		if err := conn.WaitForReady(ctx); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// affinityScenario: keys stay on their backend, and adding a backend moves
// few of them.
func affinityScenario(ctx context.Context, w io.Writer, cfg config) error {
	f, err := startFleet(5, fastDelay)
	if err != nil {
		return err
	}
	defer f.Stop()
	const keys = 200
	fmt.Fprintf(w, "\n== Key affinity: CONSISTENT_HASH on GreetAccount's hash_key, %d accounts ==\n", keys)
	place := func(f backend.Fleet) (map[string]string, error) {
		c, err := greeterv1lbclient.NewGreeterClient(f.Target(), runtime.WithInsecure(), runtime.WithPolicy(runtime.ConsistentHash))
		if err != nil {
			return nil, err
		}
		defer c.Close()
		// Only READY backends hold keys: a key whose backend is still
		// connecting goes to the next one on the ring meanwhile. Start
		// once every backend is up, as a warmed-up client would.
		if err := allReady(ctx, c.Conn(), len(f)); err != nil {
			return nil, err
		}
		where := map[string]string{}
		for i := range keys {
			id := fmt.Sprintf("acct-%d", i)
			for range 3 { // the same account three times: it must not move
				r, err := c.GreetAccount(ctx, &greeterv1.GreetAccountRequest{Account: &greeterv1.Account{Id: id}})
				if err != nil {
					return nil, err
				}
				if prev, ok := where[id]; ok && prev != r.GetBackend() {
					return nil, fmt.Errorf("account %s moved from %s to %s between calls", id, prev, r.GetBackend())
				}
				where[id] = r.GetBackend()
			}
		}
		return where, nil
	}
	before, err := place(f[:4])
	if err != nil {
		return err
	}
	after, err := place(f)
	if err != nil {
		return err
	}
	moved := 0
	per := map[string]int{}
	for id, b := range before {
		per[b]++
		if after[id] != b {
			moved++
		}
	}
	names := slices.Sorted(maps.Keys(per))
	counts := make([]string, len(names))
	for i, n := range names {
		counts[i] = fmt.Sprintf("%s=%d", n, per[n])
	}
	fmt.Fprintf(w, "accounts per backend (4 backends): %s", strings.Join(counts, " "))
	fmt.Fprintf(w, "\nevery account stayed on one backend over 3 calls; adding a 5th backend moved %d of %d accounts (%s; ideal 1/5 = 20%%)\n", moved, keys, pct(float64(moved)/keys))
	return nil
}

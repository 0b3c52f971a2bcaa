// Package overhead measures what a unary call costs through lbclient's
// runtime, policy by policy, against the plain protoc-gen-go-grpc stub on a
// plain grpc.NewClient with round_robin: same in-memory server (bufconn),
// same payloads, serial and parallel, with testing.Benchmark.
package overhead

import (
	"context"
	"flag"
	"fmt"
	"net"
	goruntime "runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/test/bufconn"

	greeterv1 "github.com/lbclient/lbclient/gen/greeter/v1"
	"github.com/lbclient/lbclient/runtime"
	"github.com/lbclient/lbclient/runtime/hedge"
)

// Target is the address every client dials; the context dialer ignores it
// and connects to the in-memory listener.
const Target = "passthrough:///bufnet"

// Server is an in-memory Greeter that echoes the request's name back.
type Server struct {
	lis *bufconn.Listener
	srv *grpc.Server
}

type echo struct {
	greeterv1.UnimplementedGreeterServer
}

func (echo) SayHello(_ context.Context, in *greeterv1.HelloRequest) (*greeterv1.HelloReply, error) {
	return &greeterv1.HelloReply{Message: in.GetName(), Backend: "bufnet"}, nil
}

// GreetAccount echoes the account's region, which carries the payload.
func (echo) GreetAccount(_ context.Context, in *greeterv1.GreetAccountRequest) (*greeterv1.HelloReply, error) {
	return &greeterv1.HelloReply{Message: in.GetAccount().GetRegion(), Backend: "bufnet"}, nil
}

// StartServer serves the echo Greeter on a bufconn listener.
func StartServer() *Server {
	s := &Server{lis: bufconn.Listen(1 << 20), srv: grpc.NewServer()}
	greeterv1.RegisterGreeterServer(s.srv, echo{})
	hs := health.NewServer()
	hs.SetServingStatus(greeterv1.Greeter_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(s.srv, hs)
	go s.srv.Serve(s.lis)
	return s
}

// Stop stops the server.
func (s *Server) Stop() { s.srv.Stop() }

// DialOption connects a client to the server.
func (s *Server) DialOption() grpc.DialOption {
	return grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
		return s.lis.DialContext(ctx)
	})
}

// Client is one way of calling the server.
type Client struct {
	Greeter Greeter
	// Method is the method called: SayHello (the default, "") or
	// GreetAccount.
	Method string
	// Ctx, when set, prepares each call's context (a hash key).
	Ctx func(context.Context) context.Context
	// Hedging, when set, returns the counters of the client's hedging
	// interceptor.
	Hedging func() hedge.Counters
	Close   func()
}

// The methods a Client may call.
const (
	SayHello     = "SayHello"
	GreetAccount = "GreetAccount"
)

// Variant is a named client configuration.
type Variant struct {
	Name string
	// Baseline marks a plain grpc stub that others are compared with.
	Baseline bool
	// Base names the baseline this variant's ratios are paired with; ""
	// means the first variant of the list.
	Base string
	Dial func(s *Server) (Client, error)
}

// Request is a call's request with a payload of n bytes: the name of a
// HelloRequest, or the region of a GreetAccountRequest's account (whose id,
// the hash key of GreetAccount, is fixed).
type Request struct {
	hello   *greeterv1.HelloRequest
	account *greeterv1.GreetAccountRequest
}

// NewRequest returns the requests of both methods with a payload of n bytes.
func NewRequest(n int) Request {
	p := strings.Repeat("x", n)
	return Request{
		hello:   &greeterv1.HelloRequest{Name: p},
		account: &greeterv1.GreetAccountRequest{Account: &greeterv1.Account{Id: "account-42", Region: p}},
	}
}

// Call makes one call of cl's method and returns the length of the echoed
// payload.
func (cl Client) Call(req Request) (int, error) {
	ctx := context.Background()
	if cl.Ctx != nil {
		ctx = cl.Ctx(ctx)
	}
	var (
		r   *greeterv1.HelloReply
		err error
	)
	if cl.Method == GreetAccount {
		r, err = cl.Greeter.GreetAccount(ctx, req.account)
	} else {
		r, err = cl.Greeter.SayHello(ctx, req.hello)
	}
	return len(r.GetMessage()), err
}

// roundRobin is the service config of the plain client.
const roundRobin = `{"loadBalancingConfig":[{"round_robin":{}}]}`

// PlainStub is protoc-gen-go-grpc's stub on grpc.NewClient with round_robin.
func PlainStub() Variant {
	return Variant{Name: "grpc stub, round_robin", Baseline: true, Dial: func(s *Server) (Client, error) {
		cc, err := grpc.NewClient(Target, s.DialOption(),
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultServiceConfig(roundRobin))
		if err != nil {
			return Client{}, err
		}
		return Client{Greeter: greeterv1.NewGreeterClient(cc), Close: func() { cc.Close() }}, nil
	}}
}

// Wrap turns a runtime.Conn into the client that calls through it. The
// default is protoc-gen-go-grpc's stub on the Conn; the lbclient-generated
// client can be put in its place.
type Wrap func(*runtime.Conn) Greeter

// Greeter is the methods the benchmarks call, which protoc-gen-go-grpc's
// stub and the lbclient-generated client both have.
type Greeter interface {
	SayHello(ctx context.Context, in *greeterv1.HelloRequest, opts ...grpc.CallOption) (*greeterv1.HelloReply, error)
	GreetAccount(ctx context.Context, in *greeterv1.GreetAccountRequest, opts ...grpc.CallOption) (*greeterv1.HelloReply, error)
}

// StubOnConn is protoc-gen-go-grpc's stub calling through a runtime.Conn.
func StubOnConn(c *runtime.Conn) Greeter { return greeterv1.NewGreeterClient(c) }

// Lbclient is runtime.Dial with policy p (no rules), called through wrap.
// ConsistentHash calls carry a hash key, set per call as generated code does.
func Lbclient(name string, target string, p runtime.Policy, wrap Wrap) Variant {
	return Variant{Name: name, Dial: func(s *Server) (Client, error) {
		conn, err := runtime.Dial(target, nil, runtime.WithInsecure(), runtime.WithPolicy(p),
			runtime.WithDialOptions(s.DialOption()))
		if err != nil {
			return Client{}, err
		}
		c := Client{Greeter: wrap(conn), Close: func() { conn.Close() }}
		if p == runtime.ConsistentHash {
			c.Ctx = func(ctx context.Context) context.Context { return runtime.WithHashKey(ctx, "account-42") }
		}
		return c, nil
	}}
}

// Policies are the lbclient policies measured.
var Policies = []runtime.Policy{runtime.PickFirst, runtime.RoundRobin, runtime.LeastRequest, runtime.PeakEWMA, runtime.ConsistentHash}

// Variants are the plain stub and one lbclient client per policy, calling
// through wrap.
func Variants(wrap Wrap) []Variant {
	vs := []Variant{PlainStub()}
	for _, p := range Policies {
		vs = append(vs, Lbclient("lbclient "+p.String(), Target, p, wrap))
	}
	return vs
}

// Case is one payload and concurrency.
type Case struct {
	Name     string
	Payload  int  // bytes of the request's name (or account's region), echoed back
	Parallel bool // b.RunParallel with 4 goroutines per core
}

// Cases are the payload × concurrency combinations.
var Cases = []Case{
	{Name: "small, serial", Payload: 16},
	{Name: "small, parallel", Payload: 16, Parallel: true},
	{Name: "64 KiB, serial", Payload: 64 << 10},
	{Name: "64 KiB, parallel", Payload: 64 << 10, Parallel: true},
}

// Bench returns the benchmark function of c through cl.
func Bench(c Case, cl Client) func(b *testing.B) {
	req := NewRequest(c.Payload)
	call := func(b *testing.B) {
		n, err := cl.Call(req)
		if err != nil {
			b.Fatal(err)
		}
		if n != c.Payload {
			b.Fatalf("reply of %d bytes, want %d", n, c.Payload)
		}
	}
	return func(b *testing.B) {
		b.ReportAllocs()
		if c.Parallel {
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					call(b)
				}
			})
			return
		}
		for b.Loop() {
			call(b)
		}
	}
}

// SetBenchTime sets testing.Benchmark's target time per benchmark.
func SetBenchTime(d time.Duration) {
	if flag.Lookup("test.benchtime") == nil {
		testing.Init()
	}
	if err := flag.Set("test.benchtime", d.String()); err != nil {
		panic(err)
	}
}

// Sample is one benchmark run.
type Sample struct {
	NsPerOp, BytesPerOp, AllocsPerOp float64
}

// Results holds the samples by case name, then variant name.
type Results map[string]map[string][]Sample

// Run measures every variant in every case, runs times, interleaved: each
// round runs every case and variant once, in an order rotated from round to
// round, so that drift of the machine spreads over all of them. Each
// measurement dials its own client and warms it up outside the timing.
func Run(s *Server, variants []Variant, cases []Case, runs int, progress func(string)) (Results, error) {
	res := Results{}
	for r := range runs {
		for _, c := range cases {
			if res[c.Name] == nil {
				res[c.Name] = map[string][]Sample{}
			}
			for i := range variants {
				v := variants[(i+r)%len(variants)]
				sm, err := Measure(s, v, c)
				if err != nil {
					return nil, fmt.Errorf("%s, %s: %w", v.Name, c.Name, err)
				}
				res[c.Name][v.Name] = append(res[c.Name][v.Name], sm)
			}
			if progress != nil {
				progress(fmt.Sprintf("overhead: round %d/%d, %s", r+1, runs, c.Name))
			}
		}
	}
	return res, nil
}

// Measure runs one benchmark of v in case c.
func Measure(s *Server, v Variant, c Case) (Sample, error) {
	cl, err := v.Dial(s)
	if err != nil {
		return Sample{}, err
	}
	defer cl.Close()
	// Warm up: connect, and let pickers see a few calls.
	warm := NewRequest(4)
	for range 100 {
		if _, err := cl.Call(warm); err != nil {
			return Sample{}, err
		}
	}
	br := testing.Benchmark(Bench(c, cl))
	if br.N == 0 {
		return Sample{}, fmt.Errorf("benchmark failed")
	}
	return Sample{
		NsPerOp:     float64(br.T.Nanoseconds()) / float64(br.N),
		BytesPerOp:  float64(br.MemBytes) / float64(br.N),
		AllocsPerOp: float64(br.MemAllocs) / float64(br.N),
	}, nil
}

// Blocks measures the variants' ns/op in case c by fine interleaving: every
// client is dialled once, then blocks rounds each run calls calls through
// every client in turn (order rotated per round). It returns, per variant,
// the ns/op of each round, so that ratios can be paired round by round: a
// burst of load from elsewhere on the machine spoils a round or two, not a
// whole client's figure.
func Blocks(s *Server, variants []Variant, c Case, blocks, calls int) (map[string][]float64, error) {
	wall, _, err := BlocksThen(s, variants, c, blocks, calls, nil)
	return wall, err
}

// BlocksThen is Blocks, and then calls after, when not nil, with each
// variant's name and client before the clients are closed. Besides the
// wall-clock ns/op of each round it returns the process's CPU time per call
// (user and system, every thread: the client's work, the in-memory server's
// and the garbage collector's), which does not count time spent waiting for
// a core while other processes run.
func BlocksThen(s *Server, variants []Variant, c Case, blocks, calls int, after func(name string, cl Client)) (wall, cpu map[string][]float64, err error) {
	clients := make([]Client, len(variants))
	for i, v := range variants {
		cl, err := v.Dial(s)
		if err != nil {
			return nil, nil, err
		}
		defer cl.Close()
		clients[i] = cl
	}
	req := NewRequest(c.Payload)
	one := func(cl Client) error {
		_, err := cl.Call(req)
		return err
	}
	run := func(cl Client, n int) error {
		if !c.Parallel {
			for range n {
				if err := one(cl); err != nil {
					return err
				}
			}
			return nil
		}
		workers := 4 * goruntime.GOMAXPROCS(0)
		errs := make(chan error, workers)
		for w := range workers {
			go func() {
				var err error
				for i := w; i < n && err == nil; i += workers {
					err = one(cl)
				}
				errs <- err
			}()
		}
		var first error
		for range workers {
			if err := <-errs; err != nil && first == nil {
				first = err
			}
		}
		return first
	}
	for _, cl := range clients {
		if err := run(cl, 100); err != nil {
			return nil, nil, err
		}
	}
	out, cpu := map[string][]float64{}, map[string][]float64{}
	for b := range blocks {
		for i := range variants {
			k := (i + b) % len(variants)
			c0, t0 := cpuTime(), time.Now()
			if err := run(clients[k], calls); err != nil {
				return nil, nil, fmt.Errorf("%s: %w", variants[k].Name, err)
			}
			out[variants[k].Name] = append(out[variants[k].Name], float64(time.Since(t0).Nanoseconds())/float64(calls))
			cpu[variants[k].Name] = append(cpu[variants[k].Name], float64(cpuTime()-c0)/float64(calls))
		}
	}
	if after != nil {
		for i, v := range variants {
			after(v.Name, clients[i])
		}
	}
	return out, cpu, nil
}

// cpuTime is the CPU time the process has used, user and system, in ns.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

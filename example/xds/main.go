// Command xds runs the generated Greeter client on xds:///greeter against an
// xDS control plane and four backends, all on 127.0.0.1 in this one
// process, and prints where the calls go as the control plane changes the
// cluster's load-balancing policy and the endpoints' weights: ROUND_ROBIN,
// PEAK_EWMA, EDS weights 1:1:3:3, CONSISTENT_HASH, and one account's calls
// from one caller.
// The client is not redialled: every change reaches it over xDS.
//
//	go -C example/xds run .
//
// The control plane is go-control-plane's ADS server (package
// runtime/xds/xdstest). A real program needs only the import of
// github.com/lbclient/lbclient/runtime/xds and a bootstrap in
// GRPC_XDS_BOOTSTRAP; this one gives its client the bootstrap of its own
// control plane with xds.WithBootstrap.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clusterpb "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"

	"github.com/lbclient/lbclient/example/backend"
	greeterv1 "github.com/lbclient/lbclient/gen/greeter/v1"
	"github.com/lbclient/lbclient/gen/greeter/v1/greeterv1lbclient"
	"github.com/lbclient/lbclient/runtime"
	"github.com/lbclient/lbclient/runtime/balancer/consistenthash"
	"github.com/lbclient/lbclient/runtime/balancer/peakewma"
	"github.com/lbclient/lbclient/runtime/xds"
	"github.com/lbclient/lbclient/runtime/xds/xdstest"
)

func main() {
	calls := flag.Int("calls", 4000, "calls per step")
	workers := flag.Int("workers", 8, "concurrent callers (closed loop)")
	flag.Parse()
	if err := run(os.Stdout, *calls, *workers); err != nil {
		log.Fatal(err)
	}
}

// step is one change of the control plane and the calls made after it.
type step struct {
	name    string
	policy  func() (*clusterpb.LoadBalancingPolicy, error) // nil: lb_policy ROUND_ROBIN
	weights []uint32                                       // nil: unweighted
	account string                                         // "": an account per call
	serial  bool                                           // one caller, not workers
}

var steps = []step{
	{name: "ROUND_ROBIN (lb_policy)"},
	{name: "PEAK_EWMA", policy: peakEWMA},
	{name: "PEAK_EWMA, EDS weights 1:1:3:3", policy: peakEWMA, weights: []uint32{1, 1, 3, 3}},
	{name: "CONSISTENT_HASH, weights 1:1:3:3", policy: consistentHash, weights: []uint32{1, 1, 3, 3}},
	{name: "CONSISTENT_HASH, one account", policy: consistentHash, weights: []uint32{1, 1, 3, 3}, account: "acct-7", serial: true},
}

func peakEWMA() (*clusterpb.LoadBalancingPolicy, error) {
	return xds.LoadBalancingPolicy(peakewma.Name, `{"decayWindow":"2s"}`)
}

func consistentHash() (*clusterpb.LoadBalancingPolicy, error) {
	return xds.LoadBalancingPolicy(consistenthash.Name, `{"balanceFactor":1.5}`)
}

func run(w io.Writer, calls, workers int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	fleet, err := backend.StartFleet(4)
	if err != nil {
		return err
	}
	defer fleet.Stop()
	for _, b := range fleet {
		b.SetDelay(time.Millisecond)
	}
	cp, err := xdstest.Start()
	if err != nil {
		return err
	}
	defer cp.Close()

	svc := xdstest.Service{Name: "greeter"}
	if err := configure(ctx, cp, &svc, fleet, steps[0]); err != nil {
		return err
	}
	bootstrap, err := xds.WithBootstrap(cp.Bootstrap())
	if err != nil {
		return err
	}
	client, err := greeterv1lbclient.NewGreeterClient("xds:///greeter", bootstrap, runtime.WithInsecure())
	if err != nil {
		return err
	}
	defer client.Close()
	if err := client.Conn().WaitForReady(ctx); err != nil {
		return err
	}
	fmt.Fprintf(w, "control plane on %s, 4 backends, the Greeter client on xds:///greeter; %d GreetAccount calls per step from %d callers\n\n", cp.Addr(), calls, workers)

	failed := 0
	for i, s := range steps {
		if i > 0 {
			if err := configure(ctx, cp, &svc, fleet, s); err != nil {
				return err
			}
		}
		callers := workers
		if s.serial {
			// One caller: with many at once, the bounded load sends a
			// hot account's excess to the next endpoints on the ring.
			callers = 1
		}
		n, f := drive(ctx, client, s, calls, callers)
		failed += f
		fmt.Fprintf(w, "%-34s %s\n", s.name, shares(fleet, n))
	}
	fmt.Fprintf(w, "\n%d calls failed\n", failed)
	return nil
}

// configure gives the control plane step s's policy and weights.
func configure(ctx context.Context, cp *xdstest.Server, svc *xdstest.Service, fleet backend.Fleet, s step) error {
	svc.Policy = nil
	if s.policy != nil {
		p, err := s.policy()
		if err != nil {
			return err
		}
		svc.Policy = p
	}
	eps := make([]xdstest.Endpoint, len(fleet))
	for i, b := range fleet {
		eps[i] = xdstest.Endpoint{Addr: b.Addr()}
		if s.weights != nil {
			eps[i].Weight = s.weights[i]
		}
	}
	svc.Localities = []xdstest.Locality{{Zone: "z1", Endpoints: eps}}
	return cp.Set(ctx, *svc)
}

// drive makes calls GreetAccount calls from workers callers and returns
// how many each backend answered, by name, and how many failed.
func drive(ctx context.Context, client *greeterv1lbclient.GreeterClient, s step, calls, workers int) (map[string]int, int) {
	var (
		next   atomic.Int64
		mu     sync.Mutex
		counts = map[string]int{}
		failed int
		wg     sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for {
				n := next.Add(1)
				if n > int64(calls) {
					return
				}
				account := s.account
				if account == "" {
					account = fmt.Sprintf("acct-%d", n)
				}
				r, err := client.GreetAccount(ctx, &greeterv1.GreetAccountRequest{Account: &greeterv1.Account{Id: account}})
				mu.Lock()
				if err != nil {
					failed++
				} else {
					counts[r.GetBackend()]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return counts, failed
}

// shares prints each backend's share of counts.
func shares(fleet backend.Fleet, counts map[string]int) string {
	total := 0
	for _, n := range counts {
		total += n
	}
	names := make([]string, 0, len(fleet))
	for _, b := range fleet {
		names = append(names, b.Name())
	}
	slices.Sort(names)
	var sb strings.Builder
	for _, name := range names {
		fmt.Fprintf(&sb, "  %s %3.0f%%", name, 100*float64(counts[name])/float64(max(total, 1)))
	}
	return sb.String()
}

// Package discovery measures how lbclient's connections follow a fleet
// that changes: a backend added to, or removed from, a file:/// target or
// a DNS name (lbclient's refresh, on a real DNS server on loopback) under
// a closed loop of calls through the generated client with the example's
// rules; and how weights from the file split calls.
package discovery

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lbclient/lbclient/example/backend"
	greeterv1 "github.com/lbclient/lbclient/gen/greeter/v1"
	"github.com/lbclient/lbclient/gen/greeter/v1/greeterv1lbclient"
	"github.com/lbclient/lbclient/internal/closedloop"
	"github.com/lbclient/lbclient/internal/dnstest"
	"github.com/lbclient/lbclient/runtime"
)

// DNSRefresh is the DNS refresh of the runs: the shortest allowed.
const DNSRefresh = runtime.MinDNSRefresh

// Change is one run: a fleet of three, a fourth added under load, then
// one of the first three removed.
type Change struct {
	Source string // "file" or "dns"
	Policy runtime.Policy
	// FirstCall is how long after the change the added backend answered
	// its first call; Share is its share of the calls in the second that
	// starts a second after that, × 4 (1 is its fair share).
	FirstCall time.Duration
	Share     float64
	// Dropped is how long after the change the connection stopped listing
	// the removed backend; LateCalls is how many calls it answered that
	// started after that.
	Dropped   time.Duration
	LateCalls int64
	// Calls and Failed count the whole run's calls.
	Calls, Failed int64
}

// source is a way of telling a connection about the fleet.
type source interface {
	target() string
	set(bs []*backend.Backend) error
	close()
}

type fileSource struct{ dir, path string }

func newFileSource() (*fileSource, error) {
	dir, err := os.MkdirTemp("", "lbclient-discovery-")
	if err != nil {
		return nil, err
	}
	return &fileSource{dir: dir, path: filepath.Join(dir, "fleet.json")}, nil
}

func (s *fileSource) target() string { return "file://" + s.path }
func (s *fileSource) close()         { os.RemoveAll(s.dir) }

func (s *fileSource) set(bs []*backend.Backend) error { return WriteFleet(s.path, bs, nil) }

// WriteFleet writes the file resolver's JSON listing bs, with weights[i]
// for bs[i] when weights is not nil, to a temporary file renamed over
// path, as configuration tools do.
func WriteFleet(path string, bs []*backend.Backend, weights []uint32) error {
	type entry struct {
		Address string `json:"address"`
		Weight  uint32 `json:"weight,omitempty"`
	}
	var doc struct {
		Endpoints []entry `json:"endpoints"`
	}
	for i, b := range bs {
		e := entry{Address: b.Addr()}
		if weights != nil {
			e.Weight = weights[i]
		}
		doc.Endpoints = append(doc.Endpoints, e)
	}
	data, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	if err := os.WriteFile(path+".tmp", data, 0o644); err != nil {
		return err
	}
	return os.Rename(path+".tmp", path)
}

type dnsSource struct {
	srv  *dnstest.Server
	port string
}

func (s *dnsSource) target() string { return s.srv.Target("fleet.test", s.port) }
func (s *dnsSource) close()         { s.srv.Close() }

func (s *dnsSource) set(bs []*backend.Backend) error {
	var ips []string
	for _, b := range bs {
		host, _, err := net.SplitHostPort(b.Addr())
		if err != nil {
			return err
		}
		ips = append(ips, host)
	}
	s.srv.Set("fleet.test", ips...)
	return nil
}

// RunChange runs one Change over source ("file" or "dns") with policy p
// and workers closed-loop callers.
func RunChange(ctx context.Context, src string, p runtime.Policy, workers int) (Change, error) {
	res := Change{Source: src, Policy: p}
	var (
		fleet backend.Fleet
		s     source
		err   error
	)
	switch src {
	case "file":
		fleet, err = backend.StartFleet(4)
		if err != nil {
			return res, err
		}
		fs, err := newFileSource()
		if err != nil {
			fleet.Stop()
			return res, err
		}
		s = fs
	case "dns":
		var port string
		fleet, port, err = dnstest.LoopbackFleet(4)
		if err != nil {
			return res, err
		}
		srv, err := dnstest.Start()
		if err != nil {
			fleet.Stop()
			return res, err
		}
		s = &dnsSource{srv: srv, port: port}
	default:
		return res, fmt.Errorf("discovery: unknown source %q", src)
	}
	defer fleet.Stop()
	defer s.close()
	for _, b := range fleet {
		b.SetDelay(time.Millisecond)
	}
	if err := s.set(fleet[:3]); err != nil {
		return res, err
	}
	c, err := greeterv1lbclient.NewGreeterClient(s.target(), runtime.WithInsecure(), runtime.WithPolicy(p), runtime.WithDNSRefresh(DNSRefresh))
	if err != nil {
		return res, err
	}
	defer c.Close()
	if err := c.Conn().WaitForReady(ctx); err != nil {
		return res, err
	}
	l := startLoad(c, workers)
	defer l.Stop()
	time.Sleep(time.Second)

	added := fleet[3]
	changed := time.Now()
	if err := s.set(fleet); err != nil {
		return res, err
	}
	if !poll(DNSRefresh+10*time.Second, func() bool { return added.Calls() > 0 }) {
		return res, fmt.Errorf("%s, %v: the added backend got no call", src, p)
	}
	res.FirstCall = time.Since(changed)
	time.Sleep(time.Second)
	before := calls(fleet)
	time.Sleep(time.Second)
	after := calls(fleet)
	var total int64
	for i := range fleet {
		total += after[i] - before[i]
	}
	res.Share = float64(after[3]-before[3]) / float64(total) * 4

	removed := fleet[0]
	changed = time.Now()
	if err := s.set(fleet[1:]); err != nil {
		return res, err
	}
	if !poll(DNSRefresh+10*time.Second, func() bool { return !lists(c.Conn(), removed.Addr()) }) {
		return res, fmt.Errorf("%s, %v: the removed backend stayed listed", src, p)
	}
	res.Dropped = time.Since(changed)
	// Calls picked just before the drop may reach it after: wait for the
	// ones under way, then count what came later.
	time.Sleep(100 * time.Millisecond)
	seen := removed.Calls()
	time.Sleep(time.Second)
	res.LateCalls = removed.Calls() - seen
	res.Calls, res.Failed, _ = l.Stop()
	return res, nil
}

// lists reports whether conn has an endpoint at addr.
func lists(conn *runtime.Conn, addr string) bool {
	for _, e := range conn.Endpoints() {
		if e.Addr == addr {
			return true
		}
	}
	return false
}

func calls(f backend.Fleet) []int64 {
	out := make([]int64, len(f))
	for i, b := range f {
		out[i] = b.Calls()
	}
	return out
}

// poll checks cond every millisecond until it holds or limit passes.
func poll(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(time.Millisecond)
	}
	return cond()
}

// startLoad runs a closed loop of SayHello calls, for up to two minutes or
// until its Stop.
func startLoad(c *greeterv1lbclient.GreeterClient, workers int) *closedloop.Load {
	return closedloop.Start(workers, 2*time.Minute, func(int, int64) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := c.SayHello(ctx, &greeterv1.HelloRequest{Name: "discovery"})
		return err
	})
}

// Split is one weighted run: two equal backends of weights 1 and 3 in the
// file, and the share of calls the heavy one took.
type Split struct {
	Policy  runtime.Policy
	Workers int
	Heavy   float64 // goal 0.75
	Calls   int64
	Failed  int64
}

// RunSplit runs calls calls from workers callers under p over a file of
// two backends weighted 1 and 3: GreetAccount calls, each for one of 1000
// accounts (its hash key, which ConsistentHash routes by, on its default
// ring of 160 virtual nodes per unit of weight; other policies ignore it).
func RunSplit(ctx context.Context, p runtime.Policy, workers int, calls int) (Split, error) {
	res := Split{Policy: p, Workers: workers}
	fleet, err := backend.StartFleet(2)
	if err != nil {
		return res, err
	}
	defer fleet.Stop()
	for _, b := range fleet {
		b.SetDelay(time.Millisecond)
	}
	fs, err := newFileSource()
	if err != nil {
		return res, err
	}
	defer fs.close()
	if err := WriteFleet(fs.path, fleet, []uint32{1, 3}); err != nil {
		return res, err
	}
	c, err := greeterv1lbclient.NewGreeterClient(fs.target(), runtime.WithInsecure(), runtime.WithPolicy(p))
	if err != nil {
		return res, err
	}
	defer c.Close()
	if err := c.Conn().WaitForReady(ctx); err != nil {
		return res, err
	}
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(calls) {
					return
				}
				cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				_, err := c.GreetAccount(cctx, &greeterv1.GreetAccountRequest{Account: &greeterv1.Account{Id: "account-" + strconv.FormatInt(i%1000, 10)}})
				cancel()
				if err != nil {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	light, heavy := fleet[0].Calls(), fleet[1].Calls()
	res.Heavy = float64(heavy) / float64(light+heavy)
	res.Calls, res.Failed = int64(calls), failed.Load()
	return res, nil
}

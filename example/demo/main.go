// Command demo shows lbclient's policies side by side on local backends:
// how calls spread, what one slow backend does to tail latency under each
// policy, what hedging buys, and how calls survive a backend that dies and
// comes back. Every backend is a real gRPC server on 127.0.0.1, called
// through the client that protoc-gen-go-lbclient generated from
// example/proto/greeter/v1/greeter.proto. Every load is bounded in calls and
// time.
//
//	go run ./example/demo
//
// With -debug it serves lbclient's live debug page (runtime/lbdebug) while
// it runs, and prints its URL: open it to watch each client's endpoints,
// their share of the calls and their latency as the scenarios go.
//
//	go run ./example/demo -debug 127.0.0.1:8080 -scenarios skew -calls 40000
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/lbclient/lbclient/runtime/lbdebug"
)

// scenario is one section of the demo.
type scenario struct {
	name string
	run  func(context.Context, io.Writer, config) error
}

// scenarios are the demo's scenarios by name, in the order they run.
var scenarios = []scenario{
	{"spread", spreadScenario},
	{"skew", skewScenario},
	{"failover", failoverScenario},
	{"affinity", affinityScenario},
	{"fleet", fleetScenario},
}

func main() {
	calls := flag.Int("calls", 4000, "calls per policy in each scenario")
	workers := flag.Int("workers", 8, "concurrent callers (closed loop)")
	debug := flag.String("debug", "", "serve the live debug page on this address (host:port) while the demo runs")
	only := flag.String("scenarios", "", "comma-separated scenarios to run (spread, skew, failover, affinity, fleet); all when empty")
	flag.Parse()
	cfg := config{calls: *calls, workers: *workers}
	if *only != "" {
		cfg.only = strings.Split(*only, ",")
	}
	if *debug != "" {
		url, stop, err := serveDebug(*debug)
		if err != nil {
			log.Fatal(err)
		}
		defer stop()
		fmt.Printf("debug page: %s\n", url)
	}
	if err := run(os.Stdout, cfg); err != nil {
		log.Fatal(err)
	}
}

// config sizes the demo's loads and chooses its scenarios.
type config struct {
	calls   int
	workers int
	// duration, when set, bounds each load in time (2 minutes
	// otherwise): the fleet scenario runs on a timeline, not a count.
	duration time.Duration
	only     []string // scenario names; nil for all
}

func run(w io.Writer, cfg config) error {
	for _, name := range cfg.only {
		if !slices.ContainsFunc(scenarios, func(s scenario) bool { return s.name == name }) {
			return fmt.Errorf("demo: -scenarios: unknown scenario %q (want spread, skew, failover, affinity or fleet)", name)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	fmt.Fprintf(w, "lbclient demo: %d calls per run, %d concurrent callers, backends on 127.0.0.1\n", cfg.calls, cfg.workers)
	for _, s := range scenarios {
		if cfg.only != nil && !slices.Contains(cfg.only, s.name) {
			continue
		}
		if err := s.run(ctx, w, cfg); err != nil {
			return err
		}
	}
	return nil
}

// debugPath is where the demo mounts the debug page.
const debugPath = "/debug/lbclient/"

// serveDebug serves the debug page on addr and returns its URL and the
// function that stops serving.
func serveDebug(addr string) (url string, stop func(), err error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("demo: -debug %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle(debugPath, lbdebug.Handler())
	mux.Handle("/{$}", http.RedirectHandler(debugPath, http.StatusFound))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
			log.Printf("demo: debug page: %v", err)
		}
	}()
	return "http://" + lis.Addr().String() + debugPath, func() {
		srv.Close()
		<-done
	}, nil
}

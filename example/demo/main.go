// Command demo shows lbclient's policies side by side on local backends:
// how calls spread, what one slow backend does to tail latency under each
// policy, what hedging buys, and how calls survive a backend that dies and
// comes back. Every backend is a real gRPC server on 127.0.0.1, called
// through the client that protoc-gen-go-lbclient generated from
// example/proto/greeter/v1/greeter.proto. Every load is bounded in calls and
// time.
//
//	go run ./example/demo
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"time"
)

func main() {
	calls := flag.Int("calls", 4000, "calls per policy in each scenario")
	workers := flag.Int("workers", 8, "concurrent callers (closed loop)")
	flag.Parse()
	if err := run(os.Stdout, config{calls: *calls, workers: *workers}); err != nil {
		log.Fatal(err)
	}
}

// config sizes the demo's loads.
type config struct {
	calls   int
	workers int
	// duration, when set, bounds each load in time (2 minutes
	// otherwise): the fleet scenario runs on a timeline, not a count.
	duration time.Duration
}

func run(w io.Writer, cfg config) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	fmt.Fprintf(w, "lbclient demo: %d calls per run, %d concurrent callers, backends on 127.0.0.1\n", cfg.calls, cfg.workers)
	for _, s := range []func(context.Context, io.Writer, config) error{spreadScenario, skewScenario, failoverScenario, affinityScenario, fleetScenario} {
		if err := s(ctx, w, cfg); err != nil {
			return err
		}
	}
	return nil
}

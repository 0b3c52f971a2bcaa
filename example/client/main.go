// Command client calls the example's Greeter backends through the client
// that protoc-gen-go-lbclient generated, once per kind of method, and shows
// where the calls went.
//
//	go run ./example/server &
//	go run ./example/client -target static:///127.0.0.1:8001,127.0.0.1:8002,127.0.0.1:8003
//
// With -metrics it exports the connection's metrics (grpc-go's and
// lbclient's) with OpenTelemetry's stdout exporter, as JSON on standard
// output: every -metrics-interval, once after its calls (while the
// connection is open, so with each endpoint's latency estimate), and once
// more when it exits.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"time"

	"go.opentelemetry.io/otel/exporters/stdout/stdoutmetric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	greeterv1 "github.com/lbclient/lbclient/gen/greeter/v1"
	"github.com/lbclient/lbclient/gen/greeter/v1/greeterv1lbclient"
	"github.com/lbclient/lbclient/runtime"
)

func main() {
	target := flag.String("target", "static:///127.0.0.1:8001,127.0.0.1:8002,127.0.0.1:8003", "where the backends are")
	calls := flag.Int("calls", 12, "how many SayHello calls to make")
	metrics := flag.Bool("metrics", false, "export the connection's metrics to standard output with OpenTelemetry's stdout exporter")
	interval := flag.Duration("metrics-interval", 10*time.Second, "with -metrics, how often to export")
	flag.Parse()
	var out io.Writer
	if *metrics {
		out = os.Stdout
	}
	if err := run(*target, *calls, out, *interval); err != nil {
		log.Fatal(err)
	}
}

// run makes the calls; with metrics not nil it exports the metrics there
// every interval and when it is done.
func run(target string, calls int, metrics io.Writer, interval time.Duration) (err error) {
	// The annotations in greeter.proto chose PEAK_EWMA, retries, hedging
	// and health checking; the example servers speak plaintext.
	opts := []runtime.Option{runtime.WithInsecure()}
	var mp *sdkmetric.MeterProvider
	if metrics != nil {
		exp, err := stdoutmetric.New(stdoutmetric.WithWriter(metrics), stdoutmetric.WithPrettyPrint())
		if err != nil {
			return fmt.Errorf("stdout metrics exporter: %w", err)
		}
		mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp, sdkmetric.WithInterval(interval))))
		// Shut down after the client has closed (deferred calls run last
		// first): the last export then holds the final counts.
		defer func() {
			if serr := mp.Shutdown(context.Background()); serr != nil && err == nil {
				err = fmt.Errorf("exporting metrics: %w", serr)
			}
		}()
		opts = append(opts, runtime.WithMeterProvider(mp))
	}
	client, err := greeterv1lbclient.NewGreeterClient(target, opts...)
	if err != nil {
		return err
	}
	defer client.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := client.Conn().WaitForReady(ctx); err != nil {
		return err
	}

	for i := range calls {
		r, err := client.SayHello(ctx, &greeterv1.HelloRequest{Name: fmt.Sprintf("caller %d", i)})
		if err != nil {
			return err
		}
		fmt.Printf("SayHello      → %-10s %s\n", r.GetBackend(), r.GetMessage())
	}
	for _, id := range []string{"acct-1", "acct-2", "acct-1"} {
		r, err := client.GreetAccount(ctx, &greeterv1.GreetAccountRequest{Account: &greeterv1.Account{Id: id}})
		if err != nil {
			return err
		}
		fmt.Printf("GreetAccount  → %-10s %s\n", r.GetBackend(), r.GetMessage())
	}

	watch, err := client.Watch(ctx, &greeterv1.WatchRequest{Name: "watcher", Count: 3})
	if err != nil {
		return err
	}
	for {
		r, err := watch.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		fmt.Printf("Watch         → %-10s %s\n", r.GetBackend(), r.GetMessage())
	}

	up, err := client.Upload(ctx)
	if err != nil {
		return err
	}
	for _, n := range []string{"ann", "bob", "cy"} {
		if err := up.Send(&greeterv1.HelloRequest{Name: n}); err != nil {
			return err
		}
	}
	sum, err := up.CloseAndRecv()
	if err != nil {
		return err
	}
	fmt.Printf("Upload        → %d names\n", sum.GetCount())

	fmt.Println("\nendpoint               state   picks  failures  latency")
	for _, e := range client.Conn().Endpoints() {
		fmt.Printf("%-22s %-7s %5d  %8d  %v\n", e.Addr, e.State, e.Picks, e.Failures, e.Latency.Round(time.Microsecond))
	}
	if mp != nil {
		if err := mp.ForceFlush(ctx); err != nil {
			return fmt.Errorf("exporting metrics: %w", err)
		}
	}
	return nil
}

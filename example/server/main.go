// Command server runs the example's Greeter backends on loopback, with
// grpc's health service, until interrupted.
//
//	go run ./example/server -addrs 127.0.0.1:8001,127.0.0.1:8002,127.0.0.1:8003
//	go run ./example/client -target static:///127.0.0.1:8001,127.0.0.1:8002,127.0.0.1:8003
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/lbclient/lbclient/example/backend"
)

func main() {
	addrs := flag.String("addrs", "127.0.0.1:8001,127.0.0.1:8002,127.0.0.1:8003", "comma-separated addresses to serve on, one backend each")
	delay := flag.Duration("delay", time.Millisecond, "latency added to every unary call")
	slow := flag.Duration("slow", 0, "latency of the last backend instead of -delay (0: same as the others)")
	flag.Parse()

	list := strings.Split(*addrs, ",")
	var bs []*backend.Backend
	for i, a := range list {
		b, err := backend.Start(fmt.Sprintf("backend-%d", i+1), strings.TrimSpace(a))
		if err != nil {
			log.Fatal(err)
		}
		b.SetDelay(*delay)
		if *slow > 0 && i == len(list)-1 {
			b.SetDelay(*slow)
		}
		bs = append(bs, b)
		log.Printf("%s serving greeter.v1.Greeter on %s", b.Name(), b.Addr())
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	<-stop
	for _, b := range bs {
		b.Stop()
	}
}

package hedge_test

import (
	"fmt"
	"log"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/lbclient/lbclient/runtime/hedge"
)

func ExampleNew() {
	hi, err := hedge.New(map[string]hedge.Policy{
		// Up to 3 attempts, each after the 95th percentile of recent latency.
		"/greeter.v1.Greeter/SayHello": {MaxAttempts: 3, DelayPercentile: 95},
		// Up to 2 attempts, 50ms apart; UNAVAILABLE lets the other go on.
		"/greeter.v1.Greeter/Lookup": {MaxAttempts: 2, Delay: 50 * time.Millisecond,
			NonFatalCodes: []codes.Code{codes.Unavailable}},
	}, hedge.WithBudget(0.05, 20))
	if err != nil {
		log.Fatal(err)
	}
	cc, err := grpc.NewClient("dns:///greeter.internal:8080",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithChainUnaryInterceptor(hi.UnaryClientInterceptor()))
	if err != nil {
		log.Fatal(err)
	}
	defer cc.Close()

	// Before any latency is known, the adaptive delay is the fallback.
	s := hi.Stats()
	fmt.Println(s.Methods["/greeter.v1.Greeter/SayHello"].Delay, s.Methods["/greeter.v1.Greeter/Lookup"].Delay)
	// Output: 100ms 50ms
}

func ExamplePolicy_Validate() {
	p := hedge.Policy{MaxAttempts: 3, Delay: 20 * time.Millisecond, DelayPercentile: 95}
	fmt.Println(p.Validate())
	// Output: hedge: Delay is 20ms and DelayPercentile is 95, want only one of them
}

package main

import (
	"github.com/lbclient/lbclient/bench/internal/overhead"
	"github.com/lbclient/lbclient/gen/greeter/v1/greeterv1lbclient"
	"github.com/lbclient/lbclient/runtime"
)

// generatedVariants are the clients that call through the lbclient-generated
// package: the default policy on a rule-less Conn (the generated method's
// own cost), and NewGreeterClient with every rule of the annotations
// (SayHello hedged at p97, timeouts, retries, health checking).
func generatedVariants() []overhead.Variant {
	return []overhead.Variant{
		overhead.Lbclient("generated client, PEAK_EWMA", overhead.Target, runtime.PeakEWMA,
			func(c *runtime.Conn) overhead.Greeter { return greeterv1lbclient.NewGreeterClientFromConn(c) }),
		{Name: "generated client, annotations' rules", Dial: func(s *overhead.Server) (overhead.Client, error) {
			c, err := greeterv1lbclient.NewGreeterClient(overhead.Target, runtime.WithInsecure(),
				runtime.WithDialOptions(s.DialOption()))
			if err != nil {
				return overhead.Client{}, err
			}
			return overhead.Client{Greeter: c, Close: func() { c.Close() }}, nil
		}},
	}
}

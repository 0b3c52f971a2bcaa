// Package runtime is the dial-and-pick pipeline behind the clients that
// protoc-gen-go-lbclient generates, and a small API for hand-written callers.
//
// Dial builds on grpc.NewClient. It turns ServiceRules — the annotations of a
// .proto service, or rules written in Go — and the options into grpc-go's
// own machinery: a load-balancing policy in the service config (grpc-go's
// pick_first, round_robin, least_request and weighted_round_robin, or
// lbclient's peak-EWMA and consistent-hash balancers), per-method timeouts,
// wait-for-ready, retries and retry throttling in the service config,
// client-side health checking, and lbclient's hedging interceptor, which
// grpc-go does not implement.
//
//	conn, err := runtime.Dial("static:///127.0.0.1:8001,127.0.0.1:8002", nil,
//		runtime.WithInsecure(),
//		runtime.WithPolicy(runtime.PeakEWMA),
//		runtime.WithMethodRules("/greeter.v1.Greeter/SayHello", runtime.MethodRules{
//			Timeout: time.Second,
//		}),
//	)
//
// Options win over rules: every annotation has an option of the same
// meaning. Connections are secure by default: with no credentials option
// they use TLS with the system's roots; plaintext takes WithInsecure. When
// a TLS connection meets a server that answers in plaintext, the errors
// say so and name WithInsecure: those of calls, fail-fast or
// wait-for-ready, and that of Conn.WaitForReady.
//
// Targets are everything grpc-go resolves ("dns:///host:443", "unix:path",
// "passthrough:///addr", "xds:///name" once github.com/lbclient/lbclient/runtime/xds
// or grpc's xds package is imported) and lbclient's
// "static:///host1:port,host2:port" and "file:///abs/path.json", a JSON list
// of endpoints that is watched as it changes (see package
// runtime/resolver/file); "etcd:///prefix" comes with its module
// (runtime/resolver/etcd). On an xds:/// target the control plane picks the
// policy and the route decides retries; the rules' timeouts, wait-for-ready,
// hedging and hash keys still apply (see package runtime/xds).
package runtime

package generator

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/pluginpb"

	lbclientv1 "github.com/lbclient/lbclient/gen/lbclient/v1"
	"github.com/lbclient/lbclient/runtime"
)

// checkedFile is the base of the validation cases.
const checkedFile = "lbtest/validation/v1/checked.proto"

// editor changes the annotations of the base's service lbtest.validation.v1.Checked.
type editor struct {
	t    *testing.T
	file *descriptorpb.FileDescriptorProto
	svc  *descriptorpb.ServiceDescriptorProto
}

// service sets the (lbclient.v1.service) annotation.
func (e editor) service(r *lbclientv1.ServiceRules) {
	if e.svc.Options == nil {
		e.svc.Options = new(descriptorpb.ServiceOptions)
	}
	proto.SetExtension(e.svc.Options, lbclientv1.E_Service, r)
}

// method sets the (lbclient.v1.method) annotation of the named method.
func (e editor) method(name string, r *lbclientv1.MethodRules) {
	m := e.find(name)
	if m.Options == nil {
		m.Options = new(descriptorpb.MethodOptions)
	}
	proto.SetExtension(m.Options, lbclientv1.E_Method, r)
}

func (e editor) find(name string) *descriptorpb.MethodDescriptorProto {
	for _, m := range e.svc.GetMethod() {
		if m.GetName() == name {
			return m
		}
	}
	e.t.Fatalf("no method %s", name)
	return nil
}

func checkedRequest(t *testing.T, params string, edit func(editor)) *pluginpb.CodeGeneratorRequest {
	req := request(t, []string{checkedFile}, params)
	for _, f := range req.GetProtoFile() {
		if f.GetName() == checkedFile {
			edit(editor{t: t, file: f, svc: f.GetService()[0]})
		}
	}
	return req
}

// validRetry returns a valid retry policy for cases to break.
func validRetry() *lbclientv1.RetryPolicy {
	return &lbclientv1.RetryPolicy{
		MaxAttempts: 3, InitialBackoff: "10ms", MaxBackoff: "1s", BackoffMultiplier: 2,
		RetryableCodes: []string{"UNAVAILABLE"},
	}
}

func validHedging() *lbclientv1.HedgingPolicy {
	return &lbclientv1.HedgingPolicy{MaxAttempts: 2, Delay: "p95"}
}

func withRetry(f func(*lbclientv1.RetryPolicy)) *lbclientv1.MethodRules {
	r := validRetry()
	f(r)
	return &lbclientv1.MethodRules{Retry: r}
}

func withHedging(f func(*lbclientv1.HedgingPolicy)) *lbclientv1.MethodRules {
	h := validHedging()
	f(h)
	return &lbclientv1.MethodRules{Hedging: h}
}

// TestValidation has one case per validation rule: the base file with one
// annotation changed must fail with exactly the message given.
func TestValidation(t *testing.T) {
	// The annotations the cases add have no source info: each error is at
	// the declaration of its service or method (line:column in checked.proto).
	const (
		svc     = checkedFile + ":9:1: service lbtest.validation.v1.Checked: "
		unary   = checkedFile + ":10:3: method lbtest.validation.v1.Checked.Unary: "
		plain   = checkedFile + ":13:3: method lbtest.validation.v1.Checked.Plain: "
		sstream = checkedFile + ":14:3: method lbtest.validation.v1.Checked.ServerStream: "
		cstream = checkedFile + ":17:3: method lbtest.validation.v1.Checked.ClientStream: "
		bidi    = checkedFile + ":18:3: method lbtest.validation.v1.Checked.Bidi: "
	)
	onUnary := func(r *lbclientv1.MethodRules) func(editor) {
		return func(e editor) { e.method("Unary", r) }
	}
	onService := func(r *lbclientv1.ServiceRules) func(editor) {
		return func(e editor) { e.service(r) }
	}
	hashKey := func(method, key string) func(editor) {
		return func(e editor) { e.method(method, &lbclientv1.MethodRules{HashKey: key}) }
	}
	tests := []struct {
		name   string
		params string
		edit   func(editor)
		want   string
	}{
		{"timeout invalid", "", onUnary(&lbclientv1.MethodRules{Timeout: "5q"}),
			unary + `(lbclient.v1.method).timeout: invalid duration "5q"`},
		{"timeout zero", "", onUnary(&lbclientv1.MethodRules{Timeout: "0s"}),
			unary + `(lbclient.v1.method).timeout: duration "0s" is not greater than zero`},
		{"timeout negative", "", onUnary(&lbclientv1.MethodRules{Timeout: "-1s"}),
			unary + `(lbclient.v1.method).timeout: duration "-1s" is not greater than zero`},
		{"retry unknown code", "", onUnary(withRetry(func(r *lbclientv1.RetryPolicy) { r.RetryableCodes = []string{"UNAVAILBLE"} })),
			unary + `(lbclient.v1.method).retry.retryable_codes: unknown status code "UNAVAILBLE"`},
		{"retry lower-case code", "", onUnary(withRetry(func(r *lbclientv1.RetryPolicy) { r.RetryableCodes = []string{"unavailable"} })),
			unary + `(lbclient.v1.method).retry.retryable_codes: unknown status code "unavailable"`},
		{"hedging code OK", "", onUnary(withHedging(func(h *lbclientv1.HedgingPolicy) { h.NonFatalCodes = []string{"OK"} })),
			unary + `(lbclient.v1.method).hedging.non_fatal_codes: status code "OK" is not a failure`},
		{"retry attempts low", "", onUnary(withRetry(func(r *lbclientv1.RetryPolicy) { r.MaxAttempts = 1 })),
			unary + `(lbclient.v1.method).retry.max_attempts: "1" is outside [2, 5]`},
		{"retry attempts unset", "", onUnary(withRetry(func(r *lbclientv1.RetryPolicy) { r.MaxAttempts = 0 })),
			unary + `(lbclient.v1.method).retry.max_attempts: "0" is outside [2, 5]`},
		{"hedging attempts high", "", onUnary(withHedging(func(h *lbclientv1.HedgingPolicy) { h.MaxAttempts = 6 })),
			unary + `(lbclient.v1.method).hedging.max_attempts: "6" is outside [2, 5]`},
		{"retry backoff multiplier zero", "", onUnary(withRetry(func(r *lbclientv1.RetryPolicy) { r.BackoffMultiplier = 0 })),
			unary + `(lbclient.v1.method).retry.backoff_multiplier: "0" is not a finite number greater than zero`},
		{"retry backoff multiplier infinite", "", onUnary(withRetry(func(r *lbclientv1.RetryPolicy) { r.BackoffMultiplier = math.Inf(1) })),
			unary + `(lbclient.v1.method).retry.backoff_multiplier: "+Inf" is not a finite number greater than zero`},
		{"retry codes empty", "", onUnary(withRetry(func(r *lbclientv1.RetryPolicy) { r.RetryableCodes = nil })),
			unary + `(lbclient.v1.method).retry.retryable_codes: empty: name at least one status code, such as "UNAVAILABLE"`},
		{"retry initial backoff missing", "", onUnary(withRetry(func(r *lbclientv1.RetryPolicy) { r.InitialBackoff = "" })),
			unary + `(lbclient.v1.method).retry.initial_backoff: missing: want a duration such as "100ms"`},
		{"retry initial backoff above max", "", onUnary(withRetry(func(r *lbclientv1.RetryPolicy) { r.InitialBackoff, r.MaxBackoff = "2s", "500ms" })),
			unary + `(lbclient.v1.method).retry.initial_backoff: "2s" is greater than max_backoff "500ms"`},
		{"retry max backoff invalid", "", onUnary(withRetry(func(r *lbclientv1.RetryPolicy) { r.MaxBackoff = "1x" })),
			unary + `(lbclient.v1.method).retry.max_backoff: invalid duration "1x"`},
		{"retry and hedging", "", onUnary(&lbclientv1.MethodRules{Retry: validRetry(), Hedging: validHedging()}),
			unary + `(lbclient.v1.method): retry and hedging are both set: a method retries or hedges, not both`},
		{"hedging not idempotent", "", func(e editor) { e.method("Plain", &lbclientv1.MethodRules{Hedging: validHedging()}) },
			plain + `(lbclient.v1.method).hedging: hedging needs idempotency_level IDEMPOTENT or NO_SIDE_EFFECTS, and the method's is "IDEMPOTENCY_UNKNOWN"`},
		{"hedging streaming", "", func(e editor) { e.method("ServerStream", &lbclientv1.MethodRules{Hedging: validHedging()}) },
			sstream + `(lbclient.v1.method).hedging: hedging is only for unary methods, and ServerStream is server-streaming`},
		{"hedging delay invalid", "", onUnary(withHedging(func(h *lbclientv1.HedgingPolicy) { h.Delay = "5q" })),
			unary + `(lbclient.v1.method).hedging.delay: invalid duration "5q"`},
		{"hedging delay zero", "", onUnary(withHedging(func(h *lbclientv1.HedgingPolicy) { h.Delay = "0ms" })),
			unary + `(lbclient.v1.method).hedging.delay: duration "0ms" is not greater than zero`},
		{"hedging delay missing", "", onUnary(withHedging(func(h *lbclientv1.HedgingPolicy) { h.Delay = "" })),
			unary + `(lbclient.v1.method).hedging.delay: missing: want a duration such as "50ms" or a percentile such as "p95"`},
		{"hedging percentile 100", "", onUnary(withHedging(func(h *lbclientv1.HedgingPolicy) { h.Delay = "p100" })),
			unary + `(lbclient.v1.method).hedging.delay: invalid percentile "p100": want p1 to p99.9, such as "p95"`},
		{"hedging percentile 0", "", onUnary(withHedging(func(h *lbclientv1.HedgingPolicy) { h.Delay = "p0" })),
			unary + `(lbclient.v1.method).hedging.delay: invalid percentile "p0": want p1 to p99.9, such as "p95"`},
		{"hedging percentile two decimals", "", onUnary(withHedging(func(h *lbclientv1.HedgingPolicy) { h.Delay = "p99.95" })),
			unary + `(lbclient.v1.method).hedging.delay: invalid percentile "p99.95": want p1 to p99.9, such as "p95"`},
		{"hash key missing field", "", hashKey("Unary", "nope"),
			unary + `(lbclient.v1.method).hash_key: "nope": lbtest.validation.v1.Request has no field "nope"`},
		{"hash key missing nested field", "", hashKey("Unary", "inner.nope"),
			unary + `(lbclient.v1.method).hash_key: "inner.nope": lbtest.validation.v1.Inner has no field "nope"`},
		{"hash key through scalar", "", hashKey("Unary", "id.key"),
			unary + `(lbclient.v1.method).hash_key: "id.key": field "id" of lbtest.validation.v1.Request is not a message`},
		{"hash key ends on message", "", hashKey("Unary", "inner"),
			unary + `(lbclient.v1.method).hash_key: "inner": field "inner" of lbtest.validation.v1.Request is a message: name a scalar field inside it`},
		{"hash key through repeated", "", hashKey("Unary", "inners.key"),
			unary + `(lbclient.v1.method).hash_key: "inners.key": field "inners" of lbtest.validation.v1.Request is repeated`},
		{"hash key ends on repeated", "", hashKey("Unary", "tags"),
			unary + `(lbclient.v1.method).hash_key: "tags": field "tags" of lbtest.validation.v1.Request is repeated`},
		{"hash key ends on map", "", hashKey("Unary", "labels"),
			unary + `(lbclient.v1.method).hash_key: "labels": field "labels" of lbtest.validation.v1.Request is a map`},
		{"hash key malformed", "", hashKey("Unary", "inner..key"),
			unary + `(lbclient.v1.method).hash_key: "inner..key" is not a dotted path of field names`},
		{"hash key client streaming", "", hashKey("ClientStream", "id"),
			cstream + `(lbclient.v1.method).hash_key: "id" on a client-streaming method: a hash key is read from the one request of a unary or server-streaming method`},
		{"hash key bidi streaming", "", hashKey("Bidi", "id"),
			bidi + `(lbclient.v1.method).hash_key: "id" on a bidi-streaming method: a hash key is read from the one request of a unary or server-streaming method`},
		{"policy unknown", "", onService(&lbclientv1.ServiceRules{Policy: 9}),
			svc + `(lbclient.v1.service).policy: unknown policy "9"`},
		{"default target invalid", "", onService(&lbclientv1.ServiceRules{DefaultTarget: "dns://%zz/"}),
			svc + `(lbclient.v1.service).default_target: invalid target "dns://%zz/": not a URL: parse "dns://%zz/": invalid URL escape "%zz"`},
		{"default target control character", "", onService(&lbclientv1.ServiceRules{DefaultTarget: "host\n:443"}),
			svc + `(lbclient.v1.service).default_target: invalid target "host\n:443": not a URL: parse "host\n:443": net/url: invalid control character in URL`},
		{"default target not a host", "", onService(&lbclientv1.ServiceRules{DefaultTarget: "not a target"}),
			svc + `(lbclient.v1.service).default_target: invalid target "not a target": "not a target" is not a valid host name`},
		{"default target static without port", "", onService(&lbclientv1.ServiceRules{DefaultTarget: "static:///nohostport"}),
			svc + `(lbclient.v1.service).default_target: invalid target "static:///nohostport": address "nohostport": want host:port`},
		{"default target static empty", "", onService(&lbclientv1.ServiceRules{DefaultTarget: "static:///"}),
			svc + `(lbclient.v1.service).default_target: invalid target "static:///": no addresses: write them as static:///host1:port,host2:port`},
		{"default target DNS without host", "", onService(&lbclientv1.ServiceRules{DefaultTarget: "dns:///"}),
			svc + `(lbclient.v1.service).default_target: invalid target "dns:///": no host name: write dns:///host:port`},
		{"dns refresh invalid", "", onService(&lbclientv1.ServiceRules{DnsRefresh: "30"}),
			svc + `(lbclient.v1.service).dns_refresh: invalid duration "30"`},
		{"dns refresh short", "", onService(&lbclientv1.ServiceRules{DnsRefresh: "999ms"}),
			svc + `(lbclient.v1.service).dns_refresh: "999ms" is outside [1s, 1h]`},
		{"dns refresh long", "", onService(&lbclientv1.ServiceRules{DnsRefresh: "61m"}),
			svc + `(lbclient.v1.service).dns_refresh: "61m" is outside [1s, 1h]`},
		{"dns refresh zero", "", onService(&lbclientv1.ServiceRules{DnsRefresh: "0s"}),
			svc + `(lbclient.v1.service).dns_refresh: "0s" is outside [1s, 1h]: refresh is turned off in code, with runtime.WithDNSRefresh(-1)`},
		{"dns refresh negative", "", onService(&lbclientv1.ServiceRules{DnsRefresh: "-1s"}),
			svc + `(lbclient.v1.service).dns_refresh: "-1s" is outside [1s, 1h]: refresh is turned off in code, with runtime.WithDNSRefresh(-1)`},
		{"subset size high", "", onService(&lbclientv1.ServiceRules{SubsetSize: 10001}),
			svc + `(lbclient.v1.service).subset_size: "10001" is outside [1, 10000]`},
		{"retry throttling tokens zero", "", onService(&lbclientv1.ServiceRules{RetryThrottling: &lbclientv1.RetryThrottling{MaxTokens: 0, TokenRatio: 1}}),
			svc + `(lbclient.v1.service).retry_throttling.max_tokens: "0" is outside [1, 1000]`},
		{"retry throttling tokens high", "", onService(&lbclientv1.ServiceRules{RetryThrottling: &lbclientv1.RetryThrottling{MaxTokens: 1001, TokenRatio: 1}}),
			svc + `(lbclient.v1.service).retry_throttling.max_tokens: "1001" is outside [1, 1000]`},
		{"retry throttling ratio zero", "", onService(&lbclientv1.ServiceRules{RetryThrottling: &lbclientv1.RetryThrottling{MaxTokens: 10}}),
			svc + `(lbclient.v1.service).retry_throttling.token_ratio: "0" is not a finite number greater than zero`},
		{"retry throttling ratio NaN", "", onService(&lbclientv1.ServiceRules{RetryThrottling: &lbclientv1.RetryThrottling{MaxTokens: 10, TokenRatio: math.NaN()}}),
			svc + `(lbclient.v1.service).retry_throttling.token_ratio: "NaN" is not a finite number greater than zero`},
		{"defaults timeout invalid", "", onService(&lbclientv1.ServiceRules{Defaults: &lbclientv1.MethodRules{Timeout: "soon"}}),
			svc + `(lbclient.v1.service).defaults.timeout: invalid duration "soon"`},
		{"defaults hedging", "", onService(&lbclientv1.ServiceRules{Defaults: &lbclientv1.MethodRules{Hedging: validHedging()}}),
			svc + `(lbclient.v1.service).defaults.hedging: hedging is only for idempotent unary methods: set it on each such method`},
		{"defaults retry and hedging", "", onService(&lbclientv1.ServiceRules{Defaults: &lbclientv1.MethodRules{Retry: validRetry(), Hedging: validHedging()}}),
			svc + `(lbclient.v1.service).defaults: retry and hedging are both set: a method retries or hedges, not both` + "\n" +
				svc + `(lbclient.v1.service).defaults.hedging: hedging is only for idempotent unary methods: set it on each such method`},
		{"defaults hash key malformed", "", onService(&lbclientv1.ServiceRules{Defaults: &lbclientv1.MethodRules{HashKey: ".id"}}),
			svc + `(lbclient.v1.service).defaults.hash_key: ".id" is not a dotted path of field names`},
		{"defaults hash key missing in each method with one request", "", onService(&lbclientv1.ServiceRules{Defaults: &lbclientv1.MethodRules{HashKey: "inner.nope"}}),
			unary + `(lbclient.v1.service).defaults.hash_key: "inner.nope": lbtest.validation.v1.Inner has no field "nope"` + "\n" +
				plain + `(lbclient.v1.service).defaults.hash_key: "inner.nope": lbtest.validation.v1.Inner has no field "nope"` + "\n" +
				sstream + `(lbclient.v1.service).defaults.hash_key: "inner.nope": lbtest.validation.v1.Inner has no field "nope"`},
		{"method Go names clash", "", func(e editor) {
			e.svc.Method = append(e.svc.Method, &descriptorpb.MethodDescriptorProto{
				Name: proto.String("unary"), InputType: proto.String(".lbtest.validation.v1.Request"), OutputType: proto.String(".lbtest.validation.v1.Reply"),
			})
		}, svc + `methods "Unary", "unary" all have the Go name "Unary": rename all but one`},
		{"package suffix invalid", "package_suffix=x-y", func(editor) {},
			`invalid package_suffix "x-y": want letters, digits and underscores`},
		{"package suffix empty", "package_suffix=", func(editor) {},
			`invalid package_suffix "": want letters, digits and underscores`},
		{"every error, in order", "", func(e editor) {
			e.service(&lbclientv1.ServiceRules{Policy: 7, Defaults: &lbclientv1.MethodRules{Timeout: "x"}})
			e.method("Bidi", &lbclientv1.MethodRules{HashKey: "id", Timeout: "0s"})
			e.method("Unary", &lbclientv1.MethodRules{Hedging: &lbclientv1.HedgingPolicy{MaxAttempts: 9, Delay: "p"}})
		}, svc + `(lbclient.v1.service).policy: unknown policy "7"` + "\n" +
			svc + `(lbclient.v1.service).defaults.timeout: invalid duration "x"` + "\n" +
			unary + `(lbclient.v1.method).hedging.max_attempts: "9" is outside [2, 5]` + "\n" +
			unary + `(lbclient.v1.method).hedging.delay: invalid percentile "p": want p1 to p99.9, such as "p95"` + "\n" +
			bidi + `(lbclient.v1.method).timeout: duration "0s" is not greater than zero` + "\n" +
			bidi + `(lbclient.v1.method).hash_key: "id" on a bidi-streaming method: a hash key is read from the one request of a unary or server-streaming method`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := runPlugin(checkedRequest(t, tt.params, tt.edit))
			if diff := cmp.Diff(tt.want, resp.GetError()); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			if resp.GetError() != "" && len(resp.GetFile()) != 0 {
				t.Errorf("files generated despite the error")
			}
		})
	}
}

// TestValidationAccepts checks rules at the edges of what is valid.
func TestValidationAccepts(t *testing.T) {
	tests := []struct {
		name string
		edit func(editor)
	}{
		{"percentile with a decimal", func(e editor) {
			e.method("Unary", withHedging(func(h *lbclientv1.HedgingPolicy) { h.Delay = "p99.9" }))
		}},
		{"percentile 1", func(e editor) { e.method("Unary", withHedging(func(h *lbclientv1.HedgingPolicy) { h.Delay = "p1" })) }},
		{"bounds of attempts", func(e editor) {
			e.method("Unary", withHedging(func(h *lbclientv1.HedgingPolicy) { h.MaxAttempts = 5 }))
			e.method("Plain", withRetry(func(r *lbclientv1.RetryPolicy) { r.MaxAttempts = 2 }))
		}},
		{"bare host:port target", func(e editor) { e.service(&lbclientv1.ServiceRules{DefaultTarget: "localhost:50051"}) }},
		{"subset size 1", func(e editor) { e.service(&lbclientv1.ServiceRules{SubsetSize: 1}) }},
		{"subset size 10000", func(e editor) { e.service(&lbclientv1.ServiceRules{SubsetSize: 10000}) }},
		{"unix target", func(e editor) { e.service(&lbclientv1.ServiceRules{DefaultTarget: "unix:///tmp/sock"}) }},
		{"static target", func(e editor) {
			e.service(&lbclientv1.ServiceRules{DefaultTarget: "static:///10.0.0.1:8443,[::1]:8443,greeter-2.internal:8443"})
		}},
		{"DNS target with authority", func(e editor) {
			e.service(&lbclientv1.ServiceRules{DefaultTarget: "dns://8.8.8.8/greeter.internal:8443"})
		}},
		{"target of a scheme registered at run time", func(e editor) {
			e.service(&lbclientv1.ServiceRules{DefaultTarget: "consul:///greeter"})
		}},
		{"retry on streams", func(e editor) { e.method("Bidi", &lbclientv1.MethodRules{Retry: validRetry()}) }},
		{"defaults hash key skips streaming requests", func(e editor) {
			e.service(&lbclientv1.ServiceRules{Defaults: &lbclientv1.MethodRules{HashKey: "inner.key"}})
		}},
		{"method hedging replaces defaults retry", func(e editor) {
			e.service(&lbclientv1.ServiceRules{Defaults: &lbclientv1.MethodRules{Retry: validRetry()}})
			e.method("Unary", &lbclientv1.MethodRules{Hedging: validHedging()})
		}},
		{"dns refresh lower bound", func(e editor) { e.service(&lbclientv1.ServiceRules{DnsRefresh: "1s"}) }},
		{"dns refresh upper bound", func(e editor) { e.service(&lbclientv1.ServiceRules{DnsRefresh: "60m"}) }},
		{"throttling bounds", func(e editor) {
			e.service(&lbclientv1.ServiceRules{RetryThrottling: &lbclientv1.RetryThrottling{MaxTokens: 1000, TokenRatio: 0.001}})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := runPlugin(checkedRequest(t, "", tt.edit))
			if resp.GetError() != "" {
				t.Fatalf("unexpected error: %s", resp.GetError())
			}
			if len(resp.GetFile()) != 1 {
				t.Fatalf("got %d files, want 1", len(resp.GetFile()))
			}
		})
	}
}

// TestDNSRefreshBoundsMatchTheRuntime: the generator accepts the intervals
// that Dial accepts, no more and no less, and its messages ("[1s, 1h]")
// give those bounds.
func TestDNSRefreshBoundsMatchTheRuntime(t *testing.T) {
	if minDNSRefresh != runtime.MinDNSRefresh || maxDNSRefresh != runtime.MaxDNSRefresh {
		t.Errorf("generator bounds [%v, %v], runtime bounds [%v, %v]", minDNSRefresh, maxDNSRefresh, runtime.MinDNSRefresh, runtime.MaxDNSRefresh)
	}
	if minDNSRefresh != time.Second || maxDNSRefresh != time.Hour {
		t.Errorf("the messages say [1s, 1h], the bounds are [%v, %v]", minDNSRefresh, maxDNSRefresh)
	}
}

// TestDuplicateCodesCountOnce: status code lists are sets, as in grpc's
// service config; a code given twice is accepted and generated once.
func TestDuplicateCodesCountOnce(t *testing.T) {
	resp := runPlugin(checkedRequest(t, "", func(e editor) {
		e.method("Unary", withHedging(func(h *lbclientv1.HedgingPolicy) {
			h.NonFatalCodes = []string{"INTERNAL", "INTERNAL"}
		}))
		e.method("Plain", withRetry(func(r *lbclientv1.RetryPolicy) {
			r.RetryableCodes = []string{"UNAVAILABLE", "ABORTED", "UNAVAILABLE"}
		}))
	}))
	if resp.GetError() != "" {
		t.Fatalf("duplicate codes refused: %s", resp.GetError())
	}
	if len(resp.GetFile()) != 1 {
		t.Fatalf("got %d files, want 1", len(resp.GetFile()))
	}
	for _, want := range []string{
		"RetryableCodes:    []codes.Code{codes.Unavailable, codes.Aborted},",
		"NonFatalCodes:   []codes.Code{codes.Internal},",
	} {
		if !strings.Contains(resp.GetFile()[0].GetContent(), want) {
			t.Errorf("generated rules lack %q:\n%s", want, resp.GetFile()[0].GetContent())
		}
	}
}

// TestDefaultsTimeoutSkipsStreamedReplies: the defaults' timeout reaches
// unary and client-streaming methods; server-streaming and bidi methods
// get a timeout from their own annotation only, and an entry of their own
// so that the service defaults do not bring it back at run time.
func TestDefaultsTimeoutSkipsStreamedReplies(t *testing.T) {
	req := checkedRequest(t, "", func(e editor) {
		e.service(&lbclientv1.ServiceRules{Defaults: &lbclientv1.MethodRules{Timeout: "2s", WaitForReady: proto.Bool(true)}})
		e.method("Plain", &lbclientv1.MethodRules{Retry: validRetry()})
		e.method("Bidi", &lbclientv1.MethodRules{Timeout: "1m"})
		e.method("ClientStream", &lbclientv1.MethodRules{WaitForReady: proto.Bool(false)})
	})
	gen, err := protogen.Options{}.New(req)
	if err != nil {
		t.Fatal(err)
	}
	files, err := build(gen, Options{PackageSuffix: DefaultPackageSuffix})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*methodRules{}
	for _, m := range files[0].services[0].methods {
		got[m.m.GoName] = m.rules
	}
	want := map[string]*methodRules{
		"Unary":        nil, // takes the Defaults, timeout included
		"Plain":        {Timeout: 2 * time.Second, WaitForReady: true, Retry: got["Plain"].Retry},
		"ServerStream": {WaitForReady: true},
		"ClientStream": {Timeout: 2 * time.Second},
		"Bidi":         {Timeout: time.Minute, WaitForReady: true},
	}
	if got["Plain"] == nil || got["Plain"].Retry == nil {
		t.Fatalf("Plain's rules %+v lack its retry", got["Plain"])
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("merged rules (-want +got):\n%s", diff)
	}
}

// TestImportPathsThatEscape: a go_package or M option whose import path has
// ".." elements (or is rooted) would make protoc write outside the output
// directory under paths=import; the plugin refuses it, and any other import
// path or package name that Go would not accept, and writes nothing.
func TestImportPathsThatEscape(t *testing.T) {
	const prefix = checkedFile + ": "
	for _, tc := range []struct {
		name, params, goPackage, want string
	}{
		{"go_package with ..", "", "../../evil;evil",
			prefix + `go_package "../../evil;evil" gives the Go import path "../../evil", which is malformed (invalid path element ".."): generated files could land outside the output directory`},
		{"go_package inside a module with ..", "paths=source_relative", "example.com/lbtest/../../../evil;evil",
			prefix + `go_package "example.com/lbtest/../../../evil;evil" gives the Go import path "example.com/lbtest/../../../evil", which is malformed (invalid path element "..")`},
		{"rooted go_package", "", "/etc/evil;evil",
			prefix + `go_package "/etc/evil;evil" gives the Go import path "/etc/evil", which is malformed (rooted)`},
		{"M option with ..", "M" + checkedFile + "=example.com/../x;x", "",
			prefix + `the option M` + checkedFile + `=example.com/../x gives the Go import path "example.com/../x", which is malformed (invalid path element "..")`},
		{"element with a quote", "", `example.com/"x;x`,
			prefix + `go_package "example.com/\"x;x" gives the Go import path "example.com/\"x", which is malformed (invalid char '"')`},
		{"package name no identifier", "", "example.com/x;0",
			prefix + `go_package "example.com/x;0" gives the Go package name "0", which is not a Go identifier`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := runPlugin(checkedRequest(t, tc.params, func(e editor) {
				if tc.goPackage != "" {
					e.file.Options.GoPackage = proto.String(tc.goPackage)
				}
			}))
			if !strings.HasPrefix(resp.GetError(), tc.want) {
				t.Errorf("error %q, want it to start with %q", resp.GetError(), tc.want)
			}
			for _, f := range resp.GetFile() {
				t.Errorf("file %q generated despite the error", f.GetName())
			}
		})
	}
}

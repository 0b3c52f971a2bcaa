package runtime

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"reflect"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/stats/opentelemetry"

	"github.com/lbclient/lbclient/runtime/hedge"
)

// An Option configures Dial. Options win over the rules passed to Dial:
// each annotation of the .proto file has an option of the same meaning.
type Option interface {
	apply(*options) error
}

type optionFunc func(*options) error

func (f optionFunc) apply(o *options) error { return f(o) }

// options is what the Options set, before Dial combines it with the rules.
type options struct {
	policy      Policy
	defaults    *MethodRules
	methods     map[string]MethodRules
	healthCheck *string
	dnsRefresh  *time.Duration
	subsetSize  *int
	// deterministic is WithDeterministicSubset's: per client, so not a
	// rule.
	deterministic *deterministicSubset
	creds         credentials.TransportCredentials
	credsOption   string // the option that set creds, for error messages
	perRPC        []credentials.PerRPCCredentials
	unary         []grpc.UnaryClientInterceptor
	stream        []grpc.StreamClientInterceptor
	resolvers     []resolver.Builder
	dialOptions   []grpc.DialOption
	logger        *slog.Logger
	hedgeBudget   []hedge.Option
	otel          *opentelemetry.Options // WithMeterProvider, WithOpenTelemetry
	idempotent    map[string]bool        // methods the caller vouches for, by full name
}

// WithPolicy sets the load-balancing policy, overriding the annotation's.
func WithPolicy(p Policy) Option {
	return optionFunc(func(o *options) error {
		if p < PolicyUnspecified || p > ConsistentHash {
			return fmt.Errorf("lbclient: WithPolicy: unknown policy %v", p)
		}
		o.policy = p
		return nil
	})
}

// WithDefaultRules replaces the service defaults: the rules of every method
// that has no rules of its own (no entry in ServiceRules.Methods). Generated
// rules have an entry for every annotated method, and for every
// server-streaming and bidi method when the annotations' defaults have a
// timeout; those methods keep their entries.
func WithDefaultRules(rules MethodRules) Option {
	return optionFunc(func(o *options) error {
		o.defaults = &rules
		return nil
	})
}

// WithMethodRules replaces the rules of one method, named in full:
// "/greeter.v1.Greeter/SayHello". The rules replace the annotation's and the
// defaults whole, as a method entry of grpc's service config does.
//
// Dial checks the rules against the method's descriptor when the binary
// registers the service's .proto (as the package protoc-gen-go generates
// does): the method must exist, and hedging needs a unary method with
// idempotency_level IDEMPOTENT or NO_SIDE_EFFECTS, or one the caller
// vouches for with WithIdempotent. For other services the rules are the
// caller's word.
func WithMethodRules(fullMethod string, rules MethodRules) Option {
	return optionFunc(func(o *options) error {
		if _, _, err := splitFullMethod(fullMethod); err != nil {
			return fmt.Errorf("lbclient: WithMethodRules: %w", err)
		}
		if o.methods == nil {
			o.methods = make(map[string]MethodRules)
		}
		o.methods[fullMethod] = rules
		return nil
	})
}

// WithIdempotent vouches that calls of the named methods ("/pkg.Service/Method")
// are safe to run more than once, as the .proto's
// idempotency_level = IDEMPOTENT says of a method. Dial then accepts hedging
// rules (WithMethodRules) for them although their descriptor sets no
// idempotency_level, as most .proto files that a client consumes do not
// and the client cannot annotate them. Hedging stays refused for streaming
// methods.
//
// Each name must be a full method name and, when the binary registers the
// service's descriptor, a unary method of it.
func WithIdempotent(fullMethods ...string) Option {
	return optionFunc(func(o *options) error {
		for _, full := range fullMethods {
			if _, _, err := splitFullMethod(full); err != nil {
				return fmt.Errorf("lbclient: WithIdempotent: %w", err)
			}
			if err := checkVouched(full); err != nil {
				return fmt.Errorf("lbclient: WithIdempotent: %w", err)
			}
			if o.idempotent == nil {
				o.idempotent = make(map[string]bool)
			}
			o.idempotent[full] = true
		}
		return nil
	})
}

// WithHealthCheck turns on gRPC client-side health checking: every backend's
// grpc.health.v1.Health service is watched for serviceName, and backends
// that are not SERVING get no calls. An empty name turns checking off.
func WithHealthCheck(serviceName string) Option {
	return optionFunc(func(o *options) error {
		o.healthCheck = &serviceName
		return nil
	})
}

// WithDNSRefresh sets how often a target resolved by DNS ("dns:///name:port",
// "dns://server:53/name:port", or a bare "name:port") is looked up again,
// overriding the annotation's dns_refresh. grpc-go alone resolves again
// only when a connection to a backend is lost, so a backend added to DNS
// would get no calls while the others stay healthy; with refresh, it gets
// them within d. Each wait is d less up to a fifth, at random, so that
// clients started together do not query together.
//
// d must be within [MinDNSRefresh, MaxDNSRefresh]; the default is
// DefaultDNSRefresh (30 s). A negative d turns refresh off, leaving
// grpc-go's own behaviour; zero is an error, as it could mean either.
//
// An answer with no addresses (NXDOMAIN, an emptied record set) or a
// failed lookup keeps the endpoints of the last good answer, and is logged
// once, naming the target, until DNS answers with addresses again. The
// refresh applies to this connection only; grpc-go's dns resolver and its
// limits stay as they are for every other connection of the process.
func WithDNSRefresh(d time.Duration) Option {
	return optionFunc(func(o *options) error {
		if d == 0 {
			return fmt.Errorf("lbclient: WithDNSRefresh: 0 is not an interval: pass DefaultDNSRefresh (%v) for the default, or a negative duration to turn refresh off", DefaultDNSRefresh)
		}
		if err := checkDNSRefresh(d); err != nil {
			return fmt.Errorf("lbclient: WithDNSRefresh: %w", err)
		}
		o.dnsRefresh = &d
		return nil
	})
}

// WithInsecure dials without transport security: calls travel in
// plaintext. Use it for loopback, tests and meshes that encrypt for you.
func WithInsecure() Option {
	return optionFunc(func(o *options) error {
		return o.setCreds("WithInsecure", insecure.NewCredentials())
	})
}

// WithTLS dials with TLS configured by cfg; nil means the system's roots and
// default settings, which is also what Dial does with no credentials option.
//
// A config that could never complete a gRPC handshake is a Dial error
// rather than a failure of every call: versions that are not TLS versions,
// MinVersion above MaxVersion, a MaxVersion below TLS 1.2 (HTTP/2 needs
// 1.2 or later, RFC 9113 section 9.2), a ServerName with a port or a
// scheme, and a certificate without its private key.
func WithTLS(cfg *tls.Config) Option {
	return optionFunc(func(o *options) error {
		if cfg == nil {
			cfg = &tls.Config{}
		}
		if err := checkTLSConfig(cfg); err != nil {
			return fmt.Errorf("lbclient: WithTLS: %w", err)
		}
		return o.setCreds("WithTLS", newTLSWithHints(credentials.NewTLS(cfg), "WithTLS"))
	})
}

// checkTLSConfig reports the first setting of cfg that no handshake with a
// gRPC server can succeed with.
func checkTLSConfig(cfg *tls.Config) error {
	for _, v := range []struct {
		name    string
		version uint16
	}{{"MinVersion", cfg.MinVersion}, {"MaxVersion", cfg.MaxVersion}} {
		switch v.version {
		case 0, tls.VersionTLS10, tls.VersionTLS11, tls.VersionTLS12, tls.VersionTLS13:
		default:
			return fmt.Errorf("%s %#04x is not a TLS version: use tls.VersionTLS12 or tls.VersionTLS13", v.name, v.version)
		}
	}
	if cfg.MaxVersion != 0 && cfg.MaxVersion < tls.VersionTLS12 {
		return fmt.Errorf("MaxVersion is %s: gRPC runs on HTTP/2, which needs TLS 1.2 or later", tls.VersionName(cfg.MaxVersion))
	}
	if cfg.MaxVersion != 0 && cfg.MinVersion > cfg.MaxVersion {
		return fmt.Errorf("MinVersion %s is above MaxVersion %s", tls.VersionName(cfg.MinVersion), tls.VersionName(cfg.MaxVersion))
	}
	if name := cfg.ServerName; name != "" && net.ParseIP(name) == nil && strings.ContainsAny(name, ":/ ") {
		return fmt.Errorf("ServerName %q is not a host name: name the host alone, without port or scheme, as the server's certificate does", name)
	}
	for i, c := range cfg.Certificates {
		if len(c.Certificate) == 0 {
			return fmt.Errorf("Certificates[%d] holds no certificate", i)
		}
		if c.PrivateKey == nil {
			return fmt.Errorf("Certificates[%d] has no private key: load it with tls.LoadX509KeyPair or tls.X509KeyPair", i)
		}
	}
	return nil
}

// WithTransportCredentials dials with creds (ALTS, mTLS from a file watcher,
// xds credentials and the like).
func WithTransportCredentials(creds credentials.TransportCredentials) Option {
	return optionFunc(func(o *options) error {
		if isNil(creds) {
			return fmt.Errorf("lbclient: WithTransportCredentials: nil credentials")
		}
		return o.setCreds("WithTransportCredentials", creds)
	})
}

// setCreds records the transport credentials of option name, refusing a
// second, different choice: which one was meant is not for Dial to guess.
func (o *options) setCreds(name string, creds credentials.TransportCredentials) error {
	if o.credsOption != "" && o.credsOption != name {
		return fmt.Errorf("lbclient: %s conflicts with %s: choose one transport security option", name, o.credsOption)
	}
	o.credsOption = name
	o.creds = creds
	return nil
}

// WithPerRPCCredentials attaches creds (tokens, API keys) to every call.
func WithPerRPCCredentials(creds credentials.PerRPCCredentials) Option {
	return optionFunc(func(o *options) error {
		if isNil(creds) {
			return fmt.Errorf("lbclient: WithPerRPCCredentials: nil credentials")
		}
		o.perRPC = append(o.perRPC, creds)
		return nil
	})
}

// checkPerRPC refuses per-RPC credentials that need transport security on
// a plaintext connection, as grpc.NewClient would, but naming lbclient's
// options rather than grpc's.
func (o *options) checkPerRPC() error {
	if o.creds == nil || o.creds.Info().SecurityProtocol != "insecure" {
		return nil
	}
	for i, p := range o.perRPC {
		if p.RequireTransportSecurity() {
			return fmt.Errorf("lbclient: WithPerRPCCredentials: credentials %d (%T) require transport security, and %s dials in plaintext: dial with WithTLS or WithTransportCredentials instead", i+1, p, o.credsOption)
		}
	}
	return nil
}

// WithUnaryInterceptors adds interceptors to unary calls. They run in the
// order given, outside lbclient's own: they see each call once, not each
// hedged attempt.
//
// Hedging belongs in the rules, not here: give it with WithMethodRules (and
// WithIdempotent for a method whose .proto does not mark it idempotent), so
// that Dial checks it and Conn.Stats counts it. A hedge.Interceptor passed
// here is an interceptor of the caller's like any other: Dial neither
// checks its policies nor reports its counters.
func WithUnaryInterceptors(interceptors ...grpc.UnaryClientInterceptor) Option {
	return optionFunc(func(o *options) error {
		for i, in := range interceptors {
			if in == nil {
				return fmt.Errorf("lbclient: WithUnaryInterceptors: interceptor %d of %d is nil", i+1, len(interceptors))
			}
		}
		o.unary = append(o.unary, interceptors...)
		return nil
	})
}

// WithStreamInterceptors adds interceptors to streaming calls, in the order
// given.
func WithStreamInterceptors(interceptors ...grpc.StreamClientInterceptor) Option {
	return optionFunc(func(o *options) error {
		for i, in := range interceptors {
			if in == nil {
				return fmt.Errorf("lbclient: WithStreamInterceptors: interceptor %d of %d is nil", i+1, len(interceptors))
			}
		}
		o.stream = append(o.stream, interceptors...)
		return nil
	})
}

// WithResolver makes the resolver b available to this connection only, for
// targets of its scheme.
func WithResolver(b resolver.Builder) Option {
	return optionFunc(func(o *options) error {
		if isNil(b) {
			return fmt.Errorf("lbclient: WithResolver: nil resolver builder")
		}
		if b.Scheme() == "" {
			return fmt.Errorf("lbclient: WithResolver: the builder's Scheme() is empty: targets name their resolver by scheme")
		}
		o.resolvers = append(o.resolvers, b)
		return nil
	})
}

// WithDialOptions passes options to grpc.NewClient as they are: the escape
// hatch for what lbclient has no option for. They come after lbclient's own,
// so they win where the two overlap.
func WithDialOptions(opts ...grpc.DialOption) Option {
	return optionFunc(func(o *options) error {
		for i, d := range opts {
			if d == nil {
				return fmt.Errorf("lbclient: WithDialOptions: option %d of %d is nil", i+1, len(opts))
			}
		}
		o.dialOptions = append(o.dialOptions, opts...)
		return nil
	})
}

// WithLogger sets the logger for the connection's own messages (the service
// config it dials with, plaintext warnings). The default is slog.Default().
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(o *options) error {
		if l == nil || l.Handler() == nil {
			return fmt.Errorf("lbclient: WithLogger: nil logger")
		}
		o.logger = l
		return nil
	})
}

// WithHedgingBudget bounds the extra load of hedging with a token bucket:
// each call of a hedged method earns ratio tokens, up to burst, and each
// extra attempt spends one. The default, WithHedgingBudget(0.1, 20), keeps
// hedges at or below 10% of calls plus a burst of 20. When the budget is
// spent, calls go unhedged.
func WithHedgingBudget(ratio float64, burst int) Option {
	return optionFunc(func(o *options) error {
		if !(ratio >= 0 && ratio <= 1) {
			return fmt.Errorf("lbclient: WithHedgingBudget: ratio %v is outside [0, 1]", ratio)
		}
		if burst < 1 || burst > 1000 {
			return fmt.Errorf("lbclient: WithHedgingBudget: burst %d is outside [1, 1000]", burst)
		}
		o.hedgeBudget = []hedge.Option{hedge.WithBudget(ratio, burst)}
		return nil
	})
}

// isNil reports whether v is nil, or an interface holding a nil pointer,
// func, map, channel or slice: a value whose methods would panic on the
// first call that reaches them.
func isNil(v any) bool {
	if v == nil {
		return true
	}
	switch rv := reflect.ValueOf(v); rv.Kind() {
	case reflect.Pointer, reflect.Func, reflect.Map, reflect.Chan, reflect.Slice, reflect.Interface:
		return rv.IsNil()
	}
	return false
}

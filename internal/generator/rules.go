package generator

import (
	"time"

	"google.golang.org/protobuf/compiler/protogen"
)

// The rules as the generator holds them once validate has checked the
// annotations: the same shape as runtime.ServiceRules and runtime.MethodRules,
// with every value already valid, so that emitting code cannot fail on them.

// serviceRules mirror runtime.ServiceRules.
type serviceRules struct {
	DefaultTarget      string
	Policy             string // Go name of the runtime.Policy constant; "" when unspecified
	HealthCheckService string
	DNSRefresh         time.Duration
	SubsetSize         int
	Defaults           methodRules
	RetryThrottling    *retryThrottling
}

// methodRules mirror runtime.MethodRules.
type methodRules struct {
	Timeout      time.Duration
	WaitForReady bool
	Retry        *retryPolicy
	Hedging      *hedgingPolicy
	HashKey      string
}

// isZero reports whether m holds no rule at all.
func (m methodRules) isZero() bool {
	return m.Timeout == 0 && !m.WaitForReady && m.Retry == nil && m.Hedging == nil && m.HashKey == ""
}

// retryPolicy mirrors runtime.RetryPolicy.
type retryPolicy struct {
	MaxAttempts       int
	InitialBackoff    time.Duration
	MaxBackoff        time.Duration
	BackoffMultiplier float64
	RetryableCodes    []string // Go names of codes.Code constants
}

// hedgingPolicy mirrors runtime.HedgingPolicy.
type hedgingPolicy struct {
	MaxAttempts     int
	Delay           time.Duration
	DelayPercentile float64
	NonFatalCodes   []string // Go names of codes.Code constants
}

// retryThrottling mirrors runtime.RetryThrottling.
type retryThrottling struct {
	MaxTokens  int
	TokenRatio float64
}

// methodAnnotation is a method's own (lbclient.v1.method) annotation after
// parsing, with what merging needs to know about presence.
type methodAnnotation struct {
	rules           methodRules
	hasWaitForReady bool
}

// merge returns the rules of a method annotated with m: m's fields over the
// defaults, field by field. Retry and hedging are one choice: a method that
// sets either replaces the defaults' choice.
func merge(defaults methodRules, m methodAnnotation) methodRules {
	out := defaults
	if m.rules.Timeout != 0 {
		out.Timeout = m.rules.Timeout
	}
	if m.hasWaitForReady {
		out.WaitForReady = m.rules.WaitForReady
	}
	if m.rules.Retry != nil || m.rules.Hedging != nil {
		out.Retry, out.Hedging = m.rules.Retry, m.rules.Hedging
	}
	if m.rules.HashKey != "" {
		out.HashKey = m.rules.HashKey
	}
	return out
}

// fileModel is one .proto file with services, ready to render.
type fileModel struct {
	file       *protogen.File
	importPath protogen.GoImportPath // of the generated package
	pkgName    string                // of the generated package
	filename   string                // of the generated file
	services   []*serviceModel
}

// serviceModel is one service, its names and its validated rules.
type serviceModel struct {
	svc     *protogen.Service
	names   serviceNames
	rules   serviceRules
	methods []*methodModel
}

// methodModel is one method, its names and its validated rules.
type methodModel struct {
	m     *protogen.Method
	names methodNames
	// rules is the complete entry of the method in ServiceRules.Methods,
	// the annotation merged over the defaults; nil when the method has no
	// annotation and so takes the defaults.
	rules *methodRules
	// hashKey is the path of fields whose value routes the call, from the
	// request message; nil when calls carry no hash key.
	hashKey []*protogen.Field
	// hashKeyPath is hashKey as the .proto wrote it ("account.id").
	hashKeyPath string
}

// longLived reports whether m's replies stream (server-streaming and bidi
// methods): its calls last as long as the caller reads, so the service
// defaults' timeout is not for them.
func longLived(m *protogen.Method) bool {
	return m.Desc.IsStreamingServer()
}

// isStreaming reports whether m streams in either direction.
func isStreaming(m *protogen.Method) bool {
	return m.Desc.IsStreamingClient() || m.Desc.IsStreamingServer()
}

package generator

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	lbclientv1 "github.com/lbclient/lbclient/gen/lbclient/v1"
	"github.com/lbclient/lbclient/internal/rpcdesc"
	"github.com/lbclient/lbclient/internal/targets"
)

// This file is the first step of generation: descriptors → rules. It reads
// the annotations, checks every rule and returns the rules in the
// generator's own types; the second step turns only valid rules into code.

// The annotations' names as a .proto file writes them, for error messages.
const (
	serviceOption  = "(lbclient.v1.service)"
	methodOption   = "(lbclient.v1.method)"
	defaultsOption = serviceOption + ".defaults"
)

// Bounds of the rules: gRFC A6 for attempts (grpc clamps above 5 silently;
// lbclient says so instead) and for retry throttling's bucket; the DNS
// refresh interval's are runtime.MinDNSRefresh and runtime.MaxDNSRefresh,
// whose doc comments give the reasons (a test keeps the two alike).
const (
	minAttempts  = 2
	maxAttempts  = 5
	minMaxTokens = 1
	maxMaxTokens = 1000
	// The subset size's bounds are runtime.MaxSubsetSize's.
	maxSubsetSize = 10000
	minDNSRefresh = time.Second
	maxDNSRefresh = time.Hour
)

// codeNames maps the canonical status code names, as the annotations and
// grpc's service config write them, to the constants of package codes.
var codeNames = map[string]string{
	"OK":                  "OK",
	"CANCELLED":           "Canceled",
	"UNKNOWN":             "Unknown",
	"INVALID_ARGUMENT":    "InvalidArgument",
	"DEADLINE_EXCEEDED":   "DeadlineExceeded",
	"NOT_FOUND":           "NotFound",
	"ALREADY_EXISTS":      "AlreadyExists",
	"PERMISSION_DENIED":   "PermissionDenied",
	"RESOURCE_EXHAUSTED":  "ResourceExhausted",
	"FAILED_PRECONDITION": "FailedPrecondition",
	"ABORTED":             "Aborted",
	"OUT_OF_RANGE":        "OutOfRange",
	"UNIMPLEMENTED":       "Unimplemented",
	"INTERNAL":            "Internal",
	"UNAVAILABLE":         "Unavailable",
	"DATA_LOSS":           "DataLoss",
	"UNAUTHENTICATED":     "Unauthenticated",
}

// policyNames maps the numbers of the lbclient.v1.Policy enum to the
// runtime.Policy constants; unspecified maps to "".
var policyNames = map[lbclientv1.Policy]string{
	lbclientv1.Policy_POLICY_UNSPECIFIED:   "",
	lbclientv1.Policy_PICK_FIRST:           "PickFirst",
	lbclientv1.Policy_ROUND_ROBIN:          "RoundRobin",
	lbclientv1.Policy_LEAST_REQUEST:        "LeastRequest",
	lbclientv1.Policy_WEIGHTED_ROUND_ROBIN: "WeightedRoundRobin",
	lbclientv1.Policy_PEAK_EWMA:            "PeakEWMA",
	lbclientv1.Policy_CONSISTENT_HASH:      "ConsistentHash",
}

// checker collects the errors about one subject: a service or a method of
// one file. Each error names the file, with the line and column of the
// field when the descriptor has source info (as protoc's own errors do),
// the subject, the field as the .proto writes it, and the bad value.
type checker struct {
	file    string // path of the .proto file
	subject string // "service pkg.Service" or "method pkg.Service.Method"
	errs    *[]error

	locs      protoreflect.SourceLocations
	decl      protoreflect.SourcePath // the subject's declaration
	svcOpt    protoreflect.SourcePath // the service's (lbclient.v1.service) option
	methodOpt protoreflect.SourcePath // the method's (lbclient.v1.method) option; nil for a service
}

// The paths of lbclient's options below a service's and a method's: the
// options field of their descriptor, then the extension's number
// (descriptor.proto's ServiceDescriptorProto.options is field 3,
// MethodDescriptorProto.options field 4).
const (
	serviceOptionsField = 3
	methodOptionsField  = 4
)

// newServiceChecker returns the checker of service s of file.
func newServiceChecker(file *protogen.File, s *protogen.Service, errs *[]error) checker {
	return checker{
		file:    file.Desc.Path(),
		subject: "service " + string(s.Desc.FullName()),
		errs:    errs,
		locs:    file.Desc.SourceLocations(),
		decl:    s.Location.Path,
		svcOpt:  appendPath(s.Location.Path, serviceOptionsField, int32(lbclientv1.E_Service.TypeDescriptor().Number())),
	}
}

// forMethod returns the checker of method m of the service c checks.
func (c checker) forMethod(m *protogen.Method) checker {
	mc := c
	mc.subject = "method " + string(m.Desc.FullName())
	mc.decl = m.Location.Path
	mc.methodOpt = appendPath(m.Location.Path, methodOptionsField, int32(lbclientv1.E_Method.TypeDescriptor().Number()))
	return mc
}

func appendPath(p protoreflect.SourcePath, elems ...int32) protoreflect.SourcePath {
	return append(append(protoreflect.SourcePath(nil), p...), elems...)
}

func (c checker) errorf(field, format string, args ...any) {
	c.errorAt(field, -1, format, args...)
}

// errorAt reports an error about element index of the list field; index -1
// means the field as a whole.
func (c checker) errorAt(field string, index int, format string, args ...any) {
	*c.errs = append(*c.errs, fmt.Errorf("%s: %s: %s: %s", c.position(field, index), c.subject, field, fmt.Sprintf(format, args...)))
}

// position returns "file:line:column" of field (as errorf names it) in the
// .proto file, 1-based as protoc writes them: the field's own location when
// the compiler recorded it (buf records every field of an option's value,
// protoc the option statement), else the nearest enclosing one down to the
// option statement, else the subject's declaration. Without source info it
// is the file alone.
func (c checker) position(field string, index int) string {
	path, stop := c.fieldPath(field)
	if path != nil && index >= 0 {
		path = append(path, int32(index))
	}
	for ; path != nil && len(path) >= stop; path = path[:len(path)-1] {
		if l, ok := c.locate(path); ok {
			return fmt.Sprintf("%s:%d:%d", c.file, l.StartLine+1, l.StartColumn+1)
		}
	}
	if l, ok := c.locate(c.decl); ok {
		return fmt.Sprintf("%s:%d:%d", c.file, l.StartLine+1, l.StartColumn+1)
	}
	return c.file
}

// locate returns the location of path or, when the compiler recorded none
// for it (buf records the scalars inside a message-valued option field,
// not the field itself), the first location inside it.
func (c checker) locate(path protoreflect.SourcePath) (protoreflect.SourceLocation, bool) {
	if l := c.locs.ByPath(path); l.Path != nil {
		return l, true
	}
	var first protoreflect.SourceLocation
	found := false
	for i := range c.locs.Len() {
		l := c.locs.Get(i)
		if len(l.Path) <= len(path) || !slices.Equal(l.Path[:len(path)], path) {
			continue
		}
		if !found || l.StartLine < first.StartLine || l.StartLine == first.StartLine && l.StartColumn < first.StartColumn {
			first, found = l, true
		}
	}
	return first, found
}

// fieldPath returns the source path of field, as errorf names it
// ("(lbclient.v1.method).retry.max_attempts"), and the length of the path
// of the option statement that holds it; nil for a field of neither
// option.
func (c checker) fieldPath(field string) (protoreflect.SourcePath, int) {
	var path protoreflect.SourcePath
	var msg protoreflect.MessageDescriptor
	var rest string
	if r, ok := strings.CutPrefix(field, serviceOption); ok {
		rest, path, msg = r, appendPath(c.svcOpt), (*lbclientv1.ServiceRules)(nil).ProtoReflect().Descriptor()
	} else if r, ok := strings.CutPrefix(field, methodOption); ok && c.methodOpt != nil {
		rest, path, msg = r, appendPath(c.methodOpt), (*lbclientv1.MethodRules)(nil).ProtoReflect().Descriptor()
	} else {
		return nil, 0
	}
	stop := len(path)
	for name := range strings.SplitSeq(strings.TrimPrefix(rest, "."), ".") {
		if name == "" || msg == nil {
			break
		}
		fd := msg.Fields().ByName(protoreflect.Name(name))
		if fd == nil {
			break
		}
		path = append(path, int32(fd.Number()))
		msg = fd.Message()
	}
	return path, stop
}

// duration parses a duration field; an empty one is 0 unless required.
func (c checker) duration(field, s string, required bool, example string) time.Duration {
	if s == "" {
		if required {
			c.errorf(field, "missing: want a duration such as %q", example)
		}
		return 0
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		c.errorf(field, "invalid duration %q", s)
		return 0
	case d <= 0:
		c.errorf(field, "duration %q is not greater than zero", s)
		return 0
	}
	return d
}

// dnsRefresh parses the DNS refresh interval: a duration within
// [minDNSRefresh, maxDNSRefresh]. Refresh cannot be turned off in the
// annotations: that is for code that knows its resolver, at Dial.
func (c checker) dnsRefresh(field, s string) time.Duration {
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		c.errorf(field, "invalid duration %q", s)
	case d <= 0:
		c.errorf(field, "%q is outside [1s, 1h]: refresh is turned off in code, with runtime.WithDNSRefresh(-1)", s)
	case d < minDNSRefresh || d > maxDNSRefresh:
		c.errorf(field, "%q is outside [1s, 1h]", s)
	default:
		return d
	}
	return 0
}

// codes parses a list of status code names. The list is a set, as in grpc's
// service config: a name given twice is kept once.
func (c checker) codes(field string, names []string) []string {
	var out []string
	for i, name := range names {
		goName, ok := codeNames[name]
		switch {
		case !ok:
			c.errorAt(field, i, "unknown status code %q", name)
		case name == "OK":
			c.errorAt(field, i, "status code %q is not a failure", name)
		case !slices.Contains(out, goName):
			out = append(out, goName)
		}
	}
	return out
}

// attempts checks a max_attempts field.
func (c checker) attempts(field string, n uint32) int {
	if n < minAttempts || n > maxAttempts {
		c.errorf(field, "%q is outside [%d, %d]", strconv.FormatUint(uint64(n), 10), minAttempts, maxAttempts)
	}
	return int(n)
}

// positive checks a field that must be a finite number greater than zero.
func (c checker) positive(field string, v float64) float64 {
	if !(v > 0) || math.IsInf(v, 0) {
		c.errorf(field, "%q is not a finite number greater than zero", strconv.FormatFloat(v, 'g', -1, 64))
	}
	return v
}

// methodRules parses a MethodRules message: a method's annotation or the
// service defaults. prefix is its field name.
func (c checker) methodRules(prefix string, pb *lbclientv1.MethodRules) methodAnnotation {
	var a methodAnnotation
	a.rules.Timeout = c.duration(prefix+".timeout", pb.GetTimeout(), false, "")
	a.rules.WaitForReady = pb.GetWaitForReady()
	a.hasWaitForReady = pb != nil && pb.WaitForReady != nil
	if r := pb.GetRetry(); r != nil {
		a.rules.Retry = &retryPolicy{
			MaxAttempts:       c.attempts(prefix+".retry.max_attempts", r.GetMaxAttempts()),
			InitialBackoff:    c.duration(prefix+".retry.initial_backoff", r.GetInitialBackoff(), true, "100ms"),
			MaxBackoff:        c.duration(prefix+".retry.max_backoff", r.GetMaxBackoff(), true, "1s"),
			BackoffMultiplier: c.positive(prefix+".retry.backoff_multiplier", r.GetBackoffMultiplier()),
			RetryableCodes:    c.codes(prefix+".retry.retryable_codes", r.GetRetryableCodes()),
		}
		if len(r.GetRetryableCodes()) == 0 {
			c.errorf(prefix+".retry.retryable_codes", "empty: name at least one status code, such as %q", "UNAVAILABLE")
		}
		// grpc-go caps every backoff at max_backoff: an initial_backoff
		// above it would never be used, the two most likely swapped.
		if rp := a.rules.Retry; rp.InitialBackoff > 0 && rp.MaxBackoff > 0 && rp.InitialBackoff > rp.MaxBackoff {
			c.errorf(prefix+".retry.initial_backoff", "%q is greater than max_backoff %q", r.GetInitialBackoff(), r.GetMaxBackoff())
		}
	}
	if h := pb.GetHedging(); h != nil {
		a.rules.Hedging = &hedgingPolicy{
			MaxAttempts:   c.attempts(prefix+".hedging.max_attempts", h.GetMaxAttempts()),
			NonFatalCodes: c.codes(prefix+".hedging.non_fatal_codes", h.GetNonFatalCodes()),
		}
		a.rules.Hedging.Delay, a.rules.Hedging.DelayPercentile = c.hedgingDelay(prefix+".hedging.delay", h.GetDelay())
	}
	if a.rules.Retry != nil && a.rules.Hedging != nil {
		c.errorf(prefix, "retry and hedging are both set: a method retries or hedges, not both")
	}
	if p := pb.GetHashKey(); p != "" {
		if !validHashKeySyntax(p) {
			c.errorf(prefix+".hash_key", "%q is not a dotted path of field names", p)
		}
		a.rules.HashKey = p
	}
	return a
}

// hedgingDelay parses a hedging delay: a duration ("50ms") or a percentile
// of recent latency, "pNN" or "pNN.N" with 0 < NN < 100.
func (c checker) hedgingDelay(field, s string) (time.Duration, float64) {
	if s == "" {
		c.errorf(field, "missing: want a duration such as %q or a percentile such as %q", "50ms", "p95")
		return 0, 0
	}
	if rest, ok := strings.CutPrefix(s, "p"); ok {
		if p, ok := parsePercentile(rest); ok {
			return 0, p
		}
		c.errorf(field, "invalid percentile %q: want p1 to p99.9, such as %q", s, "p95")
		return 0, 0
	}
	return c.duration(field, s, true, "50ms"), 0
}

// parsePercentile parses "NN" or "NN.N" with 0 < NN < 100.
func parsePercentile(s string) (float64, bool) {
	whole, frac, hasFrac := strings.Cut(s, ".")
	if whole == "" || len(whole) > 2 || !allDigits(whole) || (hasFrac && (len(frac) != 1 || !allDigits(frac))) {
		return 0, false
	}
	p, err := strconv.ParseFloat(s, 64)
	if err != nil || !(p > 0 && p < 100) {
		return 0, false
	}
	return p, true
}

func allDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// buildService reads and checks the annotations of s and of its methods.
func buildService(file *protogen.File, s *protogen.Service, errs *[]error) *serviceModel {
	sc := newServiceChecker(file, s, errs)
	model := &serviceModel{svc: s}

	for _, clash := range goNameClashes(s) {
		var names []string
		for _, m := range clash {
			names = append(names, strconv.Quote(string(m.Desc.Name())))
		}
		// At the declaration of the second of them, the first to rename,
		// or else of the service.
		pos := sc.forMethod(clash[1]).position("", -1)
		if pos == sc.file {
			pos = sc.position("", -1)
		}
		*errs = append(*errs, fmt.Errorf("%s: %s: methods %s all have the Go name %q: rename all but one",
			pos, sc.subject, strings.Join(names, ", "), clash[0].GoName))
	}

	ann := serviceAnnotation(s)
	r := &model.rules
	if t := ann.GetDefaultTarget(); t != "" {
		// As runtime.Dial checks it: the syntax of the schemes grpc-go and
		// lbclient register (a static list, a DNS name); whether a scheme
		// has a resolver is known only at run time.
		if err := targets.Check(t); err != nil {
			sc.errorf(serviceOption+".default_target", "invalid target %q: %v", t, err)
		}
		r.DefaultTarget = t
	}
	if name, ok := policyNames[ann.GetPolicy()]; ok {
		r.Policy = name
	} else {
		sc.errorf(serviceOption+".policy", "unknown policy %q", strconv.Itoa(int(ann.GetPolicy())))
	}
	r.HealthCheckService = ann.GetHealthCheckService()
	if s := ann.GetDnsRefresh(); s != "" {
		r.DNSRefresh = sc.dnsRefresh(serviceOption+".dns_refresh", s)
	}
	if n := ann.GetSubsetSize(); n != 0 {
		if n > maxSubsetSize {
			sc.errorf(serviceOption+".subset_size", "%q is outside [1, %d]", strconv.FormatUint(uint64(n), 10), maxSubsetSize)
		}
		r.SubsetSize = int(n)
	}
	r.Defaults = sc.methodRules(defaultsOption, ann.GetDefaults()).rules
	if r.Defaults.Hedging != nil {
		sc.errorf(defaultsOption+".hedging", "hedging is only for idempotent unary methods: set it on each such method")
	}
	if t := ann.GetRetryThrottling(); t != nil {
		if n := t.GetMaxTokens(); n < minMaxTokens || n > maxMaxTokens {
			sc.errorf(serviceOption+".retry_throttling.max_tokens", "%q is outside [%d, %d]", strconv.FormatUint(uint64(n), 10), minMaxTokens, maxMaxTokens)
		}
		r.RetryThrottling = &retryThrottling{
			MaxTokens:  int(t.GetMaxTokens()),
			TokenRatio: sc.positive(serviceOption+".retry_throttling.token_ratio", t.GetTokenRatio()),
		}
	}

	for _, m := range s.Methods {
		model.methods = append(model.methods, buildMethod(sc.forMethod(m), m, r.Defaults))
	}
	return model
}

// buildMethod reads and checks the annotation of m and merges it over the
// service defaults.
func buildMethod(mc checker, m *protogen.Method, defaults methodRules) *methodModel {
	model := &methodModel{m: m}
	singleRequest := !m.Desc.IsStreamingClient()

	ann, annotated := methodAnnotationOf(m)
	// The defaults' timeout is for calls that end when their request does:
	// unary and client-streaming ones. A server-streaming or bidi call
	// lasts as long as its caller reads, so it takes a timeout from its
	// own annotation only.
	cutTimeout := longLived(m) && defaults.Timeout != 0
	if cutTimeout {
		defaults.Timeout = 0
	}
	var rules methodRules
	if annotated {
		a := mc.methodRules(methodOption, ann)
		if h := a.rules.Hedging; h != nil {
			switch {
			case isStreaming(m):
				mc.errorf(methodOption+".hedging", "hedging is only for unary methods, and %s is %s", m.Desc.Name(), rpcdesc.StreamKind(m.Desc))
			case !rpcdesc.Idempotent(m.Desc):
				mc.errorf(methodOption+".hedging", "hedging needs idempotency_level IDEMPOTENT or NO_SIDE_EFFECTS, and the method's is %q", rpcdesc.IdempotencyLevel(m.Desc).String())
			}
		}
		if a.rules.HashKey != "" && !singleRequest {
			mc.errorf(methodOption+".hash_key", "%q on a %s method: a hash key is read from the one request of a unary or server-streaming method", a.rules.HashKey, rpcdesc.StreamKind(m.Desc))
		}
		rules = merge(defaults, a)
		model.rules = &rules
	} else {
		rules = defaults
		if cutTimeout {
			// Without an entry of its own the method would take the
			// service's Defaults, timeout included, at run time.
			model.rules = &rules
		}
	}

	// The defaults' hash key applies to every method with one request that
	// has none of its own; methods that stream requests go without.
	if !singleRequest {
		if model.rules != nil {
			model.rules.HashKey = ""
		}
		return model
	}
	if p := rules.HashKey; p != "" && validHashKeySyntax(p) {
		field := methodOption + ".hash_key"
		if !annotated || ann.GetHashKey() == "" {
			field = defaultsOption + ".hash_key"
		}
		fields, problem := resolveHashKey(m.Input, p)
		if problem != "" {
			mc.errorf(field, "%q: %s", p, problem)
		}
		model.hashKey, model.hashKeyPath = fields, p
	}
	return model
}

// serviceAnnotation returns the (lbclient.v1.service) option of s, or nil.
func serviceAnnotation(s *protogen.Service) *lbclientv1.ServiceRules {
	opts, _ := s.Desc.Options().(*descriptorpb.ServiceOptions)
	if opts = resolveOptions(opts); opts == nil || !proto.HasExtension(opts, lbclientv1.E_Service) {
		return nil
	}
	r, _ := proto.GetExtension(opts, lbclientv1.E_Service).(*lbclientv1.ServiceRules)
	return r
}

// methodAnnotationOf returns the (lbclient.v1.method) option of m, and
// whether m has one.
func methodAnnotationOf(m *protogen.Method) (*lbclientv1.MethodRules, bool) {
	opts, _ := m.Desc.Options().(*descriptorpb.MethodOptions)
	if opts = resolveOptions(opts); opts == nil || !proto.HasExtension(opts, lbclientv1.E_Method) {
		return nil, false
	}
	r, _ := proto.GetExtension(opts, lbclientv1.E_Method).(*lbclientv1.MethodRules)
	return r, r != nil
}

// resolveOptions returns opts with its extensions parsed. Options decoded
// without lbclient's extensions registered keep them as unknown fields;
// those are decoded again here.
func resolveOptions[T proto.Message](opts T) T {
	var zero T
	if !opts.ProtoReflect().IsValid() {
		return zero
	}
	if len(opts.ProtoReflect().GetUnknown()) == 0 {
		return opts
	}
	b, err := proto.Marshal(opts)
	if err != nil {
		return opts
	}
	fresh := opts.ProtoReflect().New().Interface().(T)
	if err := (proto.UnmarshalOptions{Resolver: protoregistry.GlobalTypes}).Unmarshal(b, fresh); err != nil {
		return opts
	}
	return fresh
}

// validHashKeySyntax reports whether p is a dotted path of names.
func validHashKeySyntax(p string) bool {
	for seg := range strings.SplitSeq(p, ".") {
		if !protoreflect.Name(seg).IsValid() {
			return false
		}
	}
	return true
}

package generator

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/dave/jennifer/jen"
)

// multiline renders a composite literal's body one element a line.
var multiline = jen.Options{Open: "{", Close: "}", Separator: ",", Multi: true}

// field is one "Key: value" element of a struct literal.
func field(name string, value jen.Code) jen.Code {
	return jen.Id(name).Op(":").Add(value)
}

// rulesFunc declares the func that returns the service's rules as a Go
// literal of runtime.ServiceRules. Zero fields are left out.
func rulesFunc(s *serviceModel) []jen.Code {
	r := s.rules
	elems := []jen.Code{field("Service", jen.Id(s.names.ServiceName))}
	if r.DefaultTarget != "" {
		elems = append(elems, field("DefaultTarget", jen.Lit(r.DefaultTarget)))
	}
	if r.Policy != "" {
		elems = append(elems, field("Policy", ident(runtimePackage, r.Policy)))
	}
	if r.HealthCheckService != "" {
		elems = append(elems, field("HealthCheckService", jen.Lit(r.HealthCheckService)))
	}
	if r.DNSRefresh != 0 {
		elems = append(elems, field("DNSRefresh", durationLit(r.DNSRefresh)))
	}
	if r.SubsetSize != 0 {
		elems = append(elems, field("SubsetSize", jen.Lit(r.SubsetSize)))
	}
	if !r.Defaults.isZero() {
		elems = append(elems, field("Defaults", ident(runtimePackage, "MethodRules").Add(methodRulesLit(r.Defaults))))
	}
	var methods []jen.Code
	for _, m := range s.methods {
		if m.rules != nil {
			methods = append(methods, field(m.names.FullMethodName, methodRulesLit(*m.rules)))
		}
	}
	if len(methods) > 0 {
		elems = append(elems, field("Methods", jen.Map(jen.String()).Add(ident(runtimePackage, "MethodRules")).Custom(multiline, methods...)))
	}
	if t := r.RetryThrottling; t != nil {
		elems = append(elems, field("RetryThrottling", jen.Op("&").Add(ident(runtimePackage, "RetryThrottling")).Custom(multiline,
			field("MaxTokens", jen.Lit(t.MaxTokens)),
			field("TokenRatio", floatLit(t.TokenRatio)),
		)))
	}

	full := string(s.svc.Desc.FullName())
	d := new(doc).para(fmt.Sprintf("%s returns the rules that the annotations of %s "+
		"give its clients: %s dials with them. Each call returns new "+
		"rules, which the caller may change. Methods without an entry in Methods "+
		"take the Defaults.", s.names.Rules, full, s.names.NewClient)).
		deprecated(serviceDeprecated(s.svc), full)
	if r.Defaults.Timeout != 0 {
		var long []string
		for _, m := range s.methods {
			if longLived(m.m) {
				long = append(long, m.m.GoName)
			}
		}
		has, its, entries, leave := "have", "their", "entries", "leave"
		if len(long) == 1 {
			has, its, entries, leave = "has", "its", "entry", "leaves"
		}
		if len(long) > 0 {
			d.para(fmt.Sprintf("The Defaults' Timeout applies to unary and client-streaming methods "+
				"only: %s, whose replies stream for as long as the caller reads them, %s a "+
				"timeout only when %s own annotation sets one, so %s %s in Methods "+
				"%s the default one out.", englishList(long), has, its, its, entries, leave))
		}
	}
	return []jen.Code{
		d.code(),
		jen.Func().Id(s.names.Rules).Params().Op("*").Add(ident(runtimePackage, "ServiceRules")).Block(
			jen.Return(jen.Op("&").Add(ident(runtimePackage, "ServiceRules")).Custom(multiline, elems...)),
		),
		jen.Line(),
	}
}

// englishList joins names as prose does: "A", "A and B", "A, B and C".
func englishList(names []string) string {
	if len(names) == 1 {
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

// methodRulesLit renders the body of a runtime.MethodRules literal.
func methodRulesLit(m methodRules) *jen.Statement {
	var elems []jen.Code
	if m.Timeout != 0 {
		elems = append(elems, field("Timeout", durationLit(m.Timeout)))
	}
	if m.WaitForReady {
		elems = append(elems, field("WaitForReady", jen.True()))
	}
	if r := m.Retry; r != nil {
		elems = append(elems, field("Retry", jen.Op("&").Add(ident(runtimePackage, "RetryPolicy")).Custom(multiline,
			field("MaxAttempts", jen.Lit(r.MaxAttempts)),
			field("InitialBackoff", durationLit(r.InitialBackoff)),
			field("MaxBackoff", durationLit(r.MaxBackoff)),
			field("BackoffMultiplier", floatLit(r.BackoffMultiplier)),
			field("RetryableCodes", codesLit(r.RetryableCodes)),
		)))
	}
	if h := m.Hedging; h != nil {
		hedging := []jen.Code{field("MaxAttempts", jen.Lit(h.MaxAttempts))}
		if h.Delay != 0 {
			hedging = append(hedging, field("Delay", durationLit(h.Delay)))
		}
		if h.DelayPercentile != 0 {
			hedging = append(hedging, field("DelayPercentile", floatLit(h.DelayPercentile)))
		}
		if len(h.NonFatalCodes) > 0 {
			hedging = append(hedging, field("NonFatalCodes", codesLit(h.NonFatalCodes)))
		}
		elems = append(elems, field("Hedging", jen.Op("&").Add(ident(runtimePackage, "HedgingPolicy")).Custom(multiline, hedging...)))
	}
	if m.HashKey != "" {
		elems = append(elems, field("HashKey", jen.Lit(m.HashKey)))
	}
	if len(elems) == 0 {
		return jen.Values()
	}
	return jen.Custom(multiline, elems...)
}

// durationUnits are the units a duration is written in, largest first.
var durationUnits = []struct {
	d    time.Duration
	name string
}{
	{time.Hour, "Hour"},
	{time.Minute, "Minute"},
	{time.Second, "Second"},
	{time.Millisecond, "Millisecond"},
	{time.Microsecond, "Microsecond"},
}

// durationLit renders d readably: time.Second, 250 * time.Millisecond, or
// time.Duration(n) when no unit divides it.
func durationLit(d time.Duration) *jen.Statement {
	for _, u := range durationUnits {
		if d%u.d != 0 {
			continue
		}
		if n := int64(d / u.d); n != 1 {
			return jen.Lit(int(n)).Op("*").Add(ident(timePackage, u.name))
		}
		return ident(timePackage, u.name)
	}
	return ident(timePackage, "Duration").Call(jen.Lit(int(d)))
}

// floatLit renders a finite float in its shortest exact form: 2, 0.1, 99.9.
func floatLit(v float64) *jen.Statement {
	return jen.Op(strconv.FormatFloat(v, 'g', -1, 64))
}

// codesLit renders a []codes.Code literal.
func codesLit(names []string) *jen.Statement {
	elems := make([]jen.Code, len(names))
	for i, n := range names {
		elems[i] = ident(codesPackage, n)
	}
	return jen.Index().Add(ident(codesPackage, "Code")).Values(elems...)
}

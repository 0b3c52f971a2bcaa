package overhead

import (
	"strings"
	"testing"
	"time"

	"github.com/lbclient/lbclient/runtime"
)

// TestRunTiny runs every variant and case once, briefly, and checks that
// each produced a sample; it asserts no timing.
func TestRunTiny(t *testing.T) {
	SetBenchTime(10 * time.Millisecond)
	s := StartServer()
	defer s.Stop()
	vs := append(Variants(StubOnConn), Lbclient("static", "static:///bufnet:1", runtime.PeakEWMA, StubOnConn))
	res, err := Run(s, vs, Cases, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range Cases {
		for _, v := range vs {
			got := res[c.Name][v.Name]
			if len(got) != 1 || got[0].NsPerOp <= 0 || got[0].AllocsPerOp <= 0 {
				t.Errorf("%s, %s: samples %+v", c.Name, v.Name, got)
			}
		}
	}
}

// TestRulesTiny runs the rules comparison's clients once, briefly: the
// service configs come from the runtime, and every client calls its method.
func TestRulesTiny(t *testing.T) {
	SetBenchTime(10 * time.Millisecond)
	baselines, rows, scRules, scRetry, err := RulesVariants()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"round_robin"`, `"retryThrottling"`, `"healthCheckConfig"`, `{"method":"SayHello","service":"greeter.v1.Greeter"}],"timeout":"1s"`} {
		if !strings.Contains(scRules, want) {
			t.Errorf("service config of the annotations lacks %s:\n%s", want, scRules)
		}
	}
	if strings.Contains(scRules, "lbclient_") || strings.Contains(scRetry, "lbclient_") {
		t.Errorf("service configs still name an lbclient policy:\n%s\n%s", scRules, scRetry)
	}
	if strings.Count(scRetry, `"retryPolicy"`) != strings.Count(scRules, `"retryPolicy"`)+1 {
		t.Errorf("SayHello retried should add one retryPolicy:\n%s\n%s", scRules, scRetry)
	}
	vs := baselines
	names := map[string]bool{}
	for _, v := range baselines {
		names[v.Name] = true
	}
	for _, r := range rows {
		if !names[r.Base] {
			t.Errorf("%s: baseline %q is not among the baselines", r.Name, r.Base)
		}
		vs = append(vs, r.Variant)
	}
	s := StartServer()
	defer s.Stop()
	res, err := Run(s, vs, Cases[:1], 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		if got := res[Cases[0].Name][v.Name]; len(got) != 1 || got[0].AllocsPerOp <= 0 {
			t.Errorf("%s: samples %+v", v.Name, got)
		}
	}
	if _, err := Blocks(s, vs, Cases[1], 2, 20); err != nil {
		t.Fatal(err)
	}
}

package overhead

import (
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

package observe_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	_ "google.golang.org/grpc/balancer/randomsubsetting" // random_subsetting_experimental

	_ "github.com/lbclient/lbclient/runtime/balancer/peakewma"

	"github.com/lbclient/lbclient/runtime/balancer/internal/lbtest"
	"github.com/lbclient/lbclient/runtime/internal/lbstats"
)

// TestUnderRandomSubsetting runs lbclient's policies as the child of
// grpc-go's random_subsetting_experimental, which marshals its parsed child
// config to JSON and parses it again before it builds the child: over six
// backends with a subset of three, every call must succeed and reach one of
// exactly three backends, and the child must publish those three to its
// stats sink, which shows that its config (child policy and stats id) came
// through whole.
func TestUnderRandomSubsetting(t *testing.T) {
	for _, tc := range []struct{ name, child string }{
		{"observe over round_robin", `{"lbclient_observe":{"statsId":%q,"childPolicy":[{"round_robin":{}}]}}`},
		{"observe over least_request", `{"lbclient_observe":{"statsId":%q,"childPolicy":[{"least_request_experimental":{"choiceCount":2}}]}}`},
		{"peak_ewma", `{"lbclient_peak_ewma":{"statsId":%q,"failureCodes":[]}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, sink, unregister := lbstats.Register()
			defer unregister()
			bs := lbtest.StartBackends(t, new(lbtest.Backend), new(lbtest.Backend), new(lbtest.Backend),
				new(lbtest.Backend), new(lbtest.Backend), new(lbtest.Backend))
			sc := fmt.Sprintf(`{"loadBalancingConfig":[{"random_subsetting_experimental":{"subsetSize":3,"childPolicy":[`+tc.child+`]}}]}`, id)
			cc := lbtest.Dial(t, sc, lbtest.Addrs(bs))
			lbtest.WaitReady(t, cc)
			for i := range 300 {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				err := lbtest.Call(ctx, cc)
				cancel()
				if err != nil {
					t.Fatalf("call %d: %v", i, err)
				}
			}
			reached := 0
			for _, b := range bs {
				if b.Calls.Load() > 0 {
					reached++
				}
			}
			if reached != 3 {
				t.Errorf("calls reached %d backends, want the subset of 3", reached)
			}
			if eps := sink.Endpoints(); len(eps) != 3 {
				t.Errorf("the child published %d endpoints, want the subset of 3: %+v", len(eps), eps)
			}
		})
	}
}

package consistenthash_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/lbclient/lbclient/runtime/balancer/consistenthash"
	"github.com/lbclient/lbclient/runtime/balancer/internal/lbtest"
	"github.com/lbclient/lbclient/runtime/internal/callinfo"
)

// keyed gives each call one of 1000 keys.
func keyed(worker int, n int64) context.Context {
	return callinfo.WithHashKey(context.Background(), fmt.Sprintf("key-%d", (int64(worker)*7919+n*104729)%1000))
}

func config(cfg string) string {
	return fmt.Sprintf(`{"loadBalancingConfig":[{%q:%s}]}`, consistenthash.Name, cfg)
}

// TestE2EFleetChanges: backends added under keyed load get their keys at
// once; a removed one gets no call, and no call fails.
func TestE2EFleetChanges(t *testing.T) {
	lbtest.Membership(t, config(`{}`), keyed)
}

// TestE2EWeights: a backend of weight 3 owns three times the keys of one
// of weight 1, and so takes three quarters of the keyed calls. With 1024
// virtual nodes per unit of weight, so that the ring's own deviation,
// about 1/sqrt(nodes), stays well inside the ±10% the test allows; and a
// balance factor of 10, so that the load bound (TestWeightedLoadBound),
// which at 8 calls in flight lets the light backend hold only 3 and
// spills the rest of its keys' calls to the heavy one (0.79 of the calls),
// leaves the split to the keys.
func TestE2EWeights(t *testing.T) {
	for _, workers := range []int{1, 8} {
		t.Run(fmt.Sprintf("callers=%d", workers), func(t *testing.T) {
			lbtest.WeightedSplit(t, config(`{"virtualNodes":1024,"balanceFactor":10}`), workers, keyed)
		})
	}
}

package peakewma_test

import (
	"fmt"
	"testing"

	"github.com/lbclient/lbclient/runtime/balancer/internal/lbtest"
)

// TestE2EFleetChanges: backends added under load get calls at once and
// their share soon after; a removed one gets none, and no call fails.
func TestE2EFleetChanges(t *testing.T) {
	lbtest.Membership(t, serviceConfig(`{}`), nil)
}

// TestE2EWeights: weights from the resolver split calls 1:3 between equal
// backends, for one caller and for eight.
func TestE2EWeights(t *testing.T) {
	for _, workers := range []int{1, 8} {
		t.Run(fmt.Sprintf("callers=%d", workers), func(t *testing.T) {
			lbtest.WeightedSplit(t, serviceConfig(`{}`), workers, nil)
		})
	}
}

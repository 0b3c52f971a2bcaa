package consistenthash

import (
	"fmt"
	"slices"
	"testing"
)

func owner(r *ring, addrs []string, key string) string {
	return addrs[r.owners[r.search(hashKey(key))]]
}

func endpointAddrs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("10.0.0.%d:8080", i+1)
	}
	return out
}

func TestRingPlacementIsStable(t *testing.T) {
	addrs := endpointAddrs(4)
	r := newRing(addrs, nil, DefaultVirtualNodes)
	if len(r.hashes) != 4*DefaultVirtualNodes || !slices.IsSorted(r.hashes) {
		t.Fatalf("ring has %d nodes (sorted: %v), want %d sorted", len(r.hashes), slices.IsSorted(r.hashes), 4*DefaultVirtualNodes)
	}
	// Placement is a pure function of the addresses: the same in every
	// process, whatever the order the resolver lists them in. These values
	// pin xxhash64 of "<addr>_<k>": a change here moves every key of every
	// deployed client.
	if got := hashKey("customer-1"); got != 0x7c29938f9b3e2f98 {
		t.Fatalf("hashKey(customer-1) = %#x: the key hash changed", got)
	}
	golden := map[string]string{
		"customer-1": "10.0.0.3:8080",
		"customer-2": "10.0.0.4:8080",
		"order-42":   "10.0.0.2:8080",
		"":           "10.0.0.4:8080",
	}
	rev := slices.Clone(addrs)
	slices.Reverse(rev)
	r2 := newRing(rev, nil, DefaultVirtualNodes)
	for k, want := range golden {
		if got := owner(r, addrs, k); got != want {
			t.Errorf("key %q: owner %s, want %s", k, got, want)
		}
		if got := owner(r2, rev, k); got != want {
			t.Errorf("key %q: owner %s with the addresses reversed, want %s", k, got, want)
		}
	}
}

func TestRingSearchWraps(t *testing.T) {
	r := &ring{hashes: []uint64{10, 20, 30}, owners: []int32{0, 1, 2}}
	for _, tc := range []struct {
		h    uint64
		want int
	}{{0, 0}, {10, 0}, {11, 1}, {20, 1}, {30, 2}, {31, 0}, {^uint64(0), 0}} {
		if got := r.search(tc.h); got != tc.want {
			t.Errorf("search(%d) = %d, want %d", tc.h, got, tc.want)
		}
	}
}

func TestRingSharesAreEven(t *testing.T) {
	addrs := endpointAddrs(10)
	r := newRing(addrs, nil, DefaultVirtualNodes)
	count := map[string]int{}
	const keys = 100000
	for i := range keys {
		count[owner(r, addrs, fmt.Sprintf("key-%d", i))]++
	}
	for _, a := range addrs {
		// 160 virtual nodes: shares within about ±25% of 1/N.
		if n := count[a]; n < keys/10*3/4 || n > keys/10*5/4 {
			t.Errorf("%s owns %d of %d keys, want about %d", a, n, keys, keys/10)
		}
	}
}

// TestKeyMovement: adding an 11th endpoint moves only keys that now belong
// to it, and about 1/11 of them (at most 1.2 × 1/11); removing it moves
// them back.
func TestKeyMovement(t *testing.T) {
	addrs := endpointAddrs(11)
	before, after := newRing(addrs[:10], nil, DefaultVirtualNodes), newRing(addrs, nil, DefaultVirtualNodes)
	const keys = 100000
	moved := 0
	for i := range keys {
		k := fmt.Sprintf("key-%d", i)
		a, b := owner(before, addrs[:10], k), owner(after, addrs, k)
		if a != b {
			moved++
			if b != addrs[10] {
				t.Fatalf("key %q moved from %s to %s, not to the new endpoint", k, a, b)
			}
		}
	}
	frac := float64(moved) / keys
	t.Logf("adding 1 endpoint to 10 moved %.2f%% of keys (1/11 = 9.09%%)", 100*frac)
	if frac > 1.2/11 {
		t.Errorf("moved %.2f%% of keys, want <= %.2f%%", 100*frac, 100*1.2/11)
	}
	if frac < 0.5/11 {
		t.Errorf("moved %.2f%% of keys: the new endpoint is starved", 100*frac)
	}
}

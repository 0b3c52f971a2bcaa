package consistenthash

import (
	"cmp"
	"slices"
	"strconv"

	"github.com/cespare/xxhash/v2"
)

// ring is the hash ring: virtual nodes sorted by hash. Endpoint i (in
// address order) owns the nodes whose hash is xxhash64 of
// "<address>_<k>" for k in [0, vnodes × its weight); a key belongs to the
// first node at or after its own hash, wrapping around. The placement
// depends only on the addresses and weights, never on their order or on
// the process; an endpoint whose weight changes gains or loses nodes of
// its own, so only keys to or from it move.
type ring struct {
	hashes []uint64 // sorted
	owners []int32  // owners[i] is the endpoint index of hashes[i]
}

// maxRingNodes bounds the ring that weights make: 2^18 nodes (3 MiB,
// searched in 18 steps). A ring of unweighted endpoints is never scaled
// (virtualNodes × N, which the config bounds); weights that would take the
// ring beyond both are first divided by their greatest common divisor,
// then, if still too large, scaled down in proportion, each endpoint
// keeping at least one node. Reduced or scaled, a weight change moves keys
// between the other endpoints too, so weights are best kept to small
// integers.
//
// The division matters under xDS: grpc-go gives each endpoint its share
// of the priority as a fraction of 2^31, so weights 1:3 arrive as 2^29 and
// 3·2^29, and equal weights as equal multiples of a power of two. Divided,
// they make the ring that 1:3 and 1:1 make (hundreds of nodes, not 2^18,
// which take about 50 ms to build).
const maxRingNodes = 1 << 18

// ringNodes returns the virtual nodes of each endpoint: vnodes × weight
// (weights nil: vnodes each), with the weights reduced and scaled as
// maxRingNodes says when they would make the ring larger than that and
// than an unweighted one.
func ringNodes(n int, weights []uint32, vnodes int) []int {
	nodes := make([]int, n)
	weightOf := func(i int) uint64 {
		if weights == nil {
			return 1
		}
		return uint64(weights[i])
	}
	var total uint64
	for i := range nodes {
		total += weightOf(i) * uint64(vnodes)
	}
	limit := max(uint64(maxRingNodes), uint64(n*vnodes))
	div := uint64(1)
	if total > limit {
		var g uint64
		for i := range nodes {
			g = gcd(g, weightOf(i))
		}
		if g > 1 {
			div = g
			total /= g // exact: every term is a multiple of g
		}
	}
	for i := range nodes {
		k := weightOf(i) / div * uint64(vnodes)
		if total > limit {
			k = max(1, k*limit/total)
		}
		nodes[i] = int(k)
	}
	return nodes
}

// gcd returns the greatest common divisor of a and b (b when a is 0).
func gcd(a, b uint64) uint64 {
	for a != 0 {
		a, b = b%a, a
	}
	return b
}

// newRing builds the ring of addrs, weighted by weights (nil: all 1).
func newRing(addrs []string, weights []uint32, vnodes int) *ring {
	type vnode struct {
		hash  uint64
		owner int32
	}
	counts := ringNodes(len(addrs), weights, vnodes)
	size := 0
	for _, c := range counts {
		size += c
	}
	nodes := make([]vnode, 0, size)
	buf := make([]byte, 0, 64)
	for i, addr := range addrs {
		for k := range counts[i] {
			buf = append(append(append(buf[:0], addr...), '_'), strconv.Itoa(k)...)
			nodes = append(nodes, vnode{hash: xxhash.Sum64(buf), owner: int32(i)})
		}
	}
	// Ties (vanishingly rare) break by address, so placement stays
	// independent of input order.
	slices.SortFunc(nodes, func(a, b vnode) int {
		if c := cmp.Compare(a.hash, b.hash); c != 0 {
			return c
		}
		return cmp.Compare(addrs[a.owner], addrs[b.owner])
	})
	r := &ring{hashes: make([]uint64, len(nodes)), owners: make([]int32, len(nodes))}
	for i, n := range nodes {
		r.hashes[i], r.owners[i] = n.hash, n.owner
	}
	return r
}

// hashKey is the position of a call's key on the ring.
func hashKey(key string) uint64 { return xxhash.Sum64String(key) }

// search returns the index of the first node with hash >= h, wrapping to 0.
func (r *ring) search(h uint64) int {
	lo, hi := 0, len(r.hashes)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if r.hashes[m] < h {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == len(r.hashes) {
		return 0
	}
	return lo
}

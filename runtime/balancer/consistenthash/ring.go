package consistenthash

import (
	"cmp"
	"slices"
	"strconv"

	"github.com/cespare/xxhash/v2"
)

// ring is the hash ring: virtual nodes sorted by hash. Endpoint i (in
// address order) owns the nodes whose hash is xxhash64 of
// "<address>_<k>" for k in [0, vnodes); a key belongs to the first node at
// or after its own hash, wrapping around. The placement depends only on the
// addresses, never on their order or on the process.
type ring struct {
	hashes []uint64 // sorted
	owners []int32  // owners[i] is the endpoint index of hashes[i]
}

func newRing(addrs []string, vnodes int) *ring {
	type vnode struct {
		hash  uint64
		owner int32
	}
	nodes := make([]vnode, 0, len(addrs)*vnodes)
	buf := make([]byte, 0, 64)
	for i, addr := range addrs {
		for k := range vnodes {
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

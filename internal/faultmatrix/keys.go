package faultmatrix

import (
	"fmt"
	"math/rand/v2"
)

// ZipfKeys returns n hash keys drawn from a Zipf distribution (s = 1.1) over
// 1000 accounts: a few hot keys and a long tail, the same for a given seed.
func ZipfKeys(n int, seed uint64) []string {
	z := rand.NewZipf(rand.New(rand.NewPCG(seed, seed)), 1.1, 1, 999)
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("account-%d", z.Uint64())
	}
	return keys
}

//go:build !race

package peakewma

const raceEnabled = false

//go:build !race

package consistenthash

const raceEnabled = false

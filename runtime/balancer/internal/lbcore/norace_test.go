//go:build !race

package lbcore

const raceEnabled = false

// Package stats summarises repeated measurements: the median and the
// spread (min–max) of a handful of runs, as the report prints them.
package stats

import (
	"fmt"
	"slices"
)

// Summary is the median and range of repeated measurements.
type Summary struct {
	Median, Min, Max float64
	Q1, Q3           float64 // quartiles (nearest rank)
	N                int
}

// Of summarises xs; the zero Summary when xs is empty.
func Of(xs []float64) Summary {
	if len(xs) == 0 {
		return Summary{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	med := s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return Summary{Median: med, Min: s[0], Max: s[n-1], Q1: s[(n-1)/4], Q3: s[n-1-(n-1)/4], N: n}
}

// Spread is (max-min)/median, the relative width of the range.
func (s Summary) Spread() float64 {
	if s.Median == 0 {
		return 0
	}
	return (s.Max - s.Min) / s.Median
}

// Format prints the median with its range, each with verb f (such as "%.0f").
func (s Summary) Format(f string) string {
	if s.N <= 1 {
		return fmt.Sprintf(f, s.Median)
	}
	return fmt.Sprintf(f+" ("+f+"–"+f+")", s.Median, s.Min, s.Max)
}

// FormatIQR prints the median with its interquartile range.
func (s Summary) FormatIQR(f string) string {
	return fmt.Sprintf(f+" (IQR "+f+"–"+f+")", s.Median, s.Q1, s.Q3)
}

package subset

// Share is one backend of a client's aperture: its index in the sorted
// backend list, and how much of its arc of the ring the aperture covers,
// in (0, 1].
type Share struct {
	Index    int
	Fraction float64
}

// Aperture returns the backends that client index of count connects to
// when each connects to about size of backends: Finagle's deterministic
// aperture ("Deterministic Aperture: A distributed, load balancing
// algorithm", Twitter, 2019).
//
// Backends and clients are laid on one ring: backend k over [k/B, (k+1)/B),
// client i's aperture over [i/C, i/C + w). The width w is size/B rounded
// up to a whole number of client slots (1/C each), so that every point of
// the ring lies in exactly w × C apertures. A client connects to the
// backends its aperture overlaps, the two at its ends in part; weighting
// each by the part covered (Fraction), every backend then gets the same
// share of the calls, exactly, and the same number of connections, give or
// take one, where random subsets spread both binomially. With 1000 clients
// of 20 over 100 backends the width is size/B already; with 7 clients it
// grows to 2/7 of the ring (29 backends each), since 1.4 apertures over a
// point would load some backends twice as much as others.
//
// The arithmetic is exact: positions are integers in units of 1/(B × C).
// With size >= backends, or a width that covers the ring, every backend is
// in the aperture whole. index must be in [0, count).
func Aperture(backends, size, index, count int) []Share {
	if backends <= 0 {
		return nil
	}
	if size >= backends || count < 1 {
		return whole(backends)
	}
	b, c := int64(backends), int64(count)
	ring := b * c
	// size/B, in units of 1/(B×C), rounded up to a multiple of B (1/C).
	width := (int64(size)*c + b - 1) / b * b
	if width >= ring {
		return whole(backends)
	}
	start := int64(index) * b
	end := start + width
	var out []Share
	for k := start / c; k*c < end; k++ {
		lo, hi := max(start, k*c), min(end, (k+1)*c)
		if hi <= lo {
			continue
		}
		// An aperture narrower than the ring never reaches round to the
		// backend it starts in: that takes a width above (B-1)/B, which
		// rounding to whole client slots makes the whole ring.
		out = append(out, Share{Index: int(k % b), Fraction: float64(hi-lo) / float64(c)})
	}
	return out
}

func whole(n int) []Share {
	out := make([]Share, n)
	for i := range out {
		out[i] = Share{Index: i, Fraction: 1}
	}
	return out
}

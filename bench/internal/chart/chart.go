// Package chart draws the report's latency charts with gonum.org/v1/plot.
package chart

import (
	"fmt"
	"image/color"
	"math"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Series is one named latency sample, sorted ascending.
type Series struct {
	Name      string
	Latencies []time.Duration
	Dashed    bool
}

// nines maps a percentile p (0–100) to the x axis: -log10(1 - p/100), so
// that p50, p90, p99 and p99.9 sit at 0.3, 1, 2 and 3.
func nines(p float64) float64 { return -math.Log10(1 - p/100) }

// Percentiles writes an SVG or PNG (by the file's extension) of the
// percentile curves of series: latency on a log axis against the
// percentile on a "nines" axis, up to p99.9 or as far as the samples go.
func Percentiles(path, title string, series []Series) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "percentile"
	p.Y.Label.Text = "latency (ms, log scale)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.X.Tick.Marker = plot.ConstantTicks{
		{Value: nines(0), Label: "p0"}, {Value: nines(50), Label: "p50"}, {Value: nines(90), Label: "p90"},
		{Value: nines(99), Label: "p99"}, {Value: nines(99.9), Label: "p99.9"},
	}
	p.X.Min, p.X.Max = 0, nines(99.9)
	p.Legend.Top = true
	p.Legend.Left = true
	p.Add(plotter.NewGrid())
	for i, s := range series {
		pts := curve(s.Latencies, 300)
		if len(pts) == 0 {
			continue
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return fmt.Errorf("chart %s: %w", s.Name, err)
		}
		l.Color = plotutil.Color(i)
		l.Width = vg.Points(1.5)
		if s.Dashed {
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
			l.Color = color.Gray{Y: 90}
		}
		p.Add(l)
		p.Legend.Add(s.Name, l)
	}
	p.Legend.ThumbnailWidth = vg.Points(20)
	p.Legend.TextStyle.Font.Size = vg.Points(9)
	p.Legend.Padding = vg.Points(2)
	return p.Save(7*vg.Inch, 4.5*vg.Inch, path)
}

// curve samples the percentile curve of sorted latencies at about n points
// evenly spaced on the nines axis.
func curve(lat []time.Duration, n int) plotter.XYs {
	if len(lat) == 0 {
		return nil
	}
	maxX := min(nines(99.9), nines(100*(1-1/float64(len(lat)))))
	var pts plotter.XYs
	for k := 0; k <= n; k++ {
		x := maxX * float64(k) / float64(n)
		q := 1 - math.Pow(10, -x) // quantile
		idx := min(int(q*float64(len(lat))), len(lat)-1)
		ms := float64(lat[idx]) / float64(time.Millisecond)
		pts = append(pts, plotter.XY{X: x, Y: max(ms, 0.01)})
	}
	return pts
}

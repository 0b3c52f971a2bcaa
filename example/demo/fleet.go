package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/lbclient/lbclient/example/backend"
	"github.com/lbclient/lbclient/runtime"
)

// The fleet scenario's timeline: the file lists three backends, then five
// from grownAt, then four (the first removed) from shrunkAt, until
// fleetRun.
const (
	grownAt  = 2 * time.Second
	shrunkAt = 4 * time.Second
	fleetRun = 6 * time.Second
)

// fleetRound is one policy's run of the fleet scenario: per second, the
// calls each backend answered, and the calls that failed.
type fleetRound struct {
	policy  runtime.Policy
	seconds [][]int64 // [second][backend]
	failed  int
	calls   int
}

// writeFleet writes the file resolver's JSON listing bs, as configuration
// tools do: to a temporary file in the same directory, then renamed over
// the old one, so that the resolver never reads half a file.
func writeFleet(path string, bs []*backend.Backend) error {
	type entry struct {
		Address string `json:"address"`
	}
	var doc struct {
		Endpoints []entry `json:"endpoints"`
	}
	for _, b := range bs {
		doc.Endpoints = append(doc.Endpoints, entry{b.Addr()})
	}
	data, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// fleetScenario grows a fleet from three backends to five and shrinks it
// to four under load, through the file:/// resolver, for ROUND_ROBIN and
// PEAK_EWMA, and prints each second's shares and the failed calls.
func fleetScenario(ctx context.Context, w io.Writer, cfg config) error {
	fmt.Fprintf(w, "\n== Fleet changes: a file:/// target lists backend-1..3, adds backend-4 and -5 at %v, drops backend-1 at %v; %d callers ==\n", grownAt, shrunkAt, cfg.workers)
	dir, err := os.MkdirTemp("", "lbclient-demo-fleet-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var rounds []fleetRound
	for _, p := range []runtime.Policy{runtime.RoundRobin, runtime.PeakEWMA} {
		r, err := fleetRun1(ctx, filepath.Join(dir, "fleet.json"), p, cfg)
		if err != nil {
			return err
		}
		rounds = append(rounds, r)
	}
	tw := table(w)
	fmt.Fprintf(tw, "policy\tsecond\t")
	for i := range 5 {
		fmt.Fprintf(tw, "backend-%d\t", i+1)
	}
	fmt.Fprintf(tw, "calls\t\n")
	for _, r := range rounds {
		for s, per := range r.seconds {
			var n int64
			for _, c := range per {
				n += c
			}
			name := ""
			if s == 0 {
				name = r.policy.String()
			}
			fmt.Fprintf(tw, "%s\t%d-%d s\t", name, s, s+1)
			for _, c := range per {
				fmt.Fprintf(tw, "%s\t", pct(float64(c)/float64(max(n, 1))))
			}
			fmt.Fprintf(tw, "%d\t\n", n)
		}
	}
	tw.Flush()
	for _, r := range rounds {
		fmt.Fprintf(w, "%s: %d calls, %d failed\n", r.policy, r.calls, r.failed)
	}
	fmt.Fprintln(w, "(backend-4 and -5 get their share within the second they are listed; backend-1 gets no call once it is dropped, and its calls under way finish)")
	return nil
}

// fleetRun1 runs the fleet scenario once, for policy p, on fresh backends.
func fleetRun1(ctx context.Context, path string, p runtime.Policy, cfg config) (fleetRound, error) {
	f, err := startFleet(5, fastDelay)
	if err != nil {
		return fleetRound{}, err
	}
	defer f.Stop()
	if err := writeFleet(path, f[:3]); err != nil {
		return fleetRound{}, err
	}
	v := variant{name: p.String(), rules: true, opts: []runtime.Option{runtime.WithPolicy(p)}}
	c, closeConn, err := v.client("file://" + path)
	if err != nil {
		return fleetRound{}, err
	}
	defer closeConn()
	if err := allReady(ctx, c.Conn(), 3); err != nil {
		return fleetRound{}, err
	}

	// The timeline runs beside the load: it changes the file on time and
	// reads the backends' own counters at each second.
	r := fleetRound{policy: p}
	timeline := make(chan error, 1)
	go func() {
		start := time.Now()
		last := counts(f)
		for s := 1; s <= int(fleetRun/time.Second); s++ {
			time.Sleep(time.Until(start.Add(time.Duration(s) * time.Second)))
			now := counts(f)
			per := make([]int64, len(f))
			for i := range f {
				per[i] = now[i] - last[i]
			}
			r.seconds = append(r.seconds, per)
			last = now
			var err error
			switch time.Duration(s) * time.Second {
			case grownAt:
				err = writeFleet(path, f)
			case shrunkAt:
				err = writeFleet(path, f[1:])
			}
			if err != nil {
				timeline <- err
				return
			}
		}
		timeline <- nil
	}()
	res, err := driveClient(ctx, c, v, config{calls: 1 << 24, workers: cfg.workers, duration: fleetRun}, nil)
	if terr := <-timeline; terr != nil {
		return r, terr
	}
	r.calls, r.failed = len(res.Latencies), res.Errors
	return r, err
}

func counts(f backend.Fleet) []int64 {
	out := make([]int64, len(f))
	for i, b := range f {
		out[i] = b.Calls()
	}
	return out
}

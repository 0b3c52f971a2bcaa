// Command bench reruns lbclient's benchmarks and rewrites BENCHMARKS.md and
// its charts. From the repository root:
//
//	go -C bench run ./cmd/bench
//
// It measures, on this machine only (loopback and in-memory connections):
//
//  1. call overhead: unary calls through lbclient, policy by policy, against
//     the plain protoc-gen-go-grpc stub on grpc.NewClient with round_robin;
//  2. picking quality: closed-loop load on four local backends, one slow or
//     one failing, per policy, with and without hedging;
//  3. generator speed: protoc-gen-go-lbclient against protoc-gen-go-grpc on
//     one large generated CodeGeneratorRequest;
//  4. the fault matrix: each policy with one backend hung, half-open, slow,
//     failing, cold or beside long streams (internal/faultmatrix);
//  5. picker cost: the balancers' BenchmarkPick (go test -bench), lbclient's
//     pickers against grpc-go's least_request in the same run.
//
// Flags:
//
//	-sections overhead,quality,generator,faults,pickers,subsetting,discovery   the sections to run (default all)
//	-quick                                                a tiny run, to try the harness (numbers meaningless)
//	-out FILE                                             where to write the report (default BENCHMARKS.md at the root)
//	-charts DIR                                           where to write the charts (default bench/charts)
//
// Every load is bounded in calls and in time; the whole run takes about
// twelve minutes on two cores, seven of them the fault matrix.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lbclient/lbclient/bench/internal/genspeed"
)

func main() {
	genspeed.MaybeRunner() // when it is the go-between of a plugin run
	log.SetFlags(0)
	log.SetPrefix("bench: ")
	sections := flag.String("sections", "overhead,quality,generator,faults,pickers,subsetting,discovery", "comma-separated sections to run")
	quick := flag.Bool("quick", false, "a tiny run, to try the harness; the numbers mean nothing")
	out := flag.String("out", "", "report file (default: BENCHMARKS.md at the repository root)")
	charts := flag.String("charts", "", "chart directory (default: bench/charts at the repository root)")
	flag.Parse()

	root, err := repoRoot()
	if err != nil {
		log.Fatal(err)
	}
	if *out == "" {
		*out = filepath.Join(root, "BENCHMARKS.md")
	}
	if *charts == "" {
		*charts = filepath.Join(root, "bench", "charts")
	}
	if err := os.MkdirAll(*charts, 0o755); err != nil {
		log.Fatal(err)
	}
	r := &report{root: root, quick: *quick, chartDir: *charts, outPath: *out, start: time.Now()}
	r.machine()
	want := map[string]bool{}
	for _, s := range strings.Split(*sections, ",") {
		want[strings.TrimSpace(s)] = true
	}
	steps := []struct {
		name string
		run  func(*report) error
	}{
		{"overhead", (*report).overhead},
		{"quality", (*report).quality},
		{"generator", (*report).generator},
		{"faults", (*report).faults},
		{"pickers", (*report).pickers},
		{"subsetting", (*report).subsetting},
		{"discovery", (*report).discovery},
	}
	for _, s := range steps {
		if !want[s.name] {
			continue
		}
		t0 := time.Now()
		if err := s.run(r); err != nil {
			log.Fatalf("%s: %v", s.name, err)
		}
		log.Printf("%s done in %v", s.name, time.Since(t0).Round(time.Second))
	}
	r.elapsed = time.Since(r.start)
	var buf bytes.Buffer
	r.write(&buf)
	if err := os.WriteFile(*out, buf.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}
	log.Printf("wrote %s in %v", *out, r.elapsed.Round(time.Second))
}

// repoRoot finds the root of the lbclient repository from the working
// directory: the first parent whose go.mod is lbclient's module.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.HasPrefix(string(b), "module github.com/lbclient/lbclient\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("not inside the lbclient repository; run from its root: go -C bench run ./cmd/bench")
		}
		dir = parent
	}
}

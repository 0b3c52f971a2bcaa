// Package pickers runs the balancers' own Go benchmarks of Pick and Done
// (BenchmarkPick in runtime/balancer/...) with go test, and reads their
// standard benchmark output: the cost of a pick of each policy, lbclient's
// and grpc-go's, in the same run.
package pickers

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

// Packages are the packages whose BenchmarkPick is run.
const Packages = "./runtime/balancer/..."

// Args are go test's arguments for count runs of each benchmark, each run
// for benchtime ("" for go test's default, 1s). -p 1 runs one package at a
// time, so that two packages' benchmarks never share the two cores.
func Args(count int, benchtime string) []string {
	args := []string{"test", "-p", "1", "-run", "^$", "-bench", "BenchmarkPick", "-benchmem", "-count", strconv.Itoa(count)}
	if benchtime != "" {
		args = append(args, "-benchtime", benchtime)
	}
	return append(args, Packages)
}

// Run runs the benchmarks from the repository root and returns their
// results, and go test's output for the record.
func Run(root string, count int, benchtime string, progress io.Writer) ([]Result, []byte, error) {
	cmd := exec.Command("go", Args(count, benchtime)...)
	cmd.Dir = root
	var out bytes.Buffer
	w := io.Writer(&out)
	if progress != nil {
		w = io.MultiWriter(&out, progress)
	}
	cmd.Stdout = w
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return nil, out.Bytes(), fmt.Errorf("go %s: %w", strings.Join(Args(count, benchtime), " "), err)
	}
	rs, err := Parse(bytes.NewReader(out.Bytes()))
	return rs, out.Bytes(), err
}

// Result is one benchmark's runs.
type Result struct {
	// Pkg is the package's import path, from go test's "pkg:" line.
	Pkg string
	// Name is the benchmark's name without "BenchmarkPick/" and without
	// the GOMAXPROCS suffix: "lbclient_peak_ewma/serial".
	Name string
	// NsPerOp, AllocsPerOp and BytesPerOp hold one value per run.
	NsPerOp, AllocsPerOp, BytesPerOp []float64
}

// Case is the name without its last element: the policy, and for
// consistent hashing whether the call is keyed ("consistent_hash/keyed").
func (r Result) Case() string {
	c, _ := splitPath(r.Name)
	return c
}

// Path is the name's last element: "serial", "parallel",
// "hedged-3-attempts".
func (r Result) Path() string {
	_, p := splitPath(r.Name)
	return p
}

func splitPath(name string) (string, string) {
	i := strings.LastIndex(name, "/")
	if i < 0 {
		return name, ""
	}
	return name[:i], name[i+1:]
}

var (
	procsSuffix = regexp.MustCompile(`-\d+$`)
	hedgedPath  = regexp.MustCompile(`^hedged-(\d+)-attempts?$`)
)

// Attempts is the number of picks one iteration of the benchmark makes: N
// for a path named hedged-N-attempts, else 1.
func (r Result) Attempts() int {
	if m := hedgedPath.FindStringSubmatch(r.Path()); m != nil {
		if n, err := strconv.Atoi(m[1]); err == nil && n > 0 {
			return n
		}
	}
	return 1
}

// Hedged reports whether the benchmark picks the attempts of a hedged call.
func (r Result) Hedged() bool { return hedgedPath.MatchString(r.Path()) }

// grpcPolicies are the names grpc-go's own policies have in the
// benchmarks' names; any other case is lbclient's (its policies, or a
// grpc-go policy under lbclient's observe wrapper).
var grpcPolicies = map[string]bool{
	"pick_first":                 true,
	"round_robin":                true,
	"least_request":              true,
	"least_request_experimental": true,
	"weighted_round_robin":       true,
}

// Lbclient reports whether the benchmark picks through lbclient's code.
func (r Result) Lbclient() bool { return !grpcPolicies[r.Case()] }

// LeastRequest reports whether the benchmark is grpc-go's least_request.
func (r Result) LeastRequest() bool {
	return r.Case() == "least_request" || r.Case() == "least_request_experimental"
}

// Parse reads go test's benchmark output: "pkg:" lines, and result lines
// "BenchmarkPick/<name>-<procs> <iterations> <value> <unit>...". Results of
// the same package and name are gathered, in their order of first
// appearance.
func Parse(r io.Reader) ([]Result, error) {
	var (
		out []Result
		pkg string
		at  = map[string]int{}
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = strings.TrimSpace(p)
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "BenchmarkPick/") {
			continue
		}
		if _, err := strconv.Atoi(f[1]); err != nil {
			continue // not a result line (a benchmark's own log output)
		}
		name := procsSuffix.ReplaceAllString(strings.TrimPrefix(f[0], "BenchmarkPick/"), "")
		key := pkg + " " + name
		i, ok := at[key]
		if !ok {
			i = len(out)
			at[key] = i
			out = append(out, Result{Pkg: pkg, Name: name})
		}
		res := &out[i]
		for j := 2; j+1 < len(f); j += 2 {
			v, err := strconv.ParseFloat(f[j], 64)
			if err != nil {
				return nil, fmt.Errorf("%q: value %q: %w", line, f[j], err)
			}
			switch f[j+1] {
			case "ns/op":
				res.NsPerOp = append(res.NsPerOp, v)
			case "allocs/op":
				res.AllocsPerOp = append(res.AllocsPerOp, v)
			case "B/op":
				res.BytesPerOp = append(res.BytesPerOp, v)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no BenchmarkPick results in go test's output")
	}
	return out, nil
}

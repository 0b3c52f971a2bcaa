package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// A quickStartStep is one marked block of the README's quick start: a
// file to write or a shell script to run, for every variant or for one
// ("buf", "protoc").
type quickStartStep struct {
	kind    string // "file" or "run"
	path    string // for a file: where it goes, relative to the directory
	variant string // "" for every variant
	body    string
}

// quickStartMarker marks a block: <!-- quickstart: file PATH [VARIANT] -->
// or <!-- quickstart: run [VARIANT] -->, on the line before its fence.
var quickStartMarker = regexp.MustCompile(`^<!-- quickstart: (file \S+|run)(?: (\S+))? -->$`)

// readQuickStart returns the marked blocks of README.md, in order.
func readQuickStart(t *testing.T) []quickStartStep {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var steps []quickStartStep
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := quickStartMarker.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		s := quickStartStep{kind: "run", variant: m[2]}
		if p, ok := strings.CutPrefix(m[1], "file "); ok {
			s.kind, s.path = "file", p
		}
		if !sc.Scan() || !strings.HasPrefix(sc.Text(), "```") {
			t.Fatalf("README.md: %s is not followed by a fenced block", sc.Text())
		}
		var body strings.Builder
		for sc.Scan() && sc.Text() != "```" {
			body.WriteString(sc.Text() + "\n")
		}
		s.body = body.String()
		steps = append(steps, s)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(steps) < 5 {
		t.Fatalf("README.md has %d quick start blocks; the markers are gone?", len(steps))
	}
	return steps
}

// TestQuickStart follows the README's quick start as written, in an empty
// directory, once with protoc and once with buf, and checks that it
// generates the three files and builds. Two things differ from a user's
// machine, and only in the environment: the lbclient module is this
// repository (a replace directive, added right after "go mod init", since
// no registry serves it to the test), and modules come from the local
// module cache first (GOPROXY=file://...; GOSUMDB=off, the cache's modules
// having been verified when they were downloaded), so that the test runs
// offline once scripts/test has filled the cache. GOPATH is a temporary
// directory, so that "go install tool" installs there; the module cache
// stays the machine's.
func TestQuickStart(t *testing.T) {
	requireProtoc(t)
	steps := readQuickStart(t)
	bufBin := t.TempDir()
	run(t, repoRoot, nil, "go", "build", "-modfile=tools/go.mod", "-o", filepath.Join(bufBin, "buf"), "github.com/bufbuild/buf/cmd/buf")
	modCache := strings.TrimSpace(run(t, repoRoot, nil, "go", "env", "GOMODCACHE"))
	proxy := "file://" + filepath.ToSlash(filepath.Join(modCache, "cache", "download"))
	if p := strings.TrimSpace(run(t, repoRoot, nil, "go", "env", "GOPROXY")); p != "" && p != "off" {
		proxy += "," + p
	}
	for _, variant := range []string{"protoc", "buf"} {
		t.Run(variant, func(t *testing.T) {
			dir := t.TempDir()
			env := []string{
				"GOPATH=" + t.TempDir(), "GOMODCACHE=" + modCache, "GOBIN=", "GOFLAGS=", "GOWORK=off",
				"GOPROXY=" + proxy, "GOSUMDB=off",
				"PATH=" + bufBin + string(os.PathListSeparator) + os.Getenv("PATH"),
			}
			replaced := false
			for i, s := range steps {
				if s.variant != "" && s.variant != variant {
					continue
				}
				switch s.kind {
				case "file":
					write(t, filepath.Join(dir, s.path), s.body)
				case "run":
					var script strings.Builder
					for line := range strings.Lines(s.body) {
						script.WriteString(line)
						if strings.HasPrefix(line, "go mod init ") {
							script.WriteString("go mod edit -replace github.com/lbclient/lbclient=" + repoRoot + "\n")
							replaced = true
						}
					}
					cmd := exec.Command("bash", "-euo", "pipefail", "-c", script.String())
					cmd.Dir = dir
					cmd.Env = append(os.Environ(), env...)
					if out, err := cmd.CombinedOutput(); err != nil {
						t.Fatalf("quick start block %d (%s):\n%s\n%v\n%s", i+1, variant, s.body, err, out)
					}
				}
			}
			if !replaced {
				t.Fatal(`no quick start block runs "go mod init": the test cannot point the module at this repository`)
			}
			for _, f := range []string{"gen/greeter/v1/greeter.pb.go", "gen/greeter/v1/greeter_grpc.pb.go", "gen/greeter/v1/greeterv1lbclient/greeter.lbclient.go"} {
				if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
					t.Errorf("the quick start did not generate %s: %v", f, err)
				}
			}
			if _, err := os.Stat(filepath.Join(dir, "gen", "lbclient")); err == nil {
				t.Errorf("the quick start generated code for lbclient.proto itself, in gen/lbclient")
			}
			run(t, dir, env, "go", "vet", "./...")
		})
	}
}

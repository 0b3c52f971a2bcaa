package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/lbclient/lbclient/internal/generator"
)

var repoRoot = func() string {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		panic(err)
	}
	return root
}()

var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

// TestMain checks for leaked goroutines once the tests have run, then
// removes the binaries built for them.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		if binDir != "" {
			os.RemoveAll(binDir)
		}
		os.Exit(code)
	}))
}

// binaries builds, once per test binary, this plugin and protoc-gen-go and
// protoc-gen-go-grpc from the tools module into one directory, for PATH.
func binaries(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "lbclient-e2e-bin-"); binErr != nil {
			return
		}
		builds := [][]string{
			{"go", "build", "-o", filepath.Join(binDir, "protoc-gen-go-lbclient"), "./cmd/protoc-gen-go-lbclient"},
			{"go", "build", "-modfile=tools/go.mod", "-o", filepath.Join(binDir, "protoc-gen-go"), "google.golang.org/protobuf/cmd/protoc-gen-go"},
			{"go", "build", "-modfile=tools/go.mod", "-o", filepath.Join(binDir, "protoc-gen-go-grpc"), "google.golang.org/grpc/cmd/protoc-gen-go-grpc"},
		}
		for _, b := range builds {
			cmd := exec.Command(b[0], b[1:]...)
			cmd.Dir = repoRoot
			if out, err := cmd.CombinedOutput(); err != nil {
				binErr = fmt.Errorf("%s: %v\n%s", strings.Join(b, " "), err, out)
				return
			}
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binDir
}

func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s (in %s): %v\n%s", name, strings.Join(args, " "), dir, err, out.Bytes())
	}
	return out.String()
}

func TestVersion(t *testing.T) {
	out := run(t, repoRoot, nil, filepath.Join(binaries(t), "protoc-gen-go-lbclient"), "--version")
	if want := "protoc-gen-go-lbclient " + generator.Version + "\n"; out != want {
		t.Errorf("--version printed %q, want %q", out, want)
	}
}

func TestHelpAndBadArguments(t *testing.T) {
	plugin := filepath.Join(binaries(t), "protoc-gen-go-lbclient")
	if out := run(t, repoRoot, nil, plugin, "--help"); !strings.Contains(out, "package_suffix") {
		t.Errorf("--help does not document package_suffix:\n%s", out)
	}
	cmd := exec.Command(plugin, "--bogus")
	if err := cmd.Run(); err == nil {
		t.Error("an unknown argument did not fail")
	}
}

// TestPluginReportsBadOption runs the binary on a request with an unknown
// option: the error goes into the response and the exit status is 0, as
// protoc expects.
func TestPluginReportsBadOption(t *testing.T) {
	requireProtoc(t)
	dir := t.TempDir()
	cmd := exec.Command("protoc", "-I", filepath.Join(repoRoot, "proto"), "-I", "testdata",
		"--plugin=protoc-gen-go-lbclient="+filepath.Join(binaries(t), "protoc-gen-go-lbclient"),
		"--go-lbclient_out="+dir, "--go-lbclient_opt=colour=blue", "shop/v1/shop.proto")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "colour") {
		t.Errorf("protoc with an unknown option: %v\n%s", err, out)
	}
}

func requireProtoc(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("protoc"); err != nil {
		t.Fatal("protoc is not on PATH: install protobuf-compiler (apt-get install protobuf-compiler); CI installs it")
	}
}

// e2eModule stages a module with the lbclient annotations and the shop
// service as a buf workspace, and a go.mod that uses this repository's
// lbclient module and pins the plugins as tools.
func e2eModule(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(filepath.Join(dir, "proto"), os.DirFS(filepath.Join(repoRoot, "proto"))); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(filepath.Join(dir, "protos"), os.DirFS(filepath.Join("testdata"))); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, "protos", "shop_test.go.txt"))
	write(t, filepath.Join(dir, "buf.yaml"), "version: v2\nmodules:\n  - path: proto\n  - path: protos\n")
	tools, err := os.ReadFile(filepath.Join(repoRoot, "tools", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	grpcGen := regexp.MustCompile(`google.golang.org/grpc/cmd/protoc-gen-go-grpc (v\S+)`).FindSubmatch(tools)
	if grpcGen == nil {
		t.Fatal("tools/go.mod does not pin protoc-gen-go-grpc")
	}
	write(t, filepath.Join(dir, "go.mod"), "module example.com/e2e\n\ngo 1.26\n\n"+
		"tool (\n\tgithub.com/lbclient/lbclient/cmd/protoc-gen-go-lbclient\n\tgoogle.golang.org/grpc/cmd/protoc-gen-go-grpc\n\tgoogle.golang.org/protobuf/cmd/protoc-gen-go\n)\n\n"+
		"require (\n\tgithub.com/lbclient/lbclient v0.0.0-00010101000000-000000000000\n\tgoogle.golang.org/grpc/cmd/protoc-gen-go-grpc "+string(grpcGen[1])+"\n)\n\n"+
		"replace github.com/lbclient/lbclient => "+repoRoot+"\n")
	var sum []byte
	for _, f := range []string{"go.sum", "tools/go.sum"} {
		b, err := os.ReadFile(filepath.Join(repoRoot, f))
		if err != nil {
			t.Fatal(err)
		}
		sum = append(sum, b...)
	}
	write(t, filepath.Join(dir, "go.sum"), string(sum))
	return dir
}

func write(t *testing.T, name, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// goEnv lets the go command complete the temporary module's go.mod.
var goEnv = []string{"GOFLAGS=-mod=mod", "GOWORK=off"}

// checkOutput builds and vets the generated code of dir, which must hold
// the three plugins' files.
func checkOutput(t *testing.T, dir string) {
	t.Helper()
	for _, f := range []string{"gen/shop/v1/shop.pb.go", "gen/shop/v1/shop_grpc.pb.go", "gen/shop/v1/shopv1lbclient/shop.lbclient.go"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("not generated: %v", err)
		}
	}
	run(t, dir, goEnv, "go", "build", "./...")
	run(t, dir, goEnv, "go", "vet", "./...")
}

// TestBufTemplates runs buf generate with every template of templates/ on
// the shop service and builds and vets the output.
func TestBufTemplates(t *testing.T) {
	bin := binaries(t)
	templates, err := filepath.Glob(filepath.Join(repoRoot, "templates", "*.yaml"))
	if err != nil || len(templates) == 0 {
		t.Fatalf("no templates: %v", err)
	}
	buf := []string{"tool", "-modfile=" + filepath.Join(repoRoot, "tools", "go.mod"), "buf"}
	for _, tmpl := range templates {
		t.Run(filepath.Base(tmpl), func(t *testing.T) {
			dir := e2eModule(t)
			env := append([]string{"PATH=" + bin + string(os.PathListSeparator) + os.Getenv("PATH")}, goEnv...)
			// Resolve the module's tools before buf runs them side by side.
			run(t, dir, goEnv, "go", "build", "-o", os.DevNull, "tool")
			run(t, dir, env, "go", append(buf, "generate", "--template", tmpl, "--path", "protos/shop")...)
			checkOutput(t, dir)
		})
	}
}

// TestProtoc runs protoc with the three plugins from PATH, builds and vets
// the output, and runs a test of the generated client against a server.
func TestProtoc(t *testing.T) {
	requireProtoc(t)
	bin := binaries(t)
	dir := e2eModule(t)
	if err := os.MkdirAll(filepath.Join(dir, "gen"), 0o755); err != nil {
		t.Fatal(err)
	}
	env := []string{"PATH=" + bin + string(os.PathListSeparator) + os.Getenv("PATH")}
	run(t, dir, env, "protoc", "-I", "proto", "-I", "protos",
		"--go_out=gen", "--go_opt=paths=source_relative",
		"--go-grpc_out=gen", "--go-grpc_opt=paths=source_relative",
		"--go-lbclient_out=gen", "--go-lbclient_opt=paths=source_relative",
		"shop/v1/shop.proto")
	checkOutput(t, dir)

	src, err := os.ReadFile(filepath.Join("testdata", "shop_test.go.txt"))
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "shop_test.go"), string(src))
	run(t, dir, goEnv, "go", "test", "-count=1", ".")
}

// TestErrorsNameTheLine runs protoc on a file with a bad annotation: the
// plugin's error names the file, line and column of the option, as
// protoc's own errors do, and protoc fails with it.
func TestErrorsNameTheLine(t *testing.T) {
	requireProtoc(t)
	dir := t.TempDir()
	write(t, filepath.Join(dir, "bad/v1/bad.proto"), `syntax = "proto3";
package bad.v1;
import "lbclient/v1/lbclient.proto";
option go_package = "example.com/bad/v1;badv1";
message M {}
service S {
  rpc Get(M) returns (M) {
    option (lbclient.v1.method) = {timeout: "5q"};
  }
}
`)
	cmd := exec.Command("protoc", "-I", filepath.Join(repoRoot, "proto"), "-I", dir,
		"--plugin=protoc-gen-go-lbclient="+filepath.Join(binaries(t), "protoc-gen-go-lbclient"),
		"--go-lbclient_out="+t.TempDir(), "bad/v1/bad.proto")
	out, err := cmd.CombinedOutput()
	const want = `bad/v1/bad.proto:8:5: method bad.v1.S.Get: (lbclient.v1.method).timeout: invalid duration "5q"`
	if err == nil || !strings.Contains(string(out), want) {
		t.Errorf("protoc on a bad annotation: %v\n%s\nwant the error %q", err, out, want)
	}
}

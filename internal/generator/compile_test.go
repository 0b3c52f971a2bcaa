package generator

import (
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dave/jennifer/jen"
	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/pluginpb"
)

// TestGoldensCompile writes the golden files of every case that generates
// code into a temporary module, next to protoc-gen-go's and
// protoc-gen-go-grpc's output for the same request, adds a file asserting
// that each generated client satisfies protoc-gen-go-grpc's client
// interface, and runs go vet on it all: the goldens build and are vet-clean,
// and the clients are drop-ins.
func TestGoldensCompile(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles a module; skipped in -short mode")
	}
	t.Parallel()
	mod := t.TempDir()
	writeModule(t, mod, modulePrefix)
	protocGenGo := toolBinary(t, "google.golang.org/protobuf/cmd/protoc-gen-go")
	protocGenGoGRPC := toolBinary(t, "google.golang.org/grpc/cmd/protoc-gen-go-grpc")

	assertions := jen.NewFilePathName(modulePrefix+"/assertions", "assertions")
	for _, c := range loadCases(t) {
		if _, err := os.Stat(filepath.Join("testdata", c.name, "errors.golden")); err == nil {
			continue
		}
		req := caseRequest(t, c)
		resp := runPlugin(req)
		if resp.GetError() != "" {
			t.Fatalf("%s: %s", c.name, resp.GetError())
		}
		for _, f := range resp.GetFile() {
			golden, err := os.ReadFile(goldenName(c, f.GetName()))
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(mod, f.GetName()), golden)
		}
		other := proto.CloneOf(req)
		other.Parameter = proto.String("module=" + modulePrefix)
		for _, plugin := range []string{protocGenGo, protocGenGoGRPC} {
			writeResponse(t, mod, execPlugin(t, plugin, other))
		}
		addAssertions(t, assertions, req)
	}
	var buf strings.Builder
	if err := assertions.Render(&buf); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(mod, "assertions", "assertions.go"), []byte(buf.String()))

	run(t, mod, goEnv, "go", "vet", "./...")
}

// addAssertions adds to f, for every service of req's files, the assertion
// that the generated client implements protoc-gen-go-grpc's interface.
func addAssertions(t *testing.T, f *jen.File, req *pluginpb.CodeGeneratorRequest) {
	t.Helper()
	var flags = map[string]string{}
	suffix := DefaultPackageSuffix
	for _, p := range strings.Split(req.GetParameter(), ",") {
		if k, v, ok := strings.Cut(p, "="); ok {
			flags[k] = v
		}
	}
	if s, ok := flags["package_suffix"]; ok {
		suffix = s
	}
	gen, err := protogen.Options{ParamFunc: func(string, string) error { return nil }}.New(req)
	if err != nil {
		t.Fatal(err)
	}
	files, err := build(gen, Options{PackageSuffix: suffix})
	if err != nil {
		t.Fatal(err)
	}
	for _, fm := range files {
		for _, s := range fm.services {
			iface := jen.Qual(string(fm.file.GoImportPath), s.svc.GoName+"Client")
			f.Var().Id("_").Add(iface).Op("=").Parens(jen.Op("*").Qual(string(fm.importPath), s.names.Client)).Parens(jen.Nil())
		}
	}
}

// goEnv runs the go command on temporary modules: module mode that may
// complete go.mod, outside any workspace.
var goEnv = []string{"GOFLAGS=-mod=mod", "GOWORK=off"}

// writeModule writes go.mod and go.sum of a temporary module that uses the
// lbclient module of this repository; go.sum starts as lbclient's.
func writeModule(t *testing.T, dir, module string) {
	t.Helper()
	goMod := "module " + module + "\n\ngo 1.26\n\n" +
		"require github.com/lbclient/lbclient v0.0.0-00010101000000-000000000000\n\n" +
		"replace github.com/lbclient/lbclient => " + repoRoot + "\n"
	writeFile(t, filepath.Join(dir, "go.mod"), []byte(goMod))
	sum, err := os.ReadFile(filepath.Join(repoRoot, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "go.sum"), sum)
}

func writeFile(t *testing.T, name string, content []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, content, 0o644); err != nil {
		t.Fatal(err)
	}
}

func writeResponse(t *testing.T, dir string, resp *pluginpb.CodeGeneratorResponse) {
	t.Helper()
	if resp.GetError() != "" {
		t.Fatal(resp.GetError())
	}
	for _, f := range resp.GetFile() {
		writeFile(t, filepath.Join(dir, filepath.FromSlash(path.Clean(f.GetName()))), []byte(f.GetContent()))
	}
}

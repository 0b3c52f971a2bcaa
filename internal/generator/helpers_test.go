package generator

import (
	"bytes"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/dave/jennifer/jen"
	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/pluginpb"
)

var update = flag.Bool("update", false, "rewrite the testdata/*/*.golden files")

// repoRoot is the root of the lbclient module.
var repoRoot = func() string {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		panic(err)
	}
	return root
}()

// fuzzCorpusDir is the folder of testdata where go test -fuzz keeps the
// inputs that failed: not a case.
const fuzzCorpusDir = "fuzz"

// A case is a folder of testdata holding .proto files, and optionally
// params.txt, the plugin parameter.
type testCase struct {
	name   string
	files  []string // the .proto files, relative to the folder: the files to generate
	params string
}

func loadCases(t testing.TB) []testCase {
	t.Helper()
	dirs, err := os.ReadDir("testdata")
	if err != nil {
		t.Fatal(err)
	}
	var cases []testCase
	for _, d := range dirs {
		if !d.IsDir() || d.Name() == fuzzCorpusDir {
			continue
		}
		c := testCase{name: d.Name()}
		root := filepath.Join("testdata", d.Name())
		err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
			if err == nil && !e.IsDir() && strings.HasSuffix(p, ".proto") {
				rel, _ := filepath.Rel(root, p)
				c.files = append(c.files, filepath.ToSlash(rel))
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(filepath.Join(root, "params.txt")); err == nil {
			c.params = strings.TrimSpace(string(b))
		}
		slices.Sort(c.files)
		cases = append(cases, c)
	}
	return cases
}

var (
	imageOnce sync.Once
	imageSet  *descriptorpb.FileDescriptorSet
	imageErr  error
)

// image compiles every case with buf, once per test binary: the cases and
// lbclient's annotations are staged as the modules of one buf workspace in
// a temporary directory, which is removed afterwards.
func image(t testing.TB) *descriptorpb.FileDescriptorSet {
	t.Helper()
	imageOnce.Do(func() { imageSet, imageErr = buildImage() })
	if imageErr != nil {
		t.Fatal(imageErr)
	}
	return imageSet
}

func buildImage() (*descriptorpb.FileDescriptorSet, error) {
	dir, err := os.MkdirTemp("", "lbclient-generator-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	// The annotations and the example, as the repository's buf.yaml has them.
	modules := []string{"proto", "example/proto"}
	for _, m := range modules {
		if err := os.CopyFS(filepath.Join(dir, m), os.DirFS(filepath.Join(repoRoot, m))); err != nil {
			return nil, err
		}
	}
	dirs, err := os.ReadDir("testdata")
	if err != nil {
		return nil, err
	}
	for _, d := range dirs {
		if !d.IsDir() || d.Name() == fuzzCorpusDir {
			continue
		}
		if err := os.CopyFS(filepath.Join(dir, "cases", d.Name()), os.DirFS(filepath.Join("testdata", d.Name()))); err != nil {
			return nil, err
		}
		modules = append(modules, "cases/"+d.Name())
	}
	var bufYAML strings.Builder
	bufYAML.WriteString("version: v2\nmodules:\n")
	for _, m := range modules {
		fmt.Fprintf(&bufYAML, "  - path: %s\n", m)
	}
	if err := os.WriteFile(filepath.Join(dir, "buf.yaml"), []byte(bufYAML.String()), 0o644); err != nil {
		return nil, err
	}
	out := filepath.Join(dir, "image.binpb")
	cmd := exec.Command("go", "tool", "-modfile="+filepath.Join(repoRoot, "tools", "go.mod"), "buf", "build", dir, "--as-file-descriptor-set", "-o", out)
	cmd.Dir = repoRoot
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("buf build: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return nil, err
	}
	set := new(descriptorpb.FileDescriptorSet)
	if err := proto.Unmarshal(b, set); err != nil {
		return nil, err
	}
	return set, nil
}

// request builds the CodeGeneratorRequest for generating files: they and
// their imports, in the image's (topological) order, as protoc sends them.
// The descriptors are copies, which callers may change.
func request(t testing.TB, files []string, params string) *pluginpb.CodeGeneratorRequest {
	t.Helper()
	set := image(t)
	byName := make(map[string]*descriptorpb.FileDescriptorProto)
	for _, f := range set.GetFile() {
		byName[f.GetName()] = f
	}
	need := make(map[string]bool)
	var visit func(string)
	visit = func(name string) {
		if need[name] {
			return
		}
		f, ok := byName[name]
		if !ok {
			t.Fatalf("%s is not in the image", name)
		}
		need[name] = true
		for _, dep := range f.GetDependency() {
			visit(dep)
		}
	}
	for _, f := range files {
		visit(f)
	}
	req := &pluginpb.CodeGeneratorRequest{FileToGenerate: files}
	if params != "" {
		req.Parameter = proto.String(params)
	}
	for _, f := range set.GetFile() {
		if need[f.GetName()] {
			req.ProtoFile = append(req.ProtoFile, proto.CloneOf(f))
		}
	}
	return req
}

// modulePrefix is the module of the testdata's go_package options; the
// generated file names are relative to it.
const modulePrefix = "example.com/lbtest"

func caseRequest(t testing.TB, c testCase) *pluginpb.CodeGeneratorRequest {
	params := "module=" + modulePrefix
	if c.params != "" {
		params += "," + c.params
	}
	return request(t, c.files, params)
}

// runPlugin runs the generator on req in-process, wired as main wires it.
func runPlugin(req *pluginpb.CodeGeneratorRequest) *pluginpb.CodeGeneratorResponse {
	var flags flag.FlagSet
	suffix := flags.String("package_suffix", DefaultPackageSuffix, "")
	gen, err := protogen.Options{ParamFunc: flags.Set}.New(req)
	if err != nil {
		return &pluginpb.CodeGeneratorResponse{Error: proto.String(err.Error())}
	}
	if err := Generate(gen, Options{PackageSuffix: *suffix}); err != nil {
		gen.Error(err)
	}
	return gen.Response()
}

// goldenName is the golden file of a generated file: its base name, in the
// case's folder.
func goldenName(c testCase, generated string) string {
	return filepath.Join("testdata", c.name, filepath.Base(generated)+".golden")
}

// run executes a command in dir and fails the test with its output.
func run(t *testing.T, dir string, env []string, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s (in %s): %v\n%s", name, strings.Join(args, " "), dir, err, out.Bytes())
	}
	return out.Bytes()
}

// renderExpr renders one expression as generated code writes it.
func renderExpr(t *testing.T, c jen.Code) string {
	t.Helper()
	f := jen.NewFilePathName("example.com/x", "x")
	f.Var().Id("v").Op("=").Add(c)
	var b strings.Builder
	if err := f.Render(&b); err != nil {
		t.Fatal(err)
	}
	s := b.String()
	i := strings.Index(s, "var v = ")
	if i < 0 {
		t.Fatalf("cannot find the expression in %s", s)
	}
	return strings.TrimSpace(s[i+len("var v = "):])
}

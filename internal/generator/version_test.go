package generator

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"testing"
)

// TestVersionMatchesRuntime keeps Version equal to runtime.Version. The
// runtime's source is read rather than imported, so that the plugin does not
// link the runtime and its dependencies.
func TestVersionMatchesRuntime(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(repoRoot, "runtime", "version.go"), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	obj := f.Scope.Lookup("Version")
	if obj == nil {
		t.Fatal("runtime/version.go declares no Version")
	}
	lit, ok := obj.Decl.(*ast.ValueSpec).Values[0].(*ast.BasicLit)
	if !ok {
		t.Fatal("runtime.Version is not a string literal")
	}
	v, err := strconv.Unquote(lit.Value)
	if err != nil {
		t.Fatal(err)
	}
	if v != Version {
		t.Errorf("generator.Version = %q, runtime.Version = %q: keep them equal", Version, v)
	}
}

func TestDurationLit(t *testing.T) {
	// Rendered through a file so that qualified names resolve.
	for _, tt := range []struct {
		in   string
		want string
	}{
		{"2s", "2 * time.Second"},
		{"1s", "time.Second"},
		{"250ms", "250 * time.Millisecond"},
		{"1500ms", "1500 * time.Millisecond"},
		{"90m", "90 * time.Minute"},
		{"2h", "2 * time.Hour"},
		{"1us", "time.Microsecond"},
		{"1000000001ns", "time.Duration(1000000001)"},
	} {
		d := checker{errs: new([]error)}.duration("f", tt.in, true, "")
		if got := renderExpr(t, durationLit(d)); got != tt.want {
			t.Errorf("durationLit(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

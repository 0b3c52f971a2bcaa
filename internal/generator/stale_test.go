package generator

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestCheckedInGenUpToDate regenerates the example's client as the
// repository's buf.gen.yaml does and compares it with gen/: a change of the
// generator must come with `go tool -modfile=tools/go.mod buf generate`.
func TestCheckedInGenUpToDate(t *testing.T) {
	resp := runPlugin(request(t, []string{"greeter/v1/greeter.proto"}, "paths=source_relative"))
	if resp.GetError() != "" {
		t.Fatal(resp.GetError())
	}
	if len(resp.GetFile()) != 1 {
		t.Fatalf("got %d files, want 1", len(resp.GetFile()))
	}
	f := resp.GetFile()[0]
	want, err := os.ReadFile(filepath.Join(repoRoot, "gen", filepath.FromSlash(f.GetName())))
	if err != nil {
		t.Fatalf("%v; run go tool -modfile=tools/go.mod buf generate", err)
	}
	if diff := cmp.Diff(string(want), f.GetContent()); diff != "" {
		t.Errorf("gen/%s is stale (-checked in +generated); run go tool -modfile=tools/go.mod buf generate:\n%s", f.GetName(), diff)
	}
}

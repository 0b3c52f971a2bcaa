package generator

import (
	"bytes"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sync"
	"testing"

	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/pluginpb"
)

var (
	binDirOnce sync.Once
	binDir     string
	binMu      sync.Mutex
	binBuilt   = map[string]string{}
)

// TestMain checks for leaked goroutines once the tests have run, then
// removes the tools built for them.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		if binDir != "" {
			os.RemoveAll(binDir)
		}
		os.Exit(code)
	}))
}

// toolBinary builds a tool of the tools module (tools/go.mod) once per test
// binary and returns the path of the executable.
func toolBinary(t *testing.T, pkg string) string {
	t.Helper()
	binMu.Lock()
	defer binMu.Unlock()
	if p, ok := binBuilt[pkg]; ok {
		return p
	}
	binDirOnce.Do(func() {
		var err error
		if binDir, err = os.MkdirTemp("", "lbclient-tools-"); err != nil {
			t.Fatal(err)
		}
	})
	out := filepath.Join(binDir, path.Base(pkg))
	run(t, repoRoot, nil, "go", "build", "-modfile="+filepath.Join(repoRoot, "tools", "go.mod"), "-o", out, pkg)
	binBuilt[pkg] = out
	return out
}

// execPlugin runs the plugin executable on req.
func execPlugin(t *testing.T, plugin string, req *pluginpb.CodeGeneratorRequest) *pluginpb.CodeGeneratorResponse {
	t.Helper()
	in, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(plugin)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(in), &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\n%s", plugin, err, stderr.Bytes())
	}
	resp := new(pluginpb.CodeGeneratorResponse)
	if err := proto.Unmarshal(stdout.Bytes(), resp); err != nil {
		t.Fatal(err)
	}
	return resp
}

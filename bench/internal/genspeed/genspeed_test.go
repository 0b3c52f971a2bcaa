package genspeed

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"
)

func TestMain(m *testing.M) {
	MaybeRunner()
	os.Exit(m.Run())
}

// TestTiny builds the plugins, generates a tiny input and checks that each
// plugin answers with files; it asserts no timing.
func TestTiny(t *testing.T) {
	if _, err := exec.LookPath("protoc"); err != nil {
		t.Skip("protoc is not installed")
	}
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	size := Size{Files: 2, ServicesPerFile: 2, MethodsPerService: 14}
	files, err := WriteProtos(dir, size)
	if err != nil {
		t.Fatal(err)
	}
	req, err := Request(dir, filepath.Join(root, "proto"), files)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range Plugins {
		bin, err := Build(root, dir, p)
		if err != nil {
			t.Fatal(err)
		}
		s, err := RunPlugin(bin, raw)
		if err != nil {
			t.Fatal(err)
		}
		if s.Files != size.Files || s.OutSize == 0 {
			t.Errorf("%s: %d files of %d bytes, want %d files", p.Name, s.Files, s.OutSize, size.Files)
		}
	}
}

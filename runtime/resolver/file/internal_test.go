package file

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/peer"

	"github.com/lbclient/lbclient/example/backend"
	greeterv1 "github.com/lbclient/lbclient/gen/greeter/v1"
)

func startBackends(t *testing.T, n int) backend.Fleet {
	t.Helper()
	f, err := backend.StartFleet(n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	return f
}

func writeFile(t *testing.T, path string, bs ...*backend.Backend) {
	t.Helper()
	s := `{"endpoints": [`
	for i, b := range bs {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf(`{"address": %q}`, b.Addr())
	}
	if err := os.WriteFile(path, []byte(s+"]}"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// dialWith dials path through b with round_robin, on a plain ClientConn.
func dialWith(t *testing.T, b Builder, path string) greeterv1.GreeterClient {
	t.Helper()
	cc, err := grpc.NewClient("file://"+path,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithResolvers(b),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig": [{"round_robin": {}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return greeterv1.NewGreeterClient(cc)
}

// reaches calls client until a call reaches addr, for up to 10 s.
func reaches(t *testing.T, client greeterv1.GreeterClient, addr string) bool {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		var p peer.Peer
		_, err := client.SayHello(ctx, &greeterv1.HelloRequest{}, grpc.Peer(&p), grpc.WaitForReady(true))
		cancel()
		if err == nil && p.Addr.String() == addr {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return false
}

// TestRereadWithoutEvents stands for a file system whose changes raise no
// events (a network file system changed by another machine): the periodic
// re-read alone finds the change.
func TestRereadWithoutEvents(t *testing.T) {
	bs := startBackends(t, 2)
	path := filepath.Join(t.TempDir(), "eps.json")
	writeFile(t, path, bs[0])
	client := dialWith(t, Builder{noWatch: true, reread: 200 * time.Millisecond}, path)
	if !reaches(t, client, bs[0].Addr()) {
		t.Fatal("no call reached the file's backend")
	}
	writeFile(t, path, bs[1])
	if !reaches(t, client, bs[1].Addr()) {
		t.Fatal("the periodic re-read did not find the change within 10 s")
	}
}

// TestResolveNowRereads checks that the file is read again when grpc-go
// asks, as it does when a backend's connection fails: with no events and
// no periodic re-read, the connection learns of the file's new backend
// when the old one stops.
func TestResolveNowRereads(t *testing.T) {
	bs := startBackends(t, 2)
	path := filepath.Join(t.TempDir(), "eps.json")
	writeFile(t, path, bs[0])
	client := dialWith(t, Builder{noWatch: true, reread: time.Hour}, path)
	if !reaches(t, client, bs[0].Addr()) {
		t.Fatal("no call reached the file's backend")
	}
	writeFile(t, path, bs[1])
	bs[0].Stop()
	if !reaches(t, client, bs[1].Addr()) {
		t.Fatal("the file was not read again after the backend's connection failed")
	}
}

// inotifyInstances counts the process's inotify file descriptors.
func inotifyInstances(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("listing the process's file descriptors: %v", err)
	}
	n := 0
	for _, fd := range fds {
		if l, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); err == nil && l == "anon_inode:inotify" {
			n++
		}
	}
	return n
}

// TestOneWatcherForAllConnections dials ten connections to files in two
// directories: the process has one inotify instance for all of them, and
// none once they are closed (the hub's goroutine is gone too).
func TestOneWatcherForAllConnections(t *testing.T) {
	if theHub.running() {
		t.Fatal("the hub runs before any connection")
	}
	before := inotifyInstances(t)
	bs := startBackends(t, 2)
	dirs := []string{t.TempDir(), t.TempDir()}
	var ccs []*grpc.ClientConn
	for i := range 10 {
		path := filepath.Join(dirs[i%2], fmt.Sprintf("eps-%d.json", i))
		writeFile(t, path, bs[i%2])
		cc, err := grpc.NewClient("file://"+path, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		ccs = append(ccs, cc)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err = greeterv1.NewGreeterClient(cc).SayHello(ctx, &greeterv1.HelloRequest{}, grpc.WaitForReady(true))
		cancel()
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
	}
	if got := inotifyInstances(t) - before; got != 1 {
		t.Errorf("%d inotify instances for 10 connections, want 1", got)
	}
	for _, cc := range ccs {
		cc.Close()
	}
	if theHub.running() {
		t.Error("the hub still runs once every connection is closed")
	}
	if got := inotifyInstances(t) - before; got != 0 {
		t.Errorf("%d inotify instances left once every connection is closed, want 0", got)
	}
}

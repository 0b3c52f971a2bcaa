// Package file is the resolver for lbclient's "file" scheme: the backends
// listed in a JSON file, which is watched, so that the connection follows
// the file as it changes.
//
//	file:///etc/lbclient/orders.json
//
// The path must be absolute. The file holds one object with one field,
// "endpoints", a list of the backends, each with its address and,
// optionally, its weight and its zone:
//
//	{"endpoints": [
//	  {"address": "10.0.0.1:8443", "weight": 3, "zone": "us-east1-b"},
//	  {"address": "10.0.0.2:8443", "zone": "us-east1-c"},
//	  {"address": "[2001:db8::7]:8443"}
//	]}
//
// The runtime package imports this one, whose init registers the scheme
// with grpc-go, so every lbclient connection can dial it with nothing more
// to do:
//
//	conn, err := runtime.Dial("file:///etc/lbclient/orders.json", nil,
//		runtime.WithPolicy(runtime.PeakEWMA))
//
// So can a plain grpc.ClientConn in a program that imports this package.
//
// # The file
//
// Parse documents the format. It is strict: an unknown field, a malformed
// or repeated address, a weight that is not an integer from 1 to
// 4294967295, or a value of the wrong type makes the whole file invalid,
// with an error that names the file and the endpoint (or, for JSON syntax,
// the file's line and column).
//
// # Following changes
//
// The resolver watches the file's directory with fsnotify (inotify on
// Linux), not the file itself, so that it sees the file replaced as well as
// rewritten: config tools write a new file beside the old one and rename it
// over it (Kubernetes does the same with a link), which gives the path a
// new inode that a watch on the old one would never report. A burst of changes is read once, when
// the file has been quiet for 50 ms (and at the latest 250 ms after the
// first change); a read that finds the same endpoints as before does not
// update the connection. A file that is a symbolic link is followed: a
// change of the link, or of any link in the file's directory (Kubernetes
// swaps its "..data" link when it updates a ConfigMap volume), or of the
// file the link leads to, in its own directory, counts as a change.
//
// The file is also read again every 30 s whatever the watch says, because
// inotify sees only the changes made through this machine's kernel: a
// file on a network file system (NFS, SMB) or some FUSE mounts changed by
// another machine raises no event, and the periodic read bounds how long
// the connection can miss it. A directory that cannot be watched (it does
// not exist yet, or the process is out of inotify watches) has its files
// read every second until it can be. ResolveNow, which grpc-go calls when
// a backend's connection fails, reads the file again too.
//
// One fsnotify watcher serves all the connections of the process, with one
// watch per directory: inotify limits its instances per user (often to
// 128), and a process may well have more connections than that.
//
// # Bad writes
//
// A file that is missing, unreadable or invalid never takes the
// connection's endpoints away: the resolver keeps the last good set, logs
// the problem through grpclog (component "file-resolver") once per
// distinct problem, naming the file, and goes on watching. A file that is
// being written in place, or was cut short, is invalid until it is whole,
// and then is read again. An empty list of endpoints is taken for such a
// mistake too, not for an instruction to remove every backend: calls would
// fail, and a truncated or half-generated file is its usual cause. To
// drain a backend, remove it from a list that keeps others.
//
// Before the first good read there is no set to keep: the resolver reports
// the problem to the connection (cc.ReportError), so calls fail with an
// error that names the file, unless they wait for ready, and it keeps
// watching, so that a file created later is used as soon as it appears.
//
// # Weights and zones
//
// An endpoint's weight is set with grpc-go's
// google.golang.org/grpc/experimental/balancer/weight, which is where
// balancers look for it; an endpoint without a weight has no weight
// attribute, and policies take it for weight 1. grpc-go's ring_hash gives
// ring points in proportion to weight; its round_robin, least_request and
// weighted_round_robin (which learns weights from backend load reports)
// ignore it. An endpoint's zone is an attribute that Zone reads; lbclient's
// balancers do not use zones yet.
package file

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/experimental/balancer/weight"
	"google.golang.org/grpc/grpclog"
	"google.golang.org/grpc/resolver"
)

// Scheme is the target scheme of this resolver.
const Scheme = "file"

// How a burst of changes is coalesced: the file is read once it has been
// quiet for settleQuiet, and at the latest settleMax after the first
// change. A tool that writes the file in place truncates it and writes it
// within microseconds for a file of endpoints; a rename is one event.
const (
	settleQuiet = 50 * time.Millisecond
	settleMax   = 250 * time.Millisecond
)

// rereadInterval is how often a watched file is read again whether or not
// an event said it changed (see the package doc, "Following changes").
const rereadInterval = 30 * time.Second

// maxFileSize bounds what a read takes in: a path that names something
// endless by mistake must not take the process's memory with it. It is
// hundreds of thousands of endpoints.
const maxFileSize = 16 << 20

var logger = grpclog.Component("file-resolver")

func init() {
	resolver.Register(Builder{})
}

// Builder builds resolvers for "file:///" targets. It is registered with
// grpc-go under Scheme by this package's init.
type Builder struct {
	// For tests: how often the file is read whatever the events say (0:
	// rereadInterval), and whether to do without the hub, as on a file
	// system whose changes raise no events.
	reread  time.Duration
	noWatch bool
}

// Scheme returns "file".
func (Builder) Scheme() string { return Scheme }

// Build checks that target names an absolute path and starts watching it.
// The file is read at once, and again whenever it changes; it need not
// exist yet.
func (b Builder) Build(target resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	path, err := targetPath(target.URL)
	if err != nil {
		return nil, err
	}
	r := &fileResolver{
		path:    path,
		cc:      cc,
		reread:  b.reread,
		poke:    make(chan struct{}, 1),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
	}
	if r.reread == 0 {
		r.reread = rereadInterval
	}
	if !b.noWatch {
		r.dirWatch = &watch{dir: filepath.Dir(path), poke: r.poke, match: func(name string) bool {
			return name == r.path || r.link.Load()
		}}
		theHub.add(r.dirWatch)
	}
	go r.run()
	return r, nil
}

// targetPath returns the clean absolute path that u names.
func targetPath(u url.URL) (string, error) {
	const want = "want file:///absolute/path.json"
	switch {
	case u.Host != "":
		return "", fmt.Errorf("file resolver: target %q names host %q: %s (only local files are read)", u.String(), u.Host, want)
	case u.Opaque != "" || u.Path == "":
		return "", fmt.Errorf("file resolver: target %q has no absolute path: %s", u.String(), want)
	case !filepath.IsAbs(filepath.FromSlash(u.Path)):
		return "", fmt.Errorf("file resolver: target %q: path %q is not absolute: %s", u.String(), u.Path, want)
	case u.Path[len(u.Path)-1] == '/':
		return "", fmt.Errorf("file resolver: target %q names a directory: %s", u.String(), want)
	}
	return filepath.Clean(filepath.FromSlash(u.Path)), nil
}

// fileResolver follows one file for one connection. Its goroutine, run,
// does every read and every call to cc.
type fileResolver struct {
	path   string
	cc     resolver.ClientConn
	reread time.Duration

	poke      chan struct{} // the hub or ResolveNow: read the file again
	closing   chan struct{}
	closeOnce sync.Once
	done      chan struct{}

	link     atomic.Bool // path is a symbolic link: any change in its directory counts
	dirWatch *watch      // path's directory

	// Owned by run.
	realWatch *watch         // the directory of the file path leads to, when it is elsewhere
	realPath  string         // the file that realWatch watches for
	last      resolver.State // the last state given to cc
	good      bool           // last holds a good read
	problem   string         // the problem last logged; "" when the last read was good
}

func (r *fileResolver) ResolveNow(resolver.ResolveNowOptions) {
	select {
	case r.poke <- struct{}{}:
	default:
	}
}

// Close stops watching and waits until the resolver's goroutine is gone.
func (r *fileResolver) Close() {
	r.closeOnce.Do(func() { close(r.closing) })
	<-r.done
}

func (r *fileResolver) run() {
	defer close(r.done)
	defer func() {
		if r.dirWatch != nil {
			theHub.remove(r.dirWatch)
		}
		if r.realWatch != nil {
			theHub.remove(r.realWatch)
		}
	}()
	reread := time.NewTicker(r.reread)
	defer reread.Stop()
	settle := time.NewTimer(settleQuiet)
	settle.Stop()
	var first time.Time // of the changes not read yet; zero when none
	r.read()
	for {
		select {
		case <-r.closing:
			return
		case <-r.poke:
			now := time.Now()
			if first.IsZero() {
				first = now
			}
			settle.Reset(max(0, min(settleQuiet, first.Add(settleMax).Sub(now))))
		case <-settle.C:
			first = time.Time{}
			r.read()
		case <-reread.C:
			r.read()
		}
	}
}

// read reads the file and, when it holds a new good set, hands it to cc.
func (r *fileResolver) read() {
	data, err := r.load()
	var st resolver.State
	if err == nil {
		st, err = Parse(r.path, data)
	}
	if err != nil {
		r.fail(err)
		return
	}
	if r.problem != "" {
		logger.Infof("file resolver: %s is good again (%d endpoints)", r.path, len(st.Endpoints))
		r.problem = ""
	}
	if r.good && sameEndpoints(r.last.Endpoints, st.Endpoints) {
		return
	}
	if err := r.cc.UpdateState(st); err != nil {
		// The balancer refused the set. Not kept as applied, so the next
		// read, periodic or after ResolveNow, offers it again.
		r.fail(fmt.Errorf("file resolver: %s: the connection refused its %d endpoints: %w", r.path, len(st.Endpoints), err))
		return
	}
	logger.Infof("file resolver: %s: %d endpoints", r.path, len(st.Endpoints))
	r.last, r.good = st, true
}

// fail keeps the last good set, logs err once, and, when there has never
// been a good set, reports err to cc so that calls fail with it.
func (r *fileResolver) fail(err error) {
	if err.Error() == r.problem {
		return
	}
	r.problem = err.Error()
	if !r.good {
		logger.Errorf("%v; no endpoints yet: calls fail until the file is good", err)
		r.cc.ReportError(err)
		return
	}
	logger.Errorf("%v; keeping the last good set of %d endpoints", err, len(r.last.Endpoints))
}

// load reads the file, following links, and keeps the watches in step with
// where it leads.
func (r *fileResolver) load() ([]byte, error) {
	if fi, err := os.Lstat(r.path); err == nil {
		r.link.Store(fi.Mode()&fs.ModeSymlink != 0)
	}
	r.follow()
	// Checked before the open as well as after: opening a named pipe
	// blocks until a writer comes, and a device may never end its data.
	fi, err := os.Stat(r.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("file resolver: %s does not exist", r.path)
	}
	if err != nil {
		return nil, fmt.Errorf("file resolver: %w", err)
	}
	if err := regular(r.path, fi); err != nil {
		return nil, err
	}
	f, err := os.Open(r.path)
	if err != nil {
		return nil, fmt.Errorf("file resolver: %w", err)
	}
	defer f.Close()
	if fi, err = f.Stat(); err != nil {
		return nil, fmt.Errorf("file resolver: %w", err)
	}
	if err := regular(r.path, fi); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("file resolver: %w", err)
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("file resolver: %s is larger than %d MiB", r.path, maxFileSize>>20)
	}
	return data, nil
}

// regular returns an error unless fi, the file at path, is a regular file.
func regular(path string, fi fs.FileInfo) error {
	switch {
	case fi.Mode().IsRegular():
		return nil
	case fi.IsDir():
		return fmt.Errorf("file resolver: %s is a directory, want a file", path)
	default:
		return fmt.Errorf("file resolver: %s is not a regular file (mode %v)", path, fi.Mode())
	}
}

// follow watches the directory of the file that the link at path leads
// to, when it is not path's own directory, so that the target's changes
// are seen where they happen; when path is no link, it drops that watch.
func (r *fileResolver) follow() {
	if r.dirWatch == nil {
		return // not watching at all
	}
	var real string
	if r.link.Load() {
		var err error
		if real, err = filepath.EvalSymlinks(r.path); err != nil {
			return // a dangling link: the read says so
		}
	}
	if real == r.realPath {
		return
	}
	if r.realWatch != nil {
		theHub.remove(r.realWatch)
		r.realWatch = nil
	}
	r.realPath = real
	if dir := filepath.Dir(real); real != "" && dir != r.dirWatch.dir {
		r.realWatch = &watch{dir: dir, poke: r.poke, match: func(name string) bool { return name == real }}
		theHub.add(r.realWatch)
	}
}

// sameEndpoints reports whether a and b list the same endpoints, with the
// same weights and zones, in the same order.
func sameEndpoints(a, b []resolver.Endpoint) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Addresses[0].Addr != b[i].Addresses[0].Addr ||
			weight.FromEndpoint(a[i]) != weight.FromEndpoint(b[i]) ||
			Zone(a[i]) != Zone(b[i]) {
			return false
		}
	}
	return true
}

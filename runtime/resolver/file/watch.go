package file

import (
	"errors"
	"path/filepath"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// retryInterval is how often the hub tries again to watch a directory that
// it could not watch (it does not exist yet, or the process is out of
// inotify instances or watches), and, meanwhile, how often the resolvers of
// the files in it re-read them. One failed stat-like system call and one
// small read a second cost nothing, and keep a file that appears in a
// directory created late within about a second of being seen.
var retryInterval = time.Second

// A watch is one resolver's interest in the changes of one directory.
type watch struct {
	dir string
	// match reports whether a change of the named entry of dir concerns
	// the resolver. It is called on the hub's goroutine and must not block.
	match func(name string) bool
	// poke is where the hub tells the resolver to re-read its file; it has
	// a buffer of one, and a poke that finds it full is dropped, as one
	// re-read covers both.
	poke chan struct{}
}

func (w *watch) notify() {
	select {
	case w.poke <- struct{}{}:
	default:
	}
}

// A hub is one fsnotify.Watcher for all the file resolvers of the process.
// inotify counts its instances per user (128 by default on many systems),
// so one per process rather than one per connection; its watches, one per
// directory, are shared alike. The hub's goroutine runs, and the watcher
// exists, only while some resolver is watching.
type hub struct {
	mu      sync.Mutex
	watches map[string]map[*watch]bool // by directory
	kick    chan struct{}              // the directories changed: sync them
	stop    chan struct{}              // closed to stop the loop
	done    chan struct{}              // closed when the loop has stopped
}

// theHub serves every file resolver of the process.
var theHub = &hub{watches: map[string]map[*watch]bool{}}

// add starts w. The hub pokes w once the directory is watched (changes
// before that were not seen), and every retryInterval while it cannot be.
func (h *hub) add(w *watch) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.watches[w.dir] == nil {
		h.watches[w.dir] = map[*watch]bool{}
	}
	h.watches[w.dir][w] = true
	if h.stop == nil {
		h.kick = make(chan struct{}, 1)
		h.stop = make(chan struct{})
		h.done = make(chan struct{})
		go h.loop(h.kick, h.stop, h.done)
	}
	h.kickLocked()
}

// remove stops w. When w was the last watch, remove stops the hub's
// goroutine and closes its watcher before it returns.
func (h *hub) remove(w *watch) {
	h.mu.Lock()
	delete(h.watches[w.dir], w)
	if len(h.watches[w.dir]) == 0 {
		delete(h.watches, w.dir)
	}
	if len(h.watches) > 0 || h.stop == nil {
		h.kickLocked()
		h.mu.Unlock()
		return
	}
	stop, done := h.stop, h.done
	h.kick, h.stop, h.done = nil, nil, nil
	h.mu.Unlock()
	close(stop)
	<-done
}

func (h *hub) kickLocked() {
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

// running reports whether the hub's goroutine runs.
func (h *hub) running() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stop != nil
}

// loop is the hub's goroutine: it owns the watcher and the set of watched
// directories, and passes each event on to the watches it concerns.
func (h *hub) loop(kick, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	var (
		fw      *fsnotify.Watcher
		events  <-chan fsnotify.Event
		errs    <-chan error
		watched = map[string]bool{}
		logged  = map[string]string{} // the last problem logged, by directory ("" for the watcher)
		retry   = time.NewTimer(retryInterval)
	)
	retry.Stop()
	defer func() {
		if fw != nil {
			fw.Close()
		}
	}()
	logOnce := func(key, problem string) {
		if logged[key] != problem {
			logged[key] = problem
			logger.Warning(problem)
		}
	}
	// sync makes the watched directories those that have watches.
	sync := func() {
		if fw == nil {
			w, err := fsnotify.NewWatcher()
			if err != nil {
				logOnce("", "file resolver: cannot watch files ("+err.Error()+"): re-reading them every "+retryInterval.String()+" instead")
			} else {
				fw, events, errs = w, w.Events, w.Errors
				delete(logged, "")
			}
		}
		h.mu.Lock()
		dirs := make(map[string][]*watch, len(h.watches))
		for dir, ws := range h.watches {
			for w := range ws {
				dirs[dir] = append(dirs[dir], w)
			}
		}
		h.mu.Unlock()
		for dir := range watched {
			if dirs[dir] == nil {
				fw.Remove(dir) // fails only when the watch is gone already
				delete(watched, dir)
				delete(logged, dir)
			}
		}
		unwatched := false
		for dir, ws := range dirs {
			if watched[dir] {
				continue
			}
			if fw != nil {
				if err := fw.Add(dir); err != nil {
					logOnce(dir, "file resolver: cannot watch directory "+dir+" ("+err.Error()+"): re-reading its files every "+retryInterval.String()+" until it can")
				} else {
					watched[dir] = true
					if logged[dir] != "" {
						logger.Infof("file resolver: watching directory %s again", dir)
					}
					delete(logged, dir)
				}
			}
			unwatched = unwatched || !watched[dir]
			// Newly watched: what changed before was not seen. Not
			// watched: read again, in place of the events.
			for _, w := range ws {
				w.notify()
			}
		}
		if unwatched {
			retry.Reset(retryInterval)
		}
	}
	// dispatch pokes the watches of the event's directory that it concerns.
	dispatch := func(ev fsnotify.Event) {
		name := filepath.Clean(ev.Name)
		h.mu.Lock()
		defer h.mu.Unlock()
		for w := range h.watches[filepath.Dir(name)] {
			if w.match(name) {
				w.notify()
			}
		}
		if watched[name] && ev.Has(fsnotify.Remove|fsnotify.Rename) {
			// A watched directory went away (or was moved, and its watch
			// now follows it elsewhere): watch its path again once it
			// is back, and meanwhile have its files re-read.
			for w := range h.watches[name] {
				w.notify()
			}
		}
	}
	for {
		select {
		case <-stop:
			return
		case <-kick:
			sync()
		case <-retry.C:
			sync()
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			dispatch(ev)
			if name := filepath.Clean(ev.Name); watched[name] && ev.Has(fsnotify.Remove|fsnotify.Rename) {
				fw.Remove(name)
				delete(watched, name)
				retry.Reset(retryInterval)
			}
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				// Events were lost: every file may have changed.
				h.mu.Lock()
				for _, ws := range h.watches {
					for w := range ws {
						w.notify()
					}
				}
				h.mu.Unlock()
			}
			logger.Warningf("file resolver: watching files: %v", err)
		}
	}
}

package exec

import (
	"errors"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

const (
	// watchSettle is how long the watcher lets a burst of changes (an
	// editor's or dpkg's several steps) settle before it reads the
	// directory again. It counts from the first change of the burst, so a
	// steady trickle of changes cannot postpone the read.
	watchSettle = 100 * time.Millisecond

	// watchRetry is how often the watcher tries again to watch a path it
	// could not (inotify limits, permissions). Until then changes still
	// apply at the next event, as Submit reads the directory.
	watchRetry = 10 * time.Second
)

// watcher follows the handlers directory with fsnotify: the directory
// itself when it exists, and the nearest existing ancestor of it (normally
// its parent), so that the directory appearing, disappearing or being
// replaced is noticed too. When the directory is a symlink, the nearest
// existing ancestor of where it leads is watched as well, for the same
// reasons: the link's own directory does not see its target deleted or
// created again. Used by New, then only by the Pool's watch goroutine.
type watcher struct {
	dir  string // absolute
	real string // where dir leads when it is a symlink, else ""; set by arm
	log  *slog.Logger
	fsw  *fsnotify.Watcher // nil until one could be created

	ids      map[string]fileID // watched path -> identity when the watch was added
	problems map[string]string // path ("" for the watcher itself) -> last logged failure
}

func newWatcher(dir string, log *slog.Logger) *watcher {
	return &watcher{dir: dir, log: log, ids: map[string]fileID{}, problems: map[string]string{}}
}

// problem logs, once per distinct failure, that what (a path, or "" for
// the fsnotify watcher itself) cannot be watched.
func (w *watcher) problem(what string, err error) {
	if w.problems[what] == err.Error() {
		return
	}
	w.problems[what] = err.Error()
	msg := "handlers directory not watched: "
	if what != "" {
		msg += "watch " + what + ": "
	}
	w.log.Warn(msg+err.Error()+"; changes apply from the next event", "DIR", w.dir, "PATH", what, "ERROR", err.Error())
}

// recovered notes that what can be watched again, if it could not before.
func (w *watcher) recovered(what string) {
	if _, was := w.problems[what]; was {
		delete(w.problems, what)
		w.log.Info("handlers directory watched again", "DIR", w.dir, "PATH", what)
	}
}

// relevant reports whether ev may change which handlers there are: a
// change to an entry of the directory, to the directory itself, or to an
// ancestor on the way to it. A write to a file's contents does not change
// whether it is a handler, and changes elsewhere in the parent do not
// concern us.
func (w *watcher) relevant(ev fsnotify.Event) bool {
	if !ev.Has(fsnotify.Create | fsnotify.Remove | fsnotify.Rename | fsnotify.Chmod) {
		return false
	}
	name := filepath.Clean(ev.Name)
	return concerns(name, w.dir) || (w.real != "" && concerns(name, w.real))
}

// concerns reports whether name is dir, an entry of dir, or an ancestor of
// dir.
func concerns(name, dir string) bool {
	return name == dir || filepath.Dir(name) == dir || strings.HasPrefix(dir, name+string(filepath.Separator))
}

// linkTarget follows dir while it is a symlink (at most 40 links, the
// kernel's limit) and returns the path it leads to, which need not exist,
// or "" if dir is not a symlink.
func linkTarget(dir string) string {
	path := dir
	for range 40 {
		li, err := os.Lstat(path)
		if err != nil || li.Mode()&fs.ModeSymlink == 0 {
			break
		}
		to, err := os.Readlink(path)
		if err != nil {
			break
		}
		if !filepath.IsAbs(to) {
			to = filepath.Join(filepath.Dir(path), to)
		}
		path = filepath.Clean(to)
	}
	if path == dir {
		return ""
	}
	return path
}

// nearestDir is the nearest existing directory above path, with its
// identity; ok is false if there is none.
func nearestDir(path string) (dir string, id fileID, ok bool) {
	for a := filepath.Dir(path); ; a = filepath.Dir(a) {
		if fi, err := os.Stat(a); err == nil && fi.IsDir() {
			return a, idOf(fi), true
		}
		if a == filepath.Dir(a) {
			return "", fileID{}, false
		}
	}
}

// targets are the paths that should be watched, with their identities: the
// directory if it is one, the nearest existing ancestor directory, and
// when the directory is a symlink the nearest existing ancestor of w.real,
// unless that directory is already wanted under another name (fsnotify
// keeps one name per watched directory).
func (w *watcher) targets() map[string]fileID {
	want := map[string]fileID{}
	if fi, err := os.Stat(w.dir); err == nil && fi.IsDir() {
		want[w.dir] = idOf(fi)
	}
	if a, id, ok := nearestDir(w.dir); ok {
		want[a] = id
	}
	if w.real == "" {
		return want
	}
	if a, id, ok := nearestDir(w.real); ok && !slices.Contains(slices.Collect(maps.Values(want)), id) {
		want[a] = id
	}
	return want
}

// arm creates the fsnotify watcher if there is none yet and makes its
// watches match targets: paths no longer wanted, or now naming another
// directory (replaced, or a symlink repointed), are dropped and the wanted
// ones added. A failure is logged once per distinct reason. It reports
// whether every wanted path is watched.
func (w *watcher) arm() bool {
	if w.fsw == nil {
		fsw, err := fsnotify.NewWatcher()
		if err != nil {
			w.problem("", err)
			return false
		}
		w.fsw = fsw
		w.recovered("")
	}
	w.real = linkTarget(w.dir)
	want := w.targets()
	have := map[string]bool{}
	for _, path := range w.fsw.WatchList() { // fsnotify drops a watch whose directory went away
		have[path] = true
	}
	for path := range have {
		if id, ok := want[path]; !ok || id != w.ids[path] {
			_ = w.fsw.Remove(path) // the directory may be gone, and its watch with it
			delete(have, path)
		}
	}
	for path := range w.ids {
		if !have[path] {
			delete(w.ids, path)
		}
	}

	ok := true
	for path, id := range want {
		if have[path] {
			continue
		}
		if err := w.fsw.Add(path); err != nil {
			ok = false
			w.problem(path, err)
			continue
		}
		w.ids[path] = id
		w.recovered(path)
	}
	return ok
}

// close closes the fsnotify watcher, if any; its goroutine has exited
// when this returns.
func (w *watcher) close() {
	if w.fsw != nil {
		w.fsw.Close()
	}
}

// drop gives up an fsnotify watcher that stopped on its own (its channels
// closed), so that the next arm creates a new one.
func (w *watcher) drop() {
	w.log.Warn("handlers directory watcher stopped; changes apply from the next event until it is back", "DIR", w.dir)
	w.fsw.Close()
	w.fsw = nil
	clear(w.ids)
}

// watch is the Pool's watcher goroutine, started with w armed (fully if
// armed is set): on a relevant change it lets the burst settle, re-arms the
// watches and reads the directory, which logs what changed; while arming
// fails it tries again every watchRetry. It returns when the pool is
// closed, after closing the fsnotify watcher (whose own goroutine has then
// exited).
func (p *Pool) watch(w *watcher, armed bool) {
	defer w.close()
	settle := time.NewTimer(watchSettle)
	settle.Stop()
	defer settle.Stop()
	retry := time.NewTimer(watchRetry)
	if armed {
		retry.Stop()
	}
	defer retry.Stop()

	pending := false
	schedule := func() {
		if !pending {
			pending = true
			settle.Reset(watchSettle)
		}
	}
	for {
		var events <-chan fsnotify.Event // nil, never ready, without a watcher
		var errs <-chan error
		if w.fsw != nil {
			events, errs = w.fsw.Events, w.fsw.Errors
		}
		select {
		case <-p.stop:
			return
		case ev, ok := <-events:
			if !ok {
				w.drop()
				p.setWatching(false)
				retry.Reset(watchRetry)
				continue
			}
			if w.relevant(ev) {
				p.markStale()
				schedule()
			}
		case err, ok := <-errs:
			if !ok {
				w.drop()
				p.setWatching(false)
				retry.Reset(watchRetry)
				continue
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				p.log.Warn("handlers directory watcher lost events; reading the directory again", "DIR", w.dir)
			} else {
				p.log.Warn("handlers directory watcher: "+err.Error(), "DIR", w.dir, "ERROR", err.Error())
			}
			p.markStale()
			schedule()
		case <-retry.C:
			schedule()
		case <-settle.C:
			pending = false
			armed := w.arm()
			p.setWatching(armed)
			if !armed {
				retry.Reset(watchRetry)
			}
			p.submitMu.Lock()
			p.refresh()
			p.submitMu.Unlock()
		}
	}
}

func (p *Pool) setWatching(on bool) {
	p.mu.Lock()
	p.watching = on && !p.closed
	p.mu.Unlock()
}

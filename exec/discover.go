package exec

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// found is one accepted handler file.
type found struct {
	name    string
	path    string // absolute; /bin/sh for a command handler
	command string // a command handler's command ("" for a file)
}

// linkStamp is the stamp of what a symlink in the directory leads to.
type linkStamp struct {
	path  string
	stamp fileStamp
}

// fileID identifies a file independently of its name, so that a handler
// replaced by a rename (an editor's or dpkg's atomic write) is told apart
// from the same file seen again.
type fileID struct {
	dev, ino uint64
}

// idOf is fi's identity; the zero fileID if the system does not say.
func idOf(fi fs.FileInfo) fileID {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}
	}
	return fileID{dev: uint64(st.Dev), ino: st.Ino}
}

// scanner reads the handlers directory and remembers what it last logged,
// so that a refusal, a directory problem or a handler appearing, being
// replaced or going away is logged once per change rather than at every
// event. A scan's records wait in notes until flush, which the Pool calls
// once it has put the scan's result in effect: whoever reads "handler
// removed" then finds the handler inactive in Stats. Not safe for
// concurrent use; the Pool serialises scans.
type scanner struct {
	dir   string // absolute
	euid  int
	log   *slog.Logger
	notes []note // records of the last scan, not logged yet

	dirProblem string            // last logged problem with the directory itself
	refused    map[string]string // file name -> reason last logged
	ignored    map[string]string // file name -> why the last scan ignored it (dotfiles left out)
	present    map[string]fileID // handlers accepted by the last scan
}

// note is a log record a scan holds back until flush.
type note struct {
	level slog.Level
	msg   string
	args  []any
}

func (s *scanner) note(level slog.Level, msg string, args ...any) {
	s.notes = append(s.notes, note{level: level, msg: msg, args: args})
}

// flush logs the records held back, in the order the scan made them.
func (s *scanner) flush() {
	for _, n := range s.notes {
		s.log.Log(context.Background(), n.level, n.msg, n.args...)
	}
	s.notes = nil
}

func newScanner(dir string, euid int, log *slog.Logger) *scanner {
	return &scanner{dir: dir, euid: euid, log: log, refused: map[string]string{}, ignored: map[string]string{},
		present: map[string]fileID{}}
}

// scan returns the handlers in the directory in lexical order of names,
// and the stamps of what its symlinks lead to (accepted or not), which a
// watch of the directory does not follow.
func (s *scanner) scan() ([]found, []linkStamp) {
	entries, problem := s.readDir()
	s.noteDirProblem(problem)

	var handlers []found
	var links []linkStamp
	refused := map[string]string{}
	ignored := map[string]string{}
	present := map[string]fileID{}
	for _, e := range entries { // os.ReadDir sorts by name
		name := e.Name()
		if why := ignoredName(name); why != "" {
			if !strings.HasPrefix(name, ".") && !e.IsDir() {
				ignored[name] = why
			}
			continue
		}
		path := filepath.Join(s.dir, name)
		if e.Type()&fs.ModeSymlink != 0 {
			// Taken before the check, so that a change after it shows.
			links = append(links, linkStamp{path, stampPath(path)})
		}
		id, reason, skip := s.check(path)
		switch {
		case skip:
		case reason != "":
			refused[name] = reason
			if s.refused[name] != reason {
				s.note(slog.LevelWarn, fmt.Sprintf("handler file %s refused: %s", path, reason),
					"HANDLER", name, "FILE", path, "REASON", reason)
			}
		default:
			handlers = append(handlers, found{name: name, path: path})
			present[name] = id
			switch old, ok := s.present[name]; {
			case !ok:
				s.note(slog.LevelInfo, "handler added: "+name, "HANDLER", name, "FILE", path)
			case old != id:
				s.note(slog.LevelInfo, "handler replaced: "+name, "HANDLER", name, "FILE", path)
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(s.present)) {
		if _, ok := present[name]; !ok {
			s.note(slog.LevelInfo, "handler removed: "+name, "HANDLER", name, "FILE", filepath.Join(s.dir, name))
		}
	}
	s.refused, s.ignored, s.present = refused, ignored, present
	return handlers, links
}

// readDir lists the directory, or says why there are no handlers at all.
func (s *scanner) readDir() ([]os.DirEntry, string) {
	fi, err := os.Stat(s.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "missing"
	}
	if err != nil {
		return nil, err.Error()
	}
	if !fi.IsDir() {
		return nil, "not a directory"
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return nil, fmt.Sprintf("group- or world-writable (mode %04o)", perm)
	}
	if reason := ownerProblem(fi, s.euid); reason != "" {
		return nil, reason
	}
	entries, err := os.ReadDir(s.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "missing"
	}
	if err != nil {
		return nil, err.Error()
	}
	return entries, ""
}

func (s *scanner) noteDirProblem(problem string) {
	if problem == s.dirProblem {
		return
	}
	s.dirProblem = problem
	switch problem {
	case "":
		s.note(slog.LevelInfo, "handlers directory readable", "DIR", s.dir)
	case "missing":
		s.note(slog.LevelInfo, "handlers directory does not exist; no handlers until it appears", "DIR", s.dir)
	default:
		s.note(slog.LevelWarn, fmt.Sprintf("handlers directory %s refused: %s", s.dir, problem), "DIR", s.dir, "REASON", problem)
	}
}

// check says why path cannot be a handler (reason), or that it is not a
// candidate at all and is skipped silently (a subdirectory, or a file
// removed since the directory was listed). For a handler it returns the
// identity of the file that would run.
func (s *scanner) check(path string) (id fileID, reason string, skip bool) {
	li, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fileID{}, "", true
	}
	if err != nil {
		return fileID{}, err.Error(), false
	}
	if li.Mode()&fs.ModeSymlink != 0 {
		if r := ownerProblem(li, s.euid); r != "" {
			return fileID{}, "symlink " + r, false
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fileID{}, err.Error(), false
	}
	if fi.IsDir() {
		return fileID{}, "", true
	}
	if r := TrustProblem(fi, s.euid); r != "" {
		return fileID{}, r, false
	}
	if perm := fi.Mode().Perm(); perm&0o111 == 0 {
		return fileID{}, fmt.Sprintf("not executable (mode %04o)", perm), false
	}
	return idOf(fi), "", false
}

// ignoredName says why a name is never a handler's, or "" if it may be:
// dotfiles and editor or package-manager leftovers are skipped without a
// word in the journal.
func ignoredName(name string) string {
	switch {
	case strings.HasPrefix(name, "."):
		return "a dotfile"
	case strings.HasSuffix(name, "~"):
		return "named *~, an editor's backup"
	case strings.Contains(name, ".dpkg-"):
		return "named *.dpkg-*, dpkg's leftover"
	}
	for _, suffix := range []string{".swp", ".tmp", ".rpmnew", ".rpmsave", ".disabled"} {
		if strings.HasSuffix(name, suffix) {
			return "named *" + suffix
		}
	}
	return ""
}

// refresh rescans the directory, keeps what it found and marks which
// handlers are active. Called with submitMu held.
func (p *Pool) refresh() []found {
	st := stampPath(p.dir)
	p.mu.Lock()
	p.stale = false // a change the watcher reports from now on counts again
	p.mu.Unlock()
	handlers, links := p.scan.scan()
	handlers = p.withCommands(handlers)
	p.mu.Lock()
	for _, h := range p.handlers {
		h.active = false
	}
	for _, f := range handlers {
		p.handlerLocked(f.name).active = true
	}
	p.list, p.stamp, p.links = handlers, st, links
	p.refused, p.ignored = p.scan.refused, p.scan.ignored // replaced, never changed, by the next scan
	if st.recent() || slices.ContainsFunc(links, func(l linkStamp) bool { return l.stamp.recent() }) {
		p.stale = true
	}
	back := p.read && !p.dirOK && p.scan.dirProblem == ""
	p.dirOK, p.read, p.dirProblem = p.scan.dirProblem == "", true, p.scan.dirProblem
	p.mu.Unlock()
	p.scan.flush() // what changed, now that it is in effect
	if back && p.sp != nil {
		p.refill() // runs held back while the directory could not be read
	}
	return handlers
}

// handlerList returns the handlers an event goes to: those the last read
// of the directory accepted, unless that read may be out of date, and then
// those of a new read. It may be out of date when the directory is not
// watched, when the watcher saw a change since, when the directory's
// identity or ctime changed since (an entry added, removed or renamed
// changes the ctime at once, before the watcher hears of it, so such a
// change applies from the very next event), and when the target of a
// symlinked handler changed, which the watcher does not see. Called with
// submitMu held.
func (p *Pool) handlerList() []found {
	st := stampPath(p.dir)
	p.mu.Lock()
	fresh := p.watching && !p.stale && st == p.stamp
	list, links := p.list, p.links
	p.mu.Unlock()
	for _, l := range links {
		if !fresh {
			break
		}
		fresh = stampPath(l.path) == l.stamp
	}
	if fresh {
		return list
	}
	return p.refresh()
}

// markStale notes that the directory changed since the last read; the
// next event reads it again. Called by the watcher on every relevant
// change, before it lets the burst settle.
func (p *Pool) markStale() {
	p.mu.Lock()
	p.stale = true
	p.mu.Unlock()
}

// racyWindow is how long after a change of the directory its ctime cannot
// tell that change from a later one: timestamps come from a clock that
// advances in ticks of a few milliseconds, so two changes within one tick
// leave the same ctime. A read this close to a change is not trusted to
// stay current; the next event reads the directory again.
const racyWindow = 100 * time.Millisecond

// fileStamp is what a stat says about whether a file changed: its
// identity and its ctime, which a change of its mode or owner moves
// forward and, for a directory, every entry added, removed or renamed. The
// zero value stands for a file that cannot be stat'ed.
type fileStamp struct {
	id    fileID
	ctime int64 // nanoseconds since the epoch
}

// stampPath stats path, following symlinks as the scan does.
func stampPath(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	return stampOf(fi)
}

func stampOf(fi fs.FileInfo) fileStamp {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileStamp{}
	}
	return fileStamp{id: idOf(fi), ctime: st.Ctim.Nano()}
}

// recent reports whether the stamp is too close to now to tell the next
// change apart (see racyWindow).
func (s fileStamp) recent() bool {
	return s != fileStamp{} && time.Since(time.Unix(0, s.ctime)) < racyWindow
}

// shell runs command handlers.
const shell = "/bin/sh"

// withCommands adds the command handlers to the files the scan accepted,
// in lexical order of names; a file named as a command handler is not run,
// which is logged once (by refresh, with the scan's records). Called with
// submitMu held (configs change only under it).
func (p *Pool) withCommands(files []found) []found {
	var out []found
	shadowed := map[string]bool{}
	for _, f := range files {
		if c := p.configs[f.name]; c.command != "" {
			shadowed[f.name] = true
			if !p.shadowed[f.name] {
				p.scan.note(slog.LevelWarn, fmt.Sprintf("handler file %s not run: a handler block of that name sets command", f.path),
					"HANDLER", f.name, "FILE", f.path)
			}
			continue
		}
		out = append(out, f)
	}
	p.shadowed = shadowed
	commands := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(p.configs)) {
		c := p.configs[name]
		if c.command == "" {
			continue
		}
		out = append(out, found{name: name, path: shell, command: c.command})
		commands[name] = c.command
		switch old, ok := p.commands[name]; {
		case !ok:
			p.scan.note(slog.LevelInfo, "handler added: "+name, "HANDLER", name, "COMMAND", c.command)
		case old != c.command:
			p.scan.note(slog.LevelInfo, "handler replaced: "+name, "HANDLER", name, "COMMAND", c.command)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(p.commands)) {
		if _, ok := commands[name]; !ok {
			p.scan.note(slog.LevelInfo, "handler removed: "+name, "HANDLER", name, "COMMAND", p.commands[name])
		}
	}
	p.commands = commands
	slices.SortFunc(out, func(a, b found) int { return strings.Compare(a.name, b.name) })
	return out
}

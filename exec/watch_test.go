package exec

import (
	"fmt"
	"log/slog"
	"os"
	osexec "os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
)

// noticeWithin is how soon a change to the handlers directory must be
// noticed, logged and applied.
const noticeWithin = time.Second

// install puts a script in place as editors and dpkg do: written to
// NAME.tmp in the same directory (an ignored name), then renamed over NAME.
// Another process writes it, as in life; a file this process had open for
// writing could be inherited by a handler being forked at that moment and
// make the new script fail to start with ETXTBSY.
func install(t *testing.T, dir, name, body string) {
	t.Helper()
	cmd := osexec.Command("/bin/sh", "-c", `cat > "$1.tmp" && chmod 755 "$1.tmp" && mv -f "$1.tmp" "$1"`,
		"sh", filepath.Join(dir, name))
	cmd.Stdin = strings.NewReader("#!/bin/sh\n" + body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("install %s: %v: %s", name, err, out)
	}
}

// noticed waits for the n-th record msg with the given attributes, and
// fails if it came later than noticeWithin after since.
func noticed(t *testing.T, rec *recorder, since time.Time, n int, msg string, match ...string) {
	t.Helper()
	desc := fmt.Sprintf("record %d of %q %v", n, msg, match)
	waitFor(t, 5*noticeWithin, desc, func() bool { return len(rec.find(msg, match...)) >= n })
	if took := time.Since(since); took > noticeWithin {
		t.Errorf("%s came %s after the change; want within %s", desc, took, noticeWithin)
	}
}

// The watcher notices every kind of change to the handlers directory, and
// the directory itself appearing, vanishing and being replaced, and logs it
// within a second without any event being submitted.
func TestWatcherLogsChangesWithoutEvents(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	dir := filepath.Join(root, "etc", "handlers.d") // neither exists yet
	p, rec := startPool(t, Options{Dir: dir})
	if got := rec.find("handlers directory does not exist; no handlers until it appears"); len(got) != 1 {
		t.Errorf("missing-directory records = %d; want 1", len(got))
	}
	if s := p.Summary(); !s.Watching || s.Handlers != 0 {
		t.Errorf("Summary() with the directory missing = %+v; want Watching and no handlers", s)
	}
	script := "exit 0\n"

	start := time.Now()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	noticed(t, rec, start, 1, "handlers directory readable", "DIR", dir)

	start = time.Now()
	install(t, dir, "h1", script)
	noticed(t, rec, start, 1, "handler added", "HANDLER", "h1")

	path := filepath.Join(dir, "h1")
	start = time.Now()
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	noticed(t, rec, start, 1, fmt.Sprintf("handler file %s refused: not executable (mode 0644)", path), "HANDLER", "h1")
	noticed(t, rec, start, 1, "handler removed", "HANDLER", "h1")

	start = time.Now()
	if err := os.Chmod(path, 0o755); err != nil {
		t.Fatal(err)
	}
	noticed(t, rec, start, 2, "handler added", "HANDLER", "h1")

	start = time.Now()
	install(t, dir, "h1", "exit 1\n")
	noticed(t, rec, start, 1, "handler replaced", "HANDLER", "h1")

	start = time.Now()
	if err := os.Rename(path, filepath.Join(dir, "h2")); err != nil {
		t.Fatal(err)
	}
	noticed(t, rec, start, 2, "handler removed", "HANDLER", "h1")
	noticed(t, rec, start, 1, "handler added", "HANDLER", "h2")

	start = time.Now()
	if err := os.Remove(filepath.Join(dir, "h2")); err != nil {
		t.Fatal(err)
	}
	noticed(t, rec, start, 1, "handler removed", "HANDLER", "h2")

	// The directory goes away, then a new one is renamed into place whole.
	start = time.Now()
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	noticed(t, rec, start, 2, "handlers directory does not exist; no handlers until it appears")
	staged := filepath.Join(root, "etc", "staged")
	if err := os.Mkdir(staged, 0o755); err != nil {
		t.Fatal(err)
	}
	install(t, staged, "h3", script)
	start = time.Now()
	if err := os.Rename(staged, dir); err != nil {
		t.Fatal(err)
	}
	noticed(t, rec, start, 1, "handler added", "HANDLER", "h3", "FILE", filepath.Join(dir, "h3"))
	// ... and the watch follows the new directory.
	start = time.Now()
	install(t, dir, "h4", script)
	noticed(t, rec, start, 1, "handler added", "HANDLER", "h4")

	if s := p.Summary(); !s.Watching || s.Handlers != 2 {
		t.Errorf("Summary() = %+v; want Watching and 2 handlers", s)
	}
	p.Close()
	if s := p.Summary(); s.Watching {
		t.Errorf("Summary() after Close = %+v; want Watching false", s)
	}
	if got := rec.find("handler run"); len(got) != 0 {
		t.Errorf(`"handler run" records = %d; want 0, no event was submitted`, len(got))
	}
}

// submitted is the stream of events a test submits, with when each was.
type submitted struct {
	mu    sync.Mutex
	times []time.Time // times[i] is when the event with LTime i+1 was submitted
}

func (s *submitted) add(at time.Time) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.times = append(s.times, at)
	return uint64(len(s.times))
}

func (s *submitted) snapshot() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.times)
}

// runsOf reads a handler's log of "VERSION LTIME" lines.
func runsOf(t *testing.T, path string) (versions []string, ltimes []int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(strings.TrimSuffix(string(b), "\n"), "\n") {
		v, l, _ := strings.Cut(line, " ")
		n, err := strconv.Atoi(l)
		if err != nil {
			t.Fatalf("line %q of %s: %v", line, path, err)
		}
		versions, ltimes = append(versions, v), append(ltimes, n)
	}
	return versions, ltimes
}

// isRange reports whether ltimes is exactly from, from+1, ..., to.
func isRange(ltimes []int, from, to int) bool {
	if len(ltimes) != to-from+1 {
		return false
	}
	for i, l := range ltimes {
		if l != from+i {
			return false
		}
	}
	return true
}

// Under a steady stream of events, a handler dropped in, one replaced
// atomically and one deleted change what runs within a second, with no
// restart, while the handler that stays runs every event exactly once, in
// order.
func TestHandlerChangesUnderLoad(t *testing.T) {
	t.Parallel()
	dir, out := t.TempDir(), t.TempDir()
	body := func(version string) string {
		return fmt.Sprintf("echo \"%s $SERF_USER_LTIME\" >> '%s'/\"$SERF_HANDLER\"\n", version, out)
	}
	install(t, dir, "stay", body("v1"))
	install(t, dir, "swap", body("v1"))
	install(t, dir, "gone", body("v1"))
	p, rec := startPool(t, Options{Dir: dir})

	// The stream: one event every 20ms, submitted by a goroutine this test
	// owns and waits for.
	var sent submitted
	stop, streamDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(streamDone)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				now := time.Now()
				p.Submit(userEvent("e", "", sent.add(now)))
			}
		}
	}()
	stopStream := sync.OnceFunc(func() { close(stop); <-streamDone })
	t.Cleanup(stopStream)
	waitSent := func(cond func([]time.Time) bool) {
		t.Helper()
		waitFor(t, 20*time.Second, "events to be submitted", func() bool { return cond(sent.snapshot()) })
	}
	waitSent(func(ts []time.Time) bool { return len(ts) >= 10 })

	// change does one change to the directory and notes when it began and
	// ended.
	type span struct{ began, done time.Time }
	change := func(f func()) span {
		s := span{began: time.Now()}
		f()
		s.done = time.Now()
		return s
	}
	added := change(func() { install(t, dir, "new", body("v1")) })
	waitSent(func(ts []time.Time) bool { return ts[len(ts)-1].After(added.done.Add(200 * time.Millisecond)) })
	replaced := change(func() { install(t, dir, "swap", body("v2")) })
	waitSent(func(ts []time.Time) bool { return ts[len(ts)-1].After(replaced.done.Add(200 * time.Millisecond)) })
	removed := change(func() {
		if err := os.Remove(filepath.Join(dir, "gone")); err != nil {
			t.Fatal(err)
		}
	})
	// Enough events after the last change's deadline to see it applied.
	waitSent(func(ts []time.Time) bool {
		return ts[len(ts)-1].After(removed.done.Add(noticeWithin + 300*time.Millisecond))
	})
	stopStream()
	p.Close()
	times := sent.snapshot()
	n := len(times)
	// firstAfter is the LTime of the first event submitted after at.
	firstAfter := func(at time.Time) int {
		i, _ := slices.BinarySearchFunc(times, at, func(e, at time.Time) int { return e.Compare(at) })
		return i + 1
	}

	if _, got := runsOf(t, filepath.Join(out, "stay")); !isRange(got, 1, n) {
		t.Errorf("events run by stay = %v; want 1..%d, each once, in order", got, n)
	}

	_, got := runsOf(t, filepath.Join(out, "new"))
	if len(got) == 0 || !isRange(got, got[0], n) {
		t.Errorf("events run by new = %v; want every event from its first one to %d, each once, in order", got, n)
	} else {
		if before := firstAfter(added.began); got[0] < before {
			t.Errorf("new ran event %d, submitted before it was installed; want none before event %d", got[0], before)
		}
		if deadline := firstAfter(added.done.Add(noticeWithin)); got[0] > deadline {
			t.Errorf("new first ran event %d, submitted %s after it was installed; want within %s",
				got[0], times[got[0]-1].Sub(added.done), noticeWithin)
		}
	}

	versions, got := runsOf(t, filepath.Join(out, "swap"))
	switched := slices.Index(versions, "v2")
	switch {
	case !isRange(got, 1, n):
		t.Errorf("events run by swap = %v; want 1..%d, each once, in order", got, n)
	case switched < 0:
		t.Errorf("versions of swap run = %v; want v2 after it was replaced", versions)
	case slices.Contains(versions[switched:], "v1"):
		t.Errorf("versions of swap run = %v; want v1 then only v2", versions)
	case got[switched] > firstAfter(replaced.done.Add(noticeWithin)):
		t.Errorf("swap first ran v2 for event %d, submitted %s after it was replaced; want within %s",
			got[switched], times[got[switched]-1].Sub(replaced.done), noticeWithin)
	}

	if _, got := runsOf(t, filepath.Join(out, "gone")); len(got) == 0 || !isRange(got, 1, got[len(got)-1]) {
		t.Errorf("events run by gone = %v; want 1..k, each once, in order", got)
	} else if last, deadline := got[len(got)-1], firstAfter(removed.done.Add(noticeWithin)); last >= deadline {
		t.Errorf("gone ran event %d, submitted %s after it was deleted; want none after %s",
			last, times[last-1].Sub(removed.done), noticeWithin)
	}

	for _, s := range p.Stats() {
		if s.Name != "gone" && (s.Failures != 0 || s.Drops != 0) {
			t.Errorf("Stats() for %s = %+v; want no failures or drops", s.Name, s)
		}
	}
	for _, w := range []struct{ msg, handler string }{
		{"handler added", "new"}, {"handler replaced", "swap"}, {"handler removed", "gone"},
	} {
		if got := rec.find(w.msg, "HANDLER", w.handler); len(got) != 1 {
			t.Errorf("%q records for %s = %d; want 1", w.msg, w.handler, len(got))
		}
	}
}

// Only changes that can alter which handlers there are wake the watcher:
// not writes to a file's contents, nor changes to the parent's other
// entries.
func TestWatcherRelevant(t *testing.T) {
	w := &watcher{dir: "/etc/serfd/handlers.d"}
	for _, tc := range []struct {
		ev   fsnotify.Event
		want bool
	}{
		{fsnotify.Event{Name: "/etc/serfd/handlers.d/h", Op: fsnotify.Create}, true},
		{fsnotify.Event{Name: "/etc/serfd/handlers.d/h", Op: fsnotify.Chmod}, true},
		{fsnotify.Event{Name: "/etc/serfd/handlers.d/h", Op: fsnotify.Rename}, true},
		{fsnotify.Event{Name: "/etc/serfd/handlers.d/h", Op: fsnotify.Remove}, true},
		{fsnotify.Event{Name: "/etc/serfd/handlers.d/h", Op: fsnotify.Write}, false},
		{fsnotify.Event{Name: "/etc/serfd/handlers.d", Op: fsnotify.Remove}, true},
		{fsnotify.Event{Name: "/etc/serfd/handlers.d", Op: fsnotify.Chmod}, true},
		{fsnotify.Event{Name: "/etc/serfd", Op: fsnotify.Create}, true},
		{fsnotify.Event{Name: "//etc", Op: fsnotify.Create}, true},
		{fsnotify.Event{Name: "/etc/serfd/config.hcl", Op: fsnotify.Create}, false},
		{fsnotify.Event{Name: "/etc/serfd/handlers.dx", Op: fsnotify.Create}, false},
		{fsnotify.Event{Name: "/etc/serfd/handlers.d/sub/x", Op: fsnotify.Create}, false},
	} {
		if got := w.relevant(tc.ev); got != tc.want {
			t.Errorf("relevant(%s) = %v; want %v", tc.ev, got, tc.want)
		}
	}
}

// With the directory a symlink, changes on the way to its target matter
// too: the target itself, its entries, and its ancestors.
func TestWatcherRelevantSymlink(t *testing.T) {
	w := &watcher{dir: "/etc/serfd/handlers.d", real: "/opt/serfd/v1"}
	for _, tc := range []struct {
		ev   fsnotify.Event
		want bool
	}{
		{fsnotify.Event{Name: "/etc/serfd/handlers.d", Op: fsnotify.Create}, true},
		{fsnotify.Event{Name: "/opt/serfd/v1", Op: fsnotify.Remove}, true},
		{fsnotify.Event{Name: "/opt/serfd/v1", Op: fsnotify.Create}, true},
		{fsnotify.Event{Name: "/opt/serfd", Op: fsnotify.Rename}, true},
		{fsnotify.Event{Name: "/opt/serfd/v2", Op: fsnotify.Create}, false},
		{fsnotify.Event{Name: "/opt/serfd/v1", Op: fsnotify.Write}, false},
	} {
		if got := w.relevant(tc.ev); got != tc.want {
			t.Errorf("relevant(%s) with the directory -> %s = %v; want %v", tc.ev, w.real, got, tc.want)
		}
	}
}

// versioned is a handler body that appends "VERSION LTIME" to
// out/$SERF_HANDLER, for runsOf.
func versioned(out, version string) string {
	return fmt.Sprintf("echo \"%s $SERF_USER_LTIME\" >> '%s'/\"$SERF_HANDLER\"\n", version, out)
}

// ranEvents is the "VERSION LTIME" lines a versioned handler wrote, or
// nil if it never ran.
func ranEvents(t *testing.T, out, handler string) []string {
	t.Helper()
	versions, ltimes := runsOf(t, filepath.Join(out, handler))
	var got []string
	for i, v := range versions {
		got = append(got, fmt.Sprintf("%s %d", v, ltimes[i]))
	}
	return got
}

// submitRun submits user event ltime and waits until the pool has logged
// n "handler run" records in all.
func submitRun(t *testing.T, p *Pool, rec *recorder, ltime uint64, n int) {
	t.Helper()
	p.Submit(userEvent("e", "", ltime))
	waitFor(t, 10*time.Second, fmt.Sprintf("%d handler runs", n), func() bool { return len(rec.find("handler run")) >= n })
}

// The handlers directory removed and created again, then renamed away and
// replaced by another renamed into place, while the pool runs: each time
// the new directory is watched (a handler added to it is noticed without
// an event) and only its handlers run, none of the old one's.
func TestHandlersDirRecreated(t *testing.T) {
	t.Parallel()
	root, out := t.TempDir(), t.TempDir()
	dir := filepath.Join(root, "handlers.d")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	install(t, dir, "old", versioned(out, "v1"))
	p, rec := startPool(t, Options{Dir: dir})
	submitRun(t, p, rec, 1, 1)

	start := time.Now()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	noticed(t, rec, start, 1, "handler removed", "HANDLER", "old")
	start = time.Now()
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	noticed(t, rec, start, 1, "handlers directory readable", "DIR", dir)
	start = time.Now()
	install(t, dir, "new", versioned(out, "v1"))
	noticed(t, rec, start, 1, "handler added", "HANDLER", "new")
	submitRun(t, p, rec, 2, 2)

	// Renamed away (still existing, with a handler of its own) and
	// replaced by a staged directory.
	staged, aside := filepath.Join(root, "staged"), filepath.Join(root, "handlers.d.old")
	if err := os.Mkdir(staged, 0o755); err != nil {
		t.Fatal(err)
	}
	install(t, staged, "new", versioned(out, "v2"))
	start = time.Now()
	if err := os.Rename(dir, aside); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(staged, dir); err != nil {
		t.Fatal(err)
	}
	noticed(t, rec, start, 1, "handler replaced", "HANDLER", "new")
	start = time.Now()
	install(t, dir, "newer", versioned(out, "v2"))
	noticed(t, rec, start, 1, "handler added", "HANDLER", "newer")
	install(t, aside, "ghost", versioned(out, "v1"))
	p.Submit(userEvent("e", "", 3))
	p.Close()

	for _, w := range []struct {
		handler string
		want    []string
	}{
		{"old", []string{"v1 1"}},
		{"new", []string{"v1 2", "v2 3"}},
		{"newer", []string{"v2 3"}},
		{"ghost", nil},
	} {
		if got := ranEvents(t, out, w.handler); !slices.Equal(got, w.want) {
			t.Errorf("runs of %s = %q; want %q", w.handler, got, w.want)
		}
	}
	if got := rec.find("handler added", "HANDLER", "ghost"); len(got) != 0 {
		t.Errorf(`"handler added" records for ghost (in the directory renamed away) = %d; want 0`, len(got))
	}
}

// The handlers directory is a symlink swapped atomically to another
// directory (`ln -sfn` to a new name, then rename over the old link): the
// change is noticed without an event, the watch follows the new target,
// and only its handlers run.
func TestHandlersDirSymlinkSwap(t *testing.T) {
	t.Parallel()
	root, out := t.TempDir(), t.TempDir()
	v1, v2 := filepath.Join(root, "v1"), filepath.Join(root, "v2")
	for _, d := range []string{v1, v2} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	install(t, v1, "a", versioned(out, "v1"))
	install(t, v1, "gone", versioned(out, "v1"))
	install(t, v2, "a", versioned(out, "v2"))
	install(t, v2, "b", versioned(out, "v2"))
	dir := filepath.Join(root, "handlers.d")
	if err := os.Symlink("v1", dir); err != nil {
		t.Fatal(err)
	}
	p, rec := startPool(t, Options{Dir: dir})
	submitRun(t, p, rec, 1, 2)

	start := time.Now()
	swap := osexec.Command("/bin/sh", "-c", `ln -sfn v2 handlers.d.new && mv -T handlers.d.new handlers.d`)
	swap.Dir = root
	if msg, err := swap.CombinedOutput(); err != nil {
		t.Fatalf("swap the symlink: %v: %s", err, msg)
	}
	noticed(t, rec, start, 1, "handler replaced", "HANDLER", "a", "FILE", filepath.Join(dir, "a"))
	noticed(t, rec, start, 1, "handler added", "HANDLER", "b")
	noticed(t, rec, start, 1, "handler removed", "HANDLER", "gone")
	start = time.Now()
	install(t, v2, "c", versioned(out, "v2"))
	noticed(t, rec, start, 1, "handler added", "HANDLER", "c")
	if s := p.Summary(); !s.Watching || s.Handlers != 3 {
		t.Errorf("Summary() after the swap = %+v; want Watching and 3 handlers", s)
	}
	p.Submit(userEvent("e", "", 2))
	p.Close()

	for _, w := range []struct {
		handler string
		want    []string
	}{
		{"a", []string{"v1 1", "v2 2"}},
		{"gone", []string{"v1 1"}},
		{"b", []string{"v2 2"}},
		{"c", []string{"v2 2"}},
	} {
		if got := ranEvents(t, out, w.handler); !slices.Equal(got, w.want) {
			t.Errorf("runs of %s = %q; want %q", w.handler, got, w.want)
		}
	}
}

// A handler file, then the directory, made group-writable while the pool
// runs: each refusal is logged without an event, as a warning naming the
// file (or directory) and the reason, and nothing refused runs until the
// mode is fixed.
func TestHandlerBecomesUnsafe(t *testing.T) {
	t.Parallel()
	dir, out := t.TempDir(), t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	install(t, dir, "h", versioned(out, "v1"))
	path := filepath.Join(dir, "h")
	p, rec := startPool(t, Options{Dir: dir})
	submitRun(t, p, rec, 1, 1)
	chmod := func(path string, mode os.FileMode) time.Time {
		t.Helper()
		start := time.Now()
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		return start
	}

	reason := "group- or world-writable (mode 0775)"
	start := chmod(path, 0o775)
	msg := fmt.Sprintf("handler file %s refused: %s", path, reason)
	noticed(t, rec, start, 1, msg, "HANDLER", "h", "FILE", path, "REASON", reason)
	noticed(t, rec, start, 1, "handler removed", "HANDLER", "h")
	if r := rec.find(msg); r[0].level != slog.LevelWarn {
		t.Errorf("level of %q = %s; want WARN", msg, r[0].level)
	}
	if s := p.Stats(); len(s) != 1 || s[0].Active {
		t.Errorf("Stats() with h group-writable = %+v; want h inactive", s)
	}
	p.Submit(userEvent("e", "", 2))
	start = chmod(path, 0o755)
	noticed(t, rec, start, 2, "handler added", "HANDLER", "h")
	submitRun(t, p, rec, 3, 2)

	// The directory itself: refused whole.
	start = chmod(dir, 0o775)
	msg = fmt.Sprintf("handlers directory %s refused: %s", dir, reason)
	noticed(t, rec, start, 1, msg, "DIR", dir, "REASON", reason)
	noticed(t, rec, start, 2, "handler removed", "HANDLER", "h")
	p.Submit(userEvent("e", "", 4))
	start = chmod(dir, 0o755)
	noticed(t, rec, start, 3, "handler added", "HANDLER", "h")
	p.Submit(userEvent("e", "", 5))
	p.Close()

	if got, want := ranEvents(t, out, "h"), []string{"v1 1", "v1 3", "v1 5"}; !slices.Equal(got, want) {
		t.Errorf("runs of h = %q; want %q (none while it or its directory was group-writable)", got, want)
	}
	if got := rec.find("handler run", "HANDLER", "h"); len(got) != 3 {
		t.Errorf(`"handler run" records = %d; want 3`, len(got))
	}
}

// A handlers "directory" that is a regular file is refused, with no
// handlers and the parent still watched; replaced by a directory it is
// picked up without an event, and turned back into a file refused again.
func TestHandlersDirIsAFile(t *testing.T) {
	t.Parallel()
	root, out := t.TempDir(), t.TempDir()
	dir := filepath.Join(root, "handlers.d")
	if err := os.WriteFile(dir, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	p, rec := startPool(t, Options{Dir: dir})
	msg := fmt.Sprintf("handlers directory %s refused: not a directory", dir)
	if got := rec.find(msg, "DIR", dir, "REASON", "not a directory"); len(got) != 1 || got[0].level != slog.LevelWarn {
		t.Errorf("records %q = %v; want one warning", msg, got)
	}
	if s := p.Summary(); !s.Watching || s.Handlers != 0 {
		t.Errorf("Summary() with a file for a directory = %+v; want Watching (the parent) and no handlers", s)
	}
	p.Submit(userEvent("e", "", 1))

	staged := filepath.Join(root, "staged")
	if err := os.Mkdir(staged, 0o755); err != nil {
		t.Fatal(err)
	}
	install(t, staged, "h", versioned(out, "v1"))
	start := time.Now()
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(staged, dir); err != nil {
		t.Fatal(err)
	}
	noticed(t, rec, start, 1, "handler added", "HANDLER", "h")
	submitRun(t, p, rec, 2, 1)

	start = time.Now()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	noticed(t, rec, start, 1, "handler removed", "HANDLER", "h")
	start = time.Now()
	if err := os.WriteFile(dir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	noticed(t, rec, start, 2, msg)
	p.Submit(userEvent("e", "", 3))
	p.Close()

	if got, want := ranEvents(t, out, "h"), []string{"v1 2"}; !slices.Equal(got, want) {
		t.Errorf("runs of h = %q; want %q", got, want)
	}
	if got := rec.find("handler run"); len(got) != 1 {
		t.Errorf(`"handler run" records = %d; want 1`, len(got))
	}
}

// The handlers directory is a symlink, and its target is deleted and
// created again, in the symlink's own directory and elsewhere: both are
// noticed without an event, like the directory itself vanishing and
// appearing.
func TestHandlersDirSymlinkTargetRecreated(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, target string }{
		{"beside", "v1"},        // handlers.d -> v1, in the same directory
		{"elsewhere", "opt/v1"}, // handlers.d -> opt/v1, whose parent is not watched for the link
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root, out := t.TempDir(), t.TempDir()
			target := filepath.Join(root, tc.target)
			if err := os.MkdirAll(target, 0o755); err != nil {
				t.Fatal(err)
			}
			install(t, target, "h", versioned(out, "v1"))
			dir := filepath.Join(root, "handlers.d")
			if err := os.Symlink(tc.target, dir); err != nil {
				t.Fatal(err)
			}
			p, rec := startPool(t, Options{Dir: dir})
			submitRun(t, p, rec, 1, 1)

			start := time.Now()
			if err := os.RemoveAll(target); err != nil {
				t.Fatal(err)
			}
			noticed(t, rec, start, 1, "handler removed", "HANDLER", "h")
			noticed(t, rec, start, 1, "handlers directory does not exist; no handlers until it appears", "DIR", dir)
			start = time.Now()
			if err := os.Mkdir(target, 0o755); err != nil {
				t.Fatal(err)
			}
			noticed(t, rec, start, 1, "handlers directory readable", "DIR", dir)
			start = time.Now()
			install(t, target, "h", versioned(out, "v2"))
			noticed(t, rec, start, 2, "handler added", "HANDLER", "h")
			if s := p.Summary(); !s.Watching || s.Handlers != 1 {
				t.Errorf("Summary() = %+v; want Watching and 1 handler", s)
			}
			p.Submit(userEvent("e", "", 2))
			p.Close()
			if got, want := ranEvents(t, out, "h"), []string{"v1 1", "v2 2"}; !slices.Equal(got, want) {
				t.Errorf("runs of h = %q; want %q", got, want)
			}
		})
	}
}

package exec

import (
	"fmt"
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
	"github.com/serfd/serfd/internal/testutil"
)

// noticeWithin is how soon a change to the handlers directory must be
// noticed, logged and applied (longer under an emulator).
var noticeWithin = testutil.Scale(time.Second)

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
	testutil.WaitFor(t, 5*noticeWithin, desc, func() bool { return len(rec.find(msg, match...)) >= n })
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
	noticed(t, rec, start, 1, "handler added: h1", "HANDLER", "h1")

	path := filepath.Join(dir, "h1")
	start = time.Now()
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	noticed(t, rec, start, 1, fmt.Sprintf("handler file %s refused: not executable (mode 0644)", path), "HANDLER", "h1")
	noticed(t, rec, start, 1, "handler removed: h1", "HANDLER", "h1")

	start = time.Now()
	if err := os.Chmod(path, 0o755); err != nil {
		t.Fatal(err)
	}
	noticed(t, rec, start, 2, "handler added: h1", "HANDLER", "h1")

	start = time.Now()
	install(t, dir, "h1", "exit 1\n")
	noticed(t, rec, start, 1, "handler replaced: h1", "HANDLER", "h1")

	start = time.Now()
	if err := os.Rename(path, filepath.Join(dir, "h2")); err != nil {
		t.Fatal(err)
	}
	noticed(t, rec, start, 2, "handler removed: h1", "HANDLER", "h1")
	noticed(t, rec, start, 1, "handler added: h2", "HANDLER", "h2")

	start = time.Now()
	if err := os.Remove(filepath.Join(dir, "h2")); err != nil {
		t.Fatal(err)
	}
	noticed(t, rec, start, 1, "handler removed: h2", "HANDLER", "h2")

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
	noticed(t, rec, start, 1, "handler added: h3", "HANDLER", "h3", "FILE", filepath.Join(dir, "h3"))
	// ... and the watch follows the new directory.
	start = time.Now()
	install(t, dir, "h4", script)
	noticed(t, rec, start, 1, "handler added: h4", "HANDLER", "h4")

	if s := p.Summary(); !s.Watching || s.Handlers != 2 {
		t.Errorf("Summary() = %+v; want Watching and 2 handlers", s)
	}
	p.Close()
	if s := p.Summary(); s.Watching {
		t.Errorf("Summary() after Close = %+v; want Watching false", s)
	}
	if got := rec.runs(); len(got) != 0 {
		t.Errorf(`run records = %d; want 0, no event was submitted`, len(got))
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

	// The stream: one event every 20ms (slower under an emulator, where
	// starting a handler takes longer), submitted by a goroutine this test
	// owns and waits for.
	var sent submitted
	every := testutil.Scale(20 * time.Millisecond)
	stop, streamDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(streamDone)
		tick := time.NewTicker(every)
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
	stopStream := sync.OnceFunc(func() { close(stop); testutil.Recv(t, streamDone, 10*time.Second, "the event stream to stop") })
	t.Cleanup(stopStream)
	waitSent := func(cond func([]time.Time) bool) {
		t.Helper()
		testutil.WaitFor(t, 20*time.Second, "events to be submitted", func() bool { return cond(sent.snapshot()) })
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
		if got := rec.find(w.msg+": "+w.handler, "HANDLER", w.handler); len(got) != 1 {
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

package exec

import (
	"fmt"
	"log/slog"
	"os"
	osexec "os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/serfd/serfd/internal/testutil"
)

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
// n run records in all.
func submitRun(t *testing.T, p *Pool, rec *recorder, ltime uint64, n int) {
	t.Helper()
	p.Submit(userEvent("e", "", ltime))
	testutil.WaitFor(t, 10*time.Second, fmt.Sprintf("%d handler runs", n), func() bool { return len(rec.runs()) >= n })
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
	noticed(t, rec, start, 1, "handler removed: old", "HANDLER", "old")
	start = time.Now()
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	noticed(t, rec, start, 1, "handlers directory readable", "DIR", dir)
	start = time.Now()
	install(t, dir, "new", versioned(out, "v1"))
	noticed(t, rec, start, 1, "handler added: new", "HANDLER", "new")
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
	noticed(t, rec, start, 1, "handler replaced: new", "HANDLER", "new")
	start = time.Now()
	install(t, dir, "newer", versioned(out, "v2"))
	noticed(t, rec, start, 1, "handler added: newer", "HANDLER", "newer")
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
	if got := rec.find("handler added: ghost", "HANDLER", "ghost"); len(got) != 0 {
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
	noticed(t, rec, start, 1, "handler replaced: a", "HANDLER", "a", "FILE", filepath.Join(dir, "a"))
	noticed(t, rec, start, 1, "handler added: b", "HANDLER", "b")
	noticed(t, rec, start, 1, "handler removed: gone", "HANDLER", "gone")
	start = time.Now()
	install(t, v2, "c", versioned(out, "v2"))
	noticed(t, rec, start, 1, "handler added: c", "HANDLER", "c")
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
	noticed(t, rec, start, 1, "handler removed: h", "HANDLER", "h")
	if r := rec.find(msg); r[0].level != slog.LevelWarn {
		t.Errorf("level of %q = %s; want WARN", msg, r[0].level)
	}
	if s := p.Stats(); len(s) != 1 || s[0].Active {
		t.Errorf("Stats() with h group-writable = %+v; want h inactive", s)
	}
	p.Submit(userEvent("e", "", 2))
	start = chmod(path, 0o755)
	noticed(t, rec, start, 2, "handler added: h", "HANDLER", "h")
	submitRun(t, p, rec, 3, 2)

	// The directory itself: refused whole.
	start = chmod(dir, 0o775)
	msg = fmt.Sprintf("handlers directory %s refused: %s", dir, reason)
	noticed(t, rec, start, 1, msg, "DIR", dir, "REASON", reason)
	noticed(t, rec, start, 2, "handler removed: h", "HANDLER", "h")
	p.Submit(userEvent("e", "", 4))
	start = chmod(dir, 0o755)
	noticed(t, rec, start, 3, "handler added: h", "HANDLER", "h")
	p.Submit(userEvent("e", "", 5))
	p.Close()

	if got, want := ranEvents(t, out, "h"), []string{"v1 1", "v1 3", "v1 5"}; !slices.Equal(got, want) {
		t.Errorf("runs of h = %q; want %q (none while it or its directory was group-writable)", got, want)
	}
	if got := rec.runs("HANDLER", "h"); len(got) != 3 {
		t.Errorf(`run records = %d; want 3`, len(got))
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
	noticed(t, rec, start, 1, "handler added: h", "HANDLER", "h")
	submitRun(t, p, rec, 2, 1)

	start = time.Now()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	noticed(t, rec, start, 1, "handler removed: h", "HANDLER", "h")
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
	if got := rec.runs(); len(got) != 1 {
		t.Errorf(`run records = %d; want 1`, len(got))
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
			noticed(t, rec, start, 1, "handler removed: h", "HANDLER", "h")
			noticed(t, rec, start, 1, "handlers directory does not exist; no handlers until it appears", "DIR", dir)
			start = time.Now()
			if err := os.Mkdir(target, 0o755); err != nil {
				t.Fatal(err)
			}
			noticed(t, rec, start, 1, "handlers directory readable", "DIR", dir)
			start = time.Now()
			install(t, target, "h", versioned(out, "v2"))
			noticed(t, rec, start, 2, "handler added: h", "HANDLER", "h")
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

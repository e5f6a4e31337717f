package exec

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/serfd/serfd/internal/testutil"
)

// record is one captured log record.
type record struct {
	level slog.Level
	msg   string
	attrs map[string]slog.Value
}

func (r record) attr(key string) string {
	v, ok := r.attrs[key]
	if !ok {
		return "<unset>"
	}
	return v.String()
}

// recorder is a slog.Handler that keeps every record. Safe for concurrent use.
type recorder struct {
	mu      sync.Mutex
	records []record
}

func (h *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *recorder) WithAttrs([]slog.Attr) slog.Handler       { panic("not used by package exec") }
func (h *recorder) WithGroup(string) slog.Handler            { panic("not used by package exec") }

func (h *recorder) Handle(_ context.Context, r slog.Record) error {
	rec := record{level: r.Level, msg: r.Message, attrs: map[string]slog.Value{}}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value.Resolve()
		return true
	})
	h.mu.Lock()
	h.records = append(h.records, rec)
	h.mu.Unlock()
	return nil
}

// find returns the records with message msg (any message when msg is "")
// whose attributes include every key=value of match (values compared as
// strings).
func (h *recorder) find(msg string, match ...string) []record {
	return h.where(func(r record) bool { return msg == "" || r.msg == msg }, match...)
}

// with returns the records that carry the attribute key, whatever its
// value, and whose attributes include every key=value of match.
func (h *recorder) with(key string, match ...string) []record {
	return h.where(func(r record) bool { _, ok := r.attrs[key]; return ok }, match...)
}

// runs returns the records of finished runs (each run's one record with
// DURATION_MS) whose attributes include every key=value of match.
func (h *recorder) runs(match ...string) []record { return h.with("DURATION_MS", match...) }

// where returns the records that keep accepts and whose attributes include
// every key=value of match.
func (h *recorder) where(keep func(record) bool, match ...string) []record {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []record
next:
	for _, r := range h.records {
		if !keep(r) {
			continue
		}
		for i := 0; i+1 < len(match); i += 2 {
			if r.attr(match[i]) != match[i+1] {
				continue next
			}
		}
		out = append(out, r)
	}
	return out
}

func (h *recorder) dump() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var b strings.Builder
	for _, r := range h.records {
		fmt.Fprintf(&b, "%s %q", r.level, r.msg)
		for k, v := range r.attrs {
			fmt.Fprintf(&b, " %s=%q", k, v.String())
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// writeScript writes an executable #!/bin/sh script.
func writeScript(t testing.TB, dir, name, body string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// startPool starts a pool logging into a recorder and closes it at cleanup.
func startPool(t *testing.T, opts Options) (*Pool, *recorder) {
	t.Helper()
	rec := &recorder{}
	opts.Logger = slog.New(rec)
	p, err := New(opts)
	if err != nil {
		t.Fatalf("New(%+v) = %v; want no error", opts, err)
	}
	t.Cleanup(func() {
		p.Close()
		if t.Failed() {
			t.Logf("log records:\n%s", rec.dump())
		}
	})
	return p, rec
}

// readPid reads a pid a script wrote (with a trailing newline, so a pid
// being written is never read half-way).
func readPid(path string) (int, bool) {
	b, err := os.ReadFile(path)
	if err != nil || !strings.HasSuffix(string(b), "\n") {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid, err == nil && pid > 0
}

// waitPid waits for a script to write its pid file and arranges for the
// process to be SIGKILLed at cleanup if it is still our sleep or script.
// Use killGroup for a script's own pid, which names its process group.
func waitPid(t *testing.T, path string) int {
	t.Helper()
	var pid int
	testutil.WaitFor(t, 10*time.Second, "pid file "+path, func() bool {
		var ok bool
		pid, ok = readPid(path)
		return ok
	})
	t.Cleanup(func() {
		if cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil &&
			(strings.HasPrefix(string(cmdline), "sleep\x00") || strings.Contains(string(cmdline), "/bin/sh")) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	return pid
}

// pidGone reports whether pid no longer runs: it does not exist, or it is
// a zombie waiting for a reaper that is not us.
func pidGone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// pid (comm) STATE ...; comm may hold spaces, so split after the last ')'.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && strings.HasPrefix(s[i+1:], " Z")
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func fileHas(path, content string) bool {
	b, err := os.ReadFile(path)
	return err == nil && string(b) == content
}

func userEvent(name, payload string, ltime uint64) Event {
	return Event{Type: "user", UserEvent: name, LTime: ltime, Payload: []byte(payload), SelfName: "self"}
}

// killGroup SIGKILLs, if the test failed, whatever is left of the process
// group a handler run started; pgid is the pid of the script, the group's
// leader. (A passing test has seen the pool signal the group.)
func killGroup(t *testing.T, pgid int) {
	t.Cleanup(func() {
		if t.Failed() {
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
		}
	})
}

// groupMembers lists the live (non-zombie) processes of process group pgid,
// from /proc.
func groupMembers(pgid int) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// pid (comm) STATE PPID PGRP ...; comm may hold spaces.
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) >= 3 && f[0] != "Z" && f[2] == strconv.Itoa(pgid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

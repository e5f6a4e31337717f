package exec

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/serfd/serfd/internal/testutil"
)

// Discovery: ignored names are skipped, unsafe and non-executable files are
// refused with one warning per change, a missing directory is fine, files
// added later run from the next event on, in lexical order.
func TestDiscovery(t *testing.T) {
	t.Parallel()
	root, out := t.TempDir(), t.TempDir()
	dir := filepath.Join(root, "handlers.d")
	log := filepath.Join(out, "log")
	body := fmt.Sprintf("echo \"$SERF_HANDLER\" >> '%s'\n", log)

	p, rec := startPool(t, Options{Dir: dir, Workers: 1})
	p.Submit(userEvent("e", "", 1)) // directory missing: nothing runs, nothing fails
	if got := rec.find("handlers directory does not exist; no handlers until it appears"); len(got) != 1 {
		t.Errorf("missing-directory records = %d; want 1", len(got))
	}

	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"b-second", ".hidden", "c~", "d.swp", "e.tmp", "f.dpkg-old", "g.rpmnew", "h.rpmsave", "i.disabled"} {
		writeScript(t, dir, name, body)
	}
	if err := os.Mkdir(filepath.Join(dir, "subdir"), 0o755); err != nil {
		t.Fatal(err)
	}
	refused := map[string]os.FileMode{"noexec": 0o644, "groupw": 0o775, "worldw": 0o757}
	for name, mode := range refused {
		writeScript(t, dir, name, body)
		if err := os.Chmod(filepath.Join(dir, name), mode); err != nil {
			t.Fatal(err)
		}
	}
	// A FIFO never blocks the scan or a run: it is refused (so is any
	// other file that is not a regular one).
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o755); err != nil {
		t.Fatal(err)
	}
	refused["fifo"] = 0
	if os.Geteuid() == 0 {
		writeScript(t, dir, "stranger", body)
		if err := os.Chown(filepath.Join(dir, "stranger"), 12345, 12345); err != nil {
			t.Fatal(err)
		}
		refused["stranger"] = 0
	}

	p.Submit(userEvent("e", "", 2))
	p.Submit(userEvent("e", "", 3))
	testutil.WaitFor(t, 10*time.Second, "two runs of b-second", func() bool { return len(rec.runs("HANDLER", "b-second")) == 2 })
	if got, want := readFile(t, log), "b-second\nb-second\n"; got != want {
		t.Fatalf("handlers run = %q; want %q", got, want)
	}

	writeScript(t, dir, "a-first", body)
	writeScript(t, dir, "c-third", body)
	p.Submit(userEvent("e", "", 4))
	p.Close()
	if got, want := readFile(t, log), "b-second\nb-second\na-first\nb-second\nc-third\n"; got != want {
		t.Errorf("handlers run = %q; want %q", got, want)
	}

	for name := range refused {
		path := filepath.Join(dir, name)
		if got := rec.find(fmt.Sprintf("handler file %s refused: %s", path, rec.reason(name)), "FILE", path); len(got) != 1 {
			t.Errorf("refusal warnings for %s = %d; want 1 across 3 events", name, len(got))
		}
	}
	for _, w := range []struct{ name, reason string }{
		{"noexec", "not executable (mode 0644)"},
		{"groupw", "group- or world-writable (mode 0775)"},
		{"worldw", "group- or world-writable (mode 0757)"},
		{"fifo", "not a regular file"},
	} {
		if got := rec.reason(w.name); got != w.reason {
			t.Errorf("refusal reason for %s = %q; want %q", w.name, got, w.reason)
		}
	}
	if _, ok := refused["stranger"]; ok {
		if got := rec.reason("stranger"); !strings.HasPrefix(got, "owned by uid 12345") {
			t.Errorf("refusal reason for stranger = %q; want owned by uid 12345 ...", got)
		}
	}

	// Stats lists every handler and every file that is none, with why;
	// dotfiles and subdirectories are left out.
	want := map[string]HandlerStats{
		"a-first": {State: StateActive}, "b-second": {State: StateActive}, "c-third": {State: StateActive},
		"c~":         {State: StateIgnored, Reason: "named *~, an editor's backup"},
		"d.swp":      {State: StateIgnored, Reason: "named *.swp"},
		"e.tmp":      {State: StateIgnored, Reason: "named *.tmp"},
		"f.dpkg-old": {State: StateIgnored, Reason: "named *.dpkg-*, dpkg's leftover"},
		"g.rpmnew":   {State: StateIgnored, Reason: "named *.rpmnew"},
		"h.rpmsave":  {State: StateIgnored, Reason: "named *.rpmsave"},
		"i.disabled": {State: StateIgnored, Reason: "named *.disabled"},
	}
	for name := range refused {
		want[name] = HandlerStats{State: StateRefused, Reason: rec.reason(name)}
	}
	stats := p.Stats()
	got := map[string]HandlerStats{}
	for _, s := range stats {
		got[s.Name] = s
	}
	for name, w := range want {
		s, ok := got[name]
		if !ok || s.State != w.State || s.Reason != w.Reason || s.Active != (w.State == StateActive) ||
			!slices.Equal(s.Events, []string{"*"}) || s.Concurrency != 1 || s.Timeout != defaultTimeout {
			t.Errorf("Stats() entry for %s = %+v (listed: %t); want state %s, reason %q, events *, concurrency 1, timeout %s",
				name, s, ok, w.State, w.Reason, defaultTimeout)
		}
	}
	if len(stats) != len(want) {
		t.Errorf("Stats() = %+v; want %d entries, none for .hidden or subdir", stats, len(want))
	}
	if s := p.Summary(); s.Refused != len(refused) || s.Handlers != 3 || s.DirProblem != "" {
		t.Errorf("Summary() = %+v; want %d refused, 3 handlers, no directory problem", s, len(refused))
	}
}

// reason returns the REASON of the refusal warning for handler name.
func (h *recorder) reason(name string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.records {
		if r.attr("HANDLER") == name && r.attr("REASON") != "<unset>" {
			return r.attr("REASON")
		}
	}
	return ""
}

// A refused file is warned about again when the reason changes, and a fixed
// file becomes a handler. A change of an existing file's mode does not
// touch the directory, so it applies once the watcher has seen it: the
// test waits for that rather than count on the read an event would make.
func TestRefusalLoggedOncePerChange(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := writeScript(t, dir, "h", "exit 0\n")
	chmod := func(mode os.FileMode) {
		t.Helper()
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
	}
	chmod(0o644)
	p, rec := startPool(t, Options{Dir: dir})
	p.Submit(userEvent("e", "", 1))
	chmod(0o600)
	p.Submit(userEvent("e", "", 2))
	p.Submit(userEvent("e", "", 3))
	testutil.WaitFor(t, 5*time.Second, "the 0600 refusal", func() bool {
		return len(rec.find(fmt.Sprintf("handler file %s refused: not executable (mode 0600)", path))) > 0
	})
	chmod(0o755)
	testutil.WaitFor(t, 5*time.Second, "h to be added", func() bool { return len(rec.find("handler added: h", "HANDLER", "h")) > 0 })
	p.Submit(userEvent("e", "", 4))
	p.Close()
	for _, w := range []struct {
		reason string
		n      int
	}{{"not executable (mode 0644)", 1}, {"not executable (mode 0600)", 1}} {
		if got := rec.find(fmt.Sprintf("handler file %s refused: %s", path, w.reason)); len(got) != w.n {
			t.Errorf("warnings %q = %d; want %d", w.reason, len(got), w.n)
		}
	}
	if got := rec.runs("HANDLER", "h"); len(got) != 1 {
		t.Errorf("runs of h once executable = %d; want 1", len(got))
	}
}

// A full queue drops the new run, counts and logs it, and Submit does not
// block.
func TestQueueOverflowDrops(t *testing.T) {
	t.Parallel()
	dir, out := t.TempDir(), t.TempDir()
	release := filepath.Join(out, "release")
	writeScript(t, dir, "block", fmt.Sprintf(`
echo "$SERF_USER_LTIME" >> '%[1]s/started'
while [ ! -e '%[2]s' ]; do sleep 0.02; done
`, out, release))
	p, rec := startPool(t, Options{Dir: dir, Workers: 1, Queue: 2})
	p.Submit(userEvent("e", "", 1))
	testutil.WaitFor(t, 10*time.Second, "the first run to start", func() bool { return fileHas(filepath.Join(out, "started"), "1\n") })

	submitted := make(chan struct{})
	go func() {
		defer close(submitted)
		for i := range 5 {
			p.Submit(userEvent("e", "", uint64(2+i)))
		}
	}()
	select {
	case <-submitted:
	case <-time.After(10 * time.Second):
		os.WriteFile(release, nil, 0o644) // let Close finish before failing
		t.Fatal("Submit blocked behind a busy handler; want it to queue or drop at once")
	}
	s := p.Stats()
	if len(s) != 1 || s[0].Drops != 3 || s[0].Queued != 2 || s[0].Running != 1 {
		t.Errorf("Stats() = %+v; want block with 3 drops, 2 queued, 1 running", s)
	}
	if got := rec.find("handler block run dropped: queue full, 2 runs waiting (user event e)",
		"HANDLER", "block", msgIDKey, MsgHandlerDropped); len(got) != 3 {
		t.Errorf("drop warnings = %d; want 3\n%s", len(got), rec.dump())
	}

	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	p.Close()
	if got, want := readFile(t, filepath.Join(out, "started")), "1\n2\n3\n"; got != want {
		t.Errorf("runs started = %q; want %q", got, want)
	}
	if s := p.Stats(); s[0].Runs != 3 || s[0].Failures != 0 || s[0].Queued != 0 {
		t.Errorf("Stats() after Close = %+v; want 3 runs, 0 failures, 0 queued", s)
	}
}

// Concurrency lets one handler run that many events at once, and no more.
func TestConcurrency(t *testing.T) {
	t.Parallel()
	dir, out := t.TempDir(), t.TempDir()
	release := filepath.Join(out, "release")
	writeScript(t, dir, "slow", fmt.Sprintf("while [ ! -e '%s' ]; do sleep 0.02; done\n", release))
	p, _ := startPool(t, Options{Dir: dir, Workers: 4, Handlers: map[string]HandlerConfig{"slow": {Concurrency: 2}}})
	t.Cleanup(func() { os.WriteFile(release, nil, 0o644) })
	for i := range 3 {
		p.Submit(userEvent("e", "", uint64(i)))
	}
	testutil.WaitFor(t, 10*time.Second, "2 running and 1 queued", func() bool {
		s := p.Stats()
		return len(s) == 1 && s[0].Running == 2 && s[0].Queued == 1
	})
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	p.Close()
	if s := p.Stats(); s[0].Runs != 3 {
		t.Errorf("Stats() after Close = %+v; want 3 runs", s)
	}
}

// A handler filtered on user:deploy runs only for that event.
func TestFilteredHandler(t *testing.T) {
	t.Parallel()
	dir, out := t.TempDir(), t.TempDir()
	script := fmt.Sprintf("echo \"$SERF_EVENT ${SERF_USER_EVENT:-$SERF_QUERY_NAME}\" >> '%s'/\"$SERF_HANDLER\"\n", out)
	writeScript(t, dir, "all", script)
	writeScript(t, dir, "deploy", script)
	writeScript(t, dir, "joins", script)
	p, _ := startPool(t, Options{Dir: dir, Handlers: map[string]HandlerConfig{
		"deploy": {Events: []string{"user:deploy"}},
		"joins":  {Events: []string{"member-join,member-leave", "query:ping"}},
	}})
	p.Submit(userEvent("other", "", 1))
	p.Submit(Event{Type: "member-join", Members: []Member{{Name: "n", Addr: "10.0.0.1"}}})
	p.Submit(Event{Type: "query", QueryName: "deploy", LTime: 1})
	p.Submit(userEvent("deploy", "", 2))
	p.Submit(Event{Type: "query", QueryName: "ping", LTime: 2})
	p.Close()
	for name, want := range map[string]string{
		"all":    "user other\nmember-join \nquery deploy\nuser deploy\nquery ping\n",
		"deploy": "user deploy\n",
		"joins":  "member-join \nquery ping\n",
	} {
		if got := readFile(t, filepath.Join(out, name)); got != want {
			t.Errorf("events run by %s = %q; want %q", name, got, want)
		}
	}
}

func TestValidateFilter(t *testing.T) {
	for _, spec := range []string{"*", "member-join", "member-leave", "member-failed", "member-update", "member-reap",
		"user", "user:deploy", "query", "query:uptime", "member-join,member-leave", "user:a:b"} {
		if err := ValidateFilter(spec); err != nil {
			t.Errorf("ValidateFilter(%q) = %v; want nil", spec, err)
		}
	}
	for spec, want := range map[string]string{
		"":                  "empty event filter",
		"member-joined":     `unknown event filter "member-joined"`,
		"user:":             `empty user name`,
		"query:":            `empty query name`,
		"member-join:x":     "only user and query take a :NAME",
		"member-join,":      "empty element",
		"member-join, user": `unknown event filter " user"`,
		"USER":              `unknown event filter "USER"`,
	} {
		if err := ValidateFilter(spec); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ValidateFilter(%q) = %v; want an error containing %q", spec, err, want)
		}
	}
}

func TestFilterMatch(t *testing.T) {
	for _, tc := range []struct {
		specs []string
		ev    Event
		want  bool
	}{
		{nil, Event{Type: "member-reap"}, true},
		{[]string{"*"}, Event{Type: "query", QueryName: "x"}, true},
		{[]string{"user"}, Event{Type: "user", UserEvent: "x"}, true},
		{[]string{"user"}, Event{Type: "query", QueryName: "x"}, false},
		{[]string{"user:x"}, Event{Type: "user", UserEvent: "xy"}, false},
		{[]string{"query:x"}, Event{Type: "user", UserEvent: "x"}, false},
		{[]string{"member-join", "member-failed"}, Event{Type: "member-failed"}, true},
		{[]string{"member-join"}, Event{Type: "member-update"}, false},
	} {
		f, err := compileFilter(tc.specs)
		if err != nil {
			t.Fatal(err)
		}
		if got := f.match(&tc.ev); got != tc.want {
			t.Errorf("filter %q match(%+v) = %v; want %v", tc.specs, tc.ev, got, tc.want)
		}
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	for _, tc := range []struct {
		opts Options
		want string
	}{
		{Options{}, "handlers directory is not set"},
		{Options{Dir: "/x", Workers: -1}, "workers is negative"},
		{Options{Dir: "/x", Queue: -1}, "queue is negative"},
		{Options{Dir: "/x", Handlers: map[string]HandlerConfig{"h": {Events: []string{"nope"}}}}, `handler "h": unknown event filter "nope"`},
		{Options{Dir: "/x", Handlers: map[string]HandlerConfig{"h": {Concurrency: -2}}}, `handler "h": concurrency -2 is negative`},
		{Options{Dir: "/x", Handlers: map[string]HandlerConfig{"h": {Env: map[string]string{"A=B": "c"}}}}, `handler "h": env "A=B"`},
	} {
		p, err := New(tc.opts)
		if err == nil {
			p.Close()
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v; want an error containing %q", tc.opts, err, tc.want)
		}
	}
}

// Close waits for queued runs, is idempotent, and Submit after it is a no-op.
func TestCloseIdempotent(t *testing.T) {
	t.Parallel()
	dir, out := t.TempDir(), t.TempDir()
	writeScript(t, dir, "h", fmt.Sprintf("echo x >> '%s/log'\n", out))
	p, _ := startPool(t, Options{Dir: dir})
	p.Submit(userEvent("e", "", 1))
	p.Close()
	p.Close()
	p.Submit(userEvent("e", "", 2))
	if got := readFile(t, filepath.Join(out, "log")); got != "x\n" {
		t.Errorf("runs = %q; want exactly one before Close", got)
	}
}

// SetHandlers applies new settings to later events and rejects bad ones.
func TestSetHandlers(t *testing.T) {
	t.Parallel()
	dir, out := t.TempDir(), t.TempDir()
	writeScript(t, dir, "h", fmt.Sprintf("echo \"$SERF_USER_EVENT\" >> '%s/log'\n", out))
	p, _ := startPool(t, Options{Dir: dir, Handlers: map[string]HandlerConfig{"h": {Events: []string{"user:a"}}}})
	if err := p.SetHandlers(map[string]HandlerConfig{"h": {Events: []string{"bad"}}}); err == nil {
		t.Errorf("SetHandlers(bad filter) = nil; want an error")
	}
	p.Submit(userEvent("a", "", 1))
	p.Submit(userEvent("b", "", 2))
	if err := p.SetHandlers(map[string]HandlerConfig{"h": {Events: []string{"user:b"}}}); err != nil {
		t.Fatalf("SetHandlers(user:b) = %v; want nil", err)
	}
	p.Submit(userEvent("a", "", 3))
	p.Submit(userEvent("b", "", 4))
	p.Close()
	if got, want := readFile(t, filepath.Join(out, "log")), "a\nb\n"; got != want {
		t.Errorf("events run = %q; want %q", got, want)
	}
}

// Close is bounded by DrainTimeout: a script still running then is stopped
// with its process group as at a deadline, and the runs still queued are
// dropped and counted, so a stop never waits for handler deadlines.
func TestCloseBoundedByDrainTimeout(t *testing.T) {
	t.Parallel()
	dir, out := t.TempDir(), t.TempDir()
	pids := filepath.Join(out, "pids")
	writeScript(t, dir, "hang", fmt.Sprintf(`
echo $$ >> '%[1]s'
sleep 3600 &
echo $! >> '%[1]s.child'
wait
`, pids))
	p, rec := startPool(t, Options{Dir: dir, Workers: 1, Timeout: time.Hour, DrainTimeout: 300 * time.Millisecond, KillGrace: 200 * time.Millisecond})
	for i := range 4 {
		p.Submit(userEvent("e", "", uint64(1+i)))
	}
	pgid := waitPid(t, pids)
	child := waitPid(t, pids+".child")

	closed := make(chan struct{})
	go func() { p.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(20 * time.Second):
		killGroup(t, pgid)
		t.Fatal("Close did not return after DrainTimeout and the kill grace")
	}
	testutil.WaitFor(t, 5*time.Second, "the hung script and its child to be gone", func() bool { return pidGone(pgid) && pidGone(child) })
	if got := rec.find("handler hang still running at shutdown, 300 ms after the stop began; sending SIGTERM (user event e)",
		"HANDLER", "hang"); len(got) != 1 {
		t.Errorf("shutdown stop records = %d; want 1\n%s", len(got), rec.dump())
	}
	if got := rec.with("DROPPED"); len(got) != 1 || got[0].attr("DROPPED") != "3" ||
		got[0].msg != "3 handler runs dropped at shutdown: not started 300 ms after the stop began" {
		t.Errorf("shutdown drop records = %v; want one with DROPPED 3", got)
	}
	s := p.Stats()
	if len(s) != 1 || s[0].Runs != 1 || s[0].Drops != 3 || s[0].Queued != 0 {
		t.Errorf("Stats() after Close = %+v; want 1 run, 3 drops, 0 queued", s)
	}
	if got := readFile(t, pids); strings.Count(got, "\n") != 1 {
		t.Errorf("runs started = %q; want only the first", got)
	}
}

// The pool keeps the handler list between reads of the directory, but a
// change to the target of a symlinked handler (which no watch of the
// directory sees) still applies from the next event.
func TestSymlinkedHandlerTargetChange(t *testing.T) {
	t.Parallel()
	dir, elsewhere, out := t.TempDir(), t.TempDir(), t.TempDir()
	target := writeScript(t, elsewhere, "real", fmt.Sprintf("echo \"$SERF_USER_LTIME\" >> '%s/log'\n", out))
	if err := os.Symlink(target, filepath.Join(dir, "h")); err != nil {
		t.Fatal(err)
	}
	p, rec := startPool(t, Options{Dir: dir, Workers: 1, Handlers: map[string]HandlerConfig{"h": {Events: []string{"user:go"}}}})
	// Until the list is trusted (a read well after the last change), an
	// event reads the directory anyway; get past that.
	testutil.WaitFor(t, 5*time.Second, "the handler list to be kept", func() bool {
		p.Submit(userEvent("other", "", 1))
		p.mu.Lock()
		defer p.mu.Unlock()
		return !p.stale && p.watching
	})
	if err := os.Chmod(target, 0o644); err != nil {
		t.Fatal(err)
	}
	p.Submit(userEvent("go", "", 2))
	if err := os.Chmod(target, 0o755); err != nil {
		t.Fatal(err)
	}
	p.Submit(userEvent("go", "", 3))
	p.Close()
	if got, want := readFile(t, filepath.Join(out, "log")), "3\n"; got != want {
		t.Errorf("runs = %q; want only the event after the target was executable again", got)
	}
	if got := rec.find(fmt.Sprintf("handler file %s refused: not executable (mode 0644)", filepath.Join(dir, "h"))); len(got) != 1 {
		t.Errorf("refusals of h = %d; want 1", len(got))
	}
}

// A command handler runs as `/bin/sh -c COMMAND` with the event's
// environment and stdin, as a Serf agent runs its event_handlers; its
// filter applies; a file of the same name is not run; removing the
// setting removes the handler.
func TestCommandHandler(t *testing.T) {
	t.Parallel()
	dir, out := t.TempDir(), t.TempDir()
	log := filepath.Join(out, "log")
	writeScript(t, dir, "cmd", fmt.Sprintf("echo file >> '%s'\n", log))
	command := fmt.Sprintf(`read p; echo "$SERF_EVENT $SERF_USER_EVENT $p" >> '%s'`, log)
	p, rec := startPool(t, Options{Dir: dir, Handlers: map[string]HandlerConfig{
		"cmd": {Events: []string{"user:deploy"}, Command: command},
	}})
	p.Submit(userEvent("deploy", "v1\n", 1))
	p.Submit(userEvent("other", "x\n", 2))
	testutil.WaitFor(t, 10*time.Second, "the command to run", func() bool { return fileHas(log, "user deploy v1\n") })
	if got := rec.find("handler added: cmd", "HANDLER", "cmd", "COMMAND", command); len(got) != 1 {
		t.Errorf("'handler added' records for the command = %d; want 1\n%s", len(got), rec.dump())
	}
	if got := rec.find("handler file " + filepath.Join(dir, "cmd") + " not run: a handler block of that name sets command"); len(got) != 1 {
		t.Errorf("shadowed-file warnings = %d; want 1\n%s", len(got), rec.dump())
	}
	if err := p.SetHandlers(nil); err != nil {
		t.Fatal(err)
	}
	p.Submit(userEvent("deploy", "v2\n", 3))
	testutil.WaitFor(t, 10*time.Second, "the file handler to run once the command is gone", func() bool {
		return fileHas(log, "user deploy v1\nfile\n")
	})
	if got := rec.find("handler removed: cmd", "HANDLER", "cmd", "COMMAND", command); len(got) != 1 {
		t.Errorf("'handler removed' records = %d; want 1", len(got))
	}
	if err := p.SetHandlers(map[string]HandlerConfig{"c": {Command: "a\x00b"}}); err == nil {
		t.Error("SetHandlers(command with NUL) = nil; want an error")
	}
}

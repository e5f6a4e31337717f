package exec

import (
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/serfd/serfd/internal/testutil"
)

// Hung runs are killed at their deadline together with their children,
// while another handler runs 20 events in order on the remaining worker;
// nothing of the hung runs is left in the process table.
func TestHungHandlerKilledWhileOthersRun(t *testing.T) {
	t.Parallel()
	dir, out := t.TempDir(), t.TempDir()
	writeScript(t, dir, "hang", fmt.Sprintf(`
sleep 1000 &
echo $! > '%[1]s/child-'$SERF_USER_LTIME.tmp && mv '%[1]s/child-'$SERF_USER_LTIME.tmp '%[1]s/child-'$SERF_USER_LTIME
echo $$ > '%[1]s/pid-'$SERF_USER_LTIME.tmp && mv '%[1]s/pid-'$SERF_USER_LTIME.tmp '%[1]s/pid-'$SERF_USER_LTIME
sleep 1000
`, out))
	writeScript(t, dir, "tick", fmt.Sprintf("cat >> '%s/ticks'\n", out))

	// Two hung runs hold two of the three workers. The timeout leaves the
	// 20 quick runs of "tick" ample time to finish while they hang, even
	// on a loaded machine (a second a run).
	const timeout = 20 * time.Second
	const ticks = 20
	p, rec := startPool(t, Options{
		Dir:       dir,
		Workers:   3,
		KillGrace: 500 * time.Millisecond,
		Handlers: map[string]HandlerConfig{
			"hang": {Events: []string{"user:hang"}, Timeout: timeout, Concurrency: 2},
			"tick": {Events: []string{"user:tick"}},
		},
	})
	start := time.Now()
	p.Submit(userEvent("hang", "", 1))
	p.Submit(userEvent("hang", "", 2))
	var pids, children []int
	for _, ltime := range []string{"1", "2"} {
		pid := waitPid(t, filepath.Join(out, "pid-"+ltime))
		killGroup(t, pid)
		pids = append(pids, pid)
		children = append(children, waitPid(t, filepath.Join(out, "child-"+ltime)))
	}
	if s := p.Summary(); s.Running != 2 || s.Workers != 3 {
		t.Errorf("Summary() with two hung runs = %+v; want Running 2, Workers 3", s)
	}

	var want strings.Builder
	for i := range ticks {
		p.Submit(userEvent("tick", strconv.Itoa(i), uint64(3+i)))
		fmt.Fprintf(&want, "%d\n", i)
	}
	tickLog := filepath.Join(out, "ticks")
	testutil.WaitFor(t, 60*time.Second, "the ticks", func() bool { return fileHas(tickLog, want.String()) })
	if pidGone(pids[0]) || pidGone(pids[1]) || len(rec.runs("HANDLER", "hang")) != 0 {
		t.Fatalf("hang ended after %s, before tick ran %d events; want tick to run while hang is hung", time.Since(start), ticks)
	}

	testutil.WaitFor(t, timeout+15*time.Second, "the hung runs and their children to be killed", func() bool {
		for i := range pids {
			if !pidGone(pids[i]) || !pidGone(children[i]) || len(groupMembers(pids[i])) > 0 {
				return false
			}
		}
		return true
	})
	if elapsed := time.Since(start); elapsed < timeout {
		t.Errorf("hang killed after %s; want at its %s timeout", elapsed, timeout)
	}
	testutil.WaitFor(t, 5*time.Second, `run records of hang`, func() bool {
		return len(rec.runs("HANDLER", "hang")) == 2
	})
	for _, r := range rec.runs("HANDLER", "hang") {
		for k, v := range map[string]string{"TIMED_OUT": "true", "EXIT_STATUS": "-1", "SIGNAL": "SIGTERM", "SERF_USER_EVENT": "hang"} {
			if got := r.attr(k); got != v {
				t.Errorf("run record of hang (SERF_LTIME %s): %s = %s; want %s", r.attr("SERF_LTIME"), k, got, v)
			}
		}
		if !regexp.MustCompile(`^handler hang timed out after 2\d\.\d s; stopped by SIGTERM \(user event hang\)$`).MatchString(r.msg) {
			t.Errorf("run record of hang (SERF_LTIME %s): message %q; want it to say it timed out after 2x.x s", r.attr("SERF_LTIME"), r.msg)
		}
		if ms, _ := strconv.Atoi(r.attr("DURATION_MS")); ms < int(timeout.Milliseconds()) {
			t.Errorf("run record of hang (SERF_LTIME %s): DURATION_MS = %d; want at least %d", r.attr("SERF_LTIME"), ms, timeout.Milliseconds())
		}
	}
	if got := rec.find("handler hang timed out: still running at its 20.0 s deadline; sending SIGTERM (user event hang)",
		msgIDKey, MsgHandlerTimedOut, "HANDLER", "hang", "TIMEOUT", timeout.String()); len(got) != 2 {
		t.Errorf(`"handler timed out" records for hang = %d; want 2`, len(got))
	}
	if got := rec.runs("HANDLER", "tick", "EXIT_STATUS", "0"); len(got) != ticks {
		t.Errorf(`run records for tick with EXIT_STATUS 0 = %d; want %d`, len(got), ticks)
	}
	p.Close()
	for _, s := range p.Stats() {
		var runs, failures, timeouts uint64 = ticks, 0, 0
		if s.Name == "hang" {
			runs, failures, timeouts = 2, 2, 2
		}
		if s.Runs != runs || s.Failures != failures || s.Timeouts != timeouts || s.Drops != 0 || s.Queued != 0 || s.Running != 0 {
			t.Errorf("Stats() for %s = %+v; want %d runs, %d failures, %d timeouts, nothing dropped, queued or running",
				s.Name, s, runs, failures, timeouts)
		}
	}
}

// A handler ignoring SIGTERM gets SIGKILL after the kill grace.
func TestKillEscalatesToSIGKILL(t *testing.T) {
	t.Parallel()
	dir, out := t.TempDir(), t.TempDir()
	writeScript(t, dir, "stubborn", fmt.Sprintf(`
trap '' TERM
sleep 1000 &
echo $! > '%[1]s/child.tmp' && mv '%[1]s/child.tmp' '%[1]s/child'
echo $$ > '%[1]s/pid.tmp' && mv '%[1]s/pid.tmp' '%[1]s/pid'
wait
`, out))
	p, rec := startPool(t, Options{Dir: dir, Timeout: 500 * time.Millisecond, KillGrace: 300 * time.Millisecond})
	p.Submit(userEvent("x", "", 1))
	pid := waitPid(t, filepath.Join(out, "pid"))
	killGroup(t, pid)
	child := waitPid(t, filepath.Join(out, "child"))
	testutil.WaitFor(t, 10*time.Second, "stubborn and its child to be killed", func() bool { return pidGone(pid) && pidGone(child) })
	testutil.WaitFor(t, 5*time.Second, `run record`, func() bool { return len(rec.runs()) == 1 })
	r := rec.runs()[0]
	if got := r.attr("SIGNAL"); got != "SIGKILL" {
		t.Errorf("run record: SIGNAL = %s; want SIGKILL", got)
	}
	if got := rec.find("handler stubborn still running 300 ms after SIGTERM; sending SIGKILL (user event x)", "HANDLER", "stubborn"); len(got) != 1 {
		t.Errorf("SIGKILL escalation records = %d; want 1", len(got))
	}
}

// A child left in the background holding stdout does not hang the run: the
// run ends shortly after the script exits and the child is killed. A child
// that detaches its output, Serf's forking idiom, is left alone.
func TestBackgroundChild(t *testing.T) {
	t.Parallel()
	dir, out := t.TempDir(), t.TempDir()
	writeScript(t, dir, "holder", fmt.Sprintf(`
sleep 1000 &
echo $! > '%[1]s/holder.tmp' && mv '%[1]s/holder.tmp' '%[1]s/holder'
echo started
exit 0
`, out))
	writeScript(t, dir, "forker", fmt.Sprintf(`
sleep 1000 >/dev/null 2>&1 </dev/null &
echo $! > '%[1]s/forker.tmp' && mv '%[1]s/forker.tmp' '%[1]s/forker'
exit 0
`, out))
	p, rec := startPool(t, Options{Dir: dir, Timeout: time.Minute})
	start := time.Now()
	p.Submit(userEvent("x", "", 1))
	holder := waitPid(t, filepath.Join(out, "holder"))
	forker := waitPid(t, filepath.Join(out, "forker"))

	testutil.WaitFor(t, 20*time.Second, `the runs of both`, func() bool { return len(rec.runs("EXIT_STATUS", "0")) == 2 })
	if elapsed := time.Since(start); elapsed > 20*time.Second {
		t.Errorf("runs took %s; want a few seconds", elapsed)
	}
	testutil.WaitFor(t, 10*time.Second, "the holding child to be killed", func() bool { return pidGone(holder) })
	if got := rec.find("handler holder exited but left processes holding its output; killing its process group (user event x)", "HANDLER", "holder"); len(got) != 1 {
		t.Errorf("leftover warnings for holder = %d; want 1", len(got))
	}
	if got := rec.find("started", "HANDLER", "holder", "STREAM", "stdout"); len(got) != 1 {
		t.Errorf(`stdout records "started" = %d; want 1`, len(got))
	}
	if got := rec.with("PGID", "HANDLER", "forker"); len(got) != 0 {
		t.Errorf("leftover warnings for forker = %d; want 0", len(got))
	}
	if pidGone(forker) {
		t.Errorf("forker's detached child %d is gone; want it left running", forker)
	}
}

// The environment is exactly Serf's contract plus the documented extras;
// stdin is member lines or the newline-terminated payload.
func TestEnvAndStdinContract(t *testing.T) {
	for _, k := range []string{"NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM", "INVOCATION_ID"} {
		t.Setenv(k, "leak")
	}
	dir, out := t.TempDir(), t.TempDir()
	writeScript(t, dir, "dump", `
f="$OUT/$SERF_EVENT-${SERF_USER_LTIME:-${SERF_QUERY_LTIME:-0}}"
tr '\0' '\n' < /proc/$$/environ > "$f.env"
cat > "$f.stdin"
`)
	p, _ := startPool(t, Options{
		Dir:  dir,
		Path: "/usr/bin:/bin",
		Handlers: map[string]HandlerConfig{"dump": {Env: map[string]string{
			"OUT":        out,
			"FOO":        "bar",
			"SERF_EVENT": "spoofed",
		}}},
	})
	self := map[string]string{"role": "web", "dc-1.zone": "eu", "Mixed_Case": "x", "ünï": "u"}
	// QuerySource reaches queries only, even if set on another event.
	p.Submit(Event{Type: "user", UserEvent: "deploy", LTime: 7, Payload: []byte("v1.2"), SelfName: "node-a", SelfAddr: "10.0.0.7", SelfTags: self, QuerySource: "stray"})
	p.Submit(Event{Type: "query", QueryName: "uptime", LTime: 9, Payload: []byte("a\nb\n"), SelfName: "node-a", SelfAddr: "10.0.0.7", SelfTags: self, QuerySource: "node-b"})
	p.Submit(Event{Type: "user", UserEvent: "empty", LTime: 8, SelfName: "node-a", SelfAddr: "10.0.0.7", SelfTags: self})
	p.Submit(Event{Type: "member-join", SelfName: "node-a", SelfAddr: "10.0.0.7", SelfTags: self, Members: []Member{
		{Name: "n1", Addr: "10.0.0.1", Tags: map[string]string{"role": "web", "dc": "a"}},
		{Name: "we\tird\nname", Addr: "::1", Tags: map[string]string{"role": "r\to", "k": "v\nw"}},
		{Name: "bare", Addr: "10.0.0.3"},
	}})
	p.Close() // every queued run has finished

	base := map[string]string{
		"PATH": "/usr/bin:/bin", "HOME": "/", "LANG": "C.UTF-8",
		"OUT": out, "FOO": "bar", "SERF_HANDLER": "dump", "SERF_RUN_ATTEMPT": "1",
		"SERF_SELF_NAME": "node-a", "SERF_SELF_ROLE": "web", "SERF_SELF_ADDR": "10.0.0.7",
		"SERF_TAG_ROLE": "web", "SERF_TAG_DC_1_ZONE": "eu", "SERF_TAG_MIXED_CASE": "x", "SERF_TAG__N_": "u",
	}
	with := func(kv ...string) map[string]string {
		m := maps.Clone(base)
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	for _, tc := range []struct {
		file      string
		env       map[string]string
		stdin     string
		eventDesc string
	}{
		{"user-7", with("SERF_EVENT", "user", "SERF_USER_EVENT", "deploy", "SERF_USER_LTIME", "7"), "v1.2\n", `user "deploy" payload "v1.2"`},
		{"user-8", with("SERF_EVENT", "user", "SERF_USER_EVENT", "empty", "SERF_USER_LTIME", "8"), "", `user "empty" empty payload`},
		{"query-9", with("SERF_EVENT", "query", "SERF_QUERY_NAME", "uptime", "SERF_QUERY_LTIME", "9", "SERF_QUERY_SOURCE", "node-b"), "a\nb\n", `query "uptime" payload "a\nb\n"`},
		{"member-join-0", with("SERF_EVENT", "member-join"),
			"n1\t10.0.0.1\tweb\tdc=a,role=web\n" + `we\tird\nname` + "\t::1\t" + `r\to` + "\t" + `k=v\nw,role=r\to` + "\n" + "bare\t10.0.0.3\t\t\n",
			"member-join of 3"},
	} {
		env := parseEnv(readFile(t, filepath.Join(out, tc.file+".env")))
		if !maps.Equal(env, tc.env) {
			t.Errorf("env of run for %s = %v; want %v", tc.eventDesc, sortedEnv(env), sortedEnv(tc.env))
		}
		if got := readFile(t, filepath.Join(out, tc.file+".stdin")); got != tc.stdin {
			t.Errorf("stdin of run for %s = %q; want %q", tc.eventDesc, got, tc.stdin)
		}
	}
}

func parseEnv(s string) map[string]string {
	m := map[string]string{}
	for line := range strings.SplitSeq(strings.TrimSuffix(s, "\n"), "\n") {
		k, v, _ := strings.Cut(line, "=")
		m[k] = v
	}
	return m
}

func sortedEnv(m map[string]string) []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, k+"="+m[k])
	}
	return out
}

// Each output line is its own record; output past the limit is counted and
// reported, and the script is never blocked by it.
func TestOutputLinesAndCap(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeScript(t, dir, "talk", `
echo one
echo two >&2
printf 'three'
head -c 100000 /dev/zero | tr '\0' x >&2
exit 3
`)
	p, rec := startPool(t, Options{Dir: dir, OutputLimit: 1000})
	p.Submit(userEvent("x", "", 1))
	p.Close()
	for _, want := range []struct{ line, stream string }{{"one", "stdout"}, {"two", "stderr"}, {"three", "stdout"}} {
		if got := rec.find(want.line, "HANDLER", "talk", "STREAM", want.stream); len(got) != 1 {
			t.Errorf("records %q on %s = %d; want 1", want.line, want.stream, len(got))
		}
	}
	// stderr kept "two\n" (4 bytes) and 996 x's.
	if got := rec.find("handler talk: stderr truncated, 99004 bytes past the limit of 1000 (user event x)",
		"HANDLER", "talk", "STREAM", "stderr"); len(got) != 1 || got[0].attr("BYTES_DROPPED") != "99004" {
		t.Errorf("truncation records for stderr = %v; want one with BYTES_DROPPED 99004", got)
	}
	if got := rec.with("BYTES_DROPPED", "STREAM", "stdout"); len(got) != 0 {
		t.Errorf("truncation records for stdout = %d; want 0", len(got))
	}
	r := rec.runs("HANDLER", "talk")
	if len(r) != 1 || r[0].attr("EXIT_STATUS") != "3" || r[0].level.String() != "WARN" {
		t.Errorf("run records = %v; want one WARN with EXIT_STATUS 3", r)
	}
}

// A script that never reads its stdin does not hang on it.
func TestUnreadStdin(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeScript(t, dir, "deaf", "exit 0\n")
	p, rec := startPool(t, Options{Dir: dir})
	p.Submit(userEvent("big", strings.Repeat("p", 256<<10), 1))
	p.Close()
	if got := rec.runs("HANDLER", "deaf", "EXIT_STATUS", "0"); len(got) != 1 {
		t.Errorf("run records with EXIT_STATUS 0 = %d; want 1", len(got))
	}
}

// A handler that cannot start is a failed run with the reason.
func TestStartFailure(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "noshebang")
	if err := os.WriteFile(path, []byte{0x7f, 'E', 'L', 'F', 0, 0}, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o755); err != nil {
		t.Fatal(err)
	}
	p, rec := startPool(t, Options{Dir: dir})
	p.Submit(userEvent("x", "", 1))
	p.Close()
	r := rec.runs("HANDLER", "noshebang")
	if len(r) != 1 || r[0].attr("ERROR") == "<unset>" || r[0].attr("EXIT_STATUS") != "<unset>" {
		t.Errorf("run records = %v; want one with ERROR and no EXIT_STATUS", r)
	}
	if s := p.Stats(); len(s) != 1 || s[0].Failures != 1 || s[0].LastExitStatus != -1 {
		t.Errorf("Stats() = %+v; want one handler with 1 failure and LastExitStatus -1", s)
	}
}

func TestSignalName(t *testing.T) {
	for sig, want := range map[syscall.Signal]string{syscall.SIGTERM: "SIGTERM", syscall.SIGKILL: "SIGKILL", syscall.Signal(40): "SIG40"} {
		if got := signalName(sig); got != want {
			t.Errorf("signalName(%d) = %s; want %s", int(sig), got, want)
		}
	}
}

// TestQueryResponse checks that a query's response is the handler's stdout
// (stderr goes to the journal only), sent once per successful run, and that
// a failing run sends nothing.
func TestQueryResponse(t *testing.T) {
	dir := t.TempDir()
	writeScript(t, dir, "answer", "echo \"load $(cat)\"\necho oops >&2\n")
	writeScript(t, dir, "broken", "echo partial\nexit 3\n")
	p, rec := startPool(t, Options{Dir: dir})

	var mu sync.Mutex
	var got []string
	p.Submit(Event{Type: "query", QueryName: "load", LTime: 7, Payload: []byte("now"), SelfName: "n1",
		Respond: func(b []byte) error {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, string(b))
			return nil
		}})
	testutil.WaitFor(t, 10*time.Second, "both runs", func() bool {
		return len(rec.runs("SERF_QUERY_NAME", "load")) == 2
	})
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0] != "load now\n" {
		t.Errorf("Respond calls = %q; want one call with %q (stdout of the run that exited 0)", got, "load now\n")
	}
	if n := len(rec.find("handler answer's response to query load (9 bytes) sent", "HANDLER", "answer")); n != 1 {
		t.Errorf("'query response sent' records for answer = %d; want 1\n%s", n, rec.dump())
	}
}

// A query handler's stdout is its response up to the response limit, past
// the output limit that bounds what is logged: a longer stdout is logged
// only up to the output limit and sent whole, and one past the response
// limit is not sent, with a warning naming both.
func TestQueryResponseUpToResponseLimit(t *testing.T) {
	dir := t.TempDir()
	// 3000 lines of 100 bytes: 300,000 bytes of stdout.
	writeScript(t, dir, "report", "i=0\nwhile [ $i -lt 3000 ]; do printf '%099d\\n' $i; i=$((i+1)); done\n")
	var want strings.Builder
	for i := range 3000 {
		fmt.Fprintf(&want, "%099d\n", i)
	}
	for _, c := range []struct {
		limit int
		sent  bool
	}{{400_000, true}, {200_000, false}} {
		p, rec := startPool(t, Options{Dir: dir, OutputLimit: 1000, ResponseLimit: c.limit})
		got := make(chan []byte, 1)
		p.Submit(Event{Type: "query", QueryName: "report", LTime: 1, Respond: func(b []byte) error {
			got <- b
			return nil
		}})
		testutil.WaitFor(t, 30*time.Second, "the run", func() bool { return len(rec.runs("SERF_QUERY_NAME", "report")) == 1 })
		p.Close()
		if c.sent {
			if b := testutil.Recv(t, got, 10*time.Second, "the response"); string(b) != want.String() {
				t.Errorf("response limit %d: response of %d bytes; want the 300,000 bytes of stdout", c.limit, len(b))
			}
			if n := len(rec.find("handler report: stdout logged up to the output limit of 1000 bytes, 299000 more not logged (query report)")); n != 1 {
				t.Errorf("response limit %d: not-logged records = %d; want 1\n%s", c.limit, n, rec.dump())
			}
			lines := rec.where(func(r record) bool { return r.attr("BYTES_NOT_LOGGED") == "<unset>" }, "STREAM", "stdout")
			if len(lines) != 10 {
				t.Errorf("response limit %d: stdout lines logged = %d; want the 10 within the output limit", c.limit, len(lines))
			}
			continue
		}
		select {
		case b := <-got:
			t.Errorf("response limit %d: a response of %d bytes was sent; want none", c.limit, len(b))
		default:
		}
		if r := rec.find("handler report's response to query report (200000 bytes) not sent: its stdout went 100000 bytes past the response limit of 200000 bytes"); len(r) != 1 || r[0].attr("MESSAGE_ID") != MsgQueryResponseNotSent {
			t.Errorf("response limit %d: not-sent records = %v; want one with MsgQueryResponseNotSent\n%s", c.limit, r, rec.dump())
		}
	}
}

// busyKey is the attribute of the debug record of a start retried because
// the handler file was open for writing, and of that record only.
const busyKey = "BACKOFF_MS"

// busyScript creates a handler that appends its event's LTime to out and
// returns the file still open for writing, as a package manager or `cp`
// has it while the event comes.
func busyScript(t *testing.T, dir, name, out string) *os.File {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if _, err := fmt.Fprintf(f, "#!/bin/sh\necho \"$SERF_USER_LTIME\" >> '%s'\n", out); err != nil {
		t.Fatal(err)
	}
	if err := f.Chmod(0o755); err != nil { // whatever the umask
		t.Fatal(err)
	}
	return f
}

// A handler file still open for writing when its event comes cannot be
// executed (ETXTBSY); the start is retried, and once the writer lets go the
// run goes ahead and succeeds.
func TestStartRetriedWhileFileBusy(t *testing.T) {
	t.Parallel()
	dir, out := t.TempDir(), t.TempDir()
	ran := filepath.Join(out, "ran")
	f := busyScript(t, dir, "busy", ran)
	path := f.Name()
	p, rec := startPool(t, Options{Dir: dir})

	// The writer closes the file when it sees the pool's first failed
	// attempt (by time only if that never comes, and the test then fails).
	released := make(chan struct{})
	t.Cleanup(func() { testutil.Recv(t, released, 20*time.Second, "the writer to close "+path) })
	go func() {
		defer close(released)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); <-tick.C {
			if len(rec.with(busyKey, "HANDLER", "busy")) > 0 {
				break
			}
		}
		f.Close()
	}()

	p.Submit(userEvent("e", "", 1))
	testutil.WaitFor(t, 10*time.Second, "the handler's output in "+ran, func() bool { return fileHas(ran, "1\n") })
	testutil.Recv(t, released, 20*time.Second, "the writer to close "+path)
	p.Close()

	retries := rec.with(busyKey, "HANDLER", "busy", "FILE", path)
	if len(retries) == 0 || retries[0].level != slog.LevelDebug || retries[0].attr("ATTEMPT") != "1" ||
		retries[0].msg != "handler busy: file busy being written; retrying the start in 10 ms (user event e)" {
		t.Errorf("retry records = %v; want at least one, at debug, the first with ATTEMPT 1 and its message", retries)
	}
	if r := rec.runs("HANDLER", "busy"); len(r) != 1 || r[0].attr("EXIT_STATUS") != "0" || r[0].attr("ERROR") != "<unset>" {
		t.Errorf("run records = %v; want one with EXIT_STATUS 0 and no ERROR", r)
	}
	if s := p.Stats(); len(s) != 1 || s[0].Runs != 1 || s[0].Failures != 0 {
		t.Errorf("Stats() = %+v; want busy with 1 run and no failure", s)
	}
}

// A handler file that stays open for writing fails its run after
// startRetries retries, with the reason, and the worker moves on.
func TestStartGivesUpWhileFileBusy(t *testing.T) {
	t.Parallel()
	dir, out := t.TempDir(), t.TempDir()
	ran := filepath.Join(out, "ran")
	f := busyScript(t, dir, "busy", ran)
	p, rec := startPool(t, Options{Dir: dir})
	start := time.Now()
	p.Submit(userEvent("e", "", 1))
	p.Close() // waits for the run, retries included
	took := time.Since(start)
	f.Close()

	var attempts []string
	for _, r := range rec.with(busyKey, "HANDLER", "busy") {
		attempts = append(attempts, r.attr("ATTEMPT"))
	}
	if want := []string{"1", "2", "3", "4", "5"}; !slices.Equal(attempts, want) {
		t.Errorf("ATTEMPT of the retry records = %v; want %v", attempts, want)
	}
	r := rec.runs("HANDLER", "busy")
	if len(r) != 1 || !strings.Contains(r[0].attr("ERROR"), "text file busy") || r[0].attr("EXIT_STATUS") != "<unset>" {
		t.Errorf("run records = %v; want one with ERROR saying text file busy and no EXIT_STATUS", r)
	}
	if s := p.Stats(); len(s) != 1 || s[0].Failures != 1 {
		t.Errorf("Stats() = %+v; want busy with 1 failure", s)
	}
	if _, err := os.Stat(ran); err == nil {
		t.Errorf("%s exists; want the busy handler never to have run", ran)
	}
	// 10+20+40+80+160ms of backoff; generous above for a loaded machine.
	if took < 310*time.Millisecond {
		t.Errorf("the run failed %s after the event; want after at least 310ms of retries", took)
	}
}

// A script printing many lines gets its first maxLoggedLines logged per
// stream; the rest are counted in one warning, and the run still succeeds.
func TestOutputLineCap(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeScript(t, dir, "chatty", `
i=0
while [ $i -lt 1000 ]; do echo "line $i"; i=$((i + 1)); done
echo only-error >&2
`)
	p, rec := startPool(t, Options{Dir: dir})
	p.Submit(userEvent("x", "", 1))
	p.Close()
	if got := rec.find(fmt.Sprintf("line %d", maxLoggedLines-1), "STREAM", "stdout"); len(got) != 1 {
		t.Errorf("records of the last line within the cap = %d; want 1", len(got))
	}
	if got := rec.find(fmt.Sprintf("line %d", maxLoggedLines), "STREAM", "stdout"); len(got) != 0 {
		t.Errorf("records of the first line past the cap = %d; want 0", len(got))
	}
	w := rec.find(fmt.Sprintf("handler chatty: %d more lines of stdout not logged, past %d (user event x)", 1000-maxLoggedLines, maxLoggedLines),
		"HANDLER", "chatty", "STREAM", "stdout")
	if len(w) != 1 || w[0].attr("LINES_NOT_LOGGED") != strconv.Itoa(1000-maxLoggedLines) {
		t.Errorf("line cap records = %v; want one with LINES_NOT_LOGGED %d\n%s", w, 1000-maxLoggedLines, rec.dump())
	}
	if got := rec.find("only-error", "STREAM", "stderr"); len(got) != 1 {
		t.Errorf("stderr line records = %d; want 1 (each stream has its own cap)", len(got))
	}
	if got := rec.with("LINES_NOT_LOGGED", "STREAM", "stderr"); len(got) != 0 {
		t.Errorf("line cap records for stderr = %d; want 0", len(got))
	}
	if r := rec.runs("HANDLER", "chatty", "EXIT_STATUS", "0"); len(r) != 1 {
		t.Errorf("run records with EXIT_STATUS 0 = %d; want 1", len(r))
	}
}

// Each run's record says, in its message alone, which handler ran for
// which event and how the run ended; Stats keeps the last outcome.
func TestRunMessages(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeScript(t, dir, "ok", "exit 0\n")
	writeScript(t, dir, "three", "exit 3\n")
	writeScript(t, dir, "usr1", "kill -USR1 $$\nsleep 5\n")
	writeScript(t, dir, "slow", "exec sleep 30\n")
	broken := filepath.Join(dir, "broken")
	if err := os.WriteFile(broken, []byte{0x7f, 'E', 'L', 'F', 0, 0}, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(broken, 0o755); err != nil {
		t.Fatal(err)
	}
	p, rec := startPool(t, Options{Dir: dir, Handlers: map[string]HandlerConfig{
		"ok":     {Events: []string{"user:deploy"}},
		"three":  {Events: []string{"member-join"}},
		"usr1":   {Events: []string{"query:load"}},
		"slow":   {Events: []string{"user:slow"}, Timeout: 300 * time.Millisecond},
		"broken": {Events: []string{"member-leave"}},
	}})
	members := func(names ...string) []Member {
		var out []Member
		for _, n := range names {
			out = append(out, Member{Name: n, Addr: "10.0.0.1"})
		}
		return out
	}
	p.Submit(userEvent("deploy", "v1", 1))
	p.Submit(Event{Type: "member-join", Members: members("a", "b", "c", "d", "e")})
	p.Submit(Event{Type: "query", QueryName: "load", LTime: 2})
	p.Submit(userEvent("slow", "", 3))
	p.Submit(Event{Type: "member-leave", Members: members("m1")})
	p.Close()

	for _, want := range []struct {
		handler, message string
		level            slog.Level
		outcome          Outcome
		signal, event    string
	}{
		{"ok", `handler ok exited 0 after \d+ ms \(user event deploy\)`, slog.LevelInfo, OutcomeOK, "", "user event deploy"},
		{"three", `handler three exited 3 after \d+ ms \(member-join a, b, c and 2 more\)`, slog.LevelWarn, OutcomeExitNonZero, "",
			"member-join a, b, c and 2 more"},
		{"usr1", `handler usr1 killed by SIGUSR1 after \d+ ms \(query load\)`, slog.LevelWarn, OutcomeKilled, "SIGUSR1", "query load"},
		{"slow", `handler slow timed out after \d+ ms; stopped by SIGTERM \(user event slow\)`, slog.LevelWarn, OutcomeTimeout, "SIGTERM",
			"user event slow"},
		{"broken", `handler broken could not start: fork/exec ` + regexp.QuoteMeta(broken) + `: exec format error \(member-leave m1\)`,
			slog.LevelWarn, OutcomeStartFailed, "", "member-leave m1"},
	} {
		r := rec.runs("HANDLER", want.handler)
		if len(r) != 1 || !regexp.MustCompile("^"+want.message+"$").MatchString(r[0].msg) || r[0].level != want.level {
			t.Errorf("run records of %s = %v; want one at %s with a message matching %s", want.handler, r, want.level, want.message)
		}
		if want.level == slog.LevelWarn && (len(r) != 1 || r[0].attr(msgIDKey) != MsgHandlerFailed) {
			t.Errorf("run records of %s = %v; want MESSAGE_ID %s", want.handler, r, MsgHandlerFailed)
		}
		i := slices.IndexFunc(p.Stats(), func(s HandlerStats) bool { return s.Name == want.handler })
		if i < 0 {
			t.Errorf("Stats() = %+v; want an entry for %s", p.Stats(), want.handler)
			continue
		}
		if s := p.Stats()[i]; s.LastOutcome != want.outcome || s.LastSignal != want.signal || s.LastEvent != want.event ||
			s.LastFinished.IsZero() || s.State != StateActive {
			t.Errorf("Stats() for %s = %+v; want active, last outcome %s, signal %q, event %q", want.handler, s, want.outcome, want.signal, want.event)
		}
	}
}

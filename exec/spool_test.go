package exec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/serfd/serfd/internal/testutil"
)

// spoolScript is a handler that logs "start LTIME" and "end LTIME" around
// a pause, so that a test tells a run that finished from one that was
// stopped half-way.
func spoolScript(t *testing.T, dir, name, log, pause string) {
	t.Helper()
	writeScript(t, dir, name, fmt.Sprintf(`
echo "start $SERF_USER_LTIME" >> '%[1]s'
sleep %[2]s
echo "end $SERF_USER_LTIME" >> '%[1]s'
`, log, pause))
}

// runLog counts the start and end lines of a spoolScript log by LTime, and
// lists the ends in order.
func runLog(t *testing.T, path string) (starts, ends map[uint64]int, order []uint64) {
	t.Helper()
	starts, ends = map[uint64]int{}, map[uint64]int{}
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		what, n, _ := strings.Cut(strings.TrimSpace(line), " ")
		lt, err := strconv.ParseUint(n, 10, 64)
		if err != nil {
			t.Fatalf("run log line %q: %v", line, err)
		}
		switch what {
		case "start":
			starts[lt]++
		case "end":
			ends[lt]++
			order = append(order, lt)
		default:
			t.Fatalf("run log line %q", line)
		}
	}
	return starts, ends, order
}

// spoolRecords decodes the spool at path, failing on a damaged line.
func spoolRecords(t *testing.T, path string) []spoolRecord {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []spoolRecord
	for line := range bytes.Lines(b) {
		rec, err := decodeRecord(line)
		if err != nil {
			t.Fatalf("spool line %q: %v", line, err)
		}
		out = append(out, *rec)
	}
	return out
}

// Runs of user events not started when Close's drain ends stay in the
// spool, and so does a run stopped half-way; a new pool on the same spool
// runs exactly those, in order, before anything else: every event's run
// ends once across the two pools. Member events and queries are not
// spooled.
func TestSpoolResumesAfterClose(t *testing.T) {
	t.Parallel()
	dir, out := t.TempDir(), t.TempDir()
	log, spool := filepath.Join(out, "log"), filepath.Join(out, "runs")
	spoolScript(t, dir, "h", log, "0.05")
	opts := Options{Dir: dir, Workers: 1, Spool: spool, DrainTimeout: 300 * time.Millisecond, KillGrace: 200 * time.Millisecond,
		Handlers: map[string]HandlerConfig{"h": {Events: []string{"user"}}}}

	const n = 50
	p1, rec1 := startPool(t, opts)
	p1.Submit(Event{Type: "member-join", Members: []Member{{Name: "m", Addr: "10.0.0.1"}}})
	p1.Submit(Event{Type: "query", QueryName: "q", LTime: 1000})
	for i := range n {
		p1.Submit(userEvent("e", "payload", uint64(1+i)))
	}
	p1.Close()
	_, ends1, _ := runLog(t, log)
	left := rec1.find(fmt.Sprintf("%d handler runs left in the spool; they run at the next start", n-len(ends1)))
	if len(ends1) == 0 || len(ends1) >= n || len(left) != 1 {
		t.Fatalf("first pool: %d runs ended, %d left records; want some but not all of %d runs to end, and one left record", len(ends1), len(left), n)
	}
	if got := rec1.with("DROPPED"); len(got) != 0 {
		t.Errorf("drop records at shutdown with a spool = %d; want 0", len(got))
	}
	interrupted := len(rec1.runs("INTERRUPTED", "true"))
	if got, want := left[0].attr("RUNS"), strconv.Itoa(n-len(ends1)); got != want {
		t.Errorf("runs left in the spool = %s; want %s (%d interrupted)", got, want, interrupted)
	}
	for _, r := range spoolRecords(t, spool) {
		if r.Event != nil && r.Event.Type != "user" {
			t.Errorf("spool record %+v; want only user events spooled", r)
		}
	}

	p2, rec2 := startPool(t, opts)
	if got := rec2.find("", msgIDKey, MsgHandlerRunsResumed); len(got) != 1 ||
		got[0].attr("RUNS") != strconv.Itoa(n-len(ends1)) {
		t.Errorf("resume records = %v; want one with RUNS %d", got, n-len(ends1))
	}
	p2.Submit(userEvent("e", "", n+1)) // after every resumed run
	testutil.WaitFor(t, 20*time.Second, "every run to end", func() bool { _, ends, _ := runLog(t, log); return len(ends) == n+1 })
	p2.Close()

	starts, ends, order := runLog(t, log)
	for lt := uint64(1); lt <= n+1; lt++ {
		if ends[lt] != 1 {
			t.Errorf("runs of event %d that ended = %d; want 1", lt, ends[lt])
		}
		if starts[lt] != 1 && (starts[lt] != 2 || interrupted == 0) {
			t.Errorf("runs of event %d that started = %d; want 1 (2 only for a run stopped at shutdown)", lt, starts[lt])
		}
	}
	if !slices.IsSorted(order) {
		t.Errorf("events ended in order %v; want ascending", order)
	}

	// Everything ran: a third start finds nothing to resume, and the
	// spool is rewritten with what identifies the events only.
	p3, rec3 := startPool(t, opts)
	p3.Close()
	if got := rec3.find("", msgIDKey, MsgHandlerRunsResumed); len(got) != 0 {
		t.Errorf("resume records on the third start = %d; want 0", len(got))
	}
	if recs := spoolRecords(t, spool); len(recs) != n+1 || slices.ContainsFunc(recs, func(r spoolRecord) bool { return r.Seen == nil }) {
		t.Errorf("spool after every run ended = %+v; want %d seen records and nothing else", recs, n+1)
	}
	if _, err := os.Stat(spool + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("temporary spool file left behind: %v", err)
	}
}

// writeSpool writes lines (each given with its newline, or without for a
// torn last one) as a spool file.
func writeSpool(t *testing.T, path string, lines ...string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(strings.Join(lines, "")), 0o600); err != nil {
		t.Fatal(err)
	}
}

func runLine(t *testing.T, seq uint64, ltime uint64, handlers ...string) string {
	t.Helper()
	b, err := json.Marshal(spoolRecord{Seq: seq, Handlers: handlers,
		Event: &spoolEvent{Type: "user", UserEvent: "deploy", LTime: ltime, Payload: []byte("v1"), SelfName: "n1",
			SelfTags: map[string]string{"role": "web"}, SelfAddr: "10.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	return string(b) + "\n"
}

// A damaged line is logged and skipped, a torn last line is skipped, a
// done record marks a run finished, and a run rebuilt from the spool gets
// the event's environment and payload as they were.
func TestSpoolDamagedAndTorn(t *testing.T) {
	t.Parallel()
	dir, out := t.TempDir(), t.TempDir()
	spool := filepath.Join(out, "runs")
	writeScript(t, dir, "h", fmt.Sprintf(`{
echo "$SERF_USER_EVENT $SERF_USER_LTIME $SERF_SELF_NAME $SERF_SELF_ROLE $SERF_TAG_ROLE $SERF_SELF_ADDR $(cat)"
} >> '%s/log'
`, out))
	writeSpool(t, spool,
		runLine(t, 1, 7, "h"),
		"this is not json\n",
		runLine(t, 2, 8, "h"),
		`{"seq":1,"done":"h"}`+"\n",
		`{"seq":3,"handlers":["h"],"event":{"type":"member-join"}}`+"\n",
		"\x00\x00\x00\n",
		runLine(t, 4, 9, "h"),
		`{"seq":5,"handlers":["h"],"ev`)
	p, rec := startPool(t, Options{Dir: dir, Spool: spool})
	testutil.WaitFor(t, 10*time.Second, "two runs", func() bool { return len(rec.runs()) == 2 })
	p.Close()
	if got, want := readFile(t, filepath.Join(out, "log")), "deploy 8 n1 web web 10.0.0.1 v1\ndeploy 9 n1 web web 10.0.0.1 v1\n"; got != want {
		t.Errorf("runs = %q; want %q", got, want)
	}
	if got := rec.find("handler spool: skipped damaged records", msgIDKey, MsgHandlerSpoolProblem); len(got) != 1 ||
		got[0].attr("DAMAGED") != "3" || !strings.HasPrefix(got[0].attr("FIRST"), spool+":2: ") {
		t.Errorf("damage records = %v; want one with DAMAGED 3, FIRST at line 2", got)
	}
	if got := rec.find("handler spool: skipped an incomplete last record (written as the daemon stopped)"); len(got) != 1 {
		t.Errorf("torn record notes = %d; want 1", len(got))
	}
	if got := rec.find("", msgIDKey, MsgHandlerRunsResumed); len(got) != 1 || got[0].attr("RUNS") != "2" {
		t.Errorf("resume records = %v; want one with RUNS 2", got)
	}
	// The start rewrote the file with the pending records only; the
	// runs then appended their done records.
	for _, r := range spoolRecords(t, spool) {
		if r.Done == "" && r.Seen == nil && r.Seq != 2 && r.Seq != 4 {
			t.Errorf("spool record %+v after the runs; want only seen and done records and the runs of 2 and 4", r)
		}
	}
	if got := pendingRuns(t, spool); len(got) != 0 {
		t.Errorf("runs pending in the spool after they ran = %v; want none", got)
	}
}

// A spooled run that had started and not finished when the daemon died
// (start record, no done record) runs again with SERF_RUN_ATTEMPT one
// higher, logged with MsgHandlerRunRepeated and counted; one that never
// started runs as a first attempt. The count survives the rewrite at New:
// a run cut short twice is on its third attempt.
func TestSpoolRunCutShortRunsAgainAsRepeat(t *testing.T) {
	t.Parallel()
	dir, out := t.TempDir(), t.TempDir()
	spool := filepath.Join(out, "runs")
	for _, h := range []string{"a", "b"} {
		writeScript(t, dir, h, fmt.Sprintf("echo \"$SERF_HANDLER $SERF_USER_LTIME $SERF_RUN_ATTEMPT\" >> '%s/log'\n", out))
	}
	var twice spoolRecord
	if err := json.Unmarshal([]byte(runLine(t, 2, 8, "a")), &twice); err != nil {
		t.Fatal(err)
	}
	twice.Attempts = map[string]int{"a": 1}
	twiceLine, err := json.Marshal(twice)
	if err != nil {
		t.Fatal(err)
	}
	writeSpool(t, spool,
		runLine(t, 1, 7, "a", "b"),
		`{"seq":1,"start":"a"}`+"\n",
		string(twiceLine)+"\n",
		`{"seq":2,"start":"a"}`+"\n")
	p, rec := startPool(t, Options{Dir: dir, Spool: spool, Workers: 1})
	testutil.WaitFor(t, 10*time.Second, "three runs", func() bool { return len(rec.runs()) == 3 })
	stats := p.Stats()
	p.Close()

	lines := strings.Split(strings.TrimSpace(readFile(t, filepath.Join(out, "log"))), "\n")
	slices.Sort(lines)
	if want := []string{"a 7 2", "a 8 3", "b 7 1"}; !slices.Equal(lines, want) {
		t.Errorf("runs (handler, ltime, attempt) = %q; want %q", lines, want)
	}
	if got := rec.find("resuming 3 handler runs from before the restart (2 cut short)", msgIDKey, MsgHandlerRunsResumed); len(got) != 1 ||
		got[0].attr("RUNS") != "3" || got[0].attr("CUT_SHORT") != "2" {
		t.Errorf("resume records = %v; want one with RUNS 3, CUT_SHORT 2", got)
	}
	repeats := rec.find("", msgIDKey, MsgHandlerRunRepeated, "HANDLER", "a")
	if len(repeats) != 2 {
		t.Errorf("repeat records = %v; want 2, for a's runs", repeats)
	}
	if i := slices.IndexFunc(stats, func(s HandlerStats) bool { return s.Name == "a" }); i < 0 || stats[i].Repeats != 2 {
		t.Errorf("handler stats = %+v; want a with Repeats 2", stats)
	}
	if got := pendingRuns(t, spool); len(got) != 0 {
		t.Errorf("runs pending in the spool after they ran = %v; want none", got)
	}
}

// A run whose handler is gone at the start is reported and marked done; the
// other handlers' runs of the same event go ahead.
func TestSpoolHandlerRemoved(t *testing.T) {
	t.Parallel()
	dir, out := t.TempDir(), t.TempDir()
	spool := filepath.Join(out, "runs")
	writeScript(t, dir, "a", fmt.Sprintf("echo \"$SERF_HANDLER $SERF_USER_LTIME\" >> '%s/log'\n", out))
	writeSpool(t, spool, runLine(t, 1, 7, "a", "gone"), runLine(t, 2, 8, "gone"))
	p, rec := startPool(t, Options{Dir: dir, Spool: spool})
	testutil.WaitFor(t, 10*time.Second, "a's run", func() bool { return len(rec.runs()) == 1 })
	p.Close()
	if got, want := readFile(t, filepath.Join(out, "log")), "a 7\n"; got != want {
		t.Errorf("runs = %q; want %q", got, want)
	}
	if got := rec.find("handler gone no longer exists: 2 spooled runs not started, the last for user event deploy", "HANDLER", "gone"); len(got) != 1 ||
		got[0].attr("RUNS") != "2" || got[0].attr("SERF_LTIME") != "8" {
		t.Errorf("records of gone's runs = %v; want one with RUNS 2, the last at LTime 8", got)
	}
	p2, rec2 := startPool(t, Options{Dir: dir, Spool: spool})
	p2.Close()
	if got := rec2.find("", msgIDKey, MsgHandlerRunsResumed); len(got) != 0 {
		t.Errorf("resume records after gone's runs were reported = %v; want none", got)
	}
}

// With a spool a full queue drops no user event: the runs past it wait in
// the file, memory holds at most the queue, and they run in order as it
// drains. A member event is not spooled: it is dropped when the queue is
// full, as without a spool.
func TestSpoolOverflowWaitsInFile(t *testing.T) {
	t.Parallel()
	dir, out := t.TempDir(), t.TempDir()
	release := filepath.Join(out, "release")
	writeScript(t, dir, "h", fmt.Sprintf(`
while [ ! -e '%[2]s' ]; do sleep 0.02; done
echo "end $SERF_USER_LTIME" >> '%[1]s/log'
`, out, release))
	p, rec := startPool(t, Options{Dir: dir, Workers: 1, Queue: 4, Spool: filepath.Join(out, "runs")})
	t.Cleanup(func() { os.WriteFile(release, nil, 0o644) })
	const n = 30
	p.Submit(userEvent("e", "", 1))
	testutil.WaitFor(t, 10*time.Second, "the first run to start", func() bool { return p.Summary().Running == 1 })
	for i := range n - 1 {
		p.Submit(userEvent("e", "", uint64(2+i)))
	}
	p.Submit(Event{Type: "member-join", Members: []Member{{Name: "m", Addr: "10.0.0.1"}}})
	if s := p.Summary(); s.Queued != 4 || s.Spooled != n-5 {
		t.Errorf("Summary() = %+v; want 4 queued and %d spooled", s, n-5)
	}
	if st := p.Stats(); st[0].Drops != 1 {
		t.Errorf("Stats() = %+v; want 1 drop (the member event)", st)
	}
	if got := rec.find("handler queue full; runs of new user events wait in the spool until it drains"); len(got) != 1 {
		t.Errorf("spill records = %d; want 1", len(got))
	}
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 20*time.Second, "every run", func() bool { return len(rec.runs()) == n })
	p.Close()
	var want strings.Builder
	for i := range n {
		fmt.Fprintf(&want, "end %d\n", 1+i)
	}
	if got := readFile(t, filepath.Join(out, "log")); got != want.String() {
		t.Errorf("runs = %q; want each user event once, in order", got)
	}
}

// The spool is rewritten while the pool runs once finished runs make up
// most of it, so it stays small however many events go through.
func TestSpoolCompactsAtRunTime(t *testing.T) {
	t.Parallel()
	dir, out := t.TempDir(), t.TempDir()
	spool := filepath.Join(out, "runs")
	writeScript(t, dir, "h", "exit 0\n")
	p, rec := startPool(t, Options{Dir: dir, Workers: 2, Spool: spool})
	payload := strings.Repeat("x", 2000)
	const n = 120 // about 330 KiB of records
	for i := range n {
		p.Submit(userEvent("e", payload, uint64(1+i)))
	}
	testutil.WaitFor(t, 30*time.Second, "every run", func() bool { return len(rec.runs()) == n })
	p.Close()
	fi, err := os.Stat(spool)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > 2*spoolCompactMin {
		t.Errorf("spool size after %d runs = %d; want at most %d", n, fi.Size(), 2*spoolCompactMin)
	}
	if got := pendingRuns(t, spool); len(got) != 0 {
		t.Errorf("runs pending in the spool after every run ended = %v; want none", got)
	}

	// The first events' run records were rewritten away; they are still
	// known, and not run again when gossip delivers them after a restart.
	p2, rec2 := startPool(t, Options{Dir: dir, Workers: 2, Spool: spool})
	p2.Submit(userEvent("e", payload, 1))
	p2.Close()
	if got := len(rec2.runs()); got != 0 {
		t.Errorf("runs of event 1 delivered again after a restart = %d; want 0", got)
	}
}

// A user event delivered again after a restart (same name, LTime and
// payload: the caller may not have recorded its delivery before a crash)
// does not run again, whether its run finished or waits in the spool; an
// event that differs in any of the three runs.
func TestSpoolDeduplicatesRedelivery(t *testing.T) {
	t.Parallel()
	dir, out := t.TempDir(), t.TempDir()
	log, spool := filepath.Join(out, "log"), filepath.Join(out, "runs")
	writeScript(t, dir, "h", fmt.Sprintf("echo \"$SERF_USER_EVENT $SERF_USER_LTIME $(cat)\" >> '%s'\n", log))
	// Event 2 still pending from before the restart.
	writeSpool(t, spool, runLine(t, 1, 1, "h"), `{"seq":1,"done":"h"}`+"\n", runLine(t, 2, 2, "h"))
	p, rec := startPool(t, Options{Dir: dir, Workers: 1, Spool: spool})
	for _, ev := range []Event{
		userEvent("deploy", "v1", 1), // ran before the restart
		userEvent("deploy", "v1", 2), // waits in the spool
		userEvent("deploy", "v2", 1),
		userEvent("other", "v1", 1),
		userEvent("deploy", "v1", 3),
		userEvent("deploy", "v1", 3), // twice in a row
	} {
		p.Submit(ev)
	}
	p.Close()
	if got, want := readFile(t, log), "deploy 2 v1\ndeploy 1 v2\nother 1 v1\ndeploy 3 v1\n"; got != want {
		t.Errorf("runs = %q; want %q", got, want)
	}
	if got := rec.find("user event deploy seen before (delivered again after a restart); not run again"); len(got) != 3 {
		t.Errorf("records of events not run again = %d; want 3", len(got))
	}
}

// pendingRuns lists the runs of the spool at path without a done record.
func pendingRuns(t *testing.T, path string) []runKey {
	t.Helper()
	recs := spoolRecords(t, path)
	done := map[runKey]bool{}
	for _, r := range recs {
		if r.Done != "" {
			done[runKey{r.Seq, r.Done}] = true
		}
	}
	var out []runKey
	for _, r := range recs {
		for _, h := range r.Handlers {
			if !done[runKey{r.Seq, h}] {
				out = append(out, runKey{r.Seq, h})
			}
		}
	}
	return out
}

// A spool that cannot be opened is an error of New, naming the file.
func TestSpoolUnusable(t *testing.T) {
	t.Parallel()
	spool := filepath.Join(t.TempDir(), "missing", "runs")
	p, err := New(Options{Dir: t.TempDir(), Spool: spool, Logger: slog.New(slog.DiscardHandler)})
	if err == nil {
		p.Close()
	}
	if err == nil || !strings.Contains(err.Error(), spool) {
		t.Errorf("New(spool in a missing directory) = %v; want an error naming %s", err, spool)
	}
}

// An event name that is not valid UTF-8 keeps its key through the spool's
// JSON, so that its delivery after a restart is still recognised.
func TestSpoolKeyInvalidUTF8(t *testing.T) {
	ev := &spoolEvent{Type: "user", UserEvent: "a\xff\xfeb\xc3", LTime: 3, Payload: []byte{0, 1}}
	b, err := json.Marshal(&spoolRecord{Seq: 1, Handlers: []string{"h"}, Event: ev})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := decodeRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := keyOf(rec.Event), keyOf(ev); got != want {
		t.Errorf("keyOf(%q) after JSON = %+v; want %+v", ev.UserEvent, got, want)
	}
}

// Runs from before a restart wait while the handlers directory is missing
// (rather than count as runs of handlers that no longer exist), and run
// once it appears.
func TestSpoolWaitsForHandlersDir(t *testing.T) {
	t.Parallel()
	root, out := t.TempDir(), t.TempDir()
	dir, spool := filepath.Join(root, "handlers.d"), filepath.Join(out, "runs")
	writeSpool(t, spool, runLine(t, 1, 7, "h"))
	p, rec := startPool(t, Options{Dir: dir, Spool: spool})
	if got := rec.find("handler runs from before the restart wait until the handlers directory can be read"); len(got) != 1 {
		t.Errorf("records of runs held back = %d; want 1", len(got))
	}
	if err := os.Mkdir(filepath.Join(root, "new"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeScript(t, filepath.Join(root, "new"), "h", fmt.Sprintf("echo \"$SERF_USER_LTIME\" >> '%s/log'\n", out))
	if err := os.Rename(filepath.Join(root, "new"), dir); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "the held-back run", func() bool { return fileHas(filepath.Join(out, "log"), "7\n") })
	p.Close()
	if got := rec.with("RUNS", "HANDLER", "h"); len(got) != 0 {
		t.Errorf("records of missing handlers = %d; want 0", len(got))
	}
}

// Many events through a small queue, across two restarts: most runs wait
// in the spool, the spool is rewritten while some do, and still each
// handler runs each event once, in order.
func TestSpoolSpillCompactRestart(t *testing.T) {
	t.Parallel()
	dir, out := t.TempDir(), t.TempDir()
	log, spool := filepath.Join(out, "log"), filepath.Join(out, "runs")
	for _, name := range []string{"a", "b"} {
		writeScript(t, dir, name, fmt.Sprintf("echo \"$SERF_HANDLER $SERF_USER_LTIME\" >> '%s'\n", log))
	}
	opts := Options{Dir: dir, Workers: 2, Queue: 4, Spool: spool, DrainTimeout: 2 * time.Second}
	payload := strings.Repeat("p", 2000) // ~2.7 KiB a run record: rewrites happen
	const n = 150
	interrupted := 0
	for i, phase := range [][2]int{{1, 60}, {61, 120}, {121, n}} {
		p, rec := startPool(t, opts)
		for lt := phase[0]; lt <= phase[1]; lt++ {
			p.Submit(userEvent("e", payload, uint64(lt)))
		}
		if i == 2 {
			testutil.WaitFor(t, 60*time.Second, "every run", func() bool { return strings.Count(readFile(t, log), "\n") >= 2*n })
		}
		p.Close()
		interrupted += len(rec.runs("INTERRUPTED", "true"))
	}
	seen := map[string]map[uint64]int{"a": {}, "b": {}}
	last := map[string]uint64{}
	for line := range strings.Lines(readFile(t, log)) {
		h, n, _ := strings.Cut(strings.TrimSpace(line), " ")
		lt, err := strconv.ParseUint(n, 10, 64)
		if err != nil || seen[h] == nil {
			t.Fatalf("log line %q", line)
		}
		if lt < last[h] {
			t.Errorf("handler %s ran event %d after %d; want event order", h, lt, last[h])
		}
		last[h] = lt
		seen[h][lt]++
	}
	for h, runs := range seen {
		for lt := uint64(1); lt <= n; lt++ {
			if runs[lt] != 1 && (runs[lt] != 2 || interrupted == 0) {
				t.Errorf("handler %s ran event %d %d times; want once", h, lt, runs[lt])
			}
		}
	}
	if got := pendingRuns(t, spool); len(got) != 0 {
		t.Errorf("runs pending in the spool at the end = %v; want none", got)
	}
	if fi, err := os.Stat(spool); err != nil || fi.Size() > 3*spoolCompactMin {
		t.Errorf("spool at the end: %v, %v; want at most %d bytes", fi, err, 3*spoolCompactMin)
	}
}

// A run that finished by itself as the drain ran out (here: it traps the
// drain's SIGTERM, writes its last line and exits 0) is done: it does not
// run again at the next start. Only a run the signal ended is cut short.
func TestSpoolRunExitingAtDrainIsDone(t *testing.T) {
	t.Parallel()
	dir, out := t.TempDir(), t.TempDir()
	log, spool := filepath.Join(out, "log"), filepath.Join(out, "runs")
	writeScript(t, dir, "h", fmt.Sprintf(`
trap 'echo "end $SERF_USER_LTIME" >> '%[1]s'; exit 0' TERM
echo "start $SERF_USER_LTIME" >> '%[1]s'
sleep 100 &
wait
`, log))
	opts := Options{Dir: dir, Workers: 1, Spool: spool, DrainTimeout: 300 * time.Millisecond, KillGrace: 5 * time.Second}
	p1, _ := startPool(t, opts)
	p1.Submit(userEvent("e", "", 1))
	testutil.WaitFor(t, 10*time.Second, "the run to start", func() bool { starts, _, _ := runLog(t, log); return starts[1] == 1 })
	p1.Close()
	if _, ends, _ := runLog(t, log); ends[1] != 1 {
		t.Fatalf("runs of event 1 that ended at the drain = %d; want 1 (it traps SIGTERM and exits 0)", ends[1])
	}
	p2, rec2 := startPool(t, opts)
	p2.Close()
	if got := rec2.find("", msgIDKey, MsgHandlerRunsResumed); len(got) != 0 {
		t.Errorf("resume records = %v; want none: the run finished by itself", got)
	}
	if starts, _, _ := runLog(t, log); starts[1] != 1 {
		t.Errorf("runs of event 1 started = %d; want 1", starts[1])
	}
}

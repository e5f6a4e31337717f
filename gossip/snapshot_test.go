package gossip

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/serfd/serfd/internal/testutil"
)

func TestParseSnapshotLine(t *testing.T) {
	for _, tc := range []struct {
		line string
		want snapRecord
	}{
		{"alive: web-1 10.0.0.1:7946", snapRecord{kind: snapAlive, name: "web-1", addr: "10.0.0.1:7946"}},
		{"alive: my node name 10.0.0.1:7946", snapRecord{kind: snapAlive, name: "my node name", addr: "10.0.0.1:7946"}},
		{"alive: v6 [::1]:7946", snapRecord{kind: snapAlive, name: "v6", addr: "[::1]:7946"}},
		{"not-alive: web-1", snapRecord{kind: snapNotAlive, name: "web-1"}},
		{"not-alive: a b", snapRecord{kind: snapNotAlive, name: "a b"}},
		{"clock: 42", snapRecord{kind: snapClock, n: 42}},
		{"event-clock: 18446744073709551615", snapRecord{kind: snapEventClock, n: 1<<64 - 1}},
		{"query-clock: 7 ", snapRecord{kind: snapQueryClock, n: 7}},
		{"leave", snapRecord{kind: snapLeave}},
		{"# a comment", snapRecord{}},
		{"", snapRecord{}},
		{"coordinate: {\"Vec\":[0]}", snapRecord{}},
		{"failed: web-1 10.0.0.1:7946 2026-03-01T10:00:00Z", snapRecord{kind: snapFailed, name: "web-1", addr: "10.0.0.1:7946", at: 1772359200}},
		{"left: my node [::1]:7946 2026-03-01T11:00:00+01:00", snapRecord{kind: snapLeft, name: "my node", addr: "[::1]:7946", at: 1772359200}},
	} {
		got, err := parseSnapshotLine(tc.line)
		if err != nil || got != tc.want {
			t.Errorf("parseSnapshotLine(%q) = %+v, %v; want %+v, nil", tc.line, got, err, tc.want)
		}
	}
	for _, line := range []string{
		"alive: web-1", "alive:  10.0.0.1:7946", "alive: web-1 10.0.0.1", "alive: web-1 host:7946",
		"alive: web-1 10.0.0.1:99999", "not-alive: ", "clock: -1", "clock: x", "event-clock: 1e3",
		"query-clock:", "leave ", "Leave", "alive:web-1 10.0.0.1:1", "garbage", "clock: 1\n",
		strings.Repeat("x", 100),
		"failed: web-1 10.0.0.1:7946", "failed: 10.0.0.1:7946 2026-03-01T10:00:00Z", "failed:  10.0.0.1:7946 2026-03-01T10:00:00Z",
		"left: web-1 10.0.0.1:7946 yesterday", "left: web-1 host:7946 2026-03-01T10:00:00Z",
		"failed: web-1 10.0.0.1:7946 1969-12-31T23:59:59Z", "left: web-1 10.0.0.1:7946 9999-12-31T23:00:00-01:00",
	} {
		if got, err := parseSnapshotLine(line); err == nil {
			t.Errorf("parseSnapshotLine(%q) = %+v, nil; want an error", line, got)
		}
	}
}

func FuzzParseSnapshotLine(f *testing.F) {
	for _, s := range []string{
		"alive: web-1 10.0.0.1:7946", "alive: a b c [fe80::1%eth0]:1", "not-alive: x", "clock: 1",
		"event-clock: 2", "query-clock: 3", "leave", "# c", "", "coordinate: x", "alive: ", "alive:  :",
		"clock: 18446744073709551616", "alive: \xff\xfe 1.2.3.4:5",
		"failed: a b 10.0.0.1:7946 2026-03-01T10:00:00Z", "left: c [::1]:1 2026-03-01T10:00:00.5+02:00",
		"left: x 1.2.3.4:5 0000-01-01T00:00:00+01:00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		r, err := parseSnapshotLine(line)
		if err != nil || r.kind == snapNone {
			return
		}
		// What parses, formats to a line that parses to the same record.
		again, err := parseSnapshotLine(r.line())
		if err != nil || again != r {
			t.Fatalf("parseSnapshotLine(%q) = %+v; its line %q parses to %+v, %v", line, r, r.line(), again, err)
		}
	})
}

// openTestSnapshotter opens path, applies setup (if not nil) and runs the
// snapshotter until the returned stop function is called (which waits for
// it to exit).
func openTestSnapshotter(t *testing.T, path string, rejoinAfterLeave bool, setup func(*snapshotter)) (*snapshotter, func()) {
	t.Helper()
	s, err := openSnapshotter(path, rejoinAfterLeave, defaultSnapshotRetention, testLogger(t, "snapshot"))
	if err != nil {
		t.Fatalf("openSnapshotter(%s) = %v; want nil", path, err)
	}
	s.flushInterval = 10 * time.Millisecond
	if setup != nil {
		setup(s)
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		s.run(stop)
	}()
	var once bool
	stopFn := func() {
		if !once {
			once = true
			close(stop)
			testutil.Recv(t, done, settle, "the snapshotter to stop")
		}
	}
	t.Cleanup(stopFn)
	return s, stopFn
}

func replayFile(t *testing.T, path string, rejoinAfterLeave bool) (snapState, int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	warnings := 0
	st, err := replaySnapshot(f, rejoinAfterLeave, func(int, error) { warnings++ })
	if err != nil {
		t.Fatalf("replaySnapshot(%s) = %v; want nil", path, err)
	}
	return st, warnings
}

func TestSnapshotRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "snapshot")
	s, stop := openTestSnapshotter(t, path, false, func(s *snapshotter) {
		s.clock = func() uint64 { return 9 }
	})
	for _, r := range []snapRecord{
		{kind: snapAlive, name: "a", addr: "10.0.0.1:7946"},
		{kind: snapAlive, name: "b c", addr: "10.0.0.2:7946"},
		{kind: snapAlive, name: "d", addr: "[::1]:7000"},
		{kind: snapAlive, name: "a", addr: "10.0.0.1:7946"}, // no change: not written
		{kind: snapNotAlive, name: "d"},
		{kind: snapNotAlive, name: "unknown"}, // no change
		{kind: snapEventClock, n: 20},
		{kind: snapEventClock, n: 19}, // older: not written
		{kind: snapQueryClock, n: 5},
	} {
		s.record(r)
	}
	stop()

	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The clock line goes wherever a tick sampled it; the rest in order.
	wantLines := []string{"alive: a 10.0.0.1:7946", "alive: b c 10.0.0.2:7946", "alive: d [::1]:7000",
		"not-alive: d", "event-clock: 20", "query-clock: 5"}
	lines := strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
	if i := slices.Index(lines, "clock: 8"); i >= 0 {
		lines = slices.Delete(lines, i, i+1)
	} else {
		t.Errorf("snapshot file = %q; want a line %q", lines, "clock: 8")
	}
	if !slices.Equal(lines, wantLines) {
		t.Errorf("snapshot file = %q; want lines %q and the clock", lines, wantLines)
	}
	st, warnings := replayFile(t, path, false)
	want := map[string]string{"a": "10.0.0.1:7946", "b c": "10.0.0.2:7946"}
	if !maps.Equal(st.alive, want) || st.clock != 8 || st.eventClock != 20 || st.queryClock != 5 || warnings != 0 {
		t.Errorf("replaySnapshot = %+v, %d warnings; want alive %v, clocks 8/20/5, no warnings", st, warnings, want)
	}

	// Reopening continues the same state and appends.
	s2, stop2 := openTestSnapshotter(t, path, false, nil)
	if !maps.Equal(s2.replayed.alive, want) || s2.replayed.eventClock != 20 {
		t.Errorf("openSnapshotter replayed %+v; want alive %v, event clock 20", s2.replayed, want)
	}
	s2.record(snapRecord{kind: snapNotAlive, name: "a"})
	stop2()
	if st, _ := replayFile(t, path, false); !maps.Equal(st.alive, map[string]string{"b c": "10.0.0.2:7946"}) {
		t.Errorf("after not-alive a: alive = %v; want only b c", st.alive)
	}
}

func TestSnapshotCompaction(t *testing.T) {
	path := filepath.Join(t.TempDir(), "snapshot")
	s, stop := openTestSnapshotter(t, path, false, func(s *snapshotter) { s.minCompact = 4 << 10 })
	for i := range 2000 {
		name := fmt.Sprintf("node-%d", i%10)
		s.record(snapRecord{kind: snapAlive, name: name, addr: fmt.Sprintf("10.0.0.%d:7946", i%10)})
		if i%10 < 7 {
			s.record(snapRecord{kind: snapNotAlive, name: name})
		}
		s.record(snapRecord{kind: snapEventClock, n: uint64(i + 1)})
		if i%100 == 0 { // let the writer keep up with the bounded queue
			testutil.WaitFor(t, settle, "the snapshot queue to drain", func() bool { return len(s.in) == 0 })
		}
	}
	stop()
	if n := s.dropped.Load(); n != 0 {
		t.Fatalf("snapshotter dropped %d records; want 0", n)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > 4<<10+512 {
		t.Errorf("snapshot size after 6000 records = %d bytes; want compacted to about 4 KiB", fi.Size())
	}
	if _, err := os.Stat(path + ".compact"); !os.IsNotExist(err) {
		t.Errorf("stat %s.compact = %v; want it gone", path, err)
	}
	st, warnings := replayFile(t, path, false)
	want := map[string]string{"node-7": "10.0.0.7:7946", "node-8": "10.0.0.8:7946", "node-9": "10.0.0.9:7946"}
	if !maps.Equal(st.alive, want) || st.eventClock != 2000 || warnings != 0 {
		t.Errorf("replay after compaction = alive %v, event clock %d, %d warnings; want %v, 2000, 0",
			st.alive, st.eventClock, warnings, want)
	}
}

func TestSnapshotGarbageLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "snapshot")
	content := "# written by hand\n" +
		"alive: a 10.0.0.1:7946\r\n" +
		"garbage here\n" +
		"\x00\xff\xfe\n" +
		"alive: broken\n" +
		strings.Repeat("z", 200<<10) + "\n" +
		"clock: nope\n" +
		"coordinate: {}\n" +
		"\n" +
		"event-clock: 30\n" +
		"alive: b 10.0.0.2:7946\n" +
		"alive: torn 10.0" // a crash mid-write: no newline
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	st, warnings := replayFile(t, path, false)
	want := map[string]string{"a": "10.0.0.1:7946", "b": "10.0.0.2:7946"}
	if !maps.Equal(st.alive, want) || st.eventClock != 30 || warnings != 6 {
		t.Errorf("replaySnapshot(garbage) = alive %v, event clock %d, %d warnings; want %v, 30, 6",
			st.alive, st.eventClock, warnings, want)
	}
	// The next record starts on its own line, after the torn one.
	s, stop := openTestSnapshotter(t, path, false, nil)
	s.record(snapRecord{kind: snapAlive, name: "c", addr: "10.0.0.3:7946"})
	stop()
	st, _ = replayFile(t, path, false)
	want["c"] = "10.0.0.3:7946"
	if !maps.Equal(st.alive, want) {
		t.Errorf("after appending to a torn file: alive = %v; want %v", st.alive, want)
	}
}

func TestSnapshotLeave(t *testing.T) {
	now := time.Now().Unix()
	for _, rejoin := range []bool{false, true} {
		path := filepath.Join(t.TempDir(), "snapshot")
		s, stop := openTestSnapshotter(t, path, rejoin, nil)
		s.record(snapRecord{kind: snapAlive, name: "a", addr: "10.0.0.1:7946"})
		s.record(snapRecord{kind: snapFailed, name: "f", addr: "10.0.0.6:7946", at: now})
		s.record(snapRecord{kind: snapClock, n: 12})
		s.record(snapRecord{kind: snapEventClock, n: 40})
		s.record(snapRecord{kind: snapQueryClock, n: 3})
		s.leave(make(chan struct{}))
		s.record(snapRecord{kind: snapAlive, name: "late", addr: "10.0.0.9:7946"}) // after leave: ignored
		stop()
		raw, _ := os.ReadFile(path)
		if !strings.HasSuffix(string(raw), "leave\n") {
			t.Errorf("rejoin=%v: snapshot = %q; want it to end with the leave record", rejoin, raw)
		}
		st, _ := replayFile(t, path, rejoin)
		// Without rejoin_after_leave a node that left forgets every peer,
		// alive or gone, so it rejoins none of them.
		wantAlive, wantGone, wantClock := map[string]string{}, map[string]departure{}, uint64(0)
		if rejoin {
			wantAlive, wantClock = map[string]string{"a": "10.0.0.1:7946"}, 12
			wantGone = map[string]departure{"f": {addr: "10.0.0.6:7946", at: now}}
		}
		// The event and query clocks survive a leave either way.
		if !maps.Equal(st.alive, wantAlive) || !maps.Equal(st.gone, wantGone) || st.clock != wantClock ||
			st.eventClock != 40 || st.queryClock != 3 || !st.left {
			t.Errorf("rejoin=%v: replay after leave = %+v; want alive %v, gone %v, clocks %d/40/3, left",
				rejoin, st, wantAlive, wantGone, wantClock)
		}
	}
}

func TestSnapshotRecoversFromWriteError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "snapshot")
	s, err := openSnapshotter(path, false, defaultSnapshotRetention, testLogger(t, "snapshot"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	s.apply(snapRecord{kind: snapAlive, name: "a", addr: "10.0.0.1:7946"})
	s.flush()
	s.f.Close() // every later write fails
	s.apply(snapRecord{kind: snapAlive, name: "b", addr: "10.0.0.2:7946"})
	s.flush()
	if !s.failing {
		t.Fatalf("after a failed flush: failing = false; want true")
	}
	s.nextCompact = time.Time{} // the retry is due
	s.tick()
	if s.failing {
		t.Fatalf("after the retry: failing = true; want the compaction to have rewritten the file")
	}
	s.apply(snapRecord{kind: snapNotAlive, name: "a"})
	s.flush()
	st, _ := replayFile(t, path, false)
	if want := map[string]string{"b": "10.0.0.2:7946"}; !maps.Equal(st.alive, want) {
		t.Errorf("replay after recovery: alive = %v; want %v", st.alive, want)
	}
}

func TestSnapshotOpenErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := create(Config{NodeName: "x", BindAddr: "127.0.0.160", Profile: "local",
		SnapshotPath: filepath.Join(dir, "missing", "snapshot"), Logger: testLogger(t, "x")}, testTiming())
	if err == nil || !strings.Contains(err.Error(), "snapshot") {
		t.Errorf("create with a snapshot in a missing directory = %v; want an error naming the snapshot", err)
	}
}

// startNode creates a node from cfg on 127.0.0.host, profile local,
// recording its events.
func startNode(t *testing.T, cfg Config, host int, tm timing) *node {
	t.Helper()
	rec := &recorder{}
	cfg.BindAddr = fmt.Sprintf("127.0.0.%d", host)
	cfg.Profile = "local"
	cfg.OnEvent = rec.OnEvent
	cfg.Logger = testLogger(t, cfg.NodeName)
	c, err := create(cfg, tm)
	if err != nil {
		t.Fatalf("create(%s) error: %v", cfg.NodeName, err)
	}
	t.Cleanup(func() { c.Shutdown() })
	self := c.LocalMember()
	return &node{Cluster: c, rec: rec, addr: fmt.Sprintf("%s:%d", self.Addr, self.Port)}
}

func sendEvents(t *testing.T, n *node, name string, count int) {
	t.Helper()
	for i := range count {
		if err := n.UserEvent(name, []byte(fmt.Sprint(i)), false); err != nil {
			t.Fatalf("UserEvent(%s, %d) = %v; want nil", name, i, err)
		}
	}
}

// TestRestartWithSnapshot is Serf #465/#692: a node restarted with its
// snapshot rejoins by itself and never re-delivers events it handled; the
// events sent while it was down reach it, as with Serf, with or without
// ReplayOnRejoin (its snapshot has an event clock).
func TestRestartWithSnapshot(t *testing.T) {
	path := filepath.Join(t.TempDir(), "snapshot")
	a := startNode(t, Config{NodeName: "a", ReconnectInterval: time.Hour}, 150, testTiming())
	port := testutil.FreePort(t, "127.0.0.151")
	startX := func(replay bool) *node {
		return startNode(t, Config{NodeName: "x", BindPort: port, SnapshotPath: path, ReplayOnRejoin: replay}, 151, testTiming())
	}
	// restart shuts x down, runs whileDown, and starts x again.
	restart := func(x *node, replay bool, whileDown func()) *node {
		t.Helper()
		if err := x.Shutdown(); err != nil {
			t.Fatalf("x.Shutdown() = %v; want nil", err)
		}
		testutil.WaitFor(t, settle, "a to see x failed", func() bool { return memberStatus(a.Cluster, "x") == StatusFailed })
		whileDown()
		return startX(replay)
	}
	count := func(x *node, name string) int { return len(x.rec.users(name)) }

	x := startX(false)
	if got := x.PreviousPeers(); len(got) != 0 {
		t.Errorf("PreviousPeers() with a new snapshot = %v; want none", got)
	}
	if n, err := x.Join(t.Context(), []string{a.addr}, true); n != 1 || err != nil {
		t.Fatalf("x.Join(%s) = %d, %v; want 1, nil", a.addr, n, err)
	}
	sendEvents(t, a, "handled", 20)
	testutil.WaitFor(t, settle, "x to handle 20 events", func() bool { return count(x, "handled") == 20 })

	// Restart without replay.
	x = restart(x, false, func() { sendEvents(t, a, "missed", 3) })
	if got := x.PreviousPeers(); !slices.Equal(got, []string{a.addr}) {
		t.Errorf("PreviousPeers() after restart = %v; want [%s]", got, a.addr)
	}
	testutil.WaitFor(t, settle, "x to rejoin a by itself", func() bool {
		return memberStatus(x.Cluster, "a") == StatusAlive && memberStatus(a.Cluster, "x") == StatusAlive
	})
	testutil.WaitFor(t, settle, "x to receive the 3 events sent while it was down", func() bool { return count(x, "missed") == 3 })
	sendEvents(t, a, "after", 1)
	testutil.WaitFor(t, settle, "x to receive an event sent after its rejoin", func() bool { return count(x, "after") == 1 })
	if h, m := count(x, "handled"), count(x, "missed"); h != 0 || m != 3 {
		t.Errorf("restarted x delivered %d handled and %d missed events; want 0 and 3", h, m)
	}

	// Restart with replay: only what was sent while it was down arrives.
	x = restart(x, true, func() { sendEvents(t, a, "down", 2) })
	testutil.WaitFor(t, settle, "x to replay the 2 events sent while it was down", func() bool { return count(x, "down") == 2 })
	sendEvents(t, a, "after2", 1)
	testutil.WaitFor(t, settle, "x to receive after2", func() bool { return count(x, "after2") == 1 })
	for name, want := range map[string]int{"handled": 0, "missed": 0, "after": 0, "down": 2} {
		if got := count(x, name); got != want {
			t.Errorf("x restarted with ReplayOnRejoin delivered %d %q events; want %d", got, name, want)
		}
	}
}

// TestRestartAfterLeave: after a graceful leave the snapshot forgets the
// peers, but a restarted node still does not re-run handled events, even
// when it joins with replay.
func TestRestartAfterLeave(t *testing.T) {
	path := filepath.Join(t.TempDir(), "snapshot")
	a := startNode(t, Config{NodeName: "a"}, 152, testTiming())
	port := testutil.FreePort(t, "127.0.0.153")
	cfg := Config{NodeName: "x", BindPort: port, SnapshotPath: path}
	x := startNode(t, cfg, 153, testTiming())
	if n, err := x.Join(t.Context(), []string{a.addr}, true); n != 1 || err != nil {
		t.Fatalf("x.Join(%s) = %d, %v; want 1, nil", a.addr, n, err)
	}
	sendEvents(t, a, "handled", 5)
	testutil.WaitFor(t, settle, "x to handle 5 events", func() bool { return len(x.rec.users("handled")) == 5 })
	if err := x.Leave(); err != nil {
		t.Fatalf("x.Leave() = %v; want nil", err)
	}
	if err := x.Shutdown(); err != nil {
		t.Fatalf("x.Shutdown() = %v; want nil", err)
	}
	testutil.WaitFor(t, settle, "a to see x left", func() bool { return memberStatus(a.Cluster, "x") == StatusLeft })

	x = startNode(t, cfg, 153, testTiming())
	if got := x.PreviousPeers(); len(got) != 0 || len(x.rejoinTargets) != 0 {
		t.Errorf("PreviousPeers() after leave = %v, rejoin targets %v; want none", got, x.rejoinTargets)
	}
	if n, err := x.Join(t.Context(), []string{a.addr}, false); n != 1 || err != nil {
		t.Fatalf("x.Join(%s, replay) = %d, %v; want 1, nil", a.addr, n, err)
	}
	sendEvents(t, a, "after", 1)
	testutil.WaitFor(t, settle, "x to receive after", func() bool { return len(x.rec.users("after")) == 1 })
	if got := x.rec.users("handled"); len(got) != 0 {
		t.Errorf("x restarted after leave re-delivered %d handled events; want 0", len(got))
	}
}

// TestSnapshotRecordsCluster checks what a running node writes.
func TestSnapshotRecordsCluster(t *testing.T) {
	path := filepath.Join(t.TempDir(), "snapshot")
	a := startNode(t, Config{NodeName: "a"}, 154, testTiming())
	x := startNode(t, Config{NodeName: "x", SnapshotPath: path}, 155, testTiming())
	if n, err := x.Join(t.Context(), []string{a.addr}, true); n != 1 || err != nil {
		t.Fatalf("x.Join(%s) = %d, %v; want 1, nil", a.addr, n, err)
	}
	if err := x.UserEvent("e", nil, false); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, settle, "x to deliver e", func() bool { return len(x.rec.users("e")) == 1 })
	lt := x.rec.users("e")[0].LTime
	if err := x.Shutdown(); err != nil {
		t.Fatal(err)
	}
	st, warnings := replayFile(t, path, false)
	want := map[string]string{"a": a.addr, "x": x.addr}
	if !reflect.DeepEqual(st.alive, want) || st.eventClock != lt || st.clock == 0 || warnings != 0 {
		t.Errorf("snapshot of x = %+v, %d warnings; want alive %v, event clock %d, a clock, no warnings", st, warnings, want, lt)
	}
}

// TestReplaySerfWrittenSnapshot replays files written by stock Serf 0.10
// (copied from real runs).
func TestReplaySerfWrittenSnapshot(t *testing.T) {
	for _, tc := range []struct {
		content string
		want    snapState
	}{
		{"alive: s1 127.0.0.201:7946\nalive: s2 127.0.0.202:7946\nclock: 1\nevent-clock: 1\nevent-clock: 2\n",
			snapState{alive: map[string]string{"s1": "127.0.0.201:7946", "s2": "127.0.0.202:7946"}, gone: map[string]departure{},
				clock: 1, eventClock: 2}},
		// Serf still records the clock after the leave.
		{"alive: s1 127.0.0.201:7946\nleave\nclock: 1\n",
			snapState{alive: map[string]string{}, gone: map[string]departure{}, clock: 1, left: true}},
	} {
		warnings := 0
		got, err := replaySnapshot(strings.NewReader(tc.content), false, func(int, error) { warnings++ })
		if err != nil || warnings != 0 || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("replaySnapshot(%q) = %+v, %v, %d warnings; want %+v, nil, 0", tc.content, got, err, warnings, tc.want)
		}
	}
}

// departureLine reports whether line is a failed or left record, which
// readers older than them skip.
func departureLine(line string) bool {
	return strings.HasPrefix(line, "failed: ") || strings.HasPrefix(line, "left: ")
}

// TestSnapshotDepartures: a member that fails or leaves is written as
// not-alive, then failed or left with its address and time; replay keeps
// those within the retention; compaction keeps them and drops the expired
// ones; and the lines a reader older than these records knows replay to
// the same alive members and clocks.
func TestSnapshotDepartures(t *testing.T) {
	path := filepath.Join(t.TempDir(), "snapshot")
	now := time.Now().Unix()
	old := now - int64((100 * time.Hour).Seconds()) // past the default retention
	s, stop := openTestSnapshotter(t, path, false, nil)
	for _, r := range []snapRecord{
		{kind: snapAlive, name: "a", addr: "10.0.0.1:7946"},
		{kind: snapAlive, name: "b", addr: "10.0.0.2:7946"},
		{kind: snapAlive, name: "c d", addr: "10.0.0.3:7946"},
		{kind: snapAlive, name: "e", addr: "10.0.0.5:7946"},
		{kind: snapFailed, name: "b", addr: "10.0.0.2:7946", at: now},
		{kind: snapLeft, name: "b", addr: "10.0.0.2:7946", at: now + 5}, // forced out after failing: no change
		{kind: snapLeft, name: "c d", addr: "10.0.0.3:7946", at: now},
		{kind: snapFailed, name: "e", addr: "10.0.0.5:7946", at: old},
		{kind: snapEventClock, n: 7},
	} {
		s.record(r)
	}
	stop()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	stamp := func(at int64) string { return time.Unix(at, 0).UTC().Format(time.RFC3339) }
	want := []string{"alive: a 10.0.0.1:7946", "alive: b 10.0.0.2:7946", "alive: c d 10.0.0.3:7946", "alive: e 10.0.0.5:7946",
		"not-alive: b", "failed: b 10.0.0.2:7946 " + stamp(now),
		"not-alive: c d", "left: c d 10.0.0.3:7946 " + stamp(now),
		"not-alive: e", "failed: e 10.0.0.5:7946 " + stamp(old),
		"event-clock: 7"}
	if lines := strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n"); !slices.Equal(lines, want) {
		t.Errorf("snapshot file = %q; want %q", lines, want)
	}

	// What a reader that skips failed and left lines replays is what it
	// replayed before these records existed.
	var known []string
	for line := range strings.SplitSeq(string(raw), "\n") {
		if !departureLine(line) {
			known = append(known, line)
		}
	}
	oldView, err := replaySnapshot(strings.NewReader(strings.Join(known, "\n")), false, func(n int, err error) {
		t.Errorf("replay without failed and left lines: line %d: %v", n, err)
	})
	if err != nil {
		t.Fatal(err)
	}
	full, warnings := replayFile(t, path, false)
	if !maps.Equal(full.alive, oldView.alive) || full.eventClock != oldView.eventClock || warnings != 0 {
		t.Errorf("replay = alive %v, event clock %d, %d warnings; without failed and left lines = alive %v, event clock %d",
			full.alive, full.eventClock, warnings, oldView.alive, oldView.eventClock)
	}

	// Reopened: e went more than the retention ago and is forgotten.
	wantGone := map[string]departure{"b": {addr: "10.0.0.2:7946", at: now}, "c d": {addr: "10.0.0.3:7946", at: now, left: true}}
	s, err = openSnapshotter(path, false, defaultSnapshotRetention, testLogger(t, "snapshot"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	if !maps.Equal(s.replayed.alive, map[string]string{"a": "10.0.0.1:7946"}) || !maps.Equal(s.replayed.gone, wantGone) {
		t.Errorf("reopened snapshot: alive %v, gone %v; want a alive, gone %v", s.replayed.alive, s.replayed.gone, wantGone)
	}

	// Compaction keeps the departures within the retention, drops the
	// others, and starts over from alive again for a member back.
	s.apply(snapRecord{kind: snapFailed, name: "f", addr: "10.0.0.6:7946", at: old})
	s.apply(snapRecord{kind: snapAlive, name: "c d", addr: "10.0.0.3:7946"})
	if err := s.compact(); err != nil {
		t.Fatal(err)
	}
	s.flush()
	raw, _ = os.ReadFile(path)
	want = []string{"alive: a 10.0.0.1:7946", "alive: c d 10.0.0.3:7946", "failed: b 10.0.0.2:7946 " + stamp(now),
		"clock: 0", "event-clock: 7", "query-clock: 0"}
	if lines := strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n"); !slices.Equal(lines, want) {
		t.Errorf("compacted snapshot = %q; want %q", lines, want)
	}
}

// A departure dated in the future (the clock went back) counts from now,
// so it does not outlive the retention.
func TestSnapshotDepartureInTheFuture(t *testing.T) {
	st := newSnapState()
	now := time.Now().Unix()
	st.gone["x"] = departure{addr: "10.0.0.1:7946", at: now + 1_000_000}
	st.gone["y"] = departure{addr: "10.0.0.2:7946", at: now - 10}
	if n := st.expire(now-5, now); n != 1 || st.gone["x"].at != now || len(st.gone) != 1 {
		t.Errorf("expire = %d, gone %v; want y expired and x dated now (%d)", n, st.gone, now)
	}
}

// rejoinTargets: the alive peers by address, then the departed ones, the
// latest first; self left out, and each address once.
func TestRejoinTargetsOrder(t *testing.T) {
	st := newSnapState()
	st.alive = map[string]string{"self": "10.0.0.9:7946", "b": "10.0.0.2:7946", "a": "10.0.0.3:7946"}
	st.gone = map[string]departure{
		"self":    {addr: "10.0.0.9:7946", at: 300},
		"old":     {addr: "10.0.0.4:7946", at: 100},
		"new":     {addr: "10.0.0.5:7946", at: 200, left: true},
		"renamed": {addr: "10.0.0.2:7946", at: 250}, // b's address: tried as b
	}
	var got []string
	for _, tg := range rejoinTargets(st, "self") {
		got = append(got, fmt.Sprintf("%s %s %v", tg.name, tg.addr, tg.status))
	}
	want := []string{"b 10.0.0.2:7946 alive", "a 10.0.0.3:7946 alive", "new 10.0.0.5:7946 left", "old 10.0.0.4:7946 failed"}
	if !slices.Equal(got, want) {
		t.Errorf("rejoinTargets = %q; want %q", got, want)
	}
}

package gossip

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/serfd/serfd/internal/testutil"
)

func TestSeenLogReplay(t *testing.T) {
	path := filepath.Join(t.TempDir(), "snapshot.seen")
	log := testLogger(t, "x")
	s, set, err := openSeenLog(path, log)
	if err != nil || set != nil {
		t.Fatalf("openSeenLog(no file) = set %v, %v; want nil set (nothing known), nil", set, err)
	}
	s.record(seenRecord{handled: true, ltime: 7, name: "deploy", payload: []byte("v1")})
	s.record(seenRecord{ltime: 9, name: "deploy", payload: []byte("v2")}) // accepted here
	s.record(seenRecord{ltime: 10, name: "empty"})                        // accepted here
	s.record(seenRecord{handled: true, ltime: 10, name: "empty"})         // and handled
	s.close()
	// A torn last line and garbage are skipped.
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString("garbage here\nh 12 00ab")
	f.Close()

	s, set, err = openSeenLog(path, log)
	if err != nil || set == nil {
		t.Fatalf("openSeenLog(4 records) = set %v, %v; want a set", set, err)
	}
	defer s.close()
	if !set.has(7, eventKey("deploy", []byte("v1"))) || !set.has(10, eventKey("empty", nil)) || set.max != 10 {
		t.Errorf("replayed handled set %+v; want deploy v1@7 and empty@10, max 10", set.keys)
	}
	if set.has(9, eventKey("deploy", []byte("v2"))) || set.has(8, eventKey("deploy", []byte("v1"))) {
		t.Errorf("replayed handled set %+v holds an event never handled", set.keys)
	}
	var bodies, pending []string
	for _, r := range set.bodies {
		bodies = append(bodies, fmt.Sprintf("%s=%s@%d", r.name, r.payload, r.ltime))
	}
	for _, r := range set.pending {
		pending = append(pending, fmt.Sprintf("%s=%s@%d", r.name, r.payload, r.ltime))
	}
	if got := strings.Join(bodies, " "); got != "deploy=v1@7 deploy=v2@9 empty=@10" {
		t.Errorf("replayed bodies %q; want the 3 events once each", got)
	}
	if got := strings.Join(pending, " "); got != "deploy=v2@9" {
		t.Errorf("replayed pending %q; want deploy=v2@9 (accepted, never handled)", got)
	}
	if data, _ := os.ReadFile(path); strings.Count(string(data), "\n") != 4 {
		t.Errorf("seen log after replay = %q; want the 4 good records only", data)
	}
}

// The log is compacted to the window once it holds seenCompactFactor
// windows of lines.
func TestSeenLogCompaction(t *testing.T) {
	path := filepath.Join(t.TempDir(), "snapshot.seen")
	s, _, err := openSeenLog(path, testLogger(t, "x"))
	if err != nil {
		t.Fatal(err)
	}
	for lt := uint64(1); lt <= seenCompactFactor*EventWindow; lt++ {
		s.record(seenRecord{handled: true, ltime: lt, name: "e"})
	}
	s.close()
	data, _ := os.ReadFile(path)
	if got := strings.Count(string(data), "\n"); got != EventWindow {
		t.Errorf("seen log after %d records holds %d lines; want the window, %d", seenCompactFactor*EventWindow, got, EventWindow)
	}
}

// Events that reached a node but were not yet handed to its handlers when
// it stopped are delivered after its restart; those it handled are not
// delivered again.
func TestRestartDeliversEventsQueuedAtStop(t *testing.T) {
	path := filepath.Join(t.TempDir(), "snapshot")
	a := startNode(t, Config{NodeName: "a", ReconnectInterval: time.Hour}, 160, testTiming())
	port := testutil.FreePort(t, "127.0.0.161")

	// x's handlers take the first user event and then hang until released.
	var (
		mu      sync.Mutex
		got     []string
		entered = make(chan struct{})
		release = make(chan struct{})
	)
	onEvent := func(ev Event) {
		if ev.Type != EventUser {
			return
		}
		mu.Lock()
		got = append(got, string(ev.Payload))
		first := len(got) == 1
		mu.Unlock()
		if first {
			close(entered)
			<-release
		}
	}
	startX := func(on func(Event)) *Cluster {
		c, err := create(Config{NodeName: "x", BindAddr: "127.0.0.161", BindPort: port, Profile: "local",
			SnapshotPath: path, OnEvent: on, Logger: testLogger(t, "x")}, testTiming())
		if err != nil {
			t.Fatalf("create(x) error: %v", err)
		}
		t.Cleanup(func() { c.Shutdown() })
		return c
	}
	x := startX(onEvent)
	if n, err := x.Join(t.Context(), []string{a.addr}, true); n != 1 || err != nil {
		t.Fatalf("x.Join(%s) = %d, %v; want 1, nil", a.addr, n, err)
	}
	const events = 10
	for i := range events {
		if err := a.UserEvent("e", []byte(fmt.Sprint(i)), false); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-entered:
	case <-time.After(settle):
		t.Fatal("x never delivered a user event")
	}
	testutil.WaitFor(t, settle, "x to hold the other events in its delivery queue", func() bool { return len(x.deliver) == events-1 })

	// x stops (as for a kill: no leave) with 9 events received, not handled.
	shut := make(chan error, 1)
	go func() { shut <- x.Shutdown() }()
	testutil.WaitFor(t, settle, "x's shutdown to begin", func() bool { return x.clusterState() == stateShutdown })
	close(release)
	select {
	case err := <-shut:
		if err != nil {
			t.Fatalf("x.Shutdown() = %v", err)
		}
	case <-time.After(settle):
		t.Fatal("x.Shutdown() did not return")
	}
	mu.Lock()
	handled := got[0]
	got = nil
	mu.Unlock()
	testutil.WaitFor(t, settle, "a to see x failed", func() bool { return memberStatus(a.Cluster, "x") == StatusFailed })

	rec := &recorder{}
	x = startX(rec.OnEvent) // rejoins a from the snapshot
	testutil.WaitFor(t, settle, "restarted x to receive the 9 events it had not handled", func() bool { return len(rec.users("e")) >= events-1 })
	sendEvents(t, a, "after", 1) // a marker: anything still to come has come before it
	testutil.WaitFor(t, settle, "restarted x to receive the marker", func() bool { return len(rec.users("after")) == 1 })
	seen := map[string]int{}
	for _, ev := range rec.users("e") {
		seen[string(ev.Payload)]++
	}
	for i := range events {
		want := 1
		if p := fmt.Sprint(i); p == handled {
			want = 0
		}
		if n := seen[fmt.Sprint(i)]; n != want {
			t.Errorf("restarted x delivered event %d %d times; want %d (event %s was handled before the stop)", i, n, want, handled)
		}
	}
}

// A node restarted with history gets a second join (its configured join)
// right after the snapshot's rejoin: an event it never saw, older than the
// peers' clocks, that arrives after both joins is still delivered.
func TestSecondJoinAfterRestartKeepsMissedEvents(t *testing.T) {
	path := filepath.Join(t.TempDir(), "snapshot")
	a := startNode(t, Config{NodeName: "a", ReconnectInterval: time.Hour}, 162, testTiming())
	port := testutil.FreePort(t, "127.0.0.163")
	startX := func() *node {
		return startNode(t, Config{NodeName: "x", BindPort: port, SnapshotPath: path}, 163, testTiming())
	}
	x := startX()
	if n, err := x.Join(t.Context(), []string{a.addr}, true); n != 1 || err != nil {
		t.Fatalf("x.Join(%s) = %d, %v; want 1, nil", a.addr, n, err)
	}
	sendEvents(t, a, "handled", 3)
	testutil.WaitFor(t, settle, "x to handle 3 events", func() bool { return len(x.rec.users("handled")) == 3 })
	if err := x.Shutdown(); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, settle, "a to see x failed", func() bool { return memberStatus(a.Cluster, "x") == StatusFailed })
	sendEvents(t, a, "missed", 2)

	x = startX()
	testutil.WaitFor(t, settle, "x to rejoin from its snapshot and get what it missed", func() bool { return len(x.rec.users("missed")) == 2 })
	if n, err := x.Join(t.Context(), []string{a.addr}, true); n != 1 || err != nil { // the configured join
		t.Fatalf("second x.Join(%s) = %d, %v; want 1, nil", a.addr, n, err)
	}
	// An event from a slower sender, older than every clock here.
	late := userEventMsg{LTime: a.Stats().EventTime - 1, Name: "late", Payload: []byte("from a slow sender")}
	if !x.handleUserEvent(late) {
		t.Errorf("x dropped an unseen event at LTime %d after its second join (event clock %d)", late.LTime, x.Stats().EventTime)
	}
	if got := len(x.rec.users("handled")); got != 0 {
		t.Errorf("restarted x ran %d events it had handled before; want 0", got)
	}
}

// A peer whose push/pull still lists a member as left, with no status
// newer than the one known here, does not make a member that came back
// "leaving" again.
func TestStaleLeftMemberFromPushPull(t *testing.T) {
	c := newBare(t, "p")
	c.members["x"] = &memberState{m: Member{Name: "x", Status: StatusAlive}, statusLTime: 10}
	c.numMembers.Store(2)
	merge := func(statusLTime uint64) {
		raw, err := c.wire.encode(msgPushPull, &pushPullMsg{LTime: 20, StatusLTimes: map[string]uint64{"x": statusLTime},
			LeftMembers: []string{"x"}, Events: []*eventSlot{}})
		if err != nil {
			t.Fatal(err)
		}
		c.mergeRemoteState(raw, false)
	}
	merge(10)
	if got := memberStatus(c, "x"); got != StatusAlive {
		t.Errorf("x after a push/pull listing it left at the time known here: %s; want alive", got)
	}
	merge(11) // the peer knows a newer status: a leave this node missed
	if got := memberStatus(c, "x"); got != StatusLeaving {
		t.Errorf("x after a push/pull listing it left at a newer time: %s; want leaving", got)
	}
}

// An event accepted by a node that nobody else heard from before it went
// down reaches the cluster after its restart, and runs once on each node.
func TestEventAcceptedAloneSpreadsAfterRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "snapshot")
	a := startNode(t, Config{NodeName: "a", ReconnectInterval: time.Hour}, 164, testTiming())
	port := testutil.FreePort(t, "127.0.0.165")
	startX := func() *node {
		return startNode(t, Config{NodeName: "x", BindPort: port, SnapshotPath: path}, 165, testTiming())
	}
	x := startX() // alone: cut off from a
	if err := x.UserEvent("solo", []byte("only x has it"), false); err != nil {
		t.Fatalf("x.UserEvent(solo) alone = %v; want nil (accepted)", err)
	}
	testutil.WaitFor(t, settle, "x to run solo", func() bool { return len(x.rec.users("solo")) == 1 })
	if err := x.Shutdown(); err != nil { // as a kill: no leave
		t.Fatal(err)
	}

	x = startX()
	if n, err := x.Join(t.Context(), []string{a.addr}, true); n != 1 || err != nil {
		t.Fatalf("restarted x.Join(%s) = %d, %v; want 1, nil", a.addr, n, err)
	}
	testutil.WaitFor(t, settle, "a to run the event x accepted alone", func() bool { return len(a.rec.users("solo")) == 1 })
	sendEvents(t, a, "after", 1)
	testutil.WaitFor(t, settle, "x to run after", func() bool { return len(x.rec.users("after")) == 1 })
	if got := len(x.rec.users("solo")); got != 0 {
		t.Errorf("restarted x ran solo %d more times; want 0 (it ran before the restart)", got)
	}
}

package gossip

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/serfd/serfd/internal/testutil"
)

// Concurrent claims never share a time.
func TestLamportClockClaimIsAtomic(t *testing.T) {
	var c lamportClock
	c.Increment()
	const workers, per = 4, 1000
	got := make([][]uint64, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range per {
				got[w] = append(got[w], c.Claim())
			}
		}()
	}
	wg.Wait()
	seen := make(map[uint64]bool)
	for _, ts := range got {
		for _, lt := range ts {
			if seen[lt] {
				t.Fatalf("Claim() returned %d twice", lt)
			}
			seen[lt] = true
		}
	}
	if want := uint64(1 + workers*per); c.Time() != want {
		t.Errorf("Time() after %d claims from 1 = %d; want %d", workers*per, c.Time(), want)
	}
}

// Four concurrent senders of the same name and payload: every UserEvent
// that returned nil is delivered, none is taken for a duplicate of another.
func TestConcurrentIdenticalUserEventsAllDelivered(t *testing.T) {
	rec := &recorder{}
	c, err := create(Config{
		NodeName:   "a",
		BindAddr:   "127.0.0.1",
		Profile:    "local",
		EventQueue: 8192,
		OnEvent:    rec.OnEvent,
		Logger:     testLogger(t, "a"),
	}, testTiming())
	if err != nil {
		t.Fatalf("create(a) error: %v", err)
	}
	t.Cleanup(func() { c.Shutdown() })

	const senders, per = 4, 800
	var wg sync.WaitGroup
	errs := make(chan error, senders*per)
	for range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range per {
				if err := c.UserEvent("same", []byte("same"), false); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	accepted := senders * per
	for err := range errs {
		t.Logf("UserEvent refused: %v", err)
		accepted--
	}
	testutil.WaitFor(t, 30*time.Second, "every accepted event delivered", func() bool { return len(rec.users("same")) >= accepted })
	evs := rec.users("same")
	lts := make(map[uint64]bool)
	for _, ev := range evs {
		if lts[ev.LTime] {
			t.Fatalf("two events delivered with LTime %d", ev.LTime)
		}
		lts[ev.LTime] = true
	}
	if len(evs) != accepted {
		t.Errorf("delivered %d user events; want %d (every accepted one)", len(evs), accepted)
	}
}

// A 600-event burst from 4 senders into a 10-node cluster: every event is
// either refused up front (ErrBusy) or delivered exactly once on all 10
// nodes. Skipped in short mode.
func TestBurstIsRefusedOrDeliveredEverywhere(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode: about half a minute until every accepted event reached every node")
	}
	const nodes, senders, per = 10, 4, 150
	var ns []*node
	for i := range nodes {
		n := newNode(t, fmt.Sprintf("burst-%d", i), 150+i, nil)
		if i > 0 {
			if got, err := n.Join(t.Context(), []string{ns[0].addr}, false); got != 1 || err != nil {
				t.Fatalf("%s.Join = %d, %v; want 1, nil", n.LocalMember().Name, got, err)
			}
		}
		ns = append(ns, n)
	}
	for _, n := range ns {
		testutil.WaitFor(t, 60*time.Second, n.LocalMember().Name+" to see every member alive", func() bool {
			return n.Stats().Alive == nodes
		})
	}

	var (
		mu       sync.Mutex
		accepted []string
		refused  int
	)
	var wg sync.WaitGroup
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				id := fmt.Sprintf("s%d-%d", s, i)
				err := ns[s].UserEvent("burst", []byte(id), false)
				mu.Lock()
				switch {
				case err == nil:
					accepted = append(accepted, id)
				case errors.Is(err, ErrBusy):
					refused++
				default:
					t.Errorf("UserEvent(burst, %s) = %v; want nil or ErrBusy", id, err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	t.Logf("burst of %d: %d accepted, %d refused", senders*per, len(accepted), refused)

	missing := func(n *node) []string {
		got := make(map[string]int)
		for _, ev := range n.rec.users("burst") {
			got[string(ev.Payload)]++
		}
		var out []string
		for _, id := range accepted {
			if got[id] != 1 {
				out = append(out, fmt.Sprintf("%s×%d", id, got[id]))
			}
		}
		return out
	}
	for _, n := range ns {
		testutil.WaitFor(t, 120*time.Second, n.LocalMember().Name+" to run every accepted event once", func() bool {
			return len(missing(n)) == 0
		})
	}
	for _, n := range ns {
		if m := missing(n); len(m) > 0 {
			t.Errorf("%s: accepted events not delivered exactly once: %v", n.LocalMember().Name, m)
		}
		if st := n.Stats(); st.TooOldEvents > 0 {
			t.Errorf("%s dropped %d events as older than the window", n.LocalMember().Name, st.TooOldEvents)
		}
	}
}

// With Backlog user events not yet in a gossip packet and another member
// alive to take them, UserEvent refuses the next one with ErrBusy and a
// message naming the limit, and counts it; alone, it never refuses.
func TestUserEventRefusedOverBacklog(t *testing.T) {
	c := newBare(t, "a") // no memberlist: nothing drains the gossip queue
	c.members["a"] = &memberState{m: Member{Name: "a", Status: StatusAlive}}
	for i := range c.cfg.Backlog + 10 { // alone: every event is accepted
		if err := c.UserEvent("e", []byte(fmt.Sprint(i)), false); err != nil {
			t.Fatalf("UserEvent #%d with no other member = %v; want nil", i, err)
		}
	}
	drain(c)

	c = newBare(t, "a")
	c.members["a"] = &memberState{m: Member{Name: "a", Status: StatusAlive}}
	c.members["b"] = &memberState{m: Member{Name: "b", Status: StatusAlive}}
	c.numMembers.Store(2) // what the queues count retransmissions by
	for i := range c.cfg.Backlog {
		if err := c.UserEvent("e", []byte(fmt.Sprint(i)), false); err != nil {
			t.Fatalf("UserEvent #%d of a backlog of %d = %v; want nil", i, c.cfg.Backlog, err)
		}
	}
	err := c.UserEvent("e", []byte("one too many"), false)
	if !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), fmt.Sprintf("the limit is %d", c.cfg.Backlog)) {
		t.Errorf("UserEvent over the backlog = %v; want ErrBusy naming the limit %d", err, c.cfg.Backlog)
	}
	if got := c.refusedEvents.Load(); got != 1 {
		t.Errorf("refused events counted = %d; want 1", got)
	}
	if got := len(drain(c)); got != c.cfg.Backlog {
		t.Errorf("delivered %d events locally; want %d (the refused one is not)", got, c.cfg.Backlog)
	}

	// Events sent once no longer count: a gossip packet (memberlist asks
	// the delegate for one) frees the backlog, though they stay queued
	// for their retransmissions.
	sent := delegate{c}.GetBroadcasts(2, 1400)
	if len(sent) == 0 {
		t.Fatal("no user event in a gossip packet")
	}
	for i := range len(sent) {
		if err := c.UserEvent("e", []byte(fmt.Sprint("after ", i)), false); err != nil {
			t.Fatalf("UserEvent #%d after %d events were sent = %v; want nil", i, len(sent), err)
		}
	}
	if err := c.UserEvent("e", []byte("again one too many"), false); !errors.Is(err, ErrBusy) {
		t.Errorf("UserEvent over the backlog again = %v; want ErrBusy", err)
	}
	if q := c.eventQ.NumQueued(); q != c.cfg.Backlog+len(sent) {
		t.Errorf("%d user events queued; want %d (the sent ones stay for their retransmissions)", q, c.cfg.Backlog+len(sent))
	}
}

// A local event whose time a window of others overtook before it was
// handled is still delivered.
func TestLocalEventBehindWindowDelivered(t *testing.T) {
	c := newBare(t, "a")
	lt := c.eventClock.Claim()
	c.handleUserEvent(userEventMsg{LTime: lt + EventWindow, Name: "later"})
	if !c.receiveUserEvent(userEventMsg{LTime: lt, Name: "mine"}, fromLocal) {
		t.Errorf("local event at LTime %d after the clock reached %d: not delivered", lt, c.eventClock.Time())
	}
	var names []string
	for _, ev := range drain(c) {
		names = append(names, ev.Name)
	}
	if got := strings.Join(names, ","); got != "later,mine" {
		t.Errorf("delivered %s; want later,mine", got)
	}
}

// Events sent just before a graceful leave (a stop, a restart, an upgrade)
// are gossiped before the node goes: Leave first waits for the event queue
// to drain (bounded). Once Leave has begun, new events and queries are
// refused with ErrNotMember, not accepted into a queue no one will send.
func TestLeaveSendsQueuedEventsAndRefusesNewOnes(t *testing.T) {
	t.Parallel()
	a := newNode(t, "a", 182, nil)
	b := newNodeTiming(t, "b", 183, func(tm *timing) { tm.broadcastTimeout = time.Minute }) // time is not what is tested
	if _, err := b.Join(t.Context(), []string{a.addr}, false); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, settle, "a and b to see each other", func() bool {
		return memberStatus(a.Cluster, "b") == StatusAlive && memberStatus(b.Cluster, "a") == StatusAlive
	})
	n := b.cfg.Backlog // as many as may wait, two per gossip packet
	for i := range n {
		if err := b.UserEvent("last-words", fmt.Appendf(nil, "%04d%0460d", i, 0), false); err != nil {
			t.Fatalf("UserEvent #%d = %v", i, err)
		}
	}
	if err := b.Leave(); err != nil {
		t.Fatalf("b.Leave() = %v", err)
	}
	if got := b.unsent.count(); got != 0 {
		t.Errorf("events not yet gossiped once after Leave = %d; want 0", got)
	}
	err := b.UserEvent("too-late", nil, false)
	if !errors.Is(err, ErrNotMember) || !strings.Contains(err.Error(), `user event "too-late" not sent`) {
		t.Errorf("UserEvent after Leave = %v; want ErrNotMember naming the event", err)
	}
	if _, err := b.Query("q", nil, nil); !errors.Is(err, ErrNotMember) {
		t.Errorf("Query after Leave = %v; want ErrNotMember", err)
	}
	b.Shutdown()
	testutil.WaitFor(t, settle, fmt.Sprintf("a to get all %d events sent before b left", n), func() bool {
		return len(a.rec.users("last-words")) == n
	})
	if got := len(b.rec.users("too-late")); got != 0 {
		t.Errorf("refused event delivered locally %d times; want 0", got)
	}
}

// A user event a node learns from a peer's push/pull state (it had missed
// it) is gossiped on, so that other nodes that missed it too get it within
// gossip rounds; one it already had is not, nor any while the event queue
// is half full.
func TestPushPullMissedEventIsRelayed(t *testing.T) {
	a := newBare(t, "a")
	a.handleUserEvent(userEventMsg{LTime: 40, Name: "missed", Payload: []byte("1")})
	state := a.localState()

	b := newBare(t, "b")
	b.mergeRemoteState(state, false)
	if got := b.eventQ.NumQueued(); got != 1 {
		t.Errorf("b's event queue after learning a missed event by push/pull = %d; want 1", got)
	}
	b.mergeRemoteState(state, false)
	if got := b.eventQ.NumQueued(); got != 1 {
		t.Errorf("b's event queue after the same state again = %d; want still 1", got)
	}

	c := newBare(t, "c")
	for i := range c.cfg.Backlog / 2 {
		c.eventQ.QueueBroadcast(&broadcast{msg: []byte(fmt.Sprint(i))})
	}
	c.mergeRemoteState(state, false)
	if got, want := c.eventQ.NumQueued(), c.cfg.Backlog/2; got != want {
		t.Errorf("c's event queue, half the backlog full, after learning a missed event = %d; want %d (not relayed)", got, want)
	}
	if got := drain(c); len(got) != 1 || got[0].Name != "missed" {
		t.Errorf("c delivered %+v; want the missed event, relayed or not", got)
	}
}

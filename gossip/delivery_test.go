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
// nodes.
func TestBurstIsRefusedOrDeliveredEverywhere(t *testing.T) {
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

// With Backlog user events waiting to be gossiped and another member alive
// to take them, UserEvent refuses the next one with ErrBusy and a message
// naming the limit, and counts it; alone, it never refuses.
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
}

// A local event whose time a window of others overtook before it was
// handled is still delivered.
func TestLocalEventBehindWindowDelivered(t *testing.T) {
	c := newBare(t, "a")
	lt := c.eventClock.Claim()
	c.handleUserEvent(userEventMsg{LTime: lt + eventWindow, Name: "later"})
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

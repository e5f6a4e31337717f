package gossip

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/serfd/serfd/internal/testutil"
)

func memberEv(typ EventType, name string) Event {
	return Event{Type: typ, Members: []Member{{Name: name, Tags: map[string]string{"n": name}}}}
}

// summary renders events as "type:name,name" strings for comparison.
func summary(evs []Event) []string {
	var out []string
	for _, ev := range evs {
		s := ev.Type.String() + ":"
		if ev.Type == EventUser {
			s += fmt.Sprintf("%s@%d=%s", ev.Name, ev.LTime, ev.Payload)
		}
		for i, m := range ev.Members {
			if i > 0 {
				s += ","
			}
			s += m.Name
		}
		out = append(out, s)
	}
	return out
}

func TestMemberCoalesce(t *testing.T) {
	mc := newMemberCoalesce()
	for _, ev := range []Event{
		memberEv(EventMemberJoin, "b"),
		memberEv(EventMemberJoin, "a"),
		memberEv(EventMemberFailed, "c"),
		memberEv(EventMemberUpdate, "a"), // a pending join stays a join
		memberEv(EventMemberJoin, "d"),
		memberEv(EventMemberFailed, "d"), // latest wins
	} {
		if !mc.add(ev) {
			t.Fatalf("add(%v) = false; want true", summary([]Event{ev}))
		}
	}
	if mc.add(Event{Type: EventUser, Name: "x"}) || mc.add(Event{Type: EventQuery}) {
		t.Errorf("add(user or query event) = true; want false")
	}
	want := []string{"member-join:a,b", "member-failed:c,d"}
	if got := summary(mc.flush()); !reflect.DeepEqual(got, want) {
		t.Errorf("first flush = %v; want %v", got, want)
	}

	// The next burst holds only its own members (not Serf's #555).
	mc.add(memberEv(EventMemberUpdate, "e"))
	if got, want := summary(mc.flush()), []string{"member-update:e"}; !reflect.DeepEqual(got, want) {
		t.Errorf("second flush = %v; want %v", got, want)
	}
	if got := mc.flush(); len(got) != 0 {
		t.Errorf("flush with nothing pending = %v; want nothing", summary(got))
	}

	// c fails again (no change since the last flush: skipped), b flaps
	// within the burst (join again: skipped), a is updated (always sent).
	mc.add(memberEv(EventMemberFailed, "c"))
	mc.add(memberEv(EventMemberFailed, "b"))
	mc.add(memberEv(EventMemberJoin, "b"))
	mc.add(memberEv(EventMemberUpdate, "a"))
	if got, want := summary(mc.flush()), []string{"member-update:a"}; !reflect.DeepEqual(got, want) {
		t.Errorf("third flush = %v; want %v", got, want)
	}

	// Reaping forgets a member: the state stays bounded.
	mc.add(memberEv(EventMemberReap, "c"))
	mc.flush()
	if _, ok := mc.lastSent["c"]; ok || len(mc.pending) != 0 {
		t.Errorf("after reaping c: lastSent %v, pending %v; want c forgotten, nothing pending", mc.lastSent, mc.pending)
	}
	mc.add(memberEv(EventMemberJoin, "c"))
	if got, want := summary(mc.flush()), []string{"member-join:c"}; !reflect.DeepEqual(got, want) {
		t.Errorf("flush after c came back = %v; want %v", got, want)
	}
}

func TestUserCoalesce(t *testing.T) {
	uc := newUserCoalesce()
	user := func(name string, lt uint64, payload string, cc bool) Event {
		return Event{Type: EventUser, Name: name, LTime: lt, Payload: []byte(payload), Coalesce: cc}
	}
	if uc.add(user("deploy", 1, "x", false)) {
		t.Errorf("add(user event without CC) = true; want false")
	}
	for _, ev := range []Event{
		user("deploy", 5, "v5", true),
		user("deploy", 7, "v7a", true),
		user("deploy", 6, "v6", true), // older than 7: dropped
		user("deploy", 7, "v7b", true),
		user("restart", 3, "r", true),
	} {
		if !uc.add(ev) {
			t.Fatalf("add(%v) = false; want true", summary([]Event{ev}))
		}
	}
	want := []string{"user:restart@3=r", "user:deploy@7=v7a", "user:deploy@7=v7b"}
	if got := summary(uc.flush()); !reflect.DeepEqual(got, want) {
		t.Errorf("flush = %v; want %v", got, want)
	}
	uc.add(user("deploy", 8, "v8", true))
	if got, want := summary(uc.flush()), []string{"user:deploy@8=v8"}; !reflect.DeepEqual(got, want) {
		t.Errorf("second flush = %v; want %v", got, want)
	}
}

// runCoalescer runs co until the test ends.
func runCoalescer(t *testing.T, co *coalescer) {
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		co.run(stop)
	}()
	t.Cleanup(func() {
		close(stop)
		testutil.Recv(t, done, settle, "the coalescer to stop")
	})
}

// TestCoalescerFlushesBursts: a burst is delivered merged once the quiet
// period passes (the coalesce period, an hour, never does). The first
// burst is offered before the coalescer runs, so however slowly the test
// goes, it cannot be split by the quiet period.
func TestCoalescerFlushesBursts(t *testing.T) {
	col := &recorder{}
	co := newCoalescer(time.Hour, 50*time.Millisecond, newMemberCoalesce(), col.OnEvent)
	for _, name := range []string{"a", "b", "c"} {
		co.offer(memberEv(EventMemberJoin, name))
	}
	co.offer(memberEv(EventMemberFailed, "d"))
	runCoalescer(t, co)

	want := []string{"member-join:a,b,c", "member-failed:d"}
	testutil.WaitFor(t, settle, "the first burst to flush after the quiet period", func() bool { return len(summary(col.all())) >= 2 })
	if got := summary(col.all()); !reflect.DeepEqual(got, want) {
		t.Fatalf("after the first burst: delivered %v; want %v", got, want)
	}
	co.offer(memberEv(EventMemberUpdate, "b"))
	want = append(want, "member-update:b")
	testutil.WaitFor(t, settle, "the second burst to flush", func() bool { return len(summary(col.all())) >= 3 })
	if got := summary(col.all()); !reflect.DeepEqual(got, want) {
		t.Errorf("after the second burst: delivered %v; want %v", got, want)
	}
}

// TestCoalescerQuantumBoundsAStream: with a quiet period that never ends,
// the coalesce period flushes anyway. Both events are offered before the
// coalescer runs, so they are one burst however slowly the test goes.
func TestCoalescerQuantumBoundsAStream(t *testing.T) {
	col := &recorder{}
	co := newCoalescer(150*time.Millisecond, time.Hour, newUserCoalesce(), col.OnEvent)
	co.offer(Event{Type: EventUser, Name: "tick", LTime: 1, Coalesce: true})
	co.offer(Event{Type: EventUser, Name: "tick", LTime: 2, Coalesce: true})
	runCoalescer(t, co)
	testutil.WaitFor(t, settle, "the coalesce period to flush", func() bool { return len(summary(col.all())) == 1 })
	if got, want := summary(col.all()), []string{"user:tick@2="}; !reflect.DeepEqual(got, want) {
		t.Errorf("delivered %v; want %v", got, want)
	}
}

// TestCoalescingCluster wires coalescing into a real node. The user
// coalescing periods are long enough (a second without an event; five at
// most) that the test's three UserEvent calls in a row are one burst even
// on a loaded machine.
func TestCoalescingCluster(t *testing.T) {
	a := startNode(t, Config{NodeName: "a", CoalescePeriod: 2 * time.Second, QuiescentPeriod: 300 * time.Millisecond,
		UserCoalescePeriod: 5 * time.Second, UserQuiescentPeriod: time.Second}, 171, testTiming())
	b := startNode(t, Config{NodeName: "b"}, 172, testTiming())
	c := startNode(t, Config{NodeName: "c"}, 173, testTiming())
	for _, n := range []*node{b, c} {
		if got, err := n.Join(t.Context(), []string{a.addr}, true); got != 1 || err != nil {
			t.Fatalf("Join(%s) = %d, %v; want 1, nil", a.addr, got, err)
		}
	}
	joined := func() map[string]int {
		seen := map[string]int{}
		for _, ev := range a.rec.all() {
			if ev.Type == EventMemberJoin {
				for _, m := range ev.Members {
					seen[m.Name]++
				}
			}
		}
		return seen
	}
	testutil.WaitFor(t, settle, "a to deliver joins of a, b, c", func() bool { return len(joined()) == 3 })

	if err := b.SetTags(map[string]string{"v": "2"}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, settle, "a to deliver b's update", func() bool { return a.rec.memberEvent(EventMemberUpdate, "b") })
	if err := c.SetTags(map[string]string{"v": "3"}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, settle, "a to deliver c's update", func() bool { return a.rec.memberEvent(EventMemberUpdate, "c") })
	for name, n := range joined() {
		if n != 1 {
			t.Errorf("a delivered member-join for %s %d times; want once", name, n)
		}
	}
	for _, ev := range a.rec.all() {
		if ev.Type == EventMemberUpdate && len(ev.Members) != 1 { // Serf #555 re-sends b with c
			t.Errorf("a delivered %v; want each member-update for one member alone", summary([]Event{ev}))
		}
	}

	// User events with CC coalesce; without, they pass straight through.
	for i, cc := range []bool{true, true, false} {
		if err := a.UserEvent("deploy", []byte(fmt.Sprint(i)), cc); err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitFor(t, settle, "the coalesced deploy", func() bool { return len(a.rec.users("deploy")) == 2 })
	got := a.rec.users("deploy")
	if string(got[0].Payload) != "2" || got[0].Coalesce || string(got[1].Payload) != "1" || !got[1].Coalesce {
		t.Errorf("a delivered deploy events %v; want the non-coalesced 2 first, then only the latest coalesced 1", summary(got))
	}
}

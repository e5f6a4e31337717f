package gossip

import (
	"fmt"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/serfd/serfd/internal/testutil"
)

// settle bounds how long a cluster may take to reach a state: generous for
// -race and busy CI machines, and longer under an emulator.
var settle = testutil.Scale(20 * time.Second)

// threeNodes starts a, b and c on 127.0.0.11-13 and joins b and c to a.
func threeNodes(t *testing.T) []*node {
	t.Helper()
	var nodes []*node
	for i, name := range []string{"a", "b", "c"} {
		nodes = append(nodes, newNode(t, name, 11+i, map[string]string{"role": "r-" + name, "dc": "test"}))
	}
	for _, n := range nodes[1:] {
		if got, err := n.Join(t.Context(), []string{nodes[0].addr}, true); got != 1 || err != nil {
			t.Fatalf("%s.Join(%s) = %d, %v; want 1, nil", n.LocalMember().Name, nodes[0].addr, got, err)
		}
	}
	for _, n := range nodes {
		testutil.WaitFor(t, settle, n.LocalMember().Name+" to see 3 alive members", func() bool {
			return n.Stats().Alive == 3
		})
	}
	return nodes
}

func TestThreeNodesSeeEachOther(t *testing.T) {
	nodes := threeNodes(t)
	for _, n := range nodes {
		ms := n.Members()
		if len(ms) != 3 {
			t.Fatalf("%s.Members() = %d members; want 3", n.LocalMember().Name, len(ms))
		}
		for i, m := range ms {
			name := []string{"a", "b", "c"}[i]
			want := map[string]string{"role": "r-" + name, "dc": "test"}
			if m.Name != name || m.Status != StatusAlive || !reflect.DeepEqual(m.Tags, want) {
				t.Errorf("%s.Members()[%d] = %s %v %v; want %s alive %v", n.LocalMember().Name, i, m.Name, m.Status, m.Tags, name, want)
			}
			if m.DelegateMin != 2 || m.DelegateMax != 5 || m.DelegateCur != 5 || m.ProtocolCur != 2 {
				t.Errorf("%s sees %s protocol %d/%d-%d delegate %d/%d-%d; want memberlist 2, delegate 5/2-5",
					n.LocalMember().Name, m.Name, m.ProtocolCur, m.ProtocolMin, m.ProtocolMax, m.DelegateCur, m.DelegateMin, m.DelegateMax)
			}
		}
		for _, other := range []string{"a", "b", "c"} {
			if !n.rec.memberEvent(EventMemberJoin, other) {
				testutil.WaitFor(t, settle, fmt.Sprintf("%s to deliver member-join for %s", n.LocalMember().Name, other), func() bool {
					return n.rec.memberEvent(EventMemberJoin, other)
				})
			}
		}
	}
}

func TestUserEventReachesEveryNodeOnce(t *testing.T) {
	nodes := threeNodes(t)
	if err := nodes[1].UserEvent("deploy", []byte("v42"), false); err != nil {
		t.Fatalf("UserEvent(deploy) = %v; want nil", err)
	}
	for _, n := range nodes {
		testutil.WaitFor(t, settle, n.LocalMember().Name+" to receive deploy", func() bool { return len(n.rec.users("deploy")) > 0 })
	}
	// Once no node has anything left to gossip, no copy can still arrive.
	testutil.WaitFor(t, settle, "every event queue to drain", func() bool {
		for _, n := range nodes {
			if n.Stats().EventQueue != 0 {
				return false
			}
		}
		return true
	})
	var ltime uint64
	for i, n := range nodes {
		got := n.rec.users("deploy")
		if len(got) != 1 || string(got[0].Payload) != "v42" {
			t.Fatalf("%s received deploy %d times (%+v); want once with payload v42", n.LocalMember().Name, len(got), got)
		}
		if i == 0 {
			ltime = got[0].LTime
		} else if got[0].LTime != ltime {
			t.Errorf("%s received deploy at LTime %d; want %d like a", n.LocalMember().Name, got[0].LTime, ltime)
		}
	}
}

func TestShutdownIsFailedLeaveIsLeft(t *testing.T) {
	nodes := threeNodes(t)
	a, b, c := nodes[0], nodes[1], nodes[2]

	if err := c.Shutdown(); err != nil {
		t.Fatalf("c.Shutdown() = %v; want nil", err)
	}
	if err := c.Shutdown(); err != nil {
		t.Errorf("second c.Shutdown() = %v; want nil", err)
	}
	for _, n := range []*node{a, b} {
		testutil.WaitFor(t, 30*time.Second, n.LocalMember().Name+" to see c failed", func() bool {
			return memberStatus(n.Cluster, "c") == StatusFailed && n.rec.memberEvent(EventMemberFailed, "c")
		})
	}

	if err := b.Leave(); err != nil {
		t.Fatalf("b.Leave() = %v; want nil", err)
	}
	if got := b.LocalMember().Status; got != StatusLeft {
		t.Errorf("b.LocalMember().Status after Leave = %v; want left", got)
	}
	if err := b.Leave(); err != nil {
		t.Errorf("second b.Leave() = %v; want nil", err)
	}
	if _, err := b.Join(t.Context(), []string{a.addr}, false); err == nil {
		t.Errorf("b.Join after Leave = nil error; want an error")
	}
	// As serfd does, shut down after leaving. a may miss b's own "dead"
	// message: memberlist counts a broadcast as sent on every packet it
	// rides on, and b's pings to c (failed, but asked for by a's indirect
	// probes) can use up its transmits. a then learns of b's end by
	// probing, and the leave intent still makes it "left". That takes
	// memberlist's longest suspicion timeout (profile local: 6 × 3 s), as
	// the only member that could confirm a's suspicion is c, and probes
	// that a loaded host stretches (Lifeguard) up to 8 probe intervals.
	if err := b.Shutdown(); err != nil {
		t.Errorf("b.Shutdown() after Leave = %v; want nil", err)
	}
	testutil.WaitFor(t, 3*settle, "a to see b left", func() bool {
		return memberStatus(a.Cluster, "b") == StatusLeft && a.rec.memberEvent(EventMemberLeave, "b")
	})
	// b's intent reaches a first over a stream (TestLeaveIntentOverStream),
	// but a scheduler may still run a's packet goroutine, with memberlist's
	// "dead" message about b, before its stream goroutine. Then a took b
	// for failed until the intent came, as a Serf agent does, and the leave
	// must come after.
	if failed, left := eventIndex(a.rec, EventMemberFailed, "b"), eventIndex(a.rec, EventMemberLeave, "b"); failed >= 0 {
		t.Logf("a saw b fail before its leave intent (events %d, %d)", failed, left)
		if left < failed {
			t.Errorf("a delivered member-leave for b (event %d) before member-failed (event %d); want the leave last", left, failed)
		}
	}
	st := a.Stats()
	if st.Alive != 1 || st.Left != 1 || st.Failed != 1 || st.Members != 3 {
		t.Errorf("a.Stats() = %+v; want 1 alive, 1 left, 1 failed of 3", st)
	}
	if err := b.Shutdown(); err != nil {
		t.Errorf("second b.Shutdown() = %v; want nil", err)
	}
}

// eventIndex is the position of the first event of type typ about member
// in r, or -1.
func eventIndex(r *recorder, typ EventType, member string) int {
	for i, ev := range r.all() {
		if ev.Type != typ {
			continue
		}
		for _, m := range ev.Members {
			if m.Name == member {
				return i
			}
		}
	}
	return -1
}

// TestLeaveIntentOverStream: a peer that gets none of a leaving node's
// packets (its gossiped leave intent, memberlist's "dead" message) still
// sees it leave, not fail: the intent also goes over a reliable stream.
func TestLeaveIntentOverStream(t *testing.T) {
	a := newNode(t, "a", 31, nil)
	b := newNode(t, "b", 32, nil)
	if n, err := b.Join(t.Context(), []string{a.addr}, false); n != 1 || err != nil {
		t.Fatalf("b.Join(%s) = %d, %v; want 1, nil", a.addr, n, err)
	}
	testutil.WaitFor(t, settle, "a to see b alive", func() bool { return memberStatus(a.Cluster, "b") == StatusAlive })

	fromB := b.LocalMember().Addr.String()
	drop := func(p *memberlist.Packet) bool {
		host, _, err := net.SplitHostPort(p.From.String())
		return err == nil && host == fromB
	}
	a.ho.tr.dropIn.Store(&drop)
	if err := b.Leave(); err != nil {
		t.Fatalf("b.Leave() = %v; want nil", err)
	}
	if err := b.Shutdown(); err != nil {
		t.Fatalf("b.Shutdown() = %v; want nil", err)
	}
	testutil.WaitFor(t, settle, "a to see b left", func() bool {
		return memberStatus(a.Cluster, "b") == StatusLeft && a.rec.memberEvent(EventMemberLeave, "b")
	})
	if a.rec.memberEvent(EventMemberFailed, "b") {
		t.Errorf("a delivered member-failed for b, whose packets it did not get; want only member-leave")
	}
}

func TestJoinIgnoreOldAndReplay(t *testing.T) {
	a := newNode(t, "a", 21, nil)
	if err := a.UserEvent("before", []byte("1"), false); err != nil {
		t.Fatal(err)
	}

	b := newNode(t, "b", 22, nil)
	if n, err := b.Join(t.Context(), []string{a.addr}, true); n != 1 || err != nil {
		t.Fatalf("b.Join(%s, ignoreOld) = %d, %v; want 1, nil", a.addr, n, err)
	}
	c := newNode(t, "c", 23, nil)
	if n, err := c.Join(t.Context(), []string{a.addr}, false); n != 1 || err != nil {
		t.Fatalf("c.Join(%s, replay) = %d, %v; want 1, nil", a.addr, n, err)
	}
	testutil.WaitFor(t, settle, "c to replay the event sent before it joined", func() bool { return len(c.rec.users("before")) == 1 })

	if err := a.UserEvent("after", []byte("2"), false); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*node{b, c} {
		testutil.WaitFor(t, settle, n.LocalMember().Name+" to receive the event sent after it joined", func() bool {
			return len(n.rec.users("after")) == 1
		})
	}
	if got := b.rec.users("before"); len(got) != 0 {
		t.Errorf("b (joined with ignoreOld) received %+v; want no event sent before its join", got)
	}
	if st := b.Stats(); st.EventTime < 2 {
		t.Errorf("b.Stats().EventTime = %d; want at least 2 (witnessed a's clock)", st.EventTime)
	}
}

func TestEventQueueFullDropsAndCounts(t *testing.T) {
	release := make(chan struct{})
	var delivered []Event
	c, err := create(Config{
		NodeName:   "slow",
		BindAddr:   "127.0.0.31",
		Profile:    "local",
		EventQueue: 2,
		OnEvent: func(ev Event) {
			select { // bounded: the test closes release long before
			case <-release:
			case <-time.After(2 * settle):
			}
			delivered = append(delivered, ev)
		},
		Logger: testLogger(t, "slow"),
	}, testTiming())
	if err != nil {
		t.Fatal(err)
	}
	// The delivery goroutine holds one event (member-join of self) and the
	// queue two more; everything else is dropped without blocking.
	for i := range 10 {
		if err := c.UserEvent(fmt.Sprintf("e%d", i), nil, false); err != nil {
			t.Fatalf("UserEvent(e%d) = %v; want nil", i, err)
		}
	}
	if got := c.Stats().DroppedEvents; got < 7 {
		t.Errorf("Stats().DroppedEvents = %d; want at least 7", got)
	}
	close(release)
	testutil.WaitFor(t, settle, "queued events to be delivered", func() bool { return len(c.deliver) == 0 })
	if err := c.Shutdown(); err != nil {
		t.Errorf("Shutdown() = %v; want nil", err)
	}
	if len(delivered) < 1 || len(delivered) > 3 {
		t.Errorf("delivered %d events; want 1 to 3", len(delivered))
	}
}

// A failed join says which address failed and why, on one line.
func TestJoinErrorIsOneLine(t *testing.T) {
	a := newNode(t, "a", 97, nil)
	n, err := a.Join(t.Context(), []string{"127.0.0.98:1", "127.0.0.99:1"}, false)
	if n != 0 || err == nil {
		t.Fatalf("Join(nothing listening) = %d, %v; want 0 and an error", n, err)
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") || !strings.Contains(msg, "127.0.0.98:1") || !strings.Contains(msg, "127.0.0.99:1") {
		t.Errorf("Join error = %q; want one line naming both addresses", msg)
	}
}

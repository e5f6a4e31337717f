package gossip

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/serfd/serfd/internal/testutil"
)

func TestRemoveFailedNode(t *testing.T) {
	a := startNode(t, Config{NodeName: "a", ReconnectInterval: time.Hour}, 161, testTiming())
	b := startNode(t, Config{NodeName: "b", ReconnectInterval: time.Hour}, 162, testTiming())
	c := startNode(t, Config{NodeName: "c"}, 163, testTiming())
	for _, n := range []*node{b, c} {
		if got, err := n.Join(t.Context(), []string{a.addr}, true); got != 1 || err != nil {
			t.Fatalf("Join(%s) = %d, %v; want 1, nil", a.addr, got, err)
		}
	}
	testutil.WaitFor(t, settle, "a and b to see 3 alive", func() bool { return a.Stats().Alive == 3 && b.Stats().Alive == 3 })

	for _, tc := range []struct{ name, want string }{{"nope", "no such member"}, {"a", "alive"}} {
		if err := b.RemoveFailedNode(tc.name, false); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("RemoveFailedNode(%q) = %v; want an error saying %q", tc.name, err, tc.want)
		}
	}

	c.Shutdown()
	testutil.WaitFor(t, settle, "a and b to see c failed", func() bool {
		return memberStatus(a.Cluster, "c") == StatusFailed && memberStatus(b.Cluster, "c") == StatusFailed
	})
	if err := b.RemoveFailedNode("c", false); err != nil {
		t.Fatalf("RemoveFailedNode(c) = %v; want nil", err)
	}
	if got := memberStatus(b.Cluster, "c"); got != StatusLeft {
		t.Errorf("after RemoveFailedNode(c): b sees c %v; want left", got)
	}
	testutil.WaitFor(t, settle, "a to see c left with member-leave", func() bool {
		return memberStatus(a.Cluster, "c") == StatusLeft && a.rec.memberEvent(EventMemberLeave, "c")
	})
	if err := b.RemoveFailedNode("c", false); err != nil {
		t.Errorf("RemoveFailedNode(c) again = %v; want nil (nothing to do)", err)
	}

	if err := b.RemoveFailedNode("c", true); err != nil {
		t.Fatalf("RemoveFailedNode(c, prune) = %v; want nil", err)
	}
	reaped := func(n *node) bool {
		return memberStatus(n.Cluster, "c") == StatusNone && n.rec.memberEvent(EventMemberReap, "c")
	}
	if !reaped(b) {
		t.Errorf("b after RemoveFailedNode(c, prune): c %v; want it erased at once, with member-reap", memberStatus(b.Cluster, "c"))
	}
	// The prune intent reaches a by gossip (UDP, no push/pull repair: b no
	// longer lists c), as in Serf; should it be lost on a loaded machine,
	// an operator runs the prune again on a node that still lists c.
	if !testutil.Eventually(settle, func() bool { return reaped(a) }) {
		t.Logf("a missed the prune intent (c is %v there); pruning from a", memberStatus(a.Cluster, "c"))
		if err := a.RemoveFailedNode("c", true); err != nil {
			t.Fatalf("a.RemoveFailedNode(c, prune) = %v; want nil", err)
		}
		testutil.WaitFor(t, settle, "a to erase c with member-reap", func() bool { return reaped(a) })
	}
}

// TestRemoveFailedNodePrune forces out a failed member with prune directly.
func TestRemoveFailedNodePrune(t *testing.T) {
	c := newBare(t, "a")
	c.members["f"] = &memberState{m: Member{Name: "f", Addr: net.IPv4(10, 0, 0, 9), Port: 7946, Status: StatusFailed},
		statusLTime: 3, leaveTime: time.Now()}
	c.clock.Witness(3) // as when the intent at 3 was applied
	if err := c.RemoveFailedNode("f", true); err != nil {
		t.Fatalf("RemoveFailedNode(f, prune) = %v; want nil", err)
	}
	if _, ok := c.members["f"]; ok {
		t.Errorf("after RemoveFailedNode(f, prune): f still known; want it erased")
	}
	var got []EventType
	for _, ev := range drain(c) {
		got = append(got, ev.Type)
	}
	if len(got) != 2 || got[0] != EventMemberLeave || got[1] != EventMemberReap {
		t.Errorf("RemoveFailedNode(f, prune) delivered %v; want [member-leave member-reap]", got)
	}
	if n := c.intentQ.NumQueued(); n != 1 {
		t.Errorf("queued intents after RemoveFailedNode = %d; want 1 (the leave intent)", n)
	}
}

func TestReapAfterConfiguredTimeouts(t *testing.T) {
	tm := testTiming()
	tm.reapInterval = 100 * time.Millisecond
	a := startNode(t, Config{NodeName: "a", ReconnectTimeout: time.Second, TombstoneTimeout: time.Second,
		ReconnectInterval: time.Hour}, 164, tm)
	b := startNode(t, Config{NodeName: "b"}, 165, testTiming())
	c := startNode(t, Config{NodeName: "c"}, 166, testTiming())
	for _, n := range []*node{b, c} {
		if got, err := n.Join(t.Context(), []string{a.addr}, true); got != 1 || err != nil {
			t.Fatalf("Join(%s) = %d, %v; want 1, nil", a.addr, got, err)
		}
	}
	testutil.WaitFor(t, settle, "a to see 3 alive", func() bool { return a.Stats().Alive == 3 })
	if err := b.Leave(); err != nil {
		t.Fatalf("b.Leave() = %v; want nil", err)
	}
	c.Shutdown()
	for _, name := range []string{"b", "c"} {
		testutil.WaitFor(t, 2*settle, "a to reap "+name, func() bool {
			return memberStatus(a.Cluster, name) == StatusNone && a.rec.memberEvent(EventMemberReap, name)
		})
	}
	if !a.rec.memberEvent(EventMemberLeave, "b") || !a.rec.memberEvent(EventMemberFailed, "c") {
		t.Errorf("a delivered %v; want member-leave for b and member-failed for c before the reaps", a.rec.all())
	}
}

func TestFlapCounter(t *testing.T) {
	a := startNode(t, Config{NodeName: "a", ReconnectInterval: time.Hour}, 167, testTiming())
	port := testutil.FreePort(t, "127.0.0.168")
	b := startNode(t, Config{NodeName: "b", BindPort: port}, 168, testTiming())
	if n, err := b.Join(t.Context(), []string{a.addr}, true); n != 1 || err != nil {
		t.Fatalf("b.Join(%s) = %d, %v; want 1, nil", a.addr, n, err)
	}
	testutil.WaitFor(t, settle, "a to see b", func() bool { return memberStatus(a.Cluster, "b") == StatusAlive })
	if got := a.Stats().Flaps; got != 0 {
		t.Errorf("Stats().Flaps before any failure = %d; want 0", got)
	}
	b.Shutdown()
	testutil.WaitFor(t, settle, "a to see b failed", func() bool { return memberStatus(a.Cluster, "b") == StatusFailed })
	b = startNode(t, Config{NodeName: "b", BindPort: port}, 168, testTiming())
	if n, err := b.Join(t.Context(), []string{a.addr}, true); n != 1 || err != nil {
		t.Fatalf("restarted b.Join(%s) = %d, %v; want 1, nil", a.addr, n, err)
	}
	testutil.WaitFor(t, settle, "a to see b back", func() bool { return memberStatus(a.Cluster, "b") == StatusAlive })
	if got := a.Stats().Flaps; got != 1 {
		t.Errorf("Stats().Flaps after b failed and came back = %d; want 1", got)
	}
}

// TestReconnect: a failed member that comes back without joining anyone is
// found again by the reconnector.
func TestReconnect(t *testing.T) {
	a := startNode(t, Config{NodeName: "a", ReconnectInterval: 200 * time.Millisecond}, 169, testTiming())
	port := testutil.FreePort(t, "127.0.0.170")
	b := startNode(t, Config{NodeName: "b", BindPort: port}, 170, testTiming())
	if n, err := b.Join(t.Context(), []string{a.addr}, true); n != 1 || err != nil {
		t.Fatalf("b.Join(%s) = %d, %v; want 1, nil", a.addr, n, err)
	}
	b.Shutdown()
	testutil.WaitFor(t, settle, "a to see b failed", func() bool { return memberStatus(a.Cluster, "b") == StatusFailed })
	b = startNode(t, Config{NodeName: "b", BindPort: port}, 170, testTiming()) // joins no one
	testutil.WaitFor(t, settle, "a to reconnect to b", func() bool {
		return memberStatus(a.Cluster, "b") == StatusAlive && memberStatus(b.Cluster, "a") == StatusAlive
	})
}

func TestLifecycleConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{ReconnectInterval: -time.Second}, "reconnect interval -1s is negative"},
		{Config{TombstoneTimeout: -1}, "tombstone timeout"},
		{Config{SnapshotRetention: -time.Hour}, "snapshot retention -1h0m0s is negative"},
		{Config{CoalescePeriod: time.Second}, "member event coalesce period 1s and quiescent period 0s"},
		{Config{UserQuiescentPeriod: time.Second}, "user event coalesce period 0s and quiescent period 1s"},
		{Config{CoalescePeriod: -1, QuiescentPeriod: -1}, "is negative"},
	} {
		tc.cfg.NodeName, tc.cfg.Logger = "x", testLogger(t, "x")
		if _, err := checkConfig(&tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("checkConfig(%+v) = %v; want an error containing %q", tc.cfg, err, tc.want)
		}
	}
	cfg := Config{NodeName: "x", Logger: testLogger(t, "x")}
	if _, err := checkConfig(&cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.ReconnectInterval != 30*time.Second || cfg.ReconnectTimeout != 24*time.Hour || cfg.TombstoneTimeout != 24*time.Hour ||
		cfg.SnapshotRetention != 72*time.Hour {
		t.Errorf("checkConfig defaults = %v, %v, %v, %v; want 30s, 24h, 24h, 72h",
			cfg.ReconnectInterval, cfg.ReconnectTimeout, cfg.TombstoneTimeout, cfg.SnapshotRetention)
	}
}

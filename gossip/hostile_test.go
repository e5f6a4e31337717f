package gossip

import (
	"math"
	"net"
	"testing"
	"time"

	"github.com/serfd/serfd/internal/testutil"
)

// memberlistUserMsg is memberlist's packet type for a delegate message: a
// UDP datagram of this byte and a Serf message reaches NotifyMsg on an
// unencrypted node.
const memberlistUserMsg = 8

// sendForged sends each message to n as one UDP datagram, as anyone who can
// reach an unencrypted cluster can.
func sendForged(t *testing.T, n *node, msgs ...[]byte) {
	t.Helper()
	conn, err := net.Dial("udp", n.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, m := range msgs {
		if _, err := conn.Write(append([]byte{memberlistUserMsg}, m...)); err != nil {
			t.Fatal(err)
		}
	}
}

func encodeMsg(t *testing.T, c *Cluster, typ msgType, v any) []byte {
	t.Helper()
	raw, err := c.wire.encode(typ, v)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// No Lamport time from a peer can wrap a clock or move it out of reach: a
// forged user event, query or intent at 2^64-1, at 2^62 or more than 2^40
// ahead of the clock is dropped (counted, logged once a second), changes
// no clock and runs nothing; the next real event is delivered everywhere.
func TestForgedLamportTimesChangeNothing(t *testing.T) {
	t.Parallel()
	a, b := newNode(t, "a", 180, nil), newNode(t, "b", 181, nil)
	if _, err := b.Join(t.Context(), []string{a.addr}, false); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, settle, "a and b to see each other", func() bool {
		return memberStatus(a.Cluster, "b") == StatusAlive && memberStatus(b.Cluster, "a") == StatusAlive
	})
	clocks := func(c *Cluster) [3]uint64 {
		return [3]uint64{c.clock.Time(), c.eventClock.Time(), c.queryClock.Time()}
	}
	before := clocks(a.Cluster)
	var forged [][]byte
	for _, lt := range []uint64{math.MaxUint64, maxLTime, before[1] + maxLTimeJump + 1} {
		forged = append(forged,
			encodeMsg(t, a.Cluster, msgUserEvent, &userEventMsg{LTime: lt, Name: "forged"}),
			encodeMsg(t, a.Cluster, msgJoin, &joinMsg{LTime: lt, Node: "b"}),
			encodeMsg(t, a.Cluster, msgLeave, &leaveMsg{LTime: lt, Node: "b"}),
			encodeMsg(t, a.Cluster, msgQuery, &queryMsg{LTime: lt, Name: "forged", SourceNode: "b", Timeout: time.Second}))
	}
	sendForged(t, a, forged...)
	testutil.WaitFor(t, settle, "a to drop every forged message", func() bool { return a.badIn.total.Load() >= uint64(len(forged)) })

	if after := clocks(a.Cluster); after[0] > before[0]+100 || after[1] > before[1]+100 || after[2] > before[2]+100 {
		t.Errorf("a's clocks (member, event, query) %v -> %v after forged times; want them where they were", before, after)
	}
	if got := memberStatus(a.Cluster, "b"); got != StatusAlive {
		t.Errorf("a sees b %v after a forged leave; want alive", got)
	}
	if err := b.UserEvent("real", []byte("1"), false); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, settle, "a to get b's next event", func() bool { return len(a.rec.users("real")) == 1 })
	if got := a.rec.users("forged"); len(got) != 0 {
		t.Errorf("a delivered forged events %+v; want none", got)
	}
	if got := b.rec.users("forged"); len(got) != 0 {
		t.Errorf("b delivered forged events %+v (relayed by a); want none", got)
	}
}

// A push/pull state with any implausible time is dropped whole: no clock
// moves, no member changes, no event of it is delivered.
func TestForgedPushPullStateChangesNothing(t *testing.T) {
	good := func() pushPullMsg {
		return pushPullMsg{LTime: 5, EventLTime: 5, QueryLTime: 5, StatusLTimes: map[string]uint64{"x": 3},
			Events: []*eventSlot{{LTime: 4, Events: []eventBody{{Name: "in-state"}}}}}
	}
	for name, edit := range map[string]func(*pushPullMsg){
		"member clock":   func(pp *pushPullMsg) { pp.LTime = math.MaxUint64 },
		"event clock":    func(pp *pushPullMsg) { pp.EventLTime = maxLTime },
		"query clock":    func(pp *pushPullMsg) { pp.QueryLTime = maxLTimeJump + 10 },
		"status time":    func(pp *pushPullMsg) { pp.StatusLTimes["x"] = math.MaxUint64 },
		"left at max":    func(pp *pushPullMsg) { pp.StatusLTimes["x"] = math.MaxUint64; pp.LeftMembers = []string{"x"} },
		"event in state": func(pp *pushPullMsg) { pp.Events[0].LTime = math.MaxUint64 - 1 },
	} {
		t.Run(name, func(t *testing.T) {
			c := newBare(t, "a")
			pp := good()
			edit(&pp)
			c.mergeRemoteState(encodeMsg(t, c, msgPushPull, &pp), false)
			if c.clock.Time() != 1 || c.eventClock.Time() != 1 || c.queryClock.Time() != 1 {
				t.Errorf("clocks after a forged state = %d/%d/%d; want 1/1/1", c.clock.Time(), c.eventClock.Time(), c.queryClock.Time())
			}
			if got := drain(c); len(got) != 0 {
				t.Errorf("delivered %+v from a forged state; want nothing", got)
			}
			if len(c.intents) != 0 || c.badIn.total.Load() != 1 {
				t.Errorf("intents %v, bad input counted %d; want none, 1", c.intents, c.badIn.total.Load())
			}
		})
	}
	c := newBare(t, "a")
	pp := good()
	c.mergeRemoteState(encodeMsg(t, c, msgPushPull, &pp), false)
	if c.eventClock.Time() != 5 || len(drain(c)) != 1 {
		t.Errorf("a good state: event clock %d; want 5, and its event delivered", c.eventClock.Time())
	}
}

// Witness never wraps, whatever it is given (a snapshot written before
// these checks may hold any time).
func TestWitnessNeverWraps(t *testing.T) {
	var l lamportClock
	l.Witness(math.MaxUint64)
	if got := l.Time(); got != maxLTime {
		t.Errorf("clock after Witness(2^64-1) = %d; want %d", got, uint64(maxLTime))
	}
	if err := l.check(5); err != nil {
		t.Errorf("check(5) = %v; want nil", err)
	}
}

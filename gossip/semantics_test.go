package gossip

import (
	"math"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

func TestLamportClock(t *testing.T) {
	var c lamportClock
	if got := c.Time(); got != 0 {
		t.Errorf("zero clock Time() = %d; want 0", got)
	}
	c.Increment()
	c.Witness(10)
	if got := c.Time(); got != 11 {
		t.Errorf("Witness(10) on 1: Time() = %d; want 11", got)
	}
	c.Witness(5)
	if got := c.Time(); got != 11 {
		t.Errorf("Witness(5) on 11: Time() = %d; want 11", got)
	}
	c.Witness(11)
	if got := c.Time(); got != 12 {
		t.Errorf("Witness(11) on 11: Time() = %d; want 12", got)
	}
}

func TestStrings(t *testing.T) {
	for s, want := range map[Status]string{StatusNone: "none", StatusAlive: "alive", StatusLeaving: "leaving",
		StatusLeft: "left", StatusFailed: "failed"} {
		if got := s.String(); got != want {
			t.Errorf("Status(%d).String() = %q; want %q", int(s), got, want)
		}
	}
	for e, want := range map[EventType]string{EventMemberJoin: "member-join", EventMemberLeave: "member-leave",
		EventMemberFailed: "member-failed", EventMemberUpdate: "member-update", EventMemberReap: "member-reap",
		EventUser: "user", EventQuery: "query"} {
		if got := e.String(); got != want {
			t.Errorf("EventType(%d).String() = %q; want %q", int(e), got, want)
		}
	}
}

func TestUserEventDedup(t *testing.T) {
	c := newBare(t, "a")
	ev := userEventMsg{LTime: 5, Name: "deploy", Payload: []byte("v1")}
	if !c.handleUserEvent(ev) {
		t.Fatalf("handleUserEvent(%+v) first time = false; want true", ev)
	}
	if c.handleUserEvent(ev) {
		t.Errorf("handleUserEvent(%+v) again = true; want false", ev)
	}
	other := userEventMsg{LTime: 5, Name: "deploy", Payload: []byte("v2")}
	if !c.handleUserEvent(other) {
		t.Errorf("handleUserEvent(%+v) same LTime, other payload = false; want true", other)
	}
	// Slot 5 is reused a window later: the old entry is forgotten.
	wrap := userEventMsg{LTime: 5 + EventWindow, Name: "deploy", Payload: []byte("v1")}
	if !c.handleUserEvent(wrap) {
		t.Errorf("handleUserEvent(%+v) = false; want true", wrap)
	}
	got := drain(c)
	if len(got) != 3 || got[0].LTime != 5 || string(got[1].Payload) != "v2" || got[2].LTime != wrap.LTime {
		t.Errorf("delivered %+v; want v1@5, v2@5, v1@%d", got, wrap.LTime)
	}
	if now := c.eventClock.Time(); now != wrap.LTime+1 {
		t.Errorf("event clock after witnessing %d = %d; want %d", wrap.LTime, now, wrap.LTime+1)
	}
}

func TestUserEventTooOldOrBeforeMinTime(t *testing.T) {
	c := newBare(t, "a")
	c.eventClock.Witness(2 * EventWindow)
	cur := c.eventClock.Time()
	old := userEventMsg{LTime: cur - EventWindow - 1, Name: "old"}
	if c.handleUserEvent(old) {
		t.Errorf("handleUserEvent(LTime %d) with clock %d = true; want false (too old)", old.LTime, c.eventClock.Time())
	}
	if got := c.tooOld.total.Load(); got != 1 {
		t.Errorf("too-old drops counted = %d; want 1", got)
	}
	recent := userEventMsg{LTime: cur - EventWindow, Name: "recent"}
	if !c.handleUserEvent(recent) {
		t.Errorf("handleUserEvent(LTime %d) with clock %d = false; want true", recent.LTime, c.eventClock.Time())
	}
	c.eventMinTime = cur - 100
	before := userEventMsg{LTime: cur - 101, Name: "before"}
	if c.handleUserEvent(before) {
		t.Errorf("handleUserEvent(LTime %d) with eventMinTime %d = true; want false", before.LTime, c.eventMinTime)
	}
	at := userEventMsg{LTime: cur - 100, Name: "at"}
	if !c.handleUserEvent(at) {
		t.Errorf("handleUserEvent(LTime %d) with eventMinTime %d = false; want true", at.LTime, c.eventMinTime)
	}
}

func TestUserEventLimits(t *testing.T) {
	c := newBare(t, "a")
	if err := c.UserEvent("big", make([]byte, 510), false); err == nil ||
		!strings.Contains(err.Error(), "513 bytes") || !strings.Contains(err.Error(), "512 bytes") {
		t.Errorf("UserEvent(3+510 bytes) = %v; want an error naming 513 and 512 bytes", err)
	}
	// Fits before encoding, not after.
	err := c.UserEvent("big", make([]byte, 500), false)
	if err == nil || !strings.Contains(err.Error(), "encoded") || !strings.Contains(err.Error(), "512 bytes") {
		t.Errorf("UserEvent(3+500 bytes) = %v; want an encoded-size error naming 512 bytes", err)
	}
	before := c.eventClock.Time()
	if err := c.UserEvent("ok", []byte("x"), true); err != nil {
		t.Fatalf("UserEvent(ok) = %v; want nil", err)
	}
	got := drain(c)
	if len(got) != 1 || got[0].Name != "ok" || got[0].LTime != before || !got[0].Coalesce {
		t.Errorf("UserEvent(ok) delivered %+v; want one coalescable event at LTime %d", got, before)
	}
	if now := c.eventClock.Time(); now != before+1 {
		t.Errorf("event clock after UserEvent = %d; want %d", now, before+1)
	}
	if n := c.eventQ.NumQueued(); n != 1 {
		t.Errorf("event queue after UserEvent = %d; want 1", n)
	}
}

func TestCreateErrors(t *testing.T) {
	logger := testLogger(t, "create")
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{Logger: logger}, "node name is empty"},
		{Config{NodeName: "a"}, "logger is nil"},
		{Config{NodeName: "a", Logger: logger, Profile: "fast"}, `profile "fast"`},
		{Config{NodeName: "a", Logger: logger, UserEventSizeLimit: 9217}, "9217"},
		{Config{NodeName: "a", Logger: logger, EventQueue: -1}, "event queue"},
		{Config{NodeName: "a", Logger: logger, Tags: map[string]string{"k": strings.Repeat("v", 600)}}, "meta limit of 512"},
	}
	for _, tt := range tests {
		c, err := Create(tt.cfg)
		if err == nil {
			c.Shutdown()
			t.Errorf("Create(%+v) = nil error; want one containing %q", tt.cfg, tt.want)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Create(%+v) = %v; want an error containing %q", tt.cfg, err, tt.want)
		}
	}
}

func join(c *Cluster, name string, tags map[string]string) {
	w := newWireCodec()
	meta, _ := w.encodeTags(tags)
	c.nodeJoined(&memberlist.Node{Name: name, Addr: net.IPv4(127, 0, 0, 1), Port: 7946, Meta: meta,
		PMin: 1, PMax: 5, PCur: 2, DMin: 2, DMax: 5, DCur: 5})
}

func TestIntentBufferedForUnknownNode(t *testing.T) {
	c := newBare(t, "a")
	if !c.handleLeaveIntent(leaveMsg{LTime: 10, Node: "b"}) {
		t.Errorf("handleLeaveIntent(b@10) unknown node = false; want true (new)")
	}
	if c.handleLeaveIntent(leaveMsg{LTime: 10, Node: "b"}) {
		t.Errorf("handleLeaveIntent(b@10) again = true; want false")
	}
	if c.handleJoinIntent(joinMsg{LTime: 9, Node: "b"}) {
		t.Errorf("handleJoinIntent(b@9) after leave@10 = true; want false")
	}
	if now := c.clock.Time(); now != 11 {
		t.Errorf("clock after intents up to 10 = %d; want 11", now)
	}
	join(c, "b", nil)
	if got := memberStatus(c, "b"); got != StatusLeaving {
		t.Errorf("status of b after NotifyJoin with buffered leave = %v; want leaving", got)
	}
	if c.handleJoinIntent(joinMsg{LTime: 10, Node: "b"}) {
		t.Errorf("handleJoinIntent(b@10) = true; want false (not newer than status time 10)")
	}
	if !c.handleJoinIntent(joinMsg{LTime: 11, Node: "b"}) {
		t.Errorf("handleJoinIntent(b@11) = false; want true")
	}
	if got := memberStatus(c, "b"); got != StatusAlive {
		t.Errorf("status of b after newer join intent = %v; want alive", got)
	}
}

func TestLeaveIntentTransitions(t *testing.T) {
	c := newBare(t, "a")
	join(c, "b", map[string]string{"role": "db"})
	join(c, "c", nil)
	c.nodeLeft(&memberlist.Node{Name: "c"})
	drain(c)

	if !c.handleLeaveIntent(leaveMsg{LTime: 3, Node: "b"}) || memberStatus(c, "b") != StatusLeaving {
		t.Errorf("leave intent for alive b: status %v; want leaving and rebroadcast", memberStatus(c, "b"))
	}
	c.nodeLeft(&memberlist.Node{Name: "b"})
	if !c.handleLeaveIntent(leaveMsg{LTime: 4, Node: "c"}) || memberStatus(c, "c") != StatusLeft {
		t.Errorf("leave intent for failed c: status %v; want left and rebroadcast", memberStatus(c, "c"))
	}
	got := drain(c)
	if len(got) != 2 || got[0].Type != EventMemberLeave || got[0].Members[0].Name != "b" ||
		got[0].Members[0].Tags["role"] != "db" || got[1].Type != EventMemberLeave || got[1].Members[0].Name != "c" {
		t.Errorf("events = %+v; want member-leave b (role=db), member-leave c", got)
	}
	if !c.handleLeaveIntent(leaveMsg{LTime: 5, Node: "c", Prune: true}) || memberStatus(c, "c") != StatusNone {
		t.Errorf("pruning leave intent for left c: status %v; want c erased", memberStatus(c, "c"))
	}
	if got := drain(c); len(got) != 1 || got[0].Type != EventMemberReap {
		t.Errorf("events after prune = %+v; want one member-reap", got)
	}
}

func TestRefuteLeaveAboutSelf(t *testing.T) {
	c := newBare(t, "a")
	join(c, "a", nil)
	if c.handleLeaveIntent(leaveMsg{LTime: 20, Node: "a"}) {
		t.Errorf("handleLeaveIntent(self@20) while alive = true; want false")
	}
	if got := memberStatus(c, "a"); got != StatusAlive {
		t.Errorf("self status after refuting = %v; want alive", got)
	}
	msgs := c.intentQ.GetBroadcasts(0, 1400)
	if len(msgs) != 1 || msgType(msgs[0][0]) != msgJoin {
		t.Fatalf("intent queue after refuting = %q; want one join intent", msgs)
	}
	var j joinMsg
	if err := c.wire.decodeBody(msgJoin, msgs[0][1:], &j); err != nil || j.Node != "a" || j.LTime <= 20 {
		t.Errorf("refuting join intent = %+v, %v; want node a with LTime > 20", j, err)
	}
}

func TestHandleMessageRebroadcastsOnce(t *testing.T) {
	c := newBare(t, "a")
	w := newWireCodec()
	raw, _ := w.encode(msgUserEvent, &userEventMsg{LTime: 3, Name: "e", Payload: []byte("p")})
	c.handleMessage(raw)
	c.handleMessage(raw)
	msgs := c.eventQ.GetBroadcasts(0, 1400)
	if len(msgs) != 1 || string(msgs[0]) != string(raw) {
		t.Errorf("event queue after the same event twice = %x; want exactly %x", msgs, raw)
	}
	if got := drain(c); len(got) != 1 {
		t.Errorf("delivered %d events; want 1", len(got))
	}

	c.members["b"] = &memberState{m: Member{Name: "b", Addr: net.IPv4(10, 0, 0, 2), Port: 7946, Status: StatusAlive}}
	from := []byte{10, 0, 0, 2}
	q, _ := w.encode(msgQuery, &queryMsg{LTime: 4, ID: 1, Name: "q", SourceNode: "b", Addr: from, Port: 7946})
	quiet, _ := w.encode(msgQuery, &queryMsg{LTime: 4, ID: 2, Name: "q", SourceNode: "b", Addr: from, Port: 7946, Flags: queryFlagNoBroadcast})
	c.handleMessage(q)
	c.handleMessage(q)
	c.handleMessage(quiet)
	if msgs := c.queryQ.GetBroadcasts(0, 1400); len(msgs) != 1 || string(msgs[0]) != string(q) {
		t.Errorf("query queue = %x; want exactly %x", msgs, q)
	}
	if got := drain(c); len(got) != 2 || got[0].Type != EventQuery || got[1].Type != EventQuery {
		t.Errorf("queries delivered %+v; want the two distinct queries once each", got)
	}
	for _, g := range garbage {
		for typ := range 12 {
			c.handleMessage(append([]byte{byte(typ)}, g...))
		}
	}
}

func TestPushPullMerge(t *testing.T) {
	a := newBare(t, "a")
	join(a, "a", nil)
	join(a, "b", nil)
	join(a, "gone", nil)
	a.handleLeaveIntent(leaveMsg{LTime: 7, Node: "gone"})
	a.nodeLeft(&memberlist.Node{Name: "gone"})
	a.handleUserEvent(userEventMsg{LTime: 40, Name: "old", Payload: []byte("1")})
	a.queryClock.Witness(90)
	state := a.localState()

	b := newBare(t, "b")
	join(b, "b", nil)
	join(b, "gone", nil)
	b.mergeRemoteState(state, false)
	if got := memberStatus(b, "gone"); got != StatusLeaving {
		t.Errorf("b's view of gone after merge = %v; want leaving (left on a)", got)
	}
	if b.clock.Time() < 8 || b.eventClock.Time() != 41 || b.queryClock.Time() != 91 {
		t.Errorf("b clocks after merge = %d/%d/%d; want >=8/41/91", b.clock.Time(), b.eventClock.Time(), b.queryClock.Time())
	}
	if got := drain(b); len(got) != 3 || got[2].Type != EventUser || got[2].Name != "old" || got[2].LTime != 40 {
		t.Errorf("b events after merge = %+v; want two joins then user event old@40", got)
	}
	if in, ok := b.intents["a"]; !ok || in.leave {
		t.Errorf("b intents = %+v; want a buffered join intent for a", b.intents)
	}

	// A joining node with ignoreOld takes the remote event time as minimum.
	c := newBare(t, "c")
	c.ignoreOld.Store(true)
	c.mergeRemoteState(state, true)
	if got := drain(c); len(got) != 0 {
		t.Errorf("c events after ignoreOld merge = %+v; want none", got)
	}
	if c.eventMinTime != 41 {
		t.Errorf("c eventMinTime after ignoreOld merge = %d; want 41", c.eventMinTime)
	}
	c.mergeRemoteState([]byte{0x03, 0x80}, false)
	c.mergeRemoteState(append([]byte{0x02}, garbage[9]...), false)
}

func TestParseLevel(t *testing.T) {
	tests := []struct{ in, level, msg string }{
		{"[DEBUG] memberlist: Stream connection from=1.2.3.4\n", "DEBUG", "Stream connection from=1.2.3.4"},
		{"[INFO] memberlist: Suspect b has failed", "INFO", "Suspect b has failed"},
		{"[WARN] memberlist: Refuting a suspect message", "WARN", "Refuting a suspect message"},
		{"[ERR] memberlist: Failed", "ERROR", "Failed"},
		{"[ERROR] memberlist: Failed", "ERROR", "Failed"},
		{"no prefix", "INFO", "no prefix"},
		{"[", "INFO", "["},
	}
	for _, tt := range tests {
		level, msg := parseLevel([]byte(tt.in))
		if level.String() != tt.level || msg != tt.msg {
			t.Errorf("parseLevel(%q) = %v, %q; want %s, %q", tt.in, level, msg, tt.level, tt.msg)
		}
	}
}

// FuzzDecodeMessage feeds arbitrary bytes to every decoder of peer input and
// to the message and push/pull handlers. None may panic.
func FuzzDecodeMessage(f *testing.F) {
	w := newWireCodec()
	events := make([]*eventSlot, eventRing)
	events[2] = &eventSlot{LTime: 2, Events: []eventBody{{Name: "e", Payload: []byte("p")}}}
	for _, seed := range []struct {
		t msgType
		v any
	}{
		{msgLeave, &leaveMsg{LTime: 1, Node: "b", Prune: true}},
		{msgJoin, &joinMsg{LTime: 2, Node: "b"}},
		{msgPushPull, &pushPullMsg{LTime: 3, StatusLTimes: map[string]uint64{"b": 1}, LeftMembers: []string{"b"}, Events: events}},
		{msgUserEvent, &userEventMsg{LTime: 4, Name: "n", Payload: []byte("x"), CC: true}},
		{msgQuery, &queryMsg{LTime: 5, ID: 1, Addr: []byte{127, 0, 0, 1}, Port: 1, Name: "q", Filters: [][]byte{{1}}}},
		{msgQueryResponse, &queryResponseMsg{LTime: 5, ID: 1, From: "b"}},
		{msgRelay, &relayHeader{DestAddr: net.UDPAddr{IP: net.IPv4(127, 0, 0, 1).To4(), Port: 1}, DestName: "b"}},
		// Hostile times and names (forged packets that once wrapped clocks).
		{msgUserEvent, &userEventMsg{LTime: math.MaxUint64, Name: "forged"}},
		{msgJoin, &joinMsg{LTime: math.MaxUint64, Node: ""}},
		{msgLeave, &leaveMsg{LTime: maxLTime, Node: "x\x1b]0;t\x07"}},
		{msgQuery, &queryMsg{LTime: math.MaxUint64 - 1, Name: "q"}},
		{msgPushPull, &pushPullMsg{LTime: math.MaxUint64, EventLTime: math.MaxUint64, QueryLTime: math.MaxUint64,
			StatusLTimes: map[string]uint64{"": math.MaxUint64}, LeftMembers: []string{""}}},
	} {
		b, err := w.encode(seed.t, seed.v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, g := range garbage {
		f.Add(append([]byte{0}, g...))
	}
	f.Add([]byte{tagMagic, 0x81, 0xa1, 'a', 0xa1, 'b'})
	f.Fuzz(func(t *testing.T, data []byte) {
		if n, err := scanValue(data, maxWireDepth); err == nil && (n <= 0 || n > len(data)) {
			t.Fatalf("scanValue(%x) = %d, nil; want 1..%d", data, n, len(data))
		}
		w.decodeTags(data)
		if len(data) > 0 {
			body := data[1:]
			w.decodeRelay(body)
			for _, v := range []any{&leaveMsg{}, &joinMsg{}, &pushPullMsg{}, &userEventMsg{}, &queryMsg{}, &queryResponseMsg{}} {
				w.decodeBody(msgType(data[0]), body, v)
			}
		}
		c := newBare(t, "a")
		c.handleMessage(data)
		c.mergeRemoteState(data, true)
		// No peer input moves a clock out of reach.
		for _, l := range []*lamportClock{&c.clock, &c.eventClock, &c.queryClock} {
			if l.Time() > maxLTimeJump+2 {
				t.Fatalf("a clock reached %d from input %x; want at most 2^40 past its start", l.Time(), data)
			}
		}
		if _, ok := c.intents[""]; ok {
			t.Fatalf("an intent about the empty name was kept from input %x", data)
		}
	})
}

func TestReap(t *testing.T) {
	c := newBare(t, "a")
	join(c, "a", nil)
	join(c, "failed", nil)
	join(c, "left", nil)
	c.nodeLeft(&memberlist.Node{Name: "failed"})
	c.handleLeaveIntent(leaveMsg{LTime: 5, Node: "left"})
	c.nodeLeft(&memberlist.Node{Name: "left"})
	c.handleJoinIntent(joinMsg{LTime: 3, Node: "stranger"})
	drain(c)

	now := time.Now()
	c.reap(now.Add(time.Hour))
	if got := len(c.Members()); got != 3 || len(c.intents) != 0 {
		t.Errorf("reap(+1h): %d members, %d intents; want 3 members, 0 intents", got, len(c.intents))
	}
	c.reap(now.Add(25 * time.Hour))
	if got := c.Members(); len(got) != 1 || got[0].Name != "a" {
		t.Errorf("reap(+25h) left members %+v; want only a", got)
	}
	reaped := map[string]bool{}
	for _, ev := range drain(c) {
		if ev.Type == EventMemberReap {
			reaped[ev.Members[0].Name] = true
		}
	}
	if !reaped["failed"] || !reaped["left"] || len(reaped) != 2 {
		t.Errorf("member-reap events for %v; want failed and left", reaped)
	}
}

package gossip

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
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

// memberlist's alive message, as it travels (msgpack, field names as keys).
type forgedAlive struct {
	Incarnation uint32
	Node        string
	Addr        []byte
	Port        uint16
	Meta        []byte
	Vsn         []uint8
}

// memberlistAliveMsg is memberlist's packet type for an alive message.
const memberlistAliveMsg = 4

// No alive message from the network adds a member serfd could not talk to
// or name: an empty, overlong or control-character name, no or an
// unusable address, no versions or versions that do not fit, tags
// that do not decode. The cluster stays as it was: a new node joins and
// sees exactly the real members.
func TestForgedAliveMessagesAddNoMember(t *testing.T) {
	t.Parallel()
	a, b := newNode(t, "a", 184, nil), newNode(t, "b", 185, nil)
	if _, err := b.Join(t.Context(), []string{a.addr}, false); err != nil {
		t.Fatal(err)
	}
	ok := []uint8{1, 5, 2, 2, 5, 4} // as stock Serf 0.10 sends
	lo := net.ParseIP("127.0.0.99").To4()
	variants := []forgedAlive{
		{Node: "", Addr: lo, Port: 7946, Vsn: ok},
		{Node: strings.Repeat("n", MaxNodeNameLen+1), Addr: lo, Port: 7946, Vsn: ok},
		{Node: "esc\x1b[31m", Addr: lo, Port: 7946, Vsn: ok},
		{Node: "bad-utf8\xff", Addr: lo, Port: 7946, Vsn: ok},
		{Node: "no-addr", Port: 7946, Vsn: ok},
		{Node: "zero-addr", Addr: net.IPv4zero.To4(), Port: 7946, Vsn: ok},
		{Node: "short-addr", Addr: []byte{127, 0, 1}, Port: 7946, Vsn: ok},
		{Node: "zero-versions", Addr: lo, Port: 7946, Vsn: make([]uint8, 6)},
		{Node: "future-serf", Addr: lo, Port: 7946, Vsn: []uint8{1, 5, 2, 9, 9, 9}},
		{Node: "bad-tags", Addr: lo, Port: 7946, Vsn: ok, Meta: []byte{tagMagic, 0xc1}},
	}
	h := &codec.MsgpackHandle{}
	var forged [][]byte
	for _, v := range variants {
		v.Incarnation = 1 // a new member's first alive message counts only above 0
		var buf []byte
		if err := codec.NewEncoderBytes(&buf, h).Encode(&v); err != nil {
			t.Fatal(err)
		}
		forged = append(forged, append([]byte{memberlistAliveMsg}, buf...))
	}
	conn, err := net.Dial("udp", a.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Then a valid alive message: memberlist handles alive messages in
	// order, so once its member shows up every forged one was handled.
	// (Port 0 is valid: memberlist reads it as its own port.)
	var sentinel []byte
	if err := codec.NewEncoderBytes(&sentinel, h).Encode(&forgedAlive{Incarnation: 1, Node: "sentinel", Addr: lo, Vsn: ok}); err != nil {
		t.Fatal(err)
	}
	for _, p := range append(forged, []byte{memberlistAliveMsg, 0x80, 0}, []byte{memberlistAliveMsg, 0x80},
		append([]byte{memberlistAliveMsg}, sentinel...)) {
		if _, err := conn.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitFor(t, settle, "a to handle the forged alive messages", func() bool {
		return memberStatus(a.Cluster, "sentinel") != StatusNone
	})
	if a.badIn.total.Load() == 0 {
		t.Errorf("forged alive messages counted as bad input = 0; want some (the rest memberlist refuses itself)")
	}

	// c joins a, which took the forged messages, and b too: b then learns
	// c by push/pull rather than only by a's gossip, which a loaded
	// machine has been seen to starve past the wait below.
	c := newNode(t, "c", 186, nil)
	if _, err := c.Join(t.Context(), []string{a.addr, b.addr}, false); err != nil {
		t.Fatalf("a new node joining after the forged messages: %v", err)
	}
	for _, n := range []*node{a, b, c} {
		testutil.WaitFor(t, settle, n.LocalMember().Name+" to see a, b and c alive", func() bool {
			return memberStatus(n.Cluster, "a") == StatusAlive && memberStatus(n.Cluster, "b") == StatusAlive &&
				memberStatus(n.Cluster, "c") == StatusAlive
		})
		var names []string
		for _, m := range n.Members() {
			if m.Name != "sentinel" { // real as far as anyone can tell; it fails in time
				names = append(names, m.Name)
			}
		}
		if slices.Sort(names); !slices.Equal(names, []string{"a", "b", "c"}) {
			t.Errorf("%s's members = %q; want a, b and c (and the sentinel) only", n.LocalMember().Name, names)
		}
	}
}

// memberlist's warnings and errors are rate-limited per kind: a flood of
// bad packets costs a record a second per kind, with a count; lines of
// other kinds, and informational lines, still get through.
func TestMemberlistLogFloodIsRateLimited(t *testing.T) {
	var buf testutil.Buffer
	l := newMemberlistLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})))
	for i := range 20000 {
		l.Printf("[ERR] memberlist: Failed to decode ping request from=10.0.%d.%d:7946", i/256%256, i%256)
		if i%1000 == 0 {
			l.Printf("[WARN] memberlist: ignoring alive message for 'x%d': bad", i)
			l.Printf("[INFO] memberlist: Suspect n%d has failed, no acks received", i)
		}
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	count := func(sub string) int {
		n := 0
		for _, line := range lines {
			if strings.Contains(line, sub) {
				n++
			}
		}
		return n
	}
	if got := count("Failed to decode ping request"); got < 1 || got > 5 {
		t.Errorf("records of 20,000 decode errors = %d; want 1 (a few if this ran for seconds)", got)
	}
	if got := count("ignoring alive message"); got < 1 || got > 5 {
		t.Errorf("records of 20 refused alive messages = %d; want 1 to a few", got)
	}
	if got := count("Suspect"); got != 20 {
		t.Errorf("informational records = %d; want all 20", got)
	}
	if len(lines) > 40 {
		t.Errorf("%d records in all for 20,040 lines; want at most a few dozen", len(lines))
	}
}

// Push/pull streams that claim more than they send cost memberlist nothing:
// 80 streams (ten times the inbound limit) claiming 2^20 nodes, 20 MB of
// state, or 16,000 nodes that never come, are all closed by the node while
// it allocates less than 100 MB in all (memberlist alone would allocate
// 116 MB for each 2^20 claim); a real join still works.
func TestPushPullClaimsAreBacked(t *testing.T) {
	a := newNode(t, "a", 187, nil)
	before := totalAllocated()
	h := &codec.MsgpackHandle{}
	claims := []map[string]any{
		{"Nodes": 1 << 20, "UserStateLen": 0, "Join": false},
		{"Nodes": 0, "UserStateLen": 20 << 20, "Join": false},
		{"Nodes": 16000, "UserStateLen": 0, "Join": true},
		{"Nodes": -1, "UserStateLen": 0, "Join": false},
	}
	streams := make([][]byte, 80)
	for i := range streams {
		var header []byte
		if err := codec.NewEncoderBytes(&header, h).Encode(claims[i%len(claims)]); err != nil {
			t.Fatal(err)
		}
		streams[i] = append([]byte{pushPullMessage}, header...)
	}
	sendHostileStreams(t, a.addr, streams)
	if grew := totalAllocated() - before; grew > 100<<20 {
		t.Errorf("allocated %d MB while refusing 80 hostile push/pull streams; want under 100 MB", grew>>20)
	}
	if a.badIn.total.Load() == 0 {
		t.Errorf("hostile streams counted as bad input = 0; want some")
	}
	b := newNode(t, "b", 188, nil)
	if _, err := b.Join(t.Context(), []string{a.addr}, false); err != nil {
		t.Fatalf("a real join after the hostile streams: %v", err)
	}
	testutil.WaitFor(t, settle, "a and b to see each other", func() bool {
		return memberStatus(a.Cluster, "b") == StatusAlive && memberStatus(b.Cluster, "a") == StatusAlive
	})
}

// Intents about nodes not yet known are kept up to a bound, and never for
// a name no member can have: a flood of forged intents with made-up names
// costs a bounded map.
func TestForgedIntentsAreBounded(t *testing.T) {
	c := newBare(t, "a")
	if c.handleJoinIntent(joinMsg{LTime: 2, Node: ""}) || c.handleLeaveIntent(leaveMsg{LTime: 2, Node: "x\x1b"}) {
		t.Errorf("intents about invalid names reported new; want dropped")
	}
	for i := range maxBufferedIntents + 100 {
		c.handleJoinIntent(joinMsg{LTime: 3, Node: fmt.Sprintf("ghost-%d", i)})
	}
	if got := len(c.intents); got != maxBufferedIntents {
		t.Errorf("intents kept after %d forged ones = %d; want the limit %d", maxBufferedIntents+100, got, maxBufferedIntents)
	}
	if got := c.badIn.total.Load(); got != 102 {
		t.Errorf("intents counted as bad input = %d; want 102", got)
	}
	if !c.handleJoinIntent(joinMsg{LTime: 9, Node: "ghost-1"}) {
		t.Errorf("a newer intent about a node already buffered = not new; want it kept")
	}
}

// countingHandler counts the records logged at info level and above.
type countingHandler struct{ n atomic.Int64 }

func (h *countingHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }
func (h *countingHandler) Handle(context.Context, slog.Record) error    { h.n.Add(1); return nil }
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler           { return h }
func (h *countingHandler) WithGroup(string) slog.Handler                { return h }

// 20,000 hostile datagrams (random bytes behind every memberlist message
// type, forged Serf messages) cost at most a few hundred log records, not
// one or more per packet; the node still works.
func TestDatagramFloodLogsLittle(t *testing.T) {
	counter := &countingHandler{}
	rec := &recorder{}
	c, err := create(Config{NodeName: "a", BindAddr: "127.0.0.189", Profile: "local", OnEvent: rec.OnEvent,
		Logger: slog.New(counter)}, testTiming())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Shutdown() })
	self := c.LocalMember()
	a := &node{Cluster: c, rec: rec, addr: net.JoinHostPort(self.Addr.String(), strconv.Itoa(int(self.Port)))}
	start := counter.n.Load()

	conn, err := net.Dial("udp", a.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	forged := encodeMsg(t, c, msgUserEvent, &userEventMsg{LTime: math.MaxUint64, Name: "forged"})
	for i := range 20000 {
		var p []byte
		switch i % 4 {
		case 0: // a memberlist message type and garbage
			p = append([]byte{byte(rng.IntN(14))}, randBytes(rng, rng.IntN(64))...)
		case 1: // a Serf message of any type and garbage
			p = append([]byte{memberlistUserMsg, byte(rng.IntN(10))}, randBytes(rng, rng.IntN(64))...)
		case 2:
			p = append([]byte{memberlistUserMsg}, forged...)
		default:
			p = randBytes(rng, 1+rng.IntN(128))
		}
		_, _ = conn.Write(p)
	}
	// A sentinel user event: once it is delivered, the flood before it
	// was handled.
	sentinel := encodeMsg(t, c, msgUserEvent, &userEventMsg{LTime: 5, Name: "sentinel"})
	testutil.WaitFor(t, settle, "the sentinel event after the flood", func() bool {
		_, _ = conn.Write(append([]byte{memberlistUserMsg}, sentinel...))
		return len(rec.users("sentinel")) == 1
	})
	if n := counter.n.Load() - start; n > 300 {
		t.Errorf("log records for 20,000 hostile datagrams = %d; want at most 300", n)
	} else {
		t.Logf("log records for 20,000 hostile datagrams: %d", n)
	}
}

func randBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.UintN(256))
	}
	return b
}

// A relay is forwarded only to a member at its address: no forged relay
// turns members into a flood aimed at an address of the sender's choice.
func TestForgedRelaysAreNotForwarded(t *testing.T) {
	c := newBare(t, "a")
	c.members["b"] = &memberState{m: Member{Name: "b", Addr: net.IPv4(10, 0, 0, 2), Port: 7946, Status: StatusAlive}}
	answer := encodeMsg(t, c, msgQueryResponse, &queryResponseMsg{LTime: 1, ID: 1, From: "c"})
	for _, h := range []relayHeader{
		{DestAddr: net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 7946}, DestName: "b"},
		{DestAddr: net.UDPAddr{IP: net.IPv4(10, 0, 0, 2), Port: 53}, DestName: "b"},
		{DestAddr: net.UDPAddr{IP: net.IPv4(10, 0, 0, 2), Port: 7946}, DestName: "victim"},
	} {
		c.forwardRelay(relayMsg{Header: h, Inner: answer})
	}
	if got := c.badIn.total.Load(); got != 3 {
		t.Errorf("forged relays counted as bad input = %d; want 3", got)
	}
}

// totalAllocated is what this process has allocated so far, in bytes.
func totalAllocated() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.TotalAlloc
}

// sendHostileStreams opens a stream to addr for each of streams, writes it,
// and waits until the node at addr has closed every one; a stream it keeps
// open for 2 minutes is an error.
func sendHostileStreams(t *testing.T, addr string, streams [][]byte) {
	t.Helper()
	closed := make(chan error, len(streams))
	for _, data := range streams {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write(data); err != nil {
			t.Fatal(err)
		}
		go func() {
			_ = c.SetReadDeadline(time.Now().Add(2 * time.Minute))
			_, err := io.Copy(io.Discard, c) // until the node closes it
			closed <- err
		}()
	}
	for i := range streams {
		err := testutil.Recv(t, closed, 3*time.Minute, fmt.Sprintf("%s to close hostile stream %d of %d", addr, i+1, len(streams)))
		if ne, ok := err.(net.Error); ok && ne.Timeout() { // EOF or a reset: closed
			t.Errorf("hostile stream %d: %v; want the node to close it", i+1, err)
		}
	}
}

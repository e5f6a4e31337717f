package gossip

import (
	"bufio"
	"bytes"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

// wireBodies are the message types a peer sends as top-level messages
// (and as push/pull state), with a fresh value to decode each into.
var wireBodies = []struct {
	t   msgType
	new func() any
}{
	{msgLeave, func() any { return new(leaveMsg) }},
	{msgJoin, func() any { return new(joinMsg) }},
	{msgPushPull, func() any { return new(pushPullMsg) }},
	{msgUserEvent, func() any { return new(userEventMsg) }},
	{msgQuery, func() any { return new(queryMsg) }},
	{msgQueryResponse, func() any { return new(queryResponseMsg) }},
	{msgKeyRequest, func() any { return new(keyRequest) }},
	{msgKeyResponse, func() any { return new(keyResponse) }},
	{msgConflictResponse, func() any { return new(conflictMember) }},
}

// FuzzWireRoundTrip decodes arbitrary bytes as the body of every message
// a peer can send. Whatever decodes must encode and decode back to the
// same value, and take exactly the bytes scanValue says the map takes;
// whatever does not must be an error naming the message type.
func FuzzWireRoundTrip(f *testing.F) {
	w := newWireCodec()
	events := make([]*eventSlot, eventRing)
	events[7] = &eventSlot{LTime: 7, Events: []eventBody{{Name: "deploy", Payload: []byte("v1")}}}
	for _, seed := range []struct {
		t msgType
		v any
	}{
		{msgLeave, &leaveMsg{LTime: 1, Node: "b", Prune: true}},
		{msgJoin, &joinMsg{LTime: 2, Node: "b"}},
		{msgPushPull, &pushPullMsg{LTime: 3, StatusLTimes: map[string]uint64{"a": 1, "b": 2}, LeftMembers: []string{"b"},
			EventLTime: 8, Events: events, QueryLTime: 4}},
		{msgUserEvent, &userEventMsg{LTime: 4, Name: "n", Payload: []byte("x"), CC: true}},
		{msgQuery, &queryMsg{LTime: 5, ID: 1, Addr: []byte{127, 0, 0, 1}, Port: 7946, SourceNode: "a", Filters: [][]byte{{1}},
			Flags: queryFlagAck, RelayFactor: 2, Timeout: time.Second, Name: "q", Payload: []byte("p")}},
		{msgQueryResponse, &queryResponseMsg{LTime: 5, ID: 1, From: "b", Flags: queryFlagAck, Payload: []byte("r")}},
		{msgKeyRequest, &keyRequest{Key: bytes.Repeat([]byte{1}, 16)}},
		{msgKeyResponse, &keyResponse{Result: true, Keys: []string{"k"}, PrimaryKey: "k"}},
		{msgConflictResponse, &conflictMember{Name: "b", Addr: net.IPv4(127, 0, 0, 2).To4(), Port: 7946, Tags: map[string]string{"role": "web"}}},
	} {
		b, err := w.encode(seed.t, seed.v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, g := range garbage {
		f.Add(append([]byte{byte(msgUserEvent)}, g...))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		body := data[1:]
		for _, wb := range wireBodies {
			first := wb.new()
			n, err := w.decodeMap(body, first)
			if err != nil {
				if err := w.decodeBody(wb.t, body, wb.new()); err == nil || !strings.HasPrefix(err.Error(), "decode "+wb.t.String()+" message: ") {
					t.Fatalf("decodeBody(%s, %x) = %v; want an error naming the %s message", wb.t, body, err, wb.t)
				}
				continue
			}
			if scanned, err := scanValue(body, maxWireDepth); err != nil || scanned != n {
				t.Fatalf("decodeMap(%x) took %d bytes; scanValue = %d, %v", body, n, scanned, err)
			}
			enc, err := w.encode(wb.t, first)
			if err != nil {
				t.Fatalf("encode(%s %+v) error: %v", wb.t, first, err)
			}
			second := wb.new()
			if err := w.decodeBody(wb.t, enc[1:], second); err != nil {
				t.Fatalf("decodeBody(%s, encode(%+v)) error: %v", wb.t, first, err)
			}
			if !reflect.DeepEqual(first, second) {
				t.Fatalf("%s round trip of %x: decoded %+v, then %+v", wb.t, body, first, second)
			}
		}
	})
}

// FuzzRelay: a relay that decodes forwards a valid destination and its
// inner bytes untouched, and encodes back to a relay that decodes the same.
func FuzzRelay(f *testing.F) {
	w := newWireCodec()
	inner, _ := w.encode(msgUserEvent, &userEventMsg{LTime: 1, Name: "e"})
	for _, h := range []relayHeader{
		{DestAddr: net.UDPAddr{IP: net.IPv4(127, 0, 0, 1).To4(), Port: 7946}, DestName: "b"},
		{DestAddr: net.UDPAddr{IP: net.IPv6loopback, Port: 1, Zone: "lo"}, DestName: ""},
	} {
		b, err := w.encodeRelay(h, inner)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b[1:])
	}
	f.Add([]byte{0x80})
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := w.decodeRelay(body)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "decode relay") {
				t.Fatalf("decodeRelay(%x) = %v; want an error starting \"decode relay\"", body, err)
			}
			return
		}
		if l := len(r.Header.DestAddr.IP); l != net.IPv4len && l != net.IPv6len {
			t.Fatalf("decodeRelay(%x) accepted a %d-byte IP", body, l)
		}
		if p := r.Header.DestAddr.Port; p < 1 || p > 65535 {
			t.Fatalf("decodeRelay(%x) accepted port %d", body, p)
		}
		if len(r.Inner) == 0 || !bytes.HasSuffix(body, r.Inner) {
			t.Fatalf("decodeRelay(%x) inner = %x; want the non-empty bytes after the header", body, r.Inner)
		}
		again, err := w.encodeRelay(r.Header, r.Inner)
		if err != nil {
			t.Fatalf("encodeRelay(%+v) error: %v", r.Header, err)
		}
		back, err := w.decodeRelay(again[1:])
		if err != nil || !reflect.DeepEqual(back, r) {
			t.Fatalf("relay round trip of %x = %+v, %v; want %+v", body, back, err, r)
		}
	})
}

// FuzzTags: node meta decodes to tags (or a legacy role) that encode and
// decode back to themselves; a failure names the tags.
func FuzzTags(f *testing.F) {
	w := newWireCodec()
	good, _ := w.encodeTags(map[string]string{"role": "web", "dc": "east"})
	f.Add(good)
	f.Add([]byte{tagMagic, 0xc0})
	f.Add([]byte("web"))
	f.Add([]byte{})
	f.Add([]byte{tagMagic, 0x81, 0xa1, 'a', 0x01})
	f.Fuzz(func(t *testing.T, meta []byte) {
		tags, err := w.decodeTags(meta)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "decode tags: ") || tags == nil || len(tags) != 0 {
				t.Fatalf("decodeTags(%x) = %v, %v; want no tags and an error naming the tags", meta, tags, err)
			}
			return
		}
		if len(meta) == 0 || meta[0] != tagMagic {
			if want := map[string]string{"role": string(meta)}; !reflect.DeepEqual(tags, want) {
				t.Fatalf("decodeTags(legacy %q) = %v; want %v", meta, tags, want)
			}
			return
		}
		enc, err := w.encodeTags(tags)
		if err != nil {
			t.Fatalf("encodeTags(%v) error: %v", tags, err)
		}
		back, err := w.decodeTags(enc)
		if err != nil || !reflect.DeepEqual(back, tags) {
			t.Fatalf("tags round trip of %x = %v, %v; want %v", meta, back, err, tags)
		}
	})
}

// FuzzPushPull merges arbitrary remote state into a node, as a peer's
// push/pull would arrive. The clocks never go back; a state that decodes
// moves each clock past the peer's, and this node's own state, encoded
// for the next exchange, always decodes with the whole event ring.
func FuzzPushPull(f *testing.F) {
	w := newWireCodec()
	// Short event rings keep the seeds small for the fuzzer to work on;
	// a peer's ring has eventRing slots, and any length must be taken.
	events := []*eventSlot{nil, {LTime: 3, Events: []eventBody{{Name: "deploy", Payload: []byte("v1")}}}}
	for _, pp := range []*pushPullMsg{
		{LTime: 3, StatusLTimes: map[string]uint64{"b": 1, "c": 2}, LeftMembers: []string{"c"}, EventLTime: 4, Events: events, QueryLTime: 5},
		{LTime: 1 << 63, StatusLTimes: map[string]uint64{}, LeftMembers: []string{}, Events: []*eventSlot{nil}},
		{},
	} {
		b, err := w.encode(msgPushPull, pp)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, true)
	}
	f.Add([]byte{byte(msgJoin), 0x80}, false)
	f.Add([]byte{byte(msgPushPull), 0x81, 0xa6, 'E', 'v', 'e', 'n', 't', 's', 0x91, 0x80}, false)
	f.Fuzz(func(t *testing.T, state []byte, join bool) {
		c := newBare(t, "a")
		c.clock.Witness(10)
		c.eventClock.Witness(10)
		c.queryClock.Witness(10)
		before := [3]uint64{c.clock.Time(), c.eventClock.Time(), c.queryClock.Time()}

		c.mergeRemoteState(state, join)

		after := [3]uint64{c.clock.Time(), c.eventClock.Time(), c.queryClock.Time()}
		for i, name := range []string{"clock", "event clock", "query clock"} {
			if after[i] < before[i] {
				t.Fatalf("mergeRemoteState(%x): %s went back from %d to %d", state, name, before[i], after[i])
			}
		}
		// A state whose times are plausible moves the clocks to the peer's;
		// any other is dropped whole and moves nothing.
		var pp pushPullMsg
		if typ, body, err := splitType(state); err == nil && typ == msgPushPull && w.decodeBody(typ, body, &pp) == nil {
			probe := newBare(t, "probe")
			probe.clock.Witness(10)
			probe.eventClock.Witness(10)
			probe.queryClock.Witness(10)
			plausible := probe.checkRemoteState(&pp) == nil
			for i, peer := range []uint64{pp.LTime, pp.EventLTime, pp.QueryLTime} {
				if plausible && after[i] < peer {
					t.Fatalf("mergeRemoteState(%x): clock %d = %d; want at least the peer's %d", state, i, after[i], peer)
				}
				if !plausible && after[i] != before[i] {
					t.Fatalf("mergeRemoteState(%x), implausible: clock %d moved %d -> %d; want it unchanged", state, i, before[i], after[i])
				}
			}
		}

		local := c.localState()
		var mine pushPullMsg
		if typ, body, err := splitType(local); err != nil || typ != msgPushPull || w.decodeBody(typ, body, &mine) != nil {
			t.Fatalf("localState() after merging %x = %x; want a push/pull message that decodes", state, local)
		}
		if len(mine.Events) != EventWindow || mine.LTime != after[0] {
			t.Fatalf("localState() = %d event slots at LTime %d; want %d slots at %d", len(mine.Events), mine.LTime, EventWindow, after[0])
		}
	})
}

// FuzzSnapshotFile replays an arbitrary snapshot file. Replay never fails
// on content (bad lines are warned about, by increasing line number, and
// skipped); what it yields, written out as a snapshot, replays to the same
// state.
func FuzzSnapshotFile(f *testing.F) {
	for _, seed := range []string{
		"alive: a 127.0.0.1:7946\nalive: b [::1]:7946\nclock: 5\nevent-clock: 6\nquery-clock: 7\n",
		"alive: a 127.0.0.1:7946\nnot-alive: a\nleave\nalive: b 10.0.0.2:1\n",
		"# comment\r\n\r\ncoordinate: {}\nclock: x\nalive: nobody\n",
		"alive: a 127.0.0.1:7946", // no final newline
		"leave\nclock: 3\nevent-clock: 4\n",
		"alive: a 127.0.0.1:7946\nnot-alive: a\nfailed: a 127.0.0.1:7946 2026-03-01T10:00:00Z\nalive: b 10.0.0.2:1\n" +
			"left: b 10.0.0.2:1 2026-03-01T11:00:00Z\nalive: a 127.0.0.1:7946\nleave\n",
		"\x00\xff\n" + strings.Repeat("y", snapshotMaxLine+10) + "\nclock: 9\n",
	} {
		f.Add([]byte(seed), false)
		f.Add([]byte(seed), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, rejoinAfterLeave bool) {
		lastLine := 0
		st, err := replaySnapshot(bytes.NewReader(data), rejoinAfterLeave, func(lineNo int, err error) {
			if lineNo <= lastLine || err == nil || err.Error() == "" {
				t.Fatalf("replaySnapshot(%q) warned about line %d after line %d with %v; want increasing lines and an error", data, lineNo, lastLine, err)
			}
			lastLine = lineNo
		})
		if err != nil {
			t.Fatalf("replaySnapshot(%q) error: %v; want bad content warned about, not an error", data, err)
		}
		if lines := bytes.Count(data, []byte("\n")) + 1; lastLine > lines {
			t.Fatalf("replaySnapshot(%q) warned about line %d of %d", data, lastLine, lines)
		}
		for name, addr := range st.alive {
			if _, err := netip.ParseAddrPort(addr); err != nil || name == "" {
				t.Fatalf("replaySnapshot(%q) yielded alive %q at %q", data, name, addr)
			}
		}

		for name, d := range st.gone {
			if _, err := netip.ParseAddrPort(d.addr); err != nil || name == "" || st.alive[name] != "" {
				t.Fatalf("replaySnapshot(%q) yielded gone %q at %q, alive at %q", data, name, d.addr, st.alive[name])
			}
		}

		// Written out as compaction writes it.
		var out bytes.Buffer
		w := bufio.NewWriter(&out)
		st.write(w)
		w.Flush()
		again, err := replaySnapshot(&out, rejoinAfterLeave, func(lineNo int, err error) {
			t.Fatalf("replay of the state of %q warned about line %d: %v", data, lineNo, err)
		})
		st.left = false
		if err != nil || !reflect.DeepEqual(again, st) {
			t.Fatalf("replay of the state of %q = %+v, %v; want %+v", data, again, err, st)
		}
	})
}

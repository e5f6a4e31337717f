package gossip

import (
	"bytes"
	"encoding/hex"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"
)

// raw is the old-spec msgpack raw string header plus s, as Serf writes
// every string and []byte.
func raw(s string) string {
	switch n := len(s); {
	case n < 32:
		return string([]byte{byte(0xa0 | n)}) + s
	case n < 1<<16:
		return string([]byte{0xda, byte(n >> 8), byte(n)}) + s
	default:
		return string([]byte{0xdb, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}) + s
	}
}

// TestEncodeGolden pins Serf's encoding: type byte, a msgpack map with one
// entry per field, field names as raw strings sorted by name (go-msgpack
// sorts struct fields when it writes maps), strings and []byte as raw (never
// str8 0xd9 or bin 0xc4-0xc6), Go ints as signed msgpack ints.
func TestEncodeGolden(t *testing.T) {
	w := newWireCodec()
	long := strings.Repeat("x", 40) // str8 territory in the new spec
	tests := []struct {
		name string
		t    msgType
		v    any
		want string
	}{
		{"leave", msgLeave, &leaveMsg{LTime: 7, Node: "a", Prune: true},
			"\x00\x83" + raw("LTime") + "\x07" + raw("Node") + raw("a") + raw("Prune") + "\xc3"},
		{"join", msgJoin, &joinMsg{LTime: 300, Node: long},
			"\x01\x82" + raw("LTime") + "\xcd\x01\x2c" + raw("Node") + "\xda\x00\x28" + long},
		{"user event", msgUserEvent, &userEventMsg{LTime: 1, Name: "deploy", Payload: []byte("v1"), CC: false},
			"\x03\x84" + raw("CC") + "\xc2" + raw("LTime") + "\x01" + raw("Name") + raw("deploy") + raw("Payload") + raw("v1")},
		{"user event nil payload", msgUserEvent, &userEventMsg{LTime: 1, Name: "e"},
			"\x03\x84" + raw("CC") + "\xc2" + raw("LTime") + "\x01" + raw("Name") + raw("e") + raw("Payload") + "\xc0"},
		{"push/pull", msgPushPull, &pushPullMsg{LTime: 2, StatusLTimes: map[string]uint64{"a": 1}, LeftMembers: []string{},
			EventLTime: 3, Events: make([]*eventSlot, eventRing), QueryLTime: 4},
			"\x02\x86" + raw("EventLTime") + "\x03" + raw("Events") + "\xdc\x02\x00" + strings.Repeat("\xc0", eventRing) +
				raw("LTime") + "\x02" + raw("LeftMembers") + "\x90" + raw("QueryLTime") + "\x04" +
				raw("StatusLTimes") + "\x81" + raw("a") + "\x01"},
		{"query", msgQuery, &queryMsg{LTime: 5, ID: 9, Addr: []byte{127, 0, 0, 1}, Port: 7946, SourceNode: "a",
			Filters: [][]byte{{0}}, Flags: queryFlagAck, RelayFactor: 0, Timeout: time.Second, Name: "q", Payload: []byte("p")},
			"\x04\x8b" + raw("Addr") + "\xa4\x7f\x00\x00\x01" + raw("Filters") + "\x91\xa1\x00" +
				raw("Flags") + "\x01" + raw("ID") + "\x09" + raw("LTime") + "\x05" + raw("Name") + raw("q") +
				raw("Payload") + raw("p") + raw("Port") + "\xcd\x1f\x0a" + raw("RelayFactor") + "\x00" +
				raw("SourceNode") + raw("a") + raw("Timeout") + "\xd2\x3b\x9a\xca\x00"},
		{"query response", msgQueryResponse, &queryResponseMsg{LTime: 5, ID: 9, From: "b", Flags: queryFlagAck},
			"\x05\x85" + raw("Flags") + "\x01" + raw("From") + raw("b") + raw("ID") + "\x09" + raw("LTime") + "\x05" +
				raw("Payload") + "\xc0"},
		{"relay header", msgRelay, &relayHeader{DestAddr: net.UDPAddr{IP: net.IPv4(10, 0, 0, 1).To4(), Port: 7946}, DestName: "c"},
			"\x09\x82" + raw("DestAddr") + "\x83" + raw("IP") + "\xa4\x0a\x00\x00\x01" + raw("Port") + "\xd1\x1f\x0a" +
				raw("Zone") + raw("") + raw("DestName") + raw("c")},
	}
	for _, tt := range tests {
		got, err := w.encode(tt.t, tt.v)
		if err != nil {
			t.Fatalf("encode(%s) error: %v", tt.name, err)
		}
		if string(got) != tt.want {
			t.Errorf("encode(%s) =\n%s; want\n%s", tt.name, hex.Dump(got), hex.Dump([]byte(tt.want)))
		}
	}
}

func TestEncodeTagsGolden(t *testing.T) {
	w := newWireCodec()
	got, err := w.encodeTags(map[string]string{"role": "web"})
	if err != nil {
		t.Fatal(err)
	}
	want := "\xff\x81" + raw("role") + raw("web")
	if string(got) != want {
		t.Errorf("encodeTags(role=web) = %x; want %x", got, want)
	}
}

func TestDecodeTags(t *testing.T) {
	w := newWireCodec()
	tests := []struct {
		meta string
		want map[string]string
	}{
		{"", map[string]string{"role": ""}},
		{"web", map[string]string{"role": "web"}},
		{"\xff\xc0", map[string]string{}},
		{"\xff\x80", map[string]string{}},
		{"\xff\x82" + raw("role") + raw("db") + raw("dc") + raw("east"), map[string]string{"role": "db", "dc": "east"}},
	}
	for _, tt := range tests {
		got, err := w.decodeTags([]byte(tt.meta))
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("decodeTags(%q) = %v, %v; want %v, nil", tt.meta, got, err, tt.want)
		}
	}
	for _, bad := range []string{"\xff", "\xff\x81", "\xff\x81\xa1a", "\xff\x91\xa1a", "\xff\xdf\xff\xff\xff\xff"} {
		if got, err := w.decodeTags([]byte(bad)); err == nil {
			t.Errorf("decodeTags(%q) = %v, nil; want an error", bad, got)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	w := newWireCodec()
	events := make([]*eventSlot, eventRing)
	events[3] = &eventSlot{LTime: 3, Events: []eventBody{{Name: "a", Payload: []byte("x")}, {Name: "b", Payload: []byte{}}}}
	events[511] = &eventSlot{LTime: 511, Events: []eventBody{{Name: "c", Payload: []byte("y")}}}
	tests := []struct {
		t   msgType
		in  any
		out any
	}{
		{msgLeave, &leaveMsg{LTime: 1 << 40, Node: "node-1", Prune: true}, &leaveMsg{}},
		{msgJoin, &joinMsg{LTime: 12, Node: "n"}, &joinMsg{}},
		{msgUserEvent, &userEventMsg{LTime: 5, Name: "deploy", Payload: []byte("v1\x00\xff"), CC: true}, &userEventMsg{}},
		{msgPushPull, &pushPullMsg{LTime: 9, StatusLTimes: map[string]uint64{"a": 1, "b": 8}, LeftMembers: []string{"b"},
			EventLTime: 512, Events: events, QueryLTime: 77}, &pushPullMsg{}},
		{msgQuery, &queryMsg{LTime: 3, ID: 1<<32 - 1, Addr: net.ParseIP("::1"), Port: 7946, SourceNode: "src",
			Filters: [][]byte{{0, 0x91, 0xa1, 'a'}}, Flags: 3, RelayFactor: 2, Timeout: 3 * time.Second,
			Name: "q", Payload: []byte("p")}, &queryMsg{}},
		{msgQueryResponse, &queryResponseMsg{LTime: 3, ID: 4, From: "x", Flags: 0, Payload: []byte("resp")}, &queryResponseMsg{}},
	}
	for _, tt := range tests {
		b, err := w.encode(tt.t, tt.in)
		if err != nil {
			t.Fatalf("encode(%s) error: %v", tt.t, err)
		}
		typ, body, err := splitType(b)
		if err != nil || typ != tt.t {
			t.Fatalf("splitType(encode(%s)) = %v, %v; want %v, nil", tt.t, typ, err, tt.t)
		}
		if err := w.decodeBody(typ, body, tt.out); err != nil {
			t.Fatalf("decodeBody(encode(%s)) error: %v", tt.t, err)
		}
		if !reflect.DeepEqual(tt.out, tt.in) {
			t.Errorf("decode(encode(%s)) = %+v; want %+v", tt.t, tt.out, tt.in)
		}
	}
}

func TestRelayRoundTrip(t *testing.T) {
	w := newWireCodec()
	inner, err := w.encode(msgQueryResponse, &queryResponseMsg{LTime: 1, ID: 2, From: "a", Flags: queryFlagAck})
	if err != nil {
		t.Fatal(err)
	}
	h := relayHeader{DestAddr: net.UDPAddr{IP: net.IPv4(127, 0, 0, 9).To4(), Port: 7946}, DestName: "dest"}
	b, err := w.encodeRelay(h, inner)
	if err != nil {
		t.Fatal(err)
	}
	got, err := w.decodeRelay(b[1:])
	if err != nil {
		t.Fatalf("decodeRelay(%x) error: %v", b, err)
	}
	if !bytes.Equal(got.Inner, inner) || got.Header.DestName != "dest" || got.Header.DestAddr.String() != "127.0.0.9:7946" {
		t.Errorf("decodeRelay(encodeRelay(%v)) = %+v; want header %v and inner %x", h, got, h, inner)
	}
	// A header alone, or a header with a bad port, is refused.
	hdr := b[1 : len(b)-len(inner)]
	if _, err := w.decodeRelay(hdr); err == nil {
		t.Errorf("decodeRelay(header only) = nil error; want an error")
	}
}

// garbage is a set of malformed inputs every decoder must refuse calmly.
var garbage = []string{
	"",
	"\x00",
	"\x80",                             // empty map: decodes, valid
	"\x81",                             // map missing its entry
	"\x81\xa5LTime",                    // key without value
	"\x83\xa5LTime\x01",                // too few entries
	"\x81\xa5LTime\xa3abc",             // wrong type for a uint
	"\x81\xa5LTime\xc3",                // bool for a uint
	"\x81\xa5LTime\xd0\xff",            // negative for a uint
	"\x81\xa5LTime\x81\xa1a\x01",       // map where a uint belongs
	"\xdf\xff\xff\xff\xff",             // map claiming 4G entries
	"\xdd\xff\xff\xff\xff",             // array claiming 4G entries
	"\x81\xa4Name\xdb\xff\xff\xff\xff", // raw claiming 4 GiB
	"\x81\xa4Name\xc6\x7f\xff\xff\xff", // bin32 claiming 2 GiB
	"\x81\xa1X" + strings.Repeat("\x91", 200) + "\xc0", // nested far too deep
	"\x81\xa1X\xc1",                     // reserved byte
	"\x81\xa1X\xc9\x00\x00\x00\x10\x01", // truncated ext
	"\x91\x01",                          // an array, not a map
	"\xc0",
	"\xff",
}

func TestDecodeGarbage(t *testing.T) {
	w := newWireCodec()
	targets := map[msgType]func() any{
		msgLeave:         func() any { return &leaveMsg{} },
		msgJoin:          func() any { return &joinMsg{} },
		msgPushPull:      func() any { return &pushPullMsg{} },
		msgUserEvent:     func() any { return &userEventMsg{} },
		msgQuery:         func() any { return &queryMsg{} },
		msgQueryResponse: func() any { return &queryResponseMsg{} },
	}
	for _, g := range garbage {
		for typ, mk := range targets {
			err := w.decodeBody(typ, []byte(g), mk())
			if g == "\x80" {
				if err != nil {
					t.Errorf("decodeBody(%s, %q) = %v; want nil (an empty map is valid)", typ, g, err)
				}
				continue
			}
			if err == nil {
				t.Errorf("decodeBody(%s, %q) = nil; want an error", typ, g)
			}
		}
		if _, err := w.decodeRelay([]byte(g)); err == nil {
			t.Errorf("decodeRelay(%q) = nil error; want an error", g)
		}
	}
	// Every truncation of a valid message fails to decode.
	full, err := w.encode(msgUserEvent, &userEventMsg{LTime: 1000, Name: "deploy", Payload: []byte("payload"), CC: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(full)-1; i++ {
		if err := w.decodeBody(msgUserEvent, full[1:i], &userEventMsg{}); err == nil {
			t.Errorf("decodeBody(user-event, %x) = nil; want an error for a truncated body", full[1:i])
		}
	}
}

func TestScanValueMatchesEncoder(t *testing.T) {
	w := newWireCodec()
	events := make([]*eventSlot, eventRing)
	events[1] = &eventSlot{LTime: 1, Events: []eventBody{{Name: strings.Repeat("n", 300), Payload: bytes.Repeat([]byte{0xff}, 70000)}}}
	for _, v := range []any{
		&pushPullMsg{LTime: 1 << 62, StatusLTimes: map[string]uint64{"a": 1 << 33}, Events: events},
		&queryMsg{Timeout: -1, Filters: [][]byte{{}, nil}},
		map[string]any{"f": 1.5, "g": float32(2), "i": int64(-1 << 40), "b": true, "n": nil},
	} {
		b, err := w.encode(msgPushPull, v)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := scanValue(b[1:], maxWireDepth); n != len(b)-1 || err != nil {
			t.Errorf("scanValue(encode(%T)) = %d, %v; want %d, nil", v, n, err, len(b)-1)
		}
	}
}

package gossip

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// msgType is the first byte of every Serf message.
type msgType uint8

// Serf's message type numbers. 6, 7 and 8 never travel as top-level
// messages: they prefix payloads inside queries and query responses.
const (
	msgLeave            msgType = 0
	msgJoin             msgType = 1
	msgPushPull         msgType = 2
	msgUserEvent        msgType = 3
	msgQuery            msgType = 4
	msgQueryResponse    msgType = 5
	msgConflictResponse msgType = 6
	msgKeyRequest       msgType = 7
	msgKeyResponse      msgType = 8
	msgRelay            msgType = 9
)

func (t msgType) String() string {
	switch t {
	case msgLeave:
		return "leave"
	case msgJoin:
		return "join"
	case msgPushPull:
		return "push-pull"
	case msgUserEvent:
		return "user-event"
	case msgQuery:
		return "query"
	case msgQueryResponse:
		return "query-response"
	case msgConflictResponse:
		return "conflict-response"
	case msgKeyRequest:
		return "key-request"
	case msgKeyResponse:
		return "key-response"
	case msgRelay:
		return "relay"
	}
	return fmt.Sprintf("unknown(%d)", uint8(t))
}

// Query flags. 1 and 2 are Serf's. 4 is serfd's own: the sender takes a
// response larger than a packet over memberlist's reliable stream. Stock
// Serf agents ignore flags they do not know and rebroadcast a query byte
// for byte, so the flag crosses them unchanged.
const (
	queryFlagAck            uint32 = 1
	queryFlagNoBroadcast    uint32 = 2
	queryFlagStreamResponse uint32 = 4
)

// eventRing is the size of Serf's user event and query dedup rings: stock
// Serf sends exactly this many event slots in push/pull and drops a user
// event or query more than this many Lamport times behind its clock. serfd
// keeps queries to it.
const eventRing = 512

// EventWindow is serfd's user event window: a user event up to this many
// Lamport times behind the event clock is still delivered (once), and
// push/pull carries the events of the whole window, so a node that was
// away while fewer than EventWindow later events were sent receives every
// event it missed. Stock Serf peers keep their own 512 (eventRing).
const EventWindow = 4096

// The message bodies below are encoded by go-msgpack as maps keyed by the Go
// field names (the encoder writes the keys sorted by name; decoders accept
// any order and skip unknown keys). The names and Go types ARE the wire
// format shared with Serf: do not rename, retype or tag them.

// leaveMsg is a leave intent (type 0).
type leaveMsg struct {
	LTime uint64
	Node  string
	Prune bool
}

// joinMsg is a join intent (type 1).
type joinMsg struct {
	LTime uint64
	Node  string
}

// pushPullMsg is the Serf state exchanged in memberlist push/pull (type 2).
type pushPullMsg struct {
	LTime        uint64
	StatusLTimes map[string]uint64
	LeftMembers  []string
	EventLTime   uint64
	Events       []*eventSlot // one slot per Lamport time of the window (Serf: eventRing, serfd: EventWindow), nil for empty ones
	QueryLTime   uint64
}

// eventSlot holds the user events seen at one Lamport time.
type eventSlot struct {
	LTime  uint64
	Events []eventBody
}

// eventBody is a user event as kept in the dedup ring.
type eventBody struct {
	Name    string
	Payload []byte
}

// userEventMsg is a user event (type 3).
type userEventMsg struct {
	LTime   uint64
	Name    string
	Payload []byte
	CC      bool
}

// queryMsg is a query (type 4).
type queryMsg struct {
	LTime       uint64
	ID          uint32
	Addr        []byte
	Port        uint16
	SourceNode  string
	Filters     [][]byte
	Flags       uint32
	RelayFactor uint8
	Timeout     time.Duration
	Name        string
	Payload     []byte
}

// queryResponseMsg is an ack or a response to a query (type 5).
type queryResponseMsg struct {
	LTime   uint64
	ID      uint32
	From    string
	Flags   uint32
	Payload []byte
}

// relayHeader precedes the relayed inner message in a relay (type 9).
type relayHeader struct {
	DestAddr net.UDPAddr
	DestName string
}

// relayMsg is a decoded relay: where to forward, and the untouched bytes to
// forward (an inner type byte followed by its msgpack body).
type relayMsg struct {
	Header relayHeader
	Inner  []byte
}

// wireCodec encodes and decodes Serf messages and tags. Build it with
// newWireCodec; it is safe for concurrent use.
type wireCodec struct {
	enc *codec.MsgpackHandle
	dec *codec.MsgpackHandle
}

func newWireCodec() *wireCodec {
	enc := &codec.MsgpackHandle{}
	// As Serf's encoder. WriteExt stays false: strings and []byte are
	// written as old-spec raw strings, never str8 or bin.
	enc.TimeNotBuiltin = true
	dec := &codec.MsgpackHandle{}
	dec.MaxDepth = maxWireDepth
	return &wireCodec{enc: enc, dec: dec}
}

// encode returns the type byte followed by the msgpack body of v.
func (w *wireCodec) encode(t msgType, v any) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte(byte(t))
	if err := codec.NewEncoder(&buf, w.enc).Encode(v); err != nil {
		return nil, fmt.Errorf("encode %s message: %w", t, err)
	}
	return buf.Bytes(), nil
}

// decodeMap decodes one msgpack map at the start of b into v and returns
// the number of bytes it took. Bytes after the map are left alone.
func (w *wireCodec) decodeMap(b []byte, v any) (int, error) {
	if len(b) == 0 {
		return 0, errors.New("empty body")
	}
	if !isMapHeader(b[0]) {
		return 0, fmt.Errorf("body starts with 0x%02x, not a msgpack map", b[0])
	}
	n, err := scanValue(b, maxWireDepth)
	if err != nil {
		return 0, err
	}
	if err := codec.NewDecoderBytes(b[:n], w.dec).Decode(v); err != nil {
		return 0, err
	}
	return n, nil
}

// decodeBody decodes the msgpack body of a message whose type byte has been
// checked by the caller.
func (w *wireCodec) decodeBody(t msgType, body []byte, v any) error {
	if _, err := w.decodeMap(body, v); err != nil {
		return fmt.Errorf("decode %s message: %w", t, err)
	}
	return nil
}

// splitType returns the type byte and the body of a message.
func splitType(buf []byte) (msgType, []byte, error) {
	if len(buf) == 0 {
		return 0, nil, errors.New("empty message")
	}
	return msgType(buf[0]), buf[1:], nil
}

// decodeRelay decodes a relay message body (after the type byte).
func (w *wireCodec) decodeRelay(body []byte) (relayMsg, error) {
	var r relayMsg
	n, err := w.decodeMap(body, &r.Header)
	if err != nil {
		return relayMsg{}, fmt.Errorf("decode relay header: %w", err)
	}
	if len(body) == n {
		return relayMsg{}, errors.New("decode relay: no inner message")
	}
	if ip := r.Header.DestAddr.IP; len(ip) != net.IPv4len && len(ip) != net.IPv6len {
		return relayMsg{}, fmt.Errorf("decode relay: destination IP has %d bytes", len(ip))
	}
	if p := r.Header.DestAddr.Port; p <= 0 || p > 65535 {
		return relayMsg{}, fmt.Errorf("decode relay: destination port %d out of range", p)
	}
	r.Inner = append([]byte(nil), body[n:]...)
	return r, nil
}

// encodeRelay builds a relay message carrying inner (type byte + body).
func (w *wireCodec) encodeRelay(h relayHeader, inner []byte) ([]byte, error) {
	buf, err := w.encode(msgRelay, &h)
	if err != nil {
		return nil, err
	}
	return append(buf, inner...), nil
}

// tagMagic marks msgpack-encoded tags in node meta; meta without it is a
// legacy role string.
const tagMagic = 0xFF

// encodeTags returns the node meta for tags: the magic byte and a msgpack map.
func (w *wireCodec) encodeTags(tags map[string]string) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte(tagMagic)
	if tags == nil {
		tags = map[string]string{}
	}
	if err := codec.NewEncoder(&buf, w.enc).Encode(tags); err != nil {
		return nil, fmt.Errorf("encode tags: %w", err)
	}
	return buf.Bytes(), nil
}

// decodeTags decodes node meta. Meta that is empty or lacks the magic byte
// is a legacy role and yields {"role": meta}, as Serf does.
func (w *wireCodec) decodeTags(meta []byte) (map[string]string, error) {
	if len(meta) == 0 || meta[0] != tagMagic {
		return map[string]string{"role": string(meta)}, nil
	}
	tags := map[string]string{}
	if len(meta) == 2 && meta[1] == 0xc0 { // a nil map: no tags
		return tags, nil
	}
	if _, err := w.decodeMap(meta[1:], &tags); err != nil {
		return map[string]string{}, fmt.Errorf("decode tags: %w", err)
	}
	return tags, nil
}

package ctl

import (
	"bufio"
	"bytes"
	"math"
	"net"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// serfHandle is the codec settings of Serf's agent and of serfd's server.
func serfHandle() *codec.MsgpackHandle {
	h := &codec.MsgpackHandle{WriteExt: true}
	h.RawToString = true
	return h
}

// wireSamples are values of every shape the RPC carries, with every field
// set (the codecs agree on nil and empty only up to nil-versus-empty).
func wireSamples() []any {
	return []any{
		&RPCRequestHeader{Command: RPCMembersFiltered, Seq: math.MaxUint64},
		&RPCResponseHeader{Seq: 300, Error: "Invalid authentication token"},
		&RPCHandshakeRequest{Version: 1},
		&RPCMembersResponse{Members: []RPCMember{{Name: "n1", Addr: net.ParseIP("127.0.0.1").To4(), Port: 7946,
			Tags: map[string]string{"role": "web", "é": "\x00\xff"}, Status: "alive", ProtocolMin: 1, ProtocolMax: 5,
			ProtocolCur: 2, DelegateMin: 2, DelegateMax: 5, DelegateCur: 4}, {Name: "n2", Addr: net.ParseIP("::1"),
			Port: 65535, Tags: map[string]string{"k": string(make([]byte, 300))}, Status: "failed"}}},
		&RPCEventRequest{Name: "deploy", Payload: bytes.Repeat([]byte{0xc1}, 70000), Coalesce: true},
		&RPCJoinRequest{Existing: []string{"10.0.0.1", "h:1"}, Replay: true},
		&RPCJoinResponse{Num: -3},
		&RPCTagsRequest{Tags: map[string]string{"a": "b"}, DeleteTags: []string{"c"}},
		&RPCKeyResponse{Messages: map[string]string{"n1": "no"}, Keys: map[string]int{"k1": 2, "k2": -70000},
			NumNodes: 1 << 40, NumErr: -1, NumResp: 128},
		&RPCCoordinateResponse{Coord: RPCCoordinate{Vec: []float64{0.25, -1e-9, math.MaxFloat64}, Error: 1.5,
			Adjustment: -0.001, Height: 1e-5}, Ok: true},
		&RPCQueryRequest{FilterNodes: []string{"n1"}, FilterTags: map[string]string{"role": "w.*"}, RequestAck: true,
			RelayFactor: 255, Timeout: 90 * time.Second, Name: "ping", Payload: []byte("x")},
		&RPCQueryRecord{Type: QueryResponse, From: "n1", Payload: []byte{}},
		&RPCLogRecord{Log: "2024/01/02 03:04:05 [INFO] agent: ok"},
		&map[string]map[string]string{"agent": {"name": "n1"}, "tags": {}},
	}
}

// TestMsgpackAgreesWithSerfsCodec: what the client writes, Serf's codec
// (and serfd's) reads as it was; what Serf's codec writes, the client
// reads as it was.
func TestMsgpackAgreesWithSerfsCodec(t *testing.T) {
	for _, v := range wireSamples() {
		typ := reflect.TypeOf(v).Elem()

		ours, err := mpEncode(nil, v)
		if err != nil {
			t.Fatalf("mpEncode(%T): %v", v, err)
		}
		back := reflect.New(typ)
		if err := codec.NewDecoderBytes(ours, serfHandle()).Decode(back.Interface()); err != nil {
			t.Fatalf("Serf's codec decoding our %T: %v", v, err)
		}
		if !reflect.DeepEqual(back.Interface(), v) {
			t.Errorf("our %T read by Serf's codec = %+v; want %+v", v, back.Interface(), v)
		}

		var theirs bytes.Buffer
		if err := codec.NewEncoder(&theirs, serfHandle()).Encode(v); err != nil {
			t.Fatal(err)
		}
		got := reflect.New(typ)
		d := mpDecoder{r: bufio.NewReader(&theirs)}
		if err := d.decode(got.Interface()); err != nil {
			t.Fatalf("decoding Serf's %T: %v", v, err)
		}
		if !reflect.DeepEqual(got.Interface(), v) {
			t.Errorf("Serf's %T read by us = %+v; want %+v", v, got.Interface(), v)
		}
	}
}

// A value a field cannot hold, a lying length, deep nesting and codes
// Serf's RPC never uses are errors, not panics or huge allocations;
// unknown fields are skipped.
func TestMsgpackDecodeRefuses(t *testing.T) {
	decode := func(b []byte, v any) error {
		d := mpDecoder{r: bufio.NewReader(bytes.NewReader(b))}
		return d.decode(v)
	}
	var h RPCResponseHeader
	for name, b := range map[string][]byte{
		"negative into uint":  {0x81, 0xa3, 'S', 'e', 'q', 0xff},
		"string into uint":    {0x81, 0xa3, 'S', 'e', 'q', 0xa1, 'x'},
		"str32 of 4 GiB":      {0x81, 0xa5, 'E', 'r', 'r', 'o', 'r', 0xdb, 0xff, 0xff, 0xff, 0xff},
		"truncated":           {0x82, 0xa3, 'S', 'e', 'q'},
		"ext":                 {0x81, 0xa3, 'S', 'e', 'q', 0xd4, 1, 1},
		"map32 with no items": {0xdf, 0xff, 0xff, 0xff, 0xff},
		"deep arrays":         append(bytes.Repeat([]byte{0x91}, 100), 0x01),
		"array as the header": {0x91, 0x01},
	} {
		if err := decode(b, &h); err == nil {
			t.Errorf("decode %s = nil error; want one", name)
		}
	}
	var v any
	if err := decode(append(bytes.Repeat([]byte{0x91}, 100), 0x01), &v); err == nil {
		t.Errorf("decode 100 nested arrays = %v, nil error; want too deep", v)
	}
	var k RPCKeyRequest
	if err := decode([]byte{0x82, 0xa5, 'O', 't', 'h', 'e', 'r', 0x92, 0x01, 0xc0, 0xa3, 'K', 'e', 'y', 0xa1, 'k'}, &k); err != nil || k.Key != "k" {
		t.Errorf("decode with an unknown field = %+v, %v; want Key k", k, err)
	}
	var big uint64
	if err := decode([]byte{0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, &big); err != nil || big != math.MaxUint64 {
		t.Errorf("decode uint64 max = %d, %v", big, err)
	}
	var i8 int8
	if err := decode([]byte{0xd1, 0xff, 0x00}, &i8); err == nil {
		t.Errorf("decode -256 into int8 = %d, nil error; want overflow", i8)
	}
}

// FuzzMsgpackDecode feeds arbitrary bytes to the decoder as an answer
// header, a members answer and an untyped value: it never panics, and a
// value it decoded untyped encodes and decodes to itself.
func FuzzMsgpackDecode(f *testing.F) {
	for _, v := range wireSamples() {
		b, err := mpEncode(nil, v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0xdb, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		decode := func(v any) error {
			d := mpDecoder{r: bufio.NewReader(bytes.NewReader(data))}
			return d.decode(v)
		}
		var h RPCResponseHeader
		_ = decode(&h)
		var ms RPCMembersResponse
		_ = decode(&ms)
		var v any
		if decode(&v) != nil {
			return
		}
		b, err := mpEncode(nil, v)
		if err != nil {
			t.Fatalf("re-encode %#v: %v", v, err)
		}
		var again any
		d := mpDecoder{r: bufio.NewReader(bytes.NewReader(b))}
		if err := d.decode(&again); err != nil {
			t.Fatalf("decode the re-encoding of %#v: %v", v, err)
		}
		if !reflect.DeepEqual(normal(v), normal(again)) {
			t.Fatalf("round trip of %#v gave %#v", v, again)
		}
	})
}

// normal makes decoded values comparable: every integer as int64 or
// uint64 by value, NaN as a string.
func normal(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			out[k] = normal(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normal(e)
		}
		return out
	case float64:
		if math.IsNaN(x) {
			return "NaN"
		}
	case float32:
		if math.IsNaN(float64(x)) {
			return "NaN"
		}
	}
	return v
}

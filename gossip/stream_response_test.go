package gossip

import (
	"bytes"
	"compress/lzw"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/serfd/serfd/internal/testutil"
)

// randomPayload returns n bytes that do not compress, the same for a seed.
func randomPayload(seed uint64, n int) []byte {
	b := make([]byte, n)
	rng := rand.New(rand.NewPCG(seed, seed+1))
	for i := range b {
		b[i] = byte(rng.UintN(256))
	}
	return b
}

// lan gives a node memberlist's LAN profile: its stream timeout (10s,
// the local profile's is 1s) leaves room for hundreds of KB to be
// compressed, checked and decompressed under -race on a busy machine.
func lan(cfg *Config) { cfg.Profile = "lan" }

// askOne sends query name from q to the node named to and returns the open
// query and the Query the responder delivered to its OnEvent.
func askOne(t *testing.T, q, to *node, name string) (*QueryResponse, *Query) {
	t.Helper()
	r, err := q.Query(name, nil, &QueryParams{FilterNodes: []string{to.LocalMember().Name}, Timeout: time.Minute})
	if err != nil {
		t.Fatalf("Query(%s) = %v", name, err)
	}
	t.Cleanup(r.Close)
	testutil.WaitFor(t, settle, to.LocalMember().Name+" to deliver query "+name, func() bool {
		return len(queryEvents(to, name)) == 1
	})
	return r, queryEvents(to, name)[0].Query
}

// A response larger than a packet reaches a serfd querier whole, over
// memberlist's reliable stream (or in place, when it answers itself); one
// over the stream limit is refused with ErrTooLarge, and a smaller one may
// follow it.
func TestQueryResponseByStream(t *testing.T) {
	a := newQueryNode(t, "a", 131, nil, lan)
	b := newQueryNode(t, "b", 132, nil, lan)
	joinAll(t, []*node{a, b})

	r, q := askOne(t, a, b, "big")
	if !q.byStream {
		t.Fatalf("query from a serfd node: byStream = false; want its flag %d set", queryFlagStreamResponse)
	}
	payload := randomPayload(1, 200<<10)
	if err := q.Respond(payload); err != nil {
		t.Fatalf("Respond(200 KiB) = %v; want nil", err)
	}
	resp := testutil.Recv(t, r.ResponseCh(), settle, "the 200 KiB response at a")
	if resp.From != "b" || !bytes.Equal(resp.Payload, payload) {
		t.Errorf("response = from %q, %d bytes (equal: %t); want from b, the 200 KiB sent", resp.From, len(resp.Payload),
			bytes.Equal(resp.Payload, payload))
	}
	if st := b.Stats().Traffic; st.ResponsesSent != 1 || st.ResponsesStreamed != 1 {
		t.Errorf("b's responses sent, streamed = %d, %d; want 1, 1", st.ResponsesSent, st.ResponsesStreamed)
	}

	// A node answering its own query takes the large answer in place.
	r, q = askOne(t, a, a, "self")
	if err := q.Respond(payload); err != nil {
		t.Fatalf("a's Respond(200 KiB) to itself = %v; want nil", err)
	}
	if resp := testutil.Recv(t, r.ResponseCh(), settle, "a's own 200 KiB response"); resp.From != "a" || !bytes.Equal(resp.Payload, payload) {
		t.Errorf("own response = from %q, %d bytes; want from a, the 200 KiB sent", resp.From, len(resp.Payload))
	}

	r, q = askOne(t, a, b, "huge")
	err := q.Respond(randomPayload(2, defaultQueryResponseStreamSizeLimit))
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), fmt.Sprintf("over the stream limit of %d bytes", defaultQueryResponseStreamSizeLimit)) {
		t.Errorf("Respond(1 MiB) = %v; want ErrTooLarge naming the stream limit", err)
	}
	if err := q.Respond([]byte("smaller")); err != nil {
		t.Errorf("Respond(smaller) after an oversized attempt = %v; want nil", err)
	}
	resp = testutil.Recv(t, r.ResponseCh(), settle, "the smaller response at a")
	if string(resp.Payload) != "smaller" {
		t.Errorf("response after the refused one = %q; want \"smaller\"", resp.Payload)
	}
	if st := b.Stats().Traffic; st.ResponsesFailed != 1 || st.ResponsesStreamed != 1 {
		t.Errorf("b's responses failed, streamed = %d, %d; want 1, 1", st.ResponsesFailed, st.ResponsesStreamed)
	}
}

// The querier decides: one whose stream limit is its packet limit does not
// mark its queries, and gets no answer larger than a packet (as a stock
// Serf agent); one with a smaller stream limit drops a larger answer on
// arrival, before memberlist reads it.
func TestQueryResponseStreamLimits(t *testing.T) {
	b := newQueryNode(t, "b", 133, nil, lan)
	plain := newQueryNode(t, "plain", 134, nil, func(cfg *Config) { lan(cfg); cfg.QueryResponseStreamSizeLimit = 1024 })
	small := newQueryNode(t, "small", 135, nil, func(cfg *Config) { lan(cfg); cfg.QueryResponseStreamSizeLimit = 64 << 10 })
	joinAll(t, []*node{b, plain, small})

	_, q := askOne(t, plain, b, "from-plain")
	if q.byStream {
		t.Errorf("query from a node whose stream limit is its packet limit: byStream = true; want false")
	}
	err := q.Respond(randomPayload(3, 2000))
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "over the packet limit of 1024 bytes") ||
		!strings.Contains(err.Error(), "the querier plain is not a serfd node") {
		t.Errorf("Respond(2000 bytes) to plain = %v; want ErrTooLarge naming the limit and why", err)
	}

	r, q := askOne(t, small, b, "from-small")
	before := small.badIn.total.Load()
	// small may close the stream before it is all written: an error or not.
	t.Logf("Respond(200 KiB) to small = %v", q.Respond(randomPayload(4, 200<<10)))
	testutil.WaitFor(t, settle, "small to refuse the 200 KiB answer", func() bool {
		return small.badIn.total.Load() > before
	})
	select {
	case resp := <-r.ResponseCh():
		t.Errorf("small delivered a %d-byte response over its 64 KiB stream limit", len(resp.Payload))
	default:
	}

	// An answer over the limit is dropped however it came.
	c := newBare(t, "bare")
	c.cfg.QueryResponseStreamSizeLimit = 4096
	c.handleMessage(encodeMsg(t, c, msgQueryResponse, &queryResponseMsg{LTime: 1, ID: 1, From: "x", Payload: make([]byte, 5000)}))
	if got := c.badIn.total.Load(); got != 1 {
		t.Errorf("a 5000-byte answer to a node with a 4096-byte stream limit: bad input = %d; want 1", got)
	}
}

// compressed returns memberlist's compressed stream message holding msg.
func compressed(t *testing.T, msg []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := lzw.NewWriter(&buf, lzw.LSB, lzwLitWidth)
	if _, err := w.Write(msg); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var out []byte
	if err := codec.NewEncoderBytes(&out, &codec.MsgpackHandle{}).Encode(&struct {
		Algo uint8
		Buf  []byte
	}{lzwAlgo, buf.Bytes()}); err != nil {
		t.Fatal(err)
	}
	return append([]byte{compressMessage}, out...)
}

// userStream returns memberlist's stream user message claiming claim
// bytes and carrying body.
func userStream(t *testing.T, claim int, body []byte) []byte {
	t.Helper()
	var header []byte
	if err := codec.NewEncoderBytes(&header, &codec.MsgpackHandle{}).Encode(map[string]any{"UserMsgLen": claim}); err != nil {
		t.Fatal(err)
	}
	return append(append([]byte{userMessage}, header...), body...)
}

// Stream messages that claim or decompress to more than the stream limit
// cost memberlist nothing: 40 streams claiming memberlist's 20 MB (which
// it would allocate up front) without sending it, or compressed bombs of
// 16 MB of zeros in a few KB, are closed while the node allocates less
// than 100 MB in all (memberlist alone allocates several hundred MB); a
// real join and a real stream answer still work.
func TestStreamMessagesAreBounded(t *testing.T) {
	a := newQueryNode(t, "a", 136, nil, lan)
	bomb := compressed(t, userStream(t, 16<<20, make([]byte, 16<<20)))
	if len(bomb) > 64<<10 {
		t.Fatalf("compressed bomb is %d bytes; want a few KB", len(bomb))
	}
	hostile := [][]byte{userStream(t, 20<<20, nil), bomb, userStream(t, -1, nil)}
	before := totalAllocated()
	streams := make([][]byte, 40)
	for i := range streams {
		streams[i] = hostile[i%len(hostile)]
	}
	sendHostileStreams(t, a.addr, streams)
	if grew := totalAllocated() - before; grew > 100<<20 {
		t.Errorf("allocated %d MB while refusing 40 hostile stream messages; want under 100 MB", grew>>20)
	} else {
		t.Logf("allocated %d MB while refusing 40 hostile stream messages", grew>>20)
	}
	if a.badIn.total.Load() < 40 {
		t.Errorf("hostile streams counted as bad input = %d; want 40", a.badIn.total.Load())
	}

	b := newQueryNode(t, "b", 137, nil, lan)
	joinAll(t, []*node{a, b})
	r, q := askOne(t, a, b, "big")
	payload := randomPayload(5, 100<<10)
	if err := q.Respond(payload); err != nil {
		t.Fatalf("Respond(100 KiB) after the hostile streams = %v", err)
	}
	if resp := testutil.Recv(t, r.ResponseCh(), settle, "the 100 KiB response at a"); !bytes.Equal(resp.Payload, payload) {
		t.Errorf("response after the hostile streams = %d bytes; want the 100 KiB sent", len(resp.Payload))
	}
}

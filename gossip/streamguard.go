package gossip

import (
	"bufio"
	"bytes"
	"compress/lzw"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// memberlist allocates what a push/pull header claims before it reads the
// data: a slice of up to 2^20 node states (about 116 MB) and a user state
// buffer of up to 20 MB, on a few bytes from anyone who can open a TCP
// connection to the gossip port. The stream guard reads a plaintext
// push/pull message whole before memberlist sees a byte of it: the header
// must claim at most maxStreamNodes nodes and maxStreamState bytes of user
// state, and the node states and user state it claims must really follow.
// So what memberlist then allocates is backed by bytes the peer sent, and
// a claim without them costs a buffer of what was sent. Inbound streams are
// inspected at most maxInboundStreams at a time (each holds its place until
// memberlist closes it); the others wait, within the stream's deadline.
//
// A user message on a stream (a Serf message sent with SendReliable: the
// only one serfd sends is a query response larger than a packet) is held
// to the Cluster's QueryResponseStreamSizeLimit, where memberlist would
// allocate up to 20 MB on its header's claim, and decompress up to 40 MB
// of a compressed one: a plaintext one is read whole ahead of memberlist,
// its claim within the limit and backed by the bytes that follow; a
// compressed one (memberlist compresses its streams by default) is
// decompressed ahead as far as its first byte and, when that starts a user
// message, whole: it must be as small, and memberlist is handed it
// decompressed. Encrypted streams pass as they are: only key holders can
// send them, and memberlist bounds them at 20 MB; a query response over
// the limit is then dropped on arrival (handleMessage).

const (
	// maxStreamNodes bounds the nodes a push/pull state may list: far
	// past the clusters memberlist gossips well (a few thousand nodes).
	maxStreamNodes = 1 << 14
	// maxStreamState bounds a push/pull message read ahead of memberlist,
	// node states and user state together (memberlist's own limit on the
	// user state is 20 MB).
	maxStreamState = 20 << 20
	// maxInboundStreams bounds the inbound streams inspected or being
	// handled by memberlist at once.
	maxInboundStreams = 8
	// streamSlack is room for the headers around what a stream carries.
	streamSlack = 64 << 10
	// memberlist's stream message types: a push/pull, a user message (a
	// Serf message), a compressed message.
	pushPullMessage = 6
	userMessage     = 8
	compressMessage = 9
	// lzwAlgo is memberlist's one compression algorithm; lzwLitWidth its
	// literal width.
	lzwAlgo     = 0
	lzwLitWidth = 8
)

// errStreamRefused wraps every refusal of a push/pull stream by the
// guard, errUserStreamRefused every refusal of a user message's stream.
var (
	errStreamRefused     = errors.New("push/pull stream refused")
	errUserStreamRefused = errors.New("stream message refused")
)

// guardedConn inspects its stream at the first Read (memberlist sets the
// deadline before it reads) and then replays what it read.
type guardedConn struct {
	net.Conn
	wait      func(deadline time.Time) (release func(), ok bool) // nil: outgoing, no limit
	onBad     func(error)
	userLimit int // bytes of a user message (QueryResponseStreamSizeLimit)
	once      sync.Once
	r         io.Reader
	err       error
	mu        sync.Mutex
	release   func()
}

func (g *guardedConn) Read(p []byte) (int, error) {
	g.once.Do(g.inspect)
	if g.err != nil {
		return 0, g.err
	}
	return g.r.Read(p)
}

func (g *guardedConn) Close() error {
	g.mu.Lock()
	release := g.release
	g.release = nil
	g.mu.Unlock()
	if release != nil {
		release()
	}
	return g.Conn.Close()
}

func (g *guardedConn) inspect() {
	if g.wait != nil {
		deadline := time.Now().Add(10 * time.Second)
		release, ok := g.wait(deadline)
		if !ok {
			g.err = fmt.Errorf("%w: %d inbound streams are being handled, the limit is %d", errStreamRefused,
				maxInboundStreams, maxInboundStreams)
			g.onBad(g.err)
			return
		}
		g.mu.Lock()
		g.release = release
		g.mu.Unlock()
	}
	g.r, g.err = readAhead(g.Conn, g.userLimit)
	if g.err != nil {
		g.onBad(g.err)
	}
}

// readAhead reads from conn what the guard checks (a plaintext push/pull
// message or user message whole, the start of a compressed message and,
// when it holds a user message, all of it), checking its claims, and
// returns a reader that yields everything read and then the rest of the
// stream. Other messages are returned untouched.
func readAhead(conn net.Conn, userLimit int) (io.Reader, error) {
	br := bufio.NewReader(conn)
	first, err := br.Peek(1)
	if err != nil {
		return br, nil // memberlist reports a read error itself
	}
	var seen bytes.Buffer
	switch first[0] {
	case pushPullMessage:
		err = checkPushPull(io.TeeReader(io.LimitReader(br, maxStreamState+streamSlack), &seen))
	case userMessage:
		err = checkUserMessage(io.TeeReader(io.LimitReader(br, int64(userLimit)+streamSlack), &seen), userLimit)
	case compressMessage:
		var plain []byte
		plain, err = checkCompressed(io.TeeReader(br, &seen), userLimit)
		if err == nil && plain != nil {
			return io.MultiReader(bytes.NewReader(plain), br), nil
		}
	default:
		return br, nil
	}
	if err != nil {
		return nil, err
	}
	return io.MultiReader(&seen, br), nil
}

// skipType reads the message type byte at the start of r.
func skipType(r io.Reader) error {
	_, err := io.ReadFull(r, make([]byte, 1))
	return err
}

// checkPushPull reads a push/pull message (type byte included) whole,
// checking its claims.
func checkPushPull(r io.Reader) error {
	if err := skipType(r); err != nil {
		return err
	}
	// memberlist's codec reads exactly one value and no further, as this
	// one does: its default handle keeps no read buffer.
	dec := codec.NewDecoder(r, &codec.MsgpackHandle{})
	var header struct {
		Nodes        int
		UserStateLen int
		Join         bool
	}
	if err := dec.Decode(&header); err != nil {
		return fmt.Errorf("%w: header: %v", errStreamRefused, err)
	}
	if header.Nodes < 0 || header.Nodes > maxStreamNodes {
		return fmt.Errorf("%w: it claims %d nodes, the limit is %d", errStreamRefused, header.Nodes, maxStreamNodes)
	}
	if header.UserStateLen < 0 || header.UserStateLen > maxStreamState {
		return fmt.Errorf("%w: it claims %d bytes of state, the limit is %d", errStreamRefused, header.UserStateLen, maxStreamState)
	}
	for i := range header.Nodes {
		var node struct {
			Name        string
			Addr        []byte
			Port        uint16
			Meta        []byte
			Incarnation uint32
			State       int
			Vsn         []uint8
		}
		if err := dec.Decode(&node); err != nil {
			return fmt.Errorf("%w: node state %d of the %d claimed: %v", errStreamRefused, i+1, header.Nodes, err)
		}
	}
	if n, err := io.CopyN(io.Discard, r, int64(header.UserStateLen)); err != nil {
		return fmt.Errorf("%w: %d bytes of the %d bytes of state claimed: %v", errStreamRefused, n, header.UserStateLen, err)
	}
	return nil
}

// checkUserMessage reads a user message (type byte included) whole: its
// header may claim at most limit bytes, and they must follow.
func checkUserMessage(r io.Reader, limit int) error {
	if err := skipType(r); err != nil {
		return err
	}
	var header struct {
		UserMsgLen int
	}
	if err := codec.NewDecoder(r, &codec.MsgpackHandle{}).Decode(&header); err != nil {
		return fmt.Errorf("%w: user message header: %v", errUserStreamRefused, err)
	}
	if header.UserMsgLen < 0 || header.UserMsgLen > limit {
		return fmt.Errorf("%w: a user message that claims %d bytes, the limit is %d", errUserStreamRefused, header.UserMsgLen, limit)
	}
	if n, err := io.CopyN(io.Discard, r, int64(header.UserMsgLen)); err != nil {
		return fmt.Errorf("%w: %d bytes of the %d bytes of a user message claimed: %v", errUserStreamRefused, n, header.UserMsgLen, err)
	}
	return nil
}

// checkCompressed reads a compressed message (type byte included) as far
// as the first byte it decompresses to. When that starts a user message,
// it reads and decompresses all of it, which must hold a user message
// within limit and little else, and returns the user message: memberlist
// is handed it as it was before compression (as if it had come so), and
// so does not decompress it again. The compressed bytes of such a message
// may not exceed twice limit (LZW grows nothing by more than half). For
// other messages it returns nil: memberlist gets the stream as it came.
func checkCompressed(r io.Reader, limit int) ([]byte, error) {
	if err := skipType(r); err != nil {
		return nil, err
	}
	size, err := compressedSize(r)
	if err != nil {
		return nil, err
	}
	lz := lzw.NewReader(io.LimitReader(r, size), lzw.LSB, lzwLitWidth)
	defer lz.Close()
	first := make([]byte, 1)
	if _, err := io.ReadFull(lz, first); err != nil || first[0] != userMessage {
		return nil, nil // not a user message: memberlist decides
	}
	if bound := 2*int64(limit) + streamSlack; size > bound {
		return nil, fmt.Errorf("%w: a compressed user message of %d bytes, the limit is %d", errUserStreamRefused, size, bound)
	}
	var plain bytes.Buffer
	plain.Write(first)
	if err := checkUserMessage(io.MultiReader(bytes.NewReader(first), io.TeeReader(lz, &plain)), limit); err != nil {
		return nil, err
	}
	// memberlist would decompress what follows too, and drop it.
	if n, err := io.CopyN(io.Discard, lz, streamSlack+1); n > streamSlack {
		return nil, fmt.Errorf("%w: a compressed user message decompresses to more than %d bytes past its claim", errUserStreamRefused, streamSlack)
	} else if err != io.EOF {
		return nil, fmt.Errorf("%w: a compressed user message: %v", errUserStreamRefused, err)
	}
	return plain.Bytes(), nil
}

// compressedSize reads the head of memberlist's compressed message, a
// msgpack map {Algo, Buf} with short string keys as memberlist writes it,
// up to the first byte of Buf, and returns Buf's length. An Algo before
// Buf must be LZW's; one after it is left to memberlist.
func compressedSize(r io.Reader) (int64, error) {
	b := make([]byte, 32)
	next := func(n int) ([]byte, error) {
		_, err := io.ReadFull(r, b[:n])
		return b[:n], err
	}
	malformed := func(what string) error {
		return fmt.Errorf("%w: compressed message: %s", errUserStreamRefused, what)
	}
	h, err := next(1)
	if err != nil {
		return 0, err
	}
	if h[0] < 0x80 || h[0] > 0x8f { // fixmap
		return 0, malformed("not a map of a few keys")
	}
	for range h[0] & 0x0f {
		k, err := next(1)
		if err != nil {
			return 0, err
		}
		if k[0] < 0xa0 || k[0] > 0xbf { // fixstr
			return 0, malformed("a key that is not a short string")
		}
		key, err := next(int(k[0] & 0x1f))
		if err != nil {
			return 0, err
		}
		switch string(key) {
		case "Algo":
			v, err := next(1)
			if err != nil {
				return 0, err
			}
			if v[0] != lzwAlgo {
				return 0, malformed(fmt.Sprintf("algorithm 0x%02x, not LZW", v[0]))
			}
		case "Buf":
			t, err := next(1)
			if err != nil {
				return 0, err
			}
			var width int
			switch t[0] {
			case 0xc4, 0xd9: // bin8, str8
				width = 1
			case 0xc5, 0xda: // bin16, str16
				width = 2
			case 0xc6, 0xdb: // bin32, str32
				width = 4
			default:
				if t[0] >= 0xa0 && t[0] <= 0xbf { // fixstr
					return int64(t[0] & 0x1f), nil
				}
				return 0, malformed("Buf is not a string of bytes")
			}
			n, err := next(width)
			if err != nil {
				return 0, err
			}
			var size int64
			for _, c := range n {
				size = size<<8 | int64(c)
			}
			return size, nil
		default:
			return 0, malformed(fmt.Sprintf("unknown key %q", key))
		}
	}
	return 0, malformed("no Buf")
}

package gossip

import (
	"bufio"
	"bytes"
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
// Encrypted streams pass as they are: only key holders can send them, and
// memberlist bounds them at 20 MB.

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
	// pushPullMessage is memberlist's stream message type of a push/pull.
	pushPullMessage = 6
)

// errStreamRefused wraps every refusal of the guard.
var errStreamRefused = errors.New("push/pull stream refused")

// guardedConn inspects its stream at the first Read (memberlist sets the
// deadline before it reads) and then replays what it read.
type guardedConn struct {
	net.Conn
	wait    func(deadline time.Time) (release func(), ok bool) // nil: outgoing, no limit
	onBad   func(error)
	once    sync.Once
	r       io.Reader
	err     error
	mu      sync.Mutex
	release func()
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
	g.r, g.err = readAhead(g.Conn)
	if g.err != nil {
		g.onBad(g.err)
	}
}

// readAhead reads a plaintext push/pull message from conn whole, checking
// its claims, and returns a reader that yields everything read and then
// the rest of the stream. Other messages are returned untouched.
func readAhead(conn net.Conn) (io.Reader, error) {
	br := bufio.NewReader(conn)
	first, err := br.Peek(1)
	if err != nil || first[0] != pushPullMessage {
		return br, nil // memberlist reports a read error itself
	}
	var seen bytes.Buffer
	tee := io.TeeReader(io.LimitReader(br, maxStreamState+64<<10), &seen)
	if _, err := tee.Read(make([]byte, 1)); err != nil {
		return nil, err
	}
	// memberlist's codec reads exactly one value and no further, as this
	// one does: its default handle keeps no read buffer.
	dec := codec.NewDecoder(tee, &codec.MsgpackHandle{})
	var header struct {
		Nodes        int
		UserStateLen int
		Join         bool
	}
	if err := dec.Decode(&header); err != nil {
		return nil, fmt.Errorf("%w: header: %v", errStreamRefused, err)
	}
	if header.Nodes < 0 || header.Nodes > maxStreamNodes {
		return nil, fmt.Errorf("%w: it claims %d nodes, the limit is %d", errStreamRefused, header.Nodes, maxStreamNodes)
	}
	if header.UserStateLen < 0 || header.UserStateLen > maxStreamState {
		return nil, fmt.Errorf("%w: it claims %d bytes of state, the limit is %d", errStreamRefused, header.UserStateLen, maxStreamState)
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
			return nil, fmt.Errorf("%w: node state %d of the %d claimed: %v", errStreamRefused, i+1, header.Nodes, err)
		}
	}
	if n, err := io.CopyN(io.Discard, tee, int64(header.UserStateLen)); err != nil {
		return nil, fmt.Errorf("%w: %d bytes of the %d bytes of state claimed: %v", errStreamRefused, n, header.UserStateLen, err)
	}
	return io.MultiReader(&seen, br), nil
}

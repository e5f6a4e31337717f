package sim

import (
	"bytes"
	"compress/lzw"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// packetQueue is how many packets wait for a node before more are dropped,
// as a full socket buffer drops datagrams.
const packetQueue = 4096

// Network is an in-memory network of Transports: packets are delivered
// through channels (each dropped with the configured loss probability, as
// UDP may lose them), streams are net.Pipe pairs (reliable, as TCP). A
// killed node neither sends nor receives anything, as a host whose cable
// was pulled. Safe for concurrent use.
type Network struct {
	mu    sync.RWMutex
	nodes map[string]*Transport
	loss  atomic.Uint64 // math.Float64bits of the drop probability

	rngMu sync.Mutex
	rng   *rand.Rand

	// A sample of the packets sent, compressed as memberlist compresses
	// them (see compressSample).
	sampleRaw, sampleCompressed atomic.Int64
	lzwWriters                  sync.Pool
}

// compressEvery: one packet in this many is also compressed the way
// memberlist compresses a packet when compression is on (LZW, LSB order,
// 8-bit literals, in a frame of about compressFrame bytes), to estimate
// what the nodes would send with it: the simulation runs them
// uncompressed (gossip.Config.Uncompressed).
const (
	compressEvery = 64
	compressFrame = 15
)

// compressSample adds packet b to the compression sample.
func (n *Network) compressSample(b []byte) {
	var buf bytes.Buffer
	w, _ := n.lzwWriters.Get().(*lzw.Writer)
	if w == nil {
		w = lzw.NewWriter(&buf, lzw.LSB, 8).(*lzw.Writer)
	} else {
		w.Reset(&buf, lzw.LSB, 8)
	}
	_, err := w.Write(b)
	if err == nil {
		err = w.Close()
	}
	n.lzwWriters.Put(w)
	if err != nil {
		return
	}
	n.sampleRaw.Add(int64(len(b)))
	n.sampleCompressed.Add(int64(buf.Len() + compressFrame))
}

// CompressionSample is the sampled packets' bytes so far, and what they
// compressed to.
func (n *Network) CompressionSample() (raw, compressed int64) {
	return n.sampleRaw.Load(), n.sampleCompressed.Load()
}

// NewNetwork is an empty network; seed makes packet loss repeatable.
func NewNetwork(seed uint64) *Network {
	return &Network{nodes: map[string]*Transport{}, rng: rand.New(rand.NewPCG(seed, seed^0x5eed))}
}

// SetLoss sets the probability, from 0 to 1, that a packet is dropped.
func (n *Network) SetLoss(p float64) {
	n.loss.Store(uint64(p * 1e9))
}

func (n *Network) dropped() bool {
	p := float64(n.loss.Load()) / 1e9
	if p <= 0 {
		return false
	}
	n.rngMu.Lock()
	defer n.rngMu.Unlock()
	return n.rng.Float64() < p
}

// AddrOf is the address of the i-th node (from 0): 10.0.x.y:7946.
func AddrOf(i int) string {
	return net.JoinHostPort(fmt.Sprintf("10.%d.%d.%d", i/(250*250)%250, i/250%250, i%250+1), "7946")
}

// NewTransport adds a node at addr ("ip:port") to the network.
func (n *Network) NewTransport(addr string) (*Transport, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	ip := net.ParseIP(host)
	p, err := strconv.Atoi(port)
	if ip == nil || err != nil {
		return nil, fmt.Errorf("address %q is not ip:port", addr)
	}
	t := &Transport{net: n, addr: addr, udp: &net.UDPAddr{IP: ip, Port: p},
		packets: make(chan *memberlist.Packet, packetQueue), streams: make(chan net.Conn), shut: make(chan struct{})}
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, dup := n.nodes[addr]; dup {
		return nil, fmt.Errorf("address %s is taken", addr)
	}
	n.nodes[addr] = t
	return t, nil
}

func (n *Network) lookup(addr string) *Transport {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.nodes[addr]
}

// Transport is one node's memberlist transport on a Network.
type Transport struct {
	net     *Network
	addr    string
	udp     *net.UDPAddr
	packets chan *memberlist.Packet
	streams chan net.Conn
	shut    chan struct{}
	once    sync.Once
	killed  atomic.Bool

	sent, received atomic.Int64 // bytes, packets and streams
	sentPackets    atomic.Int64 // packets sent
	packetBytes    atomic.Int64 // bytes of the packets sent
	overflowed     atomic.Int64 // packets dropped at this node's full queue
}

var _ memberlist.NodeAwareTransport = (*Transport)(nil)

// Kill cuts the node off: from now on nothing it sends arrives and nothing
// reaches it, but it keeps running (it does not leave).
func (t *Transport) Kill() { t.killed.Store(true) }

// Bytes is what the node sent and received so far.
func (t *Transport) Bytes() (sent, received int64) { return t.sent.Load(), t.received.Load() }

// Packets is how many packets the node sent so far (lost ones included),
// and their bytes.
func (t *Transport) Packets() (count, bytes int64) { return t.sentPackets.Load(), t.packetBytes.Load() }

// Overflowed is how many packets for this node were dropped because its
// queue was full (it did not read them fast enough).
func (t *Transport) Overflowed() int64 { return t.overflowed.Load() }

// FinalAdvertiseAddr implements memberlist.Transport.
func (t *Transport) FinalAdvertiseAddr(string, int) (net.IP, int, error) {
	return t.udp.IP, t.udp.Port, nil
}

// WriteTo implements memberlist.Transport: a packet that is lost (the
// network's loss, a killed end, a full queue) is lost silently, as UDP.
func (t *Transport) WriteTo(b []byte, addr string) (time.Time, error) {
	now := time.Now()
	t.sent.Add(int64(len(b)))
	t.packetBytes.Add(int64(len(b)))
	if t.sentPackets.Add(1)%compressEvery == 0 {
		t.net.compressSample(b)
	}
	dst := t.net.lookup(addr)
	if dst == nil || t.killed.Load() || dst.killed.Load() || t.net.dropped() {
		return now, nil
	}
	select {
	case <-dst.shut:
		return now, nil
	default:
	}
	p := &memberlist.Packet{Buf: append([]byte(nil), b...), From: t.udp, Timestamp: now}
	select {
	case dst.packets <- p:
		dst.received.Add(int64(len(b)))
	default: // the receiver's queue is full
		dst.overflowed.Add(1)
	}
	return now, nil
}

// WriteToAddress implements memberlist.NodeAwareTransport.
func (t *Transport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	return t.WriteTo(b, a.Addr)
}

// PacketCh implements memberlist.Transport.
func (t *Transport) PacketCh() <-chan *memberlist.Packet { return t.packets }

var errUnreachable = errors.New("connection refused")

// DialTimeout implements memberlist.Transport: a pipe to the node at addr.
func (t *Transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	dst := t.net.lookup(addr)
	if dst == nil || t.killed.Load() || dst.killed.Load() {
		return nil, errUnreachable
	}
	local, remote := net.Pipe()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case dst.streams <- &countedConn{Conn: remote, in: &dst.received, out: &dst.sent}:
		return &countedConn{Conn: local, in: &t.received, out: &t.sent}, nil
	case <-dst.shut:
	case <-t.shut:
	case <-timer.C:
	}
	local.Close()
	remote.Close()
	return nil, errUnreachable
}

// DialAddressTimeout implements memberlist.NodeAwareTransport.
func (t *Transport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return t.DialTimeout(a.Addr, timeout)
}

// StreamCh implements memberlist.Transport.
func (t *Transport) StreamCh() <-chan net.Conn { return t.streams }

// Shutdown implements memberlist.Transport.
func (t *Transport) Shutdown() error {
	t.once.Do(func() { close(t.shut) })
	return nil
}

// countedConn counts the bytes through one end of a stream.
type countedConn struct {
	net.Conn
	in, out *atomic.Int64
}

func (c *countedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.in.Add(int64(n))
	return n, err
}

func (c *countedConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.out.Add(int64(n))
	return n, err
}

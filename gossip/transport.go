package gossip

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// transport is memberlist's own TCP/UDP transport, with outgoing stream
// connections the Cluster can abort: Shutdown cancels the dials in progress
// and closes every outgoing stream still open, so no memberlist call (a
// join, a push/pull, a reliable send) outlives the Cluster by a TCP timeout.
// Safe for concurrent use, as memberlist requires.
type transport struct {
	*memberlist.NetTransport
	ctx    context.Context // cancelled by Shutdown
	cancel context.CancelFunc

	mu    sync.Mutex
	conns map[*abortableConn]struct{} // outgoing streams not yet closed

	// Inbound packets go to memberlist through packets, but for key
	// handover packets, which go to handover (handover.go).
	packets  chan *memberlist.Packet
	handover func(*memberlist.Packet)
	netDown  chan struct{} // closed once the NetTransport has shut down
	downOnce sync.Once
	sorted   chan struct{} // closed when sortPackets returns
	// dropIn, when set, drops each inbound packet it returns true for
	// (tests: a lossy network between two nodes on loopback).
	dropIn atomic.Pointer[func(*memberlist.Packet) bool]

	// Inbound streams go through the stream guard (streamguard.go).
	streams   chan net.Conn
	inbound   chan struct{} // a place per inbound stream, maxInboundStreams
	onBad     func(error)   // a stream the guard refused
	userLimit int           // bytes of a user message on a stream
}

var _ memberlist.NodeAwareTransport = (*transport)(nil)

// newTransport binds mc's address and port. A port of 0 takes a free one,
// retried as memberlist does (TCP and UDP must get the same number), and
// writes it back to mc.BindPort and mc.AdvertisePort. userLimit bounds a
// user message on a stream (Config.QueryResponseStreamSizeLimit). onBad
// is told of every stream the stream guard refuses, handover is given
// every key handover packet.
func newTransport(mc *memberlist.Config, userLimit int, onBad func(error), handover func(*memberlist.Packet)) (*transport, error) {
	nc := &memberlist.NetTransportConfig{BindAddrs: []string{mc.BindAddr}, BindPort: mc.BindPort, Logger: mc.Logger}
	tries := 1
	if mc.BindPort == 0 {
		tries = 10
	}
	var (
		nt  *memberlist.NetTransport
		err error
	)
	for range tries {
		nt, err = memberlist.NewNetTransport(nc)
		if err == nil || !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("bind gossip transport: %w", err)
	}
	if mc.BindPort == 0 {
		mc.BindPort = nt.GetAutoBindPort()
		mc.AdvertisePort = mc.BindPort
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &transport{NetTransport: nt, ctx: ctx, cancel: cancel, conns: make(map[*abortableConn]struct{}),
		packets: make(chan *memberlist.Packet), handover: handover, netDown: make(chan struct{}), sorted: make(chan struct{}), userLimit: userLimit,
		streams: make(chan net.Conn), inbound: make(chan struct{}, maxInboundStreams), onBad: onBad}
	go t.guardInbound()
	go t.sortPackets()
	return t, nil
}

// PacketCh implements memberlist.Transport: inbound packets but for key
// handover packets.
func (t *transport) PacketCh() <-chan *memberlist.Packet { return t.packets }

// sortPackets passes memberlist every inbound packet but the key handover
// packets, which go to handover. It reads until the NetTransport has shut
// down: the NetTransport's listeners block on handing over a packet, and
// its Shutdown waits for them, so it must be read from to the end. Once
// Shutdown began, memberlist may have stopped reading, and a packet is
// dropped.
func (t *transport) sortPackets() {
	defer close(t.sorted)
	for {
		select {
		case p := <-t.NetTransport.PacketCh():
			if drop := t.dropIn.Load(); drop != nil && (*drop)(p) {
				continue
			}
			if isHandover(p.Buf) {
				if t.handover != nil {
					t.handover(p)
				}
				continue
			}
			select {
			case t.packets <- p:
			case <-t.ctx.Done():
			}
		case <-t.netDown:
			return
		}
	}
}

// StreamCh implements memberlist.Transport: inbound streams, guarded.
func (t *transport) StreamCh() <-chan net.Conn { return t.streams }

// guardInbound hands memberlist every inbound stream wrapped in the
// stream guard, until Shutdown.
func (t *transport) guardInbound() {
	for {
		select {
		case conn := <-t.NetTransport.StreamCh():
			g := &guardedConn{Conn: conn, wait: t.waitInbound, onBad: t.onBad, userLimit: t.userLimit}
			select {
			case t.streams <- g:
			case <-t.ctx.Done():
				conn.Close()
				return
			}
		case <-t.ctx.Done():
			return
		}
	}
}

// waitInbound takes a place for an inbound stream, waiting until deadline.
func (t *transport) waitInbound(deadline time.Time) (func(), bool) {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case t.inbound <- struct{}{}:
		return func() { <-t.inbound }, true
	case <-timer.C:
		return nil, false
	case <-t.ctx.Done():
		return nil, false
	}
}

// DialTimeout implements memberlist.Transport.
func (t *transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// DialAddressTimeout implements memberlist.NodeAwareTransport: a TCP dial
// bounded by timeout that Shutdown cancels. The connection's deadline is
// set to timeout from now: memberlist sets its own for push/pull and
// pings, but none for a user message (SendReliable), whose write would
// otherwise wait as long as a peer that does not read lets it.
func (t *transport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(t.ctx, "tcp", a.Addr)
	if err != nil {
		return nil, err
	}
	if timeout > 0 {
		_ = conn.SetDeadline(time.Now().Add(timeout))
	}
	ac := &abortableConn{Conn: &guardedConn{Conn: conn, onBad: t.onBad, userLimit: t.userLimit}, t: t}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ctx.Err() != nil {
		conn.Close()
		return nil, errors.New("gossip transport is shut down")
	}
	t.conns[ac] = struct{}{}
	return ac, nil
}

// Shutdown aborts outgoing streams, then closes the listeners.
func (t *transport) Shutdown() error {
	t.mu.Lock()
	t.cancel()
	for ac := range t.conns {
		ac.Conn.Close()
	}
	clear(t.conns)
	t.mu.Unlock()
	err := t.NetTransport.Shutdown()
	t.downOnce.Do(func() { close(t.netDown) })
	<-t.sorted
	return err
}

// abortableConn is an outgoing stream that transport.Shutdown may close.
type abortableConn struct {
	net.Conn
	t *transport
}

func (ac *abortableConn) Close() error {
	ac.t.mu.Lock()
	delete(ac.t.conns, ac)
	ac.t.mu.Unlock()
	return ac.Conn.Close()
}

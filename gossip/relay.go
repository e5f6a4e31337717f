package gossip

import (
	"fmt"
	"math/rand/v2"
	"net"

	"github.com/hashicorp/memberlist"
)

// relayProtocolMin is the memberlist protocol a member must understand to be
// asked to relay (Serf protocol 5 introduced relays; Serf checks the
// member's memberlist ProtocolMax).
const relayProtocolMin = 5

// memberAddress is memberlist's address of a node.
func memberAddress(addr net.UDPAddr, name string) memberlist.Address {
	return memberlist.Address{Addr: addr.String(), Name: name}
}

// relay sends copies of inner (an ack or response) to up to factor random
// alive members other than this node, each of which forwards it to dest.
// It is best effort: failures are logged. Serf relays only when the cluster
// has at least factor+1 members.
func (c *Cluster) relay(factor uint8, dest net.UDPAddr, destName string, inner []byte) {
	if factor == 0 || c.ml == nil {
		return
	}
	if c.numMembers.Load() < int64(factor)+1 {
		return
	}
	candidates := c.randomAlivePeers(int(factor), func(m *Member) bool { return m.ProtocolMax >= relayProtocolMin })
	if len(candidates) == 0 {
		return
	}
	env, err := c.wire.encodeRelay(relayHeader{DestAddr: dest, DestName: destName}, inner)
	if err != nil {
		c.log.Warn("cannot relay query answer", "SERF_MEMBER", destName, "ERROR", err)
		return
	}
	if limit := c.cfg.QueryResponseSizeLimit; len(env) > limit {
		c.log.Warn("not relaying query answer over the response size limit", "SERF_MEMBER", destName,
			"BYTES", len(env), "LIMIT_BYTES", limit)
		return
	}
	for _, m := range candidates {
		to := net.UDPAddr{IP: m.Addr, Port: int(m.Port)}
		if err := c.ml.SendToAddress(memberAddress(to, m.Name), env); err != nil {
			c.log.Warn("cannot send query answer to relay", "SERF_MEMBER", m.Name,
				"SERF_MEMBER_ADDR", to.String(), "ERROR", err)
		}
	}
}

// forwardRelay forwards the inner message of a relay, byte for byte, to its
// destination. Only query answers are forwarded: that is all Serf relays,
// and it keeps this node from being used to bounce arbitrary messages.
func (c *Cluster) forwardRelay(r relayMsg) {
	var problem string
	switch {
	case len(r.Inner) == 0 || msgType(r.Inner[0]) != msgQueryResponse:
		problem = "a relay of a message that is not a query answer"
	case !c.memberAt(r.Header.DestName, r.Header.DestAddr):
		problem = fmt.Sprintf("a relay to %q at %s: no such member at that address", r.Header.DestName, r.Header.DestAddr.String())
	}
	if problem != "" {
		c.badIn.note(c.log, "dropped malformed or implausible messages from the network", msgIDKey, MsgBadInput,
			"MESSAGE_TYPE", "relay", "ERROR", problem)
		return
	}
	if err := c.sendTo(r.Header.DestAddr, r.Header.DestName, r.Inner); err != nil {
		c.log.Warn("cannot forward relayed query answer", "SERF_MEMBER", r.Header.DestName,
			"SERF_MEMBER_ADDR", r.Header.DestAddr.String(), "ERROR", err)
	}
}

// randomAlivePeers returns up to k alive members other than this node, in
// random order, that keep (nil: all).
func (c *Cluster) randomAlivePeers(k int, keep func(*Member) bool) []Member {
	members := c.Members()
	peers := members[:0]
	for i := range members {
		m := &members[i]
		if m.Status == StatusAlive && m.Name != c.cfg.NodeName && (keep == nil || keep(m)) {
			peers = append(peers, *m)
		}
	}
	rand.Shuffle(len(peers), func(i, j int) { peers[i], peers[j] = peers[j], peers[i] })
	return peers[:min(k, len(peers))]
}

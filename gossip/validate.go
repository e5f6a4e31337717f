package gossip

import (
	"errors"
	"fmt"
	"net"
	"unicode"
	"unicode/utf8"

	"github.com/hashicorp/memberlist"
)

// MaxNodeNameLen bounds a member name, ours or a peer's, in bytes (as
// Serf's optional name validation does).
const MaxNodeNameLen = 128

// CheckNodeName says what makes name unfit for a member, if anything:
// empty, longer than MaxNodeNameLen, not UTF-8, or holding a control
// character (which would reach terminals and logs).
func CheckNodeName(name string) error {
	switch {
	case name == "":
		return errors.New("node name is empty")
	case len(name) > MaxNodeNameLen:
		return fmt.Errorf("node name is %d bytes, over the limit of %d", len(name), MaxNodeNameLen)
	case !utf8.ValidString(name):
		return fmt.Errorf("node name %q is not valid UTF-8", name)
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return fmt.Errorf("node name %q holds a control character", name)
		}
	}
	return nil
}

// checkPeer says what makes an alive message about n unfit, if anything:
// a bad name, an address that is not an IP one can reach, port 0,
// protocol version ranges that make no sense or that this node cannot
// speak, or tags that do not decode. memberlist calls it (NotifyAlive)
// for every alive message, gossiped or in a push/pull state, before the
// member is added or changed; a refused one changes nothing.
func (c *Cluster) checkPeer(n *memberlist.Node) error {
	if err := CheckNodeName(n.Name); err != nil {
		return err
	}
	if ip := net.IP(n.Addr); len(n.Addr) != net.IPv4len && len(n.Addr) != net.IPv6len || ip.IsUnspecified() || ip.IsMulticast() {
		return fmt.Errorf("member %q: address %v is not one to reach a member at", n.Name, ip)
	}
	if n.Port == 0 {
		return fmt.Errorf("member %q: port 0", n.Name)
	}
	if !versionsOK(n.PMin, n.PMax, n.PCur, memberlist.ProtocolVersionMin, memberlist.ProtocolVersionMax) {
		return fmt.Errorf("member %q: memberlist protocol versions min %d max %d current %d do not overlap %d-%d",
			n.Name, n.PMin, n.PMax, n.PCur, memberlist.ProtocolVersionMin, memberlist.ProtocolVersionMax)
	}
	if !versionsOK(n.DMin, n.DMax, n.DCur, serfProtocolMin, serfProtocolMax) {
		return fmt.Errorf("member %q: Serf protocol versions min %d max %d current %d do not overlap %d-%d",
			n.Name, n.DMin, n.DMax, n.DCur, serfProtocolMin, serfProtocolMax)
	}
	if _, err := c.wire.decodeTags(n.Meta); err != nil {
		return fmt.Errorf("member %q: %w", n.Name, err)
	}
	return nil
}

// versionsOK reports whether a peer's range min..max holds cur and meets
// ours, lo..hi.
func versionsOK(min, max, cur, lo, hi uint8) bool {
	return min <= cur && cur <= max && max >= lo && min <= hi
}

// NotifyAlive is memberlist's AliveDelegate: an alive message about a
// member that checkPeer refuses is dropped, counted and logged
// (rate-limited).
func (d delegate) NotifyAlive(n *memberlist.Node) error {
	err := d.c.checkPeer(n)
	if err != nil {
		d.c.badIn.note(d.c.log, "dropped malformed or implausible messages from the network", msgIDKey, MsgBadInput,
			"MESSAGE_TYPE", "alive", "ERROR", err.Error())
	}
	return err
}

// maxRelayFactor bounds the relay factor a peer's query asks for: each
// answer goes to the querier directly and through that many other
// members (Serf's command line allows 0 to 5).
const maxRelayFactor = 5

// memberAt reports whether name is a member (not one that left) at addr:
// a query's answers and a relayed answer go only there, so that a forged
// query or relay cannot turn the cluster into a flood aimed at any address.
func (c *Cluster) memberAt(name string, addr net.UDPAddr) bool {
	c.memberMu.Lock()
	defer c.memberMu.Unlock()
	ms, ok := c.members[name]
	return ok && ms.m.Status != StatusLeft && ms.m.Addr.Equal(addr.IP) && int(ms.m.Port) == addr.Port
}

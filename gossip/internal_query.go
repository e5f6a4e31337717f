package gossip

import (
	"errors"
	"fmt"
	"net"

	"github.com/hashicorp/memberlist"
)

// Internal queries. They never reach OnEvent.
const (
	internalQueryPrefix = "_serf_"
	pingQuery           = internalQueryPrefix + "ping"
	conflictQuery       = internalQueryPrefix + "conflict"
	installKeyQuery     = internalQueryPrefix + "install-key"
	useKeyQuery         = internalQueryPrefix + "use-key"
	removeKeyQuery      = internalQueryPrefix + "remove-key"
	listKeysQuery       = internalQueryPrefix + "list-keys"
)

// conflictMember is the body of a _serf_conflict answer: the member the
// responder knows by the disputed name. Its field names and types are Serf's
// Member, which is the wire format.
type conflictMember struct {
	Name        string
	Addr        net.IP
	Port        uint16
	Tags        map[string]string
	Status      int
	ProtocolMin uint8
	ProtocolMax uint8
	ProtocolCur uint8
	DelegateMin uint8
	DelegateMax uint8
	DelegateCur uint8
}

// handleInternalQuery answers an internal query on receipt, never through
// the event queue, so a backlog of user events cannot delay it. Cheap
// answers are sent in place; key changes (which may write the keyring file)
// run on a goroutine owned by the Cluster.
func (c *Cluster) handleInternalQuery(q *Query, payload []byte) {
	switch q.name {
	case pingQuery:
		// The ack, already sent, is the whole answer.
	case conflictQuery:
		c.answerConflict(q, payload)
	case installKeyQuery, useKeyQuery, removeKeyQuery, listKeysQuery:
		payload := append([]byte(nil), payload...)
		if !c.spawn(func() { c.answerKeyQuery(q, payload) }) {
			c.log.Debug("not answering key query during shutdown", "SERF_QUERY_NAME", q.name)
		}
	default:
		c.log.Debug("ignoring unknown internal query", "SERF_QUERY_NAME", q.name, "SERF_MEMBER", q.source)
	}
}

// answerConflict tells the node asking about a disputed name which member
// this node knows by that name (or none). A query about ourselves is not
// answered: we are the party in dispute.
func (c *Cluster) answerConflict(q *Query, payload []byte) {
	name := string(payload)
	if name == c.cfg.NodeName {
		return
	}
	c.log.Debug("answering name conflict query", "SERF_MEMBER", name, "SOURCE", q.source)
	var out *conflictMember
	c.memberMu.Lock()
	if ms, ok := c.members[name]; ok {
		m := ms.snapshot()
		out = &conflictMember{
			Name: m.Name, Addr: m.Addr, Port: m.Port, Tags: m.Tags, Status: int(m.Status),
			ProtocolMin: m.ProtocolMin, ProtocolMax: m.ProtocolMax, ProtocolCur: m.ProtocolCur,
			DelegateMin: m.DelegateMin, DelegateMax: m.DelegateMax, DelegateCur: m.DelegateCur,
		}
	}
	c.memberMu.Unlock()
	buf, err := c.wire.encode(msgConflictResponse, out)
	if err == nil {
		err = q.Respond(buf)
	}
	if err != nil {
		c.log.Warn("cannot answer name conflict query", "SERF_MEMBER", name, "ERROR", err)
	}
}

// decodeConflictResponse decodes a _serf_conflict answer. A nil member (the
// responder knows no node by that name) yields the zero member.
func (w *wireCodec) decodeConflictResponse(payload []byte) (conflictMember, error) {
	var m conflictMember
	if len(payload) == 0 || msgType(payload[0]) != msgConflictResponse {
		return m, fmt.Errorf("decode conflict response: not a conflict response (%d bytes)", len(payload))
	}
	body := payload[1:]
	if len(body) > 0 && body[0] == 0xc0 {
		return m, nil
	}
	if err := w.decodeBody(msgConflictResponse, body, &m); err != nil {
		return conflictMember{}, err
	}
	return m, nil
}

var _ memberlist.ConflictDelegate = delegate{}

// NotifyConflict is memberlist's report that two nodes claim one name. It
// runs under memberlist's node lock: it only logs and, when the name is
// ours, starts the resolution on a goroutine of the Cluster.
func (d delegate) NotifyConflict(existing, other *memberlist.Node) {
	c := d.c
	if existing.Name != c.cfg.NodeName {
		c.log.Warn("name conflict between two other nodes", "SERF_MEMBER", existing.Name,
			"SERF_MEMBER_ADDR", memberAddr(existing), "CONFLICT_ADDR", memberAddr(other))
		return
	}
	c.log.Error("another node claims this node's name; names must be unique", "SERF_MEMBER", existing.Name,
		"CONFLICT_ADDR", memberAddr(other))
	if !c.qs.resolving.CompareAndSwap(false, true) {
		return
	}
	if !c.spawn(c.resolveConflict) {
		c.qs.resolving.Store(false)
	}
}

func memberAddr(n *memberlist.Node) string {
	return (&net.UDPAddr{IP: n.Addr, Port: int(n.Port)}).String()
}

// resolveConflict asks the cluster which address it knows for our name. If
// fewer than a majority of the answers name our address, this node is the
// impostor: it shuts itself down and reports why through Config.OnShutdown.
func (c *Cluster) resolveConflict() {
	defer c.qs.resolving.Store(false)
	local := c.ml.LocalNode()
	r, err := c.query(conflictQuery, []byte(c.cfg.NodeName), nil)
	if err != nil {
		c.log.Error("cannot start name conflict resolution", "ERROR", err)
		return
	}
	var responses, matching int
	for resp := range r.ResponseCh() {
		m, err := c.wire.decodeConflictResponse(resp.Payload)
		if err != nil {
			c.log.Warn("ignoring malformed name conflict answer", "SERF_MEMBER", resp.From, "ERROR", err)
			continue
		}
		responses++
		if m.Addr.Equal(local.Addr) && m.Port == local.Port {
			matching++
		}
	}
	c.qs.mu.Lock()
	stopping := c.qs.closed
	c.qs.mu.Unlock()
	if stopping {
		return
	}
	if majority := responses/2 + 1; matching >= majority {
		c.log.Info("won name conflict resolution", "MATCHING", matching, "RESPONSES", responses)
		return
	}
	reason := fmt.Errorf("%w: %q (%d of %d answers name this node's address %s)",
		ErrNameConflict, c.cfg.NodeName, matching, responses, memberAddr(local))
	c.log.Error("lost name conflict resolution; shutting down", "MATCHING", matching, "RESPONSES", responses)
	c.shutdownSelf(reason)
}

// ErrNameConflict is in the reason given to Config.OnShutdown when this
// node lost a name conflict: another node holds its name.
var ErrNameConflict = errors.New("node name is taken by another node")

// shutdownSelf shuts the Cluster down from a goroutine of its own (never
// from a memberlist callback, since Shutdown waits for memberlist), then
// calls Config.OnShutdown with reason. Shutdown waits for that goroutine.
func (c *Cluster) shutdownSelf(reason error) {
	c.qs.mu.Lock()
	defer c.qs.mu.Unlock()
	if c.qs.closed || c.qs.selfDone != nil {
		return
	}
	done := make(chan struct{})
	c.qs.selfDone = done
	go func() {
		defer close(done)
		if err := c.shutdown(); err != nil {
			c.log.Warn("shutdown after losing a name conflict", "ERROR", err)
		}
		if c.cfg.OnShutdown != nil {
			c.qs.inOnShutdown.Store(true)
			c.cfg.OnShutdown(reason)
		}
	}()
}

// waitSelfShutdown waits for a shutdown the Cluster started itself, unless
// called from OnShutdown (which may call Shutdown).
func (c *Cluster) waitSelfShutdown() {
	c.qs.mu.Lock()
	done := c.qs.selfDone
	c.qs.mu.Unlock()
	if done == nil || c.qs.inOnShutdown.Load() {
		return
	}
	<-done
}

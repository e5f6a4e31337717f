package gossip

import (
	"fmt"
	"maps"
	"net"
	"time"

	"github.com/hashicorp/memberlist"
)

// memberState is what the Cluster knows of one member. Guarded by memberMu.
type memberState struct {
	m           Member // Tags is owned here; hand out snapshots only
	statusLTime uint64 // Lamport time of the last intent applied
	leaveTime   time.Time
	prune       bool // erase as soon as the member is left (force-leave -prune)
}

// snapshot returns a copy sharing nothing with the Cluster.
func (ms *memberState) snapshot() Member {
	m := ms.m
	m.Addr = append(net.IP(nil), ms.m.Addr...)
	m.Tags = maps.Clone(ms.m.Tags)
	if m.Tags == nil {
		m.Tags = map[string]string{}
	}
	return m
}

func (ms *memberState) addr() string { return ms.m.HostPort() }

// describe is the message of a record about ms as an event of type t:
// "member web-2 failed (10.0.0.2:7946)".
func (ms *memberState) describe(t EventType) string { return t.Describe([]Member{ms.m}) }

// bufferedIntent is the latest intent about a node not yet known.
type bufferedIntent struct {
	leave bool
	ltime uint64
	seen  time.Time
}

// setFromNode copies memberlist's view of a node into ms.
func (c *Cluster) setFromNode(ms *memberState, n *memberlist.Node) {
	tags, err := c.wire.decodeTags(n.Meta)
	if err != nil {
		c.log.Warn("cannot decode member tags", "SERF_MEMBER", n.Name, "ERROR", err)
	}
	ms.m.Addr = append(net.IP(nil), n.Addr...)
	ms.m.Port = n.Port
	ms.m.Tags = tags
	ms.m.ProtocolMin, ms.m.ProtocolMax, ms.m.ProtocolCur = n.PMin, n.PMax, n.PCur
	ms.m.DelegateMin, ms.m.DelegateMax, ms.m.DelegateCur = n.DMin, n.DMax, n.DCur
}

// nodeJoined handles memberlist's NotifyJoin: a new node, or a known one
// coming back. A buffered intent about a new node is applied here.
func (c *Cluster) nodeJoined(n *memberlist.Node) {
	c.memberMu.Lock()
	defer c.memberMu.Unlock()
	ms, ok := c.members[n.Name]
	if !ok {
		ms = &memberState{m: Member{Name: n.Name, Status: StatusAlive}}
		if in, ok := c.intents[n.Name]; ok {
			ms.statusLTime = in.ltime
			if in.leave {
				ms.m.Status = StatusLeaving
			}
		}
		c.members[n.Name] = ms
		c.numMembers.Store(int64(len(c.members)))
	} else {
		if ms.m.Status == StatusFailed && time.Since(ms.leaveTime) < flapTimeout {
			c.flaps.Add(1)
		}
		ms.m.Status = StatusAlive
		ms.leaveTime = time.Time{}
		ms.prune = false
	}
	c.setFromNode(ms, n)
	c.log.Debug(ms.describe(EventMemberJoin), "SERF_MEMBER", n.Name, "SERF_MEMBER_ADDR", ms.addr())
	c.emit(Event{Type: EventMemberJoin, Members: []Member{ms.snapshot()}})
}

// nodeLeft handles memberlist's NotifyLeave: a leaving member has left, an
// alive one has failed.
func (c *Cluster) nodeLeft(n *memberlist.Node) {
	c.memberMu.Lock()
	defer c.memberMu.Unlock()
	ms, ok := c.members[n.Name]
	if !ok {
		return
	}
	var typ EventType
	switch ms.m.Status {
	case StatusLeaving:
		ms.m.Status, typ = StatusLeft, EventMemberLeave
		c.log.Debug(ms.describe(EventMemberLeave), "SERF_MEMBER", n.Name, "SERF_MEMBER_ADDR", ms.addr())
	case StatusAlive:
		ms.m.Status, typ = StatusFailed, EventMemberFailed
		c.log.Debug(ms.describe(EventMemberFailed), "SERF_MEMBER", n.Name, "SERF_MEMBER_ADDR", ms.addr())
	default:
		c.log.Warn(fmt.Sprintf("member %s reported gone while %s, not alive", n.Name, ms.m.Status), "SERF_MEMBER", n.Name,
			"SERF_MEMBER_STATUS", ms.m.Status.String())
		return
	}
	ms.leaveTime = time.Now()
	c.emit(Event{Type: typ, Members: []Member{ms.snapshot()}})
	if ms.prune && ms.m.Status == StatusLeft {
		c.eraseLocked(ms)
	}
}

// nodeUpdated handles memberlist's NotifyUpdate (new tags or address).
func (c *Cluster) nodeUpdated(n *memberlist.Node) {
	c.memberMu.Lock()
	defer c.memberMu.Unlock()
	ms, ok := c.members[n.Name]
	if !ok {
		return
	}
	c.setFromNode(ms, n)
	c.log.Debug(ms.describe(EventMemberUpdate), "SERF_MEMBER", n.Name, "SERF_MEMBER_ADDR", ms.addr())
	c.emit(Event{Type: EventMemberUpdate, Members: []Member{ms.snapshot()}})
}

// maxBufferedIntents bounds the intents kept about nodes not yet known (a
// join storm of that many nodes at once is far past what memberlist
// handles; forged intents with made-up names are what fills it).
const maxBufferedIntents = 8192

// bufferIntentLocked keeps the latest intent about an unknown node and
// reports whether it was new (and so worth rebroadcasting). An intent
// about a name no member can have, or one more than maxBufferedIntents, is
// dropped and counted as bad input.
func (c *Cluster) bufferIntentLocked(node string, leave bool, ltime uint64) bool {
	in, ok := c.intents[node]
	if ok && ltime <= in.ltime {
		return false
	}
	if !ok {
		var err error
		if err = CheckNodeName(node); err == nil && len(c.intents) >= maxBufferedIntents {
			err = fmt.Errorf("intent about unknown node %q: %d intents about unknown nodes are kept, the limit is %d",
				node, len(c.intents), maxBufferedIntents)
		}
		if err != nil {
			c.badIn.note(c.log, "dropped malformed or implausible messages from the network", msgIDKey, MsgBadInput,
				"MESSAGE_TYPE", "intent", "ERROR", err.Error())
			return false
		}
	}
	c.intents[node] = bufferedIntent{leave: leave, ltime: ltime, seen: time.Now()}
	return true
}

// handleJoinIntent applies a join intent and reports whether it was new.
func (c *Cluster) handleJoinIntent(m joinMsg) bool {
	c.clock.Witness(m.LTime)
	c.memberMu.Lock()
	defer c.memberMu.Unlock()
	ms, ok := c.members[m.Node]
	if !ok {
		return c.bufferIntentLocked(m.Node, false, m.LTime)
	}
	if m.LTime <= ms.statusLTime {
		return false
	}
	ms.statusLTime = m.LTime
	if ms.m.Status == StatusLeaving { // the leave was older than this join
		ms.m.Status = StatusAlive
		ms.prune = false
	}
	return true
}

// handleLeaveIntent applies a leave intent and reports whether it was new.
func (c *Cluster) handleLeaveIntent(m leaveMsg) bool {
	c.clock.Witness(m.LTime)
	alive := c.clusterState() == stateAlive
	c.memberMu.Lock()
	defer c.memberMu.Unlock()
	ms, ok := c.members[m.Node]
	if !ok {
		return c.bufferIntentLocked(m.Node, true, m.LTime)
	}
	if m.LTime <= ms.statusLTime {
		return false
	}
	if m.Node == c.cfg.NodeName && alive {
		c.log.Debug("refuting a leave intent about this node", "SERF_LTIME", m.LTime)
		c.broadcastJoinLocked(ms)
		return false
	}
	// Record the time even when the status does not change, so a second
	// copy of this intent is not rebroadcast forever.
	ms.statusLTime = m.LTime
	switch ms.m.Status {
	case StatusAlive:
		ms.m.Status = StatusLeaving
	case StatusFailed:
		ms.m.Status = StatusLeft
		c.log.Info(fmt.Sprintf("member %s left, forced out while failed (%s)", ms.m.Name, ms.addr()),
			"SERF_MEMBER", ms.m.Name, "SERF_MEMBER_ADDR", ms.addr())
		c.emit(Event{Type: EventMemberLeave, Members: []Member{ms.snapshot()}})
	case StatusLeaving, StatusLeft:
	default:
		return false
	}
	if m.Prune {
		if ms.m.Status == StatusLeaving {
			ms.prune = true // erased once memberlist sees it gone
		} else {
			c.eraseLocked(ms)
		}
	}
	return true
}

// broadcastJoinLocked applies a fresh join intent for the local node and
// queues it for gossip.
func (c *Cluster) broadcastJoinLocked(self *memberState) {
	lt := c.clock.Claim()
	if lt > self.statusLTime {
		self.statusLTime = lt
		if self.m.Status == StatusLeaving {
			self.m.Status = StatusAlive
		}
	}
	c.queueIntent(msgJoin, &joinMsg{LTime: lt, Node: c.cfg.NodeName}, nil)
}

// broadcastJoin announces the local node after a successful join.
func (c *Cluster) broadcastJoin() {
	c.memberMu.Lock()
	defer c.memberMu.Unlock()
	if self, ok := c.members[c.cfg.NodeName]; ok {
		c.broadcastJoinLocked(self)
	}
}

// queueIntent encodes an intent and queues it; done, if not nil, is closed
// once memberlist has finished sending it.
func (c *Cluster) queueIntent(t msgType, v any, done chan struct{}) bool {
	raw, err := c.wire.encode(t, v)
	if err != nil {
		c.log.Error("cannot queue intent", "ERROR", err)
		return false
	}
	c.intentQ.QueueBroadcast(&broadcast{msg: raw, done: done})
	return true
}

// eraseLocked forgets a member and emits member-reap.
func (c *Cluster) eraseLocked(ms *memberState) {
	delete(c.members, ms.m.Name)
	c.forgetCoordinate(ms.m.Name)
	c.numMembers.Store(int64(len(c.members)))
	c.log.Debug(ms.describe(EventMemberReap), "SERF_MEMBER", ms.m.Name, "SERF_MEMBER_ADDR", ms.addr())
	c.emit(Event{Type: EventMemberReap, Members: []Member{ms.snapshot()}})
}

// reap forgets members failed or left for longer than their timeout, and
// intents about unknown nodes older than the intent timeout.
func (c *Cluster) reap(now time.Time) {
	c.memberMu.Lock()
	defer c.memberMu.Unlock()
	for _, ms := range c.members {
		switch {
		case ms.m.Status == StatusFailed && now.Sub(ms.leaveTime) > c.timing.reconnectTimeout,
			ms.m.Status == StatusLeft && now.Sub(ms.leaveTime) > c.timing.tombstoneTimeout:
			c.eraseLocked(ms)
		}
	}
	for name, in := range c.intents {
		if now.Sub(in.seen) > c.timing.intentTimeout {
			delete(c.intents, name)
		}
	}
}

// hasOtherAliveMembers reports whether any member but us is alive.
func (c *Cluster) hasOtherAliveMembers() bool {
	c.memberMu.Lock()
	defer c.memberMu.Unlock()
	for name, ms := range c.members {
		if name != c.cfg.NodeName && ms.m.Status == StatusAlive {
			return true
		}
	}
	return false
}

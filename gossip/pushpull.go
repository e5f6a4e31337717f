package gossip

import "fmt"

// localState encodes this node's push/pull state: clocks, every member's
// status time, the left members and the user events of the whole event
// window (EventWindow slots; stock Serf sends its 512-slot ring).
func (c *Cluster) localState() []byte {
	c.memberMu.Lock()
	defer c.memberMu.Unlock()
	c.eventMu.Lock()
	defer c.eventMu.Unlock()

	pp := pushPullMsg{
		LTime:        c.clock.Time(),
		StatusLTimes: make(map[string]uint64, len(c.members)),
		LeftMembers:  []string{},
		EventLTime:   c.eventClock.Time(),
		Events:       c.events[:],
		QueryLTime:   c.queryClock.Time(),
	}
	for name, ms := range c.members {
		pp.StatusLTimes[name] = ms.statusLTime
		if ms.m.Status == StatusLeft {
			pp.LeftMembers = append(pp.LeftMembers, name)
		}
	}
	raw, err := c.wire.encode(msgPushPull, &pp)
	if err != nil {
		c.log.Error("cannot encode push/pull state", "ERROR", err)
		return nil
	}
	return raw
}

// mergeRemoteState merges a peer's push/pull state.
// join is true when the exchange is part of a join we started.
func (c *Cluster) mergeRemoteState(buf []byte, join bool) {
	t, body, err := splitType(buf)
	if err == nil && t != msgPushPull {
		err = fmt.Errorf("message type %s, not push/pull", t)
	}
	var pp pushPullMsg
	if err == nil {
		err = c.wire.decodeBody(t, body, &pp)
	}
	if err == nil {
		err = c.checkRemoteState(&pp)
	}
	if err != nil {
		c.badIn.note(c.log, "dropped malformed or implausible push/pull states", msgIDKey, MsgBadInput,
			"BYTES", len(buf), "ERROR", err.Error())
		return
	}

	// No message at the peer's current times has been sent yet.
	if pp.LTime > 0 {
		c.clock.Witness(pp.LTime - 1)
	}
	if pp.EventLTime > 0 {
		c.eventClock.Witness(pp.EventLTime - 1)
	}
	if pp.QueryLTime > 0 {
		c.queryClock.Witness(pp.QueryLTime - 1)
	}

	// Left members first. Their leave time is unknown but must follow their
	// last status time.
	left := make(map[string]bool, len(pp.LeftMembers))
	for _, name := range pp.LeftMembers {
		left[name] = true
		if c.cameBackSince(name, pp.StatusLTimes[name]) {
			continue
		}
		c.handleLeaveIntent(leaveMsg{LTime: pp.StatusLTimes[name] + 1, Node: name})
	}
	for name, lt := range pp.StatusLTimes {
		if !left[name] {
			c.handleJoinIntent(joinMsg{LTime: lt, Node: name})
		}
	}

	if join && (c.ignoreOld.Load() || c.rejoinIgnoreOld.Load()) {
		c.eventMu.Lock()
		if pp.EventLTime > c.eventMinTime {
			c.eventMinTime = pp.EventLTime
		}
		c.eventMu.Unlock()
	}

	for _, slot := range pp.Events {
		if slot == nil {
			continue
		}
		for _, e := range slot.Events {
			m := userEventMsg{LTime: slot.LTime, Name: e.Name, Payload: e.Payload}
			if c.receiveUserEvent(m, fromPushPull) {
				c.relayMissed(m)
			}
		}
	}
}

// checkRemoteState says what makes a decoded push/pull state unfit to
// merge, if anything: every Lamport time in it must pass its clock's check,
// so that one forged state cannot move a clock anywhere (it is dropped
// whole, changing nothing).
func (c *Cluster) checkRemoteState(pp *pushPullMsg) error {
	if err := c.clock.check(pp.LTime); err != nil {
		return fmt.Errorf("member clock: %w", err)
	}
	if err := c.eventClock.check(pp.EventLTime); err != nil {
		return fmt.Errorf("event clock: %w", err)
	}
	if err := c.queryClock.check(pp.QueryLTime); err != nil {
		return fmt.Errorf("query clock: %w", err)
	}
	for name, lt := range pp.StatusLTimes {
		if err := c.clock.check(lt); err != nil { // so lt+1 (a leave after it) cannot wrap
			return fmt.Errorf("status time of member %q: %w", name, err)
		}
	}
	for _, slot := range pp.Events {
		if slot == nil {
			continue
		}
		if err := c.eventClock.check(slot.LTime); err != nil {
			return fmt.Errorf("user event: %w", err)
		}
	}
	return nil
}

// relayMissed gossips a user event this node had missed and learned from a
// peer's push/pull state (it was away or cut off when the event spread), so
// that the other nodes that missed it get it within gossip rounds rather
// than at their own next push/pull. Only while the event queue is under
// half the backlog, so that a node catching up on many events (back from a
// long absence) leaves the rest to push/pull, which carries them anyway,
// and keeps room for its own events.
func (c *Cluster) relayMissed(m userEventMsg) {
	if c.eventQ.NumQueued() >= c.cfg.Backlog/2 {
		return
	}
	raw, err := c.wire.encode(msgUserEvent, &m)
	if err != nil {
		return // it came decoded from a peer: it encodes
	}
	c.eventQ.QueueBroadcast(c.unsent.queue(raw))
	c.traffic.eventsRelayed.Add(1)
}

// cameBackSince reports whether name is alive here although the peer that
// lists it as left knows no status of it newer than ltime, the last one
// known here too: the peer's view is stale (the member left and came back,
// and memberlist here saw it return). Turning such a member into a leave
// intent at ltime+1 would tie with, or beat, the join intent it sends after
// a quick restart, and leave it "leaving" here while it is alive.
func (c *Cluster) cameBackSince(name string, ltime uint64) bool {
	c.memberMu.Lock()
	defer c.memberMu.Unlock()
	ms, ok := c.members[name]
	return ok && ms.m.Status == StatusAlive && ltime <= ms.statusLTime
}

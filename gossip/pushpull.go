package gossip

// localState encodes this node's push/pull state: clocks, every member's
// status time, the left members and the whole user event ring.
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

// mergeRemoteState merges a peer's push/pull state (SERF-REFERENCE §3.5).
// join is true when the exchange is part of a join we started.
func (c *Cluster) mergeRemoteState(buf []byte, join bool) {
	t, body, err := splitType(buf)
	if err == nil && t != msgPushPull {
		c.log.Warn("dropping remote state with wrong message type", "MESSAGE_TYPE", t.String())
		return
	}
	var pp pushPullMsg
	if err == nil {
		err = c.wire.decodeBody(t, body, &pp)
	}
	if err != nil {
		c.log.Warn("dropping malformed remote state", "BYTES", len(buf), "ERROR", err)
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

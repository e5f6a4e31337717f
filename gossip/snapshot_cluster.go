package gossip

import (
	"cmp"
	"slices"
	"sort"
	"time"
)

// openSnapshot replays Config.SnapshotPath into the Cluster. It runs in
// Create before memberlist exists, so before any network I/O: the clocks are
// witnessed and the event and query minimum times set past everything the
// snapshot says was handled, and no push/pull can replay those (Serf #465,
// #692).
func (c *Cluster) openSnapshot() error {
	if c.cfg.SnapshotPath == "" {
		return nil
	}
	s, err := openSnapshotter(c.cfg.SnapshotPath, c.cfg.RejoinAfterLeave, c.cfg.SnapshotRetention, c.log)
	if err != nil {
		return err
	}
	st := s.replayed
	c.clock.Witness(st.clock)
	c.eventClock.Witness(st.eventClock)
	c.queryClock.Witness(st.queryClock)
	if st.eventClock > 0 {
		c.eventMinTime = st.eventClock + 1
		c.history = true
	}
	if c.deliver != nil { // events are handed to OnEvent: record which (seen.go)
		seen, set, err := openSeenLog(c.cfg.SnapshotPath+".seen", c.log)
		if err != nil {
			s.close()
			return err
		}
		c.seen = seen
		if set != nil {
			// What was handled is known event by event: every other event
			// of the window is still to be delivered.
			c.seenBefore = set
			c.eventClock.Witness(set.max)
			top := max(st.eventClock, set.max)
			c.eventMinTime = 0
			if top >= EventWindow {
				c.eventMinTime = top - EventWindow + 1
			}
			c.history = c.history || set.max > 0
			c.restoreWindow(set)
		}
	}
	if st.queryClock > 0 {
		c.queryMinTime = st.queryClock + 1
	}
	for name, addr := range st.alive {
		if name != c.cfg.NodeName {
			c.prevPeers = append(c.prevPeers, addr)
		}
	}
	sort.Strings(c.prevPeers)
	c.rejoinTargets = rejoinTargets(st, c.cfg.NodeName)
	s.clock = c.clock.Time
	s.queryClock = c.queryClock.Time
	s.eventFloor = func() uint64 {
		c.eventMu.Lock()
		defer c.eventMu.Unlock()
		return c.eventMinTime
	}
	c.snap = s
	handled := 0
	if c.seenBefore != nil {
		for _, keys := range c.seenBefore.keys {
			handled += len(keys)
		}
	}
	recent := 0
	for _, t := range c.rejoinTargets {
		if t.status != StatusAlive {
			recent++
		}
	}
	c.log.Info("replayed snapshot", "SNAPSHOT", c.cfg.SnapshotPath, "PREVIOUS_PEERS", len(c.prevPeers),
		"RECENT_PEERS", recent, "SNAPSHOT_RETENTION", c.cfg.SnapshotRetention.String(),
		"SERF_CLOCK", st.clock, "SERF_EVENT_CLOCK", st.eventClock, "SERF_QUERY_CLOCK", st.queryClock,
		"LEFT", st.left, "HANDLED_EVENTS_KNOWN", handled)
	return nil
}

// snapshotEvent feeds an event to the snapshot, never waiting.
func (c *Cluster) snapshotEvent(ev Event) {
	if c.snap == nil {
		return
	}
	switch ev.Type {
	case EventMemberJoin:
		for _, m := range ev.Members {
			c.snap.record(snapRecord{kind: snapAlive, name: m.Name, addr: m.HostPort()})
		}
	case EventMemberLeave, EventMemberFailed:
		kind, at := snapFailed, time.Now().Unix()
		if ev.Type == EventMemberLeave {
			kind = snapLeft
		}
		for _, m := range ev.Members {
			c.snap.record(snapRecord{kind: kind, name: m.Name, addr: m.HostPort(), at: at})
		}
	case EventUser:
		c.snap.record(snapRecord{kind: snapEventClock, n: ev.LTime})
	case EventQuery:
		c.snap.record(snapRecord{kind: snapQueryClock, n: ev.LTime})
	}
}

// snapshotLeave records a graceful leave; Leave calls it first.
func (c *Cluster) snapshotLeave() {
	if c.snap != nil {
		c.snap.leave(c.stop)
	}
}

// closeSnapshot closes the files when Create fails after opening them.
func (c *Cluster) closeSnapshot() {
	if c.snap != nil {
		c.snap.close()
	}
	if c.seen != nil {
		c.seen.close()
	}
}

// PreviousPeers returns the "ip:port" of the peers the snapshot recorded as
// alive (self excluded), which the Cluster tries to rejoin after Create. It
// is empty without a snapshot, or after a leave unless RejoinAfterLeave.
func (c *Cluster) PreviousPeers() []string {
	return append([]string{}, c.prevPeers...)
}

// rejoinTarget is an address the automatic rejoin tries: a peer the
// snapshot recorded alive, or one that failed or left within the
// retention.
type rejoinTarget struct {
	name, addr string
	status     Status    // StatusAlive, StatusFailed or StatusLeft
	since      time.Time // failed or left: when
}

// rejoinTargets lists what a replayed snapshot gives the rejoin: the
// alive peers by address, then the members that failed or left, the
// latest first (the likeliest to be back first); self left out, and each
// address once.
func rejoinTargets(st snapState, self string) []rejoinTarget {
	var alive, gone []rejoinTarget
	for name, addr := range st.alive {
		if name != self {
			alive = append(alive, rejoinTarget{name: name, addr: addr, status: StatusAlive})
		}
	}
	for name, d := range st.gone {
		if name != self {
			status := StatusFailed
			if d.left {
				status = StatusLeft
			}
			gone = append(gone, rejoinTarget{name: name, addr: d.addr, status: status, since: time.Unix(d.at, 0)})
		}
	}
	slices.SortFunc(alive, func(a, b rejoinTarget) int { return cmp.Or(cmp.Compare(a.addr, b.addr), cmp.Compare(a.name, b.name)) })
	slices.SortFunc(gone, func(a, b rejoinTarget) int { return cmp.Or(b.since.Compare(a.since), cmp.Compare(a.name, b.name)) })
	seen := make(map[string]bool, len(alive)+len(gone))
	return slices.DeleteFunc(append(alive, gone...), func(p rejoinTarget) bool {
		dup := seen[p.addr]
		seen[p.addr] = true
		return dup
	})
}

// restoreWindow refills the dedup window with the events of the seen log,
// so that push/pull spreads them again, and delivers the events accepted
// here that were not handled before the restart. It runs in Create, before
// memberlist and the delivery goroutine: the deliveries wait in the queue.
func (c *Cluster) restoreWindow(set *seenSet) {
	c.eventMu.Lock()
	defer c.eventMu.Unlock()
	for _, r := range set.bodies {
		if r.ltime < c.eventMinTime {
			continue
		}
		idx := r.ltime % EventWindow
		slot := c.events[idx]
		if slot == nil || slot.LTime != r.ltime {
			slot = &eventSlot{LTime: r.ltime}
			c.events[idx] = slot
		}
		slot.Events = append(slot.Events, eventBody{Name: r.name, Payload: r.payload})
	}
	for _, r := range set.pending {
		c.emit(Event{Type: EventUser, LTime: r.ltime, Name: r.name, Payload: r.payload})
	}
	if len(set.pending) > 0 {
		c.log.Info("delivering user events accepted here before the restart and not yet handled",
			"COUNT", len(set.pending))
	}
}

package gossip

import (
	"net"
	"sort"
	"strconv"
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
	s, err := openSnapshotter(c.cfg.SnapshotPath, c.cfg.RejoinAfterLeave, c.log)
	if err != nil {
		return err
	}
	st := s.replayed
	c.clock.Witness(st.clock)
	c.eventClock.Witness(st.eventClock)
	c.queryClock.Witness(st.queryClock)
	if st.eventClock > 0 {
		c.eventMinTime = st.eventClock + 1
		c.history.Store(true)
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
	s.clock = c.clock.Time
	s.queryClock = c.queryClock.Time
	s.eventFloor = func() uint64 {
		c.eventMu.Lock()
		defer c.eventMu.Unlock()
		return c.eventMinTime
	}
	c.snap = s
	c.log.Info("replayed snapshot", "SNAPSHOT", c.cfg.SnapshotPath, "PREVIOUS_PEERS", len(c.prevPeers),
		"SERF_CLOCK", st.clock, "SERF_EVENT_CLOCK", st.eventClock, "SERF_QUERY_CLOCK", st.queryClock,
		"LEFT", st.left)
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
			c.snap.record(snapRecord{kind: snapAlive, name: m.Name,
				addr: net.JoinHostPort(m.Addr.String(), strconv.Itoa(int(m.Port)))})
		}
	case EventMemberLeave, EventMemberFailed:
		for _, m := range ev.Members {
			c.snap.record(snapRecord{kind: snapNotAlive, name: m.Name})
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

// closeSnapshot closes the file when Create fails after opening it.
func (c *Cluster) closeSnapshot() {
	if c.snap != nil {
		c.snap.close()
	}
}

// PreviousPeers returns the "ip:port" of the peers the snapshot recorded as
// alive (self excluded), which the Cluster tries to rejoin after Create. It
// is empty without a snapshot, or after a leave unless RejoinAfterLeave.
func (c *Cluster) PreviousPeers() []string {
	return append([]string{}, c.prevPeers...)
}

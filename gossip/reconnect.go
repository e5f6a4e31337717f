package gossip

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// Members coming and going: reconnecting to failed members, forcing a
// failed member out, and the defaults of the reaper's timeouts and of the
// snapshot's retention. Rejoining the peers of the snapshot after a restart
// is in rejoin.go.

const (
	defaultReconnectInterval = 30 * time.Second
	defaultReconnectTimeout  = 24 * time.Hour
	defaultTombstoneTimeout  = 24 * time.Hour
	defaultSnapshotRetention = 72 * time.Hour
	// flapTimeout: a failed member back within this counts as a flap.
	flapTimeout = 60 * time.Second
)

// checkLifecycleConfig applies the defaults of the reconnect, reap and
// coalescing settings and returns their problems.
func checkLifecycleConfig(cfg *Config) []string {
	var problems []string
	for _, d := range []struct {
		what string
		v    *time.Duration
		def  time.Duration
	}{
		{"reconnect interval", &cfg.ReconnectInterval, defaultReconnectInterval},
		{"reconnect timeout", &cfg.ReconnectTimeout, defaultReconnectTimeout},
		{"tombstone timeout", &cfg.TombstoneTimeout, defaultTombstoneTimeout},
		{"snapshot retention", &cfg.SnapshotRetention, defaultSnapshotRetention},
	} {
		switch {
		case *d.v == 0:
			*d.v = d.def
		case *d.v < 0:
			problems = append(problems, fmt.Sprintf("%s %v is negative", d.what, *d.v))
		}
	}
	for _, p := range []struct {
		what          string
		period, quiet time.Duration
	}{
		{"member event", cfg.CoalescePeriod, cfg.QuiescentPeriod},
		{"user event", cfg.UserCoalescePeriod, cfg.UserQuiescentPeriod},
	} {
		switch {
		case p.period < 0 || p.quiet < 0:
			problems = append(problems, fmt.Sprintf("%s coalesce period %v or quiescent period %v is negative",
				p.what, p.period, p.quiet))
		case (p.period > 0) != (p.quiet > 0):
			problems = append(problems, fmt.Sprintf(
				"%s coalesce period %v and quiescent period %v: set both to coalesce, or neither",
				p.what, p.period, p.quiet))
		}
	}
	return problems
}

// prepareLocal runs in Create after the Cluster is built and before
// memberlist exists (so before any network I/O): it restores the snapshot's
// clocks and builds the coalescers.
func (c *Cluster) prepareLocal() error {
	// The reaper reads these; it starts later.
	c.timing.reconnectTimeout = c.cfg.ReconnectTimeout
	c.timing.tombstoneTimeout = c.cfg.TombstoneTimeout
	c.initCoalescers()
	if err := c.openSnapshot(); err != nil {
		return err
	}
	if len(c.rejoinTargets) > 0 && !c.cfg.ReplayOnRejoin && !c.history {
		// Until the rejoin is over, a peer that reaches us first (its
		// reconnect, or a join) must not replay what we missed either.
		c.rejoinIgnoreOld.Store(true)
	}
	return nil
}

// startWorkers starts the goroutines of prepareLocal's features once
// memberlist runs. Each is owned by the Cluster and waited for by Shutdown.
func (c *Cluster) startWorkers() {
	if c.snap != nil {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.snap.run(c.stop)
		}()
	}
	for _, co := range []*coalescer{c.memberCo, c.userCo} {
		if co != nil {
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				co.run(c.stop)
			}()
		}
	}
	c.wg.Add(1)
	go c.reconnectLoop()
	if len(c.rejoinTargets) > 0 {
		c.wg.Add(1)
		go c.rejoinLoop()
	}
}

// reconnectLoop periodically tries to reach a failed member.
func (c *Cluster) reconnectLoop() {
	defer c.wg.Done()
	t := time.NewTicker(c.cfg.ReconnectInterval)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			c.reconnect()
		}
	}
}

// reconnect, with probability failed/alive, joins one random failed member,
// so the cluster as a whole tries each failed member about once per interval.
func (c *Cluster) reconnect() {
	if c.clusterState() != stateAlive {
		return
	}
	var failed []Member
	alive := 0
	c.memberMu.Lock()
	for _, ms := range c.members {
		switch ms.m.Status {
		case StatusFailed:
			failed = append(failed, ms.snapshot())
		case StatusAlive:
			alive++
		}
	}
	c.memberMu.Unlock()
	if len(failed) == 0 {
		return
	}
	if rand.Float64() >= float64(len(failed))/float64(max(alive, 1)) {
		return
	}
	m := failed[rand.IntN(len(failed))]
	addr := m.HostPort()
	c.log.Debug(fmt.Sprintf("trying to reconnect to failed member %s (%s)", m.Name, addr), "SERF_MEMBER", m.Name, "SERF_MEMBER_ADDR", addr)
	if err := c.pushPullWith(m); err != nil {
		c.log.Debug(fmt.Sprintf("cannot reconnect to failed member %s (%s): %v", m.Name, addr, err),
			"SERF_MEMBER", m.Name, "SERF_MEMBER_ADDR", addr, "ERROR", err)
		return
	}
	c.log.Info(fmt.Sprintf("reconnected to failed member %s (%s)", m.Name, addr), "SERF_MEMBER", m.Name, "SERF_MEMBER_ADDR", addr)
}

// RemoveFailedNode forces a failed member out (Serf's force-leave): it
// gossips a leave intent for it, so every member moves it from failed to left
// (member-leave) at once instead of waiting for the reaper. With prune the
// member is also erased everywhere (member-reap); prune also applies to a
// member already left or leaving. Forcing out a left or leaving member
// without prune does nothing. It is an error if the member is unknown or
// alive. It waits up to 5s for the intent to be sent when other members are
// alive; the error after a timeout means only that it is still queued.
func (c *Cluster) RemoveFailedNode(name string, prune bool) error {
	if c.clusterState() == stateShutdown {
		return fmt.Errorf("force leave %q: %w", name, ErrShutdown)
	}
	c.memberMu.Lock()
	ms, ok := c.members[name]
	status := StatusNone
	var statusLTime uint64
	if ok {
		status, statusLTime = ms.m.Status, ms.statusLTime
	}
	c.memberMu.Unlock()
	switch status {
	case StatusNone:
		return fmt.Errorf("force leave %q: %w", name, ErrNoSuchMember)
	case StatusAlive:
		return errorf(ErrMemberAlive, "force leave %q: member is alive; only a failed member can be forced to leave", name)
	case StatusLeaving, StatusLeft:
		if !prune {
			return nil
		}
	}
	// Peers may already hold this member's status at statusLTime+1 (a
	// push/pull turns each left member into a leave intent one past its
	// time); go past that so a prune is not ignored as stale.
	c.clock.Witness(statusLTime + 1)
	msg := leaveMsg{LTime: c.clock.Claim(), Node: name, Prune: prune}
	c.handleLeaveIntent(msg)
	sent := make(chan struct{})
	if !c.queueIntent(msgLeave, &msg, sent) {
		return fmt.Errorf("force leave %q: cannot encode the leave intent", name)
	}
	if !c.hasOtherAliveMembers() {
		return nil
	}
	t := time.NewTimer(c.timing.broadcastTimeout)
	defer t.Stop()
	select {
	case <-sent:
		return nil
	case <-t.C:
		return fmt.Errorf("force leave %q: applied locally, but the leave intent was not sent within %v; it stays queued",
			name, c.timing.broadcastTimeout)
	case <-c.stop:
		return fmt.Errorf("force leave %q: cluster shut down while sending the leave intent", name)
	}
}

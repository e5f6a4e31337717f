package gossip

import (
	"fmt"
	"strings"
	"time"
)

// Catching up after a join. A joining node learns the members its seed
// knows by one push/pull, and the members that join after it from their
// alive messages, which every member gossips a bounded number of times
// (memberlist's RetransmitMult × log10 N, counted at a cluster size that
// is still small early in a join storm). In a storm some of those
// messages run out of transmissions before they reach every node that
// joined before them: in a simulated storm of 100 nodes, half the runs
// left a node or more missing a member, their own memberlist unaware of
// it, 40 s on. Until now only memberlist's periodic push/pull repaired
// that: every 30 s at 32 nodes, stretched with the cluster's size to 3
// minutes at 1,000. So after each successful join the node exchanges its
// whole state once more with a random alive member at each of
// defaultCatchUp's delays (stretched as the other protocol periods are),
// each time a member that has by then heard of more joins.

// defaultCatchUp are the catch-up delays after a join: the first once the
// alive messages of the nodes joining around the same time had a few
// gossip rounds, the last after a storm of a thousand nodes is over.
var defaultCatchUp = []time.Duration{2 * time.Second, 10 * time.Second, 30 * time.Second}

// startCatchUp runs the catch-up push/pulls after a join, unless they are
// already under way for an earlier join.
func (c *Cluster) startCatchUp() {
	if len(c.timing.catchUp) == 0 || !c.catchingUp.CompareAndSwap(false, true) {
		return
	}
	if !c.goOwned(c.catchUpLoop) {
		c.catchingUp.Store(false)
	}
}

func (c *Cluster) catchUpLoop() {
	defer c.catchingUp.Store(false)
	scale := max(c.cfg.TimeScale, 1)
	for _, d := range c.timing.catchUp {
		t := time.NewTimer(time.Duration(float64(d) * scale))
		select {
		case <-c.stop:
			t.Stop()
			return
		case <-t.C:
		}
		if c.clusterState() != stateAlive {
			return
		}
		peers := c.randomAlivePeers(1, nil)
		if len(peers) == 0 {
			continue // the cluster may be back later in the schedule
		}
		m := peers[0]
		before := c.numMembers.Load()
		err := c.pushPullWith(m)
		c.catchUps.Add(1)
		switch learned := c.numMembers.Load() - before; {
		case err != nil:
			c.log.Debug(fmt.Sprintf("cannot catch up with member %s (%s): %v", m.Name, m.HostPort(), err),
				"SERF_MEMBER", m.Name, "SERF_MEMBER_ADDR", m.HostPort(), "ERROR", err)
		case learned > 0:
			c.log.Info(fmt.Sprintf("caught up with member %s (%s) after joining: learned %d member(s) the join's gossip had not brought", m.Name, m.HostPort(), learned),
				"SERF_MEMBER", m.Name, "SERF_MEMBER_ADDR", m.HostPort(), "LEARNED", learned)
		default:
			c.log.Debug(fmt.Sprintf("caught up with member %s (%s) after joining: nothing new", m.Name, m.HostPort()),
				"SERF_MEMBER", m.Name, "SERF_MEMBER_ADDR", m.HostPort())
		}
	}
}

// pushPullWith exchanges the whole state with member m: memberlist's join
// push/pull, to m's address and under its name.
func (c *Cluster) pushPullWith(m Member) error {
	target := m.HostPort()
	if !strings.Contains(m.Name, "/") { // memberlist's "name/addr" form
		target = m.Name + "/" + target
	}
	_, err := c.ml.Join([]string{target})
	return flattenErrors(err)
}

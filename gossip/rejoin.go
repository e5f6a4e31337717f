package gossip

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// Rejoining the cluster after a restart, from the snapshot.
//
// Serf tries the peers its snapshot lists alive, once each. After a full
// outage that is not enough (Serf #333): when the nodes went down one after
// another, each recorded the ones before as gone, so the last one down
// lists nobody alive, and the first one down lists peers that are still
// down when it starts and tries them only once. So the rejoin here also
// tries the members the snapshot recorded as failed or left within
// Config.SnapshotRetention, and keeps trying in the background until it is
// in a cluster again or every address is past the retention.

const (
	// rejoinAttemptTimeout bounds one join attempt, to one address.
	rejoinAttemptTimeout = 10 * time.Second
	// Between two rounds over every address: from the first backoff,
	// doubled each round up to the last.
	rejoinBackoffFirst = time.Second
	rejoinBackoffLast  = 30 * time.Second
	// rejoinCheckEvery is how often a backoff checks whether another
	// member reached this node meanwhile.
	rejoinCheckEvery = time.Second
	// rejoinNamed is how many addresses a record of the rejoin names
	// before it counts the rest.
	rejoinNamed = 5
)

// until is when the rejoin stops trying t: SnapshotRetention after it
// failed or left, or for a peer recorded alive, after the rejoin started.
func (t rejoinTarget) until(start time.Time, retention time.Duration) time.Time {
	if t.status == StatusAlive {
		return start.Add(retention)
	}
	return t.since.Add(retention)
}

// String names the target for log messages: "b (10.0.0.2:7946)".
func (t rejoinTarget) String() string {
	return t.name + " (" + t.addr + ")"
}

// how says what the snapshot knows of t at now: "recorded alive",
// "recorded failed 3h0m0s ago", "recorded left 12m30s ago".
func (t rejoinTarget) how(now time.Time) string {
	if t.status == StatusAlive {
		return "recorded alive"
	}
	return fmt.Sprintf("recorded %s %v ago", t.status, now.Sub(t.since).Round(time.Second))
}

// describeTargets names at most rejoinNamed targets, with what the
// snapshot knows of each, and counts the rest.
func describeTargets(ts []rejoinTarget, now time.Time) string {
	var b strings.Builder
	for i, t := range ts[:min(len(ts), rejoinNamed)] {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(t.String() + " " + t.how(now))
	}
	if more := len(ts) - rejoinNamed; more > 0 {
		fmt.Fprintf(&b, " and %d more", more)
	}
	return b.String()
}

// rejoinLoop rejoins the cluster after a restart through the addresses of
// the snapshot, one at a time: the peers recorded alive first, in random
// order, then the members that failed or left, the latest first. After a
// round where none answered it waits (1s, doubling up to 30s) and tries
// again, until a join succeeds, another member reaches this node (a peer
// rejoining it, a configured join), the node leaves or shuts down, or
// every address is past the retention. Each attempt is bounded, and
// Shutdown ends one in progress. With the snapshot's event clock the node
// then receives the events sent while it was down that are still in its
// peers' buffers (never those it handled before the restart: the clock
// drops them); without one, only with Config.ReplayOnRejoin.
func (c *Cluster) rejoinLoop() {
	defer c.wg.Done()
	defer c.rejoinIgnoreOld.Store(false)
	ignoreOld := !c.cfg.ReplayOnRejoin && !c.history
	retention := c.cfg.SnapshotRetention
	start := time.Now()
	targets := append([]rejoinTarget{}, c.rejoinTargets...)
	alive := 0
	for alive < len(targets) && targets[alive].status == StatusAlive {
		alive++
	}
	rand.Shuffle(alive, func(i, j int) { targets[i], targets[j] = targets[j], targets[i] })
	c.log.Info(fmt.Sprintf("rejoining the cluster through the %d addresses of the snapshot, in this order: %s",
		len(targets), describeTargets(targets, start)),
		"PREVIOUS_PEERS", alive, "RECENT_PEERS", len(targets)-alive, "SNAPSHOT_RETENTION", retention.String())

	backoff := rejoinBackoffFirst
	for round := 1; ; round++ {
		if c.rejoinOver() {
			return
		}
		now := time.Now()
		kept := targets[:0]
		for _, t := range targets {
			if now.Before(t.until(start, retention)) {
				kept = append(kept, t)
				continue
			}
			c.log.Info(fmt.Sprintf("no longer trying to rejoin through %s, %s: past the snapshot retention (%v)", t, t.how(now), retention),
				"SERF_MEMBER", t.name, "SERF_MEMBER_ADDR", t.addr, "SNAPSHOT_RETENTION", retention.String())
		}
		targets = kept
		if len(targets) == 0 {
			c.log.Info(fmt.Sprintf("gave up rejoining the cluster through the snapshot after round %d: every address it holds is past the snapshot retention (%v); a join brings this node back",
				round-1, retention), "ATTEMPT", round-1, "SNAPSHOT_RETENTION", retention.String())
			return
		}
		last := time.Time{}
		for _, t := range targets {
			if c.rejoinOver() {
				return
			}
			if u := t.until(start, retention); u.After(last) {
				last = u
			}
			if c.tryRejoin(t, round, ignoreOld) {
				return
			}
		}
		wait := max(min(backoff, time.Until(last)), 0).Round(time.Millisecond)
		c.log.Info(fmt.Sprintf("rejoin round %d: none of the %d addresses of the snapshot answered; next round in %v",
			round, len(targets), wait), "ATTEMPT", round, "RETRY_IN", wait.String())
		if !c.rejoinWait(wait) {
			return
		}
		backoff = min(2*backoff, rejoinBackoffLast)
	}
}

// tryRejoin joins t, waiting at most rejoinAttemptTimeout, and reports
// whether it succeeded. The first round logs each address it tries at
// info level, the later ones at debug level (each round ends with a
// record of its own).
func (c *Cluster) tryRejoin(t rejoinTarget, round int, ignoreOld bool) bool {
	level := c.log.Info
	if round > 1 {
		level = c.log.Debug
	}
	how := t.how(time.Now())
	level(fmt.Sprintf("trying to rejoin through %s, %s in the snapshot", t, how),
		"SERF_MEMBER", t.name, "SERF_MEMBER_ADDR", t.addr, "ATTEMPT", round)
	ctx, cancel := context.WithTimeout(c.ctx, rejoinAttemptTimeout)
	n, err := c.Join(ctx, []string{t.addr}, ignoreOld)
	cancel()
	if n > 0 {
		c.log.Info(fmt.Sprintf("rejoined the cluster through %s, %s in the snapshot (%d contacted)", t, how, n),
			"SERF_MEMBER", t.name, "SERF_MEMBER_ADDR", t.addr, "ATTEMPT", round,
			"MISSED_EVENTS_DELIVERED", !ignoreOld)
		return true
	}
	if c.clusterState() == stateAlive {
		level(fmt.Sprintf("cannot rejoin through %s: %v", t, err),
			"SERF_MEMBER", t.name, "SERF_MEMBER_ADDR", t.addr, "ATTEMPT", round, "ERROR", err)
	}
	return false
}

// rejoinOver reports whether the rejoin has nothing left to do: the node
// shut down or left, or another member is alive (it reached this node, or
// a join other than the rejoin's did).
func (c *Cluster) rejoinOver() bool {
	if c.clusterState() != stateAlive {
		return true
	}
	if c.hasOtherAliveMembers() {
		c.log.Info("this node is in a cluster again (another member is alive: a peer reached it, or another join); stopped rejoining through the snapshot")
		return true
	}
	return false
}

// rejoinWait waits d, or less when another member becomes alive
// meanwhile; false when the Cluster shuts down.
func (c *Cluster) rejoinWait(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	check := time.NewTicker(rejoinCheckEvery)
	defer check.Stop()
	for {
		select {
		case <-c.stop:
			return false
		case <-t.C:
			return true
		case <-check.C:
			if c.clusterState() != stateAlive || c.hasOtherAliveMembers() {
				return true
			}
		}
	}
}

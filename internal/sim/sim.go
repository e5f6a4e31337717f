package sim

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/serfd/serfd/gossip"
)

// Node is one simulated member: serfd's gossip layer as serfd runs it
// (profile lan), over a Transport of the Network.
type Node struct {
	Index int
	Name  string
	Addr  string
	C     *gossip.Cluster
	T     *Transport

	mu     sync.Mutex
	user   map[string]time.Time // user event name -> when it was delivered here
	failed map[string]time.Time // member -> when this node last saw it fail
}

func (n *Node) onEvent(ev gossip.Event) {
	now := time.Now()
	switch ev.Type {
	case gossip.EventMemberFailed:
		n.mu.Lock()
		for _, m := range ev.Members {
			n.failed[m.Name] = now // the latest time: a member may fail, come back and fail again
		}
		n.mu.Unlock()
	case gossip.EventUser:
		n.mu.Lock()
		if _, ok := n.user[ev.Name]; !ok {
			n.user[ev.Name] = now
		}
		n.mu.Unlock()
	}
}

// SawUser is when this node delivered user event name.
func (n *Node) SawUser(name string) (time.Time, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	t, ok := n.user[name]
	return t, ok
}

// SawFailed is when this node last saw member fail.
func (n *Node) SawFailed(member string) (time.Time, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	t, ok := n.failed[member]
	return t, ok
}

// FailedSeen is every member this node saw fail.
func (n *Node) FailedSeen() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for m := range n.failed {
		out = append(out, m)
	}
	return out
}

// Cluster is a simulated cluster of n nodes on one Network.
type Cluster struct {
	Net   *Network
	Nodes []*Node
	// Scale is the nodes' gossip.Config.TimeScale: every protocol period
	// runs Scale times slower than the profile's, so a time measured here
	// divided by Scale is the time on a fleet.
	Scale float64

	handoff handoffCounter
}

// handoffCounter is the nodes' log handler: it drops every record but
// counts the messages of memberlist's warnings that its inbound message queue was full
// (memberlist.Config.HandoffQueueDepth), a loss inside the node that the
// network does not see.
type handoffCounter struct{ drops atomic.Int64 }

func (h *handoffCounter) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (h *handoffCounter) Handle(_ context.Context, r slog.Record) error {
	if !strings.Contains(r.Message, "handler queue full") {
		return nil
	}
	n := int64(1) // warnings of a kind are rate-limited: REPEATED counts the lines one stands for
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "REPEATED" && a.Value.Kind() == slog.KindUint64 {
			n = int64(a.Value.Uint64())
		}
		return true
	})
	h.drops.Add(n)
	return nil
}
func (h *handoffCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *handoffCounter) WithGroup(string) slog.Handler      { return h }

// HandoffDrops is how many messages the nodes' memberlist dropped at a
// full inbound queue so far.
func (c *Cluster) HandoffDrops() int64 { return c.handoff.drops.Load() }

// AutoScale is the time scale a cluster of n nodes runs at on the given
// number of CPUs: 1 up to NodesPerCPU nodes per CPU, then in proportion,
// so that the CPU time the simulation needs per protocol period stays about
// the same share of it at every size.
func AutoScale(n, cpus int) float64 {
	return max(1, float64(n)/float64(NodesPerCPU*max(cpus, 1)))
}

// NodesPerCPU is how many simulated nodes one CPU keeps at the profile's
// own periods with room to spare (250 nodes took 64 % of 2 CPUs).
const NodesPerCPU = 125

// NewCluster creates n nodes, each alone, at time scale scale (see
// Cluster.Scale; below 1 counts as 1); Join makes them one cluster.
func NewCluster(n int, seed uint64, scale float64) (*Cluster, error) {
	c := &Cluster{Net: NewNetwork(seed), Scale: max(scale, 1)}
	logger := slog.New(&c.handoff)
	for i := range n {
		node := &Node{Index: i, Name: fmt.Sprintf("sim-%04d", i), Addr: AddrOf(i),
			user: map[string]time.Time{}, failed: map[string]time.Time{}}
		t, err := c.Net.NewTransport(node.Addr)
		if err != nil {
			c.Close()
			return nil, err
		}
		node.T = t
		cfg := gossip.DefaultConfig()
		cfg.NodeName, cfg.Logger, cfg.Transport, cfg.OnEvent = node.Name, logger, t, node.onEvent
		cfg.TimeScale = c.Scale
		cfg.Uncompressed = true // see gossip.Config.Uncompressed; Network estimates the bytes saved
		if node.C, err = gossip.Create(cfg); err != nil {
			t.Shutdown()
			c.Close()
			return nil, fmt.Errorf("node %d: %w", i, err)
		}
		c.Nodes = append(c.Nodes, node)
	}
	return c, nil
}

// Close shuts every node down, in parallel.
func (c *Cluster) Close() {
	var wg sync.WaitGroup
	for _, n := range c.Nodes {
		wg.Go(func() { n.C.Shutdown() })
	}
	wg.Wait()
}

// JoinAll has every node but the first join the first at once (a join
// storm; at most parallel joins in flight) and returns when every node has
// joined, and how many joins had to be tried again. A seed refuses push/pulls
// past memberlist's limit of concurrent ones (128), so in a storm some
// joins fail, and are retried after a pause, as serfd's join retries do.
func (c *Cluster) JoinAll(ctx context.Context, parallel int) (retries int, err error) {
	seed := []string{c.Nodes[0].Addr}
	sem := make(chan struct{}, parallel)
	errs := make(chan error, len(c.Nodes))
	var again atomic.Int64
	var wg sync.WaitGroup
	for _, n := range c.Nodes[1:] {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			for attempt := 1; ; attempt++ {
				_, err := n.C.Join(ctx, seed, true)
				if err == nil {
					return
				}
				if attempt == joinAttempts {
					errs <- fmt.Errorf("%s join, %d attempts: %w", n.Name, attempt, err)
					return
				}
				again.Add(1)
				time.Sleep(c.Stretch(time.Duration(attempt) * joinPause)) // back off, as a retrying join does
			}
		})
	}
	wg.Wait()
	close(errs)
	return int(again.Load()), <-errs
}

// StormJoins is how many joins JoinAndConverge has in flight at once.
const StormJoins = 64

// JoinAndConverge is JoinAll (StormJoins in flight), then a wait of up to
// timeout (on the fleet's clock) until the cluster has converged.
func (c *Cluster) JoinAndConverge(timeout time.Duration) (retries int, err error) {
	if retries, err = c.JoinAll(context.Background(), StormJoins); err != nil {
		return retries, err
	}
	return retries, Poll(c.Stretch(timeout), 100*time.Millisecond, "convergence", c.Converged)
}

// joinAttempts and joinPause pace JoinAll's retries: the pause grows by
// joinPause per attempt.
const (
	joinAttempts = 20
	joinPause    = 200 * time.Millisecond
)

// Stretch is d on this cluster's clock: d × Scale.
func (c *Cluster) Stretch(d time.Duration) time.Duration {
	return time.Duration(float64(d) * c.Scale)
}

// Fleet is d measured on this cluster's clock as it would be on a fleet:
// d / Scale.
func (c *Cluster) Fleet(d time.Duration) time.Duration {
	return time.Duration(float64(d) / c.Scale)
}

// Converged reports whether every node sees every node alive now (a
// count of join events would also be reached by a cluster whose members
// went on to suspect and fail each other during the storm).
func (c *Cluster) Converged() bool { return c.Unconverged() == 0 }

// Unconverged is how many nodes do not see every node alive now.
func (c *Cluster) Unconverged() int {
	n := 0
	for _, node := range c.Nodes {
		if node.C.Stats().Alive < len(c.Nodes) {
			n++
		}
	}
	return n
}

// Poll calls cond every interval until it is true (nil) or the deadline
// passes (an error naming what).
func Poll(timeout, interval time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within %s", what, timeout)
		}
		time.Sleep(interval)
	}
	return nil
}

// Spread is when each node of nodes saw something, as offsets from t0,
// sorted; missing counts those that did not.
type Spread struct {
	Offsets []time.Duration
	Missing int
}

// Quantile is the time by which the fraction q of all nodes (missing ones
// included) saw it; ok is false if fewer did.
func (s Spread) Quantile(q float64) (time.Duration, bool) {
	total := len(s.Offsets) + s.Missing
	need := int(q*float64(total) + 0.999999)
	if need < 1 {
		need = 1
	}
	if need > len(s.Offsets) {
		return 0, false
	}
	return s.Offsets[need-1], true
}

// spreadOf collects seen over nodes.
func spreadOf(nodes []*Node, t0 time.Time, seen func(*Node) (time.Time, bool)) Spread {
	var s Spread
	for _, n := range nodes {
		if t, ok := seen(n); ok {
			s.Offsets = append(s.Offsets, max(t.Sub(t0), 0))
		} else {
			s.Missing++
		}
	}
	slices.Sort(s.Offsets)
	return s
}

// UserEventSpread sends user event name from the first node and waits (up
// to timeout) until every node delivered it.
func (c *Cluster) UserEventSpread(name string, timeout time.Duration) (Spread, error) {
	t0 := time.Now()
	if err := c.Nodes[0].C.UserEvent(name, nil, false); err != nil {
		return Spread{}, err
	}
	seen := func(n *Node) (time.Time, bool) { return n.SawUser(name) }
	err := Poll(timeout, 20*time.Millisecond, "user event "+name+" on every node", func() bool {
		for _, n := range c.Nodes {
			if _, ok := n.SawUser(name); !ok {
				return false
			}
		}
		return true
	})
	return spreadOf(c.Nodes, t0, seen), err
}

// FailureSpread cuts the last node off the network and waits (up to
// timeout) until every other node saw it fail.
func (c *Cluster) FailureSpread(timeout time.Duration) (Spread, error) {
	victim := c.Nodes[len(c.Nodes)-1]
	others := c.Nodes[:len(c.Nodes)-1]
	t0 := time.Now()
	victim.T.Kill()
	// Only a failure seen from the cut on counts: a node may have taken
	// the victim for failed before (a false positive, since refuted).
	seen := func(n *Node) (time.Time, bool) {
		t, ok := n.SawFailed(victim.Name)
		return t, ok && !t.Before(t0)
	}
	err := Poll(timeout, 50*time.Millisecond, victim.Name+" failed on every node", func() bool {
		for _, n := range others {
			if _, ok := seen(n); !ok {
				return false
			}
		}
		return true
	})
	return spreadOf(others, t0, seen), err
}

// sum adds f over the nodes' transports.
func (c *Cluster) sum(f func(*Transport) int64) int64 {
	var total int64
	for _, n := range c.Nodes {
		total += f(n.T)
	}
	return total
}

// Bytes is what all nodes sent so far.
func (c *Cluster) Bytes() int64 {
	return c.sum(func(t *Transport) int64 { s, _ := t.Bytes(); return s })
}

// Packets is how many packets all nodes sent so far.
func (c *Cluster) Packets() int64 {
	return c.sum(func(t *Transport) int64 { n, _ := t.Packets(); return n })
}

// PacketBytes is the bytes of the packets all nodes sent so far (Bytes
// less the streams).
func (c *Cluster) PacketBytes() int64 {
	return c.sum(func(t *Transport) int64 { _, b := t.Packets(); return b })
}

// QuietRate is the most packets per node per second (on a fleet's clock) a
// cluster at rest sends, with a margin: a node sends one probe per
// ProbeInterval and, on average, answers one, and sends gossip packets
// (GossipNodes every GossipInterval, 15 per second) only while a message
// waits in one of its broadcast queues. Between 2 and QuietRate, at most
// one node in 30 is still gossiping.
const QuietRate = 2.5

// WaitQuiet measures the packet rate over windows of window (on a fleet's
// clock) until one is at most QuietRate, and returns how long that took:
// the time the nodes' broadcast queues took to drain. After a join storm
// every node queues every other node's alive message for retransmission
// (memberlist's RetransmitMult × log10 N times), and memberlist gives its
// own queue the room in each packet before user events, so an event sent
// before the queues drain competes for space that push gossip's theory
// assumes it has.
func (c *Cluster) WaitQuiet(window, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	for {
		p0, t0 := c.Packets(), time.Now()
		time.Sleep(c.Stretch(window)) // a measuring window
		rate := float64(c.Packets()-p0) / c.Fleet(time.Since(t0)).Seconds() / float64(len(c.Nodes))
		waited := c.Fleet(time.Since(start))
		if rate <= QuietRate {
			return waited, nil
		}
		if waited >= timeout {
			return waited, fmt.Errorf("not at rest within %s: %.1f packets per node per second", timeout, rate)
		}
	}
}

// Overflowed is how many packets the nodes dropped at a full queue so far.
func (c *Cluster) Overflowed() int64 { return c.sum((*Transport).Overflowed) }

// FalselyFailed is the members some node saw fail although none was cut
// off: false positives of failure detection.
func (c *Cluster) FalselyFailed() []string {
	victims := map[string]bool{}
	for _, n := range c.Nodes {
		for _, m := range n.FailedSeen() {
			victims[m] = true
		}
	}
	var out []string
	for m := range victims {
		out = append(out, m)
	}
	slices.Sort(out)
	return out
}

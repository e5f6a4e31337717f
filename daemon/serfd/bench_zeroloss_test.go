package main

// BenchmarkZeroLoss: the highest sustained rate of user events at which
// every event one node accepted reaches every node of a cluster, for serfd
// and for stock Serf in the same run.
//
// Both clusters are SERFD_BENCH_NODES (default 10) processes on loopback
// with the LAN profile. One client sends uncoalesced user events through
// Serf's RPC of the first node, paced at each rate of SERFD_BENCH_ZL_RATES
// for SERFD_BENCH_ZL_SECS seconds; every node streams the user events it
// receives over its own RPC connection. The same client code drives both
// agents, so the figures differ only by the agent. A refused event (serfd's
// backpressure: its gossip backlog is full) is retried after a short pause
// and does not count as sent; the rate reached is what was accepted over
// the time of sending. After the sending, the benchmark waits until every
// node has every accepted event, or until no node received anything for
// zeroLossStall: what is still missing then is lost.
//
// The zero-loss rate of an agent is the highest rate reached at a step that
// lost nothing. With SERFD_BENCH_ZL_OUT set, the steps are also written
// there as a Markdown table.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/serfd/serfd/ctl"
	"github.com/serfd/serfd/gossip"
	"github.com/serfd/serfd/internal/testutil"
)

const (
	zeroLossRatesEnv = "SERFD_BENCH_ZL_RATES"
	zeroLossSecsEnv  = "SERFD_BENCH_ZL_SECS"
	zeroLossOutEnv   = "SERFD_BENCH_ZL_OUT"
	// zeroLossEvent is the name of the events sent; no handler runs for it.
	zeroLossEvent = "zl"
	// zeroLossStall is how long the deliveries may stand still before
	// what is missing counts as lost: two push/pull intervals of the LAN
	// profile (30 s up to 32 nodes). An event gossip missed on a node
	// reaches it with the next push/pull that node takes part in, which
	// carries the recent events in Serf's protocol and serfd's alike.
	zeroLossStall = 75 * time.Second
	// zeroLossRetry is the pause before a refused event is sent again.
	zeroLossRetry = 5 * time.Millisecond
)

// zeroLossCluster is one agent's cluster and what its nodes received.
type zeroLossCluster struct {
	kind  scaleKind
	peers []*benchPeer
	mu    sync.Mutex
	got   []map[string]int // per node: payload -> times received
	// prefix starts the payloads of the step under way; delivered counts
	// the (node, payload) pairs of the step received at least once.
	prefix    string
	delivered int
}

// zeroLossStep is the outcome of one rate for one agent.
type zeroLossStep struct {
	kind             string
	rate             int // offered, events/s
	accepted         int
	refused          int // refusals, retries included
	reached          float64
	lost, duplicated int // (event, node) pairs
	drain            time.Duration
	load1            float64
}

func startZeroLossCluster(b *testing.B, kind scaleKind, n int) *zeroLossCluster {
	b.Helper()
	c := &zeroLossCluster{kind: kind, got: make([]map[string]int, n)}
	work := b.TempDir()
	for i := range n {
		name := fmt.Sprintf("%s-z%d", kind.name, i)
		ip := fmt.Sprintf("127.0.%d.%d", kind.subnet+20, i+1)
		c.peers = append(c.peers, kind.start(b, name, ip, work, "#!/bin/sh\n"))
		c.got[i] = map[string]int{}
	}
	b.Cleanup(func() {
		for _, p := range c.peers {
			p.kill()
		}
	})
	for i, p := range c.peers[1:] {
		if i > 0 {
			<-time.After(joinPace)
		}
		if _, errOut, code := p.cli(b, "join", c.peers[0].addr); code != 0 {
			b.Fatalf("%s join = exit %d, %q; want exit 0", p.name, code, errOut)
		}
	}
	waitEach(b, time.Now(), 3*time.Minute, fmt.Sprintf("every peer to list %d alive", n), c.peers,
		func(p *benchPeer) (bool, string) {
			alive, state := countStatus(b, p, "alive")
			return alive == n, state
		})

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	b.Cleanup(func() { cancel(); wg.Wait() })
	for i, p := range c.peers {
		client := ctl.NewRPCClient(p.rpc, "")
		up := make(chan struct{})
		var once sync.Once
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer client.Close()
			err := client.StreamUserEvents(ctx, "user:"+zeroLossEvent, func(r ctl.RPCUserEventRecord) error {
				once.Do(func() { close(up) })
				p := string(r.Payload)
				c.mu.Lock()
				c.got[i][p]++
				if c.got[i][p] == 1 && strings.HasPrefix(p, c.prefix) {
					c.delivered++
				}
				c.mu.Unlock()
				return nil
			})
			if ctx.Err() == nil {
				b.Errorf("%s: the event stream ended: %v", p.name, err)
			}
		}()
		// The stream is up once it has received an event.
		sender := ctl.NewRPCClient(p.rpc, "")
		testutil.Poll(b, 30*time.Second, p.name+"'s event stream", func() (bool, string) {
			if err := sender.Event(ctx, ctl.RPCEventRequest{Name: zeroLossEvent, Payload: []byte("probe-" + p.name)}); err != nil {
				return false, err.Error()
			}
			select {
			case <-up:
				return true, ""
			case <-time.After(50 * time.Millisecond):
				return false, "nothing streamed yet"
			}
		})
		sender.Close()
	}
	return c
}

// run sends at rate for secs, then waits for the deliveries.
func (c *zeroLossCluster) run(b *testing.B, rate int, secs time.Duration) zeroLossStep {
	b.Helper()
	step := zeroLossStep{kind: c.kind.name, rate: rate, load1: loadavg1(b)}
	prefix := fmt.Sprintf("%s-r%d-", c.kind.name, rate)
	c.mu.Lock()
	c.prefix, c.delivered = prefix, 0
	c.mu.Unlock()
	sender := ctl.NewRPCClient(c.peers[0].rpc, "")
	defer sender.Close()
	ctx, cancel := context.WithTimeout(context.Background(), secs+time.Minute)
	defer cancel()
	interval := time.Second / time.Duration(rate)
	var accepted []string
	start := time.Now()
	next := start
	for time.Since(start) < secs {
		if wait := time.Until(next); wait > 0 {
			<-time.After(wait) // pacing the sender, not waiting for a result
		}
		payload := fmt.Sprintf("%s%d", prefix, len(accepted))
		err := sender.Event(ctx, ctl.RPCEventRequest{Name: zeroLossEvent, Payload: []byte(payload)})
		var refused *ctl.RPCError
		switch {
		case errors.As(err, &refused):
			step.refused++
			<-time.After(zeroLossRetry)
			continue
		case err != nil:
			b.Fatalf("%s: event %s: %v", c.kind.name, payload, err)
		}
		accepted = append(accepted, payload)
		next = next.Add(interval)
		// A sender that fell behind does not make up for it in a burst.
		if now := time.Now(); now.Sub(next) > time.Second {
			next = now
		}
	}
	sending := time.Since(start)
	step.accepted = len(accepted)
	step.reached = float64(len(accepted)) / sending.Seconds()

	n := len(c.peers)
	delivered := func() int {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.delivered
	}
	step.drain, _ = waitCount(delivered, len(accepted)*n, time.Now(), 3*time.Minute, zeroLossStall)
	c.mu.Lock()
	for _, got := range c.got {
		for _, p := range accepted {
			switch {
			case got[p] == 0:
				step.lost++
			case got[p] > 1:
				step.duplicated++
			}
		}
	}
	c.mu.Unlock()
	return step
}

func BenchmarkZeroLoss(b *testing.B) {
	releaseBinaries(b)
	n := benchNodes(b)
	rates := envInts(b, zeroLossRatesEnv, "25,50,75,100,150,200,400", 1, 100000)
	secs := envInts(b, zeroLossSecsEnv, "10", 1, 600)[0]
	for range b.N {
		kinds := scaleKinds(b)
		clusters := make([]*zeroLossCluster, len(kinds))
		for i, k := range kinds {
			clusters[i] = startZeroLossCluster(b, k, n)
		}
		var steps []zeroLossStep
		for i, rate := range rates {
			// Which agent goes first alternates from one rate to the next.
			for j := range clusters {
				c := clusters[(i+j)%len(clusters)]
				s := c.run(b, rate, time.Duration(secs)*time.Second)
				b.Logf("%s rate %d/s: accepted %d (%.1f/s), refused %d, lost %d, duplicated %d, drained in %v, load %.2f",
					s.kind, s.rate, s.accepted, s.reached, s.refused, s.lost, s.duplicated, s.drain.Round(time.Millisecond), s.load1)
				steps = append(steps, s)
			}
		}
		best := map[string]float64{}
		for _, s := range steps {
			if s.lost == 0 && s.duplicated == 0 && s.reached > best[s.kind] {
				best[s.kind] = s.reached
			}
		}
		for _, k := range kinds {
			b.ReportMetric(best[k.name], k.name+"-zero-loss-events/s")
		}
		if out := os.Getenv(zeroLossOutEnv); out != "" {
			writeZeroLoss(b, out, n, secs, steps, best)
		}
	}
}

// writeZeroLoss writes the steps and the zero-loss rates as Markdown.
func writeZeroLoss(b *testing.B, path string, n, secs int, steps []zeroLossStep, best map[string]float64) {
	var sb strings.Builder
	fmt.Fprintf(&sb, "# Zero-loss user event rate, %d nodes\n\n", n)
	fmt.Fprintf(&sb, "Written by `make bench` (BenchmarkZeroLoss, %s) on %s, %d CPUs, %s.\n\n",
		time.Now().UTC().Format(time.RFC3339), runtimeVersion(), cpus(), serfVersion(b, testutil.SerfBin(b)))
	fmt.Fprintf(&sb, "One client sends uncoalesced user events through Serf's RPC of one node at each offered rate for %d s; every node streams what it receives. "+
		"A refused event (backpressure) is retried and does not count as sent. Lost: (event, node) pairs still missing after the deliveries stood still for %v "+
		"(two push/pull intervals: push/pull carries the recent events and repairs what gossip missed).\n\n", secs, zeroLossStall)
	sb.WriteString("Both agents carry user events in the same UDP gossip with the same LAN parameters: every 200 ms each node sends a packet of at most 1,400 bytes to 3 others, " +
		"and piggybacks queued messages on each ping and ack it sends; each node sends an event at most 4 × ⌈log10(N+1)⌉ times (8 at N = 10), the newest events first. " +
		"Under load both send each event fewer times. " +
		fmt.Sprintf("serfd refuses (503, or an error over Serf's RPC) only while %d of its events wait to go out a first time, ", gossip.DefaultConfig().Backlog) +
		fmt.Sprintf("and its push/pull carries its whole %d-event window, which repairs a node a cut-short event missed. ", gossip.EventWindow) +
		"Serf accepts everything, and its receivers drop what falls out of their 512-event window.\n\n")
	sb.WriteString("| agent | offered /s | accepted | reached /s | refusals | lost | duplicated | drain (ms) | load 1 min |\n")
	sb.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range steps {
		drain := "not all"
		if s.drain >= 0 {
			drain = fmt.Sprintf("%.0f", millis(s.drain))
		}
		fmt.Fprintf(&sb, "| %s | %d | %d | %.1f | %d | %d | %d | %s | %.2f |\n",
			s.kind, s.rate, s.accepted, s.reached, s.refused, s.lost, s.duplicated, drain, s.load1)
	}
	sb.WriteString("\nZero-loss rate (highest rate reached at a step that lost nothing):")
	for _, k := range []string{"serfd", "serf"} {
		fmt.Fprintf(&sb, " %s %.1f events/s;", k, best[k])
	}
	if best["serf"] > 0 {
		fmt.Fprintf(&sb, " serfd/Serf %.2f.", best["serfd"]/best["serf"])
	}
	sb.WriteString("\n")
	if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
		b.Fatal(err)
	}
}

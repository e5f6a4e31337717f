package main

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// Burst shape: burstSenders CLI senders on as many different peers send
// burstPerSender user events each, at once, into a cluster of
// SERFD_BENCH_NODES peers.
const (
	burstSenders   = 4
	burstPerSender = 150
)

// burstFigures are the counts of one burst.
type burstFigures struct {
	accepted, refused int // CLI exit 0 / non-zero
	everywhere        int // accepted events whose handler ran on every peer
	lost              int // (accepted event, peer) pairs with no run
	duplicated        int // (accepted event, peer) pairs with more than one run
	drain             time.Duration
}

// runBurst sends the burst and counts, per peer, the runs of each accepted
// event's handler, after the handler files have stopped growing for 30s (or
// every accepted event ran everywhere).
func runBurst(b *testing.B, kind benchKind, n int, eventArgs func(name, payload string) []string) burstFigures {
	b.Helper()
	work := b.TempDir()
	peers := make([]*benchPeer, n)
	for i := range peers {
		peers[i] = kind.start(b, fmt.Sprintf("%s-b%d", kind.name, i), fmt.Sprintf("127.0.%d.%d", kind.subnet+10, i+1), work)
	}
	defer func() {
		for _, p := range peers {
			p.kill()
		}
	}()
	for _, p := range peers[1:] {
		if _, errOut, code := p.cli(b, "join", peers[0].addr); code != 0 {
			b.Fatalf("%s join = exit %d, %q; want exit 0", p.name, code, errOut)
		}
	}
	waitEach(b, time.Now(), 3*time.Minute, fmt.Sprintf("every peer to list %d alive", n), peers,
		func(p *benchPeer) (bool, string) {
			alive, state := countStatus(b, p, "alive")
			return alive == n, state
		})

	var (
		mu       sync.Mutex
		f        burstFigures
		accepted []string
		wg       sync.WaitGroup
	)
	start := time.Now()
	for s := range burstSenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range burstPerSender {
				id := fmt.Sprintf("burst-%d-%03d", s, i)
				_, _, code := peers[s].cli(b, eventArgs("memresponse", id)...)
				mu.Lock()
				if code == 0 {
					accepted = append(accepted, id)
				} else {
					f.refused++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	f.accepted = len(accepted)

	// Wait until every accepted event ran everywhere, or no handler file
	// grew for 30s (runs lost on the way), at most 5 minutes.
	runs := func() int {
		total := 0
		for _, p := range peers {
			total += countLines(p.handled, "burst-")
		}
		return total
	}
	f.drain, _ = waitCount(runs, f.accepted*n, start, 5*time.Minute, 30*time.Second)
	everywhere := make(map[string]int)
	for _, p := range peers {
		runs := make(map[string]int)
		for line := range strings.Lines(readFile(p.handled)) {
			runs[strings.TrimSpace(line)]++
		}
		for _, id := range accepted {
			switch runs[id] {
			case 0:
				f.lost++
			case 1:
				everywhere[id]++
			default:
				f.duplicated++
				everywhere[id]++
			}
		}
	}
	for _, c := range everywhere {
		if c == n {
			f.everywhere++
		}
	}
	return f
}

// BenchmarkBurst: 4 senders on 4 peers send 150 user events each at once
// (one CLI run per event, no pause) into a cluster of SERFD_BENCH_NODES
// (default 10) processes. Every event must end either refused by the CLI
// (exit non-zero, with the reason) or run exactly once on every peer.
// serfd is run twice: with `serfctl event -wait 0` (a busy refusal is
// final) and with the default -wait (the CLI retries busy refusals).
func BenchmarkBurst(b *testing.B) {
	releaseBinaries(b)
	n := benchNodes(b)
	for _, kind := range benchKinds(b) {
		variants := map[string]func(name, payload string) []string{"": kind.eventArgs}
		if kind.name == "serfd" {
			variants["-wait0"] = func(name, payload string) []string {
				return []string{"event", "-wait", "0", name, payload}
			}
		}
		for suffix, args := range variants {
			b.Run(fmt.Sprintf("%s%s-%d", kind.name, suffix, n), func(b *testing.B) {
				for b.Loop() {
					f := runBurst(b, kind, n, args)
					b.Logf("%s%s, %d nodes, %d events from %d senders: %d accepted, %d refused; %d ran on all %d peers; %d lost, %d duplicated (event, peer) runs; drained in %v",
						kind.name, suffix, n, burstSenders*burstPerSender, burstSenders, f.accepted, f.refused,
						f.everywhere, n, f.lost, f.duplicated, f.drain.Round(time.Millisecond))
					b.ReportMetric(float64(f.accepted), "accepted")
					b.ReportMetric(float64(f.refused), "refused")
					b.ReportMetric(float64(f.lost), "lost-runs")
					b.ReportMetric(float64(f.duplicated), "duplicated-runs")
				}
			})
		}
	}
}

// waitCount polls count every 5ms until it reaches n and returns the time
// from start until then, and the count. It gives up when limit has passed
// since start or the count has not grown for stall, and then returns -1.
func waitCount(count func() int, n int, start time.Time, limit, stall time.Duration) (time.Duration, int) {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	last, grew := -1, time.Now()
	for {
		got := count()
		now := time.Now()
		if got >= n {
			return now.Sub(start), got
		}
		if got != last {
			last, grew = got, now
		}
		if now.Sub(start) > limit || now.Sub(grew) > stall {
			return -1, got
		}
		<-tick.C
	}
}

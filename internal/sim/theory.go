package sim

import (
	"math"
	"time"
)

// memberlist's LAN profile, which serfd ships as its default (the figures
// the theory below uses; gossip takes them from memberlist itself).
const (
	GossipInterval  = 200 * time.Millisecond
	GossipNodes     = 3
	ProbeInterval   = time.Second
	SuspicionMult   = 4
	firstRoundDelay = GossipInterval / 2 // the sender's next gossip tick, on average
)

// DisseminationTheory is the time push gossip (each informed node sends
// to GossipNodes random members every GossipInterval) takes to reach the
// fraction q of n nodes: while few nodes are informed their number grows
// by a factor of GossipNodes+1 per round, so half the cluster is reached
// after log_{f+1}(n/2) rounds; the last nodes take ln(n)/f rounds more
// (Pittel's bound for push rumour spreading, log2 n + ln n rounds for one
// target per round, taken with fan-out f). Any q above one half is
// counted as all.
func DisseminationTheory(n int, q float64) time.Duration {
	f := float64(GossipNodes)
	rounds := math.Log(float64(n)/2) / math.Log(f+1)
	if q > 0.5 {
		rounds = math.Log(float64(n))/math.Log(f+1) + math.Log(float64(n))/f
	}
	return firstRoundDelay + time.Duration(rounds*float64(GossipInterval))
}

// SuspicionTimeout is memberlist's minimum suspicion timeout for n nodes:
// SuspicionMult × max(1, log10 n) probe intervals. Lifeguard starts a
// suspicion at six times that and lowers it to this as independent
// confirmations arrive (SuspicionMult-2 of them), which in a large cluster
// take a few probe intervals.
func SuspicionTimeout(n int) time.Duration {
	scale := math.Max(1, math.Log10(math.Max(1, float64(n))))
	return time.Duration(SuspicionMult * scale * float64(ProbeInterval))
}

// DetectionTheory is the time until the fraction q of n nodes sees a node
// that was cut off as failed, by SWIM with Lifeguard: about one probe
// interval until some member probes it (each member probes every other
// once per n-1 intervals, in its own random order, so the first of the
// n-1 probes comes after about one interval), one interval for the direct
// and indirect probes to fail, the minimum suspicion timeout, then the
// dissemination of the verdict.
func DetectionTheory(n int, q float64) time.Duration {
	return ProbeInterval + ProbeInterval + SuspicionTimeout(n) + DisseminationTheory(n, q)
}

package sim

import (
	"math"
	"time"
)

// memberlist's LAN profile, which serfd ships as its default (the figures
// the theory below uses; gossip takes them from memberlist itself).
const (
	GossipInterval = 200 * time.Millisecond
	GossipNodes    = 3
	ProbeInterval  = time.Second
	SuspicionMult  = 4
)

// DisseminationTheory is the time push gossip takes to reach the fraction
// q of n nodes. An informed node passes the message on to GossipNodes
// random members every GossipInterval, each node on its own ticker, and
// memberlist also piggybacks queued broadcasts on every ping and every ack
// it sends: one probe per ProbeInterval, and on average one ack. The
// tickers' phases are independent, so a node informed between two ticks
// sends at its next one, on average half an interval later, and the
// informed set grows as if every informed node sent to one random member
// at the rate λ = GossipNodes/GossipInterval + 2/ProbeInterval (17 per
// second), continuously (the growth rate α of the branching process solves
// f × Σ_k E[e^(-α(D+kI))] = 1 with D uniform on the interval I, which
// gives α = f/I). For that process, first-passage percolation on the
// complete graph (Janson, "One, two and three times log n/n for paths in
// a complete graph with random weights", 1999) gives the time to a
// typical node as ln(n)/λ and the time until every node is reached as
// 2 ln(n)/λ. Half the nodes (q ≤ 0.5) count as typical, any q above as
// all.
//
// An earlier version counted synchronous rounds (log base f+1 of n/2
// rounds to half the nodes, then ln(n)/f more, each a whole interval): the
// simulation reached every node in about half that time, since no node
// waits a whole interval to pass a message on.
func DisseminationTheory(n int, q float64) time.Duration {
	lambda := float64(GossipNodes)/GossipInterval.Seconds() + 2/ProbeInterval.Seconds()
	hops := math.Log(float64(n))
	if q > 0.5 {
		hops *= 2
	}
	return time.Duration(hops / lambda * float64(time.Second))
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

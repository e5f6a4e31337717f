package gossip

import "sync/atomic"

// lamportClock is a Lamport clock safe for concurrent use. Its zero value
// reads 0.
type lamportClock struct {
	counter atomic.Uint64
}

// Time returns the current value.
func (l *lamportClock) Time() uint64 { return l.counter.Load() }

// Increment advances the clock and returns the new value.
func (l *lamportClock) Increment() uint64 { return l.counter.Add(1) }

// Claim returns the current time and advances the clock, in one atomic
// step: every caller gets a time of its own. A message stamped with the
// current time must take it with Claim, never Time then Increment, or two
// concurrent senders share a time and a receiver drops one as a duplicate.
func (l *lamportClock) Claim() uint64 { return l.counter.Add(1) - 1 }

// Witness records that another node has seen time v: the clock moves to v+1
// unless it is already past v.
func (l *lamportClock) Witness(v uint64) {
	for {
		cur := l.counter.Load()
		if v < cur {
			return
		}
		if l.counter.CompareAndSwap(cur, v+1) {
			return
		}
	}
}

package gossip

import (
	"fmt"
	"sync/atomic"
)

const (
	// maxLTime bounds every Lamport time: no clock passes it and no peer's
	// time at or above it is taken. A cluster sending a million messages
	// a second would reach it in about 146,000 years, so only a forged or
	// corrupt time gets there; a uint64 clock could otherwise wrap to 0
	// and drop every later message as old.
	maxLTime = 1 << 62

	// maxLTimeJump bounds how far ahead of the local clock a peer's time
	// may be: more than a new node catching up with any real cluster
	// (about 10^12 messages), far less than the room left below maxLTime.
	maxLTimeJump = 1 << 40
)

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
// unless it is already past v. It never passes maxLTime (so never wraps);
// a peer's time is first checked with check.
func (l *lamportClock) Witness(v uint64) {
	v = min(v, maxLTime-1)
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

// check says why a peer's time v must not be witnessed, if it must not: at
// or above maxLTime, or more than maxLTimeJump ahead of the clock.
func (l *lamportClock) check(v uint64) error {
	cur := l.Time()
	switch {
	case v >= maxLTime:
		return fmt.Errorf("implausible Lamport time %d (at or above 2^62)", v)
	case v > cur && v-cur > maxLTimeJump:
		return fmt.Errorf("implausible Lamport time %d: %d ahead of the local clock %d (the limit is 2^40)", v, v-cur, cur)
	}
	return nil
}

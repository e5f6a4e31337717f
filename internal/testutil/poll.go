package testutil

import (
	"testing"
	"time"
)

// pollEvery is how often Poll and WaitFor evaluate their condition.
const pollEvery = 20 * time.Millisecond

// Poll calls cond every 20ms until it reports true and returns how long
// that took. At timeout it fails the test with what and cond's last
// description of the state.
func Poll(tb testing.TB, timeout time.Duration, what string, cond func() (bool, string)) time.Duration {
	tb.Helper()
	start := time.Now()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		ok, state := cond()
		if ok {
			return time.Since(start)
		}
		select {
		case <-deadline.C:
			if state == "" {
				tb.Fatalf("timed out after %v waiting for %s", timeout, what)
			}
			tb.Fatalf("timed out after %v waiting for %s; last state: %s", timeout, what, state)
		case <-tick.C:
		}
	}
}

// Eventually calls cond every 20ms until it reports true (then it
// returns true) or timeout passes (then false); it never fails the test,
// for a caller that has something to do when the condition does not come.
func Eventually(timeout time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			return cond()
		case <-tick.C:
		}
	}
	return true
}

// WaitFor is Poll for a condition that has no state worth reporting.
func WaitFor(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	Poll(tb, timeout, what, func() (bool, string) { return cond(), "" })
}

// Recv receives from ch, failing the test with what if nothing arrives
// within timeout. A closed channel yields its zero value, as <-ch does.
func Recv[T any](tb testing.TB, ch <-chan T, timeout time.Duration, what string) T {
	tb.Helper()
	v, _ := RecvOK(tb, ch, timeout, what)
	return v
}

// RecvOK is Recv that also reports, as v, ok := <-ch does, whether the
// value came from a send (true) or from the channel being closed (false).
func RecvOK[T any](tb testing.TB, ch <-chan T, timeout time.Duration, what string) (T, bool) {
	tb.Helper()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case v, ok := <-ch:
		return v, ok
	case <-t.C:
		tb.Fatalf("timed out after %v waiting for %s", timeout, what)
		var zero T
		return zero, false
	}
}

package gossip

import (
	"sync"
	"testing"
	"time"
)

// Concurrent claims never share a time.
func TestLamportClockClaimIsAtomic(t *testing.T) {
	var c lamportClock
	c.Increment()
	const workers, per = 4, 1000
	got := make([][]uint64, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range per {
				got[w] = append(got[w], c.Claim())
			}
		}()
	}
	wg.Wait()
	seen := make(map[uint64]bool)
	for _, ts := range got {
		for _, lt := range ts {
			if seen[lt] {
				t.Fatalf("Claim() returned %d twice", lt)
			}
			seen[lt] = true
		}
	}
	if want := uint64(1 + workers*per); c.Time() != want {
		t.Errorf("Time() after %d claims from 1 = %d; want %d", workers*per, c.Time(), want)
	}
}

// Four concurrent senders of the same name and payload: every UserEvent
// that returned nil is delivered, none is taken for a duplicate of another.
func TestConcurrentIdenticalUserEventsAllDelivered(t *testing.T) {
	rec := &recorder{}
	c, err := create(Config{
		NodeName:   "a",
		BindAddr:   "127.0.0.1",
		Profile:    "local",
		EventQueue: 8192,
		OnEvent:    rec.OnEvent,
		Logger:     testLogger(t, "a"),
	}, testTiming())
	if err != nil {
		t.Fatalf("create(a) error: %v", err)
	}
	t.Cleanup(func() { c.Shutdown() })

	const senders, per = 4, 800
	var wg sync.WaitGroup
	errs := make(chan error, senders*per)
	for range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range per {
				if err := c.UserEvent("same", []byte("same"), false); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	accepted := senders * per
	for err := range errs {
		t.Logf("UserEvent refused: %v", err)
		accepted--
	}
	waitFor(t, 30*time.Second, "every accepted event delivered", func() bool { return len(rec.users("same")) >= accepted })
	evs := rec.users("same")
	lts := make(map[uint64]bool)
	for _, ev := range evs {
		if lts[ev.LTime] {
			t.Fatalf("two events delivered with LTime %d", ev.LTime)
		}
		lts[ev.LTime] = true
	}
	if len(evs) != accepted {
		t.Errorf("delivered %d user events; want %d (every accepted one)", len(evs), accepted)
	}
}

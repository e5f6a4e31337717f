package gossip

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/serfd/serfd/internal/testutil"
)

// newHealthNode starts a node on 127.0.0.<host> whose OnEvent is onEvent.
func newHealthNode(t *testing.T, name string, host int, onEvent func(Event)) *Cluster {
	t.Helper()
	c, err := create(Config{
		NodeName: name,
		BindAddr: fmt.Sprintf("127.0.0.%d", host),
		Profile:  "local",
		OnEvent:  onEvent,
		Logger:   testLogger(t, name),
	}, testTiming())
	if err != nil {
		t.Fatalf("create(%s) error: %v", name, err)
	}
	t.Cleanup(func() { c.Shutdown() })
	return c
}

// checkHealth runs CheckHealth with a deadline of d.
func checkHealth(c *Cluster, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return c.CheckHealth(ctx)
}

// TestCheckHealthDeliveryStuck blocks OnEvent on a channel: CheckHealth
// names the stuck delivery and the backlog, and passes once OnEvent returns.
func TestCheckHealthDeliveryStuck(t *testing.T) {
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	var released atomic.Bool
	c := newHealthNode(t, "stuck", 41, func(Event) {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release
	})
	unblock := func() {
		if released.CompareAndSwap(false, true) {
			close(release)
		}
	}
	t.Cleanup(unblock) // before Shutdown, which waits for OnEvent

	select {
	case <-entered: // our own member-join
	case <-time.After(10 * time.Second):
		t.Fatal("OnEvent was not called with the local member-join")
	}
	for i := range 3 {
		if err := c.UserEvent("deploy", []byte{byte(i)}, false); err != nil {
			t.Fatalf("UserEvent(deploy) error: %v", err)
		}
	}
	err := checkHealth(c, 200*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "event delivery stuck for") ||
		!strings.Contains(err.Error(), "with 3 events queued") {
		t.Fatalf("CheckHealth() with OnEvent blocked = %v; want \"event delivery stuck for ... with 3 events queued\"", err)
	}

	unblock()
	if err := checkHealth(c, 5*time.Second); err != nil {
		t.Fatalf("CheckHealth() after OnEvent returned = %v; want nil", err)
	}
}

// TestCheckHealthBusyButMoving keeps a backlog far longer than the check's
// deadline, each OnEvent call short: every check passes.
func TestCheckHealthBusyButMoving(t *testing.T) {
	const events, work, deadline = 100, 20 * time.Millisecond, 250 * time.Millisecond
	var delivered atomic.Int64
	c := newHealthNode(t, "busy", 42, func(ev Event) {
		if ev.Type == EventUser {
			time.Sleep(work) // simulated slow work, not synchronisation
		}
		delivered.Add(1)
	})
	for i := range events {
		if err := c.UserEvent("deploy", []byte(fmt.Sprint(i)), false); err != nil {
			t.Fatalf("UserEvent(deploy) error: %v", err)
		}
	}
	busyChecks := 0
	for delivered.Load() < events+1 { // +1: our own member-join
		queued := len(c.deliver)
		if err := checkHealth(c, deadline); err != nil {
			t.Fatalf("CheckHealth() with %d events queued and moving = %v; want nil", queued, err)
		}
		if queued > 0 {
			busyChecks++
		}
	}
	// The backlog (events*work = 2s) outlasts the deadline many times over:
	// a probe queued behind it would have failed.
	if busyChecks < 3 {
		t.Errorf("checks made with a backlog = %d; want at least 3", busyChecks)
	}
}

// TestCheckHealthMemberlistStuck wedges memberlist's node lock for real:
// with the member lock held, memberlist's failure detector blocks inside
// NotifyLeave while holding its node lock once the peer dies.
func TestCheckHealthMemberlistStuck(t *testing.T) {
	a := newNode(t, "ml-a", 43, nil)
	b := newNode(t, "ml-b", 44, nil)
	if _, err := a.Join([]string{b.addr}, false); err != nil {
		t.Fatalf("Join(%s) error: %v", b.addr, err)
	}
	testutil.WaitFor(t, 10*time.Second, "ml-a to see ml-b alive", func() bool {
		return memberStatus(a.Cluster, "ml-b") == StatusAlive
	})

	a.memberMu.Lock()
	locked := true
	unlock := func() {
		if locked {
			locked = false
			a.memberMu.Unlock()
		}
	}
	defer unlock() // before Shutdown, which waits for the probe
	b.Shutdown()

	var last error
	testutil.WaitFor(t, 30*time.Second, "CheckHealth to report memberlist stuck", func() bool {
		last = checkHealth(a.Cluster, 200*time.Millisecond)
		return last != nil
	})
	if !strings.Contains(last.Error(), "memberlist state unreadable") {
		t.Fatalf("CheckHealth() with memberlist's node lock held = %v; want \"memberlist state unreadable ...\"", last)
	}

	unlock()
	testutil.WaitFor(t, 10*time.Second, "CheckHealth to pass again", func() bool {
		last = checkHealth(a.Cluster, time.Second)
		return last == nil
	})
}

// TestCheckHealthShutdown: a shut down cluster is not healthy.
func TestCheckHealthShutdown(t *testing.T) {
	n := newNode(t, "gone", 45, nil)
	if err := checkHealth(n.Cluster, time.Second); err != nil {
		t.Fatalf("CheckHealth() on a running node = %v; want nil", err)
	}
	n.Shutdown()
	if err := checkHealth(n.Cluster, time.Second); err == nil || !strings.Contains(err.Error(), "shut down") {
		t.Fatalf("CheckHealth() after Shutdown = %v; want \"cluster is shut down\"", err)
	}
}

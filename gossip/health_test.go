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
		select { // bounded: the test releases it long before
		case <-release:
		case <-time.After(2 * settle):
		}
	})
	unblock := func() {
		if released.CompareAndSwap(false, true) {
			close(release)
		}
	}
	t.Cleanup(unblock) // before Shutdown, which waits for OnEvent

	testutil.Recv(t, entered, settle, "OnEvent with the local member-join") // our own member-join
	for i := range 3 {
		if err := c.UserEvent("deploy", []byte{byte(i)}, false); err != nil {
			t.Fatalf("UserEvent(deploy) error: %v", err)
		}
	}
	err := checkHealth(c, time.Second)
	if err == nil || !strings.Contains(err.Error(), "event delivery stuck for") ||
		!strings.Contains(err.Error(), "with 3 events queued") {
		t.Fatalf("CheckHealth() with OnEvent blocked = %v; want \"event delivery stuck for ... with 3 events queued\"", err)
	}

	unblock()
	if err := checkHealth(c, 5*time.Second); err != nil {
		t.Fatalf("CheckHealth() after OnEvent returned = %v; want nil", err)
	}
}

// TestCheckHealthBusyButMoving keeps a backlog that cannot drain before
// the check's deadline, since each OnEvent call waits for the test to let
// it return: a check made while a call is in progress passes as soon as
// one call returns, with the rest of the backlog still queued. Only the
// order of events matters, not how fast the machine is.
func TestCheckHealthBusyButMoving(t *testing.T) {
	const events = 20
	entered := make(chan struct{}, events+1)
	step := make(chan struct{})
	done := make(chan struct{})
	c := newHealthNode(t, "busy", 42, func(ev Event) {
		if ev.Type != EventUser {
			return
		}
		entered <- struct{}{}
		select {
		case <-step:
		case <-done:
		case <-time.After(2 * settle):
		}
	})
	t.Cleanup(func() { close(done) }) // before Shutdown, which waits for OnEvent
	for i := range events {
		if err := c.UserEvent("deploy", []byte(fmt.Sprint(i)), false); err != nil {
			t.Fatalf("UserEvent(deploy) error: %v", err)
		}
	}
	for i := range 3 {
		testutil.Recv(t, entered, settle, fmt.Sprintf("OnEvent call %d to start", i+1))
		errc := make(chan error, 1)
		go func() { errc <- checkHealth(c, settle) }()
		testutil.WaitFor(t, settle, "CheckHealth to wait for the OnEvent call", func() bool { return healthWaiting(c) })
		select {
		case step <- struct{}{}:
		case <-time.After(settle):
			t.Fatalf("OnEvent call %d does not take its step", i+1)
		}
		if err := testutil.Recv(t, errc, settle, "CheckHealth to return"); err != nil {
			t.Fatalf("CheckHealth() with OnEvent call %d returning = %v; want nil", i+1, err)
		}
		if queued := len(c.deliver); queued < events-i-3 {
			t.Fatalf("CheckHealth() passed with %d events queued; want the backlog of %d still there", queued, events-i-3)
		}
	}
}

// healthWaiting reports whether a CheckHealth call waits for the OnEvent
// call in progress to return.
func healthWaiting(c *Cluster) bool {
	c.health.mu.Lock()
	defer c.health.mu.Unlock()
	return c.health.moved != nil
}

// TestCheckHealthMemberlistStuck wedges memberlist's node lock for real:
// with the member lock held, memberlist's failure detector blocks inside
// NotifyLeave while holding its node lock once the peer dies.
func TestCheckHealthMemberlistStuck(t *testing.T) {
	a := newNode(t, "ml-a", 43, nil)
	b := newNode(t, "ml-b", 44, nil)
	if _, err := a.Join(t.Context(), []string{b.addr}, false); err != nil {
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

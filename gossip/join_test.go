package gossip

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/serfd/serfd/internal/testutil"
)

// wanNode is a node with the wan profile: memberlist's TCP timeout is 30s,
// far longer than any wait of these tests.
func wanNode(t *testing.T, name string) *Cluster {
	t.Helper()
	c, err := create(Config{NodeName: name, BindAddr: "127.0.0.1", Profile: "wan", Logger: testLogger(t, name)}, testTiming())
	if err != nil {
		t.Fatalf("create(%s) error: %v", name, err)
	}
	t.Cleanup(func() { c.Shutdown() })
	return c
}

// A join to an address that never answers returns when its context ends,
// and a second join waits for the first only as long as its own context
// allows.
func TestJoinReturnsWhenContextEnds(t *testing.T) {
	hole, accepted := testutil.SilentListener(t)
	c := wanNode(t, "a")

	ctx, cancel := context.WithCancel(t.Context())
	type result struct {
		n   int
		err error
	}
	res := make(chan result, 1)
	go func() {
		n, err := c.Join(ctx, []string{hole}, false)
		res <- result{n, err}
	}()
	select { // the join is under way: memberlist connected and waits for an answer
	case <-accepted:
	case <-time.After(30 * time.Second):
		t.Fatal("the join never connected to the black hole")
	}
	cancel()
	select {
	case r := <-res:
		if r.n != 0 || !errors.Is(r.err, context.Canceled) {
			t.Errorf("Join(black hole) after cancel = %d, %v; want 0 and context.Canceled", r.n, r.err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Join(black hole) did not return after its context was cancelled")
	}

	// The first attempt still runs in the background: a second join with a
	// cancelled context gives up waiting for it.
	done, stop := context.WithCancel(t.Context())
	stop()
	if n, err := c.Join(done, []string{hole}, false); n != 0 || !errors.Is(err, context.Canceled) {
		t.Errorf("second Join with a cancelled context = %d, %v; want 0 and context.Canceled", n, err)
	}
}

// Shutdown aborts a join in progress instead of waiting for memberlist's
// TCP timeout: the black hole sees its connection closed.
func TestShutdownAbortsJoinInProgress(t *testing.T) {
	hole, accepted := testutil.SilentListener(t)
	c := wanNode(t, "a")
	go c.Join(context.Background(), []string{hole}, false)
	var conn net.Conn
	select {
	case conn = <-accepted:
	case <-time.After(30 * time.Second):
		t.Fatal("the join never connected to the black hole")
	}
	shut := make(chan error, 1)
	go func() { shut <- c.Shutdown() }()
	select {
	case err := <-shut:
		if err != nil {
			t.Errorf("Shutdown() = %v; want nil", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Shutdown() waited for the join to an address that never answers")
	}
	// The connection was closed by us, not left to its deadline.
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.ReadAll(conn); err != nil {
		t.Errorf("reading the aborted join's connection: %v; want EOF", err)
	}
}

// After each successful join the node exchanges its whole state with an
// alive member once at each catch-up delay (catchup.go), then stops; the
// next join starts the series again.
func TestJoinCatchesUp(t *testing.T) {
	s := newNode(t, "s", 1, nil)
	a := newNodeTiming(t, "a", 2, func(tm *timing) {
		tm.catchUp = []time.Duration{10 * time.Millisecond, 10 * time.Millisecond, 10 * time.Millisecond}
	})
	if a.catchUps.Load() != 0 || a.catchingUp.Load() {
		t.Fatal("catch-ups before any join")
	}
	for joins := uint64(1); joins <= 2; joins++ {
		if _, err := a.Join(t.Context(), []string{s.addr}, false); err != nil {
			t.Fatal(err)
		}
		testutil.WaitFor(t, 30*time.Second, fmt.Sprintf("the catch-ups after join %d", joins), func() bool {
			return !a.catchingUp.Load() && a.catchUps.Load() > 3*(joins-1)
		})
		if got := a.catchUps.Load(); got != 3*joins {
			t.Fatalf("%d catch-up push/pulls after %d joins; want %d", got, joins, 3*joins)
		}
	}
	if s.catchUps.Load() != 0 {
		t.Error("the seed, which joined nobody, caught up")
	}
	if memberStatus(a.Cluster, "s") != StatusAlive || memberStatus(s.Cluster, "a") != StatusAlive {
		t.Error("the catch-ups disturbed the membership")
	}
}

package sim

import (
	"context"
	"testing"
	"time"
)

// The network delivers packets, loses the configured share of them, and a
// killed node neither sends nor receives.
func TestNetworkLoss(t *testing.T) {
	n := NewNetwork(1)
	a, err := n.NewTransport(AddrOf(0))
	if err != nil {
		t.Fatal(err)
	}
	b, err := n.NewTransport(AddrOf(1))
	if err != nil {
		t.Fatal(err)
	}
	send := func(count int) int {
		for range count {
			if _, err := a.WriteTo([]byte("x"), AddrOf(1)); err != nil {
				t.Fatal(err)
			}
		}
		got := 0
		for {
			select {
			case <-b.PacketCh():
				got++
			default:
				return got
			}
		}
	}
	if got := send(1000); got != 1000 {
		t.Errorf("without loss %d of 1000 packets arrived", got)
	}
	n.SetLoss(0.25)
	if got := send(2000); got < 1300 || got > 1700 {
		t.Errorf("with 25 %% loss %d of 2000 packets arrived; want about 1500", got)
	}
	n.SetLoss(0)
	b.Kill()
	if got := send(10); got != 0 {
		t.Errorf("%d packets reached a killed node", got)
	}
	if _, err := a.DialTimeout(AddrOf(1), time.Second); err == nil {
		t.Error("a stream reached a killed node")
	}
}

// A small simulated cluster forms from a join storm, spreads a user event
// to every node and sees a node cut off fail everywhere.
func TestSmallCluster(t *testing.T) {
	c := stormed(t, 20, 1, 1, 8)
	if err := Poll(60*time.Second, 50*time.Millisecond, "20 nodes converged", c.Converged); err != nil {
		t.Fatal(err)
	}
	s, err := c.UserEventSpread("hello", 60*time.Second)
	if err != nil || s.Missing != 0 || len(s.Offsets) != 20 {
		t.Fatalf("user event spread: %+v, %v; want all 20", s, err)
	}
	f, err := c.FailureSpread(90 * time.Second)
	if err != nil || f.Missing != 0 {
		t.Fatalf("failure spread: %+v, %v; want all 19 others", f, err)
	}
	if got := c.FalselyFailed(); len(got) != 1 || got[0] != c.Nodes[19].Name {
		t.Errorf("members seen failed = %v; want only %s", got, c.Nodes[19].Name)
	}
}

// AutoScale keeps the profile's periods up to NodesPerCPU nodes per CPU
// and slows down in proportion past it; Stretch and Fleet undo each other.
func TestAutoScale(t *testing.T) {
	for _, c := range []struct {
		n, cpus int
		want    float64
	}{{20, 2, 1}, {250, 2, 1}, {500, 2, 2}, {1000, 2, 4}, {2000, 2, 8}, {1000, 8, 1}, {1000, 0, 8}} {
		if got := AutoScale(c.n, c.cpus); got != c.want {
			t.Errorf("AutoScale(%d, %d) = %v; want %v", c.n, c.cpus, got, c.want)
		}
	}
	c := &Cluster{Scale: 4}
	if got := c.Stretch(time.Second); got != 4*time.Second {
		t.Errorf("Stretch(1s) at scale 4 = %v", got)
	}
	if got := c.Fleet(4 * time.Second); got != time.Second {
		t.Errorf("Fleet(4s) at scale 4 = %v", got)
	}
}

// A join storm of 100 nodes converges within a minute: without the
// catch-up push/pulls after each join (gossip/catchup.go), about half of
// such storms left a node missing a member, memberlist included, until
// the periodic push/pull (every 90 s at 100 nodes). The periods run at
// twice the profile's, so that a loaded machine keeps up.
func TestJoinStormConverges(t *testing.T) {
	if testing.Short() {
		t.Skip("a storm of 100 nodes")
	}
	c := stormed(t, 100, 7, 2, StormJoins)
	if err := Poll(c.Stretch(60*time.Second), 100*time.Millisecond, "100 nodes converged", c.Converged); err != nil {
		t.Fatalf("%v: %d nodes do not see every node alive", err, c.Unconverged())
	}
}

// stormed is a cluster of n nodes (NewCluster's seed and scale) after
// JoinAll with parallel joins in flight, shut down when the test ends.
func stormed(t *testing.T, n int, seed uint64, scale float64, parallel int) *Cluster {
	t.Helper()
	c, err := NewCluster(n, seed, scale)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if _, err := c.JoinAll(context.Background(), parallel); err != nil {
		t.Fatal(err)
	}
	return c
}

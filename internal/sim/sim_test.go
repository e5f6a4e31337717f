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
	c, err := NewCluster(20, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.JoinAll(context.Background(), 8); err != nil {
		t.Fatal(err)
	}
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

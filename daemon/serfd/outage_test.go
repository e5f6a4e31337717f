package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestClusterReformsAfterEveryNodeReboots is Serf #333 with serfd
// processes: three nodes with snapshots and no join in their configuration
// are stopped one after another as a reboot stops them (SIGTERM: a
// graceful leave), each once the others saw it leave, then started again
// in the same order, each once the one before is up. With
// rejoin_after_leave, as the shipped configuration sets it, the cluster
// forms again by itself: the first node back lists as alive only peers that
// are still down, and the last one lists no peer alive at all.
func TestClusterReformsAfterEveryNodeReboots(t *testing.T) {
	names := []string{"r1", "r2", "r3"}
	nodes := make([]*node, len(names))
	for i, name := range names {
		state := filepath.Join(t.TempDir(), "snapshot")
		nodes[i] = startNode(t, name, fmt.Sprintf("127.0.0.%d", 131+i),
			fmt.Sprintf("snapshot_path = %q\nrejoin_after_leave = true\nsnapshot_retention = \"1h\"\n", state))
	}
	for _, n := range nodes[1:] {
		if out, errOut, code := n.ctl(t, "join", nodes[0].addr); code != 0 {
			t.Fatalf("%s: serfctl join %s = %q %q exit %d; want exit 0", n.name, nodes[0].addr, out, errOut, code)
		}
	}
	for _, n := range nodes {
		n.waitStatus(t, 30*time.Second, "alive", names...)
	}

	for i, n := range nodes {
		if err := n.proc.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := n.proc.Wait(t, 30*time.Second); err != nil {
			t.Fatalf("serfd %s after SIGTERM exited with %v; want exit 0", n.name, err)
		}
		for _, o := range nodes[i+1:] {
			o.waitStatus(t, 30*time.Second, "left", n.name)
		}
	}

	for _, n := range nodes {
		n.launch(t) // returns once its control socket answers
	}
	for _, n := range nodes {
		n.waitStatus(t, 30*time.Second, "alive", names...)
	}
	// The second back and the first found each other (the second through
	// the first's left record, unless the first's retries reached it
	// before); the last back, whose snapshot lists no peer alive, found
	// the second through its left record, the latest.
	logOf := func(i int) string { return nodes[i].proc.Out.String() }
	if !strings.Contains(logOf(1), "rejoined the cluster through r1 (") && !strings.Contains(logOf(0), "rejoined the cluster through r2 (") {
		t.Errorf("neither r2's log says it rejoined through r1 nor r1's that it rejoined through r2")
	}
	if want := "rejoined the cluster through r2 ("; !strings.Contains(logOf(2), want) {
		t.Errorf("serfd r3's log does not say %q", want)
	}
}

package gossip

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/serfd/serfd/internal/testutil"
)

// aliveCount is how many members c lists alive, itself included.
func aliveCount(c *Cluster) int {
	n := 0
	for _, m := range c.Members() {
		if m.Status == StatusAlive {
			n++
		}
	}
	return n
}

// TestClusterReformsAfterFullOutage is Serf #333: the nodes of a cluster
// go down one after another, each after the others saw the one before go,
// then come back in the same order with their snapshots and no join
// configured. The first one down knows only peers that are not up yet when
// it starts; the last one down knows no peer alive. The cluster must form
// again by itself, after a crash of every node and after a planned
// shutdown where every node leaves (with rejoin_after_leave, as the
// shipped configuration sets it). Skipped in short mode.
func TestClusterReformsAfterFullOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode: about half a minute of nodes seeing each other fail and rejoining")
	}
	for _, tc := range []struct {
		name    string
		planned bool // each node leaves before it stops
		host    int  // first of three loopback addresses
	}{
		{"crash", false, 221},
		{"planned shutdown", true, 224},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			names := []string{"a", "b", "c"}
			ports := make([]int, len(names))
			for i := range names {
				ports[i] = testutil.FreePort(t, fmt.Sprintf("127.0.0.%d", tc.host+i))
			}
			start := func(i int) *node {
				t.Helper()
				return startNode(t, Config{NodeName: names[i], BindPort: ports[i],
					SnapshotPath: filepath.Join(dir, names[i]), RejoinAfterLeave: tc.planned}, tc.host+i, testTiming())
			}
			waitAllAlive := func(nodes []*node, what string) {
				t.Helper()
				for _, n := range nodes {
					testutil.Poll(t, settle, n.LocalMember().Name+" to list 3 alive members "+what, func() (bool, string) {
						return aliveCount(n.Cluster) == 3, fmt.Sprint(n.Members())
					})
				}
			}

			nodes := make([]*node, len(names))
			for i := range names {
				nodes[i] = start(i)
			}
			for _, n := range nodes[1:] {
				if got, err := n.Join(t.Context(), []string{nodes[0].addr}, true); got != 1 || err != nil {
					t.Fatalf("%s.Join(a) = %d, %v; want 1, nil", n.LocalMember().Name, got, err)
				}
			}
			waitAllAlive(nodes, "before the outage")

			// Down one after another: a, then b once c saw a go, then c
			// once it saw b go.
			gone := StatusFailed
			if tc.planned {
				gone = StatusLeft
			}
			for i, n := range nodes {
				if tc.planned {
					if err := n.Leave(); err != nil {
						t.Fatalf("%s.Leave() = %v; want nil", names[i], err)
					}
				}
				if err := n.Shutdown(); err != nil {
					t.Fatalf("%s.Shutdown() = %v; want nil", names[i], err)
				}
				for _, o := range nodes[i+1:] {
					// Longer than settle: the last member alive has no
					// peer to confirm its suspicion, so memberlist waits
					// its longest suspicion timeout (18s at the local
					// profile) before it declares the other failed.
					testutil.WaitFor(t, 3*settle, fmt.Sprintf("%s to see %s %v", o.LocalMember().Name, names[i], gone),
						func() bool { return memberStatus(o.Cluster, names[i]) == gone })
				}
			}

			// Back in the same order, each once the one before is up; no
			// join but the automatic rejoin from the snapshot.
			for i := range names {
				nodes[i] = start(i)
			}
			waitAllAlive(nodes, "after the restart")
		})
	}
}

// writeSnapshot writes records to a new snapshot at path through the
// snapshotter, as a running node would.
func writeSnapshot(t *testing.T, path string, records ...snapRecord) {
	t.Helper()
	s, err := openSnapshotter(path, false, defaultSnapshotRetention, testLogger(t, "snapshot"))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range records {
		s.apply(r)
	}
	s.close()
}

// bufferedLogger is a logger at info level whose records the test reads,
// printed if the test fails.
func bufferedLogger(t *testing.T, name string) (*slog.Logger, *testutil.Buffer) {
	buf := &testutil.Buffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log of %s:\n%s", name, buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelInfo})), buf
}

// TestRejoinSkipsExpiredAddresses: an address the snapshot recorded as
// failed longer ago than the retention is never tried, though a node
// answers there; one within the retention is retried until it expires
// too, then the rejoin gives up.
func TestRejoinSkipsExpiredAddresses(t *testing.T) {
	d := startNode(t, Config{NodeName: "d"}, 227, testTiming()) // up, at an expired address
	deadAddr := net.JoinHostPort("127.0.0.228", strconv.Itoa(testutil.FreePort(t, "127.0.0.228")))
	const retention = 5 * time.Second
	now := time.Now().Unix()
	path := filepath.Join(t.TempDir(), "snapshot")
	writeSnapshot(t, path,
		snapRecord{kind: snapAlive, name: "d", addr: d.addr},
		snapRecord{kind: snapFailed, name: "d", addr: d.addr, at: now - 3600},
		snapRecord{kind: snapAlive, name: "e", addr: deadAddr},
		snapRecord{kind: snapLeft, name: "e", addr: deadAddr, at: now},
	)

	log, out := bufferedLogger(t, "x")
	x, err := create(Config{NodeName: "x", BindAddr: "127.0.0.229", Profile: "local", SnapshotPath: path,
		SnapshotRetention: retention, Logger: log}, testTiming())
	if err != nil {
		t.Fatalf("create(x) = %v", err)
	}
	t.Cleanup(func() { x.Shutdown() })

	testutil.Poll(t, settle, "x to give up rejoining once e's address expired", func() (bool, string) {
		return strings.Contains(out.String(), "gave up rejoining the cluster through the snapshot"), out.Tail(500)
	})
	log2 := out.String()
	for _, want := range []string{"forgot 1 failed or left members of the snapshot", "trying to rejoin through e (" + deadAddr + ")",
		"no longer trying to rejoin through e (" + deadAddr + "), recorded left"} {
		if !strings.Contains(log2, want) {
			t.Errorf("x's log does not say %q", want)
		}
	}
	if strings.Contains(log2, d.addr) {
		t.Errorf("x's log names d's expired address %s; want it never tried", d.addr)
	}
	if got := memberStatus(d.Cluster, "x"); got != StatusNone {
		t.Errorf("d sees x %v; want x never to have joined d", got)
	}
	if got := aliveCount(x); got != 1 {
		t.Errorf("x lists %d alive members; want only itself", got)
	}
}

// TestStockSerfSkipsDepartureRecords: stock Serf replays a snapshot serfd
// wrote with failed and left records: it skips those lines and rejoins the
// peer recorded alive, never the one that failed.
func TestStockSerfSkipsDepartureRecords(t *testing.T) {
	bin := testutil.SerfBin(t)
	e := startNode(t, Config{NodeName: "e"}, 231, testTiming()) // recorded alive
	d := startNode(t, Config{NodeName: "d"}, 232, testTiming()) // recorded failed, yet up
	now := time.Now().Unix()
	path := filepath.Join(t.TempDir(), "snapshot")
	writeSnapshot(t, path,
		snapRecord{kind: snapAlive, name: "e", addr: e.addr},
		snapRecord{kind: snapAlive, name: "d", addr: d.addr},
		snapRecord{kind: snapFailed, name: "d", addr: d.addr, at: now},
		snapRecord{kind: snapAlive, name: "l", addr: "127.0.0.233:7946"},
		snapRecord{kind: snapLeft, name: "l", addr: "127.0.0.233:7946", at: now},
	)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), "\nfailed: d ") || !strings.Contains(string(raw), "\nleft: l ") {
		t.Fatalf("snapshot = %q; want failed and left records", raw)
	}

	const ip = "127.0.0.230"
	gossipPort, rpcPort := testutil.FreePort(t, ip), testutil.FreePort(t, ip)
	rpc := net.JoinHostPort(ip, strconv.Itoa(rpcPort))
	out := startStockAgent(t, bin, "stock", ip, gossipPort, rpc, "-snapshot", path)
	testutil.Poll(t, settle, "stock Serf to rejoin e from the snapshot", func() (bool, string) {
		return strings.Contains(out.String(), "Re-joined to previously known node: e: "), out.Tail(2000)
	})
	log := out.String()
	for _, want := range []string{"Unrecognized snapshot line: failed: d ", "Unrecognized snapshot line: left: l "} {
		if !strings.Contains(log, want) {
			t.Errorf("stock Serf's log does not say %q", want)
		}
	}
	if strings.Contains(log, "previously known node: d:") || strings.Contains(log, "previously known node: l:") {
		t.Errorf("stock Serf tried to rejoin d or l, recorded failed and left; log:\n%s", log)
	}
	testutil.WaitFor(t, settle, "e to see stock alive", func() bool { return memberStatus(e.Cluster, "stock") == StatusAlive })
	if got := memberStatus(d.Cluster, "stock"); got != StatusNone {
		t.Errorf("d sees stock %v; want stock never to have joined d", got)
	}
}

// The rejoin runs beside the node: Create returns while an attempt waits
// on a peer that never answers (the wan profile's TCP timeout is 30s, the
// attempt's bound 10s), and Shutdown ends that attempt at once.
func TestRejoinNeverBlocksStartOrShutdown(t *testing.T) {
	hole, accepted := testutil.SilentListener(t)
	path := filepath.Join(t.TempDir(), "snapshot")
	writeSnapshot(t, path,
		snapRecord{kind: snapAlive, name: "hole", addr: hole},
		snapRecord{kind: snapFailed, name: "hole", addr: hole, at: time.Now().Unix()})
	c, err := create(Config{NodeName: "x", BindAddr: "127.0.0.234", Profile: "wan", SnapshotPath: path,
		Logger: testLogger(t, "x")}, testTiming())
	if err != nil {
		t.Fatalf("create(x) = %v", err)
	}
	t.Cleanup(func() { c.Shutdown() })
	testutil.Recv(t, accepted, settle, "the rejoin to connect to the peer that never answers")
	shut := make(chan error, 1)
	go func() { shut <- c.Shutdown() }()
	if err := testutil.Recv(t, shut, rejoinAttemptTimeout-2*time.Second, "Shutdown during a rejoin attempt"); err != nil {
		t.Errorf("Shutdown() = %v; want nil", err)
	}
}

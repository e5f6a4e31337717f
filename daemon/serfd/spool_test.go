package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/serfd/serfd/ctl"

	"github.com/serfd/serfd/internal/testutil"
)

// spoolHandler records "start ID" and "end ID" around a pause for each
// user event "spool", ID being the payload, so that a run that finished is
// told from one that was killed half-way.
const spoolHandler = `#!/bin/sh
[ "$SERF_USER_EVENT" = spool ] || exit 0
id=$(cat)
echo "start $id" >> '%[1]s'
sleep 0.4
echo "end $id" >> '%[1]s'
`

// spoolRuns counts the start and end lines of a spoolHandler log by ID.
func spoolRuns(path string) (starts, ends map[int]int) {
	starts, ends = map[int]int{}, map[int]int{}
	for line := range strings.Lines(readFile(path)) {
		what, id, ok := strings.Cut(strings.TrimSpace(line), " ")
		n, err := strconv.Atoi(id)
		if !ok || err != nil {
			continue
		}
		switch what {
		case "start":
			starts[n]++
		case "end":
			ends[n]++
		}
	}
	return starts, ends
}

// stateConfig is config for a node whose snapshot, and so handler spool
// ("runs" beside it), lie in a directory of the test's.
func stateConfig(t *testing.T) (config, spool string) {
	state := t.TempDir()
	return fmt.Sprintf("snapshot_path = %q\n", filepath.Join(state, "snapshot")), filepath.Join(state, "runs")
}

// killMidQueue has sender send 12 user events that handler (with a spool
// at spool) runs slowly, then 3 more just before it kills handler's serfd
// with SIGKILL while one run is half-way and others wait (so that, should
// the kill fall before gossip recorded their delivery, a peer delivers them
// again), starts it again on the same state, and checks that every
// event's handler ran exactly once, except the run that was in flight at
// the kill, which runs again from the start; nothing that had finished
// runs again.
func killMidQueue(t *testing.T, sender, handler *node, spool string) {
	t.Helper()
	log := filepath.Join(handler.dir, "runs.log")
	if err := os.WriteFile(filepath.Join(handler.dir, "handlers.d", "slow"), []byte(fmt.Sprintf(spoolHandler, log)), 0o755); err != nil {
		t.Fatal(err)
	}
	// Through the Go client rather than serfctl, so that the events come
	// faster than the handler runs and queue up.
	const first, events = 12, 15
	client := ctl.NewClient(sender.socket)
	send := func(from, to int) {
		for i := from; i <= to; i++ {
			if _, err := client.Event(t.Context(), ctl.EventRequest{Name: "spool", Payload: []byte(strconv.Itoa(i))}); err != nil {
				t.Fatalf("Event(spool %d) = %v; want nil", i, err)
			}
		}
		testutil.Poll(t, 20*time.Second, fmt.Sprintf("events up to %d in the spool", to), func() (bool, string) {
			got := strings.Count(readFile(spool), `"user_event":"spool"`)
			return got == to, fmt.Sprintf("%d run records", got)
		})
	}
	send(1, first)
	var cut int
	testutil.Poll(t, 20*time.Second, "3 runs to end and the next to start", func() (bool, string) {
		starts, ends := spoolRuns(log)
		cut = 0
		for id := range starts {
			if ends[id] == 0 {
				cut = id
			}
		}
		return len(ends) >= 3 && cut != 0, fmt.Sprintf("starts %v, ends %v", starts, ends)
	})
	send(first+1, events)
	if _, ends := spoolRuns(log); ends[cut] != 0 {
		t.Fatalf("the run of event %d ended before the kill; the test needs a slower handler", cut)
	}
	if err := handler.proc.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-handler.proc.Exited():
	case <-time.After(10 * time.Second):
		t.Fatal("serfd did not die of SIGKILL")
	}
	if _, ends := spoolRuns(log); len(ends) >= events {
		t.Fatalf("every run ended before the kill (%v); the test proves nothing", ends)
	}
	// The script has its own process group and outlives serfd (under
	// systemd the unit's cgroup is killed with it). Let it end, so that
	// what it writes is not taken for a run of the next serfd.
	testutil.Poll(t, 10*time.Second, "the run cut short to be gone", func() (bool, string) {
		_, ends := spoolRuns(log)
		return ends[cut] == 1, fmt.Sprintf("ends %v", ends)
	})

	handler.launch(t)
	testutil.Poll(t, 30*time.Second, "every event's run to end", func() (bool, string) {
		_, ends := spoolRuns(log)
		return len(ends) == events && ends[cut] == 2, fmt.Sprintf("ends %v", ends)
	})
	if !regexp.MustCompile(`msg="resuming \d+ handler runs from before the restart \(\d+ cut short\)"`).MatchString(handler.proc.Out.String()) {
		t.Errorf("serfd's log after the restart has no \"resuming N handler runs from before the restart (M cut short)\" record")
	}
	var info struct {
		HandlerPool struct{ Spool string } `json:"handler_pool"`
	}
	handler.ctlJSON(t, &info, "info")
	if info.HandlerPool.Spool != spool {
		t.Errorf("serfctl info handler_pool.spool = %q; want %q", info.HandlerPool.Spool, spool)
	}
	handler.stop(t)
	starts, ends := spoolRuns(log)
	for id := 1; id <= events; id++ {
		want := 1
		if id == cut {
			want = 2 // running at the kill: it runs again after the restart
		}
		if ends[id] != want || starts[id] != want {
			t.Errorf("event %d: %d starts, %d ends; want %d of each", id, starts[id], ends[id], want)
		}
	}
}

// A lone serfd killed mid-queue runs the rest after a restart.
func TestHandlerRunsSurviveKill(t *testing.T) {
	t.Parallel()
	cfg, spool := stateConfig(t)
	n := startNode(t, "k1", "127.0.0.101", cfg)
	killMidQueue(t, n, n, spool)
}

// A serfd killed mid-queue rejoins from its snapshot and its peer's
// push/pull: the events its handlers had are not run again, those whose
// runs were pending run from the spool, once.
func TestHandlerRunsSurviveKillInCluster(t *testing.T) {
	t.Parallel()
	sender := startNode(t, "kc1", "127.0.0.102", "")
	cfg, spool := stateConfig(t)
	handler := startNode(t, "kc2", "127.0.0.103", cfg+fmt.Sprintf("join = [%q]\n", sender.addr))
	sender.waitStatus(t, 20*time.Second, "alive", "kc1", "kc2")
	killMidQueue(t, sender, handler, spool)
}

// stop stops serfd with SIGTERM and waits for it to exit.
func (n *node) stop(t *testing.T) {
	t.Helper()
	if err := n.proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-n.proc.Exited():
	case <-time.After(30 * time.Second):
		t.Fatalf("serfd %s did not exit after SIGTERM", n.name)
	}
}

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/serfd/serfd/ctl"
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

// serfd killed with SIGKILL while a handler is slow and runs are queued:
// started again on the same state directory, it runs every event's
// handler exactly once, except the run that was in flight at the kill,
// which runs again from the start; nothing that had finished runs again.
func TestHandlerRunsSurviveKill(t *testing.T) {
	t.Parallel()
	n := startNode(t, "k1", "127.0.0.101", "")
	log := filepath.Join(n.dir, "runs.log")
	if err := os.WriteFile(filepath.Join(n.dir, "handlers.d", "slow"), []byte(fmt.Sprintf(spoolHandler, log)), 0o755); err != nil {
		t.Fatal(err)
	}
	// The spool lies beside the snapshot, which needs the node's
	// directory, known only now: restart with it.
	cfgPath := filepath.Join(n.dir, "config.hcl")
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg = append(cfg, fmt.Sprintf("snapshot_path = %q\n", filepath.Join(n.dir, "snapshot"))...)
	if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	n.stop(t)
	n.launch(t)

	// Through the Go client rather than serfctl, so that the events come
	// faster than the handler runs and queue up.
	const events = 12
	client := ctl.NewClient(n.socket)
	for i := 1; i <= events; i++ {
		if _, err := client.Event(t.Context(), ctl.EventRequest{Name: "spool", Payload: []byte(strconv.Itoa(i))}); err != nil {
			t.Fatalf("Event(spool %d) = %v; want nil", i, err)
		}
	}
	spool := filepath.Join(n.dir, "runs")
	waitFor(t, 20*time.Second, "every event in the spool", func() (bool, string) {
		got := strings.Count(readFile(spool), `"user_event":"spool"`)
		return got == events, fmt.Sprintf("%d run records", got)
	})
	// Kill while a run is half-way and some have finished.
	var cut int
	waitFor(t, 20*time.Second, "3 runs to end and the next to start", func() (bool, string) {
		starts, ends := spoolRuns(log)
		cut = 0
		for id := range starts {
			if ends[id] == 0 {
				cut = id
			}
		}
		return len(ends) >= 3 && cut != 0, fmt.Sprintf("starts %v, ends %v", starts, ends)
	})
	if err := syscall.Kill(n.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-n.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("serfd did not die of SIGKILL")
	}
	_, endsAtKill := spoolRuns(log)
	if len(endsAtKill) >= events {
		t.Fatalf("every run ended before the kill (%v); the test proves nothing", endsAtKill)
	}
	// The script has its own process group and outlives serfd (under
	// systemd the unit's cgroup is killed with it). Let it end, so that
	// what it writes is not taken for a run of the next serfd.
	waitFor(t, 10*time.Second, "the run cut short to be gone", func() (bool, string) {
		_, ends := spoolRuns(log)
		return ends[cut] == 1, fmt.Sprintf("ends %v", ends)
	})

	n.launch(t)
	waitFor(t, 30*time.Second, "every event's run to end", func() (bool, string) {
		_, ends := spoolRuns(log)
		return len(ends) == events && ends[cut] == 2, fmt.Sprintf("ends %v", ends)
	})
	if !strings.Contains(n.logs.String(), "resuming handler runs from before the restart") {
		t.Errorf("serfd's log after the restart has no \"resuming handler runs\" record")
	}
	n.stop(t)
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

// stop stops serfd with SIGTERM and waits for it to exit.
func (n *node) stop(t *testing.T) {
	t.Helper()
	if err := n.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-n.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("serfd %s did not exit after SIGTERM", n.name)
	}
}

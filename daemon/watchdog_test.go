package daemon

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"
	"github.com/coreos/go-systemd/v22/journal"
	"github.com/serfd/serfd/internal/testutil"
)

// TestWatchdogWithholdsPings drives the watchdog loop with a check the
// test controls, over a real NOTIFY_SOCKET: WATCHDOG=1 stops while the
// check fails and resumes when it passes, with one warning and one notice.
func TestWatchdogWithholdsPings(t *testing.T) {
	isolateEnv(t)
	l := listenNotify(t)
	var healthy atomic.Bool
	healthy.Store(true)
	const reason = "event delivery stuck for 1s with 3 events queued"
	capture := &journalCapture{}
	w := &watchdog{
		interval: 150 * time.Millisecond,
		check: func(ctx context.Context) error {
			if healthy.Load() {
				return nil
			}
			<-ctx.Done() // a stuck check uses up its deadline
			return errors.New(reason)
		},
		notify: func(state string) { sd.SdNotify(false, state) },
		unhealthy: func(r string) {
			if r == "" {
				r = "healthy"
			}
			sd.SdNotify(false, "STATUS="+r)
		},
		log: slog.New(&journalHandler{level: slog.LevelInfo, send: capture.send}),
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { w.run(ctx) })
	defer wg.Wait()
	defer cancel()

	for range 2 {
		l.waitState(t, 5*time.Second, "WATCHDOG=1 while healthy", is("WATCHDOG=1"))
	}

	healthy.Store(false)
	l.waitState(t, 5*time.Second, "STATUS= with the reason", is("STATUS="+reason))
	// Each failing tick reports again; none may ping.
	deadline := time.Now().Add(5 * time.Second)
	for failing := 0; failing < 3; {
		s, err := l.next(deadline)
		switch {
		case err != nil:
			t.Fatalf("waiting for three more failing checks: %v; read %q", err, l.seen)
		case s == "WATCHDOG=1":
			t.Fatalf("WATCHDOG=1 sent while the check fails; read %q", l.seen)
		case s == "STATUS="+reason:
			failing++
		}
	}

	healthy.Store(true)
	l.waitState(t, 5*time.Second, "WATCHDOG=1 after recovery", is("WATCHDOG=1"))
	l.waitState(t, 5*time.Second, "STATUS= after recovery", is("STATUS=healthy"))

	var warns, notices int
	for _, r := range capture.all() {
		switch {
		case r.pri == journal.PriWarning && r.vars["MESSAGE_ID"] == msgIDWatchdogWithheld:
			warns++
			if r.vars["ERROR"] != reason || r.vars["WATCHDOG_USEC"] != "150000" {
				t.Errorf("withheld record fields = %v; want ERROR=%q WATCHDOG_USEC=150000", r.vars, reason)
			}
		case r.pri == journal.PriInfo && strings.HasPrefix(r.msg, "healthy again"):
			notices++
		}
	}
	if warns != 1 || notices != 1 {
		t.Errorf("records: %d withheld warnings, %d recovery notices; want 1 and 1:\n%s", warns, notices, capture)
	}
}

// TestWatchdogDaemon runs the daemon in-process under a fake service
// manager: a NOTIFY_SOCKET listener and WATCHDOG_USEC=300000. It sends
// READY=1, then WATCHDOG=1 again and again, then STOPPING=1 on cancel.
func TestWatchdogDaemon(t *testing.T) {
	isolateEnv(t)
	dir := testutil.ShortTempDir(t, "sd-")
	cfg := writeDaemonConfig(t, dir, "wd-1", 91, "")
	l := listenNotify(t)
	t.Setenv("WATCHDOG_USEC", "300000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))

	stderr := &testutil.Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Run(ctx, Options{ConfigPath: cfg, Stderr: stderr}) }()
	defer func() {
		if t.Failed() {
			t.Logf("serfd's log:\n%s", stderr)
		}
	}()

	l.waitState(t, 20*time.Second, "READY=1", is("READY=1"))
	for range 5 {
		l.waitState(t, 2*time.Second, "WATCHDOG=1", is("WATCHDOG=1"))
	}

	cancel()
	l.waitState(t, 10*time.Second, "STOPPING=1", is("STOPPING=1"))
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run() after cancel = %v; want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	for _, s := range l.seen {
		if strings.HasPrefix(s, "STATUS=unhealthy") {
			t.Errorf("daemon reported itself unhealthy: %q", s)
		}
	}
	// Outside journald the text log carries no MESSAGE_ID.
	logs := stderr.String()
	if !strings.Contains(logs, `msg="serfd started as node `) || strings.Contains(logs, "MESSAGE_ID") {
		t.Errorf("text log: want \"serfd started\" and no MESSAGE_ID; got:\n%s", logs)
	}
}

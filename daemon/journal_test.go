package daemon

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-systemd/v22/journal"

	"github.com/serfd/serfd/exec"
	"github.com/serfd/serfd/internal/testutil"
)

func TestFieldName(t *testing.T) {
	cases := map[string]string{
		"HANDLER":     "HANDLER",
		"exit_status": "EXIT_STATUS",
		"peer.uid":    "PEER_UID",
		"_private":    "PRIVATE",
		"1abc":        "",
		"":            "",
		"MESSAGE":     "SERFD_MESSAGE",
		"PRIORITY":    "SERFD_PRIORITY",
		"MESSAGE_ID":  "MESSAGE_ID",
	}
	for in, want := range cases {
		if got := fieldName(in); got != want {
			t.Errorf("fieldName(%q) = %q; want %q", in, got, want)
		}
	}
}

// TestJournalHandler checks that records reach journald's Send with their
// attributes, groups and With attributes as fields, at the right priority.
func TestJournalHandler(t *testing.T) {
	type sent struct {
		msg  string
		pri  journal.Priority
		vars map[string]string
	}
	var got []sent
	level := new(slog.LevelVar)
	h := &journalHandler{level: level, send: func(m string, p journal.Priority, v map[string]string) error {
		got = append(got, sent{m, p, v})
		return nil
	}}
	log := slog.New(h).With("NODE", "n1")
	log.Debug("hidden")
	log.Warn("handler memresponse exited 3 after 12 ms (user event memresponse)", "HANDLER", "memresponse", "EXIT_STATUS", 3,
		slog.Group("peer", "uid", 0))
	log.WithGroup("ctl").Error("failed", "path", "/v1/event")

	if len(got) != 2 {
		t.Fatalf("records sent = %d; want 2 (debug is below the level)", len(got))
	}
	w := got[0]
	if w.msg != "handler memresponse exited 3 after 12 ms (user event memresponse)" || w.pri != journal.PriWarning {
		t.Errorf("record 0 = %q at %d; want the run's message at PriWarning", w.msg, w.pri)
	}
	for k, v := range map[string]string{"NODE": "n1", "HANDLER": "memresponse", "EXIT_STATUS": "3", "PEER_UID": "0", "SYSLOG_IDENTIFIER": "serfd"} {
		if w.vars[k] != v {
			t.Errorf("record 0 field %s = %q; want %q (fields %v)", k, w.vars[k], v, w.vars)
		}
	}
	if e := got[1]; e.pri != journal.PriErr || e.vars["CTL_PATH"] != "/v1/event" {
		t.Errorf("record 1 = %d %v; want PriErr with CTL_PATH=/v1/event", e.pri, e.vars)
	}
}

// TestJournalMessageIDs runs the daemon in-process with the real journal
// handler in front of a capture of what it would send to journald: the
// member-join record, a handler timeout (a real script past its deadline)
// and the start and stop records carry their MESSAGE_ID, and no record
// carries a timestamp of ours (journald stamps entries itself).
func TestJournalMessageIDs(t *testing.T) {
	isolateEnv(t)
	dir := testutil.ShortTempDir(t, "sd-")
	cfgPath := writeDaemonConfig(t, dir, "jr-1", 92, `coalesce_period = "0s"
quiescent_period = "0s"
handler "slow" {
  events  = ["member-join"]
  timeout = "200ms"
}
`)
	script := filepath.Join(dir, "handlers.d", "slow")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nexec sleep 30\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(cfgPath)
	if err != nil {
		t.Fatalf("LoadConfig(%s) error: %v", cfgPath, err)
	}
	capture := &journalCapture{}
	level := new(slog.LevelVar)
	level.Set(cfg.LogLevel)
	hub := newLogHub()
	log := slog.New(&teeHandler{inner: &journalHandler{level: level, send: capture.send}, hub: hub})
	d := newDaemon(cfg, Options{ConfigPath: cfgPath}, log, level, hub)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.run(ctx, nil) }()
	defer func() {
		if t.Failed() {
			t.Logf("records sent:\n%s", capture)
		}
	}()

	// Each record's MESSAGE, all that plain journalctl shows, names what
	// happened on its own.
	addr := `127\.0\.0\.92:\d+`
	want := []struct {
		what    string
		id      string
		fields  map[string]string
		message string
	}{
		{"serfd started", msgIDStarted, map[string]string{"NODE": "jr-1"}, `serfd started as node jr-1, gossiping on ` + addr},
		{"member-join", msgIDMemberJoin, map[string]string{"SERF_EVENT": "member-join", "SERF_MEMBERS": "jr-1"},
			`member jr-1 joined \(` + addr + `\)`},
		{"handler timed out", exec.MsgHandlerTimedOut, map[string]string{"HANDLER": "slow", "TIMEOUT": "200ms"},
			`handler slow timed out: still running at its 200 ms deadline; sending SIGTERM \(member-join jr-1\)`},
		{"handler failed", exec.MsgHandlerFailed, map[string]string{"HANDLER": "slow", "SERF_EVENT": "member-join",
			"TIMED_OUT": "true", "SIGNAL": "SIGTERM"}, `handler slow timed out after \d+ ms; stopped by SIGTERM \(member-join jr-1\)`},
	}
	for _, w := range want {
		var r sentRecord
		testutil.WaitFor(t, 20*time.Second, "the "+w.what+" record", func() bool {
			var ok bool
			r, ok = capture.find(w.id, w.fields)
			return ok
		})
		if !regexp.MustCompile("^" + w.message + "$").MatchString(r.msg) {
			t.Errorf("the %s record's MESSAGE = %q; want a match for %s", w.what, r.msg, w.message)
		}
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run() after cancel = %v; want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return after cancel")
	}
	if _, ok := capture.find(msgIDStopped, nil); !ok {
		t.Errorf("no serfd stopped record with MESSAGE_ID=%s", msgIDStopped)
	}
	for _, r := range capture.all() {
		for k := range r.vars {
			if k == "TIME" || strings.Contains(k, "TIMESTAMP") {
				t.Errorf("record %q carries %s=%s; journald stamps entries itself", r.msg, k, r.vars[k])
			}
		}
	}
}

// TestMessageIDOnlyInJournal: the text log and monitor records leave the
// MESSAGE_ID attribute out; the journal handler sends it as MESSAGE_ID=.
func TestMessageIDOnlyInJournal(t *testing.T) {
	var text bytes.Buffer
	hub := newLogHub()
	sub := mustSubscribe(t, hub, slog.LevelInfo)
	defer hub.unsubscribe(sub)
	slog.New(&teeHandler{inner: newTextHandler(&text, slog.LevelInfo), hub: hub}).
		Info("member-join n1", msgIDKey, msgIDMemberJoin, "SERF_MEMBERS", "n1")
	if got := text.String(); strings.Contains(got, "MESSAGE_ID") || !strings.Contains(got, "SERF_MEMBERS=n1") {
		t.Errorf("text log = %q; want SERF_MEMBERS=n1 and no MESSAGE_ID", got)
	}
	rec := testutil.Recv(t, sub.ch, 5*time.Second, "the monitor record")
	if _, ok := rec.Attrs[msgIDKey]; ok || rec.Attrs["SERF_MEMBERS"] != "n1" {
		t.Errorf("monitor record attrs = %v; want SERF_MEMBERS=n1 and no MESSAGE_ID", rec.Attrs)
	}

	capture := &journalCapture{}
	slog.New(&journalHandler{level: slog.LevelInfo, send: capture.send}).
		Info("member-join n1", msgIDKey, msgIDMemberJoin, "SERF_MEMBERS", "n1")
	if got := capture.all()[0].vars["MESSAGE_ID"]; got != msgIDMemberJoin {
		t.Errorf("journal MESSAGE_ID = %q; want %q", got, msgIDMemberJoin)
	}
}

// A journald that does not take records holds up no logger: records beyond
// the queue are dropped and counted, and the first record written after
// the stall is preceded by one saying how many were lost.
func TestJournalQueueNeverWaits(t *testing.T) {
	entered, gate := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	var written []string
	write := func(msg string, _ journal.Priority, vars map[string]string) error {
		mu.Lock()
		first := len(written) == 0
		written = append(written, msg)
		mu.Unlock()
		if first {
			close(entered)
			<-gate // journald stalls on the first record
		}
		return nil
	}
	q := newJournalQueue(write, 2)
	q.send("r0", journal.PriInfo, nil)
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the queue never wrote its first record")
	}
	for i := 1; i < 10; i++ { // 2 fit the queue, 7 are dropped; none waits
		q.send(fmt.Sprintf("r%d", i), journal.PriInfo, nil)
	}
	close(gate)
	testutil.WaitFor(t, 10*time.Second, "the queue to write what it held", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(written) == 4 // r0, the drop record, r1, r2
	})
	q.send("after", journal.PriInfo, nil)
	q.close(10 * time.Second)
	mu.Lock()
	defer mu.Unlock()
	want := "r0|7 log records dropped: journald did not keep up|r1|r2|after"
	if got := strings.Join(written, "|"); got != want {
		t.Errorf("journald got %q; want %q", got, want)
	}
	q.send("late", journal.PriInfo, nil) // after close: ignored, no panic
}

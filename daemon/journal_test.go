package daemon

import (
	"log/slog"
	"testing"

	"github.com/coreos/go-systemd/v22/journal"
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
	log.Warn("handler run", "HANDLER", "memresponse", "EXIT_STATUS", 3, slog.Group("peer", "uid", 0))
	log.WithGroup("ctl").Error("failed", "path", "/v1/event")

	if len(got) != 2 {
		t.Fatalf("records sent = %d; want 2 (debug is below the level)", len(got))
	}
	w := got[0]
	if w.msg != "handler run" || w.pri != journal.PriWarning {
		t.Errorf("record 0 = %q at %d; want \"handler run\" at PriWarning", w.msg, w.pri)
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

package main

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/serfd/serfd/ctl"
)

// The records serfd logs for the events gossip delivers are the events;
// the records of handler runs, warnings and other log lines are not.
func TestEventOf(t *testing.T) {
	at := time.Date(2026, 5, 1, 10, 20, 30, 0, time.Local)
	for _, tc := range []struct {
		name   string
		rec    ctl.LogRecord
		ok     bool
		typ    string
		detail string
	}{
		{"member-join", ctl.LogRecord{Level: "INFO", Message: "member-join a,b", Attrs: map[string]string{
			"SERF_EVENT": "member-join", "SERF_MEMBERS": "a,b", "SERF_MEMBER_ADDRS": "127.0.0.1:1,127.0.0.2:1"}}, true, "member-join", "a, b"},
		{"user event", ctl.LogRecord{Level: "INFO", Message: "user event deploy", Attrs: map[string]string{
			"SERF_EVENT": "user", "SERF_USER_EVENT": "deploy", "PAYLOAD_BYTES": "5", "SERF_LTIME": "3"}}, true, "user", "deploy (5 bytes)"},
		{"user event without payload", ctl.LogRecord{Level: "INFO", Message: "user event ping", Attrs: map[string]string{
			"SERF_EVENT": "user", "SERF_USER_EVENT": "ping", "PAYLOAD_BYTES": "0"}}, true, "user", "ping"},
		{"query", ctl.LogRecord{Level: "INFO", Message: "query uptime", Attrs: map[string]string{
			"SERF_EVENT": "query", "SERF_QUERY_NAME": "uptime", "SERF_QUERY_SOURCE": "a"}}, true, "query", "uptime from a"},
		{"a handler's run", ctl.LogRecord{Level: "INFO", Message: "handler finished", Attrs: map[string]string{
			"SERF_EVENT": "user", "SERF_USER_EVENT": "deploy", "HANDLER": "deploy"}}, false, "", ""},
		{"the pump's warning", ctl.LogRecord{Level: "WARN", Message: "Serf RPC event streams fell behind and lost events", Attrs: map[string]string{
			"SERF_EVENT": "member-join"}}, false, "", ""},
		{"another record", ctl.LogRecord{Level: "INFO", Message: "joined the cluster", Attrs: map[string]string{"CONTACTED": "1"}}, false, "", ""},
	} {
		tc.rec.Time = at
		ev, ok := eventOf(tc.rec)
		if ok != tc.ok || ev.typ != tc.typ || ev.detail != tc.detail || (ok && !ev.at.Equal(at)) {
			t.Errorf("%s: eventOf = %+v, %t; want type %q detail %q, %t", tc.name, ev, ok, tc.typ, tc.detail, tc.ok)
		}
	}
	ev := watchEvent{at: at, typ: "member-join", detail: "a"}
	if got, want := ev.line(false), "10:20:30  member-join    a"; got != want {
		t.Errorf("line(false) = %q; want %q", got, want)
	}
	if got, want := ev.line(true), "10:20:30  "+sgrGreen+"member-join"+sgrReset+"    a"; got != want {
		t.Errorf("line(true) = %q; want %q", got, want)
	}
	ev.typ = "member-failed"
	if got, want := ev.line(true), "10:20:30  "+sgrRed+"member-failed"+sgrReset+"  a"; got != want {
		t.Errorf("line(true) of member-failed = %q; want %q", got, want)
	}
}

func TestFitLine(t *testing.T) {
	for _, tc := range []struct {
		line  string
		width int
		want  string
	}{
		{"abcdef", 10, "abcdef"},
		{"abcdef", 6, "abcdef"},
		{"abcdef", 3, "abc"},
		{"ab" + sgrGreen + "cd" + sgrReset + "ef", 6, "ab" + sgrGreen + "cd" + sgrReset + "ef"},
		{"ab" + sgrGreen + "cdef" + sgrReset, 3, "ab" + sgrGreen + "c" + sgrReset},
		{"ééééé", 2, "éé"},
		{"日本語ab", 5, "日本"},                       // two columns each: a third would not fit
		{"日本語ab", 8, "日本語ab"},                    // 6 + 2
		{"e\u0301e\u0301e", 2, "e\u0301e\u0301"}, // a combining accent takes no column
		{"abc", 0, ""},
	} {
		if got := fitLine(tc.line, tc.width); got != tc.want {
			t.Errorf("fitLine(%q, %d) = %q; want %q", tc.line, tc.width, got, tc.want)
		}
	}
}

// newTestWatcher is a watcher with n alive members and events e1..ev,
// on a screen of rows by cols.
func newTestWatcher(n, events, rows, cols int) (*watcher, *bytes.Buffer, *bytes.Buffer) {
	var out, errOut bytes.Buffer
	a := &app{stdout: safeWriter{&out}, stderr: safeWriter{&errOut}, terminal: &out, sock: ctl.NewClient("/run/test.sock")}
	w := &watcher{a: a, filter: &memberFilter{}, interval: time.Second, rows: rows, cols: cols, at: time.Now()}
	for i := range n {
		w.members = append(w.members, ctl.Member{Name: fmt.Sprintf("n%02d", i), Addr: "127.0.0.1", Port: uint16(7000 + i), Status: "alive"})
	}
	for i := range events {
		w.events = append(w.events, watchEvent{at: time.Now(), typ: "user", detail: fmt.Sprintf("e%d", i+1)})
	}
	return w, &out, &errOut
}

// The live view fits the screen: title, member table and the newest
// events; a table too long leaves room for a few events and says how many
// members it left out.
func TestWatchContent(t *testing.T) {
	w, _, _ := newTestWatcher(2, 5, 24, 80)
	got := w.content()
	want := []string{"serfd at /run/test.sock: 2 members (2 alive)", "", "n00  127.0.0.1:7000  alive", "n01  127.0.0.1:7001  alive",
		"", "Recent events"}
	if len(got) != len(want)+5 {
		t.Fatalf("content = %q; want %d lines", got, len(want)+5)
	}
	for i, l := range want {
		if !strings.HasPrefix(got[i], l) {
			t.Errorf("line %d = %q; want it to start with %q", i, got[i], l)
		}
	}
	if !strings.HasSuffix(got[len(got)-1], "user           e5") {
		t.Errorf("last line = %q; want the newest event", got[len(got)-1])
	}

	// 30 members, 10 events, 12 rows: title, note, 4 members, "... and 26
	// more", blank, heading, the 3 newest events.
	w, _, _ = newTestWatcher(30, 10, 12, 80)
	got = w.content()
	if len(got) != 12 || !strings.HasPrefix(got[5], "n03") || got[6] != "... and 26 more (a taller terminal shows them)" ||
		!strings.HasSuffix(got[9], "e8") || !strings.HasSuffix(got[11], "e10") {
		t.Errorf("content on 12 rows = %q; want 4 members, a line for 26 more, and events e8 to e10", got)
	}

	// A screen too small for anything but the top lines: cut to it.
	w, _, _ = newTestWatcher(30, 10, 3, 80)
	if got = w.content(); len(got) != 3 {
		t.Errorf("content on 3 rows = %q; want 3 lines", got)
	}

	// serfd gone: the title says so, the last table stays.
	w, _, _ = newTestWatcher(2, 0, 24, 80)
	w.down = errors.New("serfd is not running")
	got = w.content()
	if !strings.HasPrefix(got[0], "reconnecting to serfd at /run/test.sock... (serfd is not running)") || !strings.HasPrefix(got[2], "n00") || got[len(got)-1] != "(none yet)" {
		t.Errorf("content with serfd gone = %q; want reconnecting, the last table, no events", got)
	}
}

// A frame redraws from the top left, erases each line's rest and the rest
// of the screen, and keeps every line a column short of the width.
func TestWatchFrame(t *testing.T) {
	w, _, _ := newTestWatcher(3, 4, 10, 30)
	w.colour = true
	f := string(w.frame())
	if !strings.HasPrefix(f, cursorHome) || !strings.HasSuffix(f, eraseLine+eraseBelow) {
		t.Fatalf("frame = %q; want it to start with home and end erasing the rest of the screen", f)
	}
	sgr := regexp.MustCompile(`\x1b\[[0-9;]*m`)
	lines := strings.Split(strings.TrimSuffix(strings.TrimPrefix(f, cursorHome), eraseBelow), "\r\n")
	if len(lines) != 10 {
		t.Errorf("frame has %d lines; want 10: %q", len(lines), f)
	}
	for _, l := range lines {
		text, ok := strings.CutSuffix(l, eraseLine)
		if !ok || len([]rune(sgr.ReplaceAllString(text, ""))) > 29 {
			t.Errorf("frame line %q: want at most 29 columns, then erase to the end of the line", l)
		}
	}
	if !strings.Contains(f, sgrGreen+"alive") {
		t.Errorf("frame = %q; want the status in colour", f)
	}
}

// Not on a terminal, a block is printed on each change only, blocks apart
// by a blank line; serfd going away and coming back is said on stderr
// once each, and the table is printed again when it is back.
func TestWatchPrintBlock(t *testing.T) {
	w, out, errOut := newTestWatcher(1, 0, 0, 0)
	stamp := w.at.Local().Format("15:04:05")
	step := func(name, wantOut, wantErr string) {
		t.Helper()
		out.Reset()
		errOut.Reset()
		if err := w.draw(); err != nil {
			t.Fatal(err)
		}
		if out.String() != wantOut || !strings.Contains(errOut.String(), wantErr) || (wantErr == "" && errOut.Len() > 0) {
			t.Errorf("%s: printed %q, stderr %q; want %q, stderr with %q", name, out.String(), errOut.String(), wantOut, wantErr)
		}
	}
	table := "n00  127.0.0.1:7000  alive  \n"
	step("first", stamp+" 1 member (1 alive)\n"+table, "")
	step("nothing changed", "", "")
	w.events = []watchEvent{{at: w.at, typ: "user", detail: "deploy"}}
	step("an event", "\n"+stamp+" 1 member (1 alive)\n"+table+"Events:\n"+stamp+"  user           deploy\n", "")
	w.down = errors.New("serfd is not running")
	step("gone", "", "serfctl members: reconnecting to serfd at /run/test.sock... (serfd is not running)")
	w.down = errors.New("another reason")
	step("still gone", "", "")
	w.down, w.reprint = nil, true
	step("back", "\n"+stamp+" 1 member (1 alive)\n"+table, "serfctl members: serfd at /run/test.sock answers again")
	w.streamErr = &ctl.Error{Status: 503, Message: "16 monitor streams are open"}
	step("stream refused", "", "serfctl members: no events from serfd at /run/test.sock: 16 monitor streams are open; retrying")
	if strings.Contains(out.String(), "\x1b") {
		t.Errorf("printed %q; want no escape sequences", out.String())
	}
}

// members -watch's usage mistakes exit 2 with one line; a socket that
// does not answer at the start exits 1.
func TestWatchUsage(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"members", "-interval", "1s"}, 2, "-interval goes with -watch"},
		{[]string{"members", "-watch", "-interval", "0s"}, 2, "-interval 0s is not positive"},
		{[]string{"top", "-interval", "-1s"}, 2, "-interval -1s is not positive"},
		{[]string{"-format", "json", "members", "-watch"}, 2, "-watch is a view for people"},
		{[]string{"-rpc-addr", "127.0.0.1:1", "top"}, 2, "serfctl members -watch: not over Serf's RPC"},
		{[]string{"-socket", "/nonexistent/serfd.sock", "top"}, 1, "serfd is not running (no socket at /nonexistent/serfd.sock)"},
	} {
		var out, errOut bytes.Buffer
		code := run(tc.args, strings.NewReader(""), &out, &errOut)
		if code != tc.code || !strings.Contains(errOut.String(), tc.stderr) || out.Len() > 0 || strings.Count(errOut.String(), "\n") != 1 {
			t.Errorf("serfctl %q = exit %d, stdout %q, stderr %q; want exit %d and one line with %q", tc.args, code, out.String(), errOut.String(), tc.code, tc.stderr)
		}
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"help", "top"}, strings.NewReader(""), &out, &errOut); code != 0 || !strings.Contains(out.String(), "-interval") {
		t.Errorf("serfctl help top = exit %d, %q; want the usage with -interval", code, out.String())
	}
}

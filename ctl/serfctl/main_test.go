package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/serfd/serfd/ctl"
)

func TestColourStatus(t *testing.T) {
	for _, tc := range []struct {
		on           bool
		status, want string
	}{
		{false, "alive", "alive"},
		{true, "alive", "\x1b[32malive\x1b[0m"},
		{true, "failed", "\x1b[31mfailed\x1b[0m"},
		{true, "left", "\x1b[33mleft\x1b[0m"},
		{true, "leaving", "\x1b[33mleaving\x1b[0m"},
	} {
		if got := colourStatus(tc.on, tc.status); got != tc.want {
			t.Errorf("colourStatus(%t, %q) = %q; want %q", tc.on, tc.status, got, tc.want)
		}
	}
}

func TestMemberFilterAnchored(t *testing.T) {
	m := ctl.Member{Name: "web-12", Status: "alive", Tags: map[string]string{"role": "web"}}
	for _, tc := range []struct {
		status, name string
		tags         []string
		want         bool
	}{
		{"", "", nil, true},
		{"", "web", nil, false},
		{"", "web-.*", nil, true},
		{"ali", "", nil, false},
		{"alive|failed", "", nil, true},
		{"", "", []string{"role=we"}, false},
		{"", "", []string{"role=web"}, true},
		{"", "", []string{"dc=.*"}, false},
	} {
		f, err := newMemberFilter(tc.status, tc.name, tc.tags)
		if err != nil {
			t.Fatal(err)
		}
		if got := f.match(m); got != tc.want {
			t.Errorf("newMemberFilter(%q, %q, %v).match(%s) = %t; want %t", tc.status, tc.name, tc.tags, m.Name, got, tc.want)
		}
	}
	if _, err := newMemberFilter("(", "", nil); err == nil {
		t.Errorf("newMemberFilter(\"(\") = nil error; want one naming -status")
	}
}

// help, -h, -version and usage mistakes: help is asked for, so it goes to
// stdout with exit 0; a mistake gets one line naming it and where help is,
// on stderr, exit 2.
func TestHelpVersionAndUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args           []string
		code           int
		stdout, stderr string // substrings; "" for empty output
	}{
		{[]string{"help"}, 0, "Commands:", ""},
		{[]string{"-h"}, 0, "Commands:", ""},
		{[]string{"help", "event"}, 0, "usage: serfctl event [-coalesce]", ""},
		{[]string{"event", "-h"}, 0, "", "usage: serfctl event [-coalesce]"},
		{[]string{"help", "keygen"}, 0, "usage: serfctl keygen", ""},
		{[]string{"-version"}, 0, "serfctl " + version, ""},
		{[]string{"--version"}, 0, "serfctl " + version, ""},
		{[]string{"version"}, 0, "serfctl " + version, ""},
		{[]string{"nope"}, 2, "", `unknown command "nope" (serfctl help lists the commands)`},
		{[]string{"help", "nope"}, 2, "", `unknown command "nope"`},
		{[]string{"-bogus"}, 2, "", "flag provided but not defined: -bogus\nusage: serfctl [-socket PATH]"},
		{[]string{}, 2, "", "serfctl: no command given\nusage: serfctl"},
	} {
		var out, errOut bytes.Buffer
		code := run(tc.args, strings.NewReader(""), &out, &errOut)
		if code != tc.code || !strings.Contains(out.String(), tc.stdout) || !strings.Contains(errOut.String(), tc.stderr) ||
			(tc.stdout == "" && out.Len() > 0) || (tc.stderr == "" && errOut.Len() > 0) {
			t.Errorf("serfctl %q = exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q",
				tc.args, code, out.String(), errOut.String(), tc.code, tc.stdout, tc.stderr)
		}
		if tc.code == 2 && strings.Count(errOut.String(), "\n") > 3 {
			t.Errorf("serfctl %q printed %d lines on a mistake; want the one relevant line", tc.args, strings.Count(errOut.String(), "\n"))
		}
	}
}

// TestChooseTarget pins the precedence serfctl's help states: -rpc-addr,
// then -socket, then $SERF_RPC_ADDR, then $SERFD_SOCKET or the default.
func TestChooseTarget(t *testing.T) {
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	for _, tc := range []struct {
		name  string
		flags targetFlags
		env   func(string) string
		want  target
		err   string
	}{
		{"nothing", targetFlags{}, env(), target{socket: ctl.DefaultSocket}, ""},
		{"SERFD_SOCKET", targetFlags{}, env("SERFD_SOCKET", "/s"), target{socket: "/s"}, ""},
		{"SERF_RPC_ADDR over SERFD_SOCKET", targetFlags{}, env("SERFD_SOCKET", "/s", "SERF_RPC_ADDR", "h:1", "SERF_RPC_AUTH", "tok"),
			target{rpcAddr: "h:1", rpcAuth: "tok"}, ""},
		{"-socket over SERF_RPC_ADDR", targetFlags{socket: "/x", socketSet: true}, env("SERF_RPC_ADDR", "h:1"), target{socket: "/x"}, ""},
		{"-rpc-addr over -socket", targetFlags{socket: "/x", socketSet: true, rpcAddr: "h:2", rpcAddrSet: true},
			env("SERF_RPC_ADDR", "h:1", "SERF_RPC_AUTH", "tok"), target{rpcAddr: "h:2", rpcAuth: "tok"}, ""},
		{"-rpc-auth over SERF_RPC_AUTH", targetFlags{rpcAuth: "mine", rpcAuthSet: true}, env("SERF_RPC_ADDR", "h:1", "SERF_RPC_AUTH", "tok"),
			target{rpcAddr: "h:1", rpcAuth: "mine"}, ""},
		{"empty -rpc-auth clears the token", targetFlags{rpcAddr: "h:2", rpcAddrSet: true, rpcAuthSet: true}, env("SERF_RPC_AUTH", "tok"),
			target{rpcAddr: "h:2"}, ""},
		{"SERF_RPC_AUTH alone is unused", targetFlags{}, env("SERF_RPC_AUTH", "tok"), target{socket: ctl.DefaultSocket}, ""},
		{"-rpc-auth for the socket", targetFlags{rpcAuth: "tok", rpcAuthSet: true}, env(), target{}, "-rpc-auth is a Serf RPC token"},
		{"empty -rpc-addr", targetFlags{rpcAddrSet: true}, env("SERF_RPC_ADDR", "h:1"), target{}, "-rpc-addr is empty"},
	} {
		got, err := chooseTarget(tc.flags, tc.env)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: chooseTarget = %+v, %v; want an error with %q", tc.name, got, err, tc.err)
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("%s: chooseTarget = %+v, %v; want %+v", tc.name, got, err, tc.want)
		}
	}
}

// TestBoolFlagsTakeValues: every boolean flag also takes Go's -flag=false
// and -flag=true; the command line parses (the call then fails to reach
// the missing socket, exit 1, not 2).
func TestBoolFlagsTakeValues(t *testing.T) {
	socket := "/nonexistent/serfd.sock"
	for _, args := range [][]string{
		{"-version=false", "members"},
		{"members", "-detailed=false"},
		{"members", "-detailed=true"},
		{"join", "-replay=false", "127.0.0.1"},
		{"event", "-coalesce=false", "deploy"},
		{"event", "-coalesce=true", "deploy"},
		{"query", "-no-ack=false", "ping"},
		{"force-leave", "-prune=false", "n1"},
		{"keys", "-list=true"},
		{"reachability", "-verbose=false"},
	} {
		var out, errOut bytes.Buffer
		code := run(append([]string{"-socket", socket}, args...), strings.NewReader(""), &out, &errOut)
		if code != exitFail || !strings.Contains(errOut.String(), socket) {
			t.Errorf("serfctl %q = exit %d, %q; want exit 1 failing to reach %s", args, code, errOut.String(), socket)
		}
	}
	// Over Serf's RPC, reload is refused with the reason: usage, exit 2.
	var out, errOut bytes.Buffer
	code := run([]string{"-rpc-addr", "127.0.0.1:1", "reload"}, strings.NewReader(""), &out, &errOut)
	if code != exitUsage || !strings.Contains(errOut.String(), "not over Serf's RPC") || strings.Count(errOut.String(), "\n") != 1 {
		t.Errorf("serfctl -rpc-addr reload = exit %d, %q; want exit 2 and one line saying why", code, errOut.String())
	}
}

// A handler's info line has its state (and why, for a file that is no
// handler), settings (tag filters only when it has some), counters and
// last run; a record from a serfd older
// than the state field gets its state from Active, and a handler that
// never ran has no last_* keys.
func TestHandlerLine(t *testing.T) {
	finished := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		h    ctl.HandlerStats
		want string
	}{
		{ctl.HandlerStats{State: "active", Active: true, Events: []string{"user:deploy", "member-join"}, Concurrency: 2,
			Timeout: time.Minute, Runs: 3, Failures: 1, LastFinished: finished, LastOutcome: "killed", LastSignal: "SIGKILL",
			LastExitStatus: -1, LastDuration: 12 * time.Millisecond, LastEvent: "user event deploy"},
			"active events=user:deploy,member-join concurrency=2 timeout=1m0s runs=3 failures=1 timeouts=0 drops=0 repeats=0 " +
				`queued=0 running=0 last_run=2026-03-01T10:00:00Z last_outcome=killed last_signal=SIGKILL last_exit=-1 last_duration=12ms last_event="user event deploy"`},
		{ctl.HandlerStats{State: "refused", Reason: "not executable (mode 0644)", Events: []string{"*"}, Concurrency: 1, Timeout: time.Minute},
			`refused reason="not executable (mode 0644)" events=* concurrency=1 timeout=1m0s runs=0 failures=0 timeouts=0 drops=0 repeats=0 queued=0 running=0`},
		{ctl.HandlerStats{Active: false, Runs: 2, LastFinished: finished, LastExitStatus: 0, LastDuration: time.Second},
			"gone runs=2 failures=0 timeouts=0 drops=0 repeats=0 queued=0 running=0 last_run=2026-03-01T10:00:00Z last_exit=0 last_duration=1s"},
		{ctl.HandlerStats{Active: true},
			"active runs=0 failures=0 timeouts=0 drops=0 repeats=0 queued=0 running=0"},
		{ctl.HandlerStats{State: "active", Active: true, Events: []string{"member-join"}, Tags: map[string]string{"role": "web", "dc": "eu-.*"},
			Concurrency: 1, Timeout: time.Minute},
			`active events=member-join tags="dc=eu-.*,role=web" concurrency=1 timeout=1m0s runs=0 failures=0 timeouts=0 drops=0 repeats=0 queued=0 running=0`},
	} {
		if got := handlerLine(tc.h); got != tc.want {
			t.Errorf("handlerLine(%+v) =\n%s\nwant\n%s", tc.h, got, tc.want)
		}
	}
}

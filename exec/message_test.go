package exec

import (
	"testing"
	"time"
)

func TestHumanDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                                     "0 ms",
		800 * time.Microsecond:                "0 ms",
		12 * time.Millisecond:                 "12 ms",
		9999 * time.Millisecond:               "9999 ms",
		10 * time.Second:                      "10.0 s",
		61*time.Second + 470*time.Millisecond: "61.5 s",
		time.Hour:                             "3600.0 s",
	} {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%s) = %q; want %q", d, got, want)
		}
	}
}

func TestDescribeEvent(t *testing.T) {
	m := func(names ...string) []Member {
		var out []Member
		for _, n := range names {
			out = append(out, Member{Name: n})
		}
		return out
	}
	for _, tc := range []struct {
		ev   Event
		want string
	}{
		{Event{Type: "user", UserEvent: "deploy"}, "user event deploy"},
		{Event{Type: "query", QueryName: "load"}, "query load"},
		{Event{Type: "member-failed", Members: m("web-2")}, "member-failed web-2"},
		{Event{Type: "member-join", Members: m("a", "b", "c")}, "member-join a, b, c"},
		{Event{Type: "member-join", Members: m("a", "b", "c", "d")}, "member-join a, b, c and 1 more"},
		{Event{Type: "member-reap"}, "member-reap"},
	} {
		if got := describeEvent(tc.ev.Type, tc.ev.UserEvent, tc.ev.QueryName, tc.ev.Members); got != tc.want {
			t.Errorf("describeEvent(%+v) = %q; want %q", tc.ev, got, tc.want)
		}
	}
}

// The message of a run names the attempt of a run started again, and a run
// stopped at shutdown says whether it runs again.
func TestRunMessageAttemptAndShutdown(t *testing.T) {
	j := &job{h: &handler{name: "h"}, ev: &prepared{desc: "user event deploy"}, attempt: 2, seq: 7}
	for _, tc := range []struct {
		res  runResult
		want string
	}{
		{runResult{started: true, duration: 5 * time.Millisecond}, "handler h exited 0 after 5 ms (user event deploy, attempt 2)"},
		{runResult{started: true, exitStatus: -1, signal: "SIGTERM", timedOut: true, interrupted: true, duration: 10 * time.Second},
			"handler h stopped at shutdown after 10.0 s by SIGTERM; it runs again at the next start (user event deploy, attempt 2)"},
		{runResult{started: true, exitStatus: 143, timedOut: true, duration: 61 * time.Second},
			"handler h timed out after 61.0 s; exited 143 (user event deploy, attempt 2)"},
		{runResult{started: true, exitStatus: -1, signal: "SIGKILL", timedOut: true, duration: 65 * time.Second},
			"handler h timed out after 65.0 s; killed by SIGKILL (user event deploy, attempt 2)"},
	} {
		if got := tc.res.message(j); got != tc.want {
			t.Errorf("message of %+v = %q; want %q", tc.res, got, tc.want)
		}
	}
}

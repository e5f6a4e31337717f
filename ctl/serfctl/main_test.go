package main

import (
	"bytes"
	"strings"
	"testing"

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

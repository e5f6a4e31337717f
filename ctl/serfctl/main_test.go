package main

import (
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

package gossip

import (
	"strings"
	"testing"
)

// TestCompileTagFilter is the one rule of tag matching in both its forms:
// unanchored (queries' filters, as Serf) and anchored (handler blocks'
// tags, matched against the whole value). A missing tag is matched as "",
// every filter must pass, and every expression that does not compile is
// named.
func TestCompileTagFilter(t *testing.T) {
	web := map[string]string{"role": "web", "dc": "eu-west"}
	for _, tc := range []struct {
		filters  map[string]string
		anchored bool
		tags     map[string]string
		want     bool
	}{
		{nil, true, web, true},
		{map[string]string{"role": "web"}, true, web, true},
		{map[string]string{"role": "we"}, true, web, false},
		{map[string]string{"role": "we"}, false, web, true},
		{map[string]string{"role": "web-2"}, true, map[string]string{"role": "web-2"}, true},
		{map[string]string{"role": "web"}, true, map[string]string{"role": "web-2"}, false},
		{map[string]string{"role": "web"}, false, map[string]string{"role": "web-2"}, true},
		// The whole alternation is anchored, not its first and last branch.
		{map[string]string{"role": "web|api"}, true, map[string]string{"role": "api"}, true},
		{map[string]string{"role": "web|api"}, true, map[string]string{"role": "webby"}, false},
		{map[string]string{"role": "web|api"}, true, map[string]string{"role": "rapid"}, false},
		{map[string]string{"role": "web", "dc": "eu-.*"}, true, web, true},
		{map[string]string{"role": "web", "dc": "us-.*"}, true, web, false},
		// A missing tag is "": ".*" and "" select members without it.
		{map[string]string{"zone": ".*"}, true, web, true},
		{map[string]string{"zone": ""}, true, web, true},
		{map[string]string{"zone": "a"}, true, web, false},
		{map[string]string{"role": "web"}, true, nil, false},
	} {
		f, err := CompileTagFilter(tc.filters, tc.anchored)
		if err != nil {
			t.Fatalf("CompileTagFilter(%v, %v) = %v; want nil", tc.filters, tc.anchored, err)
		}
		if got := f.Matches(tc.tags); got != tc.want {
			t.Errorf("CompileTagFilter(%v, anchored %v).Matches(%v) = %v; want %v", tc.filters, tc.anchored, tc.tags, got, tc.want)
		}
		if f.Empty() != (len(tc.filters) == 0) {
			t.Errorf("CompileTagFilter(%v).Empty() = %v; want %v", tc.filters, f.Empty(), len(tc.filters) == 0)
		}
	}
	var zero TagFilter
	if !zero.Matches(web) || !zero.Empty() {
		t.Errorf("TagFilter{} matches %v = %v, empty = %v; want true, true", web, zero.Matches(web), zero.Empty())
	}

	for _, anchored := range []bool{false, true} {
		_, err := CompileTagFilter(map[string]string{"role": "(", "dc": "[a", "ok": "x"}, anchored)
		if err == nil {
			t.Fatalf("CompileTagFilter(bad expressions, anchored %v) = nil; want an error", anchored)
		}
		got := err.Error()
		for _, want := range []string{`tag filter dc="[a": error parsing regexp: missing closing ]`,
			`tag filter role="(": error parsing regexp: missing closing )`} {
			if !strings.Contains(got, want) {
				t.Errorf("CompileTagFilter(bad expressions, anchored %v) = %q; want it to contain %q", anchored, got, want)
			}
		}
		if strings.Contains(got, "(?:") || strings.Contains(got, "ok=") {
			t.Errorf("CompileTagFilter(bad expressions, anchored %v) = %q; want the expressions as written, and only the bad ones", anchored, got)
		}
	}
}

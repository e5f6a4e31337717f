package exec

import (
	"fmt"
	"maps"
	"path/filepath"
	"strings"
	"testing"

	"github.com/serfd/serfd/gossip"
)

// anchoredTags is the tag compiler serfd gives the pool: gossip's rule of
// tag matching, each expression anchored at both ends.
func anchoredTags(filters map[string]string) (func(map[string]string) bool, error) {
	f, err := gossip.CompileTagFilter(filters, true)
	if err != nil {
		return nil, err
	}
	return f.Matches, nil
}

// tagScript records, per handler, each run's event and its stdin,
// followed by a "--" line.
func tagScript(out string) string {
	return fmt.Sprintf("{ echo \"$SERF_EVENT $SERF_USER_EVENT$SERF_QUERY_NAME\"; cat; echo --; } >> '%s'/\"$SERF_HANDLER\"\n", out)
}

// A handler with tags runs for a member event with only the members whose
// own tags match every filter (anchored), and not at all when none does;
// for user events and queries it runs only when this node's tags match.
// A handler without tags sees everything. SetHandlers changes the tags of
// later events, and Stats shows them.
func TestHandlerTags(t *testing.T) {
	t.Parallel()
	dir, out := t.TempDir(), t.TempDir()
	for _, name := range []string{"all", "web", "eu"} {
		writeScript(t, dir, name, tagScript(out))
	}
	eu := HandlerConfig{Events: []string{"member-join,member-leave,user"}, Tags: map[string]string{"dc": "eu-.*", "role": "web|db"}}
	p, _ := startPool(t, Options{Dir: dir, CompileTags: anchoredTags, Handlers: map[string]HandlerConfig{
		"web": {Tags: map[string]string{"role": "web"}},
		"eu":  eu,
	}})

	a := Member{Name: "a", Addr: "10.0.0.1", Tags: map[string]string{"role": "web", "dc": "eu-1"}}
	b := Member{Name: "b", Addr: "10.0.0.2", Tags: map[string]string{"role": "db", "dc": "eu-2"}}
	c := Member{Name: "c", Addr: "10.0.0.3", Tags: map[string]string{"role": "web-2", "dc": "eu-3"}}
	d := Member{Name: "d", Addr: "10.0.0.4"}
	const (
		lineA = "a\t10.0.0.1\tweb\tdc=eu-1,role=web\n"
		lineB = "b\t10.0.0.2\tdb\tdc=eu-2,role=db\n"
		lineC = "c\t10.0.0.3\tweb-2\tdc=eu-3,role=web-2\n"
		lineD = "d\t10.0.0.4\t\t\n"
	)
	self := func(ev Event, tags map[string]string) Event {
		ev.SelfName, ev.SelfTags = "self", tags
		return ev
	}
	p.Submit(self(Event{Type: "member-join", Members: []Member{a, b, c, d}}, nil))
	p.Submit(self(Event{Type: "member-leave", Members: []Member{c, d}}, map[string]string{"role": "web", "dc": "eu-1"}))
	p.Submit(self(userEvent("deploy", "v1", 1), map[string]string{"role": "web", "dc": "us-1"}))
	p.Submit(self(userEvent("deploy", "v2", 2), map[string]string{"role": "db", "dc": "eu-1"}))
	p.Submit(self(Event{Type: "query", QueryName: "load", LTime: 1, Payload: []byte("q")}, map[string]string{"role": "web"}))
	p.Submit(self(Event{Type: "query", QueryName: "load", LTime: 2, Payload: []byte("r")}, map[string]string{"role": "webby"}))

	if s := statsOf(p, "web"); !maps.Equal(s.Tags, map[string]string{"role": "web"}) {
		t.Errorf("Stats() of web: Tags = %v; want role=web", s.Tags)
	}
	if s := statsOf(p, "all"); s.Tags != nil {
		t.Errorf("Stats() of all: Tags = %v; want none", s.Tags)
	}
	if err := p.SetHandlers(map[string]HandlerConfig{"web": {Tags: map[string]string{"role": "db"}}, "eu": eu}); err != nil {
		t.Fatalf("SetHandlers(web: role=db) = %v; want nil", err)
	}
	if s := statsOf(p, "web"); !maps.Equal(s.Tags, map[string]string{"role": "db"}) {
		t.Errorf("Stats() of web after SetHandlers: Tags = %v; want role=db", s.Tags)
	}
	p.Submit(self(Event{Type: "member-update", Members: []Member{a, b}}, nil))
	p.Submit(self(userEvent("deploy", "v3", 3), map[string]string{"role": "db"}))
	p.Close()

	for name, want := range map[string]string{
		"all": "member-join \n" + lineA + lineB + lineC + lineD + "--\n" +
			"member-leave \n" + lineC + lineD + "--\n" +
			"user deploy\nv1\n--\n" + "user deploy\nv2\n--\n" +
			"query load\nq\n--\n" + "query load\nr\n--\n" +
			"member-update \n" + lineA + lineB + "--\n" + "user deploy\nv3\n--\n",
		"web": "member-join \n" + lineA + "--\n" +
			"user deploy\nv1\n--\n" + "query load\nq\n--\n" +
			"member-update \n" + lineB + "--\n" + "user deploy\nv3\n--\n",
		"eu": "member-join \n" + lineA + lineB + "--\n" + "user deploy\nv2\n--\n",
	} {
		if got := readFile(t, filepath.Join(out, name)); got != want {
			t.Errorf("runs of %s =\n%s\nwant\n%s", name, got, want)
		}
	}
}

func statsOf(p *Pool, name string) HandlerStats {
	for _, s := range p.Stats() {
		if s.Name == name {
			return s
		}
	}
	return HandlerStats{}
}

// Bad tags are errors of New and SetHandlers naming the handler and the
// problem, and a failed SetHandlers changes nothing.
func TestHandlerTagsRejected(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		opts Options
		want string
	}{
		{Options{Dir: "/x", CompileTags: anchoredTags, Handlers: map[string]HandlerConfig{"h": {Tags: map[string]string{"role": "("}}}},
			`handler "h": tag filter role="(": error parsing regexp: missing closing )`},
		{Options{Dir: "/x", Handlers: map[string]HandlerConfig{"h": {Tags: map[string]string{"role": "web"}}}},
			`handler "h": has tags, but the pool has no Options.CompileTags`},
	} {
		p, err := New(tc.opts)
		if err == nil {
			p.Close()
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v; want an error containing %q", tc.opts, err, tc.want)
		}
	}

	dir, out := t.TempDir(), t.TempDir()
	writeScript(t, dir, "web", tagScript(out))
	p, _ := startPool(t, Options{Dir: dir, CompileTags: anchoredTags, Handlers: map[string]HandlerConfig{
		"web": {Tags: map[string]string{"role": "web"}},
	}})
	err := p.SetHandlers(map[string]HandlerConfig{"web": {Tags: map[string]string{"role": "db", "dc": "[x"}}})
	if err == nil || !strings.Contains(err.Error(), `handler "web": tag filter dc="[x"`) {
		t.Errorf("SetHandlers(dc=[x) = %v; want an error naming handler web and dc=\"[x\"", err)
	}
	p.Submit(Event{Type: "user", UserEvent: "e", LTime: 1, SelfTags: map[string]string{"role": "web"}})
	p.Submit(Event{Type: "user", UserEvent: "e", LTime: 2, SelfTags: map[string]string{"role": "db"}})
	p.Close()
	if got, want := readFile(t, filepath.Join(out, "web")), "user e\n--\n"; got != want {
		t.Errorf("runs of web after a refused SetHandlers = %q; want %q (role=web still in force)", got, want)
	}
}

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/serfd/serfd/ctl"
	"github.com/serfd/serfd/internal/testutil"
)

// tagRecorder is a handler script that appends what it was run for to
// DIR/$SERF_SELF_NAME.$SERF_HANDLER: for a member event one
// "EVENT NAME" line per member on its stdin, for a user event one
// "user NAME PAYLOAD" line.
const tagRecorder = `#!/bin/sh
out='%s'/"$SERF_SELF_NAME.$SERF_HANDLER"
case "$SERF_EVENT" in
member-*) awk -F'\t' -v ev="$SERF_EVENT" '{ print ev, $1 }' >> "$out" ;;
*) printf '%%s %%s %%s\n' "$SERF_EVENT" "$SERF_USER_EVENT" "$(cat)" >> "$out" ;;
esac
`

// writeTagRecorder writes tagRecorder into dir (made readable by serfd) and
// returns its path.
func writeTagRecorder(t *testing.T, dir string) string {
	t.Helper()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "record.sh")
	if err := os.WriteFile(path, []byte(fmt.Sprintf(tagRecorder, dir)), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// recorded is the lines tagRecorder wrote for handler on node.
func recorded(dir, node, handler string) []string {
	text := strings.TrimSuffix(readFile(filepath.Join(dir, node+"."+handler)), "\n")
	if text == "" {
		return nil
	}
	return strings.Split(text, "\n")
}

// memberJoinHandlers are two command handlers running the recorder for
// member-join: alljoin for every member, webjoin only for members tagged
// role=web (anchored: not web-2).
func memberJoinHandlers(recorder string) string {
	return fmt.Sprintf(`handler "alljoin" {
  events  = ["member-join"]
  command = %[1]q
}
handler "webjoin" {
  events  = ["member-join"]
  tags    = { role = "web" }
  command = %[1]q
}
`, recorder)
}

// handlerIdle waits until the named handler of n has no run queued or
// running. Called once an event's Submit is known to be over (another
// handler ran for it), it means every run of the handler for that event
// has finished, so that what the handler did not record it will not.
func (n *node) handlerIdle(t *testing.T, handler string) {
	t.Helper()
	testutil.Poll(t, 30*time.Second, n.name+"'s handler "+handler+" to be idle", func() (bool, string) {
		var info struct {
			Handlers []ctl.HandlerStats `json:"handlers"`
		}
		n.ctlJSON(t, &info, "info")
		for _, h := range info.Handlers {
			if h.Name == handler {
				return h.Queued == 0 && h.Running == 0, fmt.Sprintf("%+v", h)
			}
		}
		return false, fmt.Sprintf("no handler %s in %+v", handler, info.Handlers)
	})
}

// waitJoins waits until n's alljoin handler recorded a member-join of each
// named member, then until its webjoin handler is idle, and returns the
// members webjoin was run for.
func waitJoins(t *testing.T, n *node, dir string, members ...string) []string {
	t.Helper()
	testutil.Poll(t, 30*time.Second, n.name+"'s alljoin handler to record member-join of "+strings.Join(members, ", "),
		func() (bool, string) {
			got := recorded(dir, n.name, "alljoin")
			for _, m := range members {
				if !slices.Contains(got, "member-join "+m) {
					return false, fmt.Sprintf("%q", got)
				}
			}
			return true, ""
		})
	n.handlerIdle(t, "webjoin")
	var joined []string
	for _, line := range recorded(dir, n.name, "webjoin") {
		joined = append(joined, strings.TrimPrefix(line, "member-join "))
	}
	slices.Sort(joined)
	return slices.Compact(joined)
}

// TestHandlerTagFilters runs three serfd nodes with different tags, each
// with the same handler blocks. A member-join handler with tags role=web
// runs on every node for the web member only, with only it on stdin
// (web-2 does not match: the expression is anchored), while a handler
// without tags runs for all three. A user-event handler with tags runs
// only on the node whose own tags match, while one without tags runs on
// all; after serfctl reload changes its tags on one node, that node runs
// it too, and serfctl info shows the new tags.
func TestHandlerTagFilters(t *testing.T) {
	t.Parallel()
	shared := testutil.ShortTempDir(t, "tags-")
	recorder := writeTagRecorder(t, shared)
	const deployBlock = `handler "deploy" {
  events = ["user:deploy"]
  tags   = { role = "web" }
}
handler "deployall" { events = ["user:deploy"] }
`
	start := func(name, ip, tags string) *node {
		return startNodeWithSocket(t, name, ip, "", "tags = "+tags, memberJoinHandlers(recorder), deployBlock)
	}
	web := start("tag-web", "127.0.0.131", `{ role = "web", dc = "eu-1" }`)
	db := start("tag-db", "127.0.0.132", `{ role = "db", dc = "eu-2" }`)
	web2 := start("tag-web2", "127.0.0.133", `{ role = "web-2" }`)
	nodes := []*node{web, db, web2}
	for _, n := range nodes[1:] {
		if _, errOut, code := n.ctl(t, "join", web.addr); code != 0 {
			t.Fatalf("serfctl join %s = %q exit %d; want exit 0", web.addr, errOut, code)
		}
	}
	names := []string{"tag-web", "tag-db", "tag-web2"}
	for _, n := range nodes {
		n.waitStatus(t, 30*time.Second, "alive", names...)
	}

	// member-join, matched on the tags of each member the event is about.
	for _, n := range nodes {
		if got := waitJoins(t, n, shared, names...); !slices.Equal(got, []string{"tag-web"}) {
			t.Errorf("%s's webjoin handler (tags role=web) ran for members %v; want only tag-web", n.name, got)
		}
	}

	// A user event, matched on the tags of the node that runs it. The
	// handlers are files of the handlers directory, with their settings
	// from the handler blocks.
	script := fmt.Sprintf(tagRecorder, shared)
	for _, n := range nodes {
		n.addHandler(t, "deploy", script)
		n.addHandler(t, "deployall", script)
	}
	sendDeploy := func(from *node, payload string) (ran []string) {
		t.Helper()
		if _, errOut, code := from.ctl(t, "event", "deploy", payload); code != 0 {
			t.Fatalf("serfctl event deploy %s = %q exit %d; want exit 0", payload, errOut, code)
		}
		line := "user deploy " + payload
		for _, n := range nodes {
			testutil.Poll(t, 30*time.Second, n.name+"'s deployall handler to record "+payload, func() (bool, string) {
				got := recorded(shared, n.name, "deployall")
				return slices.Contains(got, line), fmt.Sprintf("%q", got)
			})
			n.handlerIdle(t, "deploy")
			if slices.Contains(recorded(shared, n.name, "deploy"), line) {
				ran = append(ran, n.name)
			}
		}
		return ran
	}
	if got := sendDeploy(db, "v1"); !slices.Equal(got, []string{"tag-web"}) {
		t.Errorf("user event deploy v1 ran the deploy handler (tags role=web) on %v; want only tag-web", got)
	}

	// Reload picks up changed tags.
	cfg := readFile(db.configPath())
	changed := strings.Replace(cfg, `tags   = { role = "web" }`, `tags   = { role = "web|db" }`, 1)
	if changed == cfg {
		t.Fatal("the deploy handler's tags are not in tag-db's configuration")
	}
	if err := os.WriteFile(db.configPath(), []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, errOut, code := db.ctl(t, "reload"); code != 0 || !strings.Contains(out, "handler blocks") {
		t.Fatalf("serfctl reload = %q %q exit %d; want handler blocks applied", out, errOut, code)
	}
	if out, _, _ := db.ctl(t, "info"); !strings.Contains(out, `tags="role=web|db"`) {
		t.Errorf("serfctl info after reload =\n%s\nwant the deploy handler's line with tags=\"role=web|db\"", out)
	}
	if got := sendDeploy(web2, "v2"); !slices.Equal(got, []string{"tag-web", "tag-db"}) {
		t.Errorf("user event deploy v2 ran the deploy handler on %v; want tag-web and tag-db (its tags on tag-db are role=web|db since the reload)", got)
	}
}

// TestHandlerTagFiltersWithStockSerf has two stock Serf agents, tagged
// with -tag role=web and -tag role=db, join a serfd node: its member-join
// handler with tags role=web runs for the stock web agent only.
func TestHandlerTagFiltersWithStockSerf(t *testing.T) {
	serf := testutil.SerfBin(t)
	t.Parallel()
	shared := testutil.ShortTempDir(t, "tags-stock-")
	recorder := writeTagRecorder(t, shared)
	noop := filepath.Join(shared, "noop.sh")
	if err := os.WriteFile(noop, []byte("#!/bin/sh\ncat >/dev/null\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	d := startNodeWithSocket(t, "tags-serfd", "127.0.0.134", "", `profile = "lan"`, `tags = { role = "db" }`, memberJoinHandlers(recorder))
	stockWeb := startStock(t, serf, "stock-web", "127.0.0.135", noop, "", "role=web")
	stockDB := startStock(t, serf, "stock-db", "127.0.0.136", noop, "", "role=db")
	for _, a := range []*stockAgent{stockWeb, stockDB} {
		if _, errOut, code := a.run(t, "join", d.addr); code != 0 {
			t.Fatalf("serf join %s = %q exit %d; want exit 0", d.addr, errOut, code)
		}
	}
	tags := map[string]map[string]string{"stock-web": {"role": "web"}, "stock-db": {"role": "db"}, "tags-serfd": {"role": "db"}}
	waitSees(t, d, "alive", tags, "tags-serfd", "stock-web", "stock-db")
	if got := waitJoins(t, d, shared, "tags-serfd", "stock-web", "stock-db"); !slices.Equal(got, []string{"stock-web"}) {
		t.Errorf("serfd's webjoin handler (tags role=web) ran for members %v; want only stock-web", got)
	}
}

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/serfd/serfd/internal/testutil"
)

// compatHandler is a Serf-style handler script: for each event it appends
// to DIR/$SERF_SELF_NAME.out one record of what Serf documents a handler
// gets, normalized where Serf itself is not deterministic: LTIMEs are
// dropped, member lines are sorted and so are the comma-separated tags in
// each (Serf writes them in map order). stdin of user events and queries is
// kept byte for byte, in hex. A record ends with a "==" line. Under serfd
// (SERF_HANDLER is set) it also notes serfd's extra variables in
// DIR/$SERF_SELF_NAME.extra.
const compatHandler = `#!/bin/sh
export LC_ALL=C
dir='%[1]s'
case "$SERF_EVENT" in
member-*)
	body=$(awk -F'\t' -v OFS='\t' '{
		n = split($4, t, ",")
		for (i = 2; i <= n; i++) { v = t[i]; j = i - 1; while (j > 0 && t[j] > v) { t[j+1] = t[j]; j-- }; t[j+1] = v }
		s = ""; for (i = 1; i <= n; i++) s = s (i > 1 ? "," : "") t[i]
		$4 = s; print }' | sort) ;;
*)
	body="stdin=$(od -An -tx1 | tr -d ' \n')" ;;
esac
printf '%%s\n==\n' "event=$SERF_EVENT
user_event=$SERF_USER_EVENT
query_name=$SERF_QUERY_NAME
self=$SERF_SELF_NAME
role=$SERF_SELF_ROLE
$(env | grep '^SERF_TAG_' | sort)
$body" >> "$dir/$SERF_SELF_NAME.out"
if [ -n "$SERF_HANDLER" ]; then
	echo "$SERF_EVENT${SERF_USER_EVENT:+ $SERF_USER_EVENT}${SERF_QUERY_NAME:+ $SERF_QUERY_NAME} addr=$SERF_SELF_ADDR source=$SERF_QUERY_SOURCE" >> "$dir/$SERF_SELF_NAME.extra"
fi
`

// handlerRecords reads the complete records a compatHandler wrote for
// node, each with the node's own name replaced by SELF.
func handlerRecords(dir, node string) []string {
	text := readFile(filepath.Join(dir, node+".out"))
	records := strings.Split(text, "\n==\n")
	records = records[:len(records)-1] // the last is empty or still being written
	for i, r := range records {
		records[i] = strings.Replace(r, "\nself="+node+"\n", "\nself=SELF\n", 1)
	}
	return records
}

// withEvent returns the records whose first line is event=<event> and
// whose second or third names name.
func withEvent(records []string, event, name string) []string {
	var out []string
	for _, r := range records {
		lines := strings.Split(r, "\n")
		if len(lines) > 2 && lines[0] == "event="+event && (lines[1] == "user_event="+name || lines[2] == "query_name="+name) {
			out = append(out, r)
		}
	}
	return out
}

// memberLines splits member event records into one record per member,
// keyed by member name, so that two implementations can be compared
// whatever members their coalescing happened to put together.
func memberLines(records []string, event string) map[string]string {
	out := map[string]string{}
	for _, r := range records {
		if !strings.HasPrefix(r, "event="+event+"\n") {
			continue
		}
		var head []string
		for line := range strings.SplitSeq(r, "\n") {
			if !strings.Contains(line, "\t") {
				head = append(head, line)
				continue
			}
			name, _, _ := strings.Cut(line, "\t")
			out[name] = strings.Join(append(slices.Clone(head), line), "\n")
		}
	}
	return out
}

// TestHandlersMatchStockSerf runs the same Serf-style handler script under
// stock Serf and under serfd, on one node of each joined in one cluster
// with the same tags, and checks that the script sees the same events the
// same way: environment and stdin of member-join for each member (the two
// nodes, and two more that join later), of user events (one payload
// without a trailing newline, one empty) and of a query. Member events are
// compared member by member, as which members one event lists depends on
// coalescing timing. It also checks serfd's extra variables SERF_SELF_ADDR
// and SERF_QUERY_SOURCE.
func TestHandlersMatchStockSerf(t *testing.T) {
	serf := testutil.SerfBin(t)
	shared := testutil.ShortTempDir(t, "compat-")
	if err := os.Chmod(shared, 0o755); err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf(compatHandler, shared)
	handler := filepath.Join(shared, "compat.sh")
	if err := os.WriteFile(handler, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	noop := filepath.Join(shared, "noop.sh")
	if err := os.WriteFile(noop, []byte("#!/bin/sh\ncat >/dev/null\n"), 0o755); err != nil {
		t.Fatal(err)
	}

	// The same tags on both; dc-zone exercises tag-name mangling.
	stock := startStock(t, serf, "stock", "127.0.0.81", handler, "", "role=web", "dc-zone=x-1")
	const serfdIP = "127.0.0.82"
	serfd := startNodeWithSocket(t, "serfd", serfdIP, "", `profile = "lan"`, `tags = { role = "web", "dc-zone" = "x-1" }`)
	if err := os.WriteFile(filepath.Join(serfd.dir, "handlers.d", "compat"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := serfd.ctl(t, "join", stock.addr); code != 0 {
		t.Fatalf("serfctl join %s = %q exit %d; want exit 0", stock.addr, errOut, code)
	}
	tags := map[string]map[string]string{"stock": {"role": "web", "dc-zone": "x-1"}, "serfd": {"role": "web", "dc-zone": "x-1"}}
	waitSees(t, stock, "alive", tags, "stock", "serfd")
	waitSees(t, serfd, "alive", tags, "stock", "serfd")

	// Two more nodes join at about the same time, one of each kind, with
	// other tags: both nodes under test get member-join events for them.
	joinerStock := startStock(t, serf, "joiner-stock", "127.0.0.83", noop, "", "role=db", "z=last", "a=first")
	joinerSerfd := startNodeWithSocket(t, "joiner-serfd", "127.0.0.84", "", `profile = "lan"`, `tags = { role = "cache", "b-c" = "2" }`)
	if _, errOut, code := joinerStock.run(t, "join", stock.addr); code != 0 {
		t.Fatalf("serf join %s = %q exit %d; want exit 0", stock.addr, errOut, code)
	}
	if _, errOut, code := joinerSerfd.ctl(t, "join", serfd.addr); code != 0 {
		t.Fatalf("serfctl join %s = %q exit %d; want exit 0", serfd.addr, errOut, code)
	}
	// Each node's own join, the other's, and the two joiners'.
	members := []string{"stock", "serfd", "joiner-stock", "joiner-serfd"}
	for _, node := range []string{"stock", "serfd"} {
		testutil.Poll(t, 30*time.Second, node+"'s handler to record member-join of "+strings.Join(members, ", "), func() (bool, string) {
			got := memberLines(handlerRecords(shared, node), "member-join")
			for _, m := range members {
				if got[m] == "" {
					return false, fmt.Sprintf("%q", got)
				}
			}
			return true, ""
		})
	}
	stockJoins := memberLines(handlerRecords(shared, "stock"), "member-join")
	serfdJoins := memberLines(handlerRecords(shared, "serfd"), "member-join")
	for _, name := range members {
		if stockJoins[name] != serfdJoins[name] {
			t.Errorf("member-join of %s as the handler saw it: under serfd %q; want %q as under stock Serf", name, serfdJoins[name], stockJoins[name])
		}
	}

	// sent waits for both handlers to record the event (or query) name,
	// once, and compares the two records.
	sent := func(event, name, desc string) {
		t.Helper()
		for _, node := range []string{"stock", "serfd"} {
			testutil.Poll(t, 30*time.Second, node+"'s handler to record "+desc, func() (bool, string) {
				got := withEvent(handlerRecords(shared, node), event, name)
				return len(got) > 0, fmt.Sprintf("%q", handlerRecords(shared, node))
			})
		}
		stockGot := withEvent(handlerRecords(shared, "stock"), event, name)
		serfdGot := withEvent(handlerRecords(shared, "serfd"), event, name)
		if len(stockGot) != 1 || len(serfdGot) != 1 || stockGot[0] != serfdGot[0] {
			t.Errorf("%s as the handler saw it: under serfd %q; want %q as under stock Serf", desc, serfdGot, stockGot)
		}
	}
	if _, errOut, code := stock.run(t, "event", "-coalesce=false", "deploy", "v1.2"); code != 0 {
		t.Fatalf("serf event deploy v1.2 = %q exit %d; want exit 0", errOut, code)
	}
	sent("user", "deploy", `user event "deploy" with payload "v1.2"`)
	if _, errOut, code := serfd.ctl(t, "event", "empty"); code != 0 {
		t.Fatalf("serfctl event empty = %q exit %d; want exit 0", errOut, code)
	}
	sent("user", "empty", `user event "empty" with no payload`)
	if _, errOut, code := stock.run(t, "query", "-timeout", "2s", "ping", "a\nb"); code != 0 {
		t.Fatalf("serf query ping = %q exit %d; want exit 0", errOut, code)
	}
	sent("query", "ping", `query "ping" with payload "a\nb"`)

	extra := readFile(filepath.Join(shared, "serfd.extra"))
	for _, want := range []string{
		"user deploy addr=" + serfdIP + " source=\n",
		"query ping addr=" + serfdIP + " source=stock\n",
	} {
		if !strings.Contains(extra, want) {
			t.Errorf("serfd's extra variables as the handler saw them = %q; want a line %q", extra, want)
		}
	}
}

package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/serfd/serfd/internal/testutil"
)

// queryHandler answers query "ping" with the node's name, on both agents.
const queryHandler = `#!/bin/sh
[ "$SERF_EVENT" = query ] && [ "$SERF_QUERY_NAME" = ping ] && echo "pong $SERF_SELF_NAME"
exit 0
`

// TestSerfCLISameOnSerfAndSerfd runs each command of the stock serf CLI
// against a stock Serf agent and against serfd in one encrypted cluster,
// and compares what it prints and its exit status, after normalising
// what differs by nature: the order of members, acks and responses, and
// measured round-trip times. info is compared by its sections and keys
// (serfd adds some), as its values are each agent's own. monitor is left
// out: it prints each agent's own log lines (its format is checked in
// TestSerfRPCWithStockSerfCLI); version and keygen do not use the RPC.
func TestSerfCLISameOnSerfAndSerfd(t *testing.T) {
	serf := testutil.SerfBin(t)
	dir := testutil.ShortTempDir(t, "same-")
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	handler := filepath.Join(dir, "ping.sh")
	if err := os.WriteFile(handler, []byte(queryHandler), 0o755); err != nil {
		t.Fatal(err)
	}
	const key1, key2 = "cg8StVXbQJ0gPvMd9o7yrg==", "4le6kHzErGZG4Kc5CGDK2g=="
	stock := startStock(t, serf, "stock", "127.0.0.95", handler, key1, "role=web")
	rpcAddr := net.JoinHostPort("127.0.0.96", fmt.Sprint(testutil.FreePort(t, "127.0.0.96")))
	sd := startNodeWithSocket(t, "serfd", "127.0.0.96", "", `profile = "lan"`, `tags = { role = "web" }`,
		fmt.Sprintf("encrypt_key = %q", key1), fmt.Sprintf("rpc { address = %q }", rpcAddr), fmt.Sprintf("join = [%q]", stock.addr))
	if err := os.WriteFile(filepath.Join(sd.dir, "handlers.d", "ping"), []byte(queryHandler), 0o755); err != nil {
		t.Fatal(err)
	}
	waitListening(t, rpcAddr)
	waitSees(t, stock, "alive", nil, "stock", "serfd")
	waitSees(t, sd, "alive", nil, "stock", "serfd")
	agents := []runner{serfRunner(serf, stock.rpc, ""), serfRunner(serf, rpcAddr, "")}
	names := []string{"stock Serf", "serfd"}

	sortedLines := func(s string) string {
		lines := strings.Split(strings.TrimSpace(s), "\n")
		for i := range lines {
			lines[i] = strings.Join(strings.Fields(lines[i]), " ")
		}
		slices.Sort(lines)
		return strings.Join(lines, "\n")
	}
	rtt := regexp.MustCompile(`[0-9]+\.[0-9]+ ms`)
	same := func(norm func(string) string, args ...string) {
		t.Helper()
		var outs [2]string
		var codes [2]int
		for i, a := range agents {
			out, errOut, code := a.run(t, args...)
			outs[i], codes[i] = norm(out+errOut), code
		}
		if outs[0] != outs[1] || codes[0] != codes[1] {
			t.Errorf("serf %s:\n%s (exit %d):\n%s\n%s (exit %d):\n%s", strings.Join(args, " "),
				names[0], codes[0], outs[0], names[1], codes[1], outs[1])
		}
	}
	jsonSame := func(norm func(any) any, args ...string) {
		t.Helper()
		var vals [2]any
		for i, a := range agents {
			out, errOut, code := a.run(t, args...)
			if code != 0 || json.Unmarshal([]byte(out), &vals[i]) != nil {
				t.Errorf("serf %s against %s: exit %d, %q %q", strings.Join(args, " "), names[i], code, out, errOut)
				return
			}
			vals[i] = norm(vals[i])
		}
		if !reflect.DeepEqual(vals[0], vals[1]) {
			t.Errorf("serf %s:\n%s: %v\n%s: %v", strings.Join(args, " "), names[0], vals[0], names[1], vals[1])
		}
	}
	byName := func(v any) any { // members' JSON, in name order
		ms, _ := v.(map[string]any)["members"].([]any)
		slices.SortFunc(ms, func(a, b any) int {
			return strings.Compare(a.(map[string]any)["name"].(string), b.(map[string]any)["name"].(string))
		})
		return ms
	}

	same(sortedLines, "members")
	same(sortedLines, "members", "-detailed")
	same(sortedLines, "members", "-status", "alive", "-tag", "role=web", "-name", "s.*")
	same(sortedLines, "members", "-status", "failed")
	jsonSame(byName, "members", "-format", "json")
	same(strings.TrimSpace, "event", "same-1", "payload")
	same(strings.TrimSpace, "event", "-coalesce=false", "same-2")
	same(sortedLines, "query", "-timeout", "3s", "ping", "x")
	jsonSame(func(v any) any { // acks in arrival order
		m := v.(map[string]any)
		if acks, ok := m["Acks"].([]any); ok {
			slices.SortFunc(acks, func(a, b any) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
		}
		return m
	}, "query", "-timeout", "3s", "-format", "json", "ping")
	same(sortedLines, "query", "-timeout", "2s", "-node", "stock", "-tag", "role=w.*", "ping")
	same(func(s string) string { return rtt.ReplaceAllString(strings.TrimSpace(s), "N ms") }, "rtt", "stock", "serfd")
	same(strings.TrimSpace, "rtt", "nosuchnode")
	same(sortedLines, "reachability")
	same(sortedLines, "keys", "-list")
	same(strings.TrimSpace, "keys", "-install", key2)
	same(strings.TrimSpace, "keys", "-use", key2)
	same(sortedLines, "keys", "-list")
	same(sortedLines, "keys", "-remove", key2) // the primary key: refused (nodes in any order)
	same(strings.TrimSpace, "tags", "-set", "rack=r1")
	testutil.Poll(t, 30*time.Second, "both agents to see rack=r1 on both", func() (bool, string) {
		for _, o := range []observer{stock, sd} {
			ms, state := o.members(t)
			if ms["stock"].Tags["rack"] != "r1" || ms["serfd"].Tags["rack"] != "r1" {
				return false, state
			}
		}
		return true, ""
	})
	jsonSame(byName, "members", "-format", "json")
	same(strings.TrimSpace, "tags", "-delete", "rack")
	same(strings.TrimSpace, "join", stock.addr)
	// A failed join: the same exit status and first line; the reasons
	// are each memberlist version's wording.
	same(func(s string) string { return strings.SplitN(s, ":", 2)[0] }, "join", "127.0.0.97:1")
	same(strings.TrimSpace, "force-leave", "nosuchnode")

	// info: the same sections, each with at least Serf's keys.
	sections := func(v any) any {
		out := map[string][]string{}
		for sec, keys := range v.(map[string]any) {
			if m, ok := keys.(map[string]any); ok && sec != "tags" && sec != "event_handlers" {
				for k := range m {
					out[sec] = append(out[sec], k)
				}
				slices.Sort(out[sec])
			}
		}
		return out
	}
	var info [2]map[string][]string
	for i, a := range agents {
		out, errOut, code := a.run(t, "info", "-format", "json")
		var v any
		if code != 0 || json.Unmarshal([]byte(out), &v) != nil {
			t.Fatalf("serf info -format json against %s: exit %d, %q %q", names[i], code, out, errOut)
		}
		info[i] = sections(v).(map[string][]string)
	}
	for sec, keys := range info[0] {
		for _, k := range keys {
			if !slices.Contains(info[1][sec], k) {
				t.Errorf("serf info against serfd lacks %s.%s (stock: %v; serfd: %v)", sec, k, info[0], info[1])
			}
		}
	}

	same(strings.TrimSpace, "leave")
}

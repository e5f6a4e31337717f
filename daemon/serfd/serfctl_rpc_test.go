package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	osexec "os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/serfd/serfd/internal/testutil"
)

// startRPCNode starts serfd on ip serving Serf's RPC on a port of its own
// with token (read from an auth_file), extra appended to its
// configuration, and waits until the RPC listener answers.
func startRPCNode(t *testing.T, name, ip, token string, extra ...string) (*node, string) {
	t.Helper()
	authFile := filepath.Join(testutil.ShortTempDir(t, "rpc-"), "rpc.token")
	if err := os.WriteFile(authFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rpcAddr := net.JoinHostPort(ip, fmt.Sprint(testutil.FreePort(t, ip)))
	rpc := fmt.Sprintf("rpc {\n  address = %q\n  auth_file = %q\n}\n", rpcAddr, authFile)
	n := startNodeWithSocket(t, name, ip, "", append(extra, rpc)...)
	waitListening(t, rpcAddr)
	return n, rpcAddr
}

// runner runs one command line against a node and returns stdout,
// stderr and the exit code.
type runner struct {
	label string
	run   func(t *testing.T, args ...string) (string, string, int)
}

// serfRunner is the stock serf command at rpcAddr: flags go after the
// command name, as serf takes them.
func serfRunner(serf, rpcAddr, token string) runner {
	return runner{"serf", func(t *testing.T, args ...string) (string, string, int) {
		t.Helper()
		full := append([]string{args[0], "-rpc-addr=" + rpcAddr, "-rpc-auth=" + token}, args[1:]...)
		return testutil.Run(t, osexec.Command(serf, full...))
	}}
}

// ctlRPCRunner is serfctl over Serf's RPC, with -rpc-addr and -rpc-auth
// before the command.
func ctlRPCRunner(rpcAddr, token string) runner {
	return runner{"serfctl -rpc-addr", func(t *testing.T, args ...string) (string, string, int) {
		t.Helper()
		return testutil.Run(t, osexec.Command(bin.serfctl, append([]string{"-rpc-addr", rpcAddr, "-rpc-auth", token}, args...)...))
	}}
}

// ctlEnvRunner is serfctl over Serf's RPC chosen by SERF_RPC_ADDR and
// SERF_RPC_AUTH, as scripts written for serf set them (with SERFD_SOCKET
// set too: SERF_RPC_ADDR wins over it).
func ctlEnvRunner(rpcAddr, token string) runner {
	return runner{"SERF_RPC_ADDR serfctl", func(t *testing.T, args ...string) (string, string, int) {
		t.Helper()
		cmd := osexec.Command(bin.serfctl, args...)
		cmd.Env = append(os.Environ(), "SERF_RPC_ADDR="+rpcAddr, "SERF_RPC_AUTH="+token, "SERFD_SOCKET=/nonexistent.sock")
		return testutil.Run(t, cmd)
	}}
}

// ctlSocketRunner is serfctl over n's control socket.
func ctlSocketRunner(n *node) runner {
	return runner{"serfctl -socket", func(t *testing.T, args ...string) (string, string, int) {
		t.Helper()
		return n.ctl(t, args...)
	}}
}

// ok runs args and fails the test unless they exit 0.
func (r runner) ok(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := r.run(t, args...)
	if code != 0 {
		t.Fatalf("%s %v: exit %d, %q %q; want exit 0", r.label, args, code, out, errOut)
	}
	return out
}

// volatileStats are the keys of serf info whose values move between two
// calls (queues, clocks, goroutines); only their presence is compared.
var volatileStats = map[string]bool{"goroutines": true, "member_time": true, "event_time": true, "query_time": true,
	"intent_queue": true, "event_queue": true, "query_queue": true, "health_score": true, "coordinate_resets": true}

// parseInfoText reads serf info's text: "section:" lines, then
// "\tkey = value" lines.
func parseInfoText(t *testing.T, out string) map[string]map[string]string {
	t.Helper()
	st := map[string]map[string]string{}
	var sec string
	for line := range strings.Lines(strings.TrimRight(out, "\n")) {
		line = strings.TrimRight(line, "\n")
		if k, v, ok := strings.Cut(strings.TrimPrefix(line, "\t"), " = "); ok && strings.HasPrefix(line, "\t") && sec != "" {
			st[sec][k] = v
		} else if name, ok := strings.CutSuffix(line, ":"); ok && !strings.HasPrefix(line, "\t") {
			sec = name
			st[sec] = map[string]string{}
		} else {
			t.Fatalf("info line %q is neither \"section:\" nor \"\\tkey = value\" in %q", line, out)
		}
	}
	return st
}

// sameStats reports how got differs from serf's want: every section and
// key of want must be in got with the same value (volatile ones only
// present); exact: and nothing more.
func sameStats(want, got map[string]map[string]string, exact bool) []string {
	var diffs []string
	for sec, kv := range want {
		for k, v := range kv {
			g, ok := got[sec][k]
			switch {
			case !ok:
				diffs = append(diffs, fmt.Sprintf("%s.%s missing", sec, k))
			case g != v && !volatileStats[k]:
				diffs = append(diffs, fmt.Sprintf("%s.%s = %q, serf %q", sec, k, g, v))
			}
		}
	}
	for sec, kv := range got {
		if _, ok := want[sec]; !ok && exact {
			diffs = append(diffs, fmt.Sprintf("section %s is extra", sec))
		}
		for k := range kv {
			if _, ok := want[sec][k]; !ok && exact && want[sec] != nil {
				diffs = append(diffs, fmt.Sprintf("%s.%s is extra", sec, k))
			}
		}
	}
	slices.Sort(diffs)
	return diffs
}

// normLines is out with each line's runs of blanks made one space and the
// lines sorted: serf prints keys in map order, columns padded by width.
func normLines(out string, drop ...*regexp.Regexp) []string {
	var lines []string
	for line := range strings.Lines(out) {
		line = strings.Join(strings.Fields(line), " ")
		for _, re := range drop {
			line = re.ReplaceAllString(line, "")
		}
		lines = append(lines, line)
	}
	slices.Sort(lines)
	return lines
}

// TestSerfctlRPCMatchesSerf runs the stock serf command (over serfd's rpc
// listener) and serfctl, over the control socket and over Serf's RPC
// (flags and environment), against the same two serfd nodes: info, keys,
// rtt and reachability print what serf prints, text and JSON, up to
// timings, clocks and serfd's extra keys (none of which over Serf's RPC).
func TestSerfctlRPCMatchesSerf(t *testing.T) {
	t.Parallel()
	serf := testutil.SerfBin(t)
	const token = "rpc-match-token"
	key1, key2 := "T9jncgl9mbLus+baTTa7q7nPSUrXwbDi2dhbtqir37s=", "5K9OtfP7efFrNKe5WCQvXvnaXJ5cWP0SvXiwe0kkjM4="
	enc := fmt.Sprintf("encrypt_key = %q", key1)
	p1, rpcAddr := startRPCNode(t, "p1", "127.0.0.111", token, enc, `tags = { role = "web" }`)
	p2 := startNodeWithSocket(t, "p2", "127.0.0.112", "", enc, fmt.Sprintf("join = [%q]", p1.addr))
	p1.waitStatus(t, 30*time.Second, "alive", "p1", "p2")
	p2.waitStatus(t, 30*time.Second, "alive", "p1", "p2")

	stock := serfRunner(serf, rpcAddr, token)
	overRPC := ctlRPCRunner(rpcAddr, token)
	byEnv := ctlEnvRunner(rpcAddr, token)
	bySocket := ctlSocketRunner(p1)
	serfctls := []runner{overRPC, byEnv, bySocket}

	// info, text and JSON: Serf's sections and keys, nothing more over RPC.
	want := parseInfoText(t, stock.ok(t, "info"))
	if want["agent"]["name"] != "p1" || want["tags"]["role"] != "web" || want["serf"]["encrypted"] != "true" {
		t.Fatalf("serf info = %v; want agent p1, tag role=web, encrypted", want)
	}
	for _, r := range serfctls {
		got := parseInfoText(t, r.ok(t, "info"))
		if diffs := sameStats(want, got, r.label != bySocket.label); len(diffs) > 0 {
			t.Errorf("%s info differs from serf info: %s", r.label, strings.Join(diffs, "; "))
		}
	}
	var wantJSON map[string]map[string]string
	if err := json.Unmarshal([]byte(stock.ok(t, "info", "-format", "json")), &wantJSON); err != nil {
		t.Fatal(err)
	}
	for _, r := range serfctls {
		out := r.ok(t, "info", "-format", "json")
		var got map[string]map[string]string
		if r.label == bySocket.label {
			// serfd's report keeps its own typed keys beside Serf's sections.
			var all map[string]json.RawMessage
			if err := json.Unmarshal([]byte(out), &all); err != nil {
				t.Fatalf("%s info -format json = %q: %v", r.label, out, err)
			}
			got = map[string]map[string]string{}
			for _, sec := range []string{"agent", "serf", "tags"} {
				var m map[string]string
				if err := json.Unmarshal(all[sec], &m); err != nil {
					t.Fatalf("%s info -format json %s = %s: %v; want strings, as serf", r.label, sec, all[sec], err)
				}
				got[sec] = m
			}
			var rt map[string]any
			if err := json.Unmarshal(all["runtime"], &rt); err != nil {
				t.Fatal(err)
			}
			got["runtime"] = map[string]string{}
			for k, v := range rt {
				if s, ok := v.(string); ok {
					got["runtime"][k] = s
				}
			}
			var version string
			if err := json.Unmarshal(all["version"], &version); err != nil || version == "" {
				t.Errorf("%s info -format json version = %s, %v; want serfd's version, as before", r.label, all["version"], err)
			}
		} else if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("%s info -format json = %q: %v; want serf's shape", r.label, out, err)
		}
		if diffs := sameStats(wantJSON, got, r.label != bySocket.label); len(diffs) > 0 {
			t.Errorf("%s info -format json differs from serf's: %s", r.label, strings.Join(diffs, "; "))
		}
	}

	// keys: each operation, serf's flags and serfctl's words alike; list
	// gives each key with the count of nodes holding it. From the socket
	// a list also says which key is primary where.
	primary := regexp.MustCompile(` primary on \d+$`)
	sameKeys := func(args ...string) {
		t.Helper()
		want := normLines(stock.ok(t, append([]string{"keys"}, args...)...))
		for _, r := range serfctls {
			if got := normLines(r.ok(t, append([]string{"keys"}, args...)...), primary); !slices.Equal(got, want) {
				t.Errorf("%s keys %v = %q; want serf's %q", r.label, args, got, want)
			}
		}
	}
	sameKeys("-install", key2) // idempotent: serf's, then each serfctl's
	sameKeys("-list")
	if out := bySocket.ok(t, "keys", "list"); !strings.Contains(out, key1+"  [2/2]  primary on 2") || !strings.Contains(out, key2+"  [2/2]\n") {
		t.Errorf("serfctl keys list = %q; want both keys on 2/2 nodes, %s primary", out, key1)
	}
	var keysJSON struct {
		Messages                  map[string]string
		NumNodes, NumResp, NumErr int
		Keys                      map[string]int
	}
	for _, r := range serfctls {
		out := r.ok(t, "keys", "-list", "-format", "json")
		if err := json.Unmarshal([]byte(out), &keysJSON); err != nil || keysJSON.NumNodes != 2 || keysJSON.NumResp != 2 ||
			keysJSON.Keys[key1] != 2 || keysJSON.Keys[key2] != 2 || keysJSON.Messages == nil || !strings.Contains(out, `"NumNodes"`) {
			t.Errorf("%s keys -list -format json = %s, %v; want Serf's key response: 2 nodes holding both keys", r.label, out, err)
		}
	}
	sameKeys("-use", key2)
	sameKeys("-remove", key1)
	sameKeys("-list")
	for _, r := range serfctls {
		out, errOut, code := r.run(t, "keys", "-remove", key2) // the primary key
		if code != 1 || !strings.Contains(errOut, "failed:") || !strings.HasPrefix(out, "==> Removing key on all members...") {
			t.Errorf("%s keys -remove PRIMARY = %q %q exit %d; want exit 1 with each node's failure", r.label, out, errOut, code)
		}
	}

	// rtt: once both coordinates exist, the same line up to the figure.
	testutil.Poll(t, 20*time.Second, "serf rtt p2 p1", func() (bool, string) {
		out, errOut, code := stock.run(t, "rtt", "p2", "p1")
		return code == 0, out + errOut
	})
	figure := regexp.MustCompile(`rtt: \d+\.\d{3} ms$`)
	for _, args := range [][]string{{"rtt", "p2", "p1"}, {"rtt", "p2"}} {
		want := normLines(stock.ok(t, args...), figure)
		for _, r := range serfctls {
			out := r.ok(t, args...)
			if got := normLines(out, figure); !slices.Equal(got, want) || !figure.MatchString(strings.TrimSuffix(out, "\n")) {
				t.Errorf("%s %v = %q; want serf's %q with a figure", r.label, args, out, want)
			}
		}
	}
	for _, r := range append(serfctls, stock) {
		if _, _, code := r.run(t, "rtt", "nobody"); code != 1 {
			t.Errorf("%s rtt nobody = exit %d; want 1", r.label, code)
		}
	}

	// reachability: every live member acks (a lost ack on a loaded
	// machine is tried again), and the report is serf's.
	times := regexp.MustCompile(`^Query time: [0-9.]+ sec, time to last response: [0-9.]+ sec$`)
	reach := func(r runner, args ...string) []string {
		t.Helper()
		var out string
		testutil.Poll(t, 20*time.Second, r.label+" reachability to succeed", func() (bool, string) {
			var errOut string
			var code int
			out, errOut, code = r.run(t, append([]string{"reachability"}, args...)...)
			return code == 0, out + errOut
		})
		return normLines(out, times)
	}
	for _, args := range [][]string{nil, {"-verbose"}} {
		want := reach(stock, args...)
		if !slices.Contains(want, "Successfully contacted all live nodes") || !slices.Contains(want, "Total members: 2, live members: 2") {
			t.Fatalf("serf reachability %v = %q", args, want)
		}
		for _, r := range serfctls {
			if got := reach(r, args...); !slices.Equal(got, want) {
				t.Errorf("%s reachability %v = %q; want serf's %q", r.label, args, got, want)
			}
		}
	}

	// monitor over Serf's RPC streams serfd's records until interrupted.
	mon := testutil.Start(t, "serfctl -rpc-addr monitor", osexec.Command(bin.serfctl, "-rpc-addr", rpcAddr, "-rpc-auth", token, "monitor"))
	testutil.Poll(t, 20*time.Second, "serfctl -rpc-addr monitor to show a user event", func() (bool, string) {
		overRPC.ok(t, "event", "watched-over-rpc")
		return strings.Contains(mon.Out.String(), "[INFO] user event watched-over-rpc"), mon.Out.String()
	})
	if err := mon.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := mon.Wait(t, 10*time.Second); err != nil {
		t.Errorf("serfctl -rpc-addr monitor after SIGINT: %v; want exit 0", err)
	}

	// reload is serfd's own: one line saying so, exit 2; -socket beats
	// SERF_RPC_ADDR.
	for _, r := range []runner{overRPC, byEnv} {
		if _, errOut, code := r.run(t, "reload"); code != 2 || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "Serf's protocol has no reload") {
			t.Errorf("%s reload = %q exit %d; want exit 2 and one line saying why", r.label, errOut, code)
		}
	}
	if out, errOut, code := byEnv.run(t, "-socket", p1.socket, "reload"); code != 0 || !strings.Contains(out, "Configuration reloaded") {
		t.Errorf("SERF_RPC_ADDR serfctl -socket reload = %q %q exit %d; want the socket's reload", out, errOut, code)
	}
	if _, errOut, code := testutil.Run(t, osexec.Command(bin.serfctl, "-rpc-addr", rpcAddr, "members")); code != 1 || !strings.Contains(errOut, "Authentication required") {
		t.Errorf("serfctl -rpc-addr members without the token = %q exit %d; want exit 1, authentication required", errOut, code)
	}
}

// TestSerfctlRPCWithStockAgent drives a stock Serf agent with serfctl
// -rpc-addr (given after the command, as serf takes it): join a serfd
// node, members as serf lists them, an event its handler gets, a query
// its handler answers, tags, leave.
func TestSerfctlRPCWithStockAgent(t *testing.T) {
	t.Parallel()
	serf := testutil.SerfBin(t)
	dir := testutil.ShortTempDir(t, "ctlstock-")
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	handler := filepath.Join(dir, "handler.sh")
	if err := os.WriteFile(handler, fmt.Appendf(nil, interopHandler, dir), 0o755); err != nil {
		t.Fatal(err)
	}
	st := startStock(t, serf, "st1", "127.0.0.113", handler, "", "role=edge")
	sd := startNode(t, "sd1", "127.0.0.114", "")
	ctl := func(args ...string) (string, string, int) {
		t.Helper()
		full := append([]string{args[0], "-rpc-addr", st.rpc}, args[1:]...)
		return testutil.Run(t, osexec.Command(bin.serfctl, full...))
	}
	ok := func(args ...string) string {
		t.Helper()
		out, errOut, code := ctl(args...)
		if code != 0 {
			t.Fatalf("serfctl %v -rpc-addr (stock agent): exit %d, %q %q; want exit 0", args, code, out, errOut)
		}
		return out
	}

	if out := ok("join", sd.addr); out != "Successfully joined cluster by contacting 1 node(s).\n" {
		t.Errorf("serfctl join = %q", out)
	}
	waitSees(t, st, "alive", nil, "st1", "sd1")
	for _, args := range [][]string{{"members"}, {"members", "-detailed"}, {"members", "-format", "json"},
		{"members", "-tag", "role=ed.*"}, {"members", "-status", "alive", "-name", "sd.*"}} {
		// serf lists members in map order, serfctl by name.
		same := func(want, got string) bool {
			var a, b struct{ Members []map[string]any }
			if json.Unmarshal([]byte(want), &a) == nil && json.Unmarshal([]byte(got), &b) == nil {
				byName := func(ms []map[string]any) {
					slices.SortFunc(ms, func(x, y map[string]any) int { return strings.Compare(fmt.Sprint(x["name"]), fmt.Sprint(y["name"])) })
				}
				byName(a.Members)
				byName(b.Members)
				return len(a.Members) > 0 && fmt.Sprint(a) == fmt.Sprint(b)
			}
			return slices.Equal(normLines(want), normLines(got))
		}
		want, _, code := st.run(t, args...)
		if got, errOut, gotCode := ctl(args...); code != 0 || gotCode != 0 || !same(want, got) {
			t.Errorf("serfctl %v = %q %q (exit %d); want what serf prints, %q (exit %d)", args, got, errOut, gotCode, want, code)
		}
	}

	if out := ok("event", "deploy", "v1"); out != "Event 'deploy' dispatched! Coalescing enabled: false\n" {
		t.Errorf("serfctl event deploy v1 = %q", out)
	}
	testutil.Poll(t, 20*time.Second, "the stock agent's handler to get the event", func() (bool, string) {
		got := readFile(filepath.Join(dir, "st1.events"))
		return strings.Contains(got, "deploy v1"), got
	})

	out := ok("query", "-node", "st1", "-timeout", "2s", "ping")
	for _, want := range []string{"Query 'ping' dispatched", "Ack from 'st1'", "Response from 'st1': pong from st1",
		"Total Acks: 1\nTotal Responses: 1\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("serfctl query -node st1 ping = %q; want %q", out, want)
		}
	}
	var serfQ, ctlQ map[string]any
	wantQ, _, _ := st.run(t, "query", "-format", "json", "-node", "st1", "-timeout", "2s", "ping")
	if err := json.Unmarshal([]byte(wantQ), &serfQ); err != nil {
		t.Fatalf("serf query -format json = %q: %v", wantQ, err)
	}
	if err := json.Unmarshal([]byte(ok("query", "-format", "json", "-node", "st1", "-timeout", "2s", "ping")), &ctlQ); err != nil ||
		fmt.Sprint(ctlQ) != fmt.Sprint(serfQ) {
		t.Errorf("serfctl query -format json = %v, %v; want serf's %v", ctlQ, err, serfQ)
	}

	if out := ok("tags", "-set", "zone=a", "-delete", "role"); out != "Tags updated: zone=a\n" {
		t.Errorf("serfctl tags -set zone=a -delete role = %q; want the agent's tags now", out)
	}
	waitSees(t, sd, "alive", map[string]map[string]string{"st1": {"zone": "a"}}, "st1")
	if ms, state := st.members(t); ms["st1"].Tags["role"] != "" {
		t.Errorf("the stock agent still has tag role after -delete role: %s", state)
	}

	if out := ok("leave"); out != "Graceful leave complete.\n" {
		t.Errorf("serfctl leave = %q", out)
	}
	if err := st.proc.Wait(t, 20*time.Second); err != nil {
		t.Errorf("stock agent after serfctl leave: %v; want exit 0", err)
	}
	waitSees(t, sd, "left", nil, "st1")
}

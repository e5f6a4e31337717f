package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	osexec "os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/serfd/serfd/internal/testutil"
)

// stockAgent is one stock Serf agent under test.
type stockAgent struct {
	name, addr, rpc string
	bin             string
	proc            *testutil.Proc
}

func startStock(t testing.TB, bin, name, ip, handler, key string, tags ...string) *stockAgent {
	t.Helper()
	a := &stockAgent{name: name, bin: bin}
	a.addr = net.JoinHostPort(ip, fmt.Sprint(testutil.FreePort(t, ip)))
	a.rpc = net.JoinHostPort(ip, fmt.Sprint(testutil.FreePort(t, ip)))
	args := []string{"agent", "-node", name, "-bind", a.addr, "-rpc-addr", a.rpc, "-profile", "lan",
		"-event-handler", handler, "-log-level", "debug"}
	if key != "" {
		args = append(args, "-encrypt", key)
	}
	for _, tg := range tags {
		args = append(args, "-tag", tg)
	}
	a.proc = testutil.Start(t, "stock serf "+name, osexec.Command(bin, args...))
	testutil.Poll(t, 20*time.Second, "stock "+name+" RPC", func() (bool, string) {
		_, errOut, code := a.run(t, "members")
		return code == 0, errOut
	})
	return a
}

func (a *stockAgent) run(t testing.TB, args ...string) (string, string, int) {
	t.Helper()
	full := append([]string{args[0], "-rpc-addr", a.rpc}, args[1:]...)
	out, errOut, code := testutil.Run(t, osexec.Command(a.bin, full...))
	return out, out + errOut, code
}

func (a *stockAgent) members(t testing.TB) (map[string]member, string) {
	t.Helper()
	out, errOut, code := a.run(t, "members", "-format", "json")
	if code != 0 {
		return nil, errOut
	}
	return decodeMembers(out)
}

// observer is anything that lists members: a serfd node or a stock agent.
type observer interface {
	members(t testing.TB) (map[string]member, string)
}

func label(o observer) string {
	switch v := o.(type) {
	case *node:
		return v.name
	case *stockAgent:
		return v.name
	}
	return "?"
}

// waitSees waits until o lists each name with the status and, when tags is
// non-nil, with those tags among its own.
func waitSees(t *testing.T, o observer, status string, tags map[string]map[string]string, names ...string) {
	t.Helper()
	testutil.Poll(t, 40*time.Second, fmt.Sprintf("%s to see %v %s", label(o), names, status), func() (bool, string) {
		ms, state := o.members(t)
		if ms == nil {
			return false, state
		}
		for _, n := range names {
			if ms[n].Status != status {
				return false, state
			}
			for k, v := range tags[n] {
				if ms[n].Tags[k] != v {
					return false, state
				}
			}
		}
		return true, state
	})
}

const interopHandler = `#!/bin/sh
case "$SERF_EVENT" in
user)  printf '%%s %%s\n' "$SERF_USER_EVENT" "$(cat)" >> %[1]s/"$SERF_SELF_NAME".events ;;
query) cat >/dev/null; echo "pong from $SERF_SELF_NAME" ;;
esac
`

// TestInteropStockSerf runs two stock Serf agents and two serfd nodes in
// one encrypted cluster on loopback, joined in both directions, and checks
// that each side is a full peer of the other. Every node uses the LAN
// profile: with "local" (RetransmitMult 2) a query in a 4-node cluster
// misses a node now and then, stock Serf alone included, as queries have no
// push/pull repair.
func TestInteropStockSerf(t *testing.T) {
	serf := testutil.SerfBin(t)
	shared := testutil.ShortTempDir(t, "interop-")
	if err := os.Chmod(shared, 0o755); err != nil {
		t.Fatal(err)
	}
	handler := filepath.Join(shared, "handler.sh")
	if err := os.WriteFile(handler, []byte(fmt.Sprintf(interopHandler, shared)), 0o755); err != nil {
		t.Fatal(err)
	}
	key1 := "T9jncgl9mbLus+baTTa7q7nPSUrXwbDi2dhbtqir37s="
	key2 := "HvY8ubRZMgafUOWvrOadwOckVa1wN3QWAo46FVKbVN8="
	ring := func(name, key string) string {
		p := filepath.Join(shared, name+".keyring")
		if err := os.WriteFile(p, []byte(`["`+key+`"]`), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// The serfd nodes run with what serfd adds to Serf enabled: key
	// handover, a snapshot keeping departed members, a handler filtered by
	// tag (the node's own), join names resolved through a DNS server.
	dns := testutil.ServeDNS(t, "127.0.0.50")
	serfdConfig := func(name, role, key string) string {
		return fmt.Sprintf(`profile = "lan"
tags = { role = %q }
keyring_file = %q
key_handover_grace = "1h"
snapshot_path = %q
snapshot_retention = "1h"
join_resolver = %q
handler "interop" {
  events = ["user", "query"]
  tags   = { role = "serfd" }
}
`, role, ring(name, key), filepath.Join(testutil.ShortTempDir(t, "snap-"), "snapshot"), dns.Addr)
	}

	s1 := startStock(t, serf, "s1", "127.0.0.51", handler, key1, "role=stock")
	s2 := startStock(t, serf, "s2", "127.0.0.52", handler, key1, "role=stock")
	d1 := startNodeWithSocket(t, "d1", "127.0.0.53", "", serfdConfig("d1", "serfd", key1))
	d2 := startNodeWithSocket(t, "d2", "127.0.0.54", "", serfdConfig("d2", "serfd", key1))
	// The handlers directory of each serfd node gets the shared handler.
	for _, d := range []*node{d1, d2} {
		if err := os.WriteFile(filepath.Join(d.dir, "handlers.d", "interop"), []byte(fmt.Sprintf(interopHandler, shared)), 0o755); err != nil {
			t.Fatal(err)
		}
	}

	// Joined in both directions: a stock agent joins serfd, serfd joins stock.
	if out, errOut, code := s2.run(t, "join", d1.addr); code != 0 {
		t.Fatalf("serf join %s = %q exit %d", d1.addr, errOut, code)
	} else {
		t.Logf("serf join: %s", strings.TrimSpace(out))
	}
	// d2 joins s1 by a DNS name that resolves to it.
	s1Host, s1Port, _ := net.SplitHostPort(s1.addr)
	dns.Set(t, "s1.interop.internal. 5 IN A "+s1Host)
	if _, errOut, code := d2.ctl(t, "join", "s1.interop.internal:"+s1Port); code != 0 {
		t.Fatalf("serfctl join s1.interop.internal:%s = %q exit %d", s1Port, errOut, code)
	}
	if _, errOut, code := d1.ctl(t, "join", s1.addr); code != 0 {
		t.Fatalf("serfctl join %s = %q exit %d", s1.addr, errOut, code)
	}
	all := []string{"s1", "s2", "d1", "d2"}
	tags := map[string]map[string]string{
		"s1": {"role": "stock"}, "s2": {"role": "stock"}, "d1": {"role": "serfd"}, "d2": {"role": "serfd"},
	}
	observers := []observer{s1, s2, d1, d2}
	for _, o := range observers {
		waitSees(t, o, "alive", tags, all...)
	}

	eventsOf := func(name string) string { return readFile(filepath.Join(shared, name+".events")) }
	waitEvent := func(line string) {
		t.Helper()
		for _, n := range all {
			testutil.Poll(t, 30*time.Second, fmt.Sprintf("%s's handler to record %q", n, line), func() (bool, string) {
				got := eventsOf(n)
				return strings.Contains(got, line+"\n"), fmt.Sprintf("%q", got)
			})
		}
	}
	t.Run("user events both ways", func(t *testing.T) {
		if _, errOut, code := s1.run(t, "event", "-coalesce=false", "fromstock", "p1"); code != 0 {
			t.Fatalf("serf event = %q exit %d", errOut, code)
		}
		waitEvent("fromstock p1")
		if _, errOut, code := d1.ctl(t, "event", "fromserfd", "p2"); code != 0 {
			t.Fatalf("serfctl event = %q exit %d", errOut, code)
		}
		waitEvent("fromserfd p2")
	})

	t.Run("queries both ways", func(t *testing.T) {
		out, errOut, code := s2.run(t, "query", "-format", "json", "-timeout", "4s", "ping", "x")
		if code != 0 {
			t.Fatalf("serf query = %q exit %d", errOut, code)
		}
		var sr struct {
			Acks      []string
			Responses map[string]string
		}
		if err := json.Unmarshal([]byte(out), &sr); err != nil {
			t.Fatalf("decode serf query output %q: %v", out, err)
		}
		if len(sr.Acks) != 4 || len(sr.Responses) != 4 {
			t.Errorf("serf query (from stock) = %d acks %v, %d responses %v; want 4 and 4", len(sr.Acks), sr.Acks, len(sr.Responses), sr.Responses)
		}
		for _, n := range all {
			if got := strings.TrimSpace(sr.Responses[n]); got != "pong from "+n {
				t.Errorf("serf query response of %s = %q; want %q", n, got, "pong from "+n)
			}
		}

		out, errOut, code = d2.ctl(t, "-format", "json", "query", "-timeout", "4s", "ping", "y")
		if code != 0 {
			t.Fatalf("serfctl query = %q exit %d", errOut, code)
		}
		var dr struct {
			Acks      []string          `json:"Acks"`
			Responses map[string]string `json:"Responses"`
		}
		if err := json.Unmarshal([]byte(out), &dr); err != nil {
			t.Fatalf("decode serfctl query output %q: %v", out, err)
		}
		if len(dr.Acks) != 4 || len(dr.Responses) != 4 {
			t.Errorf("serfctl query (from serfd) = %d acks %v, %d responses %v; want 4 and 4", len(dr.Acks), dr.Acks, len(dr.Responses), dr.Responses)
		}
	})

	t.Run("tags both ways", func(t *testing.T) {
		if _, errOut, code := s1.run(t, "tags", "-set", "zone=a"); code != 0 {
			t.Fatalf("serf tags = %q exit %d", errOut, code)
		}
		if _, errOut, code := d1.ctl(t, "tags", "-set", "zone=b"); code != 0 {
			t.Fatalf("serfctl tags = %q exit %d", errOut, code)
		}
		want := map[string]map[string]string{"s1": {"zone": "a", "role": "stock"}, "d1": {"zone": "b", "role": "serfd"}}
		for _, o := range observers {
			waitSees(t, o, "alive", want, "s1", "d1")
		}
	})

	t.Run("key rotation both ways", func(t *testing.T) {
		out, errOut, code := s1.run(t, "keys", "-list")
		if code != 0 || !regexp.MustCompile(regexp.QuoteMeta(key1)+`\s+\[4/4\]`).MatchString(out) {
			t.Fatalf("serf keys -list = %q exit %d; want %s on [4/4]", errOut, code, key1)
		}
		if _, errOut, code := d1.ctl(t, "keys", "install", key2); code != 0 {
			t.Fatalf("serfctl keys install = %q exit %d", errOut, code)
		}
		out, errOut, code = s2.run(t, "keys", "-list")
		if code != 0 || !regexp.MustCompile(regexp.QuoteMeta(key2)+`\s+\[4/4\]`).MatchString(out) {
			t.Fatalf("serf keys -list after serfctl install = %q exit %d; want %s on [4/4]", errOut, code, key2)
		}
		if _, errOut, code := s2.run(t, "keys", "-use", key2); code != 0 {
			t.Fatalf("serf keys -use = %q exit %d", errOut, code)
		}
		if _, errOut, code := d2.ctl(t, "keys", "remove", key1); code != 0 {
			t.Fatalf("serfctl keys remove = %q exit %d", errOut, code)
		}
		out, errOut, code = d1.ctl(t, "-format", "json", "keys", "list")
		var kr struct { // Serf's key response
			NumNodes    int
			Keys        map[string]int
			PrimaryKeys map[string]int
		}
		if code != 0 || json.Unmarshal([]byte(out), &kr) != nil || kr.NumNodes != 4 || kr.Keys[key2] != 4 || kr.PrimaryKeys[key2] != 4 || kr.Keys[key1] != 0 {
			t.Errorf("serfctl keys list after rotation = %q %q exit %d; want only %s, primary on 4/4", out, errOut, code, key2)
		}
		if got := readFile(filepath.Join(shared, "d2.keyring")); !strings.Contains(got, key2) || strings.Contains(got, key1) {
			t.Errorf("d2's keyring_file after rotation = %q; want only %s", got, key2)
		}
		// The cluster still gossips under the new key.
		if _, errOut, code := s1.run(t, "event", "-coalesce=false", "afterrotation", "p3"); code != 0 {
			t.Fatalf("serf event = %q exit %d", errOut, code)
		}
		waitEvent("afterrotation p3")
	})

	t.Run("failures and leaves", func(t *testing.T) {
		// kill -9 of a serfd node and of a stock agent: failed everywhere.
		d3 := startNodeWithSocket(t, "d3", "127.0.0.55", "", serfdConfig("d3", "serfd", key2), fmt.Sprintf("join = [%q]\n", s1.addr))
		s3 := startStock(t, serf, "s3", "127.0.0.56", handler, key2)
		if _, errOut, code := s3.run(t, "join", d1.addr); code != 0 {
			t.Fatalf("serf join = %q exit %d", errOut, code)
		}
		for _, o := range observers {
			waitSees(t, o, "alive", nil, "d3", "s3")
		}
		_ = d3.proc.Signal(syscall.SIGKILL)
		_ = s3.proc.Signal(syscall.SIGKILL)
		for _, o := range observers {
			waitSees(t, o, "failed", nil, "d3", "s3")
		}
		// Graceful leaves of either kind: left everywhere else.
		if err := d2.proc.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if _, errOut, code := s2.run(t, "leave"); code != 0 {
			t.Fatalf("serf leave = %q exit %d", errOut, code)
		}
		for _, o := range []observer{s1, d1} {
			waitSees(t, o, "left", nil, "d2", "s2")
		}
	})
}

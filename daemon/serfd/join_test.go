package main

import (
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/serfd/serfd/internal/testutil"
)

// A join that hangs holds up neither a reload that changes the join list
// nor a stop: the reload answers, and SIGTERM leaves and exits 0, well
// within memberlist's 30s TCP timeout of the hanging attempt.
func TestHangingJoinBlocksNeitherReloadNorStop(t *testing.T) {
	t.Parallel()
	hole1, joining := testutil.SilentListener(t)
	hole2, _ := testutil.SilentListener(t)
	n := startNodeWithSocket(t, "j1", "127.0.0.72", "", `profile = "wan"`, fmt.Sprintf("join = [%q]", hole1))
	testutil.Recv(t, joining, 20*time.Second, "serfd's configured join to connect")

	cfg := strings.Replace(readFile(n.configPath()), hole1, hole2, 1)
	if err := os.WriteFile(n.configPath(), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	type result struct {
		out, errOut string
		code        int
	}
	reloaded := make(chan result, 1)
	go func() {
		out, errOut, code := n.ctl(t, "reload")
		reloaded <- result{out, errOut, code}
	}()
	select {
	case r := <-reloaded:
		if r.code != 0 || !strings.Contains(r.out, "join") {
			t.Errorf("serfctl reload (join list changed) = %q %q exit %d; want join applied", r.out, r.errOut, r.code)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serfctl reload did not answer while a join attempt hangs")
	}

	if err := n.proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-n.proc.Exited():
		if n.proc.Err() != nil {
			t.Errorf("serfd after SIGTERM exited with %v; want exit 0", n.proc.Err())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serfd did not exit on SIGTERM while a join attempt hangs")
	}
	if logs := n.proc.Out.String(); !strings.Contains(logs, "left cluster") {
		t.Errorf("serfd's log has no graceful leave:\n%s", logs)
	}
}

// join names resolve through join_resolver at every attempt: an SRV name
// joins every target at the port its record gives, and a DNS name that
// pointed nowhere is followed once its record changes, by the retries of
// the same configured join.
func TestJoinThroughDNS(t *testing.T) {
	t.Parallel()
	b := startNodeWithSocket(t, "dns-b", "127.0.0.112", "")
	c := startNodeWithSocket(t, "dns-c", "127.0.0.113", "")
	_, portB, _ := net.SplitHostPort(b.addr)
	_, portC, _ := net.SplitHostPort(c.addr)
	dns := testutil.ServeDNS(t, "127.0.0.110",
		"_serf._udp.t.internal. 5 IN SRV 0 0 "+portB+" b.t.internal.",
		"_serf._udp.t.internal. 5 IN SRV 0 0 "+portC+" c.t.internal.",
		"b.t.internal. 5 IN A 127.0.0.112",
		"c.t.internal. 5 IN A 127.0.0.113",
		// Nothing listens there: joins through this name fail for now.
		"seed.t.internal. 5 IN A 127.0.0.114",
	)
	a := startNodeWithSocket(t, "dns-a", "127.0.0.111", "",
		`join = ["_serf._udp.t.internal"]`, fmt.Sprintf("join_resolver = %q", dns.Addr))
	a.waitStatus(t, 30*time.Second, "alive", "dns-b", "dns-c")
	testutil.Poll(t, 10*time.Second, "dns-a's log to name both targets", func() (bool, string) {
		logs := a.proc.Out.String()
		return strings.Contains(logs, "127.0.0.112:"+portB) && strings.Contains(logs, "127.0.0.113:"+portC) &&
			strings.Contains(logs, "2 contacted"), logs
	})

	d := startNodeWithSocket(t, "dns-d", "127.0.0.115", "",
		fmt.Sprintf("join = [%q]", "seed.t.internal:"+portB), fmt.Sprintf("join_resolver = %q", dns.Addr))
	testutil.Poll(t, 30*time.Second, "dns-d to retry its join", func() (bool, string) {
		logs := d.proc.Out.String()
		return strings.Contains(logs, "retrying"), logs
	})
	dns.Set(t, "seed.t.internal. 5 IN A 127.0.0.112")
	d.waitStatus(t, 60*time.Second, "alive", "dns-a", "dns-b", "dns-c")
}

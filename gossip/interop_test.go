package gossip

import (
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/serfd/serfd/internal/testutil"
)

type serfMember struct {
	Name   string            `json:"name"`
	Addr   string            `json:"addr"`
	Tags   map[string]string `json:"tags"`
	Status string            `json:"status"`
}

// serfMembers asks the stock agent for its member list.
func serfMembers(bin, rpc string) (map[string]serfMember, error) {
	out, err := exec.Command(bin, "members", "-rpc-addr", rpc, "-format", "json").Output()
	if err != nil {
		return nil, err
	}
	var resp struct{ Members []serfMember }
	if err := json.Unmarshal(out, &resp); err != nil {
		return nil, fmt.Errorf("decode %q: %w", out, err)
	}
	ms := map[string]serfMember{}
	for _, m := range resp.Members {
		ms[m.Name] = m
	}
	return ms, nil
}

// TestInteropWithStockSerf runs a stock serf agent on 127.0.0.5 and a gossip
// node on 127.0.0.6: each must see the other with its tags, user events must
// cross in both directions, and a graceful leave must be seen as left.
func TestInteropWithStockSerf(t *testing.T) {
	bin := testutil.SerfBin(t)
	const ip = "127.0.0.5"
	gossipPort, rpcPort := testutil.FreePort(t, ip), testutil.FreePort(t, ip)
	rpc := net.JoinHostPort(ip, strconv.Itoa(rpcPort))
	serfLog := startStockAgent(t, bin, "stock", ip, gossipPort, rpc, "-tag", "role=stock", "-tag", "dc=x")

	g := newNode(t, "gossip", 6, map[string]string{"role": "serfd", "env": "test"})
	if n, err := g.Join(t.Context(), []string{net.JoinHostPort(ip, strconv.Itoa(gossipPort))}, true); n != 1 || err != nil {
		t.Fatalf("Join(stock) = %d, %v; want 1, nil", n, err)
	}
	testutil.WaitFor(t, settle, "gossip to see stock alive with its tags", func() bool {
		for _, m := range g.Members() {
			if m.Name == "stock" {
				return m.Status == StatusAlive && reflect.DeepEqual(m.Tags, map[string]string{"role": "stock", "dc": "x"})
			}
		}
		return false
	})
	testutil.WaitFor(t, settle, "stock to see gossip alive with its tags", func() bool {
		ms, err := serfMembers(bin, rpc)
		m := ms["gossip"]
		return err == nil && m.Status == "alive" && reflect.DeepEqual(m.Tags, map[string]string{"role": "serfd", "env": "test"})
	})

	if out, err := exec.Command(bin, "event", "-rpc-addr", rpc, "hello", "world").CombinedOutput(); err != nil {
		t.Fatalf("serf event hello world: %v: %s", err, out)
	}
	testutil.WaitFor(t, settle, "the stock agent's user event to reach OnEvent", func() bool {
		got := g.rec.users("hello")
		return len(got) == 1 && string(got[0].Payload) == "world" && got[0].Coalesce
	})

	if err := g.UserEvent("fromgossip", []byte("p"), false); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, settle, "the stock agent to receive our user event", func() bool {
		return strings.Contains(serfLog.String(), "user-event: fromgossip")
	})

	if err := g.Leave(); err != nil {
		t.Fatalf("Leave() = %v; want nil", err)
	}
	testutil.WaitFor(t, settle, "stock to see gossip left", func() bool {
		ms, err := serfMembers(bin, rpc)
		return err == nil && ms["gossip"].Status == "left"
	})
	for _, line := range strings.Split(serfLog.String(), "\n") {
		if strings.Contains(line, "[ERR]") || strings.Contains(line, "[WARN] serf") ||
			strings.Contains(line, "unknown type") || strings.Contains(line, "decode") {
			t.Errorf("stock serf logged %q; want no complaint about our messages", line)
		}
	}
}

// startStockAgent runs `serf agent` named name on ip with extra flags,
// kills it by PID at cleanup, waits for its RPC to answer and returns its log.
func startStockAgent(t *testing.T, bin, name, ip string, gossipPort int, rpc string, flags ...string) *testutil.Buffer {
	t.Helper()
	args := append([]string{"agent", "-node", name, "-profile", "local",
		"-bind", net.JoinHostPort(ip, strconv.Itoa(gossipPort)), "-rpc-addr", rpc, "-log-level", "debug"}, flags...)
	p := testutil.Start(t, "stock serf "+name, exec.Command(bin, args...))
	testutil.WaitFor(t, settle, "the stock agent's RPC to answer", func() bool {
		_, err := serfMembers(bin, rpc)
		return err == nil
	})
	return p.Out
}

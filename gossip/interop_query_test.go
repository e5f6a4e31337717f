package gossip

import (
	"bytes"
	"encoding/json"
	"net"
	"os/exec"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/serfd/serfd/internal/testutil"
)

// serfKeys runs `serf keys -list` and returns key -> "[n/total]" (its
// columnized "key | [n/total]" lines).
func serfKeys(bin, rpc string) (map[string]string, string, error) {
	out, err := exec.Command(bin, "keys", "-list", "-rpc-addr", rpc).CombinedOutput()
	keys := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^\s*(\S+)[\s|]+(\[\d+/\d+\])\s*$`).FindAllStringSubmatch(string(out), -1) {
		keys[m[1]] = m[2]
	}
	return keys, string(out), err
}

// TestInteropQueriesAndKeysWithStockSerf runs an encrypted stock serf agent
// on 127.0.0.7 with two gossip nodes on 127.0.0.8-9 sharing its key. Queries
// must be acked and answered across implementations, and key operations
// started on either side must complete on every node.
func TestInteropQueriesAndKeysWithStockSerf(t *testing.T) {
	bin := testutil.SerfBin(t)
	k1raw, k1 := testKey(0x11)
	_, k2 := testKey(0x22)
	_, k3 := testKey(0x33)
	const ip = "127.0.0.7"
	gossipPort, rpcPort := testutil.FreePort(t, ip), testutil.FreePort(t, ip)
	rpc := net.JoinHostPort(ip, strconv.Itoa(rpcPort))
	serfLog := startStockAgent(t, bin, "stock", ip, gossipPort, rpc, "-encrypt", k1)

	dir := t.TempDir()
	var nodes []*node
	for i, name := range []string{"g1", "g2"} {
		nodes = append(nodes, newQueryNode(t, name, 8+i, nil, func(cfg *Config) {
			cfg.EncryptKeys = [][]byte{k1raw}
			cfg.KeyringFile = dir + "/" + name + ".keyring"
		}))
	}
	for _, n := range nodes {
		if got, err := n.Join(t.Context(), []string{net.JoinHostPort(ip, strconv.Itoa(gossipPort))}, true); got != 1 || err != nil {
			t.Fatalf("%s.Join(stock) = %d, %v; want 1, nil", n.LocalMember().Name, got, err)
		}
	}
	for _, n := range nodes {
		testutil.WaitFor(t, settle, n.LocalMember().Name+" to see 3 alive members", func() bool { return n.Stats().Alive == 3 })
	}
	testutil.WaitFor(t, settle, "stock to see 3 alive members", func() bool {
		ms, err := serfMembers(bin, rpc)
		return err == nil && ms["g1"].Status == "alive" && ms["g2"].Status == "alive"
	})

	// A query from the stock side: everyone acks, our nodes answer.
	out, err := exec.Command(bin, "query", "-rpc-addr", rpc, "-format", "json", "-timeout", "3s", "echo", "hi").Output()
	if err != nil {
		t.Fatalf("serf query echo hi: %v: %s", err, out)
	}
	var res struct {
		Acks      []string
		Responses map[string]string
	}
	if err := json.Unmarshal(bytes.TrimSpace(out), &res); err != nil {
		t.Fatalf("decode serf query output %q: %v", out, err)
	}
	slices.Sort(res.Acks)
	if want := []string{"g1", "g2", "stock"}; !reflect.DeepEqual(res.Acks, want) {
		t.Errorf("serf query echo acks = %v; want %v", res.Acks, want)
	}
	if want := map[string]string{"g1": "g1:hi", "g2": "g2:hi"}; !reflect.DeepEqual(res.Responses, want) {
		t.Errorf("serf query echo responses = %v; want %v", res.Responses, want)
	}
	for _, n := range nodes {
		if evs := queryEvents(n, "echo"); len(evs) != 1 || evs[0].Query.SourceNode() != "stock" {
			t.Errorf("%s delivered %+v; want one echo query from stock", n.LocalMember().Name, evs)
		}
	}

	// serf reachability sends _serf_ping and wants an ack from every member.
	if out, err := exec.Command(bin, "reachability", "-rpc-addr", rpc).CombinedOutput(); err != nil {
		t.Errorf("serf reachability: %v: %s", err, out)
	}

	// A query from our side: the stock agent acks (it has no handler to answer).
	r, err := nodes[0].Query("echo", []byte("yo"), &QueryParams{RequestAck: true, RelayFactor: 1, Timeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	got := collect(t, r, -1, 0)
	if want := []string{"g1", "g2", "stock"}; !reflect.DeepEqual(got.acks, want) {
		t.Errorf("Query(echo) acks = %v; want %v", got.acks, want)
	}
	if want := map[string]string{"g1": "g1:yo", "g2": "g2:yo"}; !reflect.DeepEqual(got.responses, want) {
		t.Errorf("Query(echo) responses = %v; want %v", got.responses, want)
	}

	// serf keys from the stock side counts our nodes, without failures.
	keys, out2, err := serfKeys(bin, rpc)
	if err != nil || !reflect.DeepEqual(keys, map[string]string{k1: "[3/3]"}) {
		t.Errorf("serf keys -list = %v, %v; want %s on 3/3\n%s", keys, err, k1, out2)
	}
	// A key query rides UDP gossip with bounded retransmits; on a loaded
	// machine one node may miss it within the query timeout. Installing and
	// removing a key are idempotent, so up to three tries must reach all.
	for _, args := range [][]string{{"-install", k3}, {"-remove", k3}} {
		var out []byte
		var err error
		for try := 0; try < 3; try++ {
			if out, err = exec.Command(bin, append([]string{"keys", "-rpc-addr", rpc}, args...)...).CombinedOutput(); err == nil {
				break
			}
			t.Logf("serf keys %s, try %d: %v: %s", strings.Join(args, " "), try+1, err, out)
		}
		if err != nil {
			t.Errorf("serf keys %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}

	// Key rotation from our side completes on the stock agent.
	for _, step := range []struct {
		op  string
		f   func(string) (*KeyResponse, error)
		key string
	}{{"InstallKey", nodes[0].InstallKey, k2}, {"UseKey", nodes[1].UseKey, k2}, {"RemoveKey", nodes[0].RemoveKey, k1}} {
		resp, err := step.f(step.key)
		for try := 1; try < 3 && (err != nil || resp.NumResp != 3); try++ {
			t.Logf("%s(%s), try %d = %+v, %v", step.op, step.key, try, resp, err)
			resp, err = step.f(step.key)
		}
		if err != nil || resp.NumNodes != 3 || resp.NumResp != 3 {
			t.Fatalf("%s(%s) = %+v, %v; want 3 answers of 3, nil", step.op, step.key, resp, err)
		}
	}
	keys, out2, err = serfKeys(bin, rpc)
	if err != nil || !reflect.DeepEqual(keys, map[string]string{k2: "[3/3]"}) {
		t.Errorf("serf keys -list after rotation = %v, %v; want only %s on 3/3\n%s", keys, err, k2, out2)
	}
	resp, err := nodes[1].ListKeys()
	if err != nil || !reflect.DeepEqual(resp.PrimaryKeys, map[string]int{k2: 3}) {
		t.Errorf("ListKeys() after rotation = %+v, %v; want primary %s on 3", resp, err, k2)
	}

	for _, line := range strings.Split(serfLog.String(), "\n") {
		// agent.ipc lines are about the agent's own RPC clients (the serf
		// commands above, e.g. an ack that came after a loaded query's
		// deadline and its client had gone), not about our messages.
		if strings.Contains(line, "agent.ipc:") {
			continue
		}
		if strings.Contains(line, "[ERR]") || strings.Contains(line, "unknown type") || strings.Contains(line, "decode") {
			t.Errorf("stock serf logged %q; want no complaint about our messages", line)
		}
	}
}

package gossip

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"net"
	"os/exec"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/serfd/serfd/internal/testutil"
)

// serfKeys runs `serf keys -list` and returns key -> "[n/total]" (its
// columnized "key | [n/total]" lines). The listing is a key query riding
// UDP gossip, which one node may miss within the query timeout on a loaded
// machine ("2/3 nodes reported success"); it only reads, so up to three
// tries are made.
func serfKeys(bin, rpc string) (map[string]string, string, error) {
	var out []byte
	var err error
	for range 3 {
		if out, err = exec.Command(bin, "keys", "-list", "-rpc-addr", rpc).CombinedOutput(); err == nil {
			break
		}
	}
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

// sendQueryTo sends query name from c straight to the node at addr only,
// as a UDP message, instead of gossiping it: whoever else gets it, gets it
// from that node. The query asks for answers by stream and for acks; its
// answers come on the returned QueryResponse, as for Query.
func sendQueryTo(t *testing.T, c *Cluster, addr, nodeName, name string, p *QueryParams) *QueryResponse {
	t.Helper()
	filters, err := c.encodeFilters(p)
	if err != nil {
		t.Fatal(err)
	}
	local := c.ml.LocalNode()
	m := queryMsg{
		LTime: c.queryClock.Claim(), ID: rand.Uint32(), Addr: local.Addr, Port: local.Port, SourceNode: local.Name,
		Filters: filters, Flags: queryFlagAck | queryFlagStreamResponse, Timeout: p.Timeout, Name: name,
	}
	raw := encodeMsg(t, c, msgQuery, &m)
	r := &QueryResponse{c: c, key: queryKey{ltime: m.LTime, id: m.ID}, name: name, deadline: time.Now().Add(p.Timeout),
		ackCh: make(chan string, 8), respCh: make(chan NodeResponse, 8), acks: map[string]bool{}, resps: map[string]bool{}}
	c.qs.mu.Lock()
	if c.qs.pending == nil {
		c.qs.pending = map[queryKey]*QueryResponse{}
	}
	c.qs.pending[r.key] = r
	c.qs.mu.Unlock()
	t.Cleanup(r.Close)
	if err := c.ml.SendToAddress(memberlist.Address{Addr: addr, Name: nodeName}, raw); err != nil {
		t.Fatal(err)
	}
	return r
}

// A stock Serf agent passes serfd's stream flag on untouched: a query sent
// to the stock agent alone, which gossips it to the others, still asks a
// serfd responder for its large answer by stream, and the answer reaches
// the serfd querier whole. The stock agent acks it and logs no complaint.
func TestInteropStockSerfRelaysStreamFlag(t *testing.T) {
	bin := testutil.SerfBin(t)
	const ip = "127.0.0.138"
	gossipPort, rpcPort := testutil.FreePort(t, ip), testutil.FreePort(t, ip)
	rpc := net.JoinHostPort(ip, strconv.Itoa(rpcPort))
	serfLog := startStockAgent(t, bin, "stock", ip, gossipPort, rpc)
	stockAddr := net.JoinHostPort(ip, strconv.Itoa(gossipPort))

	g1 := newQueryNode(t, "g1", 139, nil, lan)
	g2 := newQueryNode(t, "g2", 140, nil, lan)
	for _, n := range []*node{g1, g2} {
		if got, err := n.Join(t.Context(), []string{stockAddr}, true); got != 1 || err != nil {
			t.Fatalf("%s.Join(stock) = %d, %v; want 1, nil", n.LocalMember().Name, got, err)
		}
	}
	for _, n := range []*node{g1, g2} {
		testutil.WaitFor(t, settle, n.LocalMember().Name+" to see 3 alive members", func() bool { return n.Stats().Alive == 3 })
	}
	testutil.WaitFor(t, settle, "stock to see 3 alive members", func() bool {
		ms, err := serfMembers(bin, rpc)
		return err == nil && ms["g1"].Status == "alive" && ms["g2"].Status == "alive"
	})

	r := sendQueryTo(t, g1.Cluster, stockAddr, "stock", "big", &QueryParams{FilterNodes: []string{"stock", "g2"}, Timeout: time.Minute})
	testutil.WaitFor(t, settle, "g2 to deliver the query the stock agent gossiped", func() bool {
		return len(queryEvents(g2, "big")) == 1
	})
	q := queryEvents(g2, "big")[0].Query
	if !q.byStream || q.SourceNode() != "g1" {
		t.Fatalf("g2's query: from %q, byStream %t; want from g1 with its stream flag", q.SourceNode(), q.byStream)
	}
	payload := randomPayload(6, 200<<10)
	if err := q.Respond(payload); err != nil {
		t.Fatalf("g2's Respond(200 KiB) = %v; want nil", err)
	}
	if resp := testutil.Recv(t, r.ResponseCh(), settle, "g2's answer at g1"); resp.From != "g2" || !bytes.Equal(resp.Payload, payload) {
		t.Errorf("answer = from %q, %d bytes; want g2's 200 KiB", resp.From, len(resp.Payload))
	}
	if from := testutil.Recv(t, r.AckCh(), settle, "an ack at g1"); from != "stock" && from != "g2" {
		t.Errorf("ack from %q; want stock or g2", from)
	}
	for _, line := range strings.Split(serfLog.String(), "\n") {
		if strings.Contains(line, "[ERR]") || strings.Contains(line, "unknown type") || strings.Contains(line, "decode") {
			t.Errorf("stock serf logged %q; want no complaint about our messages", line)
		}
	}
}

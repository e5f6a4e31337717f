package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	osexec "os/exec"
	"strings"
	"testing"
	"time"

	"github.com/serfd/serfd/ctl"
	"github.com/serfd/serfd/internal/testutil"
)

// TestSerfRPCWithStockSerfCLI drives serfd with the stock `serf` 0.10.2
// command over Serf's RPC (rpc block, with an auth token): every command
// of it that needs no second agent gives Serf's output or Serf's errors.
func TestSerfRPCWithStockSerfCLI(t *testing.T) {
	serf := testutil.SerfBin(t)
	const token = "s3cret-token"
	n, rpcAddr := startRPCNode(t, "rpc1", "127.0.0.77", token)
	stock := serfRunner(serf, rpcAddr, token)
	run := func(args ...string) (string, string, int) {
		t.Helper()
		return stock.run(t, args...)
	}
	ok := func(args ...string) string {
		t.Helper()
		return stock.ok(t, args...)
	}

	if out := ok("members"); !strings.Contains(out, "rpc1") || !strings.Contains(out, n.addr) || !strings.Contains(out, "alive") {
		t.Errorf("serf members = %q; want rpc1 %s alive", out, n.addr)
	}
	var members struct {
		Members []struct {
			Name     string         `json:"name"`
			Addr     string         `json:"addr"`
			Status   string         `json:"status"`
			Protocol map[string]int `json:"protocol"`
		} `json:"members"`
	}
	if err := json.Unmarshal([]byte(ok("members", "-format", "json")), &members); err != nil || len(members.Members) != 1 ||
		members.Members[0].Addr != n.addr || members.Members[0].Protocol["max"] != 5 {
		t.Errorf("serf members -format json = %+v, %v; want rpc1 at %s with protocol max 5", members, err, n.addr)
	}
	// serfctl prints what serf prints, on the same node.
	for _, args := range [][]string{{"members", "-format", "json"}, {"members", "-detailed"}, {"members"}} {
		want := ok(args...)
		got, errOut, code := n.ctl(t, args...)
		if code != 0 || !sameOutput(t, want, got) {
			t.Errorf("serfctl %v = %q %q (exit %d); want what serf prints, %q", args, got, errOut, code, want)
		}
	}
	var serfQ, ctlQ map[string]any
	if err := json.Unmarshal([]byte(ok("query", "-format", "json", "-timeout", "2s", "ping")), &serfQ); err != nil {
		t.Fatal(err)
	}
	out, _, _ := n.ctl(t, "query", "-format", "json", "-timeout", "2s", "ping")
	if err := json.Unmarshal([]byte(out), &ctlQ); err != nil || fmt.Sprint(ctlQ) != fmt.Sprint(serfQ) {
		t.Errorf("serfctl query -format json = %v, %v; want serf's %v", ctlQ, err, serfQ)
	}
	if out := ok("members", "-status", "failed"); strings.Contains(out, "rpc1") {
		t.Errorf("serf members -status failed = %q; want no alive member", out)
	}

	// event reaches serfd's handlers as one sent with serfctl.
	if out := ok("event", "memresponse", "from-serf-cli"); !strings.Contains(out, "Event 'memresponse' dispatched") {
		t.Errorf("serf event = %q; want Serf's dispatched line", out)
	}
	testutil.WaitFor(t, 20*time.Second, "the handler to get the event", func() bool {
		b, _ := os.ReadFile(n.memFile)
		return strings.Contains(string(b), "from-serf-cli")
	})

	if out := ok("tags", "-set", "zone=a"); !strings.Contains(out, "Successfully updated agent tags") {
		t.Errorf("serf tags -set = %q", out)
	}
	if out := ok("members", "-tag", "zone=a"); !strings.Contains(out, "zone=a") {
		t.Errorf("serf members -tag zone=a = %q; want rpc1 with zone=a", out)
	}
	var info map[string]map[string]string
	if err := json.Unmarshal([]byte(ok("info", "-format", "json")), &info); err != nil || info["agent"]["name"] != "rpc1" ||
		info["serf"]["members"] != "1" || info["tags"]["zone"] != "a" || info["runtime"]["os"] != "linux" {
		t.Errorf("serf info -format json = %v, %v; want agent rpc1, 1 member, tag zone=a", info, err)
	}
	if out := ok("query", "-timeout", "3s", "ping"); !strings.Contains(out, "Ack from 'rpc1'") || !strings.Contains(out, "Total Acks: 1") {
		t.Errorf("serf query = %q; want rpc1's ack", out)
	}
	if out := ok("rtt", "rpc1"); !strings.Contains(out, "rpc1 <-> rpc1 rtt") {
		t.Errorf("serf rtt = %q", out)
	}

	// Errors come back as Serf's command reports them, exit 1.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"join", "127.0.0.1:1"}, "Error joining the cluster"},
		{[]string{"join", "not an address"}, "neither an IP address nor a DNS name"},
		{[]string{"keys", "-list"}, "encryption is not enabled"},
	} {
		out, errOut, code := run(tc.args...)
		if code != 1 || !strings.Contains(out+errOut, tc.want) {
			t.Errorf("serf %v = exit %d, %q %q; want exit 1 with %q", tc.args, code, out, errOut, tc.want)
		}
	}
	// Without the token, or with a wrong one, nothing is served.
	for _, auth := range []string{"", "wrong"} {
		out, errOut, code := testutil.Run(t, osexec.Command(serf, "members", "-rpc-addr="+rpcAddr, "-rpc-auth="+auth))
		if code == 0 || !strings.Contains(out+errOut, map[string]string{"": "Authentication required", "wrong": "Invalid authentication token"}[auth]) {
			t.Errorf("serf members with auth %q = exit %d, %q %q; want refused", auth, code, out, errOut)
		}
	}

	// monitor streams log lines and events until the client goes.
	mon := osexec.Command(serf, "monitor", "-rpc-addr="+rpcAddr, "-rpc-auth="+token)
	var monOut testutil.Buffer
	mon.Stdout, mon.Stderr = &monOut, &monOut
	p := testutil.Start(t, "serf monitor", mon)
	testutil.WaitFor(t, 20*time.Second, "serf monitor to replay serfd's log", func() bool {
		return strings.Contains(monOut.String(), "[INFO]")
	})
	ok("event", "watched", "x")
	testutil.WaitFor(t, 20*time.Second, "serf monitor to show the event", func() bool {
		return strings.Contains(monOut.String(), `Name: "watched"`)
	})
	p.Kill()

	if out := ok("leave"); !strings.Contains(out, "Graceful leave complete") {
		t.Errorf("serf leave = %q", out)
	}
	if err := n.proc.Wait(t, 30*time.Second); err != nil {
		t.Errorf("serfd after serf leave: %v; want exit 0", err)
	}
}

// A client that connects and never sends its handshake is dropped after
// the setup deadline; one that stops reading cannot hold serfd (Serf #347).
func TestSerfRPCSetupDeadline(t *testing.T) {
	ip := "127.0.0.78"
	rpcAddr := net.JoinHostPort(ip, fmt.Sprint(testutil.FreePort(t, ip)))
	startNode(t, "rpc2", ip, fmt.Sprintf("rpc { address = %q }\n", rpcAddr))
	waitListening(t, rpcAddr)
	c, err := net.Dial("tcp", rpcAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(60 * time.Second))
	start := time.Now()
	if _, err := bufio.NewReader(c).ReadByte(); err == nil {
		t.Errorf("an idle RPC connection got data; want it closed")
	}
	if took := time.Since(start); took > 50*time.Second {
		t.Errorf("idle RPC connection closed after %s; want about 10 s", took)
	}
}

// waitListening polls until a TCP listener answers at addr.
func waitListening(t *testing.T, addr string) {
	t.Helper()
	testutil.WaitFor(t, 20*time.Second, "Serf RPC at "+addr, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// sameOutput compares two command outputs: JSON by value, text by its
// whitespace-separated fields per line (column widths may differ).
func sameOutput(t *testing.T, a, b string) bool {
	t.Helper()
	var ja, jb any
	if json.Unmarshal([]byte(a), &ja) == nil && json.Unmarshal([]byte(b), &jb) == nil {
		return fmt.Sprint(ja) == fmt.Sprint(jb)
	}
	norm := func(s string) string {
		var lines []string
		for line := range strings.Lines(s) {
			lines = append(lines, strings.Join(strings.Fields(line), " "))
		}
		return strings.Join(lines, "\n")
	}
	return norm(a) == norm(b)
}

// A request larger than the limit (here a 64 MiB handshake) ends its
// connection without serfd buffering it; serfd goes on serving.
func TestSerfRPCRequestLimit(t *testing.T) {
	serf := testutil.SerfBin(t)
	ip := "127.0.0.82"
	rpcAddr := net.JoinHostPort(ip, fmt.Sprint(testutil.FreePort(t, ip)))
	startNode(t, "rpc3", ip, fmt.Sprintf("rpc { address = %q }\n", rpcAddr))
	waitListening(t, rpcAddr)
	c, err := net.Dial("tcp", rpcAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// {Command: "handshake", Seq: 1} then a str32 of 64 MiB.
	head := []byte{0x82, 0xa7, 'C', 'o', 'm', 'm', 'a', 'n', 'd', 0xa9, 'h', 'a', 'n', 'd', 's', 'h', 'a', 'k', 'e', 0xa3, 'S', 'e', 'q', 0x01,
		0xdb, 0x04, 0, 0, 0}
	_ = c.SetWriteDeadline(time.Now().Add(60 * time.Second))
	_, _ = c.Write(head)
	chunk := make([]byte, 1<<20)
	var werr error
	for i := 0; i < 64 && werr == nil; i++ {
		_, werr = c.Write(chunk)
	}
	if werr == nil {
		t.Errorf("64 MiB request accepted whole; want the connection cut at the 1 MiB limit")
	}
	if out, errOut, code := testutil.Run(t, osexec.Command(serf, "members", "-rpc-addr="+rpcAddr)); code != 0 || !strings.Contains(out, "rpc3") {
		t.Errorf("serf members after the oversized request = %q %q exit %d; want rpc3", out, errOut, code)
	}
}

// TestRPCClientStreamsUserEvents: ctl.RPCClient's event stream, against
// serfd's rpc listener and a stock Serf agent alike, gets the user events
// the agent receives, and only those its filter names.
func TestRPCClientStreamsUserEvents(t *testing.T) {
	serf := testutil.SerfBin(t)
	const token = "stream-token"
	_, serfdRPC := startRPCNode(t, "stream1", "127.0.0.78", token)
	stock := startStock(t, serf, "stream2", "127.0.0.79", "user:none=true", "")
	for addr, auth := range map[string]string{serfdRPC: token, stock.rpc: ""} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		got := make(chan ctl.RPCUserEventRecord, 8)
		streamer := ctl.NewRPCClient(addr, auth)
		done := make(chan error, 1)
		go func() {
			done <- streamer.StreamUserEvents(ctx, "user:want", func(r ctl.RPCUserEventRecord) error {
				select {
				case got <- r:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			})
		}()
		sender := ctl.NewRPCClient(addr, auth)
		// The stream is set up once the server answered it; until then an
		// event is not streamed, so send until one arrives.
		var first ctl.RPCUserEventRecord
		testutil.Poll(t, 30*time.Second, addr+": a streamed event", func() (bool, string) {
			if err := sender.Event(ctx, ctl.RPCEventRequest{Name: "other", Payload: []byte("x")}); err != nil {
				t.Fatalf("%s: event other: %v", addr, err)
			}
			if err := sender.Event(ctx, ctl.RPCEventRequest{Name: "want", Payload: []byte("p1")}); err != nil {
				t.Fatalf("%s: event want: %v", addr, err)
			}
			select {
			case first = <-got:
				return true, ""
			case <-time.After(100 * time.Millisecond):
				return false, "nothing streamed"
			}
		})
		if first.Event != "user" || first.Name != "want" || string(first.Payload) != "p1" || first.LTime == 0 {
			t.Errorf("%s: streamed %+v; want a user event want with payload p1 and a Lamport time", addr, first)
		}
		sender.Close()
		cancel()
		if err := <-done; err == nil {
			t.Errorf("%s: the stream ended without an error when its context ended", addr)
		}
		for len(got) > 0 {
			if r := <-got; r.Name != "want" {
				t.Errorf("%s: streamed %+v; the filter was user:want", addr, r)
			}
		}
	}
}

package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/serfd/serfd/internal/testutil"
)

// serfAgentConfig is a Serf 0.10 agent's JSON configuration, the same
// for a stock agent and for serfd: a handler for user event deploy that
// appends the payload to out, tags kept in tagsFile.
func serfAgentConfig(t *testing.T, name, bind, rpc, key, tagsFile, out string, join ...string) []byte {
	t.Helper()
	cfg := map[string]any{
		"node_name":      name,
		"bind":           bind,
		"rpc_addr":       rpc,
		"encrypt_key":    key,
		"tags_file":      tagsFile,
		"start_join":     join,
		"event_handlers": []string{"user:deploy=cat >> " + out},
		"log_level":      "debug",
		"profile":        "lan",
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A Serf agent's JSON configuration (event_handlers, start_join, tags_file,
// encrypt_key, rpc_addr) starts serfd unchanged beside a stock agent
// started from the same kind of file: they join over encrypted gossip,
// the tags come from the tags files, `serf event` against serfd's RPC runs
// both agents' handlers, and tags set at run time land in the tags file.
// Then `serfd migrate` turns the JSON into HCL that starts the same node.
func TestSerfJSONConfigWithStockSerf(t *testing.T) {
	serf := testutil.SerfBin(t)
	dir := testutil.ShortTempDir(t, "sj-")
	const key = "cg8StVXbQJ0gPvMd9o7yrg=="
	write := func(path string, data []byte, mode os.FileMode) {
		t.Helper()
		if err := os.WriteFile(path, data, mode); err != nil {
			t.Fatal(err)
		}
	}

	// The stock agent.
	sIP, dIP := "127.0.0.91", "127.0.0.92"
	stock := &stockAgent{name: "stock", bin: serf}
	stock.addr = net.JoinHostPort(sIP, fmt.Sprint(testutil.FreePort(t, sIP)))
	stock.rpc = net.JoinHostPort(sIP, fmt.Sprint(testutil.FreePort(t, sIP)))
	stockOut := filepath.Join(dir, "stock.out")
	write(filepath.Join(dir, "stock-tags.json"), []byte(`{"role": "web"}`), 0o600)
	write(filepath.Join(dir, "stock.json"), serfAgentConfig(t, "stock", stock.addr, stock.rpc, key, filepath.Join(dir, "stock-tags.json"), stockOut), 0o600)
	stock.proc = testutil.Start(t, "stock serf", osexec.Command(serf, "agent", "-config-file", filepath.Join(dir, "stock.json")))
	testutil.Poll(t, 20*time.Second, "the stock agent's RPC", func() (bool, string) {
		_, errOut, code := stock.run(t, "members")
		return code == 0, errOut
	})

	// serfd: the package's main config names the control socket; the Serf
	// agent's file is dropped into config.d as it is.
	n := &node{name: "serfd", dir: filepath.Join(dir, "serfd"), socket: filepath.Join(dir, "serfd.sock")}
	n.addr = net.JoinHostPort(dIP, fmt.Sprint(testutil.FreePort(t, dIP)))
	rpc := net.JoinHostPort(dIP, fmt.Sprint(testutil.FreePort(t, dIP)))
	confD := filepath.Join(n.dir, "config.d")
	if err := os.MkdirAll(confD, 0o755); err != nil {
		t.Fatal(err)
	}
	write(filepath.Join(n.dir, "config.hcl"), fmt.Appendf(nil, "control { socket = %q }\nhandlers { dir = %q }\n",
		n.socket, filepath.Join(n.dir, "handlers.d")), 0o644)
	serfdOut, serfdTags := filepath.Join(dir, "serfd.out"), filepath.Join(dir, "serfd-tags.json")
	write(serfdTags, []byte(`{"role": "db"}`), 0o600)
	jsonPath := filepath.Join(confD, "serf.json")
	write(jsonPath, serfAgentConfig(t, "serfd", n.addr, rpc, key, serfdTags, serfdOut, stock.addr), 0o600)
	n.launch(t)

	want := map[string]map[string]string{"stock": {"role": "web"}, "serfd": {"role": "db"}}
	waitSees(t, n, "alive", want, "stock", "serfd")
	waitSees(t, stock, "alive", want, "stock", "serfd")

	// The stock CLI, pointed at serfd's RPC as a Serf user's scripts are.
	if out, errOut, code := testutil.Run(t, osexec.Command(serf, "event", "-rpc-addr", rpc, "deploy", "v1")); code != 0 {
		t.Fatalf("serf event via serfd's RPC: exit %d: %s%s", code, out, errOut)
	}
	for _, f := range []string{stockOut, serfdOut} {
		testutil.WaitFor(t, 30*time.Second, f+" to hold v1", func() bool { return readFile(f) == "v1\n" })
	}

	if _, errOut, code := n.ctl(t, "tags", "-set", "rack=r1"); code != 0 {
		t.Fatalf("serfctl tags -set: exit %d: %s", code, errOut)
	}
	testutil.Poll(t, 10*time.Second, "rack=r1 in serfd's tags file", func() (bool, string) {
		var tags map[string]string
		b := readFile(serfdTags)
		return json.Unmarshal([]byte(b), &tags) == nil && tags["rack"] == "r1" && tags["role"] == "db", b
	})

	// serfd migrate: the HCL replaces the JSON and starts the same node.
	hcl, errOut, code := testutil.Run(t, osexec.Command(bin.serfd, "migrate", jsonPath))
	if code != 0 || !strings.Contains(hcl, "handler \"cat\"") {
		t.Fatalf("serfd migrate: exit %d, stderr %q, HCL:\n%s", code, errOut, hcl)
	}
	if err := n.proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := n.proc.Wait(t, 30*time.Second); err != nil {
		t.Fatalf("serfd after SIGTERM: %v", err)
	}
	waitSees(t, stock, "left", nil, "serfd")
	if err := os.Remove(jsonPath); err != nil {
		t.Fatal(err)
	}
	write(filepath.Join(confD, "serf.hcl"), []byte(hcl), 0o644)
	if out, errOut, code := testutil.Run(t, osexec.Command(bin.serfd, "-check", "-config", filepath.Join(n.dir, "config.hcl"))); code != 0 {
		t.Fatalf("serfd -check on the migrated HCL: exit %d: %s%s\n%s", code, out, errOut, hcl)
	}
	n.launch(t)
	want["serfd"] = map[string]string{"role": "db", "rack": "r1"}
	waitSees(t, stock, "alive", want, "stock", "serfd")
	if out, errOut, code := testutil.Run(t, osexec.Command(serf, "event", "-rpc-addr", rpc, "deploy", "v2")); code != 0 {
		t.Fatalf("serf event via the migrated serfd's RPC: exit %d: %s%s", code, out, errOut)
	}
	for _, f := range []string{stockOut, serfdOut} {
		testutil.WaitFor(t, 30*time.Second, f+" to hold v1 and v2", func() bool { return readFile(f) == "v1\nv2\n" })
	}
}

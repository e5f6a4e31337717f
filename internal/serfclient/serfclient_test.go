package serfclient

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/serf/client"
)

// startSerfd builds serfd from this repository, starts it on ip with a
// keyring holding key, Serf's RPC on a free port and handler as the one
// handler, and returns the RPC address; serfd is killed at cleanup.
func startSerfd(t *testing.T, name, ip, key, handler string) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "serfd")
	build := exec.Command("go", "build", "-o", bin, "./daemon/serfd")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build serfd: %v\n%s", err, out)
	}
	handlers := filepath.Join(dir, "handlers.d")
	if err := os.Mkdir(handlers, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(handlers, "answer"), []byte(handler), 0o755); err != nil {
		t.Fatal(err)
	}
	ring := filepath.Join(dir, "keyring")
	if err := os.WriteFile(ring, []byte(`["`+key+`"]`), 0o600); err != nil {
		t.Fatal(err)
	}
	rpcAddr := net.JoinHostPort(ip, fmt.Sprint(freePort(t, ip)))
	cfg := fmt.Sprintf(`node_name = %q
bind = %q
profile = "local"
keyring_file = %q
control { socket = %q }
handlers { dir = %q }
rpc { address = %q }
`, name, net.JoinHostPort(ip, fmt.Sprint(freePort(t, ip))), ring, filepath.Join(dir, "ctl.sock"), handlers, rpcAddr)
	cfgPath := filepath.Join(dir, "config.hcl")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-config", cfgPath)
	out, err := os.Create(filepath.Join(dir, "serfd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(out.Name())
			t.Logf("serfd's output:\n%s", b)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.Dial("tcp", rpcAddr)
		if err == nil {
			c.Close()
			return rpcAddr
		}
		if time.Now().After(deadline) {
			t.Fatalf("serfd's RPC at %s did not answer within 30 s: %v", rpcAddr, err)
		}
		time.Sleep(50 * time.Millisecond) // polling a port, with a deadline
	}
}

// freePort returns a TCP and UDP port free on ip.
func freePort(t *testing.T, ip string) int {
	t.Helper()
	for range 100 {
		l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", net.JoinHostPort(ip, fmt.Sprint(port)))
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatalf("no free port on %s", ip)
	return 0
}

// recv receives from ch within timeout.
func recv[T any](t *testing.T, ch <-chan T, timeout time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(timeout):
		t.Fatalf("timed out after %s waiting for %s", timeout, what)
		var zero T
		return zero
	}
}

// Serf's Go client library against serfd: an event stream receives a user
// event and a query (answered with respond), a query gets a handler's
// response, tags change, and a key is rotated across the keyring.
func TestSerfRPCWithSerfClientLibrary(t *testing.T) {
	key1, key2 := "T9jncgl9mbLus+baTTa7q7nPSUrXwbDi2dhbtqir37s=", "HvY8ubRZMgafUOWvrOadwOckVa1wN3QWAo46FVKbVN8="
	rpcAddr := startSerfd(t, "lib1", "127.0.0.83", key1,
		"#!/bin/sh\n[ \"$SERF_QUERY_NAME\" = lib-q ] && echo \"answer from $SERF_SELF_NAME\"\nexit 0\n")

	c, err := client.ClientFromConfig(&client.Config{Addr: rpcAddr, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	events := make(chan map[string]any, 16)
	h, err := c.Stream("user:lib-ev,query:lib-ask", events)
	if err != nil {
		t.Fatalf("Stream: %v", err)
	}
	if err := c.UserEvent("lib-ev", []byte("p1"), false); err != nil {
		t.Fatalf("UserEvent: %v", err)
	}
	rec := recv(t, events, 20*time.Second, "the user event on the stream")
	if rec["Event"] != "user" || rec["Name"] != "lib-ev" || string(rec["Payload"].([]byte)) != "p1" {
		t.Errorf("stream record = %v; want user event lib-ev with payload p1", rec)
	}

	// A query the stream's client answers with respond.
	acks, resps := make(chan string, 4), make(chan client.NodeResponse, 4)
	go func() { // not the test's goroutine: Errorf, not Fatalf
		var rec map[string]any
		select {
		case rec = <-events:
		case <-time.After(20 * time.Second):
			t.Errorf("timed out waiting for the query on the stream")
			return
		}
		var id uint64
		switch v := rec["ID"].(type) { // msgpack decodes small numbers as either
		case uint64:
			id = v
		case int64:
			id = uint64(v)
		}
		if rec["Event"] != "query" || rec["Name"] != "lib-ask" {
			t.Errorf("stream record = %v; want query lib-ask", rec)
		}
		if err := c.Respond(id, []byte("streamed answer")); err != nil {
			t.Errorf("Respond(%d): %v", id, err)
		}
	}()
	if err := c.Query(&client.QueryParam{Name: "lib-ask", RequestAck: true, Timeout: 5 * time.Second, AckCh: acks, RespCh: resps}); err != nil {
		t.Fatalf("Query lib-ask: %v", err)
	}
	if r := recv(t, resps, 20*time.Second, "the streamed answer"); r.From != "lib1" || string(r.Payload) != "streamed answer" {
		t.Errorf("query answer = %+v; want lib1's streamed answer", r)
	}
	if err := c.Stop(h); err != nil {
		t.Errorf("Stop: %v", err)
	}

	// A query answered by a handler script.
	resps2 := make(chan client.NodeResponse, 4)
	if err := c.Query(&client.QueryParam{Name: "lib-q", Timeout: 5 * time.Second, RespCh: resps2}); err != nil {
		t.Fatalf("Query lib-q: %v", err)
	}
	if r := recv(t, resps2, 20*time.Second, "the handler's answer"); string(r.Payload) != "answer from lib1\n" {
		t.Errorf("handler answer = %q; want %q", r.Payload, "answer from lib1\n")
	}

	if err := c.UpdateTags(map[string]string{"lib": "yes"}, nil); err != nil {
		t.Fatalf("UpdateTags: %v", err)
	}
	ms, err := c.MembersFiltered(map[string]string{"lib": "y.s"}, "alive", "lib.")
	if err != nil || len(ms) != 1 || ms[0].Name != "lib1" {
		t.Errorf("MembersFiltered = %+v, %v; want lib1", ms, err)
	}

	// Key rotation: install, use, remove; list shows the ring each time.
	if _, err := c.InstallKey(key2); err != nil {
		t.Fatalf("InstallKey: %v", err)
	}
	if _, err := c.UseKey(key2); err != nil {
		t.Fatalf("UseKey: %v", err)
	}
	if _, err := c.RemoveKey(key1); err != nil {
		t.Fatalf("RemoveKey: %v", err)
	}
	keys, num, _, err := c.ListKeys()
	if err != nil || num != 1 || len(keys) != 1 || keys[key2] != 1 {
		t.Errorf("ListKeys = %v, %d nodes, %v; want only %s on 1 node", keys, num, err, key2)
	}
	if coord, err := c.GetCoordinate("lib1"); err != nil || coord == nil || len(coord.Vec) == 0 {
		t.Errorf("GetCoordinate = %+v, %v; want a coordinate", coord, err)
	}
}

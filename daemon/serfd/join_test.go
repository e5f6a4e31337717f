package main

import (
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// silentListener accepts TCP connections on 127.0.0.1 and never answers:
// a join to it waits for memberlist's TCP timeout (30s with the wan
// profile). accepted is closed at the first connection; connections are
// closed at cleanup.
func silentListener(t *testing.T) (addr string, accepted <-chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done, first := make(chan struct{}), make(chan struct{})
	var conns []net.Conn
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if conns = append(conns, c); len(conns) == 1 {
				close(first)
			}
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String(), first
}

// A join that hangs holds up neither a reload that changes the join list
// nor a stop: the reload answers, and SIGTERM leaves and exits 0, well
// within memberlist's 30s TCP timeout of the hanging attempt.
func TestHangingJoinBlocksNeitherReloadNorStop(t *testing.T) {
	t.Parallel()
	hole1, joining := silentListener(t)
	hole2, _ := silentListener(t)
	n := startNodeWithSocket(t, "j1", "127.0.0.72", "", `profile = "wan"`, fmt.Sprintf("join = [%q]", hole1))
	select {
	case <-joining:
	case <-time.After(20 * time.Second):
		t.Fatal("serfd never tried its configured join")
	}

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

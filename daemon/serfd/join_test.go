package main

import (
	"fmt"
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

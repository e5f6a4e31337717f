package daemon

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/serfd/serfd/gossip"
	"github.com/serfd/serfd/internal/testutil"
)

// TestStatusFollowsMembership runs the daemon in-process over a real
// NOTIFY_SOCKET. It never joins anyone itself (its configured join address
// answers nothing), yet a peer joining it makes it a member: STATUS= then
// counts two alive and does not say "alone"; once the peer is gone it is
// alone again, with the failed peer counted. The join still retrying shows
// throughout.
func TestStatusFollowsMembership(t *testing.T) {
	isolateEnv(t)
	l := listenNotify(t)
	dir := testutil.ShortTempDir(t, "sd-")
	dead := net.JoinHostPort("127.0.0.97", strconv.Itoa(testutil.FreePort(t, "127.0.0.97")))
	cfgPath := writeDaemonConfig(t, dir, "st-1", 96, `join = ["`+dead+`"]`)
	cfg, err := LoadConfig(cfgPath)
	if err != nil {
		t.Fatalf("LoadConfig(%s) error: %v", cfgPath, err)
	}
	logs := &testutil.Buffer{}
	level := new(slog.LevelVar)
	hub := newLogHub()
	d := newDaemon(cfg, Options{ConfigPath: cfgPath}, slog.New(&teeHandler{inner: newTextHandler(logs, level), hub: hub}), level, hub)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.run(ctx, nil) }()
	defer func() {
		cancel()
		testutil.Recv(t, done, 30*time.Second, "run to return")
		if t.Failed() {
			t.Logf("daemon log:\n%s", logs.String())
		}
	}()

	has := func(prefix string, with []string, without ...string) func(string) bool {
		return func(s string) bool {
			if !strings.HasPrefix(s, prefix) {
				return false
			}
			for _, w := range with {
				if !strings.Contains(s, w) {
					return false
				}
			}
			for _, w := range without {
				if strings.Contains(s, w) {
					return false
				}
			}
			return true
		}
	}
	l.waitState(t, 20*time.Second, "STATUS= alone, retrying the join",
		has("STATUS=1 alive, 0 failed; alone; ", []string{"retrying join (attempt "}))

	<-d.started
	peer, err := gossip.Create(gossip.Config{NodeName: "st-2", BindAddr: "127.0.0.98", Profile: "local",
		Logger: slog.New(slog.DiscardHandler), OnEvent: func(gossip.Event) {}})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Shutdown()
	if n, err := peer.Join(ctx, []string{d.cluster.LocalMember().HostPort()}, true); n != 1 {
		t.Fatalf("st-2 joining st-1: %d contacted, %v; want 1", n, err)
	}
	l.waitState(t, 20*time.Second, "STATUS= with two alive and not alone",
		has("STATUS=2 alive, 0 failed; ", []string{"retrying join", "last event member-join"}, "alone"))

	if err := peer.Shutdown(); err != nil { // no leave: st-1 sees it fail
		t.Fatal(err)
	}
	l.waitState(t, 30*time.Second, "STATUS= alone again, the peer failed",
		has("STATUS=1 alive, 1 failed; alone; ", []string{"last event member-failed"}))
}

package ctl

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// shortDir is a temporary directory whose paths fit sun_path (108 bytes).
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "ctl-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// closingServer accepts connections on a real Unix socket and closes each
// one after reading what the client sent (reset: without reading it, so
// the kernel resets the connection), the way a socket whose service could
// not start drops its waiting clients. Cleanup closes it and waits for it.
func closingServer(t *testing.T, path string, reset bool) {
	t.Helper()
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			if !reset {
				_ = c.SetReadDeadline(time.Now().Add(time.Second))
				buf := make([]byte, 4096)
				_, _ = c.Read(buf)
			}
			c.Close()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Errorf("closingServer on %s did not stop within 5s", path)
		}
	})
}

func TestConnErrorSaysWhatToDo(t *testing.T) {
	dir := shortDir(t)

	// A socket file nobody listens on: a listener closed without
	// removing its file.
	refused := filepath.Join(dir, "refused.sock")
	l, err := net.Listen("unix", refused)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()

	closed := filepath.Join(dir, "closed.sock")
	closingServer(t, closed, false)
	reset := filepath.Join(dir, "reset.sock")
	closingServer(t, reset, true)

	why := "`systemctl status serfd`, `journalctl -u serfd` and `serfd -check`"
	for _, tc := range []struct {
		name, socket string
		want         []string
	}{
		{"no socket", filepath.Join(dir, "none.sock"),
			[]string{"serfd is not running (no socket at " + filepath.Join(dir, "none.sock") + "): start it with `systemctl start serfd`"}},
		{"refused", refused,
			[]string{"serfd is not running (" + refused + " refuses connections)", "`systemctl start serfd`", why}},
		{"closed without an answer", closed,
			[]string{"serfd closed the connection on " + closed + " without an answer: the service could not start or stopped", why}},
		{"reset", reset,
			[]string{"without an answer", why}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			// A read-only call and a mutating one (with a body) alike.
			_, err := NewClient(tc.socket).Members(ctx)
			_, err2 := NewClient(tc.socket).Leave(ctx)
			for _, e := range []error{err, err2} {
				if e == nil {
					t.Fatalf("call on %s = nil error; want one", tc.socket)
				}
				for _, w := range tc.want {
					if !strings.Contains(e.Error(), w) {
						t.Errorf("call on %s: error %q; want it to contain %q", tc.socket, e, w)
					}
				}
			}
		})
	}
}

func TestConnErrorDeadline(t *testing.T) {
	// A listener that never accepts: the client waits in its backlog,
	// as behind serfd.socket while serfd cannot start.
	path := filepath.Join(shortDir(t), "slow.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err = NewClient(path).Members(ctx)
	want := "serfd did not answer on " + path + " in time"
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "journalctl -u serfd") {
		t.Errorf("Members(%s) with no answer = %v; want %q and how to find out why", path, err, want)
	}
}

// MonitorStarted says the stream is up as soon as serfd has accepted it,
// before any record: the server here sends its record only once started
// was called. A refusal calls started not at all.
func TestMonitorStarted(t *testing.T) {
	path := filepath.Join(shortDir(t), "mon.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("level") == "refuse" {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, `{"error":"16 monitor streams are open"}`)
			return
		}
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		select {
		case <-started:
		case <-r.Context().Done():
			return
		}
		fmt.Fprintln(w, `{"time":"2026-05-01T10:00:00Z","level":"INFO","msg":"hello"}`)
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Close() })

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got []string
	err = NewClient(path).MonitorStarted(ctx, "info", func() { close(started) }, func(rec LogRecord) error {
		got = append(got, rec.Message)
		return errors.New("enough")
	})
	if err == nil || err.Error() != "enough" || len(got) != 1 || got[0] != "hello" {
		t.Errorf("MonitorStarted = %v, records %q; want the record sent after started, then fn's error", err, got)
	}

	calls := 0
	err = NewClient(path).MonitorStarted(ctx, "refuse", func() { calls++ }, func(LogRecord) error { return nil })
	if !IsStatus(err, http.StatusServiceUnavailable) || calls != 0 {
		t.Errorf("MonitorStarted refused = %v, started called %d times; want the 503 and no call", err, calls)
	}
}

package daemon

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-systemd/v22/journal"
	"github.com/serfd/serfd/internal/testutil"
)

// isolateEnv keeps an in-process daemon off the host's systemd: no notify
// socket, no watchdog, no socket activation, no state directory, text logs.
// Tests set what they need after it.
func isolateEnv(t *testing.T) {
	for _, k := range []string{"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM",
		"STATE_DIRECTORY", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"} {
		t.Setenv(k, "")
	}
}

// writeDaemonConfig writes a configuration for an in-process daemon named
// name, gossiping on 127.0.0.<host> (any free port), with its control
// socket and handlers directory in dir; extra is appended.
func writeDaemonConfig(t *testing.T, dir, name string, host int, extra string) string {
	t.Helper()
	hdir := filepath.Join(dir, "handlers.d")
	if err := os.Mkdir(hdir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`node_name = %q
bind = "127.0.0.%d:0"
profile = "local"
control { socket = %q }
handlers { dir = %q }
log { level = "info" }
%s`, name, host, filepath.Join(dir, "ctl.sock"), hdir, extra)
	path := filepath.Join(dir, "config.hcl")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// notifyListener is a real NOTIFY_SOCKET: a unixgram socket in a
// temporary directory that the code under test sends sd_notify states to.
type notifyListener struct {
	conn *net.UnixConn
	seen []string // every datagram read, for failure messages
}

// listenNotify creates the socket and points NOTIFY_SOCKET at it.
func listenNotify(t *testing.T) *notifyListener {
	t.Helper()
	path := filepath.Join(testutil.ShortTempDir(t, "sd-"), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatalf("listen on %s: %v", path, err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	return &notifyListener{conn: conn}
}

// next reads the next datagram, waiting until deadline.
func (l *notifyListener) next(deadline time.Time) (string, error) {
	if err := l.conn.SetReadDeadline(deadline); err != nil {
		return "", err
	}
	buf := make([]byte, 4096)
	n, err := l.conn.Read(buf)
	if err != nil {
		return "", err
	}
	s := string(buf[:n])
	l.seen = append(l.seen, s)
	return s, nil
}

// waitState reads datagrams until one satisfies match, failing after timeout.
func (l *notifyListener) waitState(t *testing.T, timeout time.Duration, what string, match func(string) bool) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s, err := l.next(deadline)
		if err != nil {
			t.Fatalf("waiting for %s on NOTIFY_SOCKET: %v; read so far: %q", what, err, l.seen)
		}
		if match(s) {
			return s
		}
	}
}

// is matches a datagram equal to state.
func is(state string) func(string) bool {
	return func(s string) bool { return s == state }
}

// sentRecord is one record journalHandler handed to journald.
type sentRecord struct {
	msg  string
	pri  journal.Priority
	vars map[string]string
}

// journalCapture stands in for journald's socket behind the real
// journalHandler. Safe for concurrent use.
type journalCapture struct {
	mu   sync.Mutex
	recs []sentRecord
}

func (c *journalCapture) send(msg string, pri journal.Priority, vars map[string]string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.recs = append(c.recs, sentRecord{msg, pri, vars})
	return nil
}

func (c *journalCapture) all() []sentRecord {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]sentRecord(nil), c.recs...)
}

// find returns the first record with the given MESSAGE_ID and fields.
func (c *journalCapture) find(id string, fields map[string]string) (sentRecord, bool) {
	for _, r := range c.all() {
		if r.vars["MESSAGE_ID"] != id {
			continue
		}
		ok := true
		for k, v := range fields {
			if r.vars[k] != v {
				ok = false
			}
		}
		if ok {
			return r, true
		}
	}
	return sentRecord{}, false
}

func (c *journalCapture) String() string {
	var b bytes.Buffer
	for _, r := range c.all() {
		fmt.Fprintf(&b, "%d %q %v\n", r.pri, r.msg, r.vars)
	}
	return b.String()
}

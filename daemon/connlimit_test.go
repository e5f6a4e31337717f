package daemon

import (
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/serfd/serfd/internal/testutil"
)

// A user past the per-user limit, or anyone past the total, is refused
// (root only by the total); a closed connection gives its place back.
func TestLimitListenerTake(t *testing.T) {
	l := &limitListener{max: 5, maxPerUser: 2, byUser: map[uint32]int{}}
	alice, root := peerCred{uid: 1000, ok: true}, peerCred{uid: 0, ok: true}
	for i, tc := range []struct {
		cred peerCred
		want string
	}{
		{alice, ""}, {alice, ""}, {alice, "uid 1000 holds 2 control connections, the limit is 2"},
		{root, ""}, {root, ""}, {root, ""}, {root, "5 control connections are open, the limit is 5"},
	} {
		if got := l.take(tc.cred); got != tc.want {
			t.Errorf("take #%d (uid %d) = %q; want %q", i+1, tc.cred.uid, got, tc.want)
		}
	}
	l.release(alice)
	if got := l.take(alice); got != "" {
		t.Errorf("take after a release = %q; want a place", got)
	}
}

// On a real socket: past the limit a connection is answered 503 with the
// limit at once and closed, and the connections within it are served.
func TestLimitListenerRefusesWith503(t *testing.T) {
	path := filepath.Join(testutil.ShortTempDir(t, "limit"), "s")
	ul, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	l := newLimitListener(ul)
	l.max = 2
	defer l.Close()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, testutil.Recv(t, accepted, 10*time.Second, "an accepted connection"))
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	answer, err := io.ReadAll(c) // to EOF: the daemon closes it
	if err != nil || !strings.HasPrefix(string(answer), "HTTP/1.1 503 ") ||
		!strings.Contains(string(answer), "2 control connections are open, the limit is 2") {
		t.Errorf("connection past the limit answered %q, %v; want 503 naming the limit, then EOF", answer, err)
	}
	for _, c := range held {
		c.Close()
	}
	if c2, err := net.Dial("unix", path); err != nil {
		t.Fatal(err)
	} else {
		defer c2.Close()
		testutil.Recv(t, accepted, 10*time.Second, "a connection accepted once places were given back").Close()
	}
}

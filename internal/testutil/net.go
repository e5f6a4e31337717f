package testutil

import (
	"net"
	"os"
	"strconv"
	"testing"
)

// FreePort returns a port that is free for both TCP and UDP on ip right
// now (memberlist binds both).
func FreePort(tb testing.TB, ip string) int {
	tb.Helper()
	for range 50 {
		l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
		if err != nil {
			tb.Fatalf("listen on %s: %v", ip, err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", net.JoinHostPort(ip, strconv.Itoa(port)))
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	tb.Fatalf("no port free for TCP and UDP on %s", ip)
	return 0
}

// ShortTempDir returns a new temporary directory under os.TempDir, named
// prefix plus a few characters, short enough for a Unix socket path (108
// bytes of sun_path, which t.TempDir's long names can exceed). It is
// removed at cleanup.
func ShortTempDir(tb testing.TB, prefix string) string {
	tb.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		tb.Fatalf("create a temporary directory: %v", err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// SilentListener listens for TCP on 127.0.0.1, accepts every connection
// and never writes to one, so a client waits out its own timeout: a peer
// that hangs. Accepted connections are offered on the returned channel
// (capacity 16; later ones are not offered when it is full) and all of
// them are closed at cleanup.
func SilentListener(tb testing.TB) (addr string, accepted <-chan net.Conn) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	ch := make(chan net.Conn, 16)
	done := make(chan struct{})
	var conns []net.Conn // owned by the accept loop until done
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
			select {
			case ch <- c:
			default:
			}
		}
	}()
	tb.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String(), ch
}

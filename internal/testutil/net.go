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

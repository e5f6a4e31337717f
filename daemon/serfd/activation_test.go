package main

import (
	"bytes"
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

// activatedStart starts serfd as serfd.socket does: the listening socket
// l as fd 3 with LISTEN_FDS=1 and LISTEN_PID set to serfd's own PID (the
// shell's, which exec keeps). It returns serfd's exit code once it exits.
func activatedStart(t *testing.T, l *net.UnixListener, config string) <-chan int {
	t.Helper()
	f, err := l.File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := osexec.Command("/bin/sh", "-c", `LISTEN_PID=$$ exec "$0" -config "$1"`, bin.serfd, config)
	cmd.Env = append(os.Environ(), "LISTEN_FDS=1", "NOTIFY_SOCKET=")
	cmd.ExtraFiles = []*os.File{f}
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start serfd: %v", err)
	}
	exited := make(chan int, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		code, _ := testutil.ExitCode(cmd.Wait())
		exited <- code
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("serfd's output:\n%s", logs.String())
		}
	})
	return exited
}

// pending reports whether a connection waits in l's backlog (the
// listening socket is readable), as systemd's socket unit sees it.
func pending(t *testing.T, l *net.UnixListener) bool {
	t.Helper()
	rc, err := l.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var ready bool
	err = rc.Control(func(fd uintptr) {
		var set syscall.FdSet
		set.Bits[fd/64] |= 1 << (fd % 64)
		tv := syscall.Timeval{}
		n, err := syscall.Select(int(fd)+1, &set, nil, nil, &tv)
		ready = err == nil && n > 0
	})
	if err != nil {
		t.Fatal(err)
	}
	return ready
}

// serfctlStart starts serfctl members against socket; its result arrives
// on the channel: stderr and exit code.
func serfctlStart(t *testing.T, socket string) <-chan [2]string {
	t.Helper()
	cmd := osexec.Command(bin.serfctl, "-socket", socket, "members")
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	res := make(chan [2]string, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		code, _ := testutil.ExitCode(cmd.Wait())
		res <- [2]string{errb.String(), fmt.Sprint(code)}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	return res
}

// TestActivatedStartFailureAnswers: a socket-activated serfd that cannot
// start answers the client whose connection started it with the reason,
// then exits, so the client prints what is wrong instead of "connection
// reset by peer", and systemd is not made to start serfd again and again
// for a connection left in the socket's backlog.
func TestActivatedStartFailureAnswers(t *testing.T) {
	busyIP := "127.0.0.41"
	busy, err := net.Listen("tcp", busyIP+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()

	for _, tc := range []struct {
		name, config string
		exit         string
		want         []string
	}{
		{"bad configuration", "node_name = \"a1\"\nbogus_key = 1\n", "78", []string{
			"serfd could not start: its configuration is invalid",
			"`serfd -check`", "`systemctl start serfd`",
			"config.hcl:2,1",
		}},
		{"gossip address in use", fmt.Sprintf("node_name = \"a2\"\nbind = %q\nprofile = \"local\"\n", busy.Addr().String()), "1", []string{
			"serfd could not start: start gossip on " + busy.Addr().String(),
			"`journalctl -u serfd`",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, err := os.MkdirTemp("", "sa-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
			config := filepath.Join(dir, "config.hcl")
			if err := os.WriteFile(config, []byte(tc.config), 0o644); err != nil {
				t.Fatal(err)
			}
			// The test holds the socket, as systemd holds serfd.socket.
			socket := filepath.Join(dir, "ctl.sock")
			l, err := net.ListenUnix("unix", &net.UnixAddr{Name: socket, Net: "unix"})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			// Twice: after a failed start the socket is usable again.
			for i := range 2 {
				client := serfctlStart(t, socket)
				// The client waits in the backlog; then the socket
				// starts serfd.
				testutil.Poll(t, 10*time.Second, "serfctl's connection in the backlog", func() (bool, string) {
					return pending(t, l), "none yet"
				})
				exited := activatedStart(t, l, config)
				select {
				case code := <-exited:
					if fmt.Sprint(code) != tc.exit {
						t.Errorf("call %d: serfd exit %d; want %s", i, code, tc.exit)
					}
				case <-time.After(20 * time.Second):
					t.Fatalf("call %d: serfd did not exit within 20s", i)
				}
				select {
				case r := <-client:
					if r[1] != "1" {
						t.Errorf("call %d: serfctl members exit %s; want 1", i, r[1])
					}
					for _, w := range tc.want {
						if !strings.Contains(r[0], w) {
							t.Errorf("call %d: serfctl members stderr = %q; want it to contain %q", i, r[0], w)
						}
					}
				case <-time.After(10 * time.Second):
					t.Fatalf("call %d: serfctl got no answer within 10s of serfd's exit", i)
				}
			}
		})
	}
}

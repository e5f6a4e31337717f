package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	osexec "os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/serfd/serfd/internal/testutil"
)

// openPTY opens a pseudo-terminal pair: what is written to the returned
// terminal side is read from the controller side.
func openPTY(t *testing.T) (controller, terminal *os.File) {
	t.Helper()
	controller, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { controller.Close() })
	ioctl := func(req uintptr, arg unsafe.Pointer) {
		t.Helper()
		if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, controller.Fd(), req, uintptr(arg)); errno != 0 {
			t.Fatalf("ioctl %#x on /dev/ptmx: %v", req, errno)
		}
	}
	unlock := int32(0)
	ioctl(syscall.TIOCSPTLCK, unsafe.Pointer(&unlock))
	var n uint32
	ioctl(syscall.TIOCGPTN, unsafe.Pointer(&n))
	terminal, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { terminal.Close() })
	return controller, terminal
}

// ctlOnTTY runs serfctl with stdout and stderr on a pseudo-terminal and
// returns what the terminal showed.
func (n *node) ctlOnTTY(t *testing.T, env []string, args ...string) string {
	t.Helper()
	controller, terminal := openPTY(t)
	cmd := osexec.Command(bin.serfctl, append([]string{"-socket", n.socket}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = terminal, terminal
	p := testutil.Start(t, "serfctl on a terminal", cmd)
	var out bytes.Buffer
	read := make(chan struct{})
	go func() {
		defer close(read)
		// Ends with EIO once serfctl has exited and the terminal side is
		// closed below.
		_, _ = io.Copy(&out, controller)
	}()
	err := p.Wait(t, testutil.RunTimeout)
	terminal.Close()
	select {
	case <-read:
	case <-time.After(10 * time.Second):
		t.Fatal("the terminal was not drained")
	}
	if err != nil {
		t.Fatalf("serfctl %v on a terminal: %v\n%q", args, err, out.String())
	}
	return out.String()
}

// Colour and query progress appear on a terminal only: not in a pipe and
// not with NO_COLOR.
func TestSerfctlTerminalOutput(t *testing.T) {
	n := startNode(t, "tty1", "127.0.0.91", "")
	const green = "\x1b[32m"

	if out := n.ctlOnTTY(t, nil, "members"); !strings.Contains(out, green+"alive") {
		t.Errorf("members on a terminal = %q; want the status in green", out)
	}
	if out := n.ctlOnTTY(t, []string{"NO_COLOR=1"}, "members"); strings.Contains(out, "\x1b[") || !strings.Contains(out, "alive") {
		t.Errorf("members on a terminal with NO_COLOR = %q; want plain text", out)
	}
	if out, _, code := n.ctl(t, "members"); code != 0 || strings.Contains(out, "\x1b[") {
		t.Errorf("members into a pipe = %q (exit %d); want plain text", out, code)
	}

	// Query progress goes to stderr on a terminal and is cleared before
	// each line of results.
	if out := n.ctlOnTTY(t, nil, "query", "-timeout", "2s", "ping"); !strings.Contains(out, "acked") || !strings.Contains(out, "\r\x1b[K") {
		t.Errorf("query on a terminal = %q; want progress lines", out)
	}
	if out, errOut, code := n.ctl(t, "query", "-timeout", "2s", "ping"); code != 0 || strings.Contains(errOut, "acked") || strings.Contains(out, "\x1b[") {
		t.Errorf("query into a pipe: stdout %q stderr %q exit %d; want no progress", out, errOut, code)
	}

	// What came from the network is shown, not obeyed: a tag and an event
	// name carrying terminal escapes reach the terminal escaped, through
	// members, monitor's log lines and error messages alike.
	const evil = "\x1b]0;pwned\x07\x1b[2J"
	if _, errOut, code := n.ctl(t, "tags", "-set", "note="+evil); code != 0 {
		t.Fatalf("tags -set: %s", errOut)
	}
	out := n.ctlOnTTY(t, []string{"NO_COLOR=1"}, "members")
	if strings.ContainsAny(out, "\x07") || strings.Contains(out, "\x1b]") || !strings.Contains(out, `\u001b]0;pwned\u0007\u001b[2J`) {
		t.Errorf("members with an escape in a tag = %q; want it escaped", out)
	}
	if _, errOut, code := n.ctl(t, "event", evil, "x"); code != 0 {
		t.Fatalf("event: %s", errOut)
	}
	if out, errOut, _ := n.ctl(t, "force-leave", evil); strings.ContainsAny(out+errOut, "\x07\x1b") {
		t.Errorf("force-leave of an escaped name: %q %q; want the name escaped in the error", out, errOut)
	}
}

package main

import (
	"io"
	"os"
	osexec "os/exec"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/serfd/serfd/internal/testutil"
)

// The sequences serfctl's live view writes (serfctl's watch.go).
const (
	altScreenOn  = "\x1b[?1049h"
	altScreenOff = "\x1b[?1049l"
	cursorHide   = "\x1b[?25l"
	cursorShow   = "\x1b[?25h"
	cursorHome   = "\x1b[H"
	eraseBelow   = "\x1b[J"
)

// Not on a terminal, members -watch prints a fresh block on each change,
// blocks apart by a blank line and free of escape sequences: the table as
// a member joins, that member's join and a user event; SIGINT ends it, exit 0.
func TestSerfctlWatchPipe(t *testing.T) {
	t.Parallel()
	a := startNode(t, "w1", "127.0.0.121", "")
	var out, errOut testutil.Buffer
	cmd := osexec.Command(bin.serfctl, "-socket", a.socket, "members", "-watch")
	cmd.Stdout, cmd.Stderr = &out, &errOut
	p := testutil.Start(t, "serfctl members -watch", cmd)
	state := func() string { return "stdout:\n" + out.String() + "\nstderr:\n" + errOut.String() }

	w1 := regexp.MustCompile(`(?m)^w1  127\.0\.0\.121:\d+ +alive`)
	testutil.Poll(t, 20*time.Second, "the member table", func() (bool, string) {
		return w1.MatchString(out.String()), state()
	})

	b := startNode(t, "w2", "127.0.0.122", "")
	if _, e, code := b.ctl(t, "join", a.addr); code != 0 {
		t.Fatalf("join: %s", e)
	}
	w2 := regexp.MustCompile(`(?m)^w2  127\.0\.0\.122:\d+ +alive`)
	// Gossip may coalesce w2's join with w1's own: "w1, w2".
	joined := regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d  member-join    (.*, )?w2(, .*)?$`)
	testutil.Poll(t, 30*time.Second, "w2 in the table and its member-join", func() (bool, string) {
		return w2.MatchString(out.String()) && joined.MatchString(out.String()), state()
	})

	if _, e, code := a.ctl(t, "event", "watchme", "hi"); code != 0 {
		t.Fatalf("event: %s", e)
	}
	user := regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d  user           watchme \(2 bytes\)$`)
	testutil.Poll(t, 20*time.Second, "the user event", func() (bool, string) {
		return user.MatchString(out.String()), state()
	})

	if err := p.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(t, 10*time.Second); err != nil {
		t.Errorf("serfctl members -watch after SIGINT = %v; want exit 0\n%s", err, state())
	}
	got := out.String()
	if strings.Contains(got+errOut.String(), "\x1b") {
		t.Errorf("serfctl members -watch into a pipe wrote escape sequences:\n%q", state())
	}
	if errOut.Len() > 0 {
		t.Errorf("serfctl members -watch wrote to stderr: %q", errOut.String())
	}
	// Every block: a title with the time and the counts, the table, then
	// maybe the events since the block before.
	title := regexp.MustCompile(`^\d\d:\d\d:\d\d \d+ members? \(\d+ alive\)\n(w\d  127\.0\.0\.12\d:\d+ +alive +\n)+(Events:\n(\d\d:\d\d:\d\d  .*\n)+)?$`)
	for _, block := range strings.Split(strings.TrimSuffix(got, "\n"), "\n\n") {
		if !title.MatchString(block + "\n") {
			t.Errorf("block %q is not a title, a table and events", block)
		}
	}
}

// setWinsize sets the pseudo-terminal's size, as a terminal emulator does
// when its window changes: the kernel sends SIGWINCH to the terminal's
// foreground process group.
func setWinsize(t *testing.T, controller *os.File, rows, cols uint16) {
	t.Helper()
	ws := [4]uint16{rows, cols, 0, 0}
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, controller.Fd(), syscall.TIOCSWINSZ, uintptr(unsafe.Pointer(&ws))); errno != 0 {
		t.Fatalf("TIOCSWINSZ: %v", errno)
	}
}

// lastFrame is the last complete frame in a terminal's output: its lines
// without control sequences.
func lastFrame(out string) []string {
	end := strings.LastIndex(out, eraseBelow)
	if end < 0 {
		return nil
	}
	start := strings.LastIndex(out[:end], cursorHome)
	if start < 0 {
		return nil
	}
	text := regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]|\r`).ReplaceAllString(out[start:end], "")
	return strings.Split(text, "\n")
}

// watchOnTerminal starts serfctl args in a session of its own whose
// controlling terminal is a new pseudo-terminal of rows by cols, as a
// shell in a terminal window runs it, and returns the process, the
// controller side and what the terminal showed so far (read until done
// is closed, after the terminal side is closed).
func watchOnTerminal(t *testing.T, env []string, rows, cols uint16, args ...string) (p *testutil.Proc, controller, terminal *os.File, out *testutil.Buffer, done chan struct{}) {
	t.Helper()
	controller, terminal = openPTY(t)
	setWinsize(t, controller, rows, cols)
	cmd := osexec.Command(bin.serfctl, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = terminal, terminal, terminal
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	p = testutil.Start(t, "serfctl on a terminal", cmd)
	out, done = &testutil.Buffer{}, make(chan struct{})
	go func() {
		defer close(done)
		// Ends with EIO once the terminal side is closed.
		_, _ = io.Copy(out, controller)
	}()
	return p, controller, terminal, out, done
}

// ended waits for serfctl to exit 0 having restored the terminal: cursor
// shown, alternate screen left, after the last frame; then closes the
// terminal side and waits until its output is read.
func ended(t *testing.T, p *testutil.Proc, terminal *os.File, out *testutil.Buffer, done chan struct{}, how string) {
	t.Helper()
	if err := p.Wait(t, 10*time.Second); err != nil {
		t.Errorf("serfctl on a terminal after %s = %v; want exit 0\n%q", how, err, out.Tail(2000))
	}
	testutil.Poll(t, 10*time.Second, "the terminal restored after "+how, func() (bool, string) {
		s := out.String()
		return strings.HasSuffix(s, cursorShow+altScreenOff) && strings.LastIndex(s, cursorShow+altScreenOff) > strings.LastIndex(s, cursorHome), out.Tail(300)
	})
	terminal.Close()
	testutil.Recv(t, done, 10*time.Second, "the terminal drained")
}

// On a terminal, serfctl top takes the alternate screen, hides the cursor
// and redraws in place with colours, fits the screen again when the window
// changes size, shows events as they come, and on Ctrl-C exits 0 with the
// cursor shown and the alternate screen left. With NO_COLOR it redraws
// without colours, and SIGTERM ends it as cleanly; so does q.
func TestSerfctlWatchTerminal(t *testing.T) {
	t.Parallel()
	n := startNode(t, "wt1", "127.0.0.124", "")
	p, controller, terminal, out, done := watchOnTerminal(t, []string{"TERM=xterm", "NO_COLOR="}, 40, 120,
		"-socket", n.socket, "top", "-interval", "500ms")

	const green = "\x1b[32m"
	title := regexp.MustCompile(`^serfd at ` + regexp.QuoteMeta(n.socket) + `: 1 member \(1 alive\)  \d\d:\d\d:\d\d$`)
	testutil.Poll(t, 20*time.Second, "the live view", func() (bool, string) {
		s := out.String()
		f := lastFrame(s)
		return strings.HasPrefix(s, altScreenOn+cursorHide) && strings.Contains(s, green+"alive") &&
			len(f) > 4 && title.MatchString(f[0]) && strings.HasPrefix(f[2], "wt1  127.0.0.124:") && slices.Contains(f, "Recent events"), strings.Join(f, "\n")
	})

	if _, e, code := n.ctl(t, "event", "watchtty"); code != 0 {
		t.Fatalf("event: %s", e)
	}
	testutil.Poll(t, 20*time.Second, "the user event in the live view", func() (bool, string) {
		f := lastFrame(out.String())
		return len(f) > 0 && strings.Contains(f[len(f)-1], "user           watchtty"), strings.Join(f, "\n")
	})

	// A narrower, shorter window: every line of the next frames fits it
	// (the title, longer than 39 columns, is cut).
	mark := out.Len()
	setWinsize(t, controller, 12, 40)
	testutil.Poll(t, 20*time.Second, "a frame that fits 12 rows of 40 columns", func() (bool, string) {
		f := lastFrame(out.String()[mark:])
		if len(f) == 0 || len(f) > 12 || !strings.HasPrefix(f[0], "serfd at ") {
			return false, strings.Join(f, "\n")
		}
		for _, l := range f {
			if len([]rune(l)) > 39 {
				return false, strings.Join(f, "\n")
			}
		}
		return true, ""
	})

	if _, err := controller.Write([]byte{0x03}); err != nil { // Ctrl-C
		t.Fatal(err)
	}
	ended(t, p, terminal, out, done, "Ctrl-C")

	// NO_COLOR: redrawn in place all the same, without colours.
	p, _, terminal, out, done = watchOnTerminal(t, []string{"TERM=xterm", "NO_COLOR=1"}, 24, 80, "-socket", n.socket, "members", "-watch")
	testutil.Poll(t, 20*time.Second, "the live view without colours", func() (bool, string) {
		f := lastFrame(out.String())
		return len(f) > 2 && strings.HasPrefix(f[2], "wt1  127.0.0.124:"), strings.Join(f, "\n")
	})
	if s := out.String(); regexp.MustCompile(`\x1b\[[0-9;]*m`).MatchString(s) {
		t.Errorf("serfctl members -watch on a terminal with NO_COLOR = %q; want no colours", s)
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	ended(t, p, terminal, out, done, "SIGTERM")

	// q quits; other keys do nothing, and are not echoed.
	p, controller, terminal, out, done = watchOnTerminal(t, []string{"TERM=xterm"}, 24, 80, "-socket", n.socket, "top")
	testutil.Poll(t, 20*time.Second, "the live view", func() (bool, string) {
		f := lastFrame(out.String())
		return len(f) > 2 && strings.HasPrefix(f[2], "wt1  127.0.0.124:"), strings.Join(f, "\n")
	})
	if _, err := controller.Write([]byte("zz")); err != nil {
		t.Fatal(err)
	}
	if _, err := controller.Write([]byte("q")); err != nil {
		t.Fatal(err)
	}
	ended(t, p, terminal, out, done, "q")
	if s := out.String(); strings.Contains(s, "zz") {
		t.Errorf("keys typed into serfctl top were echoed: %q", out.Tail(300))
	}
}

// serfd restarting under members -watch: it says it is reconnecting,
// keeps waiting, and once serfd is back prints the table again and
// follows the new serfd's events.
func TestSerfctlWatchReconnects(t *testing.T) {
	t.Parallel()
	n := startNode(t, "wr1", "127.0.0.123", "")
	p := testutil.Start(t, "serfctl members -watch", osexec.Command(bin.serfctl, "-socket", n.socket, "members", "-watch", "-interval", "500ms"))
	table := regexp.MustCompile(`(?m)^wr1  127\.0\.0\.123:\d+  alive`)
	testutil.Poll(t, 20*time.Second, "the member table", func() (bool, string) {
		return table.MatchString(p.Out.String()), p.Out.String()
	})

	n.proc.Kill()
	testutil.Poll(t, 20*time.Second, "serfctl to say it is reconnecting", func() (bool, string) {
		return strings.Contains(p.Out.String(), "serfctl members: reconnecting to serfd at "+n.socket+"..."), p.Out.String()
	})
	select {
	case <-p.Exited():
		t.Fatalf("serfctl members -watch exited when serfd went away: %v\n%s", p.Err(), p.Out.String())
	default:
	}
	mark := p.Out.Len()

	n.launch(t)
	testutil.Poll(t, 20*time.Second, "the table again", func() (bool, string) {
		after := p.Out.String()[mark:]
		return strings.Contains(after, "serfd at "+n.socket+" answers again") && table.MatchString(after), after
	})
	if _, e, code := n.ctl(t, "event", "afterrestart"); code != 0 {
		t.Fatalf("event: %s", e)
	}
	testutil.Poll(t, 20*time.Second, "an event of the new serfd", func() (bool, string) {
		after := p.Out.String()[mark:]
		return strings.Contains(after, "user           afterrestart"), after
	})

	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(t, 10*time.Second); err != nil {
		t.Errorf("serfctl members -watch after SIGTERM = %v; want exit 0\n%s", err, p.Out.String())
	}
}

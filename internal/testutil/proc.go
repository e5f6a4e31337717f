package testutil

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// RunTimeout bounds one Run: a command that hangs fails its test instead of
// the whole binary's -timeout.
const RunTimeout = 2 * time.Minute

// waitDelay bounds how long Wait waits for the output pipes after the
// process exited, which a backgrounded grandchild may hold open.
const waitDelay = 5 * time.Second

// noRaceExitSleep is added to GORACE of every command: a binary built with
// -race otherwise sleeps a second at exit to let racing goroutines report.
const noRaceExitSleep = "atexit_sleep_ms=0"

// withRaceEnv returns env (the current environment when nil) with
// atexit_sleep_ms=0 added to GORACE.
func withRaceEnv(env []string) []string {
	if env == nil {
		env = os.Environ()
	}
	out := make([]string, 0, len(env)+1)
	gorace := noRaceExitSleep
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "GORACE="); ok {
			if !strings.Contains(v, "atexit_sleep_ms") {
				gorace = strings.TrimSpace(v + " " + noRaceExitSleep)
			} else {
				gorace = v
			}
			continue
		}
		out = append(out, kv)
	}
	return append(out, "GORACE="+gorace)
}

// Proc is a process started by Start and owned by its test.
type Proc struct {
	Name string
	Cmd  *exec.Cmd
	// Out holds stdout and stderr, unless the caller set either of
	// cmd.Stdout and cmd.Stderr before Start.
	Out    *Buffer
	exited chan struct{}
	err    error // Wait's error, set before exited is closed
}

// Start starts cmd, named name in failure messages, with GORACE's exit
// sleep turned off. At cleanup the process is SIGKILLed by PID unless it
// already exited, reaped, and its output logged if the test failed.
func Start(tb testing.TB, name string, cmd *exec.Cmd) *Proc {
	tb.Helper()
	p := &Proc{Name: name, Cmd: cmd, Out: &Buffer{}, exited: make(chan struct{})}
	if cmd.Stdout == nil && cmd.Stderr == nil {
		cmd.Stdout, cmd.Stderr = p.Out, p.Out
	}
	cmd.Env = withRaceEnv(cmd.Env)
	if cmd.WaitDelay == 0 {
		cmd.WaitDelay = waitDelay
	}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start %s (%s): %v", name, cmd.Path, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	tb.Cleanup(func() {
		p.Kill()
		if tb.Failed() && p.Out.Len() > 0 {
			tb.Logf("output of %s:\n%s", name, p.Out.String())
		}
	})
	return p
}

// Pid is the process's ID.
func (p *Proc) Pid() int { return p.Cmd.Process.Pid }

// Exited is closed once the process has exited and been reaped.
func (p *Proc) Exited() <-chan struct{} { return p.exited }

// Err is the process's exit error (nil for status 0); call it only after
// Exited is closed.
func (p *Proc) Err() error { return p.err }

// Kill sends SIGKILL, unless the process already exited (its PID may be
// another process's by now), and waits until it is reaped.
func (p *Proc) Kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.Cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited // SIGKILL cannot be caught; WaitDelay bounds the pipes
}

// Signal sends sig to the process unless it already exited.
func (p *Proc) Signal(sig syscall.Signal) error {
	select {
	case <-p.exited:
		return os.ErrProcessDone
	default:
	}
	return p.Cmd.Process.Signal(sig)
}

// Wait waits for the process to exit and returns its exit error, failing
// the test if it still runs after timeout.
func (p *Proc) Wait(tb testing.TB, timeout time.Duration) error {
	tb.Helper()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.exited:
		return p.err
	case <-t.C:
		tb.Fatalf("%s still runs %v later; want it exited", p.Name, timeout)
		return nil
	}
}

// ExitCode is the exit status of a command's error: 0 for nil, the status
// for an *exec.ExitError, and -1 with ok false for anything else (the
// command did not run).
func ExitCode(err error) (code int, ok bool) {
	if err == nil {
		return 0, true
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), true
	}
	return -1, false
}

// Run runs cmd to completion with GORACE's exit sleep turned off and
// returns its stdout, stderr and exit status. It fails the test if cmd
// cannot run or still runs after RunTimeout (then it is killed).
func Run(tb testing.TB, cmd *exec.Cmd) (stdout, stderr string, code int) {
	tb.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Env = withRaceEnv(cmd.Env)
	if cmd.WaitDelay == 0 {
		cmd.WaitDelay = waitDelay
	}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", cmd, err)
	}
	var timedOut atomic.Bool
	kill := time.AfterFunc(RunTimeout, func() {
		timedOut.Store(true)
		_ = cmd.Process.Kill()
	})
	err := cmd.Wait()
	kill.Stop()
	if timedOut.Load() {
		tb.Fatalf("%s still ran after %v; killed it; stderr: %s", cmd, RunTimeout, errb.String())
	}
	code, ok := ExitCode(err)
	if !ok {
		tb.Fatalf("run %s: %v", cmd, err)
	}
	return out.String(), errb.String(), code
}

// SerfBin finds stock HashiCorp Serf: $SERF_BIN, then PATH, then
// GOPATH/bin (`make tools` installs it there). Under CI its absence fails
// the test; elsewhere it skips it.
func SerfBin(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv("SERF_BIN"); p != "" {
		return p
	}
	if p, err := exec.LookPath("serf"); err == nil {
		return p
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "bin", "serf")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		tb.Fatal("stock serf is not installed; run `make tools`")
	}
	tb.Skip("stock serf is not installed; run `make tools`")
	return ""
}

// ProcStatusKiB reads the named fields of /proc/PID/status that are in kB
// ("VmRSS", "RssAnon", ...), in the order asked; the test fails if one is
// missing.
func ProcStatusKiB(tb testing.TB, pid int, fields ...string) []int {
	tb.Helper()
	path := fmt.Sprintf("/proc/%d/status", pid)
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	got := map[string]int{}
	for line := range strings.Lines(string(data)) {
		name, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		var kib int
		if _, err := fmt.Sscanf(strings.TrimSpace(rest), "%d kB", &kib); err == nil {
			got[name] = kib
		}
	}
	out := make([]int, len(fields))
	for i, f := range fields {
		v, ok := got[f]
		if !ok {
			tb.Fatalf("%s: no %s in kB", path, f)
		}
		out[i] = v
	}
	return out
}

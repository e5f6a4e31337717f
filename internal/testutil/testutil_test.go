package testutil

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fatalTB records a Fatal instead of ending the test, to check that the
// helpers fail when they must.
type fatalTB struct{ testing.TB }

func (f *fatalTB) Helper()               {}
func (f *fatalTB) Fatalf(string, ...any) { panic(f) }

// fails runs fn with a fatalTB and reports whether it called Fatalf.
func fails(t *testing.T, fn func(tb testing.TB)) (failed bool) {
	tb := &fatalTB{TB: t}
	defer func() {
		if r := recover(); r != nil {
			if r != tb {
				panic(r)
			}
			failed = true
		}
	}()
	fn(tb)
	return false
}

func TestPollAndRecv(t *testing.T) {
	n := 0
	if d := Poll(t, 5*time.Second, "the third call", func() (bool, string) { n++; return n == 3, "" }); n != 3 || d <= 0 {
		t.Errorf("Poll until the third call: %d calls, took %v; want 3 calls and a positive duration", n, d)
	}
	if !fails(t, func(tb testing.TB) { WaitFor(tb, 50*time.Millisecond, "never", func() bool { return false }) }) {
		t.Errorf("WaitFor(never) did not fail at its timeout")
	}
	m := 0
	if !Eventually(5*time.Second, func() bool { m++; return m == 3 }) || m != 3 {
		t.Errorf("Eventually until the third call: %d calls; want true after 3", m)
	}
	if Eventually(50*time.Millisecond, func() bool { return false }) {
		t.Errorf("Eventually(never) = true; want false at its timeout")
	}
	ch := make(chan int, 1)
	ch <- 7
	if got := Recv(t, ch, time.Second, "7"); got != 7 {
		t.Errorf("Recv = %d; want 7", got)
	}
	close(ch)
	if _, ok := RecvOK(t, ch, time.Second, "the close"); ok {
		t.Errorf("RecvOK on a closed channel = ok; want !ok")
	}
	if !fails(t, func(tb testing.TB) { Recv(tb, make(chan int), 50*time.Millisecond, "nothing") }) {
		t.Errorf("Recv from a silent channel did not fail at its timeout")
	}
}

func TestBuffer(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() { b.Write([]byte("x")) }) // racing writers: -race checks the lock
	}
	wg.Wait()
	b.Write([]byte("yz"))
	if got := b.Tail(2); got != "yz" || b.String() != "xxxyz" {
		t.Errorf("Tail(2), String() = %q, %q; want \"yz\", \"xxxyz\"", got, b.String())
	}
}

func TestWithRaceEnv(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{[]string{"A=1"}, "GORACE=atexit_sleep_ms=0"},
		{[]string{"GORACE=halt_on_error=1", "A=1"}, "GORACE=halt_on_error=1 atexit_sleep_ms=0"},
		{[]string{"GORACE=atexit_sleep_ms=5"}, "GORACE=atexit_sleep_ms=5"},
	} {
		got := withRaceEnv(tc.env)
		if !slices.Contains(got, tc.want) || len(got) != len(tc.env)+1-countGORACE(tc.env) {
			t.Errorf("withRaceEnv(%q) = %q; want it to hold %q once", tc.env, got, tc.want)
		}
	}
}

func countGORACE(env []string) int {
	n := 0
	for _, kv := range env {
		if strings.HasPrefix(kv, "GORACE=") {
			n++
		}
	}
	return n
}

func TestRunAndStart(t *testing.T) {
	out, errOut, code := Run(t, exec.Command("/bin/sh", "-c", `echo "$GORACE"; echo e >&2; exit 3`))
	if out != "atexit_sleep_ms=0\n" || errOut != "e\n" || code != 3 {
		t.Errorf("Run(sh) = %q, %q, %d; want \"atexit_sleep_ms=0\\n\", \"e\\n\", 3", out, errOut, code)
	}
	if !fails(t, func(tb testing.TB) { Run(tb, exec.Command("/nonexistent")) }) {
		t.Errorf("Run(/nonexistent) did not fail")
	}

	p := Start(t, "sleeper", exec.Command("/bin/sh", "-c", "echo up; exec sleep 60"))
	WaitFor(t, 5*time.Second, "the sleeper's output", func() bool { return p.Out.String() == "up\n" })
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("Signal(SIGTERM) = %v", err)
	}
	// Killed by a signal: an ExitError whose ExitCode is -1.
	if code, ok := ExitCode(p.Wait(t, 5*time.Second)); !ok || code != -1 {
		t.Errorf("sleeper after SIGTERM exit code %d, %t; want -1 (killed by a signal)", code, ok)
	}
	if err := p.Signal(syscall.SIGTERM); err == nil {
		t.Errorf("Signal after exit = nil; want os.ErrProcessDone")
	}
	p.Kill() // after exit: returns at once

	q := Start(t, "sleeper", exec.Command("sleep", "60"))
	q.Kill()
	select {
	case <-q.Exited():
	default:
		t.Errorf("Kill returned before the process was reaped")
	}
	if !fails(t, func(tb testing.TB) { Start(tb, "s", exec.Command("sleep", "60")).Wait(tb, 50*time.Millisecond) }) {
		t.Errorf("Wait on a running process did not fail at its timeout")
	}
}

func TestEmulated(t *testing.T) {
	for _, tc := range []struct {
		env      string
		emulated bool
		scale    time.Duration
	}{
		{"", false, time.Second},
		{" ", false, time.Second},
		{"qemu-aarch64-static", true, EmulatedTimeScale * time.Second},
	} {
		t.Setenv(EmulatorEnv, tc.env)
		if Emulated() != tc.emulated || Scale(time.Second) != tc.scale {
			t.Errorf("%s=%q: Emulated, Scale(1s) = %t, %v; want %t, %v",
				EmulatorEnv, tc.env, Emulated(), Scale(time.Second), tc.emulated, tc.scale)
		}
		ran := false
		skipped := false
		t.Run("skip", func(t *testing.T) {
			defer func() { skipped = t.Skipped() }()
			SkipIfEmulated(t, "a reason")
			ran = true
		})
		if ran == tc.emulated || skipped != tc.emulated {
			t.Errorf("%s=%q: SkipIfEmulated let the test run: %t, skipped it: %t; want skipped %t",
				EmulatorEnv, tc.env, ran, skipped, tc.emulated)
		}
	}
}

func TestProcStatusKiB(t *testing.T) {
	kib := ProcStatusKiB(t, os.Getpid(), "VmRSS", "RssAnon")
	if kib[0] <= 0 || kib[1] <= 0 || kib[1] > kib[0] {
		t.Fatalf("VmRSS %d KiB, RssAnon %d KiB; want both > 0 and RssAnon ≤ VmRSS", kib[0], kib[1])
	}
	// Name is a field, but not one in kB.
	if !fails(t, func(tb testing.TB) { ProcStatusKiB(tb, os.Getpid(), "Name") }) {
		t.Error("ProcStatusKiB of a field not in kB did not fail")
	}
}

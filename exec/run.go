package exec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// exitDelay bounds how long a run waits, once its main process has exited,
// for its stdout and stderr pipes to close (and, as cmd.WaitDelay, for its
// stdin to be written). A leftover child still holding them then has its
// process group SIGKILLed and the pipes are closed under it.
const exitDelay = 2 * time.Second

// runResult is how one run ended.
type runResult struct {
	started    bool
	exitStatus int // -1 if killed by a signal or not started
	signal     string
	timedOut   bool
	// interrupted: ended by the signal sent when the drain after Close
	// was over (not by its own deadline, and not a run that exited by
	// itself meanwhile). A spooled run so ended runs again after a
	// restart.
	interrupted bool
	duration    time.Duration
	err         error // failure to start or to wait, not a non-zero exit
}

func (r runResult) failed() bool {
	return !r.started || r.exitStatus != 0 || r.timedOut || r.err != nil
}

// outcome classifies the run for metrics.
func (r runResult) outcome() Outcome {
	switch {
	case !r.started:
		return OutcomeStartFailed
	case r.timedOut:
		return OutcomeTimeout
	case r.signal != "" || r.exitStatus < 0:
		return OutcomeKilled
	case r.exitStatus != 0 || r.err != nil:
		return OutcomeExitNonZero
	}
	return OutcomeOK
}

// run executes one job to completion and logs it: its output lines as they
// come, then any truncation, then one record of the run whose message says
// how it ended (runResult.message). Every goroutine it starts has exited
// when it returns.
func (p *Pool) run(j *job) runResult {
	name := j.h.name
	start := time.Now()
	res := p.execute(j)
	res.duration = time.Since(start)

	attrs := append([]any{"HANDLER", name}, j.ev.logAttrs()...)
	if res.started {
		attrs = append(attrs, "EXIT_STATUS", res.exitStatus)
	}
	if res.signal != "" {
		attrs = append(attrs, "SIGNAL", res.signal)
	}
	if res.timedOut {
		attrs = append(attrs, "TIMED_OUT", true)
	}
	if res.interrupted {
		attrs = append(attrs, "INTERRUPTED", true)
	}
	if j.attempt > 1 {
		attrs = append(attrs, "SERF_RUN_ATTEMPT", j.attempt)
	}
	if res.err != nil {
		attrs = append(attrs, "ERROR", res.err.Error())
	}
	attrs = append(attrs, "DURATION_MS", res.duration.Milliseconds())
	level := slog.LevelInfo
	if res.failed() {
		level = slog.LevelWarn
		attrs = append(attrs, msgIDKey, MsgHandlerFailed)
	}
	p.log.Log(context.Background(), level, res.message(j), attrs...)
	if p.onRun != nil {
		p.onRun(RunOutcome{Handler: name, Event: j.ev.typ, Outcome: res.outcome(), Duration: res.duration})
	}
	return res
}

// execute starts the script, feeds it, captures its output, enforces the
// deadline and reaps it.
func (p *Pool) execute(j *job) runResult {
	name := j.h.name
	res := runResult{exitStatus: -1}

	outR, outW, err := os.Pipe()
	if err != nil {
		res.err = fmt.Errorf("create stdout pipe: %w", err)
		return res
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		res.err = fmt.Errorf("create stderr pipe: %w", err)
		return res
	}

	cmd, err := p.start(j, outW, errW)
	outW.Close() // the child has its own copies
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		res.err = fmt.Errorf("start %s: %w", j.path, err)
		return res
	}
	res.started = true
	pgid := cmd.Process.Pid // Setpgid: the group is named after the leader

	stdout := &capture{log: p.log, handler: name, event: j.ev.desc, stream: "stdout", limit: p.outputLimit}
	if j.ev.respond != nil {
		stdout.keep = p.responseLimit
	}
	stderr := &capture{log: p.log, handler: name, event: j.ev.desc, stream: "stderr", limit: p.outputLimit}
	drained := make(chan struct{}, 2)
	go func() { stdout.drain(outR); drained <- struct{}{} }()
	go func() { stderr.drain(errR); drained <- struct{}{} }()

	done := make(chan struct{})
	stopped := make(chan stopReason, 1)
	go func() { stopped <- p.watchdog(j, pgid, done) }()

	waitErr := cmd.Wait()
	p.awaitOutput(j, pgid, drained, outR, errR)
	close(done)
	reason := <-stopped
	signaled := false
	if st := cmd.ProcessState; st != nil {
		ws, _ := st.Sys().(syscall.WaitStatus)
		if signaled = ws.Signaled(); signaled {
			res.signal = signalName(ws.Signal())
		} else {
			res.exitStatus = ws.ExitStatus()
		}
	}
	switch reason {
	case stoppedAtDeadline:
		res.timedOut = true
	case stoppedAtShutdown:
		// Interrupted only if the signal ended it: a script that exited by
		// itself as the drain ran out (the signal raced its exit, or it
		// trapped the signal and finished) is done, and must not run again.
		res.timedOut, res.interrupted = signaled, signaled
	}
	var exitErr *exec.ExitError
	if waitErr != nil && !errors.As(waitErr, &exitErr) {
		res.err = fmt.Errorf("wait for %s: %w", j.path, waitErr)
	}
	stdout.reportTruncation()
	stderr.reportTruncation()
	if j.ev.respond != nil && !res.failed() && len(stdout.body) > 0 {
		p.respond(j, stdout)
	}
	return res
}

// Starting a script that was just written can fail with ETXTBSY ("text
// file busy") for as long as some process still has it open for writing:
// a package manager or `cp` finishing the file, or a writer's descriptor
// inherited by a process forked at that moment and not yet exec'd. The
// start is retried startRetries times, waiting startBackoff, then twice as
// long each time (10ms to 160ms, 310ms in all), before the run fails.
const (
	startRetries = 5
	startBackoff = 10 * time.Millisecond
)

// start starts j's script with stdout and stderr on the given pipe ends,
// retrying while it is busy being written. Each attempt gets a fresh
// exec.Cmd, as one that failed to start may not be started again.
func (p *Pool) start(j *job, stdout, stderr *os.File) (*exec.Cmd, error) {
	backoff := startBackoff
	for attempt := 1; ; attempt++ {
		// Output goes to pipes we own (not to writers os/exec would copy),
		// so that Wait returns when the main process exits and awaitOutput
		// decides what to do about a child still holding them. stdin is a
		// reader: os/exec writes it from its own goroutine and closes it,
		// and WaitDelay bounds that goroutine if a child keeps stdin open
		// unread.
		cmd := exec.Command(j.path)
		if j.command != "" {
			cmd = exec.Command(shell, "-c", j.command)
		}
		cmd.Dir = "/"
		cmd.Env = scriptEnv(p.path, j.env, j.ev.env, j.h.name, j.attempt)
		if len(j.ev.stdin) > 0 {
			cmd.Stdin = bytes.NewReader(j.ev.stdin)
		}
		cmd.Stdout, cmd.Stderr = stdout, stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.WaitDelay = exitDelay

		err := cmd.Start()
		if err == nil || !errors.Is(err, syscall.ETXTBSY) || attempt > startRetries {
			return cmd, err
		}
		p.log.Debug(fmt.Sprintf("handler %s: file busy being written; retrying the start in %s%s",
			j.h.name, humanDuration(backoff), runEvent(j)),
			"HANDLER", j.h.name, "FILE", j.path, "ATTEMPT", attempt, "BACKOFF_MS", backoff.Milliseconds())
		wait := time.NewTimer(backoff)
		<-wait.C // bounded: 310ms over all the retries
		backoff *= 2
	}
}

// respond sends a query handler's stdout as the query's response. Only
// stdout is the response; stderr went to the journal.
func (p *Pool) respond(j *job, stdout *capture) {
	attrs := []any{"HANDLER", j.h.name, "SERF_QUERY_NAME", j.ev.queryName, "RESPONSE_BYTES", len(stdout.body)}
	what := fmt.Sprintf("handler %s's response to query %s (%d bytes)", j.h.name, j.ev.queryName, len(stdout.body))
	if stdout.over > 0 {
		p.log.Warn(fmt.Sprintf("%s not sent: its stdout went %d bytes past the response limit of %d bytes", what, stdout.over, stdout.keep),
			append(attrs, "BYTES_DROPPED", stdout.over, "RESPONSE_LIMIT", stdout.keep, msgIDKey, MsgQueryResponseNotSent)...)
		return
	}
	if err := j.ev.respond(stdout.body); err != nil {
		p.log.Warn(what+" not sent: "+err.Error(), append(attrs, "ERROR", err.Error(), msgIDKey, MsgQueryResponseNotSent)...)
		return
	}
	p.log.Info(what+" sent", attrs...)
}

// awaitOutput waits for both output readers to see end of file, at most
// exitDelay after the main process exited. A process still holding a pipe
// then is a leftover: the group is SIGKILLed and the pipes are closed, which
// also frees the readers if the holder escaped the group.
func (p *Pool) awaitOutput(j *job, pgid int, drained <-chan struct{}, pipes ...*os.File) {
	t := time.NewTimer(exitDelay)
	defer t.Stop()
	for n := len(pipes); n > 0; {
		select {
		case <-drained:
			n--
		case <-t.C:
			p.log.Warn(fmt.Sprintf("handler %s exited but left processes holding its output; killing its process group%s",
				j.h.name, runEvent(j)),
				"HANDLER", j.h.name, "PGID", pgid)
			signalGroup(pgid, syscall.SIGKILL)
			for _, f := range pipes {
				f.Close()
			}
		}
	}
}

// stopReason says why the watchdog stopped a script, if it did.
type stopReason int

const (
	notStopped stopReason = iota
	stoppedAtDeadline
	stoppedAtShutdown // the drain after Close was over
)

// watchdog enforces j's deadline until done is closed: SIGTERM to the
// process group at the deadline (or when the drain after Close is over),
// SIGKILL after the kill grace. It reports whether and why the script was
// stopped.
func (p *Pool) watchdog(j *job, pgid int, done <-chan struct{}) stopReason {
	name := j.h.name
	t := time.NewTimer(j.timeout)
	defer t.Stop()
	reason := stoppedAtDeadline
	select {
	case <-done:
		return notStopped
	case <-t.C:
		p.log.Warn(fmt.Sprintf("handler %s timed out: still running at its %s deadline; sending SIGTERM%s",
			name, humanDuration(j.timeout), runEvent(j)),
			"HANDLER", name, "TIMEOUT", j.timeout.String(), msgIDKey, MsgHandlerTimedOut)
	case <-p.drainOver:
		reason = stoppedAtShutdown
		// A spooled run stopped here is not marked done: it runs again
		// at the next start.
		p.log.Warn(fmt.Sprintf("handler %s still running at shutdown, %s after the stop began; sending SIGTERM%s",
			name, humanDuration(p.drainTimeout), runEvent(j)), "HANDLER", name,
			"DRAIN_TIMEOUT", p.drainTimeout.String(), "RUNS_AGAIN_AT_START", j.seq != 0)
	}
	signalGroup(pgid, syscall.SIGTERM)

	t.Reset(p.killGrace)
	select {
	case <-done:
		return reason
	case <-t.C:
	}
	p.log.Warn(fmt.Sprintf("handler %s still running %s after SIGTERM; sending SIGKILL%s",
		name, humanDuration(p.killGrace), runEvent(j)), "HANDLER", name, "KILL_GRACE", p.killGrace.String())
	signalGroup(pgid, syscall.SIGKILL)
	<-done
	return reason
}

// signalGroup signals every process of the group. ESRCH (the group is
// already gone) is the expected way for this to fail and is not reported.
func signalGroup(pgid int, sig syscall.Signal) {
	_ = syscall.Kill(-pgid, sig)
}

// signalName is the conventional name of the signals a handler is likely to
// die of, and SIG<number> otherwise.
func signalName(sig syscall.Signal) string {
	switch sig {
	case syscall.SIGHUP:
		return "SIGHUP"
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGQUIT:
		return "SIGQUIT"
	case syscall.SIGILL:
		return "SIGILL"
	case syscall.SIGTRAP:
		return "SIGTRAP"
	case syscall.SIGABRT:
		return "SIGABRT"
	case syscall.SIGBUS:
		return "SIGBUS"
	case syscall.SIGFPE:
		return "SIGFPE"
	case syscall.SIGKILL:
		return "SIGKILL"
	case syscall.SIGUSR1:
		return "SIGUSR1"
	case syscall.SIGSEGV:
		return "SIGSEGV"
	case syscall.SIGUSR2:
		return "SIGUSR2"
	case syscall.SIGPIPE:
		return "SIGPIPE"
	case syscall.SIGALRM:
		return "SIGALRM"
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGXCPU:
		return "SIGXCPU"
	case syscall.SIGXFSZ:
		return "SIGXFSZ"
	case syscall.SIGSYS:
		return "SIGSYS"
	}
	return fmt.Sprintf("SIG%d", int(sig))
}

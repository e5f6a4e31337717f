package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/serfd/serfd/ctl"
)

// eventCPUEvents is how many user events BenchmarkEventCPU streams.
const eventCPUEvents = 3000

// procTimes is a process's CPU time from /proc/PID/stat: its own (user and
// system) and that of its children it waited for (the handler runs).
type procTimes struct{ self, children time.Duration }

// readProcTimes reads pid's CPU times from /proc/PID/stat.
func readProcTimes(b *testing.B, pid int) procTimes {
	b.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// The fields after the command name (in parentheses, which may hold
	// spaces): state is field 3, utime..cstime are fields 14..17.
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	tick := func(i int) time.Duration {
		n, err := strconv.ParseInt(f[i-3], 10, 64)
		if err != nil {
			b.Fatalf("/proc/%d/stat field %d: %v", pid, i, err)
		}
		return time.Duration(n) * time.Second / clockTicks
	}
	return procTimes{self: tick(14) + tick(15), children: tick(16) + tick(17)}
}

// BenchmarkEventCPU: what a stream of user events costs the node that
// receives them. Two release serfd on loopback, log level info, each with
// a snapshot and so a run spool (as packaged); one sends
// eventCPUEvents user events through its control socket as fast as it
// accepts them (a busy refusal is retried), the other receives them and runs
// one handler per event (a #!/bin/sh script appending the payload to a
// file). Reported: the receiver's own CPU per 1,000 events (ms-cpu/1k-events,
// serfd alone: gossip, delivery, dispatch, journal), its handler children's
// (ms-cpu-handlers/1k-events), and the receive rate. With
// SERFD_BENCH_PROFILE=FILE the receiver's CPU profile over the stream
// (the first 30 s, from /debug/pprof/profile) is written to FILE. With
// SERFD_BENCH_BASELINE=REV the serfd of git revision REV runs the same
// stream after the current one, as a second sub-benchmark.
func BenchmarkEventCPU(b *testing.B) {
	releaseBinaries(b)
	binaries := []struct{ name, path string }{{"serfd=current", bin.serfd}}
	if rev := os.Getenv(eventCPUBaselineEnv); rev != "" {
		binaries = append(binaries, struct{ name, path string }{"serfd=" + rev, buildRevision(b, rev)})
	}
	for _, sd := range binaries {
		b.Run(sd.name, func(b *testing.B) {
			saved := bin.serfd
			bin.serfd = sd.path
			defer func() { bin.serfd = saved }()
			for b.Loop() {
				eventCPURun(b)
			}
		})
	}
}

// eventCPUBaselineEnv names a git revision whose serfd BenchmarkEventCPU
// measures too, beside the current one, e.g. the revision before a change
// to the per-event path.
const eventCPUBaselineEnv = "SERFD_BENCH_BASELINE"

// buildRevision builds the serfd of git revision rev of this repository
// (from `git archive`, so no work tree changes) and returns its path.
func buildRevision(b *testing.B, rev string) string {
	b.Helper()
	top, err := osexec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		b.Fatalf("%s=%s needs the git repository: %v", eventCPUBaselineEnv, rev, err)
	}
	src := b.TempDir()
	archive := osexec.Command("sh", "-c", `git -C "$1" archive "$2" | tar -x -C "$3"`, "sh", strings.TrimSpace(string(top)), rev, src)
	if out, err := archive.CombinedOutput(); err != nil {
		b.Fatalf("git archive %s: %v\n%s", rev, err, out)
	}
	path := filepath.Join(b.TempDir(), "serfd")
	build := osexec.Command("go", "build", "-trimpath", "-o", path, "./daemon/serfd")
	build.Dir = src
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build serfd of %s: %v\n%s", rev, err, out)
	}
	notRace(b, path)
	return path
}

// eventCPURun is one run of BenchmarkEventCPU with the serfd at bin.serfd.
func eventCPURun(b *testing.B) {
	b.Helper()
	// A snapshot, as packaged: runs past the handler queue then wait
	// in the spool beside it instead of being dropped.
	sender := startNodeWithSocket(b, "cpu-s", "127.0.0.71", "", fmt.Sprintf("snapshot_path = %q", filepath.Join(b.TempDir(), "snap")))
	recv := startNodeWithSocket(b, "cpu-r", "127.0.0.72", "", fmt.Sprintf("join = [%q]", sender.addr),
		fmt.Sprintf("snapshot_path = %q", filepath.Join(b.TempDir(), "snap")))
	for _, n := range []*node{sender, recv} {
		cfg := strings.Replace(readFile(n.configPath()), `level = "debug"`, `level = "info"`, 1)
		if err := os.WriteFile(n.configPath(), []byte(cfg), 0o644); err != nil {
			b.Fatal(err)
		}
		if _, errOut, code := n.ctl(b, "reload"); code != 0 {
			b.Fatalf("%s: serfctl reload = exit %d, %s", n.name, code, errOut)
		}
	}
	waitLines := func(want int, within time.Duration) {
		deadline := time.Now().Add(within)
		for countLines(recv.memFile, "cpu-") < want {
			if time.Now().After(deadline) {
				b.Fatalf("%s ran %d of %d handler runs within %s", recv.name, countLines(recv.memFile, "cpu-"), want, within)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	client := ctl.NewClient(sender.socket)
	send := func(i int) {
		for {
			_, err := client.Event(context.Background(), ctl.EventRequest{Name: "memresponse", Payload: []byte(fmt.Sprintf("cpu-%05d\n", i))})
			var se *ctl.Error
			if err == nil {
				return
			}
			if !errors.As(err, &se) || se.Status != http.StatusServiceUnavailable {
				b.Fatalf("event %d: %v", i, err)
			}
			time.Sleep(10 * time.Millisecond) // the backlog drains at gossip's pace
		}
	}
	// Warm up: the join and the first runs are not the stream.
	send(0)
	waitLines(1, time.Minute)

	var profile chan error
	if path := os.Getenv("SERFD_BENCH_PROFILE"); path != "" {
		profile = make(chan error, 1)
		go func() { profile <- fetchProfile(recv.socket, path, 30) }()
	}
	before := readProcTimes(b, recv.proc.Pid())
	start := time.Now()
	for i := 1; i <= eventCPUEvents; i++ {
		send(i)
	}
	// Every run, or as many as came before the runs stood still for 30 s
	// (a serfd that loses events: the baseline may).
	took, ran := waitCount(func() int { return countLines(recv.memFile, "cpu-") }, eventCPUEvents+1, start, 5*time.Minute, 30*time.Second)
	if took < 0 {
		took = time.Since(start) - 30*time.Second
	}
	handled := ran - 1 // the warm-up event is not the stream's
	after := readProcTimes(b, recv.proc.Pid())
	if profile != nil {
		if err := <-profile; err != nil {
			b.Error(err)
		}
	}
	// CPU per 1,000 events handled; the events lost are reported apart.
	per := func(d time.Duration) float64 {
		return float64(d) / float64(time.Millisecond) * 1000 / float64(max(handled, 1))
	}
	b.ReportMetric(per(after.self-before.self), "ms-cpu/1k-events")
	b.ReportMetric(per(after.children-before.children), "ms-cpu-handlers/1k-events")
	b.ReportMetric(float64(handled)/took.Seconds(), "events/s")
	b.ReportMetric(float64(eventCPUEvents-handled), "lost-events")
	sender.proc.Kill()
	recv.proc.Kill()
}

// fetchProfile writes the CPU profile of the serfd at socket over the next
// seconds to path.
func fetchProfile(socket, path string, seconds int) error {
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}}}
	resp, err := c.Get(fmt.Sprintf("http://serfd%sprofile?seconds=%d", ctl.PathPprof, seconds))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("profile: %s %s", resp.Status, msg)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/serfd/serfd/internal/testutil"
)

// hungEvents is how many user events BenchmarkHungHandler sends.
const hungEvents = 20

const (
	// hangScript records its PID for the clean-up, then never returns.
	hangScript = "#!/bin/sh\necho $$ >> %s\nexec sleep 3600\n"
	// appendScript appends each user event's payload as a line.
	appendScript = "#!/bin/sh\n[ \"$SERF_EVENT\" = user ] || exit 0\nprintf '%%s\\n' \"$(cat)\" >> %s\n"
)

// hungWork makes the files of one BenchmarkHungHandler run: the PID file
// the hung handler writes and the file the other appends to. Every PID in
// the PID file is killed at clean-up, since neither implementation kills its
// handlers when it is itself killed; call it before starting the node, so
// that this clean-up runs after the node's (no new run can start then).
func hungWork(b *testing.B) (pids, out string) {
	b.Helper()
	dir := b.TempDir()
	pids, out = filepath.Join(dir, "hang.pids"), filepath.Join(dir, "append.out")
	b.Cleanup(func() {
		for _, f := range strings.Fields(readFile(pids)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	return pids, out
}

// writeHungHandlers writes the two handlers into dir as a-hang and
// b-append (stock Serf runs them in that order), each under a dotfile
// name first and then renamed, so that serfd never runs a half-written
// script.
func writeHungHandlers(b *testing.B, dir, pids, out string) {
	b.Helper()
	for name, body := range map[string]string{"a-hang": fmt.Sprintf(hangScript, pids), "b-append": fmt.Sprintf(appendScript, out)} {
		tmp := filepath.Join(dir, "."+name)
		if err := os.WriteFile(tmp, []byte(body), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			b.Fatal(err)
		}
	}
}

// hungRun sends hungEvents user events through cli and waits until the
// appending handler has written them all to out, or limit passes. It
// returns the time from the first send, or -1 at the limit, and how many
// events the handler had seen.
func hungRun(b *testing.B, cli func(testing.TB, ...string) (string, string, int), eventArgs func(name, payload string) []string, out string, limit time.Duration) (time.Duration, int) {
	b.Helper()
	const prefix = "ev-"
	start := time.Now()
	sendEvents(b, cli, eventArgs, "bench", prefix, hungEvents)
	return waitLines(out, prefix, hungEvents, start, limit, limit)
}

// reportHung reports the mean time of the runs, or -1 if any run hit the
// limit, and how many events the last run's appending handler saw.
func reportHung(b *testing.B, runs []time.Duration, handled int, limit time.Duration) {
	var sum time.Duration
	for _, d := range runs {
		if d < 0 {
			b.Logf("the appending handler saw %d of %d events within %v: timeout", handled, hungEvents, limit)
			b.ReportMetric(-1, "ms/all-handled")
			b.ReportMetric(float64(handled), "handled")
			return
		}
		sum += d
	}
	b.ReportMetric(millis(sum)/float64(len(runs)), "ms/all-handled")
	b.ReportMetric(float64(handled), "handled")
}

// BenchmarkHungHandler: one node of each kind with two handlers, one that
// never returns and one that appends the payload of user events to a file;
// 20 user events; the figure is the time from sending the first until the
// second handler has seen all 20. serfd runs handlers in parallel with a
// deadline (60s here, so the hung one is not killed during the
// measurement); stock Serf runs its event handlers one after the other,
// so it is capped at 20s and reported as -1 ("timeout").
func BenchmarkHungHandler(b *testing.B) {
	releaseBinaries(b)
	serf := testutil.SerfBin(b)
	kinds := benchKinds(b)

	b.Run("serfd", func(b *testing.B) {
		const limit = 30 * time.Second
		var runs []time.Duration
		handled := 0
		for b.Loop() {
			pids, out := hungWork(b)
			n := startNodeWithSocket(b, fmt.Sprintf("hung-serfd-%d", len(runs)), "127.0.12.1", "",
				`handler "a-hang" { timeout = "60s" }`,
				`handler "memresponse" { events = ["user:memresponse"] }`)
			writeHungHandlers(b, filepath.Join(n.dir, "handlers.d"), pids, out)
			// serfd picks new scripts up asynchronously: warm up until both
			// have run, which also leaves the first one hung.
			testutil.Poll(b, 20*time.Second, "both handlers to run on a warm-up event", func() (bool, string) {
				if _, errOut, code := n.ctl(b, "event", "warmup", "warmup"); code != 0 {
					return false, errOut
				}
				return countLines(out, "warmup") > 0 && readFile(pids) != "", fmt.Sprintf("out %q, pids %q", readFile(out), readFile(pids))
			})
			var d time.Duration
			d, handled = hungRun(b, n.ctl, kinds[0].eventArgs, out, limit)
			if d < 0 {
				b.Errorf("serfd: the appending handler saw %d of %d events within %v; want all", handled, hungEvents, limit)
			}
			runs = append(runs, d)
			n.proc.Kill()
		}
		reportHung(b, runs, handled, limit)
	})

	b.Run("serf", func(b *testing.B) {
		const limit = 20 * time.Second
		var runs []time.Duration
		handled := 0
		for b.Loop() {
			pids, out := hungWork(b)
			dir := filepath.Dir(pids)
			writeHungHandlers(b, dir, pids, out)
			a := startStockArgs(b, serf, fmt.Sprintf("hung-serf-%d", len(runs)), "127.0.12.2",
				"-event-handler", filepath.Join(dir, "a-hang"), "-event-handler", filepath.Join(dir, "b-append"))
			// The agent's own member-join already hangs the first handler.
			testutil.Poll(b, 20*time.Second, "the hung handler to start", func() (bool, string) {
				return readFile(pids) != "", "no PID yet"
			})
			var d time.Duration
			d, handled = hungRun(b, a.run, kinds[1].eventArgs, out, limit)
			runs = append(runs, d)
			a.proc.Kill()
		}
		reportHung(b, runs, handled, limit)
	})
}

// benchEventsEnv sets how many user events BenchmarkHandlerDispatch sends
// (default 200).
const benchEventsEnv = "SERFD_BENCH_EVENTS"

func benchEvents(b *testing.B) int {
	s := os.Getenv(benchEventsEnv)
	if s == "" {
		return 200
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 100000 {
		b.Fatalf("%s=%q: want a number of events in 1..100000", benchEventsEnv, s)
	}
	return n
}

// BenchmarkHandlerDispatch: one node of each kind whose handler appends
// the payload of each user event named dispatch to a file; E user events
// (SERFD_BENCH_EVENTS, default 200), sent one CLI run after the other as
// fast as that goes (a process start per event for both kinds; the time
// is reported as ms/send-all). The figure is the time from the first send
// until the file has E lines: events/s-handled is E over that time, and
// ms/all-handled the time itself; ms/after-last-send is the part of it
// after the last CLI run returned (with one CLI start per event the sending
// is the bottleneck, and this is the backlog left). handled is how many lines the handler
// wrote; if it stops short (events dropped on the way) the run ends 10s
// after the count last grew, events/s-handled is counted over the time
// until then and ms/all-handled is -1. That is a failure for serfd and a
// figure for stock Serf.
func BenchmarkHandlerDispatch(b *testing.B) {
	releaseBinaries(b)
	events := benchEvents(b)
	const (
		prefix = "ev-"
		limit  = 5 * time.Minute
		stall  = 10 * time.Second
	)
	for i, kind := range benchKinds(b) {
		b.Run(fmt.Sprintf("%s-%d", kind.name, events), func(b *testing.B) {
			var send, all, drain time.Duration
			var handled, iters int
			var rate float64
			for b.Loop() {
				work := b.TempDir()
				out := filepath.Join(work, "dispatch.out")
				p := kind.startScript(b, fmt.Sprintf("dispatch-%s-%d", kind.name, iters),
					fmt.Sprintf("127.0.14.%d", i+1), work, "dispatch", fmt.Sprintf(appendScript, out))
				start := time.Now()
				sent := sendEvents(b, p.cli, kind.eventArgs, "dispatch", prefix, events)
				send += sent
				took, got := waitLines(out, prefix, events, start, limit, stall)
				p.kill()
				handled = got
				if took < 0 {
					took = time.Since(start) - stall // until the count last grew, to a poll
					all = -1
					if kind.name == "serfd" {
						b.Errorf("serfd handled %d of %d events; want all", got, events)
					}
					b.Logf("%s handled %d of %d events; the count stopped growing %v after the first send",
						kind.name, got, events, took.Round(time.Millisecond))
				} else if all >= 0 {
					all += took
					drain += took - sent
				}
				if took > 0 {
					rate += float64(got) / took.Seconds()
				}
				iters++
			}
			k := float64(iters)
			b.ReportMetric(millis(send)/k, "ms/send-all")
			if all < 0 {
				b.ReportMetric(-1, "ms/all-handled")
			} else {
				b.ReportMetric(millis(all)/k, "ms/all-handled")
				b.ReportMetric(millis(drain)/k, "ms/after-last-send")
			}
			b.ReportMetric(rate/k, "events/s-handled")
			b.ReportMetric(float64(handled), "handled")
		})
	}
}

// startLatencyRuns is how many events BenchmarkEventToHandlerStart times
// per iteration and kind, after one untimed warm-up event.
const startLatencyRuns = 20

// stampScript's first line appends the time it starts, in nanoseconds since
// the epoch, to a file.
const stampScript = "#!/bin/sh\ndate +%%s%%N >> %s\ncat > /dev/null\n"

// BenchmarkEventToHandlerStart: on one node of each kind, the time from
// starting `serfctl event stamp N` (resp. `serf event -coalesce=false
// stamp N`) until the local handler's first line runs and writes `date
// +%s%N`. The time is taken just before the CLI process is started, so it
// includes its start, the request, the event's delivery to the handler
// dispatch and the handler's own start (with `date`'s). Events go one at a
// time: the next is sent once the previous one's stamp is written.
// Reported: the median (ms/p50), the worst (ms/max) and the mean
// (ms/event-to-handler) of startLatencyRuns events per iteration.
func BenchmarkEventToHandlerStart(b *testing.B) {
	releaseBinaries(b)
	for i, kind := range benchKinds(b) {
		b.Run(kind.name, func(b *testing.B) {
			var lat []time.Duration
			iters := 0
			for b.Loop() {
				work := b.TempDir()
				out := filepath.Join(work, "stamps")
				p := kind.startScript(b, fmt.Sprintf("stamp-%s-%d", kind.name, iters),
					fmt.Sprintf("127.0.15.%d", i+1), work, "stamp", fmt.Sprintf(stampScript, out))
				for n := range startLatencyRuns + 1 {
					sent := time.Now().UnixNano()
					if _, errOut, code := p.cli(b, kind.eventArgs("stamp", strconv.Itoa(n))...); code != 0 {
						b.Fatalf("%s event stamp %d = exit %d, %q; want exit 0", kind.name, n, code, errOut)
					}
					var stamps []string
					testutil.Poll(b, 20*time.Second, fmt.Sprintf("stamp %d in %s", n+1, out), func() (bool, string) {
						stamps = strings.Fields(readFile(out))
						return len(stamps) > n, fmt.Sprintf("%d stamps", len(stamps))
					})
					if n == 0 {
						continue // warm-up
					}
					at, err := strconv.ParseInt(stamps[n], 10, 64)
					if err != nil {
						b.Fatalf("stamp %d = %q; want nanoseconds: %v", n+1, stamps[n], err)
					}
					lat = append(lat, time.Duration(at-sent))
				}
				p.kill()
				iters++
			}
			slices.Sort(lat)
			var sum time.Duration
			for _, d := range lat {
				sum += d
			}
			b.Logf("%s: event to handler start over %d events: %v", kind.name, len(lat), lat)
			b.ReportMetric(millis(lat[len(lat)/2]), "ms/p50")
			b.ReportMetric(millis(lat[len(lat)-1]), "ms/max")
			b.ReportMetric(millis(sum)/float64(len(lat)), "ms/event-to-handler")
		})
	}
}

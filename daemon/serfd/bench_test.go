package main

// Benchmarks of serfd side by side with stock HashiCorp Serf, run by
// `make bench`. Every scenario runs for both implementations in the same
// run, as sub-benchmarks named after them, on real processes on loopback,
// and reports its figures as custom metrics. For the scenario benchmarks
// (BenchmarkCluster, BenchmarkHungHandler) ns/op includes starting the
// processes and is not the figure; the ms/... metrics are.

import (
	"fmt"
	"net"
	"os"
	osexec "os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// benchNodesEnv sets the cluster size of BenchmarkCluster (default 10).
const benchNodesEnv = "SERFD_BENCH_NODES"

func benchNodes(b *testing.B) int {
	s := os.Getenv(benchNodesEnv)
	if s == "" {
		return 10
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 2 || n > 250 {
		b.Fatalf("%s=%q: want a number of nodes in 2..250", benchNodesEnv, s)
	}
	return n
}

// releaseBinaries points bin at serfd and serfctl built without -race for
// the rest of the benchmark: TestMain builds them with -race for the tests,
// which would make serfd's figures incomparable with stock Serf's.
func releaseBinaries(b *testing.B) {
	b.Helper()
	dir := b.TempDir()
	saved := bin
	b.Cleanup(func() { bin = saved })
	for pkg, out := range map[string]*string{".": &bin.serfd, "../../ctl/serfctl": &bin.serfctl} {
		*out = filepath.Join(dir, filepath.Base(*out))
		if msg, err := osexec.Command("go", "build", "-o", *out, pkg).CombinedOutput(); err != nil {
			b.Fatalf("build %s: %v\n%s", pkg, err, msg)
		}
	}
}

// benchPeer is one process of a benchmark cluster, of either kind.
type benchPeer struct {
	observer
	name    string
	addr    string // gossip address, ip:port
	proc    *osexec.Cmd
	exited  chan struct{}
	handled string // the file the memresponse handler appends the payload to
	// cli runs the implementation's CLI against this peer.
	cli func(tb testing.TB, args ...string) (stdout, stderr string, code int)
}

// kill sends SIGKILL to the peer's process, unless it already exited (its
// PID may be another process's by now), and waits for it to exit.
func (p *benchPeer) kill() { killProc(p.proc, p.exited) }

func killProc(cmd *osexec.Cmd, exited chan struct{}) {
	select {
	case <-exited:
	default:
		_ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}
}

// benchKind is one implementation under comparison.
type benchKind struct {
	name   string // "serfd" or "serf"
	subnet int    // its peers live on 127.0.<subnet>.1...
	// start starts one peer; work is a directory of this cluster's own.
	start func(b *testing.B, name, ip, work string) *benchPeer
	// startScript starts one peer whose handler script (a whole #!/bin/sh
	// file) runs for user events named event and for nothing else.
	startScript func(b *testing.B, name, ip, work, event, script string) *benchPeer
	// eventArgs are the CLI arguments that send an uncoalesced user event.
	eventArgs func(name, payload string) []string
}

// benchKinds returns serfd and stock Serf, in that order. The memresponse
// handler of both appends the payload of user events named memresponse to
// a file of the peer's own and runs for nothing else, so that no member
// event competes with it for the handler queue.
func benchKinds(b *testing.B) []benchKind {
	serf := serfBin(b)
	return []benchKind{
		{
			name:   "serfd",
			subnet: 10,
			start: func(b *testing.B, name, ip, _ string) *benchPeer {
				n := startNodeWithSocket(b, name, ip, "", `profile = "local"`,
					`handler "memresponse" { events = ["user:memresponse"] }`)
				return &benchPeer{observer: n, name: name, addr: n.addr, proc: n.cmd, exited: n.exited,
					handled: n.memFile, cli: n.ctl}
			},
			// The node's own memresponse handler is kept to user events
			// named memresponse; the script is a handler of the event's name.
			startScript: func(b *testing.B, name, ip, _, event, script string) *benchPeer {
				n := startNodeWithSocket(b, name, ip, "", `profile = "local"`,
					`handler "memresponse" { events = ["user:memresponse"] }`,
					fmt.Sprintf(`handler %q { events = ["user:%s"] }`, event, event))
				n.addHandler(b, event, script)
				return &benchPeer{observer: n, name: name, addr: n.addr, proc: n.cmd, exited: n.exited, cli: n.ctl}
			},
			eventArgs: func(name, payload string) []string { return []string{"event", name, payload} },
		},
		{
			name:   "serf",
			subnet: 11,
			start: func(b *testing.B, name, ip, work string) *benchPeer {
				handled := filepath.Join(work, name+".mem")
				p := stockScript(b, serf, name, ip, work, "memresponse", "#!/bin/sh\ncat >> "+handled+"\n")
				p.handled = handled
				return p
			},
			startScript: func(b *testing.B, name, ip, work, event, script string) *benchPeer {
				return stockScript(b, serf, name, ip, work, event, script)
			},
			eventArgs: func(name, payload string) []string {
				return []string{"event", "-coalesce=false", name, payload}
			},
		},
	}
}

// stockScript starts a stock Serf agent whose one event handler, script
// written to a file in work, runs for user events named event.
func stockScript(b *testing.B, serf, name, ip, work, event, script string) *benchPeer {
	b.Helper()
	handler := filepath.Join(work, name+"-"+event+".sh")
	if err := os.WriteFile(handler, []byte(script), 0o755); err != nil {
		b.Fatal(err)
	}
	a := startStockArgs(b, serf, name, ip, "-event-handler", "user:"+event+"="+handler)
	return &benchPeer{observer: a, name: name, addr: a.addr, proc: a.cmd, exited: a.exited, cli: a.run}
}

// waitEach polls every peer until ok holds for it and returns the time from
// start until the last one did, rounded up to the end of a sweep over the
// peers still pending. A peer is not polled again once ok held for it.
func waitEach(b *testing.B, start time.Time, timeout time.Duration, what string, peers []*benchPeer, ok func(*benchPeer) (bool, string)) time.Duration {
	b.Helper()
	pending := append([]*benchPeer(nil), peers...)
	var took time.Duration
	waitFor(b, timeout, what, func() (bool, string) {
		var state string
		rest := pending[:0]
		for _, p := range pending {
			if done, st := ok(p); !done {
				rest = append(rest, p)
				state = p.name + ": " + st
			}
		}
		pending = rest
		took = time.Since(start)
		return len(pending) == 0, fmt.Sprintf("%d peers pending; last: %s", len(pending), state)
	})
	return took
}

// countStatus is how many members p lists with status, and p's listing on error.
func countStatus(b *testing.B, p *benchPeer, status string) (int, string) {
	ms, out := p.members(b)
	if ms == nil {
		return -1, out
	}
	n := 0
	for _, m := range ms {
		if m.Status == status {
			n++
		}
	}
	return n, fmt.Sprintf("%d %s of %d", n, status, len(ms))
}

// clusterFigures are the timings of one BenchmarkCluster scenario.
type clusterFigures struct {
	join, converge, spread, detect time.Duration // join: the mean of one join command
}

// joinPace is the spacing of the joins in BenchmarkCluster, the same for
// both kinds. How fast memberlist converges depends on it, and the CLIs
// differ in speed: with joins under ~10ms apart the alive gossip of the
// newcomers overlaps and 50 nodes converge in about a second; from ~30ms
// apart, with the local profile's RetransmitMult of 2, a few nodes miss a
// few newcomers and only learn them at their next push/pull (every 30s at
// 50 nodes). That holds for stock Serf's library and serfd's gossip alike.
// 50ms stands for nodes that boot one after the other.
const joinPace = 50 * time.Millisecond

// runCluster starts n peers of kind, joins each to the first with the
// CLI, one every joinPace, and measures: from the return of the last join
// until every peer lists n alive; from sending a user event on the first
// peer until the handler ran on all n; from kill -9 of the last peer until
// all the others list it failed.
func runCluster(b *testing.B, kind benchKind, n, iter int) clusterFigures {
	b.Helper()
	work := b.TempDir()
	peers := make([]*benchPeer, n)
	for i := range peers {
		peers[i] = kind.start(b, fmt.Sprintf("%s-%d", kind.name, i), fmt.Sprintf("127.0.%d.%d", kind.subnet, i+1), work)
	}
	defer func() {
		for _, p := range peers {
			p.kill()
		}
	}()
	seed := peers[0]
	var f clusterFigures

	pace := time.NewTicker(joinPace)
	defer pace.Stop()
	for i, p := range peers[1:] {
		if i > 0 {
			<-pace.C
		}
		start := time.Now()
		if _, errOut, code := p.cli(b, "join", seed.addr); code != 0 {
			b.Fatalf("%s join %s = exit %d, %q; want exit 0", p.name, seed.addr, code, errOut)
		}
		f.join += time.Since(start)
	}
	f.join /= time.Duration(n - 1)
	start := time.Now()
	f.converge = waitEach(b, start, 3*time.Minute, fmt.Sprintf("every peer to list %d alive", n), peers,
		func(p *benchPeer) (bool, string) {
			alive, state := countStatus(b, p, "alive")
			return alive == n, state
		})

	payload := fmt.Sprintf("bench-%d", iter)
	start = time.Now()
	if _, errOut, code := seed.cli(b, kind.eventArgs("memresponse", payload)...); code != 0 {
		b.Fatalf("%s event memresponse = exit %d, %q; want exit 0", seed.name, code, errOut)
	}
	f.spread = waitEach(b, start, 3*time.Minute, "the handler to run on every peer", peers,
		func(p *benchPeer) (bool, string) {
			got := readFile(p.handled)
			return strings.Contains(got, payload), fmt.Sprintf("%q", got)
		})

	victim := peers[n-1]
	start = time.Now()
	victim.kill()
	f.detect = waitEach(b, start, 3*time.Minute, "every other peer to list "+victim.name+" failed", peers[:n-1],
		func(p *benchPeer) (bool, string) {
			ms, out := p.members(b)
			return ms != nil && ms[victim.name].Status == "failed", out
		})
	return f
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkCluster: a cluster of SERFD_BENCH_NODES (default 10) processes
// with profile "local": the latency of one join command, convergence, user
// event spread to the handlers, and failure detection after kill -9. The
// figures are observed the same way for both kinds, by sweeps of CLI
// `members` runs (or handler file reads) every 50ms, so they are upper
// bounds by up to a sweep; event-spread includes the CLI run that sends it.
func BenchmarkCluster(b *testing.B) {
	releaseBinaries(b)
	n := benchNodes(b)
	for _, kind := range benchKinds(b) {
		b.Run(fmt.Sprintf("%s-%d", kind.name, n), func(b *testing.B) {
			var sum clusterFigures
			iters := 0
			for b.Loop() {
				f := runCluster(b, kind, n, iters)
				sum.join += f.join
				sum.converge += f.converge
				sum.spread += f.spread
				sum.detect += f.detect
				iters++
				b.Logf("%s, %d nodes: join %v, converged %v after the last join, event on all handlers %v, failure seen by all %v",
					kind.name, n, f.join.Round(time.Millisecond/10), f.converge.Round(time.Millisecond),
					f.spread.Round(time.Millisecond), f.detect.Round(time.Millisecond))
			}
			k := float64(iters)
			b.ReportMetric(millis(sum.join)/k, "ms/join")
			b.ReportMetric(millis(sum.converge)/k, "ms/converge")
			b.ReportMetric(millis(sum.spread)/k, "ms/event-spread")
			b.ReportMetric(millis(sum.detect)/k, "ms/detect-failure")
		})
	}
}

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

// countLines counts the lines of path that start with prefix.
func countLines(path, prefix string) int {
	n := 0
	for line := range strings.Lines(readFile(path)) {
		if strings.HasPrefix(line, prefix) {
			n++
		}
	}
	return n
}

// startStockArgs starts a stock Serf agent with profile "local", like
// serfd's nodes here, and the event handlers and other agent flags in args
// (startStock takes exactly one handler, and the profile the interop test
// needs).
func startStockArgs(b *testing.B, serf, name, ip string, args ...string) *stockAgent {
	b.Helper()
	a := &stockAgent{name: name, bin: serf, logs: &syncBuffer{}, exited: make(chan struct{})}
	a.addr = net.JoinHostPort(ip, strconv.Itoa(freePort(b, ip)))
	a.rpc = net.JoinHostPort(ip, strconv.Itoa(freePort(b, ip)))
	full := append([]string{"agent", "-node", name, "-bind", a.addr, "-rpc-addr", a.rpc, "-profile", "local",
		"-log-level", "debug"}, args...)
	a.cmd = osexec.Command(serf, full...)
	a.cmd.Stdout, a.cmd.Stderr = a.logs, a.logs
	if err := a.cmd.Start(); err != nil {
		b.Fatalf("start stock serf %s: %v", name, err)
	}
	go func() { _ = a.cmd.Wait(); close(a.exited) }()
	b.Cleanup(func() {
		killProc(a.cmd, a.exited)
		if b.Failed() {
			b.Logf("logs of stock %s:\n%s", name, a.logs.String())
		}
	})
	waitFor(b, 20*time.Second, "stock "+name+" RPC", func() (bool, string) {
		_, errOut, code := a.run(b, "members")
		return code == 0, errOut
	})
	return a
}

// sendEvents sends n user events named name through cli, one CLI run after
// the other, with the payloads prefix00, prefix01, ..., and returns how
// long that took.
func sendEvents(b *testing.B, cli func(testing.TB, ...string) (string, string, int), eventArgs func(name, payload string) []string, name, prefix string, n int) time.Duration {
	b.Helper()
	start := time.Now()
	for i := range n {
		if _, errOut, code := cli(b, eventArgs(name, fmt.Sprintf("%s%02d", prefix, i))...); code != 0 {
			b.Fatalf("event %d = exit %d, %q; want exit 0", i, code, errOut)
		}
	}
	return time.Since(start)
}

// waitLines polls out every 5ms until it has n lines starting with prefix
// and returns the time from start until it saw them, and n. It gives up
// when limit has passed since start, or when the count has not grown for
// stall (events dropped on the way), and then returns -1 and the count.
func waitLines(out, prefix string, n int, start time.Time, limit, stall time.Duration) (time.Duration, int) {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	last, grew := -1, time.Now()
	for {
		got := countLines(out, prefix)
		now := time.Now()
		if got >= n {
			return now.Sub(start), got
		}
		if got != last {
			last, grew = got, now
		}
		if now.Sub(start) > limit || now.Sub(grew) > stall {
			return -1, got
		}
		<-tick.C
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
	serf := serfBin(b)
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
			waitFor(b, 20*time.Second, "both handlers to run on a warm-up event", func() (bool, string) {
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
			killProc(n.cmd, n.exited)
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
			waitFor(b, 20*time.Second, "the hung handler to start", func() (bool, string) {
				return readFile(pids) != "", "no PID yet"
			})
			var d time.Duration
			d, handled = hungRun(b, a.run, kinds[1].eventArgs, out, limit)
			runs = append(runs, d)
			killProc(a.cmd, a.exited)
		}
		reportHung(b, runs, handled, limit)
	})
}

// BenchmarkMembersRoundTrip: one exec of `serfctl members` against a
// single serfd node, against one of `serf members` against a single stock
// agent: process start, connect, request, response, text output.
func BenchmarkMembersRoundTrip(b *testing.B) {
	releaseBinaries(b)
	serf := serfBin(b)
	b.Run("serfctl", func(b *testing.B) {
		n := startNodeWithSocket(b, "rt-serfd", "127.0.13.1", "")
		for b.Loop() {
			if _, errOut, code := n.ctl(b, "members"); code != 0 {
				b.Fatalf("serfctl members = exit %d, %q; want exit 0", code, errOut)
			}
		}
	})
	b.Run("serf", func(b *testing.B) {
		a := startStockArgs(b, serf, "rt-serf", "127.0.13.2")
		for b.Loop() {
			if _, errOut, code := a.run(b, "members"); code != 0 {
				b.Fatalf("serf members = exit %d, %q; want exit 0", code, errOut)
			}
		}
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
					waitFor(b, 20*time.Second, fmt.Sprintf("stamp %d in %s", n+1, out), func() (bool, string) {
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

package main

// Benchmarks of serfd side by side with stock HashiCorp Serf, run by
// `make bench`. Every scenario runs for both implementations in the same
// run, as sub-benchmarks named after them, on real processes on loopback,
// and reports its figures as custom metrics. For the scenario benchmarks
// (BenchmarkScale, BenchmarkHungHandler) ns/op includes starting the
// processes and is not the figure; the ms/... metrics are.

import (
	"fmt"
	"net"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/serfd/serfd/internal/testutil"
)

// benchNodesEnv sets the cluster size of BenchmarkBurst (default 10).
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
		if msg, err := osexec.Command("go", "build", "-trimpath", "-o", *out, pkg).CombinedOutput(); err != nil {
			b.Fatalf("build %s: %v\n%s", pkg, err, msg)
		}
	}
	for _, path := range []string{bin.serfd, bin.serfctl, testutil.SerfBin(b)} {
		notRace(b, path)
	}
}

// notRace fails the benchmark if the Go binary at path was built with
// -race, as `go version -m` reports it.
func notRace(b *testing.B, path string) {
	b.Helper()
	out, err := osexec.Command("go", "version", "-m", path).Output()
	if err != nil {
		b.Fatalf("go version -m %s: %v", path, err)
	}
	for line := range strings.Lines(string(out)) {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "build" && f[1] == "-race=true" {
			b.Fatalf("%s is built with -race; benchmarks compare release builds", path)
		}
	}
}

// benchPeer is one process of a benchmark cluster, of either kind.
type benchPeer struct {
	observer
	name    string
	addr    string // gossip address, ip:port
	rpc     string // Serf's RPC address, ip:port ("" = none)
	proc    *testutil.Proc
	handled string // the file the memresponse handler appends the payload to
	// cli runs the implementation's CLI against this peer.
	cli func(tb testing.TB, args ...string) (stdout, stderr string, code int)
}

// kill sends SIGKILL to the peer's process, unless it already exited (its
// PID may be another process's by now), and waits for it to exit.
func (p *benchPeer) kill() { p.proc.Kill() }

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
	serf := testutil.SerfBin(b)
	return []benchKind{
		{
			name:   "serfd",
			subnet: 10,
			start: func(b *testing.B, name, ip, _ string) *benchPeer {
				n := startNodeWithSocket(b, name, ip, "", `profile = "local"`,
					`handler "memresponse" { events = ["user:memresponse"] }`)
				return &benchPeer{observer: n, name: name, addr: n.addr, proc: n.proc,
					handled: n.memFile, cli: n.ctl}
			},
			// The node's own memresponse handler is kept to user events
			// named memresponse; the script is a handler of the event's name.
			startScript: func(b *testing.B, name, ip, _, event, script string) *benchPeer {
				n := startNodeWithSocket(b, name, ip, "", `profile = "local"`,
					`handler "memresponse" { events = ["user:memresponse"] }`,
					fmt.Sprintf(`handler %q { events = ["user:%s"] }`, event, event))
				n.addHandler(b, event, script)
				return &benchPeer{observer: n, name: name, addr: n.addr, proc: n.proc, cli: n.ctl}
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
	return &benchPeer{observer: a, name: name, addr: a.addr, proc: a.proc, cli: a.run}
}

// waitEach polls every peer until ok holds for it and returns the time from
// start until the last one did, rounded up to the end of a sweep over the
// peers still pending. A peer is not polled again once ok held for it.
func waitEach(b *testing.B, start time.Time, timeout time.Duration, what string, peers []*benchPeer, ok func(*benchPeer) (bool, string)) time.Duration {
	b.Helper()
	pending := append([]*benchPeer(nil), peers...)
	var took time.Duration
	testutil.Poll(b, timeout, what, func() (bool, string) {
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

// joinPace is the spacing of the joins in BenchmarkScale, the same for
// both kinds. How fast memberlist converges depends on it, and the CLIs
// differ in speed: with joins under ~10ms apart the alive gossip of the
// newcomers overlaps and 50 nodes converge in about a second; from ~30ms
// apart, with the local profile's RetransmitMult of 2, a few nodes miss a
// few newcomers and only learn them at their next push/pull (every 30s at
// 50 nodes). That holds for stock Serf's library and serfd's gossip alike.
// 50ms stands for nodes that boot one after the other.
const joinPace = 50 * time.Millisecond

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

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
	a := &stockAgent{name: name, bin: serf}
	a.addr = net.JoinHostPort(ip, strconv.Itoa(testutil.FreePort(b, ip)))
	a.rpc = net.JoinHostPort(ip, strconv.Itoa(testutil.FreePort(b, ip)))
	full := append([]string{"agent", "-node", name, "-bind", a.addr, "-rpc-addr", a.rpc, "-profile", "local",
		"-log-level", "debug"}, args...)
	a.proc = testutil.Start(b, "stock serf "+name, osexec.Command(serf, full...))
	testutil.Poll(b, 20*time.Second, "stock "+name+" RPC", func() (bool, string) {
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
	return waitCount(func() int { return countLines(out, prefix) }, n, start, limit, stall)
}

// BenchmarkMembersRoundTrip: one exec of `serfctl members` against a
// single serfd node, against one of `serf members` against a single stock
// agent: process start, connect, request, response, text output.
func BenchmarkMembersRoundTrip(b *testing.B) {
	releaseBinaries(b)
	serf := testutil.SerfBin(b)
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

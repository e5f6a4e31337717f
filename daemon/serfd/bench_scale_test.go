package main

// BenchmarkScale: serfd and stock Serf clusters of N real processes on
// loopback, N from SERFD_BENCH_SCALE, with the memberlist LAN profile on
// both sides. Each iteration runs the serfd cluster and the Serf cluster
// one after the other, alternating which goes first, and records every
// figure with the machine's load while it was taken. The records go to
// SERFD_BENCH_OUT as JSON; internal/benchplot turns them into
// docs/bench/bench.md and the plots.

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	osexec "os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/serfd/serfd/internal/benchresults"
	"github.com/serfd/serfd/internal/testutil"
)

const (
	// benchScaleEnv lists the cluster sizes, e.g. "10,50,100" (default 10).
	benchScaleEnv = "SERFD_BENCH_SCALE"
	// benchItersEnv is how many iterations each size runs (default 3).
	benchItersEnv = "SERFD_BENCH_ITERS"
	// benchIdleEnv is the idle window in seconds over which per-node CPU
	// is measured, and after which memory is (default benchIdleDefault).
	benchIdleEnv     = "SERFD_BENCH_IDLE"
	benchIdleDefault = "10"
	// benchOutEnv is the JSON file the records are written to ("" = none).
	benchOutEnv = "SERFD_BENCH_OUT"
	// clockTicks is USER_HZ, the unit of utime and stime in
	// /proc/PID/stat: 100 on every Linux architecture Go supports.
	clockTicks = 100
)

// scaleRecord and scaleResults are the results file's records and file.
type (
	scaleRecord  = benchresults.Record
	scaleResults = benchresults.File
)

func envInts(b *testing.B, name, def string, lo, hi int) []int {
	s := os.Getenv(name)
	if s == "" {
		s = def
	}
	var out []int
	for f := range strings.FieldsFuncSeq(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		n, err := strconv.Atoi(f)
		if err != nil || n < lo || n > hi {
			b.Fatalf("%s=%q: want numbers in %d..%d", name, s, lo, hi)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		b.Fatalf("%s=%q: want at least one number", name, s)
	}
	return out
}

// cpuStat reads the aggregate line of /proc/stat: busy and total jiffies.
func cpuStat(b *testing.B) (busy, total uint64) {
	f := strings.Fields(strings.SplitN(readFile("/proc/stat"), "\n", 2)[0])
	if len(f) < 5 || f[0] != "cpu" {
		b.Fatalf("/proc/stat: unexpected first line %q", f)
	}
	var idle uint64
	for i, s := range f[1:] {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			b.Fatalf("/proc/stat: %v", err)
		}
		// guest and guest_nice (fields 9 and 10) are already in user/nice.
		if i >= 8 {
			break
		}
		total += v
		if i == 3 || i == 4 { // idle, iowait
			idle += v
		}
	}
	return total - idle, total
}

func loadavg1(b *testing.B) float64 {
	f := strings.Fields(readFile("/proc/loadavg"))
	if len(f) == 0 {
		b.Fatal("/proc/loadavg is empty")
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		b.Fatalf("/proc/loadavg: %v", err)
	}
	return v
}

// procMem is VmRSS of pid and its anonymous part, RssAnon, in KiB. The
// rest of VmRSS, RssFile, is mostly the mapped pages of the binary itself:
// shared by every process of one binary and reclaimable.
func procMem(b *testing.B, pid int) (rss, anon int) {
	kib := testutil.ProcStatusKiB(b, pid, "VmRSS", "RssAnon")
	return kib[0], kib[1]
}

// scaleKind is one implementation as BenchmarkScale starts it: a peer
// with the LAN profile, its log in work, and one handler, script, for
// user events named spread and nothing else.
type scaleKind struct {
	name   string
	subnet int
	start  func(b *testing.B, name, ip, work, script string) *benchPeer
	event  func(name, payload string) []string
}

func scaleKinds(b *testing.B) []scaleKind {
	serf := testutil.SerfBin(b)
	kinds := benchKinds(b)
	return []scaleKind{
		{name: "serfd", subnet: 20, start: startScaleSerfd, event: kinds[0].eventArgs},
		{name: "serf", subnet: 21, event: kinds[1].eventArgs,
			start: func(b *testing.B, name, ip, work, script string) *benchPeer {
				return startScaleSerf(b, serf, name, ip, work, script)
			}},
	}
}

// logFile opens the log of one process in work; it is closed at cleanup.
func logFile(b *testing.B, work, name string) *os.File {
	f, err := os.Create(filepath.Join(work, name+".log"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	return f
}

// startScaleSerfd starts serfd with the LAN profile, info logging to a
// file, Serf's RPC (as the Serf agents have it) and the spread handler. The handler script is in handlers.d before
// serfd starts, so that it is known from the first event on.
func startScaleSerfd(b *testing.B, name, ip, work, script string) *benchPeer {
	b.Helper()
	dir := testutil.ShortTempDir(b, "sc-")
	n := &node{name: name, dir: dir, socket: filepath.Join(dir, "ctl.sock")}
	n.addr = net.JoinHostPort(ip, strconv.Itoa(testutil.FreePort(b, ip)))
	rpc := net.JoinHostPort(ip, strconv.Itoa(testutil.FreePort(b, ip)))
	hdir := filepath.Join(dir, "handlers.d")
	if err := os.Mkdir(hdir, 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(hdir, "spread"), []byte(script), 0o755); err != nil {
		b.Fatal(err)
	}
	cfg := fmt.Sprintf(`node_name = %q
bind = %q
profile = "lan"
control { socket = %q }
handlers {
  dir = %q
  timeout = "10s"
}
handler "spread" { events = ["user:spread"] }
log { level = "info" }
rpc { address = %q }
`, name, n.addr, n.socket, hdir, rpc)
	if err := os.WriteFile(filepath.Join(dir, "config.hcl"), []byte(cfg), 0o644); err != nil {
		b.Fatal(err)
	}
	cmd := osexec.Command(bin.serfd, "-config", filepath.Join(dir, "config.hcl"))
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET=")
	log := logFile(b, work, name)
	cmd.Stdout, cmd.Stderr = log, log
	n.proc = testutil.Start(b, "serfd "+name, cmd)
	waitAccepting(b, 30*time.Second, "unix", n.socket, name+"'s control socket")
	return &benchPeer{observer: n, name: name, addr: n.addr, rpc: rpc, proc: n.proc, cli: n.ctl}
}

// startScaleSerf starts stock Serf with the LAN profile, info logging to
// a file and the spread handler.
func startScaleSerf(b *testing.B, serf, name, ip, work, script string) *benchPeer {
	b.Helper()
	handler := filepath.Join(work, name+"-spread.sh")
	if err := os.WriteFile(handler, []byte(script), 0o755); err != nil {
		b.Fatal(err)
	}
	a := &stockAgent{name: name, bin: serf}
	a.addr = net.JoinHostPort(ip, strconv.Itoa(testutil.FreePort(b, ip)))
	a.rpc = net.JoinHostPort(ip, strconv.Itoa(testutil.FreePort(b, ip)))
	cmd := osexec.Command(serf, "agent", "-node", name, "-bind", a.addr, "-rpc-addr", a.rpc,
		"-profile", "lan", "-log-level", "info", "-event-handler", "user:spread="+handler)
	log := logFile(b, work, name)
	cmd.Stdout, cmd.Stderr = log, log
	a.proc = testutil.Start(b, "stock serf "+name, cmd)
	// The RPC listener is up once it accepts a connection.
	waitAccepting(b, 30*time.Second, "tcp", a.rpc, "stock "+name+" RPC")
	return &benchPeer{observer: a, name: name, addr: a.addr, rpc: a.rpc, proc: a.proc, cli: a.run}
}

// stampScaleScript writes the time its handler run started, in ns.
const stampScaleScript = "#!/bin/sh\ndate +%%s%%N >> %s\n"

// runScale runs one scenario: n peers of kind joined one every joinPace
// to the first; convergence; an idle window for CPU and RSS; a user event
// to every handler; kill -9 of the last peer until every other lists it
// failed. Every process is killed by PID on the way out, failure or not.
func runScale(b *testing.B, kind scaleKind, n, iter int, idle time.Duration) scaleRecord {
	b.Helper()
	rec := scaleRecord{Kind: kind.name, N: n, Iter: iter, Load1: loadavg1(b), Start: time.Now().UTC().Format(time.RFC3339)}
	busy0, total0 := cpuStat(b)
	work := b.TempDir()
	peers := make([]*benchPeer, 0, n)
	defer func() {
		for _, p := range peers {
			p.kill()
		}
	}()
	stamps := make([]string, n)
	for i := range n {
		name := fmt.Sprintf("%s-%d", kind.name, i)
		stamps[i] = filepath.Join(work, name+".stamp")
		ip := fmt.Sprintf("127.0.%d.%d", kind.subnet+i/250, i%250+1)
		peers = append(peers, kind.start(b, name, ip, work, fmt.Sprintf(stampScaleScript, stamps[i])))
	}
	seed := peers[0]

	pace := time.NewTicker(joinPace)
	var joins time.Duration
	for i, p := range peers[1:] {
		if i > 0 {
			<-pace.C
		}
		start := time.Now()
		if _, errOut, code := p.cli(b, "join", seed.addr); code != 0 {
			b.Fatalf("%s join %s = exit %d, %q; want exit 0", p.name, seed.addr, code, errOut)
		}
		joins += time.Since(start)
	}
	pace.Stop()
	rec.JoinMs = millis(joins) / float64(max(n-1, 1))
	start := time.Now()
	rec.ConvergeMs = millis(waitEach(b, start, 5*time.Minute, fmt.Sprintf("every peer to list %d alive", n), peers,
		func(p *benchPeer) (bool, string) {
			alive, state := countStatus(b, p, "alive")
			return alive == n, state
		}))

	// Idle: nothing is sent or polled for the window.
	cpu0 := make([]time.Duration, n)
	for i, p := range peers {
		cpu0[i] = readProcTimes(b, p.proc.Pid()).self
	}
	t0 := time.Now()
	<-time.After(idle)
	elapsed := time.Since(t0).Seconds()
	for i, p := range peers {
		used := readProcTimes(b, p.proc.Pid()).self - cpu0[i]
		rec.CPUPct = append(rec.CPUPct, 100*used.Seconds()/elapsed)
		rss, anon := procMem(b, p.proc.Pid())
		rec.RSSKiB = append(rec.RSSKiB, rss)
		rec.AnonKiB = append(rec.AnonKiB, anon)
	}
	rec.IdleSec = elapsed

	payload := fmt.Sprintf("scale-%d", iter)
	sent := time.Now().UnixNano()
	if _, errOut, code := seed.cli(b, kind.event("spread", payload)...); code != 0 {
		b.Fatalf("%s event spread = exit %d, %q; want exit 0", seed.name, code, errOut)
	}
	at := make([]int64, n)
	testutil.Poll(b, 2*time.Minute, "the spread handler to run on every peer", func() (bool, string) {
		missing := 0
		for i, path := range stamps {
			if at[i] != 0 {
				continue
			}
			f := strings.Fields(readFile(path))
			if len(f) == 0 {
				missing++
				continue
			}
			v, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				b.Fatalf("%s: %q is no time stamp: %v", path, f[0], err)
			}
			at[i] = v
		}
		return missing == 0, fmt.Sprintf("%d handlers not run", missing)
	})
	for _, v := range at {
		rec.EventMs = append(rec.EventMs, float64(v-sent)/float64(time.Millisecond))
	}
	slices.Sort(rec.EventMs)

	victim := peers[n-1]
	start = time.Now()
	victim.kill()
	rec.DetectMs = millis(waitEach(b, start, 5*time.Minute, "every other peer to list "+victim.name+" failed", peers[:n-1],
		func(p *benchPeer) (bool, string) {
			ms, out := p.members(b)
			return ms != nil && ms[victim.name].Status == "failed", out
		}))

	busy1, total1 := cpuStat(b)
	if total1 > total0 {
		rec.Busy = float64(busy1-busy0) / float64(total1-total0)
	}
	return rec
}

// serfVersion names the stock Serf binary: its module version from the
// build information (a `go install`ed serf reports 0.8.2-dev as its own
// version, which release builds set with -ldflags), and the first line of
// `serf version`.
func serfVersion(b *testing.B, serf string) string {
	out, err := osexec.Command(serf, "version").Output()
	if err != nil {
		b.Fatalf("%s version: %v", serf, err)
	}
	own := strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	info, err := osexec.Command("go", "version", "-m", serf).Output()
	if err != nil {
		b.Fatalf("go version -m %s: %v", serf, err)
	}
	for line := range strings.Lines(string(info)) {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "mod" {
			return fmt.Sprintf("Serf %s (%s; `serf version`: %s)", f[2], f[1], own)
		}
	}
	return "Serf, `serf version`: " + own
}

// writeResults writes res to path through a temporary file, so that a
// run cut short leaves the records so far.
func writeResults(b *testing.B, path string, res *scaleResults) {
	data, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		b.Fatal(err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		b.Fatal(err)
	}
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(v))
	return s[len(s)/2]
}

// BenchmarkScale: for each size N of SERFD_BENCH_SCALE (default 10) and
// each of SERFD_BENCH_ITERS iterations (default 3), a cluster of N serfd
// processes and one of N stock Serf processes, one after the other (the
// first alternates with the iteration), never both at once. Figures per
// scenario are in scaleRecord; the metrics are medians over iterations.
func BenchmarkScale(b *testing.B) {
	releaseBinaries(b)
	sizes := envInts(b, benchScaleEnv, "10", 2, 250)
	iters := envInts(b, benchItersEnv, "3", 1, 100)[0]
	idle := time.Duration(envInts(b, benchIdleEnv, benchIdleDefault, 1, 600)[0]) * time.Second
	out := os.Getenv(benchOutEnv)
	kinds := scaleKinds(b)
	res := &scaleResults{Serfd: bin.serfd, Serf: testutil.SerfBin(b), SerfVersion: serfVersion(b, testutil.SerfBin(b)),
		GoVersion: strings.TrimSpace(runtimeVersion()), IdleSec: idle.Seconds(), JoinPaceMs: millis(joinPace)}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			for b.Loop() {
				byKind := map[string][]scaleRecord{}
				for it := range iters {
					order := []int{0, 1}
					if it%2 == 1 {
						order = []int{1, 0}
					}
					for j, k := range order {
						rec := runScale(b, kinds[k], n, it, idle)
						rec.First = j == 0
						rec.CPUs = cpus()
						b.Logf("N=%d iter %d %s: converge %.0fms, event p50 %.0fms max %.0fms, detect %.0fms, CPU %.2f%%, RSS %d KiB; load %.2f, busy %.0f%%",
							n, it, rec.Kind, rec.ConvergeMs, median(rec.EventMs), rec.EventMs[len(rec.EventMs)-1],
							rec.DetectMs, median(rec.CPUPct), int(median(intsToFloats(rec.RSSKiB))), rec.Load1, 100*rec.Busy)
						byKind[rec.Kind] = append(byKind[rec.Kind], rec)
						res.Records = append(res.Records, rec)
						if out != "" {
							writeResults(b, out, res)
						}
					}
				}
				for _, k := range kinds {
					var conv, ev, det []float64
					for _, r := range byKind[k.name] {
						conv = append(conv, r.ConvergeMs)
						ev = append(ev, median(r.EventMs))
						det = append(det, r.DetectMs)
					}
					b.ReportMetric(median(conv), "ms/converge-"+k.name)
					b.ReportMetric(median(ev), "ms/event-p50-"+k.name)
					b.ReportMetric(median(det), "ms/detect-"+k.name)
				}
			}
		})
	}
	if out != "" {
		res.LoadAtFinish = loadavg1(b)
		writeResults(b, out, res)
	}
}

func intsToFloats(v []int) []float64 {
	f := make([]float64, len(v))
	for i, x := range v {
		f[i] = float64(x)
	}
	return f
}

// cpus counts the cpuN lines of /proc/stat.
func cpus() int {
	n := 0
	for line := range strings.Lines(readFile("/proc/stat")) {
		if strings.HasPrefix(line, "cpu") && len(line) > 3 && line[3] >= '0' && line[3] <= '9' {
			n++
		}
	}
	return n
}

func runtimeVersion() string {
	out, err := osexec.Command("go", "env", "GOVERSION").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

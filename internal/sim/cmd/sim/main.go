// Command sim runs the gossip simulation (package sim) at several cluster
// sizes and writes the figures beside theory, as a Markdown table and SVG
// plots, into a directory (`make sim` writes docs/bench/).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/serfd/serfd/internal/sim"
)

// sizeResult is what one cluster size measured.
type sizeResult struct {
	n                       int
	converge                time.Duration // -1: not within stormWait
	unconverged             int           // then: nodes that did not see every node alive
	stormFalse              int           // members some node saw fail before anything was cut off
	joinRetries             int
	drained                 time.Duration // from convergence until the broadcast queues drained
	stormDrops              drops         // during the join storm
	event50, event99, event time.Duration // median over the events sent
	fail50, fail99, fail    time.Duration
	bytesPerNodeSec         float64 // as sent: uncompressed (gossip.Config.Uncompressed)
	wirePerNodeSec          float64 // estimated with memberlist's compression of packets
	heapPerNode             float64 // KiB
	cpu                     float64 // share of the machine's CPUs the run used
	scale                   float64 // the cluster's time scale
	err                     string
}

// drops is what the simulated nodes lost inside themselves: packets at a
// full receive queue (the network's side of a full socket buffer) and
// messages at memberlist's full inbound queue.
type drops struct{ queue, handoff int64 }

func dropsOf(c *sim.Cluster) drops { return drops{c.Overflowed(), c.HandoffDrops()} }

func (d drops) String() string {
	if d == (drops{}) {
		return "none"
	}
	return fmt.Sprintf("%d packets at a full receive queue, %d messages at memberlist's full inbound queue", d.queue, d.handoff)
}

type lossResult struct {
	n       int
	scale   float64
	loss    float64
	window  time.Duration
	falsely int // members some node saw fail, none being cut off
	drops   drops
	cpu     float64
	err     string
}

func main() {
	sizes := flag.String("sizes", "250,500,1000", "cluster sizes, comma-separated")
	lossSize := flag.Int("loss-size", 250, "cluster size of the packet loss runs")
	losses := flag.String("losses", "1,5,10", "packet loss percentages (\"\" for none)")
	window := flag.Duration("loss-window", 60*time.Second, "how long each loss run lasts")
	events := flag.Int("events", 3, "user events sent per size (the median is reported)")
	joins := flag.Int("join-parallel", sim.StormJoins, "joins in flight during each size's join storm")
	out := flag.String("out", "docs/bench", "directory for sim.md and the plots")
	timeScale := flag.Float64("timescale", 0, "protocol periods stretched by this factor; 0 picks one per size (sim.AutoScale)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file (also when stopped by SIGINT or SIGTERM, as -memprofile)")
	gcPercent := flag.Int("gogc", 400, "the garbage collector's GOGC for the run (the environment's GOGC wins); see tuneGC")
	flag.Parse()
	gc := tuneGC(*gcPercent)
	var stopCPU func()
	if *cpuProfile != "" {
		var err error
		if stopCPU, err = profileCPU(*cpuProfile); err != nil {
			log.Fatal(err)
		}
		defer stopCPU()
	}
	profileOnSignal(stopCPU)
	scaleOf := func(n int) float64 {
		if *timeScale > 0 {
			return *timeScale
		}
		return sim.AutoScale(n, runtime.GOMAXPROCS(0))
	}
	log.SetFlags(log.Ltime)

	var results []sizeResult
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 3 {
			log.Fatalf("size %q: want a number of nodes, at least 3", s)
		}
		r := runSize(n, scaleOf(n), *events, *joins)
		log.Printf("N=%d: %+v", n, r)
		results = append(results, r)
	}
	var lossResults []lossResult
	for _, s := range strings.Split(*losses, ",") {
		if strings.TrimSpace(s) == "" {
			continue // -losses "": no loss runs
		}
		p, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || p < 0 || p >= 100 {
			log.Fatalf("loss %q: want a percentage", s)
		}
		r := runLoss(*lossSize, scaleOf(*lossSize), p/100, *window)
		log.Printf("loss %.0f%%: %+v", p, r)
		lossResults = append(lossResults, r)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		log.Fatal(err)
	}
	f, err := os.Create(filepath.Join(*out, "sim.md"))
	if err != nil {
		log.Fatal(err)
	}
	report(io.MultiWriter(os.Stdout, f), results, lossResults, *window, gc)
	if err := f.Close(); err != nil {
		log.Fatal(err)
	}
	if err := plots(*out, results); err != nil {
		log.Fatal(err)
	}
}

// tuneGC sets the collector's target and, unless GOMEMLIMIT is set, a
// memory limit of three quarters of the machine's memory. Each simulated
// node's memberlist compresses every packet it sends with a new LZW
// writer, whose 64 KiB table is garbage at once: hundreds of nodes in one
// process allocate at a rate that, with Go's default GOGC of 100 and a
// heap of gigabytes, spent about 60 % of a 500-node run's CPU in the
// collector (profile in docs/bench/sim.md). On a fleet each node pays for
// its own packets with a small heap; a larger target gives the simulation
// that back, and the limit keeps the heap within the machine.
// It returns the settings in effect, for the report.
func tuneGC(percent int) string {
	gogc := os.Getenv("GOGC")
	if gogc == "" {
		debug.SetGCPercent(percent)
		gogc = strconv.Itoa(percent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		var si syscall.Sysinfo_t
		if err := syscall.Sysinfo(&si); err == nil {
			debug.SetMemoryLimit(int64(si.Totalram) * int64(si.Unit) / 4 * 3)
		}
	}
	return fmt.Sprintf("GOGC %s, memory limit %.1f GiB", gogc, float64(debug.SetMemoryLimit(-1))/(1<<30))
}

// profileCPU starts a CPU profile into file and returns what stops it.
func profileCPU(file string) (stop func(), err error) {
	f, err := os.Create(file)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			pprof.StopCPUProfile()
			if err := f.Close(); err != nil {
				log.Print(err)
			}
		})
	}, nil
}

// profileOnSignal makes a SIGINT or SIGTERM stop the CPU profile (stop, if
// not nil) and write the heap profile (-memprofile), then end the program:
// a run at a size that does not finish can still be profiled.
func profileOnSignal(stop func()) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sig
		if stop != nil {
			stop()
		}
		if *memProfile != "" {
			writeHeapProfile(*memProfile)
		}
		log.Printf("%s: profiles written", s)
		os.Exit(1)
	}()
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuShare is the share of the machine's CPUs used since cpu0 at wall0.
func cpuShare(cpu0 time.Duration, wall0 time.Time) float64 {
	return float64(cpuTime()-cpu0) / float64(time.Since(wall0)) / float64(runtime.NumCPU())
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// stormWait is how long (on a fleet's clock) a join storm is given to
// converge by itself: two of the LAN profile's 30 s push/pull intervals
// (memberlist stretches the interval with N: 120 s at 250 nodes, 180 s at
// 1,000, so a node that missed a join may still wait for its repair).
const stormWait = 60 * time.Second

// quietWindow and quietWait pace sim.Cluster.WaitQuiet: the window the
// packet rate is measured over and how long the queues may take to drain
// (on a fleet's clock).
const (
	quietWindow = 2 * time.Second
	quietWait   = 5 * time.Minute
)

// memProfile is the -memprofile flag: a heap profile taken at each size
// once the cluster has converged (the last size's is kept).
var memProfile = flag.String("memprofile", "", "write a heap profile to this file once each size has converged (the last size's is kept), and when stopped by SIGINT or SIGTERM")

func writeHeapProfile(file string) {
	f, err := os.Create(file)
	if err != nil {
		log.Print(err)
		return
	}
	if err := pprof.WriteHeapProfile(f); err != nil {
		log.Print(err)
	}
	if err := f.Close(); err != nil {
		log.Print(err)
	}
}

// runSize measures one size at time scale scale, with joins joins in flight
// in its join storm. Every time it reports is
// on a fleet's clock (measured / scale), and traffic per fleet second.
func runSize(n int, scale float64, events, joins int) (r sizeResult) {
	r.n, r.scale = n, scale
	cpu0, wall0 := cpuTime(), time.Now()
	defer func() { r.cpu = cpuShare(cpu0, wall0) }()
	heap0 := heapInUse()
	c, err := sim.NewCluster(n, uint64(n), scale)
	if err != nil {
		r.err = err.Error()
		return r
	}
	defer c.Close()
	start := time.Now()
	if r.joinRetries, err = c.JoinAll(context.Background(), joins); err != nil {
		r.err = err.Error()
		return r
	}
	// The storm's own convergence, by gossip and the push/pulls that come
	// within stormWait; past that, a second round of joins (each node
	// exchanges its whole state with the seed, which knows everyone by
	// then) converges the cluster for the measurements that follow.
	err = sim.Poll(c.Stretch(stormWait), 100*time.Millisecond, "convergence", c.Converged)
	r.stormDrops = dropsOf(c)
	if err != nil {
		r.converge, r.unconverged = -1, c.Unconverged()
		if _, err := c.JoinAndConverge(10 * time.Minute); err != nil {
			r.err = "second round of joins: " + err.Error()
			return r
		}
	} else {
		r.converge = c.Fleet(time.Since(start))
	}
	r.heapPerNode = float64(heapInUse()-heap0) / float64(n) / 1024
	if *memProfile != "" {
		writeHeapProfile(*memProfile)
	}
	// Theory assumes a cluster at rest: the storm's own broadcasts first
	// drain (see sim.Cluster.WaitQuiet), and every measurement after it
	// starts from rest.
	if r.drained, err = c.WaitQuiet(quietWindow, quietWait); err != nil {
		r.err = err.Error()
		return r
	}
	atRest := func() error { _, err := c.WaitQuiet(quietWindow, quietWait); return err }

	// Steady state: what gossip sends with nothing happening.
	b0, p0, t0 := c.Bytes(), c.PacketBytes(), time.Now()
	raw0, lzw0 := c.Net.CompressionSample()
	time.Sleep(c.Stretch(10 * time.Second)) // a measuring window, not a wait for a condition
	perNodeSec := func(b int64) float64 { return float64(b) / c.Fleet(time.Since(t0)).Seconds() / float64(n) }
	r.bytesPerNodeSec = perNodeSec(c.Bytes() - b0)
	raw1, lzw1 := c.Net.CompressionSample()
	ratio := 1.0
	if raw1 > raw0 {
		ratio = float64(lzw1-lzw0) / float64(raw1-raw0)
	}
	r.wirePerNodeSec = r.bytesPerNodeSec - perNodeSec(c.PacketBytes()-p0)*(1-ratio)

	var e50, e99, e100 []time.Duration
	for i := range events {
		if err := atRest(); err != nil {
			r.err = err.Error()
			return r
		}
		s, err := c.UserEventSpread(fmt.Sprintf("sim-%d", i), c.Stretch(2*time.Minute))
		if err != nil {
			r.err = err.Error()
			return r
		}
		q50, _ := s.Quantile(0.5)
		q99, _ := s.Quantile(0.99)
		q100, _ := s.Quantile(1)
		e50, e99, e100 = append(e50, c.Fleet(q50)), append(e99, c.Fleet(q99)), append(e100, c.Fleet(q100))
	}
	r.event50, r.event99, r.event = median(e50), median(e99), median(e100)

	r.stormFalse = len(c.FalselyFailed())
	if err := atRest(); err != nil {
		r.err = err.Error()
		return r
	}
	s, err := c.FailureSpread(c.Stretch(5 * time.Minute))
	if err != nil {
		r.err = err.Error()
	}
	r.fail50, _ = s.Quantile(0.5)
	r.fail99, _ = s.Quantile(0.99)
	r.fail, _ = s.Quantile(1)
	r.fail50, r.fail99, r.fail = c.Fleet(r.fail50), c.Fleet(r.fail99), c.Fleet(r.fail)
	return r
}

func median(ds []time.Duration) time.Duration {
	return slices.Sorted(slices.Values(ds))[len(ds)/2]
}

// runLoss counts false positives over window (on a fleet's clock) under
// the given packet loss, at time scale scale.
func runLoss(n int, scale, loss float64, window time.Duration) (r lossResult) {
	r.n, r.scale, r.loss, r.window = n, scale, loss, window
	c, err := sim.NewCluster(n, uint64(n)+uint64(loss*1000), scale)
	if err != nil {
		r.err = err.Error()
		return r
	}
	defer c.Close()
	if _, err := c.JoinAndConverge(10 * time.Minute); err != nil {
		r.err = err.Error()
		return r
	}
	cpu0, wall0 := cpuTime(), time.Now()
	c.Net.SetLoss(loss)
	time.Sleep(c.Stretch(window)) // the observation window under loss
	r.falsely = len(c.FalselyFailed())
	r.drops = dropsOf(c)
	r.cpu = cpuShare(cpu0, wall0)
	return r
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2f", d.Seconds()) }

// convergeText is the join storm's convergence, or how many nodes had not
// converged when stormWait was over.
func convergeText(r sizeResult) string {
	out := secs(r.converge)
	if r.converge < 0 {
		out = fmt.Sprintf("not within %s: %d of %d nodes did not see every node alive", stormWait, r.unconverged, r.n)
	}
	if r.stormFalse > 0 {
		out += fmt.Sprintf("; %d members were taken for failed by some node meanwhile", r.stormFalse)
	}
	if r.stormDrops != (drops{}) {
		out += "; dropped inside the nodes: " + r.stormDrops.String()
	}
	return out
}

func report(w io.Writer, rs []sizeResult, ls []lossResult, window time.Duration, gc string) {
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Fprintf(w, "# Gossip simulation\n\n")
	fmt.Fprintf(w, "`make sim` (internal/sim): serfd's gossip layer (memberlist, profile lan as shipped) at each size in one process over an in-memory network; %s, GOMAXPROCS %d, %s, load average at the end %s. Theory: internal/sim/theory.go. \"CPU\" is the share of the machine the run used: near 100 %% the simulated nodes wait for the CPU, and their timers (probes, gossip rounds) run late. Past %d nodes per CPU a size runs at a time scale k (\"k\" below): every protocol period and timeout is k times the profile's (gossip.Config.TimeScale), so that the CPU work per period stays the share it is at smaller sizes, as on a fleet where each node has its own CPU; every time below is the time measured divided by k, and traffic is per k seconds measured. After the storm, every node holds every other node's alive message for retransmission, and memberlist fills each packet from that queue before user events; theory assumes a cluster at rest, so each measurement (traffic, every event, the failure) starts once the nodes send no more than %.1f packets per node per second, probes only (\"queues drained\": how long after convergence that took). The nodes run with memberlist's compression off (gossip.Config.Uncompressed: a packet holds the same messages, compressed or not, but each compressed packet allocates a 64 KiB LZW table, and with a thousand nodes in one process that kept the collector busy); traffic is given as sent and, in brackets, with the packets compressed as memberlist would (estimated from one packet in 64, compressed alike; push/pull streams counted as sent).\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), runtime.GOMAXPROCS(0), gc, strings.Fields(string(load) + " ?")[0], sim.NodesPerCPU, sim.QuietRate)
	fmt.Fprintf(w, "| N | k | join storm converged (s) (joins retried) | queues drained (s) | user event 50 / 99 / 100 %% (s) | theory 50 / 100 %% (s) | ratio 100 %% | failure seen 50 / 99 / 100 %% (s) | theory 50 / 100 %% (s) | ratio 100 %% | gossip bytes/node/s at rest (compressed) | heap KiB/node | CPU |\n")
	fmt.Fprintf(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rs {
		if r.err != "" {
			fmt.Fprintf(w, "| %d | %g | failed: %s ||||||||||| %.0f %% |\n", r.n, r.scale, r.err, 100*r.cpu)
			continue
		}
		te, tf := sim.DisseminationTheory(r.n, 1), sim.DetectionTheory(r.n, 1)
		fmt.Fprintf(w, "| %d | %g | %s (%d) | %s | %s / %s / %s | %s / %s | %.2f | %s / %s / %s | %s / %s | %.2f | %.0f (%.0f) | %.0f | %.0f %% |\n",
			r.n, r.scale, convergeText(r), r.joinRetries, secs(r.drained), secs(r.event50), secs(r.event99), secs(r.event),
			secs(sim.DisseminationTheory(r.n, 0.5)), secs(te), r.event.Seconds()/te.Seconds(),
			secs(r.fail50), secs(r.fail99), secs(r.fail),
			secs(sim.DetectionTheory(r.n, 0.5)), secs(tf), r.fail.Seconds()/tf.Seconds(),
			r.bytesPerNodeSec, r.wirePerNodeSec, r.heapPerNode, 100*r.cpu)
	}
	fmt.Fprintf(w, "\nFalse positives under packet loss (every packet dropped with the given probability, streams kept; %s per run, no node cut off):\n\n", window)
	fmt.Fprintf(w, "| N | k | loss | members seen failed | dropped inside the nodes | CPU |\n|---|---|---|---|---|---|\n")
	for _, l := range ls {
		if l.err != "" {
			fmt.Fprintf(w, "| %d | %g | %.0f %% | failed: %s | | |\n", l.n, l.scale, 100*l.loss, l.err)
			continue
		}
		fmt.Fprintf(w, "| %d | %g | %.0f %% | %d | %s | %.0f %% |\n", l.n, l.scale, 100*l.loss, l.falsely, l.drops, 100*l.cpu)
	}
	fmt.Fprintf(w, "\nPlots: [dissemination](sim-dissemination.svg), [failure detection](sim-detection.svg), [traffic](sim-traffic.svg).\n")
}

// plots writes the SVGs: dissemination and detection against theory, and
// traffic per node, each against N.
func plots(dir string, rs []sizeResult) error {
	var ok []sizeResult
	for _, r := range rs {
		if r.err == "" {
			ok = append(ok, r)
		}
	}
	if len(ok) == 0 {
		return nil
	}
	line := func(f func(sizeResult) float64) plotter.XYs {
		xy := make(plotter.XYs, len(ok))
		for i, r := range ok {
			xy[i].X, xy[i].Y = float64(r.n), f(r)
		}
		return xy
	}
	theory := func(f func(n int) time.Duration) plotter.XYs {
		var xy plotter.XYs
		lo, hi := ok[0].n, ok[len(ok)-1].n
		for n := lo; n <= hi; n += max((hi-lo)/50, 1) {
			xy = append(xy, plotter.XY{X: float64(n), Y: f(n).Seconds()})
		}
		return xy
	}
	type series struct {
		name string
		xy   plotter.XYs
		dash bool
	}
	draw := func(file, title, ylabel string, ss []series) error {
		p := plot.New()
		p.Title.Text = title
		p.X.Label.Text = "nodes"
		p.Y.Label.Text = ylabel
		p.Legend.Top, p.Legend.Left = true, true
		for i, s := range ss {
			l, err := plotter.NewLine(s.xy)
			if err != nil {
				return err
			}
			l.Color = plotutil.Color(i)
			if s.dash {
				l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
			} else {
				pts, err := plotter.NewScatter(s.xy)
				if err != nil {
					return err
				}
				pts.Color = plotutil.Color(i)
				p.Add(pts)
			}
			p.Add(l)
			p.Legend.Add(s.name, l)
		}
		return p.Save(7*vg.Inch, 4.5*vg.Inch, filepath.Join(dir, file))
	}
	d := func(f func(sizeResult) time.Duration) plotter.XYs {
		return line(func(r sizeResult) float64 { return f(r).Seconds() })
	}
	if err := draw("sim-dissemination.svg", "User event to every node (serfd gossip, simulated)", "seconds", []series{
		{"50 % of nodes", d(func(r sizeResult) time.Duration { return r.event50 }), false},
		{"99 %", d(func(r sizeResult) time.Duration { return r.event99 }), false},
		{"100 %", d(func(r sizeResult) time.Duration { return r.event }), false},
		{"theory 50 %", theory(func(n int) time.Duration { return sim.DisseminationTheory(n, 0.5) }), true},
		{"theory 100 %", theory(func(n int) time.Duration { return sim.DisseminationTheory(n, 1) }), true},
	}); err != nil {
		return err
	}
	if err := draw("sim-detection.svg", "Node cut off, seen failed (SWIM + Lifeguard, simulated)", "seconds", []series{
		{"50 % of nodes", d(func(r sizeResult) time.Duration { return r.fail50 }), false},
		{"99 %", d(func(r sizeResult) time.Duration { return r.fail99 }), false},
		{"100 %", d(func(r sizeResult) time.Duration { return r.fail }), false},
		{"theory 50 %", theory(func(n int) time.Duration { return sim.DetectionTheory(n, 0.5) }), true},
		{"theory 100 %", theory(func(n int) time.Duration { return sim.DetectionTheory(n, 1) }), true},
	}); err != nil {
		return err
	}
	return draw("sim-traffic.svg", "Gossip traffic at rest, per node", "bytes sent per second", []series{
		{"bytes/node/s", line(func(r sizeResult) float64 { return r.bytesPerNodeSec }), false},
	})
}

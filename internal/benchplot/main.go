// Command benchplot turns the records of BenchmarkScale (daemon/serfd,
// SERFD_BENCH_OUT) into docs/bench/bench.md, a Markdown table of serfd
// against stock Serf, and SVG plots next to it. `make bench` runs it.
//
// The theoretical lines are internal/sim's (theory.go), for memberlist's
// LAN profile on both sides: dissemination by push gossip, and failure
// detection by SWIM with Lifeguard.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"image/color"
	"log"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/serfd/serfd/internal/benchresults"
	"github.com/serfd/serfd/internal/sim"
)

// The results file's records and the file.
type (
	record  = benchresults.Record
	results = benchresults.File
)

// spreadSeconds is the epidemic estimate of the time push gossip takes to
// reach all n nodes, and detectSeconds that of the time from a crash until
// every member has marked the node failed: the theory of internal/sim.
func spreadSeconds(n float64) float64 { return sim.DisseminationTheory(int(n), 1).Seconds() }

func detectSeconds(n float64) float64 { return sim.DetectionTheory(int(n), 1).Seconds() }

func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func median(v []float64) float64 {
	return quantile(slices.Sorted(slices.Values(v)), 0.5)
}

func mean(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

// group is the records of one kind and size.
type group []record

func (g group) each(f func(record) float64) []float64 {
	var v []float64
	for _, r := range g {
		v = append(v, f(r))
	}
	return v
}

func (g group) events() []float64 {
	var v []float64
	for _, r := range g {
		v = append(v, r.EventMs...)
	}
	slices.Sort(v)
	return v
}

func (g group) cpu() []float64 {
	var v []float64
	for _, r := range g {
		v = append(v, r.CPUPct...)
	}
	return v
}

func (g group) rssMiB() []float64 { return g.mib(func(r record) []int { return r.RSSKiB }) }

func (g group) anonMiB() []float64 { return g.mib(func(r record) []int { return r.AnonKiB }) }

func (g group) mib(kib func(record) []int) []float64 {
	var v []float64
	for _, r := range g {
		for _, k := range kib(r) {
			v = append(v, float64(k)/1024)
		}
	}
	return v
}

var kindColor = map[string]color.Color{
	"serfd": color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	"serf":  color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
}

var kindLabel = map[string]string{"serfd": "serfd", "serf": "Serf"}

var kinds = []string{"serfd", "serf"}

func main() {
	in := flag.String("in", "docs/bench/results.json", "records written by BenchmarkScale")
	out := flag.String("out", "docs/bench", "directory for bench.md and the plots")
	flag.Parse()
	data, err := os.ReadFile(*in)
	if err != nil {
		log.Fatal(err)
	}
	var res results
	if err := json.Unmarshal(data, &res); err != nil {
		log.Fatalf("%s: %v", *in, err)
	}
	if len(res.Records) == 0 {
		log.Fatalf("%s: no records", *in)
	}
	groups := map[int]map[string]group{}
	var sizes []int
	for _, r := range res.Records {
		if groups[r.N] == nil {
			groups[r.N] = map[string]group{}
			sizes = append(sizes, r.N)
		}
		groups[r.N][r.Kind] = append(groups[r.N][r.Kind], r)
	}
	slices.Sort(sizes)

	var files []string
	for _, n := range sizes {
		name := fmt.Sprintf("event-cdf-n%d.svg", n)
		cdfPlot(filepath.Join(*out, name), n, groups[n])
		files = append(files, name)
	}
	vsN := []struct {
		file, title, ylabel string
		value               func(group) float64
		theory              func(float64) float64
	}{
		{"converge.svg", "Join convergence (after the last join)", "seconds",
			func(g group) float64 { return median(g.each(func(r record) float64 { return r.ConvergeMs })) / 1000 }, spreadSeconds},
		{"event-spread.svg", "User event on every node's handler (p90 over nodes)", "seconds",
			func(g group) float64 { return quantile(g.events(), 0.9) / 1000 }, spreadSeconds},
		{"detect.svg", "kill -9 seen as failed by every other node", "seconds",
			func(g group) float64 { return median(g.each(func(r record) float64 { return r.DetectMs })) / 1000 }, detectSeconds},
		{"cpu.svg", "CPU per node at idle (median)", "% of one core",
			func(g group) float64 { return median(g.cpu()) }, nil},
		{"rss.svg", "RSS per node at idle (median)", "MiB",
			func(g group) float64 { return median(g.rssMiB()) }, nil},
	}
	for _, p := range vsN {
		linePlot(filepath.Join(*out, p.file), p.title, p.ylabel, sizes, groups, p.value, p.theory)
		files = append(files, p.file)
	}

	table := markdownTable(sizes, groups)
	fmt.Print(table)
	md := document(&res, sizes, groups, table, files)
	if err := os.WriteFile(filepath.Join(*out, "bench.md"), []byte(md), 0o644); err != nil {
		log.Fatal(err)
	}
}

func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = x
	p.Y.Label.Text = y
	p.Legend.Top = true
	p.Legend.Left = true
	p.Add(plotter.NewGrid())
	return p
}

func save(p *plot.Plot, path string) {
	if err := p.Save(16*vg.Centimeter, 10*vg.Centimeter, path); err != nil {
		log.Fatal(err)
	}
}

// cdfPlot: the share of nodes whose handler had run, against the time
// since the event was sent, all iterations pooled.
func cdfPlot(path string, n int, g map[string]group) {
	p := newPlot(fmt.Sprintf("User event to handler, N=%d (all iterations)", n), "ms since the CLI was started", "share of nodes")
	for _, k := range kinds {
		ev := g[k].events()
		if len(ev) == 0 {
			continue
		}
		pts := make(plotter.XYs, 0, 2*len(ev))
		for i, v := range ev {
			pts = append(pts, plotter.XY{X: v, Y: float64(i) / float64(len(ev))})
			pts = append(pts, plotter.XY{X: v, Y: float64(i+1) / float64(len(ev))})
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			log.Fatal(err)
		}
		l.Color = kindColor[k]
		l.Width = vg.Points(1.5)
		p.Add(l)
		p.Legend.Add(kindLabel[k], l)
	}
	p.Y.Min, p.Y.Max = 0, 1
	save(p, path)
}

func linePlot(path, title, ylabel string, sizes []int, groups map[int]map[string]group, value func(group) float64, theory func(float64) float64) {
	p := newPlot(title, "N (processes)", ylabel)
	for _, k := range kinds {
		var pts plotter.XYs
		for _, n := range sizes {
			if g := groups[n][k]; len(g) > 0 {
				pts = append(pts, plotter.XY{X: float64(n), Y: value(g)})
			}
		}
		if len(pts) == 0 {
			continue
		}
		l, s, err := plotter.NewLinePoints(pts)
		if err != nil {
			log.Fatal(err)
		}
		l.Color, s.Color = kindColor[k], kindColor[k]
		s.Shape = draw.CircleGlyph{}
		p.Add(l, s)
		p.Legend.Add(kindLabel[k], l, s)
	}
	if theory != nil {
		lo, hi := float64(sizes[0]), float64(sizes[len(sizes)-1])
		if hi <= lo {
			hi = lo + 1
		}
		var pts plotter.XYs
		for i := range 50 {
			x := lo + (hi-lo)*float64(i)/49
			pts = append(pts, plotter.XY{X: x, Y: theory(x)})
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			log.Fatal(err)
		}
		l.Color = color.Gray{Y: 0x60}
		l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		p.Add(l)
		p.Legend.Add("estimate (see bench.md)", l)
	}
	p.Y.Min = 0
	save(p, path)
}

// row is one line of the table: a figure for both kinds.
type row struct {
	name, unit string
	value      func(group) float64
}

var rows = []row{
	{"join, one CLI run (mean)", "ms", func(g group) float64 { return median(g.each(func(r record) float64 { return r.JoinMs })) }},
	{"convergence after the last join", "ms", func(g group) float64 { return median(g.each(func(r record) float64 { return r.ConvergeMs })) }},
	{"convergence, worst iteration", "ms", func(g group) float64 { return slices.Max(g.each(func(r record) float64 { return r.ConvergeMs })) }},
	{"event to handler, p50 over nodes", "ms", func(g group) float64 { return quantile(g.events(), 0.5) }},
	{"event to handler, p90 over nodes", "ms", func(g group) float64 { return quantile(g.events(), 0.9) }},
	{"event to handler, last node", "ms", func(g group) float64 { return quantile(g.events(), 1) }},
	{"kill -9 seen failed by all", "ms", func(g group) float64 { return median(g.each(func(r record) float64 { return r.DetectMs })) }},
	{"kill -9 seen failed by all, worst iteration", "ms", func(g group) float64 { return slices.Max(g.each(func(r record) float64 { return r.DetectMs })) }},
	{"CPU per node, idle", "% core", func(g group) float64 { return median(g.cpu()) }},
	{"RSS per node, idle", "MiB", func(g group) float64 { return median(g.rssMiB()) }},
	{"RSS per node, idle: anonymous (heap, stacks)", "MiB", func(g group) float64 { return median(g.anonMiB()) }},
}

func format(v float64) string {
	switch {
	case math.IsNaN(v):
		return "–"
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func load(g group) string {
	if len(g) == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f / %.0f%%", mean(g.each(func(r record) float64 { return r.Load1 })),
		100*mean(g.each(func(r record) float64 { return r.Busy })))
}

func markdownTable(sizes []int, groups map[int]map[string]group) string {
	var b strings.Builder
	b.WriteString("| N | figure | serfd | Serf | serfd/Serf |\n|---:|---|---:|---:|---:|\n")
	for _, n := range sizes {
		d, s := groups[n]["serfd"], groups[n]["serf"]
		for _, r := range rows {
			vd, vs := math.NaN(), math.NaN()
			if len(d) > 0 {
				vd = r.value(d)
			}
			if len(s) > 0 {
				vs = r.value(s)
			}
			fmt.Fprintf(&b, "| %d | %s (%s) | %s | %s | %s |\n", n, r.name, r.unit, format(vd), format(vs), format(vd/vs))
		}
		fmt.Fprintf(&b, "| %d | load: 1-min loadavg at start / CPU busy during (mean) | %s | %s | |\n", n, load(d), load(s))
		fmt.Fprintf(&b, "| %d | iterations | %d | %d | |\n", n, len(d), len(s))
	}
	return b.String()
}

func document(res *results, sizes []int, groups map[int]map[string]group, table string, files []string) string {
	cpus := res.Records[0].CPUs
	var b strings.Builder
	b.WriteString("# serfd against stock Serf\n\n")
	fmt.Fprintf(&b, "Written by `make bench` (BenchmarkScale in daemon/serfd/bench_scale_test.go, then internal/benchplot) from [results.json](results.json): serfd built with `go build -trimpath` (%s), no -race, against %s as installed by `go install`. ", res.GoVersion, res.SerfVersion)
	fmt.Fprintf(&b, "Runs from %s to %s on a machine with %d CPUs.\n\n", res.Records[0].Start, res.Records[len(res.Records)-1].Start, cpus)
	b.WriteString("## Method\n\n")
	b.WriteString("For every N, each iteration starts a cluster of N serfd processes and then one of N Serf processes, or the other way round (the first alternates with the iteration); the two never run at once. ")
	b.WriteString("Every process is a real agent on its own loopback address (127.0.20.x for serfd, 127.0.21.x for Serf) with the memberlist LAN profile and one `#!/bin/sh` handler for user events named `spread` that appends `date +%s%N` to a file. In each scenario:\n\n")
	fmt.Fprintf(&b, "1. **join**: every node joins the first one with the CLI (`serfctl join`, `serf join`), one every %.0f ms; the figure is the mean CLI run.\n", res.JoinPaceMs)
	b.WriteString("2. **convergence**: from the return of the last join until every node lists N members alive, by sweeps of `members -format json` over the nodes still pending (an upper bound by up to one sweep, which grows with N).\n")
	fmt.Fprintf(&b, "3. **idle**: %.0f s with nothing sent or polled; per-node CPU is utime+stime from /proc/PID/stat over the window (percent of one core), RSS is VmRSS at its end, and its anonymous part RssAnon (heap, stacks; the rest is mostly the binary's own mapped text and data, shared by the processes of one binary and reclaimable; [memory.md](memory.md) attributes those pages to Go packages, for one idle node of each).\n", res.IdleSec)
	b.WriteString("4. **event**: `serfctl event spread …` / `serf event -coalesce=false spread …` on the first node; per node, the time from just before the CLI was started until that node's handler wrote its stamp (CLI start, gossip and handler start included). The table gives quantiles over all nodes of all iterations; the CDF plots show the whole distribution.\n")
	b.WriteString("5. **failure detection**: kill -9 of the last node, then sweeps of `members` until every other node lists it failed (again an upper bound by up to a sweep).\n\n")
	b.WriteString("Scalar figures are medians over iterations. The load column gives, for the scenarios of each kind, the mean 1-minute load average when the scenario started and the mean share of all CPU time that was busy during it (/proc/stat, the benchmark's own processes included).\n\n")
	b.WriteString("## Results\n\n")
	b.WriteString(table)
	b.WriteString("\n")
	for _, f := range files {
		fmt.Fprintf(&b, "![%s](%s)\n", strings.TrimSuffix(f, ".svg"), f)
	}
	if notes := outliers(sizes, groups); notes != "" {
		b.WriteString("\nOutliers: " + notes + " A node that misses a newcomer's alive gossip (each message is retransmitted a bounded number of times, RetransmitMult 4 × log10(N+1)) only learns of it at its next push/pull with a random member, every 30 s scaled up with N, so convergence then takes tens of seconds (60 s at N=50 and 90 s at N=100, plus the timer's random start). Both kinds use memberlist for this, so it can hit either; the joins come 50 ms apart, so the alive messages of consecutive newcomers compete for the gossip. The median hides it; the worst-iteration row shows it.\n")
	}
	b.WriteString("\n## Estimates\n\n")
	fmt.Fprintf(&b, "The dashed lines are the theory of internal/sim/theory.go (the same as `make sim` uses), for the LAN profile: GossipNodes f = %d, GossipInterval %v, ProbeInterval %v, SuspicionMult %d.\n\n", sim.GossipNodes, sim.GossipInterval, sim.ProbeInterval, sim.SuspicionMult)
	b.WriteString("- Spread (convergence, event on every node): every informed node passes the message to f random members per gossip interval, and on each ping and ack it sends, each node on its own ticker, so the informed set grows as if each informed node sent at the rate λ = f/GossipInterval + 2/ProbeInterval; push gossip at that rate reaches every one of N nodes after about 2 ln(N)/λ (first-passage percolation on the complete graph, Janson 1999). It leaves out the CLI and the handler's start.\n")
	b.WriteString("- Failure detection (SWIM with Lifeguard): one probe interval until some member probes the dead node, one for its direct and indirect probes to fail, the minimum suspicion timeout SuspicionMult × max(1, log10 N) × ProbeInterval (which Lifeguard approaches as other members confirm the suspicion), then the spread of the verdict.\n\n")
	b.WriteString("| N | spread estimate (ms) | detection estimate (ms) |\n|---:|---:|---:|\n")
	for _, n := range sizes {
		fmt.Fprintf(&b, "| %d | %.0f | %.0f |\n", n, 1000*spreadSeconds(float64(n)), 1000*detectSeconds(float64(n)))
	}
	b.WriteString("\n## Load\n\n")
	fmt.Fprintf(&b, "The machine has %d CPUs and ran other work during the benchmark; the load columns above are what it was. At the end of the run the 1-minute load average was %.2f. ", cpus, res.LoadAtFinish)
	b.WriteString("The 1-minute load average at a scenario's start still carries the processes of the scenario before it (it decays over minutes), so it mostly tells how loaded the machine was going in; the busy share is the scenario's own. ")
	var saturated []string
	for _, n := range sizes {
		for _, k := range kinds {
			if g := groups[n][k]; len(g) > 0 && mean(g.each(func(r record) float64 { return r.Busy })) >= 0.9 {
				saturated = append(saturated, fmt.Sprintf("%s at N=%d", kindLabel[k], n))
			}
		}
	}
	if len(saturated) > 0 {
		fmt.Fprintf(&b, "The CPUs were saturated (busy 90%% or more) for %s: those figures are the agents under CPU starvation, the sweeps of CLI runs competing with them. ", strings.Join(saturated, ", "))
	}
	b.WriteString("With N processes of one kind plus the CLI sweeps on so few cores, the timings at large N include scheduling delay for both kinds alike; compare serfd and Serf within a row rather than the figures with other machines. The output of the `make bench` run that wrote these files, the smaller benchmarks included, is in [make-bench.txt](make-bench.txt).\n")
	return b.String()
}

// outliers names the iterations whose convergence took over five times
// the median of their kind and size.
func outliers(sizes []int, groups map[int]map[string]group) string {
	var out []string
	for _, n := range sizes {
		for _, k := range kinds {
			g := groups[n][k]
			if len(g) == 0 {
				continue
			}
			m := median(g.each(func(r record) float64 { return r.ConvergeMs }))
			for _, r := range g {
				if r.ConvergeMs > 5*m {
					out = append(out, fmt.Sprintf("%s at N=%d, iteration %d, converged after %.1f s (median %.1f s).", kindLabel[k], n, r.Iter, r.ConvergeMs/1000, m/1000))
				}
			}
		}
	}
	return strings.Join(out, " ")
}

package main

// BenchmarkIdleMemory: what one idle node of each agent holds in memory,
// and which code the resident pages of its executable belong to.
//
// One serfd and one stock Serf, each alone on loopback and configured as
// BenchmarkScale configures them (LAN profile, Serf's RPC, one handler),
// are started together; after the idle window (SERFD_BENCH_IDLE seconds)
// each one's VmRSS, RssAnon (heap, stacks: what the process owns) and
// RssFile (mapped file pages, nearly all its own executable's: shared
// with every process of the same binary, and reclaimable) are read from
// /proc/PID/status, and the executable's resident pages are attributed to
// ELF sections and Go packages (internal/residency). memIters rounds; with
// SERFD_BENCH_MEM_OUT set, the figures are written there as Markdown.

import (
	"cmp"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/serfd/serfd/internal/residency"
	"github.com/serfd/serfd/internal/testutil"
)

const (
	memOutEnv = "SERFD_BENCH_MEM_OUT"
	memIters  = 3
	// memTopPackages is how many packages the Markdown lists, those with
	// the largest difference between the agents first.
	memTopPackages = 24
)

// memSample is one agent's memory in one round.
type memSample struct {
	rss, anon int // KiB, from /proc/PID/status
	exe       *residency.Profile
	load1     float64
}

func BenchmarkIdleMemory(b *testing.B) {
	releaseBinaries(b)
	idle := time.Duration(envInts(b, benchIdleEnv, benchIdleDefault, 1, 600)[0]) * time.Second
	kinds := scaleKinds(b)
	bins := map[string]string{"serfd": bin.serfd, "serf": testutil.SerfBin(b)}
	samples := map[string][]memSample{}
	for b.Loop() {
		for it := range memIters {
			work := b.TempDir()
			peers := make([]*benchPeer, len(kinds))
			for i, k := range kinds {
				name := fmt.Sprintf("%s-mem-%d", k.name, it)
				ip := fmt.Sprintf("127.0.%d.251", k.subnet)
				peers[i] = k.start(b, name, ip, work, fmt.Sprintf(stampScaleScript, filepath.Join(work, name+".stamp")))
			}
			<-time.After(idle)
			for i, k := range kinds {
				pid := peers[i].proc.Pid()
				s := memSample{load1: loadavg1(b)}
				s.rss, s.anon = procMem(b, pid)
				prof, err := residency.Read(pid)
				if err != nil {
					b.Fatalf("%s: %v", k.name, err)
				}
				s.exe = prof
				samples[k.name] = append(samples[k.name], s)
				peers[i].kill()
			}
		}
	}
	med := map[string]memMedians{}
	for k, ss := range samples {
		med[k] = mediansOf(ss)
		b.ReportMetric(med[k].rss, k+"-rss-KiB")
		b.ReportMetric(med[k].anon, k+"-anon-KiB")
	}
	b.ReportMetric(med["serfd"].rss/med["serf"].rss, "rss-serfd/serf")
	if out := os.Getenv(memOutEnv); out != "" {
		writeIdleMemory(b, out, idle, bins, samples, med)
	}
}

// memMedians are one agent's medians over the rounds, in KiB: VmRSS,
// RssAnon and the resident pages of its executable.
type memMedians struct{ rss, anon, exe float64 }

func mediansOf(ss []memSample) memMedians {
	var rss, anon, exe []float64
	for _, s := range ss {
		rss = append(rss, float64(s.rss))
		anon = append(anon, float64(s.anon))
		exe = append(exe, float64(s.exe.Bytes)/1024)
	}
	return memMedians{median(rss), median(anon), median(exe)}
}

func writeIdleMemory(b *testing.B, path string, idle time.Duration, bins map[string]string, samples map[string][]memSample, med map[string]memMedians) {
	agents := []string{"serfd", "serf"}
	var sb strings.Builder
	sb.WriteString("# Idle memory of one node\n\n")
	fmt.Fprintf(&sb, "Written by `make bench` (BenchmarkIdleMemory, %s) on %s, %d CPUs, %s.\n\n",
		time.Now().UTC().Format(time.RFC3339), runtimeVersion(), cpus(), serfVersion(b, testutil.SerfBin(b)))
	fmt.Fprintf(&sb, "One serfd and one Serf, release builds, each alone on loopback with the configuration of the scale benchmark "+
		"(LAN profile, Serf's RPC, one handler), started together and measured after %v idle; %d rounds. "+
		"RssAnon is what the process owns (heap, stacks); RssFile is mapped file pages, nearly all of them the process's own executable: "+
		"pages of the binary that were touched since start, shared by every process of the same binary and dropped by the kernel under memory pressure. "+
		"The resident pages of the executable are attributed to ELF sections and to Go packages from the symbol table "+
		"(internal/residency: /proc/PID/pagemap; the kernel maps up to 64 KiB of neighbouring cached pages on each fault, so these are pages, not bytes executed).\n\n",
		idle, memIters)

	sb.WriteString("| agent | round | VmRSS (KiB) | RssAnon (KiB) | RssFile (KiB) | executable resident (KiB) | executable size (KiB) | load 1 min |\n")
	sb.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, k := range agents {
		size := fileKiB(b, bins[k])
		for i, s := range samples[k] {
			fmt.Fprintf(&sb, "| %s | %d | %d | %d | %d | %d | %d | %.2f |\n",
				k, i+1, s.rss, s.anon, s.rss-s.anon, s.exe.Bytes/1024, size, s.load1)
		}
	}
	d, f := med["serfd"], med["serf"]
	fmt.Fprintf(&sb, "\nMedians, serfd / Serf: VmRSS %.0f / %.0f KiB (%.2f×), RssAnon %.0f / %.0f KiB (%.2f×), executable resident %.0f / %.0f KiB (%.2f×); executable size %.2f×.\n\n",
		d.rss, f.rss, d.rss/f.rss, d.anon, f.anon, d.anon/f.anon, d.exe, f.exe, d.exe/f.exe,
		float64(fileKiB(b, bins["serfd"]))/float64(fileKiB(b, bins["serf"])))

	sb.WriteString("## Resident executable by section (KiB, mean of the rounds)\n\n")
	sb.WriteString("| section | serfd | Serf | serfd − Serf |\n|---|---:|---:|---:|\n")
	writeRows(&sb, samples, func(p *residency.Profile) map[string]float64 {
		m := map[string]float64{}
		for sec, n := range p.Sections {
			m[sec] = float64(n)
		}
		return m
	}, 0)

	sb.WriteString("\n## Resident executable by package (KiB, mean of the rounds)\n\n")
	fmt.Fprintf(&sb, "The %d packages with the largest difference, then the rest. A name in parentheses is the part of a section that no symbol covers "+
		"(.gopclntab: the runtime's function and line tables, read for stack walks and tracebacks, in proportion to the code in use).\n\n", memTopPackages)
	sb.WriteString("| package | serfd | Serf | serfd − Serf |\n|---|---:|---:|---:|\n")
	writeRows(&sb, samples, func(p *residency.Profile) map[string]float64 { return p.Packages }, memTopPackages)

	if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
		b.Fatal(err)
	}
}

// writeRows writes one row per key of what rows gives for a profile, the
// mean of the rounds per agent, the largest difference first; with top >
// 0, only that many and then one row for the rest. Then the total.
func writeRows(sb *strings.Builder, samples map[string][]memSample, rows func(*residency.Profile) map[string]float64, top int) {
	// rounds[agent] is what rows gives of each round's profile.
	rounds := map[string][]map[string]float64{}
	keys := map[string]bool{}
	for agent, ss := range samples {
		for _, s := range ss {
			m := rows(s.exe)
			rounds[agent] = append(rounds[agent], m)
			for k := range m {
				keys[k] = true
			}
		}
	}
	mean := func(agent, key string) float64 {
		var sum float64
		for _, m := range rounds[agent] {
			sum += m[key]
		}
		return sum / float64(len(rounds[agent])) / 1024
	}
	type row struct {
		name        string
		serfd, serf float64
	}
	var all []row
	for k := range keys {
		all = append(all, row{k, mean("serfd", k), mean("serf", k)})
	}
	slices.SortFunc(all, func(a, b row) int {
		return cmp.Or(cmp.Compare(math.Abs(b.serfd-b.serf), math.Abs(a.serfd-a.serf)), strings.Compare(a.name, b.name))
	})
	var total, rest row
	rest.name = fmt.Sprintf("the other %d", max(len(all)-top, 0))
	for i, r := range all {
		total.serfd += r.serfd
		total.serf += r.serf
		if top > 0 && i >= top {
			rest.serfd += r.serfd
			rest.serf += r.serf
			continue
		}
		name := r.name
		if name == "" {
			name = "(outside every section)"
		}
		fmt.Fprintf(sb, "| %s | %.0f | %.0f | %+.0f |\n", name, r.serfd, r.serf, r.serfd-r.serf)
	}
	if top > 0 && len(all) > top {
		fmt.Fprintf(sb, "| %s | %.0f | %.0f | %+.0f |\n", rest.name, rest.serfd, rest.serf, rest.serfd-rest.serf)
	}
	fmt.Fprintf(sb, "| **total** | **%.0f** | **%.0f** | **%+.0f** |\n", total.serfd, total.serf, total.serfd-total.serf)
}

func fileKiB(b *testing.B, path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	return fi.Size() / 1024
}

package soak

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"
)

// Write prints the report as the table README's "Soak suite" describes,
// listing at most listMax lost and duplicated deliveries one by one (all
// when listMax <= 0), and ending with one line "soak: PASS" or "soak: FAIL:
// reasons".
func (r Report) Write(w io.Writer, listMax int) error {
	if listMax <= 0 {
		listMax = len(r.Lost) + len(r.Duplicated)
	}
	b := &strings.Builder{}
	p := func(format string, a ...any) { fmt.Fprintf(b, format+"\n", a...) }
	p("nodes       %d (%s)", len(r.Hosts), strings.Join(r.Hosts, " "))
	p("events      accepted %d  refused %d  unknown %d", r.Accepted, r.Refused, r.Unknown)
	p("deliveries  delivered %d of %d expected  lost %d  duplicated %d", r.Delivered, r.Expected, len(r.Lost), len(r.Duplicated))
	p("            ids lost on some node %d, on every node %d; refused/unknown ids that ran anyway %d; stray runs %d",
		r.LostIDs, r.LostEverywhere, r.RanUnaccepted, r.Stray)
	p("            runs started again after a crash cut them short %d (%d had logged their id first: skipped by the handler)",
		r.Repeats, r.RepeatsSkipped)
	p("            accepted -> handler run: p50 %s  p99 %s  max %s", roundDur(r.LatencyP50), roundDur(r.LatencyP99), roundDur(r.Max))
	for _, kv := range sortedCounts(r.RefusedWhy) {
		p("            refused %5d x %s", kv.n, kv.k)
	}
	p("queries     sent %d  answered %d  acks %d  responses %d  (of %d expected)", r.Queries, r.QueriesAnswered, r.QueryAcks, r.QueryResp, r.QueryExpected)
	p("faults      %d: %s", r.Faults, joinCounts(r.FaultKinds))
	if len(r.Restarts) > 0 {
		c := slices.Clone(r.Restarts)
		slices.Sort(c)
		p("            kill -9 -> systemd ran serfd again: max %s  median %s  (%d kills)", roundDur(c[len(c)-1]), roundDur(c[len(c)/2]), len(c))
	}
	if len(r.Converge) > 0 {
		c := slices.Clone(r.Converge)
		slices.Sort(c)
		p("            re-convergence after a heal: max %s  median %s  (%d heals; %d over %s; %d not within %s)",
			roundDur(c[len(c)-1]), roundDur(c[len(c)/2]), len(c), len(r.SlowHeals)-r.NotConverged, StuckAfter, r.NotConverged, ConvergeLimit)
	} else {
		p("            re-convergence after a heal: none measured (%d heals not within %s)", r.NotConverged, ConvergeLimit)
	}
	switch {
	case !r.FinalHealed:
		p("            final heal: missing")
	case r.FinalConverged:
		p("            final heal -> every node sees every node alive in %s", roundDur(r.FinalConverge))
	default:
		p("            final heal -> NOT every node alive everywhere within %s; last views:", StuckAfter)
		for _, h := range sortedKeys(r.FinalLast) {
			p("              %s sees %s", h, joinStatus(r.FinalLast[h]))
		}
	}
	p("            hanging handler runs %d (not counted as deliveries)", r.HangRuns)
	if len(r.Lost) > 0 {
		p("lost near   %s", joinCounts(r.LostNear))
		p("lost on     %s", perHost(r.Hosts, r.LostOn))
		p("lost via    %s", perHost(r.Hosts, r.LostVia))
	}
	p("watchdog    restarts %d  injected %d  uninjected %d", r.Watchdog, r.WatchdogInjected, r.UninjectedWatchdog())
	p("journald    suppressed from serfd: %d  (%s)", sum(r.Suppressed), perHost(r.Hosts, r.Suppressed))
	p("journal     %q events recorded: %s", EventName, perHost(r.Hosts, r.JournalUser))
	p("            handler runs dropped (queue full): %s", perHost(r.Hosts, r.HandlerDropped))
	p("            %s runs failed: %s", LogHandler, perHost(r.Hosts, r.HandlerFailed))
	for i, m := range r.Lost {
		if i == listMax {
			p("            ... %d more", len(r.Lost)-listMax)
			break
		}
		near := "no fault near"
		if len(m.Faults) > 0 {
			near = "near " + strings.Join(m.Faults, " ")
		}
		p("lost        %s on %s (sent %s via %s; %s)", m.ID, m.Node, m.Sent.Format("15:04:05.000"), m.Sender, near)
	}
	for i, d := range r.Duplicated {
		if i == listMax {
			p("            ... %d more", len(r.Duplicated)-listMax)
			break
		}
		near := "no fault near"
		if len(d.Faults) > 0 {
			near = "near " + strings.Join(d.Faults, " ")
		}
		p("duplicated  %s on %s: %d runs (%s)", d.ID, d.Node, d.Runs, near)
	}
	if f := r.Failures(); len(f) > 0 {
		p("soak: FAIL: %s", strings.Join(f, "; "))
	} else {
		p("soak: PASS")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func roundDur(d time.Duration) time.Duration {
	if d > time.Second {
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Millisecond)
}

type count struct {
	k string
	n int
}

// sortedCounts orders a histogram by count, then key.
func sortedCounts(m map[string]int) []count {
	out := make([]count, 0, len(m))
	for k, n := range m {
		out = append(out, count{k, n})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].n != out[j].n {
			return out[i].n > out[j].n
		}
		return out[i].k < out[j].k
	})
	return out
}

func joinCounts(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, kv := range sortedCounts(m) {
		parts = append(parts, fmt.Sprintf("%s %d", kv.k, kv.n))
	}
	return strings.Join(parts, ", ")
}

func perHost(hosts []string, m map[string]int) string {
	parts := make([]string, 0, len(hosts))
	for _, h := range hosts {
		parts = append(parts, fmt.Sprintf("%s %d", h, m[h]))
	}
	return strings.Join(parts, ", ")
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func joinStatus(view map[string]string) string {
	if view == nil {
		return "(no answer)"
	}
	parts := make([]string, 0, len(view))
	for _, k := range sortedKeys(view) {
		parts = append(parts, k+"="+view[k])
	}
	return strings.Join(parts, " ")
}

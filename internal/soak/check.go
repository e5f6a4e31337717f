package soak

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Input is everything one soak run leaves behind.
type Input struct {
	// Hosts are the cluster's nodes, each a member from before the first
	// event to the final check.
	Hosts   []string
	Events  []EventRecord
	Queries []QueryRecord
	Rounds  []MembersRound
	Faults  []Fault
	// Runs are the log handler's runs per node; HangRuns the hanging
	// handler's (counted apart: it is not part of lost or duplicated).
	Runs     map[string][]Run
	HangRuns map[string][]Run
	Journals map[string][]JournalEntry
}

// The layout of a results directory (what soak.sh collects):
//
//	events.jsonl  queries.jsonl  members.jsonl  faults.tsv
//	runs/HOST.log  hang/HOST.log  journal/HOST.json
const (
	EventsFile  = "events.jsonl"
	QueriesFile = "queries.jsonl"
	MembersFile = "members.jsonl"
	FaultsFile  = "faults.tsv"
)

// Load reads a results directory. A missing hang log means the hanging
// handler never ran there; every other file must exist.
func Load(dir string, hosts []string) (Input, error) {
	in := Input{Hosts: hosts, Runs: map[string][]Run{}, HangRuns: map[string][]Run{}, Journals: map[string][]JournalEntry{}}
	var err error
	if in.Events, err = readFile(filepath.Join(dir, EventsFile), ReadJSONLines[EventRecord]); err != nil {
		return in, err
	}
	if in.Queries, err = readFile(filepath.Join(dir, QueriesFile), ReadJSONLines[QueryRecord]); err != nil {
		return in, err
	}
	if in.Rounds, err = readFile(filepath.Join(dir, MembersFile), ReadJSONLines[MembersRound]); err != nil {
		return in, err
	}
	if in.Faults, err = readFile(filepath.Join(dir, FaultsFile), ReadFaults); err != nil {
		return in, err
	}
	withLTime := func(r io.Reader, name string) ([]Run, error) { return ReadRuns(r, name, true) }
	noLTime := func(r io.Reader, name string) ([]Run, error) { return ReadRuns(r, name, false) }
	for _, h := range hosts {
		if in.Runs[h], err = readFile(filepath.Join(dir, "runs", h+".log"), withLTime); err != nil {
			return in, err
		}
		in.HangRuns[h], err = readFile(filepath.Join(dir, "hang", h+".log"), noLTime)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return in, err
		}
		if in.Journals[h], err = readFile(filepath.Join(dir, "journal", h+".json"), ReadJournal); err != nil {
			return in, err
		}
	}
	return in, nil
}

// Miss is an accepted event that did not run on a node.
type Miss struct {
	Node   string
	ID     string
	Sender string // the node the API call went to
	Sent   time.Time
	// Faults are the faults near the event on the sender or the node
	// (see nearFaults), as "kind@host".
	Faults []string
}

// Dup is an id that ran more than once on one node.
type Dup struct {
	Node   string
	ID     string
	Runs   int
	Faults []string // as in Miss
}

// Report is what Check finds; Write prints it and Failures lists what makes
// the run fail.
type Report struct {
	Hosts                       []string
	Accepted, Refused, Unknown  int
	RefusedWhy                  map[string]int // refusal message (shortened) -> count
	Delivered                   int            // runs of the log handler
	Expected                    int            // accepted events x nodes
	Lost                        []Miss
	LostIDs                     int // accepted ids missing on at least one node
	LostEverywhere              int // accepted ids that ran nowhere
	Duplicated                  []Dup
	Repeats                     int // runs serfd started again after a crash cut them short (SERF_RUN_ATTEMPT > 1)
	RepeatsSkipped              int // of those, the ones whose first run had logged the id: the handler did nothing
	Stray                       int // runs of ids the generator never sent
	RanUnaccepted               int // refused or unknown ids that ran on some node
	LatencyP50, LatencyP99, Max time.Duration

	Queries, QueriesAnswered            int // sent; completed with a "done" record
	QueryExpected, QueryAcks, QueryResp int

	Faults     int
	FaultKinds map[string]int
	LostNear   map[string]int // fault kind (or "no fault") -> lost pairs near it
	LostOn     map[string]int // node -> lost pairs on it
	LostVia    map[string]int // node the call went to -> lost pairs
	HangRuns   int

	Restarts       []time.Duration // per kill -9: until systemd ran serfd again
	Converge       []time.Duration // per heal, in fault order
	NotConverged   int             // heals with no converged round within ConvergeLimit
	SlowHeals      []string        // heals not re-converged within StuckAfter: "kind@host at 15:04:05"
	FinalHealed    bool            // the fault log has its FinalHeal line
	FinalConverge  time.Duration   // final heal -> every node sees every node alive
	FinalConverged bool
	FinalLast      map[string]map[string]string // the last round's views, when not all alive

	Watchdog, WatchdogInjected int
	Suppressed                 map[string]int // node -> messages journald suppressed from serfd
	JournalUser                map[string]int // node -> "user event" records for EventName
	HandlerDropped             map[string]int // node -> "handler run dropped" records
	HandlerFailed              map[string]int // node -> failed runs of the log handler
}

const (
	// StuckAfter: a node not seen alive by every node this long after a
	// heal (by every node not under another fault), or after the final
	// heal, is stuck.
	StuckAfter = 30 * time.Second
	// ConvergeLimit bounds the search for re-convergence after one heal.
	ConvergeLimit = 120 * time.Second
	// LogHandler and HangHandler are the suite's handler names.
	LogHandler  = "soak-log"
	HangHandler = "soak-hang"
	// msgUserEvent and msgHandlerDropped are serfd's journal MESSAGE_IDs
	// for a received user event and a run dropped on a full queue
	// (packaging/catalog/serfd.catalog).
	msgUserEvent      = "9664abbc98b94854ba5a728f4ccb9983"
	msgHandlerDropped = "8c35ecf5a9804af5b7a5601875b89340"
	// WatchdogKind is the fault kind of an injected watchdog expiry (a
	// frozen serfd); the random loop does not inject it, so every watchdog
	// restart counts as uninjected unless the fault log says otherwise.
	WatchdogKind = "watchdog"
	// Kill9Kind is the fault kind of a kill -9 of serfd's main process; it
	// is healed when systemd runs serfd again.
	Kill9Kind = "kill9"
)

var suppressedRE = regexp.MustCompile(`^Suppressed (\d+) messages from \S*serfd\.service`)

// Check computes the report of one run.
func Check(in Input) Report {
	r := Report{
		Hosts: in.Hosts, RefusedWhy: map[string]int{}, FaultKinds: map[string]int{}, LostNear: map[string]int{},
		LostOn: map[string]int{}, LostVia: map[string]int{},
		Suppressed: map[string]int{}, JournalUser: map[string]int{}, HandlerDropped: map[string]int{}, HandlerFailed: map[string]int{},
	}
	checkEvents(in, &r)
	checkQueries(in, &r)
	checkFaults(in, &r)
	checkJournals(in, &r)
	return r
}

func checkEvents(in Input, r *Report) {
	sent := map[string]EventRecord{}
	for _, e := range in.Events {
		sent[e.ID] = e
		switch e.Outcome {
		case Accepted:
			r.Accepted++
		case Refused:
			r.Refused++
			r.RefusedWhy[shorten(e.Error)]++
		default:
			r.Unknown++
		}
	}
	// runs[node][id] = number of runs
	runs := map[string]map[string]int{}
	first := map[string]time.Time{} // node/id -> first run
	var lat []time.Duration
	for _, h := range in.Hosts {
		runs[h] = map[string]int{}
		for _, run := range in.Runs[h] {
			if run.Attempt > 1 {
				r.Repeats++
			}
			if run.Skipped {
				r.RepeatsSkipped++
				continue
			}
			r.Delivered++
			runs[h][run.ID]++
			e, ok := sent[run.ID]
			if !ok {
				r.Stray++
				continue
			}
			if runs[h][run.ID] == 1 {
				first[h+"/"+run.ID] = run.T
				if e.Outcome == Accepted {
					lat = append(lat, run.T.Sub(e.Sent))
				}
			}
		}
		ids := make([]string, 0, len(runs[h]))
		for id, n := range runs[h] {
			if n > 1 {
				ids = append(ids, id)
			}
		}
		sort.Strings(ids)
		for _, id := range ids {
			d := Dup{Node: h, ID: id, Runs: runs[h][id]}
			if e, ok := sent[id]; ok {
				d.Faults = nearFaults(in.Faults, e, h)
			}
			r.Duplicated = append(r.Duplicated, d)
		}
	}
	for _, e := range in.Events {
		ranSomewhere := false
		missing := 0
		for _, h := range in.Hosts {
			if runs[h][e.ID] > 0 {
				ranSomewhere = true
				continue
			}
			if e.Outcome == Accepted {
				missing++
				r.Lost = append(r.Lost, Miss{Node: h, ID: e.ID, Sender: e.Host, Sent: e.Sent, Faults: nearFaults(in.Faults, e, h)})
			}
		}
		if e.Outcome == Accepted {
			r.Expected += len(in.Hosts)
			if missing > 0 {
				r.LostIDs++
			}
			if missing == len(in.Hosts) {
				r.LostEverywhere++
			}
		} else if ranSomewhere {
			r.RanUnaccepted++
		}
	}
	for _, m := range r.Lost {
		r.LostOn[m.Node]++
		r.LostVia[m.Sender]++
		if len(m.Faults) == 0 {
			r.LostNear["no fault"]++
			continue
		}
		seen := map[string]bool{}
		for _, f := range m.Faults {
			k, _, _ := strings.Cut(f, "@")
			if !seen[k] {
				seen[k] = true
				r.LostNear[k]++
			}
		}
	}
	slices.Sort(lat)
	if n := len(lat); n > 0 {
		r.LatencyP50 = lat[n/2]
		r.LatencyP99 = lat[min(n-1, n*99/100)]
		r.Max = lat[n-1]
	}
}

// Window around an event in which a fault counts as near it: from
// nearBefore before the fault's injection (a fault that began just after
// the API answered can still take the event with it) to nearAfter after
// its heal (the cluster is still re-converging).
const (
	nearBefore = 10 * time.Second
	nearAfter  = 30 * time.Second
)

// nearFaults lists the faults on the event's sender or on node whose
// window [Inject-nearBefore, Heal+nearAfter] contains the event's send time.
func nearFaults(faults []Fault, e EventRecord, node string) []string {
	var out []string
	for _, f := range faults {
		if f.Kind == FinalHeal {
			continue
		}
		on := func(h string) bool { return f.Host == h || f.Peer == h }
		if !on(node) && !on(e.Host) {
			continue
		}
		if e.Sent.Before(f.Inject.Add(-nearBefore)) || e.Sent.After(f.Heal.Add(nearAfter)) {
			continue
		}
		out = append(out, f.Kind+"@"+f.Host)
	}
	return out
}

func checkQueries(in Input, r *Report) {
	for _, q := range in.Queries {
		r.Queries++
		if q.Outcome != Accepted {
			continue
		}
		r.QueriesAnswered++
		r.QueryExpected += q.Expected
		r.QueryAcks += q.Acks
		r.QueryResp += q.Responses
	}
}

func checkFaults(in Input, r *Report) {
	var final *Fault
	for i, f := range in.Faults {
		if f.Kind == FinalHeal {
			final = &in.Faults[i]
			continue
		}
		r.Faults++
		r.FaultKinds[f.Kind]++
		switch f.Kind {
		case WatchdogKind:
			r.WatchdogInjected++
		case Kill9Kind:
			r.Restarts = append(r.Restarts, f.Heal.Sub(f.Inject))
		}
		d, ok := convergedAfter(in, f.Heal, f.Heal.Add(ConvergeLimit))
		if !ok || d > StuckAfter {
			r.SlowHeals = append(r.SlowHeals, fmt.Sprintf("%s@%s at %s", f.Kind, f.Host, f.Heal.Format("15:04:05")))
		}
		if !ok {
			r.NotConverged++
			continue
		}
		r.Converge = append(r.Converge, d)
	}
	for _, h := range in.Hosts {
		r.HangRuns += len(in.HangRuns[h])
	}
	if final == nil {
		return
	}
	r.FinalHealed = true
	r.FinalConverge, r.FinalConverged = convergedAfter(in, final.Heal, final.Heal.Add(StuckAfter))
	if n := len(in.Rounds); n > 0 {
		last := in.Rounds[n-1]
		if !allAlive(last, in.Hosts, nil) {
			r.FinalConverged = false
			r.FinalLast = map[string]map[string]string{}
			for _, h := range in.Hosts {
				r.FinalLast[h] = last.Views[h]
			}
		}
	}
}

// convergedAfter finds the first members round in [from, until] in which
// every node not under a fault at that moment sees every such node alive,
// and returns how long after from it was.
func convergedAfter(in Input, from, until time.Time) (time.Duration, bool) {
	for _, round := range in.Rounds {
		if round.T.Before(from) {
			continue
		}
		if round.T.After(until) {
			break
		}
		faulted := map[string]bool{}
		for _, f := range in.Faults {
			if f.Kind != FinalHeal && !round.T.Before(f.Inject) && !round.T.After(f.Heal) {
				faulted[f.Host] = true
				if f.Peer != "" {
					faulted[f.Peer] = true
				}
			}
		}
		if allAlive(round, in.Hosts, faulted) {
			return round.T.Sub(from), true
		}
	}
	return 0, false
}

// allAlive: every host not in skip answered and sees every host not in
// skip alive.
func allAlive(round MembersRound, hosts []string, skip map[string]bool) bool {
	for _, x := range hosts {
		if skip[x] {
			continue
		}
		view, ok := round.Views[x]
		if !ok {
			return false
		}
		for _, y := range hosts {
			if !skip[y] && view[y] != "alive" {
				return false
			}
		}
	}
	return true
}

func checkJournals(in Input, r *Report) {
	for _, h := range in.Hosts {
		for _, e := range in.Journals[h] {
			msg := e["MESSAGE"]
			fromSystemd := e["UNIT"] == "serfd.service" && e["_SYSTEMD_UNIT"] != "serfd.service"
			switch {
			case fromSystemd && strings.Contains(msg, "Watchdog timeout"):
				r.Watchdog++
			case e["_TRANSPORT"] == "driver" && suppressedRE.MatchString(msg):
				n, _ := strconv.Atoi(suppressedRE.FindStringSubmatch(msg)[1])
				r.Suppressed[h] += n
			case e["MESSAGE_ID"] == msgUserEvent && e["SERF_USER_EVENT"] == EventName:
				r.JournalUser[h]++
			case e["MESSAGE_ID"] == msgHandlerDropped:
				r.HandlerDropped[h]++
			case e["HANDLER"] == LogHandler && e["EXIT_STATUS"] != "" && e["EXIT_STATUS"] != "0":
				r.HandlerFailed[h]++
			}
		}
	}
}

// UninjectedWatchdog is the number of watchdog restarts no fault caused.
func (r Report) UninjectedWatchdog() int { return max(0, r.Watchdog-r.WatchdogInjected) }

// Failures lists why the run fails; none means it passed.
func (r Report) Failures() []string {
	var out []string
	if r.Accepted == 0 {
		out = append(out, "no event was accepted: nothing was measured")
	}
	if n := len(r.Lost); n > 0 {
		out = append(out, fmt.Sprintf("%d lost deliveries (%d accepted events missing on at least one node)", n, r.LostIDs))
	}
	if n := len(r.Duplicated); n > 0 {
		out = append(out, fmt.Sprintf("%d duplicated deliveries", n))
	}
	switch {
	case !r.FinalHealed:
		out = append(out, "the fault log has no final heal: the run did not finish")
	case !r.FinalConverged:
		out = append(out, fmt.Sprintf("a node was not seen alive by every node %s after the final heal (stuck failed, leaving or left)", StuckAfter))
	}
	if n := len(r.SlowHeals); n > 0 {
		out = append(out, fmt.Sprintf("%d heals not followed within %s by every node seeing every node alive (%s)",
			n, StuckAfter, strings.Join(r.SlowHeals, ", ")))
	}
	if n := r.UninjectedWatchdog(); n > 0 {
		out = append(out, fmt.Sprintf("%d watchdog restarts that no fault caused", n))
	}
	return out
}

var procRootRE = regexp.MustCompile(`/proc/[0-9]+/root`)

// shorten makes refusal messages countable: the per-host path prefix of the
// socket (/proc/PID/root) is dropped and long messages are cut.
func shorten(msg string) string {
	if msg == "" {
		return "(no message)"
	}
	msg = procRootRE.ReplaceAllString(msg, "")
	if len(msg) > 100 {
		msg = msg[:100] + "..."
	}
	return msg
}

// Missing counts the accepted events not yet run on each host and the
// handler runs seen so far; the suite polls it to know when delivery has
// drained.
func Missing(events []EventRecord, runs map[string][]Run, hosts []string) (missing, total int) {
	for _, h := range hosts {
		seen := make(map[string]bool, len(runs[h]))
		for _, run := range runs[h] {
			seen[run.ID] = true
		}
		total += len(runs[h])
		for _, e := range events {
			if e.Outcome == Accepted && !seen[e.ID] {
				missing++
			}
		}
	}
	return missing, total
}

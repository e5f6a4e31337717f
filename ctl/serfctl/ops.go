package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/serfd/serfd/ctl"
)

// isTTY reports whether w is a terminal: it answers the TCGETS ioctl
// (/dev/null, another character device, does not).
func isTTY(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	raw, err := f.SyscallConn()
	if err != nil {
		return false
	}
	var errno syscall.Errno
	var t syscall.Termios
	if err := raw.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TCGETS, uintptr(unsafe.Pointer(&t)))
	}); err != nil {
		return false
	}
	return errno == 0
}

// colour reports whether text output may be coloured: stdout is a
// terminal and NO_COLOR is unset (https://no-color.org).
func (a *app) colour() bool {
	return os.Getenv("NO_COLOR") == "" && isTTY(a.terminal)
}

// colourStatus paints a member status: alive green, failed red, left and
// leaving yellow. Every code has the same length, so tabwriter columns
// stay aligned.
func colourStatus(on bool, status string) string {
	return paint(on, statusColour(status), status)
}

// statusColour is the colour of a member status (colourStatus).
func statusColour(status string) string {
	switch status {
	case "alive":
		return sgrGreen
	case "failed":
		return sgrRed
	case "left", "leaving":
		return sgrYellow
	}
	return sgrDefault
}

// paint wraps s in the colour code when on, else returns s.
func paint(on bool, code, s string) string {
	if !on {
		return s
	}
	return code + s + sgrReset
}

// memberFilter keeps the members matching Serf's members filters: every
// regexp is anchored (^...$), a tag filter needs the tag to be present.
type memberFilter struct {
	status, name *regexp.Regexp
	tags         map[string]*regexp.Regexp
}

func newMemberFilter(status, name string, tags []string) (*memberFilter, error) {
	f := &memberFilter{tags: map[string]*regexp.Regexp{}}
	var err error
	compile := func(flagName, expr string) *regexp.Regexp {
		if expr == "" || err != nil {
			return nil
		}
		re, cerr := regexp.Compile("^(?:" + expr + ")$")
		if cerr != nil {
			err = fmt.Errorf("-%s %q: %v", flagName, expr, cerr)
		}
		return re
	}
	f.status = compile("status", status)
	f.name = compile("name", name)
	kv, kerr := kvFlags(tags, "tag")
	if kerr != nil {
		return nil, kerr
	}
	for k, v := range kv {
		f.tags[k] = compile("tag", v)
	}
	if err != nil {
		return nil, err
	}
	return f, nil
}

func (f *memberFilter) match(m ctl.Member) bool {
	if f.status != nil && !f.status.MatchString(m.Status) {
		return false
	}
	if f.name != nil && !f.name.MatchString(m.Name) {
		return false
	}
	for k, re := range f.tags {
		v, ok := m.Tags[k]
		if !ok || !re.MatchString(v) {
			return false
		}
	}
	return true
}

// interruptible returns a context cancelled by SIGINT or SIGTERM.
func interruptible() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func (a *app) monitor(args []string) int {
	var level string
	fs, code := a.subFlags("monitor", "[-log-level LEVEL]", args, func(fs *flag.FlagSet) {
		fs.StringVar(&level, "log-level", "info", "lowest level shown: debug, info, warn or error")
	})
	if fs == nil {
		return code
	}
	if a.extraArg("monitor", fs) {
		return exitUsage
	}
	switch strings.ToLower(level) {
	case "trace", "debug", "info", "warn", "warning", "err", "error":
	default:
		fmt.Fprintf(a.stderr, "serfctl monitor: -log-level %q is not one of debug, info, warn, error\n", level)
		return exitUsage
	}
	c, cancel := interruptible()
	defer cancel()
	enc := json.NewEncoder(a.stdout)
	err := a.client.Monitor(c, level, func(rec ctl.LogRecord) error {
		if a.format == "json" {
			return enc.Encode(rec)
		}
		if rec.Dropped > 0 {
			fmt.Fprintf(a.stdout, "... %d record(s) dropped: serfctl read too slowly ...\n", rec.Dropped)
		}
		keys := make([]string, 0, len(rec.Attrs))
		for k := range rec.Attrs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var b strings.Builder
		fmt.Fprintf(&b, "%s [%s] %s", rec.Time.Local().Format("2006-01-02T15:04:05.000Z07:00"), rec.Level, rec.Message)
		for _, k := range keys {
			fmt.Fprintf(&b, " %s=%q", k, rec.Attrs[k])
		}
		_, err := fmt.Fprintln(a.stdout, b.String())
		return err
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		return a.fail("monitor", err)
	}
	return exitOK
}

func (a *app) info(args []string) int {
	fs, code := a.subFlags("info", "", args, nil)
	if fs == nil {
		return code
	}
	if a.extraArg("info", fs) {
		return exitUsage
	}
	c, cancel := ctx(30 * time.Second)
	defer cancel()
	var sections map[string]map[string]string
	var full *ctl.InfoResponse
	if a.rpc != nil {
		st, err := a.rpc.stats(c)
		if err != nil {
			return a.fail("info", err)
		}
		sections = st
	} else {
		r, err := a.sock.Info(c)
		if err != nil {
			return a.fail("info", err)
		}
		sections, full = infoSections(r), &r
	}
	if a.format == "json" {
		if full == nil {
			return a.json(sections)
		}
		out, err := infoJSON(*full, sections)
		if err != nil {
			return a.fail("info", err)
		}
		return a.json(out)
	}
	// Serf's text: each section, then its "key = value" lines, both sorted.
	var b strings.Builder
	for _, name := range slices.Sorted(maps.Keys(sections)) {
		fmt.Fprintf(&b, "%s:\n", name)
		for _, k := range slices.Sorted(maps.Keys(sections[name])) {
			fmt.Fprintf(&b, "\t%s = %s\n", k, sections[name][k])
		}
	}
	if _, err := io.WriteString(a.stdout, b.String()); err != nil {
		return a.fail("write output", err)
	}
	return exitOK
}

// infoSections is serfd's report in the sections of Serf's stats (agent,
// runtime, serf, tags: every key Serf has, named as Serf names it), with
// serfd's own figures added to them and in sections of their own
// (control, handler_pool, handlers).
func infoSections(r ctl.InfoResponse) map[string]map[string]string {
	str := func(v any) string { return fmt.Sprint(v) }
	tags := maps.Clone(r.Tags)
	if tags == nil {
		tags = map[string]string{}
	}
	spool := r.HandlerPool.Spool
	if spool == "" {
		spool = "(none)"
	}
	handlers := map[string]string{}
	for _, h := range r.Handlers {
		handlers[h.Name] = handlerLine(h)
	}
	g, m, rt, hp := r.Gossip, r.Members, r.Runtime, r.HandlerPool
	dirProblem := hp.DirProblem
	if dirProblem == "" {
		dirProblem = "(none)"
	}
	return map[string]map[string]string{
		"agent": {"name": r.Node, "version": r.Version, "serfctl_version": version, "gossip_addr": r.GossipAddr,
			"log_level": r.LogLevel},
		"runtime": {"os": rt.OS, "arch": rt.Arch, "version": rt.GoVersion, "max_procs": str(rt.MaxProcs),
			"goroutines": str(rt.Goroutines), "cpu_count": str(rt.CPUCount), "heap_inuse_bytes": str(rt.HeapInuse),
			"uptime": rt.Uptime.Round(time.Second).String()},
		"serf": {"members": str(m.Total), "failed": str(m.Failed), "left": str(m.Left), "alive": str(m.Alive),
			"leaving": str(m.Leaving), "health_score": str(g.HealthScore), "member_time": str(g.MemberTime),
			"event_time": str(g.EventTime), "query_time": str(g.QueryTime), "intent_queue": str(g.IntentQueue),
			"event_queue": str(g.EventQueue), "query_queue": str(g.QueryQueue), "encrypted": str(r.EncryptionOn),
			"coordinate_resets": str(g.CoordinateResets), "dropped_events": str(g.DroppedEvents),
			"too_old_events": str(g.TooOldEvents), "refused_events": str(g.RefusedEvents),
			"refused_queries": str(g.RefusedQueries), "flaps": str(g.Flaps)},
		"tags": tags,
		"control": {"socket": r.ControlSocket, "socket_activated": str(r.SocketActivated), "admin_group": r.AdminGroup,
			"config_files": strings.Join(r.ConfigFiles, " "), "monitor_drops": str(r.MonitorDrops)},
		"handler_pool": {"workers": str(hp.Workers), "running": str(hp.Running), "queued": str(hp.Queued),
			"queue_limit": str(hp.QueueLimit), "spooled": str(hp.Spooled), "spool": spool, "watching": str(hp.Watching),
			"dir": hp.Dir, "dir_problem": dirProblem, "handlers": str(hp.Handlers), "refused": str(hp.Refused),
			"dropped": str(hp.Dropped)},
		"handlers": handlers,
	}
}

// handlerLine is a handler's line of info's handlers section: its state
// (and why, for a file that is no handler), settings and counters, then
// its last run, if one finished:
//
//	active events=user:deploy tags="role=web" concurrency=1 timeout=1m0s runs=3 failures=1 ... last_run=2026-03-01T10:00:00Z
//	last_outcome=exit_nonzero last_exit=3 last_duration=12ms last_event="user event deploy"
//	refused reason="not executable (mode 0644)" events=* concurrency=1 timeout=1m0s runs=0 ...
func handlerLine(h ctl.HandlerStats) string {
	state := h.State
	if state == "" { // a serfd older than the field
		state = "active"
		if !h.Active {
			state = "gone"
		}
	}
	var b strings.Builder
	b.WriteString(state)
	if h.Reason != "" {
		fmt.Fprintf(&b, " reason=%q", h.Reason)
	}
	if len(h.Events) > 0 {
		fmt.Fprintf(&b, " events=%s", strings.Join(h.Events, ","))
	}
	if len(h.Tags) > 0 {
		fmt.Fprintf(&b, " tags=%q", tagFilterList(h.Tags))
	}
	if h.Concurrency > 0 {
		fmt.Fprintf(&b, " concurrency=%d", h.Concurrency)
	}
	if h.Timeout > 0 {
		fmt.Fprintf(&b, " timeout=%s", h.Timeout)
	}
	fmt.Fprintf(&b, " runs=%d failures=%d timeouts=%d drops=%d repeats=%d queued=%d running=%d",
		h.Runs, h.Failures, h.Timeouts, h.Drops, h.Repeats, h.Queued, h.Running)
	if h.LastFinished.IsZero() {
		return b.String()
	}
	fmt.Fprintf(&b, " last_run=%s", h.LastFinished.Format(time.RFC3339))
	if h.LastOutcome != "" {
		fmt.Fprintf(&b, " last_outcome=%s", h.LastOutcome)
	}
	if h.LastSignal != "" {
		fmt.Fprintf(&b, " last_signal=%s", h.LastSignal)
	}
	fmt.Fprintf(&b, " last_exit=%d last_duration=%s", h.LastExitStatus, h.LastDuration)
	if h.LastEvent != "" {
		fmt.Fprintf(&b, " last_event=%q", h.LastEvent)
	}
	return b.String()
}

// tagFilterList is a handler's tag filters as one string, NAME=REGEXP
// pairs in name order, comma-separated ("dc=eu-.*,role=web").
func tagFilterList(tags map[string]string) string {
	pairs := make([]string, 0, len(tags))
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		pairs = append(pairs, k+"="+tags[k])
	}
	return strings.Join(pairs, ",")
}

// serfRuntimeKeys are the keys of Serf's runtime stats.
var serfRuntimeKeys = []string{"os", "arch", "version", "max_procs", "goroutines", "cpu_count"}

// infoJSON is serfd's report in the shape of serf info -format json:
// Serf's sections agent, runtime, serf and tags with Serf's keys and string
// values, beside every other key of the control API's report, typed
// (runtime keeps its own keys too: go_version, heap_inuse_bytes, uptime_ns).
func infoJSON(r ctl.InfoResponse, sections map[string]map[string]string) (map[string]any, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber() // byte counts and nanoseconds stay exact
	var out map[string]any
	if err := dec.Decode(&out); err != nil {
		return nil, err
	}
	runtime, _ := out["runtime"].(map[string]any)
	if runtime == nil {
		runtime = map[string]any{}
	}
	for _, k := range serfRuntimeKeys {
		runtime[k] = sections["runtime"][k]
	}
	out["runtime"] = runtime
	for _, k := range []string{"agent", "serf", "tags"} {
		out[k] = sections[k]
	}
	return out, nil
}

// What serf reachability prints when acks are missing or unexpected.
const (
	reachTooManyAcks = `This could mean Serf is detecting false-failures due to a misconfiguration or network issue.`
	reachTooFewAcks  = `This could mean Serf gossip packets are being lost due to a misconfiguration or network issue.`
	reachDuplicates  = `Duplicate responses means there is a misconfiguration. Verify that node names are unique.`
	reachTips        = `Troubleshooting tips:
* Ensure that the bind addr:port is accessible by all other nodes
* If an advertise address is set, ensure it routes to the bind address
* Check that no nodes are behind a NAT
* If nodes are behind firewalls or iptables, check that Serf traffic is permitted (UDP and TCP)
* Verify networking equipment is functional`
)

// reachability pings every member with Serf's _serf_ping query and
// prints what serf reachability prints: the member counts, then either
// success or the live members that did not ack (or the acks from members
// not alive) with troubleshooting tips, exit 1.
func (a *app) reachability(args []string) int {
	var timeout time.Duration
	var verbose bool
	fs, code := a.subFlags("reachability", "[-verbose] [-timeout D]", args, func(fs *flag.FlagSet) {
		fs.DurationVar(&timeout, "timeout", 0, "how long to wait for acks (0: the cluster's default)")
		fs.BoolVar(&verbose, "verbose", false, "also print each ack and the query's times")
	})
	if fs == nil {
		return code
	}
	if a.extraArg("reachability", fs) {
		return exitUsage
	}
	text := a.format == "text"
	c, cancel := ctx(10 * time.Minute)
	defer cancel()
	ms, err := a.client.Members(c)
	if err != nil {
		return a.fail("reachability", err)
	}
	live := map[string]bool{}
	for _, m := range ms.Members {
		if m.Status == "alive" {
			live[m.Name] = true
		}
	}
	if text {
		fmt.Fprintf(a.stdout, "Total members: %d, live members: %d\nStarting reachability test...\n", len(ms.Members), len(live))
	}
	req := ctl.QueryRequest{Name: "_serf_ping"}
	if timeout > 0 {
		req.Timeout = timeout.String()
	}
	start := time.Now()
	last := start
	acked := map[string]bool{}
	dups := false
	err = a.client.Query(c, req, func(rec ctl.QueryRecord) error {
		if rec.Type != ctl.QueryAck {
			return nil
		}
		if text && verbose {
			fmt.Fprintf(a.stdout, "\tAck from '%s'\n", rec.From)
		}
		if acked[rec.From] {
			dups = true
			if text {
				fmt.Fprintf(a.stdout, "Duplicate response from '%s'\n", rec.From)
			}
		}
		acked[rec.From], last = true, time.Now()
		return nil
	})
	if err != nil {
		return a.fail("reachability", err)
	}
	elapsed := time.Since(start)
	var missing, extra []string
	for n := range live {
		if !acked[n] {
			missing = append(missing, n)
		}
	}
	for n := range acked {
		if !live[n] {
			extra = append(extra, n)
		}
	}
	slices.Sort(missing)
	slices.Sort(extra)
	if !text {
		if missing == nil {
			missing = []string{}
		}
		if code := a.json(struct {
			Alive    []string      `json:"alive"`
			Acks     []string      `json:"acks"`
			Missing  []string      `json:"missing"`
			Extra    []string      `json:"not_alive_acks,omitempty"`
			Dups     bool          `json:"duplicates,omitempty"`
			Duration time.Duration `json:"duration_ns"`
		}{slices.Sorted(maps.Keys(live)), slices.Sorted(maps.Keys(acked)), missing, extra, dups, elapsed}); code != exitOK {
			return code
		}
	} else {
		if verbose {
			fmt.Fprintf(a.stdout, "Query time: %0.2f sec, time to last response: %0.2f sec\n", elapsed.Seconds(), last.Sub(start).Seconds())
		}
		if dups {
			fmt.Fprintln(a.stdout, reachDuplicates)
		}
		switch {
		case len(missing) > 0:
			fmt.Fprintln(a.stdout, "Received less acks than live nodes! Missing acks from:")
			for _, n := range missing {
				fmt.Fprintf(a.stdout, "\t%s\n", n)
			}
			fmt.Fprintf(a.stdout, "%s\n\n%s\n", reachTooFewAcks, reachTips)
		case len(extra) > 0:
			fmt.Fprintln(a.stdout, "Received more acks than live nodes! Acks from non-live nodes:")
			for _, n := range extra {
				fmt.Fprintf(a.stdout, "\t%s\n", n)
			}
			fmt.Fprintf(a.stdout, "%s\n\n%s\n", reachTooManyAcks, reachTips)
		default:
			fmt.Fprintln(a.stdout, "Successfully contacted all live nodes")
		}
	}
	if len(missing) > 0 || len(extra) > 0 || dups {
		return exitFail
	}
	return exitOK
}

func (a *app) reload(args []string) int {
	fs, code := a.subFlags("reload", "", args, nil)
	if fs == nil {
		return code
	}
	if a.extraArg("reload", fs) {
		return exitUsage
	}
	if a.socketOnly("reload", "Serf's protocol has no reload") {
		return exitUsage
	}
	c, cancel := ctx(time.Minute)
	defer cancel()
	r, err := a.sock.Reload(c)
	if err != nil {
		var e *ctl.Error
		if errors.As(err, &e) && len(e.Problems) > 0 {
			fmt.Fprintln(a.stderr, "serfctl: reload: the configuration does not load; serfd keeps running the old one:")
			for _, p := range e.Problems {
				fmt.Fprintf(a.stderr, "  %s\n", p)
			}
			return exitFail
		}
		return a.fail("reload", err)
	}
	if a.format == "json" {
		return a.json(r)
	}
	fmt.Fprintf(a.stdout, "Configuration reloaded from %s.\n", strings.Join(r.ConfigFiles, ", "))
	if len(r.Applied) == 0 {
		fmt.Fprintln(a.stdout, "Nothing that applies live changed.")
	} else {
		fmt.Fprintf(a.stdout, "Applied: %s\n", strings.Join(r.Applied, ", "))
	}
	if len(r.NeedsRestart) > 0 {
		fmt.Fprintf(a.stdout, "Changed but needs a restart of serfd (systemctl restart serfd): %s\n", strings.Join(r.NeedsRestart, ", "))
	}
	return exitOK
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
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
	if !on {
		return status
	}
	code := ""
	switch status {
	case "alive":
		code = sgrGreen
	case "failed":
		code = sgrRed
	case "left", "leaving":
		code = sgrYellow
	default:
		code = sgrDefault
	}
	return code + status + sgrReset
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
	r, err := a.client.Info(c)
	if err != nil {
		return a.fail("info", err)
	}
	if a.format == "json" {
		return a.json(r)
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 1, ' ', 0)
	section := func(name string, kv ...any) {
		fmt.Fprintf(tw, "%s:\n", name)
		for i := 0; i+1 < len(kv); i += 2 {
			fmt.Fprintf(tw, "\t%v\t= %v\n", kv[i], kv[i+1])
		}
	}
	section("agent", "name", r.Node, "version", r.Version, "serfctl_version", version,
		"gossip_addr", r.GossipAddr, "tags", formatTags(r.Tags), "encryption", r.EncryptionOn,
		"log_level", r.LogLevel)
	section("runtime", "go_version", r.Runtime.GoVersion, "os", r.Runtime.OS, "arch", r.Runtime.Arch,
		"max_procs", r.Runtime.MaxProcs, "goroutines", r.Runtime.Goroutines, "heap_inuse_bytes", r.Runtime.HeapInuse, "uptime", r.Runtime.Uptime.Round(time.Second))
	section("control", "socket", r.ControlSocket, "socket_activated", r.SocketActivated,
		"admin_group", r.AdminGroup, "config_files", strings.Join(r.ConfigFiles, " "),
		"monitor_drops", r.MonitorDrops)
	section("serf", "members", r.Members.Total, "alive", r.Members.Alive, "leaving", r.Members.Leaving,
		"left", r.Members.Left, "failed", r.Members.Failed,
		"member_time", r.Gossip.MemberTime, "event_time", r.Gossip.EventTime, "query_time", r.Gossip.QueryTime,
		"intent_queue", r.Gossip.IntentQueue, "event_queue", r.Gossip.EventQueue, "query_queue", r.Gossip.QueryQueue,
		"dropped_events", r.Gossip.DroppedEvents, "too_old_events", r.Gossip.TooOldEvents,
		"refused_events", r.Gossip.RefusedEvents, "refused_queries", r.Gossip.RefusedQueries,
		"health_score", r.Gossip.HealthScore,
		"coordinate_resets", r.Gossip.CoordinateResets, "flaps", r.Gossip.Flaps)
	hp := r.HandlerPool
	spool := hp.Spool
	if spool == "" {
		spool = "(none)"
	}
	section("handler_pool", "workers", hp.Workers, "running", hp.Running, "queued", hp.Queued,
		"queue_limit", hp.QueueLimit, "spooled", hp.Spooled, "spool", spool, "watching", hp.Watching)
	fmt.Fprintln(tw, "handlers:")
	if len(r.Handlers) == 0 {
		fmt.Fprintln(tw, "\t(none)")
	}
	for _, h := range r.Handlers {
		state := "active"
		if !h.Active {
			state = "gone"
		}
		fmt.Fprintf(tw, "\t%s\t%s runs=%d failures=%d timeouts=%d drops=%d repeats=%d queued=%d running=%d last_exit=%d last_duration=%s\n",
			h.Name, state, h.Runs, h.Failures, h.Timeouts, h.Drops, h.Repeats, h.Queued, h.Running, h.LastExitStatus, h.LastDuration)
	}
	if err := tw.Flush(); err != nil {
		return a.fail("write output", err)
	}
	return exitOK
}

const reachabilityTips = `Troubleshooting tips:
* Ensure that the bind addr:port is reachable by all other nodes (UDP and TCP)
* If an advertise address is set, ensure it routes to the bind address
* Check that no nodes are behind a NAT
* If nodes are behind firewalls or iptables, check that gossip traffic is permitted (UDP and TCP)
* Verify networking equipment is functional`

func (a *app) reachability(args []string) int {
	var timeout time.Duration
	fs, code := a.subFlags("reachability", "[-timeout D]", args, func(fs *flag.FlagSet) {
		fs.DurationVar(&timeout, "timeout", 0, "how long to wait for acks (0: the cluster's default)")
	})
	if fs == nil {
		return code
	}
	if a.extraArg("reachability", fs) {
		return exitUsage
	}
	c, cancel := ctx(10 * time.Minute)
	defer cancel()
	ms, err := a.client.Members(c)
	if err != nil {
		return a.fail("reachability", err)
	}
	var alive []string
	for _, m := range ms.Members {
		if m.Status == "alive" {
			alive = append(alive, m.Name)
		}
	}
	sort.Strings(alive)
	if a.format == "text" {
		fmt.Fprintln(a.stdout, "Starting reachability test...")
	}
	req := ctl.QueryRequest{Name: "_serf_ping"}
	if timeout > 0 {
		req.Timeout = timeout.String()
	}
	start := time.Now()
	acked := map[string]bool{}
	err = a.client.Query(c, req, func(rec ctl.QueryRecord) error {
		if rec.Type == ctl.QueryAck {
			acked[rec.From] = true
		}
		return nil
	})
	if err != nil {
		return a.fail("reachability", err)
	}
	elapsed := time.Since(start)
	var missing []string
	for _, n := range alive {
		if !acked[n] {
			missing = append(missing, n)
		}
	}
	ackNames := make([]string, 0, len(acked))
	for n := range acked {
		ackNames = append(ackNames, n)
	}
	slices.Sort(ackNames)
	if a.format == "json" {
		if missing == nil {
			missing = []string{}
		}
		if code := a.json(struct {
			Alive    []string      `json:"alive"`
			Acks     []string      `json:"acks"`
			Missing  []string      `json:"missing"`
			Duration time.Duration `json:"duration_ns"`
		}{alive, ackNames, missing, elapsed}); code != exitOK {
			return code
		}
	} else {
		fmt.Fprintf(a.stdout, "Query time: %s, %d/%d alive nodes acknowledged\n", elapsed.Round(time.Millisecond), len(alive)-len(missing), len(alive))
		switch {
		case len(missing) > 0:
			fmt.Fprintf(a.stdout, "Following live nodes did not respond: %s\n\n%s\n", strings.Join(missing, ", "), reachabilityTips)
		case len(acked) > len(alive):
			fmt.Fprintf(a.stdout, "Received more acks (%d) than there are alive nodes (%d): members may be wrongly seen as failed, a misconfiguration or a network problem.\n\n%s\n", len(acked), len(alive), reachabilityTips)
		default:
			fmt.Fprintln(a.stdout, "Successfully contacted all live nodes")
		}
	}
	if len(missing) > 0 || len(acked) > len(alive) {
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
	c, cancel := ctx(time.Minute)
	defer cancel()
	r, err := a.client.Reload(c)
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

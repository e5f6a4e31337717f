// Command serfctl controls the local serfd over its Unix socket, or a
// Serf agent (or serfd) over Serf's RPC with -rpc-addr. See serfctl(1).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/serfd/serfd/ctl"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// synopsis is the first line of usage: what a usage error prints.
const synopsis = `usage: serfctl [-socket PATH] [-rpc-addr HOST:PORT [-rpc-auth TOKEN]] [-format text|json] [-version] COMMAND [ARGS]`

const usage = synopsis + `

Commands:
  members [-detailed] [-status RE] [-name RE] [-tag KEY=RE]... [-watch [-interval D]]
                          list the cluster's members (filters are anchored regexps);
                          -watch: follow them and the recent events until interrupted
  top [-interval D] ...   members -watch
  join [-replay] ADDR...  join a cluster through one or more of its members
  leave                   leave the cluster gracefully and stop serfd
  event [-coalesce] NAME [PAYLOAD|-]
                          broadcast a user event ("-" reads the payload from stdin)
  query [-node NAME]... [-tag KEY=RE]... [-timeout D] [-no-ack] [-relay-factor N] NAME [PAYLOAD|-]
                          ask the cluster; prints acks and responses as they arrive
  tags [-set KEY=VALUE]... [-delete KEY]...
                          change this node's tags; peers see member-update
  force-leave [-prune] NODE
                          make a failed node leave (-prune: forget it now)
  keys install KEY | use KEY | remove KEY | list
                          rotate the cluster's encryption keys (also as Serf's
                          -install KEY, -use KEY, -remove KEY, -list)
  keygen                  print a new random 32-byte key, base64
  rtt NODE [NODE]         estimated round trip time from network coordinates
  monitor [-log-level LEVEL]
                          stream serfd's log records until interrupted
  info                    serf info's stats; from the socket also handler and queue stats
  reachability [-verbose] [-timeout D]
                          ping every member with a query; exit 1 if some do not answer
  reload                  re-read the configuration and apply what can change live
                          (control socket only)
  version                 print serfctl's version (also -version, --version)
  help [COMMAND]          this text, or a command's own usage (also COMMAND -h)

serfctl talks to serfd's control socket, or over Serf's RPC (msgpack over
TCP, as the serf command) to a Serf agent or to serfd's rpc listener. Which
one, first match wins:
  1. -rpc-addr HOST:PORT     Serf's RPC at that address
  2. -socket PATH            that control socket
  3. $SERF_RPC_ADDR          Serf's RPC at that address, when set and not empty
  4. $SERFD_SOCKET, else /run/serfd.sock
The RPC token is -rpc-auth, else $SERF_RPC_AUTH. -rpc-addr and -rpc-auth may
also follow the command, as serf takes them. Over Serf's RPC every command
but reload and members -watch works, with the same output; query and
reachability run to the query's timeout, and keys list has no primary column.
Boolean flags also take -flag=true and -flag=false.
Colour is used only when stdout is a terminal and NO_COLOR is unset.
members -watch redraws in place only on a terminal (not TERM=dumb; q quits); else it
prints the table afresh on each change, blocks separated by a blank line.
Mutating commands need root or membership of serfd's admin group (serf).
Exit status: 0 success, 1 failed operation, 2 bad usage.
`

// exit statuses
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

type app struct {
	// client is what the commands talk to, chosen by connect once the
	// command's flags are parsed: sock, serfd's control socket, or rpc,
	// Serf's RPC; the other one is nil.
	client backend
	sock   *ctl.Client
	rpc    *rpcBackend
	to     targetFlags
	format string
	stdin  io.Reader
	stdout io.Writer
	// terminal and errTerminal are stdout and stderr as given, for
	// telling whether they are terminals; output goes through stdout and
	// stderr, which escape control characters (safeWriter).
	terminal, errTerminal io.Writer
	stderr                io.Writer
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serfctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {} // -h prints the whole usage, a mistake one line (below)
	a := &app{stdin: stdin, stdout: safeWriter{stdout}, stderr: safeWriter{stderr}, terminal: stdout, errTerminal: stderr}
	fs.Func("socket", "control socket `path`", func(v string) error {
		a.to.socket, a.to.socketSet = v, true
		return nil
	})
	a.to.register(fs)
	format := fs.String("format", "text", "output format: text or json")
	showVersion := fs.Bool("version", false, "print serfctl's version")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			return exitOK
		}
		fmt.Fprintf(stderr, "%s\n(serfctl help lists the commands)\n", synopsis)
		return exitUsage
	}
	if *showVersion {
		fmt.Fprintf(stdout, "serfctl %s\n", version)
		return exitOK
	}
	if *format != "text" && *format != "json" {
		fmt.Fprintf(stderr, "serfctl: -format %q is not text or json\n", *format)
		return exitUsage
	}
	if fs.NArg() == 0 {
		fmt.Fprintf(stderr, "serfctl: no command given\n%s\n(serfctl help lists the commands)\n", synopsis)
		return exitUsage
	}
	a.format = *format
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	commands := map[string]func([]string) int{
		"members":      a.members,
		"top":          func(args []string) int { return a.members(append([]string{"-watch"}, args...)) },
		"join":         a.join,
		"leave":        a.leave,
		"event":        a.event,
		"query":        a.query,
		"tags":         a.tags,
		"force-leave":  a.forceLeave,
		"keys":         a.keys,
		"keygen":       a.keygen,
		"rtt":          a.rtt,
		"monitor":      a.monitor,
		"info":         a.info,
		"reachability": a.reachability,
		"reload":       a.reload,
		"version":      a.version,
	}
	if cmd == "help" {
		switch {
		case len(rest) == 0:
			fmt.Fprint(stdout, usage)
			return exitOK
		case commands[rest[0]] != nil && rest[0] != "keygen" && rest[0] != "version":
			a.stderr = safeWriter{stdout} // asked for: the usage is the output
			commands[rest[0]]([]string{"-h"})
			return exitOK
		case commands[rest[0]] != nil:
			fmt.Fprintf(stdout, "usage: serfctl %s\n", rest[0])
			return exitOK
		}
		cmd = rest[0]
	}
	f, ok := commands[cmd]
	if !ok {
		fmt.Fprintf(stderr, "serfctl: unknown command %q (serfctl help lists the commands)\n", cmd)
		return exitUsage
	}
	code := f(rest)
	if a.rpc != nil {
		a.rpc.c.Close()
	}
	return code
}

// subFlags parses a subcommand's flags, then chooses what to talk to
// (connect). -format, -rpc-addr and -rpc-auth are accepted after the
// command too, as serf takes them.
func (a *app) subFlags(name, synopsis string, args []string, def func(*flag.FlagSet)) (*flag.FlagSet, int) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(a.stderr)
	fs.Usage = func() {
		fmt.Fprintf(a.stderr, "usage: serfctl %s %s\n", name, synopsis)
		fs.PrintDefaults()
	}
	fs.StringVar(&a.format, "format", a.format, "output format: text or json")
	a.to.register(fs)
	if def != nil {
		def(fs)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, exitOK
		}
		return nil, exitUsage
	}
	if a.format != "text" && a.format != "json" {
		fmt.Fprintf(a.stderr, "serfctl: -format %q is not text or json\n", a.format)
		return nil, exitUsage
	}
	if err := a.connect(); err != nil {
		fmt.Fprintf(a.stderr, "serfctl %s: %v\n", name, err)
		return nil, exitUsage
	}
	return fs, -1
}

// socketOnly refuses a command that only serfd's control socket serves
// when serfctl talks Serf's RPC, with the reason; it reports whether it
// refused.
func (a *app) socketOnly(name, why string) bool {
	if a.sock != nil {
		return false
	}
	fmt.Fprintf(a.stderr, "serfctl %s: not over Serf's RPC (%s): %s; use serfd's control socket (-socket)\n", name, a.rpc.addr, why)
	return true
}

// extraArg reports an argument given to a command that takes none.
func (a *app) extraArg(name string, fs *flag.FlagSet) bool {
	if fs.NArg() == 0 {
		return false
	}
	fmt.Fprintf(a.stderr, "serfctl %s: unexpected argument %q\n", name, fs.Arg(0))
	return true
}

// fail reports err, with every problem the daemon listed (a configuration
// that does not load) on a line of its own.
func (a *app) fail(what string, err error) int {
	fmt.Fprintf(a.stderr, "serfctl: %s: %v\n", what, err)
	var e *ctl.Error
	if errors.As(err, &e) {
		for _, p := range e.Problems {
			fmt.Fprintf(a.stderr, "  %s\n", p)
		}
	}
	return exitFail
}

func (a *app) json(v any) int {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return a.fail("write output", err)
	}
	return exitOK
}

func ctx(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

func (a *app) members(args []string) int {
	var statusRE, nameRE string
	var tagREs multiFlag
	var detailed, watch bool
	var interval time.Duration
	fs, code := a.subFlags("members", "[-detailed] [-status REGEXP] [-name REGEXP] [-tag KEY=REGEXP]... [-watch [-interval D]]", args, func(fs *flag.FlagSet) {
		fs.BoolVar(&detailed, "detailed", false, "also show each member's protocol version and range")
		fs.StringVar(&statusRE, "status", "", "only members whose status matches REGEXP (anchored)")
		fs.StringVar(&nameRE, "name", "", "only members whose name matches REGEXP (anchored)")
		fs.Var(&tagREs, "tag", "only members whose tag KEY matches REGEXP (anchored; repeatable)")
		fs.BoolVar(&watch, "watch", false, "follow the members and the recent events until interrupted (also: serfctl top)")
		fs.DurationVar(&interval, "interval", watchInterval, "with -watch, fetch the members at least this often (member events fetch them at once)")
	})
	if fs == nil {
		return code
	}
	if a.extraArg("members", fs) {
		return exitUsage
	}
	filter, err := newMemberFilter(statusRE, nameRE, tagREs)
	if err != nil {
		fmt.Fprintf(a.stderr, "serfctl members: %v\n", err)
		return exitUsage
	}
	intervalSet := false
	fs.Visit(func(f *flag.Flag) { intervalSet = intervalSet || f.Name == "interval" })
	switch {
	case intervalSet && !watch:
		fmt.Fprintln(a.stderr, "serfctl members: -interval goes with -watch")
		return exitUsage
	case !watch:
	case interval <= 0:
		fmt.Fprintf(a.stderr, "serfctl members: -interval %v is not positive\n", interval)
		return exitUsage
	case a.format == "json":
		fmt.Fprintln(a.stderr, "serfctl members: -watch is a view for people, text only; programs can follow monitor -format json")
		return exitUsage
	case a.socketOnly("members -watch", "it follows the event records of serfd's log stream"):
		return exitUsage
	default:
		return a.watch(filter, detailed, interval)
	}
	c, cancel := ctx(30 * time.Second)
	defer cancel()
	ms, err := a.fetchMembers(c, filter)
	if err != nil {
		return a.fail("members", err)
	}
	if a.format == "json" {
		// Serf's `serf members -format json` shape: addr is ip:port.
		out := make([]ctl.Member, len(ms))
		for i, m := range ms {
			m.Addr = hostPort(m.Addr, m.Port)
			if m.Tags == nil {
				m.Tags = map[string]string{}
			}
			out[i] = m
		}
		return a.json(ctl.MembersResponse{Members: out})
	}
	if err := writeMembers(a.stdout, ms, a.colour(), detailed); err != nil {
		return a.fail("write output", err)
	}
	return exitOK
}

// fetchMembers lists the members that filter keeps, sorted by name.
func (a *app) fetchMembers(c context.Context, filter *memberFilter) ([]ctl.Member, error) {
	resp, err := a.client.Members(c)
	if err != nil {
		return nil, err
	}
	kept := resp.Members[:0]
	for _, m := range resp.Members {
		if filter.match(m) {
			kept = append(kept, m)
		}
	}
	sort.Slice(kept, func(i, j int) bool { return kept[i].Name < kept[j].Name })
	return kept, nil
}

// writeMembers prints the member table as serf members does: name,
// address, status (coloured when colour is set) and tags, one member a
// line, columns aligned; with detailed, the protocol version and range too.
func writeMembers(w io.Writer, ms []ctl.Member, colour, detailed bool) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, m := range ms {
		// Colour codes go after the padding so columns stay aligned.
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s", m.Name, hostPort(m.Addr, m.Port), colourStatus(colour, m.Status), formatTags(m.Tags))
		if detailed {
			fmt.Fprintf(tw, "\tProtocol Version: %d\tAvailable Protocol Range: [%d, %d]",
				m.Protocol["version"], m.Protocol["min"], m.Protocol["max"])
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

func hostPort(addr string, port uint16) string {
	if strings.Contains(addr, ":") {
		return fmt.Sprintf("[%s]:%d", addr, port)
	}
	return fmt.Sprintf("%s:%d", addr, port)
}

func formatTags(tags map[string]string) string {
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+tags[k])
	}
	return strings.Join(parts, ",")
}

func (a *app) join(args []string) int {
	var replay bool
	fs, code := a.subFlags("join", "[-replay] ADDR...", args, func(fs *flag.FlagSet) {
		fs.BoolVar(&replay, "replay", false, "replay past user events to this node's handlers")
	})
	if fs == nil {
		return code
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(a.stderr, "serfctl join: give at least one address (host or host:port)")
		return exitUsage
	}
	c, cancel := ctx(2 * time.Minute)
	defer cancel()
	resp, err := a.client.Join(c, ctl.JoinRequest{Addrs: fs.Args(), Replay: replay})
	if err != nil {
		return a.fail("join", err)
	}
	if a.format == "json" {
		return a.json(resp)
	}
	fmt.Fprintf(a.stdout, "Successfully joined cluster by contacting %d node(s).\n", resp.Joined)
	return exitOK
}

func (a *app) leave(args []string) int {
	fs, code := a.subFlags("leave", "", args, nil)
	if fs == nil {
		return code
	}
	if a.extraArg("leave", fs) {
		return exitUsage
	}
	c, cancel := ctx(time.Minute)
	defer cancel()
	resp, err := a.client.Leave(c)
	if err != nil {
		return a.fail("leave", err)
	}
	if a.format == "json" {
		return a.json(resp)
	}
	fmt.Fprintln(a.stdout, "Graceful leave complete.")
	return exitOK
}

func (a *app) event(args []string) int {
	var coalesce bool
	var wait time.Duration
	fs, code := a.subFlags("event", "[-coalesce] [-wait D] NAME [PAYLOAD|-]", args, func(fs *flag.FlagSet) {
		fs.BoolVar(&coalesce, "coalesce", false, "let receivers coalesce events of this name sent in quick succession")
		fs.DurationVar(&wait, "wait", 10*time.Second, "while serfd answers busy (503), retry for up to this long; 0: do not retry")
	})
	if fs == nil {
		return code
	}
	if fs.NArg() < 1 || fs.NArg() > 2 {
		fmt.Fprintln(a.stderr, "serfctl event: give a NAME and at most one PAYLOAD (or - to read it from stdin)")
		return exitUsage
	}
	req := ctl.EventRequest{Name: fs.Arg(0), Coalesce: coalesce}
	if fs.NArg() == 2 {
		p, err := a.payloadArg(fs.Arg(1))
		if err != nil {
			return a.fail("read payload from stdin", err)
		}
		req.Payload = p
	}
	if wait < 0 {
		fmt.Fprintf(a.stderr, "serfctl event: -wait %v is negative\n", wait)
		return exitUsage
	}
	c, cancel := ctx(30*time.Second + wait)
	defer cancel()
	resp, err := retryBusy(c, wait, func() (ctl.EventResponse, error) { return a.client.Event(c, req) })
	if err != nil {
		return a.fail("event", err)
	}
	if a.format == "json" {
		return a.json(resp)
	}
	fmt.Fprintf(a.stdout, "Event '%s' dispatched! Coalescing enabled: %t\n", req.Name, coalesce)
	return exitOK
}

func (a *app) version(args []string) int {
	if a.format == "json" {
		return a.json(map[string]string{"serfctl": version})
	}
	fmt.Fprintf(a.stdout, "serfctl %s\n", version)
	return exitOK
}

// retryBusy calls send until it succeeds, fails with anything but a busy
// daemon (503), or wait has passed; between tries it waits the daemon's
// Retry-After (1s if none). A refusal that outlasts wait is returned with
// how long it was retried.
func retryBusy[T any](c context.Context, wait time.Duration, send func() (T, error)) (T, error) {
	deadline := time.Now().Add(wait)
	for {
		out, err := send()
		var ce *ctl.Error
		if !errors.As(err, &ce) || ce.Status != http.StatusServiceUnavailable {
			return out, err
		}
		pause := ce.RetryAfter
		if pause <= 0 {
			pause = time.Second
		}
		if left := time.Until(deadline); left <= 0 {
			if wait > 0 {
				err = fmt.Errorf("%w (retried for %v)", err, wait)
			}
			return out, err
		} else if pause > left {
			pause = left
		}
		t := time.NewTimer(pause)
		select {
		case <-c.Done():
			t.Stop()
			return out, err
		case <-t.C:
		}
	}
}

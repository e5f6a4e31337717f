// Command soak is the Go half of the soak suite (packaging/e2e/soak.sh):
// the load generator, the membership watcher, two waits, and the checker.
//
//	soak gen   -hosts NAME=SOCKET,... -events FILE -queries FILE [-rate 5] [-query-every 3s]
//	soak watch -hosts NAME=SOCKET,... -out FILE [-every 500ms]
//	soak converged -hosts NAME=SOCKET,... [-timeout 60s]
//	soak drain -events FILE -logs NAME=FILE,... [-timeout 120s] [-quiet 20s]
//	soak check -dir DIR -hosts NAME,... [-list 25]
//
// gen and watch run until SIGTERM or SIGINT and then exit 0 once their calls
// in flight are done. converged exits 0 once every node sees every node
// alive, 1 at the timeout. drain exits 0 once every accepted event ran on
// every node, or once no handler run was added for -quiet, or at the
// timeout (it only waits; check judges). check prints the report and exits
// 1 when the run failed (lost, duplicated, stuck, uninjected watchdog), 2
// when it could not read the results. Everything runs on the machine that
// boots the hosts; a host's control socket is reached through
// /proc/PID/root/run/serfd.sock.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/serfd/serfd/ctl"
	"github.com/serfd/serfd/internal/soak"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: soak gen|watch|converged|drain|check [flags]  (soak CMD -h for each)`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	cmds := map[string]func([]string, io.Writer, io.Writer) int{
		"gen": gen, "watch": watch, "converged": converged, "drain": drain, "check": check,
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	return cmd(args[1:], stdout, stderr)
}

// pairs parses "a=x,b=y" keeping the order.
func pairs(s, what string) ([][2]string, error) {
	var out [][2]string
	for _, p := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" || v == "" {
			return nil, fmt.Errorf("-%s: %q is not NAME=VALUE", what, p)
		}
		out = append(out, [2]string{k, v})
	}
	return out, nil
}

func targets(s string) ([]soak.Target, error) {
	ps, err := pairs(s, "hosts")
	if err != nil {
		return nil, err
	}
	out := make([]soak.Target, len(ps))
	for i, p := range ps {
		out[i] = soak.Target{Name: p[0], Client: ctl.NewClient(p[1])}
	}
	return out, nil
}

func parse(fs *flag.FlagSet, args []string, stderr io.Writer) bool {
	fs.SetOutput(stderr)
	return fs.Parse(args) == nil
}

// appendFile opens path for appending JSON lines.
func appendFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return f, nil
}

func gen(args []string, _, stderr io.Writer) int {
	fs := flag.NewFlagSet("soak gen", flag.ContinueOnError)
	hosts := fs.String("hosts", "", "NAME=SOCKET,... of every node")
	eventsPath := fs.String("events", "", "event log (JSON lines, appended)")
	queriesPath := fs.String("queries", "", "query log (JSON lines, appended)")
	rate := fs.Float64("rate", 5, "events per second")
	queryEvery := fs.Duration("query-every", 3*time.Second, "one query per period (0: none)")
	queryWait := fs.Duration("query-timeout", 5*time.Second, "how long each query collects answers")
	callTimeout := fs.Duration("call-timeout", 20*time.Second, "a call not answered by then counts as unknown")
	if !parse(fs, args, stderr) {
		return 2
	}
	ts, err := targets(*hosts)
	if err != nil || *eventsPath == "" || *queriesPath == "" {
		fmt.Fprintf(stderr, "soak gen: need -hosts, -events and -queries (%v)\n", err)
		return 2
	}
	ev, err := appendFile(*eventsPath)
	if err != nil {
		fmt.Fprintf(stderr, "soak gen: %v\n", err)
		return 1
	}
	defer ev.Close()
	qu, err := appendFile(*queriesPath)
	if err != nil {
		fmt.Fprintf(stderr, "soak gen: %v\n", err)
		return 1
	}
	defer qu.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	g := &soak.Generator{
		Targets: ts, Rate: *rate, QueryEvery: *queryEvery, QueryWait: *queryWait,
		CallTimeout: *callTimeout, MaxInFlight: 64, Events: ev, Queries: qu,
		Rand: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1)),
	}
	if err := g.Run(ctx); err != nil {
		fmt.Fprintf(stderr, "soak gen: %v\n", err)
		return 1
	}
	return 0
}

func watch(args []string, _, stderr io.Writer) int {
	fs := flag.NewFlagSet("soak watch", flag.ContinueOnError)
	hosts := fs.String("hosts", "", "NAME=SOCKET,... of every node")
	outPath := fs.String("out", "", "members log (JSON lines, appended)")
	every := fs.Duration("every", 500*time.Millisecond, "one round per period")
	callTimeout := fs.Duration("call-timeout", 2*time.Second, "per-node deadline of a round")
	if !parse(fs, args, stderr) {
		return 2
	}
	ts, err := targets(*hosts)
	if err != nil || *outPath == "" {
		fmt.Fprintf(stderr, "soak watch: need -hosts and -out (%v)\n", err)
		return 2
	}
	out, err := appendFile(*outPath)
	if err != nil {
		fmt.Fprintf(stderr, "soak watch: %v\n", err)
		return 1
	}
	defer out.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	w := &soak.Watcher{Targets: ts, Every: *every, CallTimeout: *callTimeout, Out: out}
	if err := w.Run(ctx); err != nil {
		fmt.Fprintf(stderr, "soak watch: %v\n", err)
		return 1
	}
	return 0
}

func converged(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("soak converged", flag.ContinueOnError)
	hosts := fs.String("hosts", "", "NAME=SOCKET,... of every node")
	timeout := fs.Duration("timeout", 60*time.Second, "give up after")
	if !parse(fs, args, stderr) {
		return 2
	}
	ts, err := targets(*hosts)
	if err != nil {
		fmt.Fprintf(stderr, "soak converged: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	start := time.Now()
	deadline := start.Add(*timeout)
	for {
		round := soak.Poll(ctx, ts, 2*time.Second)
		if soak.AllAlive(round, ts) {
			fmt.Fprintf(stdout, "every node sees every node alive after %s\n", time.Since(start).Round(100*time.Millisecond))
			return 0
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			fmt.Fprintf(stderr, "soak converged: not every node alive everywhere after %s:\n", *timeout)
			for _, t := range ts {
				if view, ok := round.Views[t.Name]; ok {
					fmt.Fprintf(stderr, "  %s sees %v\n", t.Name, view)
				} else {
					fmt.Fprintf(stderr, "  %s: %s\n", t.Name, round.Errors[t.Name])
				}
			}
			return 1
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func drain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("soak drain", flag.ContinueOnError)
	eventsPath := fs.String("events", "", "the generator's event log")
	logs := fs.String("logs", "", "NAME=HANDLER_LOG,... of every node")
	timeout := fs.Duration("timeout", 120*time.Second, "give up after")
	quiet := fs.Duration("quiet", 20*time.Second, "stop once no run was added for this long")
	if !parse(fs, args, stderr) {
		return 2
	}
	ls, err := pairs(*logs, "logs")
	if err != nil || *eventsPath == "" {
		fmt.Fprintf(stderr, "soak drain: need -events and -logs (%v)\n", err)
		return 2
	}
	events, err := readEvents(*eventsPath)
	if err != nil {
		fmt.Fprintf(stderr, "soak drain: %v\n", err)
		return 1
	}
	start := time.Now()
	last, lastChange := -1, start
	for {
		runs := map[string][]soak.Run{}
		var hosts []string
		for _, l := range ls {
			hosts = append(hosts, l[0])
			// A line being appended may read torn: try again next time.
			if runs[l[0]], err = readRuns(l[1]); err != nil {
				fmt.Fprintf(stderr, "soak drain: %v\n", err)
			}
		}
		missing, total := soak.Missing(events, runs, hosts)
		if total != last {
			last, lastChange = total, time.Now()
		}
		waited := time.Since(start).Round(100 * time.Millisecond)
		switch {
		case missing == 0:
			fmt.Fprintf(stdout, "every accepted event ran on every node (%d runs) after %s\n", total, waited)
			return 0
		case time.Since(lastChange) >= *quiet:
			fmt.Fprintf(stdout, "no new handler run for %s: %d deliveries still missing after %s\n", *quiet, missing, waited)
			return 0
		case time.Since(start) >= *timeout:
			fmt.Fprintf(stdout, "%d deliveries still missing after %s\n", missing, waited)
			return 0
		}
		time.Sleep(time.Second) // polling files another process appends to
	}
}

func readEvents(path string) ([]soak.EventRecord, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	return soak.ReadJSONLines[soak.EventRecord](f, path)
}

func readRuns(path string) ([]soak.Run, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, nil // no run yet
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	return soak.ReadRuns(f, path, true)
}

func check(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("soak check", flag.ContinueOnError)
	dir := fs.String("dir", "", "results directory (see soak.Load)")
	hosts := fs.String("hosts", "", "NAME,... of every node")
	list := fs.Int("list", 25, "lost and duplicated deliveries listed one by one (0: all)")
	if !parse(fs, args, stderr) {
		return 2
	}
	if *dir == "" || *hosts == "" {
		fmt.Fprintln(stderr, "soak check: need -dir and -hosts")
		return 2
	}
	in, err := soak.Load(*dir, strings.Split(*hosts, ","))
	if err != nil {
		fmt.Fprintf(stderr, "soak check: %v\n", err)
		return 2
	}
	r := soak.Check(in)
	if err := r.Write(stdout, *list); err != nil {
		fmt.Fprintf(stderr, "soak check: write report: %v\n", err)
		return 2
	}
	if len(r.Failures()) > 0 {
		return 1
	}
	return 0
}

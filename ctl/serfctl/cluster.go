package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/serfd/serfd/ctl"
)

// multiFlag collects a repeatable flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// kvFlags splits "k=v" values into a map; it reports the first bad one.
func kvFlags(vals []string, flagName string) (map[string]string, error) {
	out := map[string]string{}
	for _, v := range vals {
		k, val, ok := strings.Cut(v, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("-%s %q is not KEY=VALUE", flagName, v)
		}
		out[k] = val
	}
	return out, nil
}

func (a *app) payloadArg(arg string) ([]byte, error) {
	if arg != "-" {
		return []byte(arg), nil
	}
	return io.ReadAll(io.LimitReader(a.stdin, ctl.MaxRequestBody))
}

func (a *app) query(args []string) int {
	var nodes, tags multiFlag
	var noAck bool
	var relay uint
	var timeout time.Duration
	fs, code := a.subFlags("query", "[-node NAME]... [-tag KEY=REGEXP]... [-timeout D] [-no-ack] [-relay-factor N] NAME [PAYLOAD|-]", args, func(fs *flag.FlagSet) {
		fs.Var(&nodes, "node", "only this node answers (repeatable)")
		fs.Var(&tags, "tag", "only nodes whose tag KEY matches REGEXP answer (repeatable)")
		fs.DurationVar(&timeout, "timeout", 0, "how long to collect answers (0: the cluster's default)")
		fs.BoolVar(&noAck, "no-ack", false, "do not ask nodes to acknowledge")
		fs.UintVar(&relay, "relay-factor", 0, "nodes that also relay each answer (0..5)")
	})
	if fs == nil {
		return code
	}
	if fs.NArg() < 1 || fs.NArg() > 2 {
		fmt.Fprintln(a.stderr, "serfctl query: give a NAME and at most one PAYLOAD (or - to read it from stdin)")
		return exitUsage
	}
	if relay > 5 {
		fmt.Fprintf(a.stderr, "serfctl query: -relay-factor %d is out of range 0..5\n", relay)
		return exitUsage
	}
	ft, err := kvFlags(tags, "tag")
	if err != nil {
		fmt.Fprintf(a.stderr, "serfctl query: %v\n", err)
		return exitUsage
	}
	req := ctl.QueryRequest{Name: fs.Arg(0), FilterNodes: nodes, NoAck: noAck, RelayFactor: uint8(relay)}
	if len(ft) > 0 {
		req.FilterTags = ft
	}
	if timeout > 0 {
		req.Timeout = timeout.String()
	}
	if fs.NArg() == 2 {
		if req.Payload, err = a.payloadArg(fs.Arg(1)); err != nil {
			return a.fail("read payload from stdin", err)
		}
	}
	c, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var acks []string
	responses := map[string]string{}
	progress := a.format == "text" && isTTY(a.errTerminal)
	expected := 0
	err = a.client.Query(c, req, func(rec ctl.QueryRecord) error {
		switch rec.Type {
		case ctl.QueryStarted:
			expected = rec.Expected
		case ctl.QueryAck:
			acks = append(acks, rec.From)
		case ctl.QueryResponse:
			responses[rec.From] = string(rec.Payload)
		}
		if a.format == "json" {
			return nil
		}
		if progress {
			fmt.Fprint(a.stderr, clearLine) // clear the progress line
		}
		switch rec.Type {
		case ctl.QueryStarted:
			if rec.Deadline.IsZero() { // Serf's RPC: the agent's own timeout
				fmt.Fprintf(a.stdout, "Query '%s' dispatched\n", req.Name)
			} else {
				fmt.Fprintf(a.stdout, "Query '%s' dispatched; collecting answers until %s\n", req.Name, rec.Deadline.Local().Format("15:04:05.000"))
			}
			if rec.Expected == 0 {
				fmt.Fprintln(a.stderr, "serfctl: no alive member matches the filters; waiting until the deadline in case one appears")
			}
		case ctl.QueryAck:
			fmt.Fprintf(a.stdout, "Ack from '%s'\n", rec.From)
		case ctl.QueryResponse:
			fmt.Fprintf(a.stdout, "Response from '%s': %s\n", rec.From, strings.TrimRight(string(rec.Payload), "\n"))
		case ctl.QueryDone:
			fmt.Fprintf(a.stdout, "Total Acks: %d\nTotal Responses: %d\n", rec.Acks, rec.Responses)
			return nil
		}
		switch {
		case progress && expected < 0: // not known over Serf's RPC
			fmt.Fprintf(a.stderr, "%d acked, %d responded...", len(acks), len(responses))
		case progress:
			fmt.Fprintf(a.stderr, "%d/%d acked, %d/%d responded...", len(acks), expected, len(responses), expected)
		}
		return nil
	})
	if err != nil {
		return a.fail("query", err)
	}
	if a.format == "json" {
		if acks == nil {
			acks = []string{}
		}
		// Serf's `serf query -format json` keys.
		return a.json(struct {
			Acks      []string          `json:"Acks"`
			Responses map[string]string `json:"Responses"`
		}{acks, responses})
	}
	return exitOK
}

func (a *app) tags(args []string) int {
	var set, del multiFlag
	fs, code := a.subFlags("tags", "[-set KEY=VALUE]... [-delete KEY]...", args, func(fs *flag.FlagSet) {
		fs.Var(&set, "set", "set a tag (repeatable)")
		fs.Var(&del, "delete", "delete a tag (repeatable)")
	})
	if fs == nil {
		return code
	}
	if fs.NArg() > 0 || (len(set) == 0 && len(del) == 0) {
		fmt.Fprintln(a.stderr, "serfctl tags: give at least one -set KEY=VALUE or -delete KEY")
		return exitUsage
	}
	sets, err := kvFlags(set, "set")
	if err != nil {
		fmt.Fprintf(a.stderr, "serfctl tags: %v\n", err)
		return exitUsage
	}
	c, cancel := ctx(30 * time.Second)
	defer cancel()
	resp, err := a.client.Tags(c, ctl.TagsRequest{Set: sets, Delete: del})
	if err != nil {
		return a.fail("tags", err)
	}
	if a.format == "json" {
		return a.json(resp)
	}
	fmt.Fprintf(a.stdout, "Tags updated: %s\n", formatTags(resp.Tags))
	return exitOK
}

func (a *app) forceLeave(args []string) int {
	var prune bool
	fs, code := a.subFlags("force-leave", "[-prune] NODE", args, func(fs *flag.FlagSet) {
		fs.BoolVar(&prune, "prune", false, "forget the node at once instead of keeping it as left until reaped")
	})
	if fs == nil {
		return code
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(a.stderr, "serfctl force-leave: give exactly one node name")
		return exitUsage
	}
	c, cancel := ctx(time.Minute)
	defer cancel()
	resp, err := a.client.ForceLeave(c, ctl.ForceLeaveRequest{Node: fs.Arg(0), Prune: prune})
	if err != nil {
		return a.fail("force-leave", err)
	}
	if a.format == "json" {
		return a.json(resp)
	}
	fmt.Fprintf(a.stdout, "Node '%s' forced to leave.\n", resp.Node)
	return exitOK
}

// keysSteps are the lines serf keys prints, after "==> ", for each
// operation: before asking the cluster, and once every node succeeded.
var keysSteps = map[string][2]string{
	ctl.KeyList:    {"Asking all members for installed keys...", "Keys gathered, listing cluster keys..."},
	ctl.KeyInstall: {"Installing key on all members...", "Successfully installed key!"},
	ctl.KeyUse:     {"Changing primary key on all members...", "Successfully changed primary key!"},
	ctl.KeyRemove:  {"Removing key on all members...", "Successfully removed key!"},
}

// serfKeys is the JSON of keys: Serf's key response, field for field.
type serfKeys struct {
	Messages    map[string]string // node -> why it failed
	NumNodes    int
	NumResp     int
	NumErr      int
	Keys        map[string]int // key -> nodes holding it
	PrimaryKeys map[string]int `json:",omitempty"` // key -> nodes using it as primary (serfd's socket only)
	Error       string         `json:",omitempty"` // what failed, when not every node succeeded
}

func (a *app) keys(args []string) int {
	var install, use, remove string
	var list bool
	fs, code := a.subFlags("keys", "install KEY | use KEY | remove KEY | list (or serf's -install KEY, -use KEY, -remove KEY, -list)", args, func(fs *flag.FlagSet) {
		fs.StringVar(&install, "install", "", "install `KEY` on every node (for decryption; -use makes it primary)")
		fs.StringVar(&use, "use", "", "make `KEY` the primary key on every node")
		fs.StringVar(&remove, "remove", "", "remove `KEY` from every node (not the primary one)")
		fs.BoolVar(&list, "list", false, "list the keys and how many nodes hold each")
	})
	if fs == nil {
		return code
	}
	var op, key string
	flagOps := 0
	for _, f := range []struct{ op, key string }{{ctl.KeyInstall, install}, {ctl.KeyUse, use}, {ctl.KeyRemove, remove}} {
		if f.key != "" {
			op, key = f.op, f.key
			flagOps++
		}
	}
	if list {
		op = ctl.KeyList
		flagOps++
	}
	switch {
	case flagOps > 1 || (flagOps == 1 && fs.NArg() > 0):
		fmt.Fprintln(a.stderr, "serfctl keys: give one operation: install KEY, use KEY, remove KEY or list (or one of -install, -use, -remove, -list)")
		return exitUsage
	case flagOps == 0:
		op, key = fs.Arg(0), fs.Arg(1)
		want := 2
		switch op {
		case ctl.KeyInstall, ctl.KeyUse, ctl.KeyRemove:
		case ctl.KeyList:
			want = 1
		default:
			fmt.Fprintln(a.stderr, "usage: serfctl keys install KEY | use KEY | remove KEY | list")
			return exitUsage
		}
		if fs.NArg() != want {
			fmt.Fprintf(a.stderr, "serfctl keys %s: takes %d argument(s)\n", op, want-1)
			return exitUsage
		}
	}
	if a.format == "text" {
		fmt.Fprintf(a.stdout, "==> %s\n", keysSteps[op][0])
	}
	c, cancel := ctx(2 * time.Minute)
	defer cancel()
	resp, err := a.client.Keys(c, ctl.KeysRequest{Op: op, Key: key})
	if err != nil {
		return a.fail("keys "+op, err)
	}
	if a.format == "json" {
		out := serfKeys{Messages: resp.Messages, NumNodes: resp.NumNodes, NumResp: resp.NumResp, NumErr: resp.NumErr,
			Keys: resp.Keys, PrimaryKeys: resp.PrimaryKeys, Error: resp.Error}
		if out.Messages == nil {
			out.Messages = map[string]string{}
		}
		if out.Keys == nil {
			out.Keys = map[string]int{}
		}
		if code := a.json(out); code != exitOK {
			return code
		}
	} else {
		a.printKeys(op, resp)
	}
	if resp.Error != "" {
		fmt.Fprintf(a.stderr, "serfctl: keys %s: %s\n", op, resp.Error)
		return exitFail
	}
	return exitOK
}

// printKeys prints what serf keys prints: the nodes that failed (here on
// stderr) or the success line, and for list each key with the count of
// nodes holding it, "[n/N]" (and, from serfd's socket, how many use it as
// their primary key).
func (a *app) printKeys(op string, r ctl.KeysResponse) {
	if len(r.Messages) > 0 {
		tw := tabwriter.NewWriter(a.stderr, 0, 4, 2, ' ', 0)
		for _, n := range slices.Sorted(maps.Keys(r.Messages)) {
			fmt.Fprintf(tw, "failed:\t%s\t%s\n", n, r.Messages[n])
		}
		tw.Flush()
	}
	if r.Error != "" {
		return
	}
	fmt.Fprintf(a.stdout, "==> %s\n", keysSteps[op][1])
	if op != ctl.KeyList {
		return
	}
	fmt.Fprintln(a.stdout)
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	for _, k := range slices.Sorted(maps.Keys(r.Keys)) {
		fmt.Fprintf(tw, "%s\t[%d/%d]", k, r.Keys[k], r.NumNodes)
		if n := r.PrimaryKeys[k]; n > 0 {
			fmt.Fprintf(tw, "\tprimary on %d", n)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}

func (a *app) keygen(args []string) int {
	fs, code := a.subFlags("keygen", "", args, nil)
	if fs == nil {
		return code
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return a.fail("keygen", err)
	}
	s := base64.StdEncoding.EncodeToString(key)
	if a.format == "json" {
		return a.json(map[string]string{"key": s})
	}
	fmt.Fprintln(a.stdout, s)
	return exitOK
}

func (a *app) rtt(args []string) int {
	fs, code := a.subFlags("rtt", "NODE [NODE]", args, nil)
	if fs == nil {
		return code
	}
	if fs.NArg() < 1 || fs.NArg() > 2 {
		fmt.Fprintln(a.stderr, "serfctl rtt: give one node (distance from this node) or two")
		return exitUsage
	}
	c, cancel := ctx(30 * time.Second)
	defer cancel()
	resp, err := a.client.RTT(c, fs.Arg(0), fs.Arg(1))
	if err != nil {
		return a.fail("rtt", err)
	}
	if a.format == "json" {
		return a.json(resp)
	}
	fmt.Fprintf(a.stdout, "Estimated %s <-> %s rtt: %.3f ms\n", resp.A, resp.B, float64(resp.RTT)/float64(time.Millisecond))
	return exitOK
}

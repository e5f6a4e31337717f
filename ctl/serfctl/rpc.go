package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/serfd/serfd/ctl"
)

// backend is what serfctl's commands talk to: serfd's control socket
// (*ctl.Client) or Serf's RPC (*rpcBackend), in the control API's types.
type backend interface {
	Members(context.Context) (ctl.MembersResponse, error)
	Join(context.Context, ctl.JoinRequest) (ctl.JoinResponse, error)
	Leave(context.Context) (ctl.LeaveResponse, error)
	Event(context.Context, ctl.EventRequest) (ctl.EventResponse, error)
	Query(context.Context, ctl.QueryRequest, func(ctl.QueryRecord) error) error
	Tags(context.Context, ctl.TagsRequest) (ctl.TagsResponse, error)
	ForceLeave(context.Context, ctl.ForceLeaveRequest) (ctl.ForceLeaveResponse, error)
	Keys(context.Context, ctl.KeysRequest) (ctl.KeysResponse, error)
	RTT(ctx context.Context, a, b string) (ctl.RTTResponse, error)
	Monitor(ctx context.Context, level string, fn func(ctl.LogRecord) error) error
}

// targetFlags are the flags that choose what serfctl talks to, as given.
type targetFlags struct {
	socket, rpcAddr, rpcAuth          string
	socketSet, rpcAddrSet, rpcAuthSet bool
}

// register defines -rpc-addr and -rpc-auth on fs (serfctl's own flags
// and every command's: serf takes them after the command).
func (t *targetFlags) register(fs *flag.FlagSet) {
	fs.Func("rpc-addr", "talk Serf's RPC to this `host:port` (a Serf agent's -rpc-addr, serfd's rpc block)", func(v string) error {
		t.rpcAddr, t.rpcAddrSet = v, true
		return nil
	})
	fs.Func("rpc-auth", "the Serf RPC `token`", func(v string) error {
		t.rpcAuth, t.rpcAuthSet = v, true
		return nil
	})
}

// target is what serfctl talks to: Serf's RPC at rpcAddr when it is set,
// else the control socket.
type target struct {
	socket, rpcAddr, rpcAuth string
}

// chooseTarget applies the precedence serfctl's help states: an explicit
// -rpc-addr, then an explicit -socket, then $SERF_RPC_ADDR, then
// $SERFD_SOCKET or the default socket. The token is -rpc-auth, else
// $SERF_RPC_AUTH; a -rpc-auth given for the socket is a mistake.
func chooseTarget(f targetFlags, getenv func(string) string) (target, error) {
	auth := getenv(ctl.RPCAuthEnv)
	if f.rpcAuthSet {
		auth = f.rpcAuth
	}
	var t target
	switch {
	case f.rpcAddrSet:
		if f.rpcAddr == "" {
			return t, errors.New("-rpc-addr is empty; give HOST:PORT")
		}
		t = target{rpcAddr: f.rpcAddr, rpcAuth: auth}
	case f.socketSet:
		t = target{socket: f.socket}
	case getenv(ctl.RPCAddrEnv) != "":
		t = target{rpcAddr: getenv(ctl.RPCAddrEnv), rpcAuth: auth}
	default:
		t = target{socket: getenv(ctl.SocketEnv)}
		if t.socket == "" {
			t.socket = ctl.DefaultSocket
		}
	}
	if t.rpcAddr == "" && f.rpcAuthSet {
		return t, fmt.Errorf("-rpc-auth is a Serf RPC token, and serfctl talks to the control socket %s here; give -rpc-addr too", t.socket)
	}
	return t, nil
}

// connect sets the app's backend from its flags and the environment.
func (a *app) connect() error {
	t, err := chooseTarget(a.to, os.Getenv)
	if err != nil {
		return err
	}
	a.sock, a.rpc = nil, nil
	if t.rpcAddr != "" {
		a.rpc = &rpcBackend{c: ctl.NewRPCClient(t.rpcAddr, t.rpcAuth), addr: t.rpcAddr}
		a.client = a.rpc
	} else {
		a.sock = ctl.NewClient(t.socket)
		a.client = a.sock
	}
	return nil
}

// rpcBackend serves serfctl's commands over Serf's RPC, to a Serf agent or
// to serfd's rpc listener.
type rpcBackend struct {
	c    *ctl.RPCClient
	addr string
}

// err completes an error the server answered with.
func (r *rpcBackend) err(err error) error {
	var re *ctl.RPCError
	if errors.As(err, &re) && re.Message == ctl.RPCErrAuthRequired {
		return fmt.Errorf("%s at %s: give its token with -rpc-auth or $%s", re.Message, r.addr, ctl.RPCAuthEnv)
	}
	return err
}

func (r *rpcBackend) Members(ctx context.Context) (ctl.MembersResponse, error) {
	ms, err := r.c.Members(ctx)
	if err != nil {
		return ctl.MembersResponse{}, r.err(err)
	}
	out := ctl.MembersResponse{Members: make([]ctl.Member, 0, len(ms))}
	for _, m := range ms {
		tags := m.Tags
		if tags == nil {
			tags = map[string]string{}
		}
		out.Members = append(out.Members, ctl.Member{Name: m.Name, Addr: m.Addr.String(), Port: m.Port, Tags: tags,
			Status: m.Status, Protocol: map[string]uint8{"min": m.DelegateMin, "max": m.DelegateMax, "version": m.DelegateCur}})
	}
	return out, nil
}

func (r *rpcBackend) Join(ctx context.Context, req ctl.JoinRequest) (ctl.JoinResponse, error) {
	n, err := r.c.Join(ctx, ctl.RPCJoinRequest{Existing: req.Addrs, Replay: req.Replay})
	return ctl.JoinResponse{Joined: n}, r.err(err)
}

func (r *rpcBackend) Leave(ctx context.Context) (ctl.LeaveResponse, error) {
	err := r.c.Leave(ctx)
	return ctl.LeaveResponse{Left: err == nil}, r.err(err)
}

func (r *rpcBackend) Event(ctx context.Context, req ctl.EventRequest) (ctl.EventResponse, error) {
	err := r.c.Event(ctx, ctl.RPCEventRequest(req))
	return ctl.EventResponse{Sent: err == nil}, r.err(err)
}

// Query runs a query over Serf's RPC. Serf's answer says neither when the
// query ends nor how many members it expects: the "started" record has
// the deadline only when a timeout was given, and Expected -1.
func (r *rpcBackend) Query(ctx context.Context, req ctl.QueryRequest, fn func(ctl.QueryRecord) error) error {
	var timeout time.Duration
	if req.Timeout != "" {
		var err error
		if timeout, err = time.ParseDuration(req.Timeout); err != nil {
			return fmt.Errorf("timeout %q: %v", req.Timeout, err)
		}
	}
	q := ctl.RPCQueryRequest{FilterNodes: req.FilterNodes, FilterTags: req.FilterTags, RequestAck: !req.NoAck,
		RelayFactor: req.RelayFactor, Timeout: timeout, Name: req.Name, Payload: req.Payload}
	acks, responses := 0, 0
	err := r.c.Query(ctx, q, func(rec ctl.RPCQueryRecord) error {
		out := ctl.QueryRecord{Type: rec.Type, From: rec.From, Payload: rec.Payload}
		switch rec.Type {
		case ctl.QueryStarted:
			out.Expected = -1
			if timeout > 0 {
				out.Deadline = time.Now().Add(timeout)
			}
		case ctl.QueryAck:
			acks++
		case ctl.QueryResponse:
			responses++
		case ctl.QueryDone:
			out.Acks, out.Responses = acks, responses
		default:
			return nil // a record type this serfctl does not know
		}
		return fn(out)
	})
	return r.err(err)
}

// Tags changes the tags, then reads them back: Serf's answer has none.
func (r *rpcBackend) Tags(ctx context.Context, req ctl.TagsRequest) (ctl.TagsResponse, error) {
	if err := r.c.Tags(ctx, ctl.RPCTagsRequest{Tags: req.Set, DeleteTags: req.Delete}); err != nil {
		return ctl.TagsResponse{}, r.err(err)
	}
	st, err := r.c.Stats(ctx)
	if err != nil {
		return ctl.TagsResponse{}, fmt.Errorf("tags changed, but reading them back failed: %w", r.err(err))
	}
	tags := st["tags"]
	if tags == nil {
		tags = map[string]string{}
	}
	return ctl.TagsResponse{Tags: tags}, nil
}

func (r *rpcBackend) ForceLeave(ctx context.Context, req ctl.ForceLeaveRequest) (ctl.ForceLeaveResponse, error) {
	err := r.c.ForceLeave(ctx, ctl.RPCForceLeaveRequest(req))
	return ctl.ForceLeaveResponse{Node: req.Node}, r.err(err)
}

// Keys runs a key command; a failure the server reported with its
// answer (some nodes failed) is the answer's Error, as serfd's socket
// reports it. Serf's answer has no primary keys.
func (r *rpcBackend) Keys(ctx context.Context, req ctl.KeysRequest) (ctl.KeysResponse, error) {
	command := map[string]string{ctl.KeyInstall: ctl.RPCInstallKey, ctl.KeyUse: ctl.RPCUseKey,
		ctl.KeyRemove: ctl.RPCRemoveKey, ctl.KeyList: ctl.RPCListKeys}[req.Op]
	kr, err := r.c.Keys(ctx, command, req.Key)
	out := ctl.KeysResponse{NumNodes: kr.NumNodes, NumResp: kr.NumResp, NumErr: kr.NumErr, Messages: kr.Messages, Keys: kr.Keys}
	var re *ctl.RPCError
	if errors.As(err, &re) && re.Message != ctl.RPCErrAuthRequired {
		out.Error, err = re.Message, nil
	}
	return out, r.err(err)
}

// RTT computes the estimate from both nodes' coordinates, as serf rtt
// does; b "" is the server's own node.
func (r *rpcBackend) RTT(ctx context.Context, a, b string) (ctl.RTTResponse, error) {
	if b == "" {
		st, err := r.c.Stats(ctx)
		if err != nil {
			return ctl.RTTResponse{}, r.err(err)
		}
		if b = st["agent"]["name"]; b == "" {
			return ctl.RTTResponse{}, errors.New("the agent did not say its node name")
		}
	}
	var coords [2]ctl.RPCCoordinate
	for i, node := range []string{a, b} {
		c, ok, err := r.c.Coordinate(ctx, node)
		if err != nil {
			return ctl.RTTResponse{}, r.err(err)
		}
		if !ok {
			return ctl.RTTResponse{}, fmt.Errorf("could not find a coordinate for node %q", node)
		}
		coords[i] = c
	}
	d, err := coords[0].DistanceTo(coords[1])
	return ctl.RTTResponse{A: a, B: b, RTT: d}, err
}

// serfLevels are Serf's names of serfctl's log levels.
var serfLevels = map[string]string{"trace": "TRACE", "debug": "DEBUG", "info": "INFO", "warn": "WARN",
	"warning": "WARN", "err": "ERR", "error": "ERR"}

// serfLogLine is a log line as Serf's agents (and serfd's RPC) send them:
// "2006/01/02 15:04:05 [LEVEL] message".
var serfLogLine = regexp.MustCompile(`(?s)^(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d) \[([A-Z]+)\] ?(.*)$`)

// Monitor streams the server's log lines, each as a record with its time,
// level and message when it has Serf's shape, else with the whole line as
// the message.
func (r *rpcBackend) Monitor(ctx context.Context, level string, fn func(ctl.LogRecord) error) error {
	lvl := serfLevels[strings.ToLower(level)]
	if lvl == "" {
		lvl = "INFO"
	}
	err := r.c.Monitor(ctx, lvl, func(line string) error {
		line = strings.TrimRight(line, "\r\n")
		rec := ctl.LogRecord{Message: line}
		if m := serfLogLine.FindStringSubmatch(line); m != nil {
			if t, err := time.ParseInLocation("2006/01/02 15:04:05", m[1], time.Local); err == nil {
				rec = ctl.LogRecord{Time: t, Level: m[2], Message: m[3]}
			}
		}
		return fn(rec)
	})
	return r.err(err)
}

// stats is the server's stats, for info.
func (r *rpcBackend) stats(ctx context.Context) (map[string]map[string]string, error) {
	st, err := r.c.Stats(ctx)
	return st, r.err(err)
}

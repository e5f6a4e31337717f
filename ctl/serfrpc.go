package ctl

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// Serf's RPC protocol (IPC version 1): msgpack over TCP, spoken by the
// stock `serf` command, Serf's client libraries, a Serf agent's
// -rpc-addr listener and serfd's rpc listener. Each request is an
// RPCRequestHeader followed, for most commands, by a body; each answer an
// RPCResponseHeader followed, for some commands, by a body; query, stream
// and monitor go on sending records under the request's Seq. A connection
// starts with handshake, then auth when the server has a token. The types
// below are the bodies as both sides write them: serfd's server
// (package daemon) and RPCClient use the same ones.

// Environment variables the `serf` command takes its RPC address and token
// from; serfctl honours them too.
const (
	RPCAddrEnv = "SERF_RPC_ADDR"
	RPCAuthEnv = "SERF_RPC_AUTH"
)

// RPCVersion is the IPC version of the handshake.
const RPCVersion = 1

// Command names of Serf's RPC.
const (
	RPCHandshake       = "handshake"
	RPCAuth            = "auth"
	RPCEvent           = "event"
	RPCForceLeave      = "force-leave"
	RPCJoin            = "join"
	RPCMembers         = "members"
	RPCMembersFiltered = "members-filtered"
	RPCStream          = "stream"
	RPCStop            = "stop"
	RPCMonitor         = "monitor"
	RPCLeave           = "leave"
	RPCInstallKey      = "install-key"
	RPCUseKey          = "use-key"
	RPCRemoveKey       = "remove-key"
	RPCListKeys        = "list-keys"
	RPCTags            = "tags"
	RPCQuery           = "query"
	RPCRespond         = "respond"
	RPCStats           = "stats"
	RPCGetCoordinate   = "get-coordinate"
)

// Error strings after which no answer body follows, whatever the command.
const (
	RPCErrUnsupportedCommand = "Unsupported command"
	RPCErrHandshakeRequired  = "Handshake required"
	RPCErrAuthRequired       = "Authentication required"
)

// RPCRequestHeader precedes every request.
type RPCRequestHeader struct {
	Command string
	Seq     uint64
}

// RPCResponseHeader precedes every answer and every streamed record.
type RPCResponseHeader struct {
	Seq   uint64
	Error string
}

// RPCHandshakeRequest is the body of handshake.
type RPCHandshakeRequest struct{ Version int32 }

// RPCAuthRequest is the body of auth.
type RPCAuthRequest struct{ AuthKey string }

// RPCMember is one member in members answers and member events.
type RPCMember struct {
	Name        string
	Addr        net.IP
	Port        uint16
	Tags        map[string]string
	Status      string
	ProtocolMin uint8
	ProtocolMax uint8
	ProtocolCur uint8
	DelegateMin uint8
	DelegateMax uint8
	DelegateCur uint8
}

// RPCMembersResponse answers members and members-filtered.
type RPCMembersResponse struct{ Members []RPCMember }

// RPCMembersFilteredRequest is the body of members-filtered: anchored
// regular expressions.
type RPCMembersFilteredRequest struct {
	Tags   map[string]string
	Status string
	Name   string
}

// RPCEventRequest is the body of event.
type RPCEventRequest struct {
	Name     string
	Payload  []byte
	Coalesce bool
}

// RPCForceLeaveRequest is the body of force-leave.
type RPCForceLeaveRequest struct {
	Node  string
	Prune bool
}

// RPCJoinRequest is the body of join.
type RPCJoinRequest struct {
	Existing []string
	Replay   bool
}

// RPCJoinResponse answers join.
type RPCJoinResponse struct{ Num int32 }

// RPCTagsRequest is the body of tags.
type RPCTagsRequest struct {
	Tags       map[string]string
	DeleteTags []string
}

// RPCKeyRequest is the body of install-key, use-key and remove-key
// (list-keys has none).
type RPCKeyRequest struct{ Key string }

// RPCKeyResponse answers the key commands, also when they failed.
type RPCKeyResponse struct {
	Messages                  map[string]string
	Keys                      map[string]int
	NumNodes, NumErr, NumResp int
}

// RPCCoordinateRequest is the body of get-coordinate.
type RPCCoordinateRequest struct{ Node string }

// RPCCoordinate is a node's network coordinate (Vivaldi, in seconds).
type RPCCoordinate struct {
	Vec                       []float64
	Error, Adjustment, Height float64
}

// RPCCoordinateResponse answers get-coordinate; Ok is false when the
// node has no coordinate.
type RPCCoordinateResponse struct {
	Coord RPCCoordinate
	Ok    bool
}

// RPCStreamRequest is the body of stream: an event filter in Serf's syntax.
type RPCStreamRequest struct{ Type string }

// RPCMonitorRequest is the body of monitor.
type RPCMonitorRequest struct{ LogLevel string }

// RPCStopRequest is the body of stop: the Seq of the stream to end.
type RPCStopRequest struct{ Stop uint64 }

// RPCQueryRequest is the body of query.
type RPCQueryRequest struct {
	FilterNodes []string
	FilterTags  map[string]string
	RequestAck  bool
	RelayFactor uint8
	Timeout     time.Duration
	Name        string
	Payload     []byte
}

// RPCQueryRecord is one record of a query's stream: "ack", "response"
// or, last, "done".
type RPCQueryRecord struct {
	Type    string
	From    string
	Payload []byte
}

// RPCRespondRequest is the body of respond.
type RPCRespondRequest struct {
	ID      uint64
	Payload []byte
}

// RPCLogRecord is one record of a monitor's stream: a log line.
type RPCLogRecord struct{ Log string }

// RPCUserEventRecord is one record of an event stream of type "user".
type RPCUserEventRecord struct {
	Event    string // "user"
	LTime    uint64
	Name     string
	Payload  []byte
	Coalesce bool
}

// DistanceTo estimates the round trip time between the nodes at a and b:
// the Euclidean distance of the vectors plus both heights, plus both
// adjustments when that keeps the sum positive (Serf's `rtt`).
func (a RPCCoordinate) DistanceTo(b RPCCoordinate) (time.Duration, error) {
	if len(a.Vec) != len(b.Vec) {
		return 0, fmt.Errorf("coordinates of %d and %d dimensions cannot be compared", len(a.Vec), len(b.Vec))
	}
	var sum float64
	for i := range a.Vec {
		sum += (a.Vec[i] - b.Vec[i]) * (a.Vec[i] - b.Vec[i])
	}
	d := math.Sqrt(sum) + a.Height + b.Height
	if adj := d + a.Adjustment + b.Adjustment; adj > 0 {
		d = adj
	}
	ns := d * float64(time.Second)
	if math.IsNaN(ns) || ns < 0 || ns >= math.MaxInt64 {
		return 0, fmt.Errorf("coordinates give no distance (%v s)", d)
	}
	return time.Duration(ns), nil
}

// RPCError is an error a Serf RPC server answered with.
type RPCError struct {
	Addr    string
	Command string
	Message string // as the server said it
}

func (e *RPCError) Error() string { return e.Message }

// RPCClient speaks Serf's RPC to a Serf agent, or to serfd's rpc
// listener, at one address. It connects, hand-shakes and authenticates
// at its first request and keeps the connection for the next ones. It
// makes one request at a time: it is not safe for concurrent use.
type RPCClient struct {
	addr, auth string
	conn       net.Conn
	dec        *codec.Decoder
	bw         *bufio.Writer
	seq        uint64
}

// NewRPCClient returns a client for the server at addr (host:port) with
// the token auth ("" when the server wants none).
func NewRPCClient(addr, auth string) *RPCClient {
	return &RPCClient{addr: addr, auth: auth}
}

// Close closes the connection, if any.
func (c *RPCClient) Close() error {
	if c.conn == nil {
		return nil
	}
	err := c.conn.Close()
	c.conn = nil
	return err
}

// Members lists every member the server knows.
func (c *RPCClient) Members(ctx context.Context) ([]RPCMember, error) {
	var out RPCMembersResponse
	err := c.call(ctx, RPCMembers, nil, &out)
	return out.Members, err
}

// Event broadcasts a user event.
func (c *RPCClient) Event(ctx context.Context, req RPCEventRequest) error {
	return c.call(ctx, RPCEvent, req, nil)
}

// ForceLeave makes a failed node leave.
func (c *RPCClient) ForceLeave(ctx context.Context, req RPCForceLeaveRequest) error {
	return c.call(ctx, RPCForceLeave, req, nil)
}

// Join joins the cluster through req.Existing and returns how many
// answered.
func (c *RPCClient) Join(ctx context.Context, req RPCJoinRequest) (int, error) {
	var out RPCJoinResponse
	err := c.call(ctx, RPCJoin, req, &out)
	return int(out.Num), err
}

// Leave makes the server leave the cluster gracefully (a Serf agent then
// shuts down, serfd stops).
func (c *RPCClient) Leave(ctx context.Context) error {
	return c.call(ctx, RPCLeave, nil, nil)
}

// Tags sets and deletes tags of the server's node.
func (c *RPCClient) Tags(ctx context.Context, req RPCTagsRequest) error {
	return c.call(ctx, RPCTags, req, nil)
}

// Keys runs a key command (RPCInstallKey, RPCUseKey, RPCRemoveKey with a
// key, RPCListKeys without). The answer is filled in also when the error
// says that some nodes failed.
func (c *RPCClient) Keys(ctx context.Context, command, key string) (RPCKeyResponse, error) {
	var out RPCKeyResponse
	var req any
	switch command {
	case RPCInstallKey, RPCUseKey, RPCRemoveKey:
		req = RPCKeyRequest{Key: key}
	case RPCListKeys:
	default:
		return out, fmt.Errorf("%q is not a key command", command)
	}
	err := c.call(ctx, command, req, &out)
	return out, err
}

// Stats is the server's stats: sections (agent, runtime, serf, tags, ...)
// of string values.
func (c *RPCClient) Stats(ctx context.Context) (map[string]map[string]string, error) {
	var out map[string]map[string]string
	err := c.call(ctx, RPCStats, nil, &out)
	return out, err
}

// Coordinate returns node's network coordinate; ok is false when the
// server has none for it.
func (c *RPCClient) Coordinate(ctx context.Context, node string) (coord RPCCoordinate, ok bool, err error) {
	var out RPCCoordinateResponse
	err = c.call(ctx, RPCGetCoordinate, RPCCoordinateRequest{Node: node}, &out)
	return out.Coord, out.Ok, err
}

// Query sends a query and calls fn with a record of type QueryStarted
// once the server accepted it (a record of this client's: none comes over
// the wire), then with each ack and response as it arrives, then with the
// "done" record, after which it returns.
//
// A Serf agent whose query has ended may send acks and responses from no
// node ("") until its own timer sends "done": the query is over at the
// first of them, as for Serf's own client. The connection is then out of
// step, so it is closed (the next request opens another).
func (c *RPCClient) Query(ctx context.Context, req RPCQueryRequest, fn func(RPCQueryRecord) error) error {
	started := func() error { return fn(RPCQueryRecord{Type: QueryStarted}) }
	endedEarly := false
	err := c.stream(ctx, RPCQuery, req, started, func() (bool, error) {
		var rec RPCQueryRecord
		if err := c.dec.Decode(&rec); err != nil {
			return false, err
		}
		if rec.From == "" && (rec.Type == QueryAck || rec.Type == QueryResponse) {
			endedEarly = true
			rec = RPCQueryRecord{Type: QueryDone}
		}
		return rec.Type == QueryDone, fn(rec)
	})
	if endedEarly {
		c.Close()
	}
	return err
}

// Monitor streams the server's log lines at level or above (Serf's
// names: TRACE, DEBUG, INFO, WARN, ERR) to fn until ctx ends, fn fails
// or the server goes away.
func (c *RPCClient) Monitor(ctx context.Context, level string, fn func(line string) error) error {
	return c.stream(ctx, RPCMonitor, RPCMonitorRequest{LogLevel: level}, nil, func() (bool, error) {
		var rec RPCLogRecord
		if err := c.dec.Decode(&rec); err != nil {
			return false, err
		}
		return false, fn(rec.Log)
	})
}

// StreamUserEvents streams the user events the server receives (filter
// "user" or "user:NAME") to fn until ctx ends, fn fails or the server
// goes away.
func (c *RPCClient) StreamUserEvents(ctx context.Context, filter string, fn func(RPCUserEventRecord) error) error {
	if filter != "user" && !strings.HasPrefix(filter, "user:") {
		return fmt.Errorf("%q is not a user event filter (user or user:NAME)", filter)
	}
	return c.stream(ctx, RPCStream, RPCStreamRequest{Type: filter}, nil, func() (bool, error) {
		var rec RPCUserEventRecord
		if err := c.dec.Decode(&rec); err != nil {
			return false, err
		}
		return false, fn(rec)
	})
}

// call makes one request: header and body (none when req is nil), then
// reads the answer's header and, when resp is not nil, its body.
func (c *RPCClient) call(ctx context.Context, command string, req, resp any) error {
	return c.exchange(ctx, command, func() error {
		seq, err := c.request(command, req)
		if err != nil {
			return err
		}
		return c.answer(command, seq, resp)
	})
}

// stream makes a request whose answer is followed by records under its
// Seq: once the answer says yes, it calls accepted (unless nil), then
// next for each record until next reports the last one.
func (c *RPCClient) stream(ctx context.Context, command string, req any, accepted func() error, next func() (last bool, err error)) error {
	return c.exchange(ctx, command, func() error {
		seq, err := c.request(command, req)
		if err != nil {
			return err
		}
		if err := c.answer(command, seq, nil); err != nil {
			return err
		}
		if accepted != nil {
			if err := accepted(); err != nil {
				return err
			}
		}
		for {
			if err := c.answer(command, seq, nil); err != nil {
				return err
			}
			last, err := next()
			if err != nil || last {
				return err
			}
		}
	})
}

// exchange connects if need be and runs do within ctx: its deadline
// bounds every read and write, and its end interrupts them. A failure
// other than the server's own answer leaves the connection out of step,
// so it is closed.
func (c *RPCClient) exchange(ctx context.Context, command string, do func() error) error {
	if err := c.connect(ctx); err != nil {
		return err
	}
	dl, _ := ctx.Deadline()
	_ = c.conn.SetDeadline(dl)
	conn := c.conn
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	err := do()
	stop()
	var re *RPCError
	if err == nil || errors.As(err, &re) {
		return err
	}
	c.Close()
	switch {
	case ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("no answer to %s from Serf's RPC at %s in time: %w", command, c.addr, ctx.Err())
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
		return fmt.Errorf("the connection to Serf's RPC at %s closed during %s (the agent stopped, or does not serve it)", c.addr, command)
	}
	return fmt.Errorf("%s over Serf's RPC at %s: %w", command, c.addr, err)
}

func (c *RPCClient) connect(ctx context.Context) error {
	if c.conn != nil {
		return nil
	}
	d := net.Dialer{Timeout: 10 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("nothing serves Serf's RPC at %s (connection refused): is the agent running with that -rpc-addr (serfd: an rpc block)?", c.addr)
		}
		return fmt.Errorf("connect to Serf RPC at %s: %w", c.addr, err)
	}
	c.conn, c.bw = conn, bufio.NewWriter(conn)
	c.dec = codec.NewDecoder(bufio.NewReader(conn), NewRPCHandle())
	if err := c.exchange(ctx, RPCHandshake, func() error {
		seq, err := c.request(RPCHandshake, RPCHandshakeRequest{Version: RPCVersion})
		if err == nil {
			err = c.answer(RPCHandshake, seq, nil)
		}
		if err == nil && c.auth != "" {
			if seq, err = c.request(RPCAuth, RPCAuthRequest{AuthKey: c.auth}); err == nil {
				err = c.answer(RPCAuth, seq, nil)
			}
		}
		return err
	}); err != nil {
		c.Close()
		return err
	}
	return nil
}

// request writes a header and, unless body is nil, the body.
func (c *RPCClient) request(command string, body any) (uint64, error) {
	c.seq++
	enc := codec.NewEncoder(c.bw, NewRPCHandle())
	if err := enc.Encode(RPCRequestHeader{Command: command, Seq: c.seq}); err != nil {
		return 0, err
	}
	if body != nil {
		if err := enc.Encode(body); err != nil {
			return 0, err
		}
	}
	return c.seq, c.bw.Flush()
}

// NewRPCHandle is the msgpack handle of Serf's RPC, for both ends: strings
// as msgpack raw strings, as Serf's own codec writes and reads them.
func NewRPCHandle() *codec.MsgpackHandle {
	h := &codec.MsgpackHandle{WriteExt: true}
	h.RawToString = true
	return h
}

// answer reads a response header for seq and, when body is not nil and
// the error (if any) is one that comes with a body, the body. The
// server's error is an *RPCError.
func (c *RPCClient) answer(command string, seq uint64, body any) error {
	var h RPCResponseHeader
	if err := c.dec.Decode(&h); err != nil {
		return err
	}
	if h.Seq != seq {
		return fmt.Errorf("answer for request %d, not %d: out of step", h.Seq, seq)
	}
	switch h.Error {
	case RPCErrUnsupportedCommand, RPCErrHandshakeRequired, RPCErrAuthRequired:
		body = nil
	}
	if body != nil {
		if err := c.dec.Decode(body); err != nil {
			return err
		}
	}
	if h.Error != "" {
		return &RPCError{Addr: c.addr, Command: command, Message: h.Error}
	}
	return nil
}

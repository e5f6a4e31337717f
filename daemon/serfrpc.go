package daemon

import (
	"bufio"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"

	"github.com/serfd/serfd/ctl"
	"github.com/serfd/serfd/exec"
	"github.com/serfd/serfd/gossip"
)

// Serf's RPC protocol (IPC version 1), the msgpack-over-TCP protocol the
// stock `serf` command and Serf's client libraries speak, served when the
// configuration has an rpc block. Each request is a header {Command, Seq}
// and a body; each answer a header {Seq, Error} and, for some commands, a
// body; stream, monitor and query go on sending records under the
// request's Seq. A connection must start with handshake, then auth when a
// token is set. Commands reach the same code as the control socket's
// routes: the same refusals (503-class errors come back as the error
// string), limits and logging. Unlike Serf's, a connection has deadlines:
// 10 s to complete its handshake (and auth), 10 s for each answer to be
// written (a client that stops reading is dropped, Serf #347); at most
// maxControlConns connections are open at once.

// Error strings of Serf's protocol; clients match some of them (the
// command names, the wire types and the errors after which no body
// follows are ctl's, shared with its client).
const (
	rpcErrUnsupportedVersion = "Unsupported IPC version"
	rpcErrDuplicateHandshake = "Handshake already performed"
	rpcErrMonitorExists      = "Monitor already exists"
	rpcErrInvalidFilter      = "Invalid event filter"
	rpcErrStreamExists       = "Stream with given sequence exists"
	rpcErrInvalidQueryID     = "No pending queries matching ID"
	rpcErrInvalidAuthToken   = "Invalid authentication token"
)

const (
	rpcSetupTimeout   = 10 * time.Second // handshake and auth
	rpcWriteTimeout   = 10 * time.Second // each answer or record
	rpcStreamBuffer   = 512              // events a stream may fall behind, as Serf
	rpcMaxStreamsConn = 16               // event streams of one connection
	// rpcMaxRequest bounds one request, header and body (Serf's messages
	// are at most 9 KiB; a join list or tags a few more): a client cannot
	// make serfd buffer more than that.
	rpcMaxRequest = 1 << 20
)

func rpcMemberOf(m gossip.Member) ctl.RPCMember {
	return ctl.RPCMember{Name: m.Name, Addr: m.Addr, Port: m.Port, Tags: m.Tags, Status: m.Status.String(),
		ProtocolMin: m.ProtocolMin, ProtocolMax: m.ProtocolMax, ProtocolCur: m.ProtocolCur,
		DelegateMin: m.DelegateMin, DelegateMax: m.DelegateMax, DelegateCur: m.DelegateCur}
}

// rpcServer serves Serf's RPC on one listener.
type rpcServer struct {
	d    *daemon
	auth string
	log  *slog.Logger

	mu    sync.Mutex
	conns map[*rpcConn]struct{}
	done  bool

	badAuths      uint64    // wrong tokens given, guarded by mu
	badAuthLogged time.Time // when that was last logged
}

// badAuth counts a wrong token and logs it at most once a second, with
// the count, so that guessing cannot flood the journal.
func (s *rpcServer) badAuth(from net.Addr) {
	s.mu.Lock()
	s.badAuths++
	n, due := s.badAuths, time.Since(s.badAuthLogged) >= time.Second
	if due {
		s.badAuthLogged = time.Now()
	}
	s.mu.Unlock()
	if due {
		s.log.Warn("Serf RPC client gave a wrong auth token", "REMOTE", from.String(), "WRONG_TOKENS_TOTAL", n)
	}
}

func newRPCServer(d *daemon, auth string) *rpcServer {
	return &rpcServer{d: d, auth: auth, log: d.log, conns: map[*rpcConn]struct{}{}}
}

// serve accepts connections until l is closed.
func (s *rpcServer) serve(l net.Listener) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := l.Accept()
		if err != nil {
			s.closeAll()
			return
		}
		rc := s.newConn(c)
		if rc == nil {
			c.Close()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rc.serve()
		}()
	}
}

func (s *rpcServer) newConn(c net.Conn) *rpcConn {
	h := ctl.NewRPCHandle()
	lr := &io.LimitedReader{R: c, N: rpcMaxRequest}
	rc := &rpcConn{s: s, conn: c, lr: lr, br: bufio.NewReader(lr), bw: bufio.NewWriter(c),
		streams: map[uint64]*rpcFeed{}, queries: map[uint64]*gossip.Query{}}
	rc.dec = codec.NewDecoder(rc.br, h)
	rc.enc = codec.NewEncoder(rc.bw, h)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return nil
	}
	s.conns[rc] = struct{}{}
	return rc
}

func (s *rpcServer) closeAll() {
	s.mu.Lock()
	s.done = true
	conns := make([]*rpcConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.conn.Close()
	}
}

// rpcConn is one client connection. Requests are read and answered one
// at a time; streams write from their own goroutines, so every write takes
// writeMu.
type rpcConn struct {
	s    *rpcServer
	conn net.Conn
	lr   *io.LimitedReader // rpcMaxRequest per request
	br   *bufio.Reader
	dec  *codec.Decoder

	writeMu sync.Mutex
	bw      *bufio.Writer
	enc     *codec.Encoder

	version int32
	authed  bool

	mu         sync.Mutex // streams, monitor, queries, nextQuery
	streams    map[uint64]*rpcFeed
	monitor    *rpcFeed
	monitorSeq uint64
	queries    map[uint64]*gossip.Query
	nextID     uint64
	closed     bool
}

// send writes one answer (header, then body unless nil) within
// rpcWriteTimeout; a failed write closes the connection.
func (c *rpcConn) send(seq uint64, errStr string, body any) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(rpcWriteTimeout))
	err := c.enc.Encode(&ctl.RPCResponseHeader{Seq: seq, Error: errStr})
	if err == nil && body != nil {
		err = c.enc.Encode(body)
	}
	if err == nil {
		err = c.bw.Flush()
	}
	if err != nil {
		c.conn.Close()
	}
	return err
}

func (c *rpcConn) serve() {
	defer c.close()
	_ = c.conn.SetReadDeadline(time.Now().Add(rpcSetupTimeout))
	for {
		c.lr.N = rpcMaxRequest // a request that needs more ends the connection
		var h ctl.RPCRequestHeader
		if err := c.dec.Decode(&h); err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				c.s.log.Debug("Serf RPC connection ended", "REMOTE", c.conn.RemoteAddr().String(), "ERROR", err.Error())
			}
			return
		}
		if err := c.handle(h); err != nil {
			c.s.log.Debug("Serf RPC connection dropped", "REMOTE", c.conn.RemoteAddr().String(),
				"COMMAND", h.Command, "ERROR", err.Error())
			return
		}
		if c.version != 0 && (c.s.auth == "" || c.authed) {
			_ = c.conn.SetReadDeadline(time.Time{}) // set up: a client may idle while its streams run
		}
	}
}

func (c *rpcConn) close() {
	c.conn.Close() // first: a feed blocked writing to the client returns at once
	c.mu.Lock()
	c.closed = true
	streams := c.streams
	c.streams = map[uint64]*rpcFeed{}
	mon := c.monitor
	c.monitor = nil
	c.mu.Unlock()
	for _, st := range streams {
		st.stop()
	}
	if mon != nil {
		mon.stop()
	}
	c.s.mu.Lock()
	delete(c.s.conns, c)
	c.s.mu.Unlock()
}

// decodeBody reads a request's body; a body that does not decode ends
// the connection (the stream is out of step).
func (c *rpcConn) decodeBody(v any) error {
	if err := c.dec.Decode(v); err != nil {
		return fmt.Errorf("decode request body: %w", err)
	}
	return nil
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func (c *rpcConn) handle(h ctl.RPCRequestHeader) error {
	switch {
	case h.Command == ctl.RPCHandshake:
		var req ctl.RPCHandshakeRequest
		if err := c.decodeBody(&req); err != nil {
			return err
		}
		e := ""
		switch {
		case req.Version < 1 || req.Version > ctl.RPCVersion:
			e = rpcErrUnsupportedVersion
		case c.version != 0:
			e = rpcErrDuplicateHandshake
		default:
			c.version = req.Version
		}
		return c.send(h.Seq, e, nil)
	case c.version == 0:
		return c.refuse(h, ctl.RPCErrHandshakeRequired)
	case h.Command == ctl.RPCAuth:
		var req ctl.RPCAuthRequest
		if err := c.decodeBody(&req); err != nil {
			return err
		}
		if c.s.auth != "" && subtle.ConstantTimeCompare([]byte(req.AuthKey), []byte(c.s.auth)) != 1 {
			c.s.badAuth(c.conn.RemoteAddr())
			return c.send(h.Seq, rpcErrInvalidAuthToken, nil)
		}
		c.authed = true
		return c.send(h.Seq, "", nil)
	case c.s.auth != "" && !c.authed:
		return c.refuse(h, ctl.RPCErrAuthRequired)
	}
	if h.Command != ctl.RPCMembers && h.Command != ctl.RPCMembersFiltered && h.Command != ctl.RPCStats &&
		h.Command != ctl.RPCGetCoordinate && h.Command != ctl.RPCStream && h.Command != ctl.RPCMonitor && h.Command != ctl.RPCStop {
		c.s.log.Debug("Serf RPC request", "COMMAND", h.Command, "REMOTE", c.conn.RemoteAddr().String())
	}
	d := c.s.d
	switch h.Command {
	case ctl.RPCMembers:
		return c.send(h.Seq, "", &ctl.RPCMembersResponse{Members: c.members(nil)})
	case ctl.RPCMembersFiltered:
		var req ctl.RPCMembersFilteredRequest
		if err := c.decodeBody(&req); err != nil {
			return err
		}
		match, err := memberMatcher(req.Tags, req.Status, req.Name)
		if err != nil {
			return c.send(h.Seq, err.Error(), &ctl.RPCMembersResponse{Members: []ctl.RPCMember{}})
		}
		return c.send(h.Seq, "", &ctl.RPCMembersResponse{Members: c.members(match)})
	case ctl.RPCEvent:
		var req ctl.RPCEventRequest
		if err := c.decodeBody(&req); err != nil {
			return err
		}
		var err error
		if req.Name == "" {
			err = errors.New("the event name is empty")
		} else {
			err = d.cluster.UserEvent(req.Name, req.Payload, req.Coalesce)
		}
		return c.send(h.Seq, errString(err), nil)
	case ctl.RPCForceLeave:
		var req ctl.RPCForceLeaveRequest
		if err := c.decodeBody(&req); err != nil {
			return err
		}
		err := d.cluster.RemoveFailedNode(req.Node, req.Prune)
		if errors.Is(err, gossip.ErrNoSuchMember) {
			// A Serf agent answers success (scripts treat force-leave as
			// idempotent); serfctl over the control socket says why.
			d.log.Info("force-leave over Serf RPC of a name that is no member: nothing to do", "SERF_MEMBER", req.Node)
			err = nil
		}
		return c.send(h.Seq, errString(err), nil)
	case ctl.RPCJoin:
		var req ctl.RPCJoinRequest
		if err := c.decodeBody(&req); err != nil {
			return err
		}
		for _, a := range req.Existing {
			if err := checkJoinAddr(a); err != nil {
				return c.send(h.Seq, err.Error(), &ctl.RPCJoinResponse{})
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		n, err := d.joinEntries(ctx, req.Existing, !req.Replay)
		cancel()
		if n > 0 {
			err = nil
		}
		return c.send(h.Seq, errString(err), &ctl.RPCJoinResponse{Num: int32(n)})
	case ctl.RPCTags:
		var req ctl.RPCTagsRequest
		if err := c.decodeBody(&req); err != nil {
			return err
		}
		_, err := d.changeTags(req.Tags, req.DeleteTags)
		return c.send(h.Seq, errString(err), nil)
	case ctl.RPCLeave:
		err := d.leaveCluster()
		if err == nil {
			defer d.requestStop()
		}
		return c.send(h.Seq, errString(err), nil)
	case ctl.RPCInstallKey, ctl.RPCUseKey, ctl.RPCRemoveKey, ctl.RPCListKeys:
		var req ctl.RPCKeyRequest
		if h.Command != ctl.RPCListKeys {
			if err := c.decodeBody(&req); err != nil {
				return err
			}
		}
		op := map[string]string{ctl.RPCInstallKey: ctl.KeyInstall, ctl.RPCUseKey: ctl.KeyUse, ctl.RPCRemoveKey: ctl.KeyRemove,
			ctl.RPCListKeys: ctl.KeyList}[h.Command]
		kr, err := d.keyOp(op, req.Key)
		if err == nil && kr.Error != "" {
			err = errors.New(kr.Error)
		}
		if kr.Messages == nil {
			kr.Messages = map[string]string{}
		}
		if kr.Keys == nil {
			kr.Keys = map[string]int{}
		}
		return c.send(h.Seq, errString(err), &ctl.RPCKeyResponse{Messages: kr.Messages, Keys: kr.Keys,
			NumNodes: kr.NumNodes, NumErr: kr.NumErr, NumResp: kr.NumResp})
	case ctl.RPCStats:
		return c.send(h.Seq, "", c.stats())
	case ctl.RPCGetCoordinate:
		var req ctl.RPCCoordinateRequest
		if err := c.decodeBody(&req); err != nil {
			return err
		}
		var resp ctl.RPCCoordinateResponse
		if co, ok := d.cluster.Coordinate(req.Node); ok {
			resp.Coord, resp.Ok = ctl.RPCCoordinate{Vec: co.Vec, Error: co.Error, Adjustment: co.Adjustment, Height: co.Height}, true
		}
		return c.send(h.Seq, "", &resp)
	case ctl.RPCStream:
		var req ctl.RPCStreamRequest
		if err := c.decodeBody(&req); err != nil {
			return err
		}
		return c.startStream(h.Seq, req.Type)
	case ctl.RPCMonitor:
		var req ctl.RPCMonitorRequest
		if err := c.decodeBody(&req); err != nil {
			return err
		}
		return c.startMonitor(h.Seq, req.LogLevel)
	case ctl.RPCStop:
		var req ctl.RPCStopRequest
		if err := c.decodeBody(&req); err != nil {
			return err
		}
		c.stopStream(req.Stop)
		return c.send(h.Seq, "", nil)
	case ctl.RPCQuery:
		return c.query(h.Seq)
	case ctl.RPCRespond:
		var req ctl.RPCRespondRequest
		if err := c.decodeBody(&req); err != nil {
			return err
		}
		c.mu.Lock()
		q := c.queries[req.ID]
		delete(c.queries, req.ID)
		c.mu.Unlock()
		if q == nil {
			return c.send(h.Seq, rpcErrInvalidQueryID, nil)
		}
		err := q.Respond(req.Payload)
		if err != nil {
			// As a handler's, told to the journal too (the client gets the error).
			c.s.log.Warn("Serf RPC client's response to a query not sent: "+err.Error(), "REMOTE", c.conn.RemoteAddr().String(),
				"SERF_QUERY_SOURCE", q.SourceNode(), "RESPONSE_BYTES", len(req.Payload), "ERROR", err.Error(),
				msgIDKey, exec.MsgQueryResponseNotSent)
		}
		return c.send(h.Seq, errString(err), nil)
	}
	return c.refuse(h, ctl.RPCErrUnsupportedCommand)
}

// refuse answers a request that is not served; its body, if any, cannot be
// told apart from the next request, so the connection ends after the
// answer for a command that has one (as Serf).
func (c *rpcConn) refuse(h ctl.RPCRequestHeader, why string) error {
	if err := c.send(h.Seq, why, nil); err != nil {
		return err
	}
	if h.Command != ctl.RPCHandshake && h.Command != ctl.RPCMembers && h.Command != ctl.RPCStats &&
		h.Command != ctl.RPCLeave && h.Command != ctl.RPCListKeys {
		return fmt.Errorf("%s: %s", h.Command, why)
	}
	return nil
}

func (c *rpcConn) members(match func(gossip.Member) bool) []ctl.RPCMember {
	out := []ctl.RPCMember{}
	for _, m := range c.s.d.cluster.Members() {
		if match == nil || match(m) {
			out = append(out, rpcMemberOf(m))
		}
	}
	return out
}

// memberMatcher builds Serf's members-filtered match: every filter a
// regular expression anchored at both ends.
func memberMatcher(tags map[string]string, status, name string) (func(gossip.Member) bool, error) {
	anchored := func(expr string) (*regexp.Regexp, error) {
		re, err := regexp.Compile("^" + expr + "$")
		if err != nil {
			return nil, fmt.Errorf("invalid filter %q: %v", expr, err)
		}
		return re, nil
	}
	tagREs := map[string]*regexp.Regexp{}
	for k, v := range tags {
		re, err := anchored(v)
		if err != nil {
			return nil, err
		}
		tagREs[k] = re
	}
	var statusRE, nameRE *regexp.Regexp
	var err error
	if status != "" {
		if statusRE, err = anchored(status); err != nil {
			return nil, err
		}
	}
	if name != "" {
		if nameRE, err = anchored(name); err != nil {
			return nil, err
		}
	}
	return func(m gossip.Member) bool {
		for k, re := range tagREs {
			if !re.MatchString(m.Tags[k]) {
				return false
			}
		}
		return (statusRE == nil || statusRE.MatchString(m.Status.String())) &&
			(nameRE == nil || nameRE.MatchString(m.Name))
	}, nil
}

// stats is Serf's stats map: agent, runtime, serf, tags.
func (c *rpcConn) stats() map[string]map[string]string {
	d := c.s.d
	st := d.cluster.Stats()
	local := d.cluster.LocalMember()
	itoa := func(n int) string { return strconv.Itoa(n) }
	utoa := func(n uint64) string { return strconv.FormatUint(n, 10) }
	tags := map[string]string{}
	for k, v := range local.Tags {
		tags[k] = v
	}
	return map[string]map[string]string{
		"agent": {"name": local.Name},
		"runtime": {"os": runtime.GOOS, "arch": runtime.GOARCH, "version": runtime.Version(),
			"max_procs": itoa(runtime.GOMAXPROCS(0)), "goroutines": itoa(runtime.NumGoroutine()),
			"cpu_count": itoa(runtime.NumCPU())},
		"serf": {"members": itoa(st.Members), "failed": itoa(st.Failed), "left": itoa(st.Left),
			"health_score": itoa(st.HealthScore), "member_time": utoa(st.MemberTime), "event_time": utoa(st.EventTime),
			"query_time": utoa(st.QueryTime), "intent_queue": itoa(st.IntentQueue), "event_queue": itoa(st.EventQueue),
			"query_queue": itoa(st.QueryQueue), "encrypted": strconv.FormatBool(d.cluster.EncryptionEnabled()),
			"coordinate_resets": utoa(st.CoordinateResets)},
		"tags": tags,
	}
}

// query runs a query for the client: the answer first, then ack,
// response and done records under its Seq, until the deadline.
func (c *rpcConn) query(seq uint64) error {
	var req ctl.RPCQueryRequest
	if err := c.decodeBody(&req); err != nil {
		return err
	}
	resp, err := c.s.d.cluster.Query(req.Name, req.Payload, &gossip.QueryParams{FilterNodes: req.FilterNodes,
		FilterTags: req.FilterTags, RequestAck: req.RequestAck, RelayFactor: req.RelayFactor, Timeout: req.Timeout})
	if err := c.send(seq, errString(err), nil); err != nil || resp == nil {
		if resp != nil {
			resp.Close()
		}
		return err
	}
	go func() {
		defer resp.Close()
		ackCh, respCh := resp.AckCh(), resp.ResponseCh()
		for ackCh != nil || respCh != nil {
			var rec ctl.RPCQueryRecord
			select {
			case from, ok := <-ackCh:
				if !ok {
					ackCh = nil
					continue
				}
				rec = ctl.RPCQueryRecord{Type: ctl.QueryAck, From: from}
			case nr, ok := <-respCh:
				if !ok {
					respCh = nil
					continue
				}
				rec = ctl.RPCQueryRecord{Type: ctl.QueryResponse, From: nr.From, Payload: nr.Payload}
			}
			if c.send(seq, "", &rec) != nil {
				return
			}
		}
		c.send(seq, "", &ctl.RPCQueryRecord{Type: ctl.QueryDone})
	}()
	return nil
}

// rpcFeed is one event stream (or the monitor) of a connection.
type rpcFeed struct {
	stopOnce sync.Once
	stopCh   chan struct{}
	done     chan struct{}
}

func (st *rpcFeed) stop() {
	st.stopOnce.Do(func() { close(st.stopCh) })
	<-st.done
}

func (c *rpcConn) startStream(seq uint64, spec string) error {
	filter, err := exec.CompileFilter(spec)
	if err != nil {
		return c.send(seq, rpcErrInvalidFilter, nil)
	}
	c.mu.Lock()
	if _, ok := c.streams[seq]; ok || c.closed {
		c.mu.Unlock()
		return c.send(seq, rpcErrStreamExists, nil)
	}
	if len(c.streams) >= rpcMaxStreamsConn {
		c.mu.Unlock()
		return c.send(seq, fmt.Sprintf("%d streams are open on this connection, the limit is %d", len(c.streams), rpcMaxStreamsConn), nil)
	}
	sub, err := c.s.d.events.subscribe(filter)
	if err != nil {
		c.mu.Unlock()
		return c.send(seq, err.Error(), nil)
	}
	st := &rpcFeed{stopCh: make(chan struct{}), done: make(chan struct{})}
	c.streams[seq] = st
	c.mu.Unlock()
	if err := c.send(seq, "", nil); err != nil {
		c.s.d.events.unsubscribe(sub)
		return err
	}
	go func() {
		defer close(st.done)
		defer c.s.d.events.unsubscribe(sub)
		for {
			select {
			case ev := <-sub.ch:
				if c.send(seq, "", c.eventRecord(ev)) != nil {
					return
				}
			case <-st.stopCh:
				return
			}
		}
	}()
	return nil
}

// eventRecord is Serf's stream record of ev.
func (c *rpcConn) eventRecord(ev gossip.Event) any {
	switch ev.Type {
	case gossip.EventUser:
		return &struct {
			Event    string
			LTime    uint64
			Name     string
			Payload  []byte
			Coalesce bool
		}{ev.Type.String(), ev.LTime, ev.Name, ev.Payload, ev.Coalesce}
	case gossip.EventQuery:
		c.mu.Lock()
		c.nextID++
		id := c.nextID
		if ev.Query != nil {
			c.queries[id] = ev.Query
		}
		c.mu.Unlock()
		return &struct {
			Event   string
			ID      uint64
			LTime   uint64
			Name    string
			Payload []byte
		}{ev.Type.String(), id, ev.LTime, ev.Name, ev.Payload}
	}
	members := make([]ctl.RPCMember, 0, len(ev.Members))
	for _, m := range ev.Members {
		members = append(members, rpcMemberOf(m))
	}
	return &struct {
		Event   string
		Members []ctl.RPCMember
	}{ev.Type.String(), members}
}

func (c *rpcConn) stopStream(seq uint64) {
	c.mu.Lock()
	st := c.streams[seq]
	delete(c.streams, seq)
	if st == nil && c.monitor != nil && c.monitorSeq == seq {
		st, c.monitor = c.monitor, nil
	}
	c.mu.Unlock()
	if st != nil {
		st.stop()
	}
}

func (c *rpcConn) startMonitor(seq uint64, level string) error {
	lvl, err := parseLevel(strings.ToLower(level))
	if err != nil {
		return c.send(seq, fmt.Sprintf("Unknown log level: %s", strings.ToUpper(level)), nil)
	}
	c.mu.Lock()
	if c.monitor != nil || c.closed {
		c.mu.Unlock()
		return c.send(seq, rpcErrMonitorExists, nil)
	}
	sub, err := c.s.d.logs.subscribe(lvl)
	if err != nil {
		c.mu.Unlock()
		return c.send(seq, err.Error(), nil)
	}
	st := &rpcFeed{stopCh: make(chan struct{}), done: make(chan struct{})}
	c.monitor, c.monitorSeq = st, seq
	c.mu.Unlock()
	if err := c.send(seq, "", nil); err != nil {
		c.s.d.logs.unsubscribe(sub)
		return err
	}
	go func() {
		defer close(st.done)
		defer c.s.d.logs.unsubscribe(sub)
		for {
			select {
			case rec := <-sub.ch:
				if c.send(seq, "", &ctl.RPCLogRecord{Log: logLine(rec)}) != nil {
					return
				}
			case <-st.stopCh:
				return
			}
		}
	}()
	return nil
}

// logLine formats a record as Serf's log lines look:
// "2006/01/02 15:04:05 [INFO] message key=value ...".
func logLine(rec ctl.LogRecord) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s [%s] %s", rec.Time.Local().Format("2006/01/02 15:04:05"), rec.Level, rec.Message)
	for _, k := range slices.Sorted(maps.Keys(rec.Attrs)) {
		fmt.Fprintf(&b, " %s=%q", k, rec.Attrs[k])
	}
	return b.String()
}

// startRPC serves Serf's RPC when the configuration asks for it; the
// returned function stops it (closing every connection and stream).
func (d *daemon) startRPC() (func(), error) {
	if d.cfg.RPCAddr == "" {
		return func() {}, nil
	}
	l, err := net.Listen("tcp", d.cfg.RPCAddr)
	if err != nil {
		return nil, fmt.Errorf("serve Serf RPC: %w", err)
	}
	s := newRPCServer(d, d.cfg.RPCAuth)
	ll := newLimitListener(l)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.serve(ll)
	}()
	d.log.Info("serving Serf RPC", "RPC_ADDR", l.Addr().String(), "RPC_AUTH", d.cfg.RPCAuth != "")
	return func() {
		ll.Close()
		<-done
	}, nil
}

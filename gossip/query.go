package gossip

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/memberlist"
)

// Query filters travel as [filter type] + msgpack body.
const (
	filterNode byte = 0 // body: array of node names
	filterTag  byte = 1 // body: tagFilter
)

// tagFilter is the body of a tag filter. Its field names are the wire format.
type tagFilter struct {
	Tag  string
	Expr string
}

// Query sizing and timing.
const (
	defaultQuerySizeLimit = 1024 // encoded query message, type byte included
	queryTimeoutMult      = 16   // default timeout = GossipInterval × this × ceil(log10(N+1))
	queryProtocolMin      = 4    // Serf protocol that introduced queries
)

// defaultQueryResponseStreamSizeLimit bounds an encoded query response
// sent over memberlist's reliable stream (Config.QueryResponseStreamSizeLimit).
const defaultQueryResponseStreamSizeLimit = 1 << 20

// QueryParams shapes an outgoing query. Zero values mean Serf's defaults.
type QueryParams struct {
	FilterNodes []string          // only these nodes answer
	FilterTags  map[string]string // tag name -> regexp (unanchored, as Serf)
	RequestAck  bool
	RelayFactor uint8
	Timeout     time.Duration // 0: DefaultQueryTimeout()
}

// NodeResponse is one node's answer to a query.
type NodeResponse struct {
	From    string
	Payload []byte
}

// queryKey identifies a query: its Lamport time and random ID.
type queryKey struct {
	ltime uint64
	id    uint32
}

// QueryResponse streams acks and responses of one outgoing query until its
// deadline. Each node is reported at most once on each channel; both channels
// are closed at the deadline or by Close. Answers that arrive while a channel
// is full are dropped and logged, so read both channels promptly. Its methods
// are safe for concurrent use; Close is idempotent.
type QueryResponse struct {
	c        *Cluster
	key      queryKey
	name     string
	deadline time.Time
	ackCh    chan string
	respCh   chan NodeResponse

	mu     sync.Mutex
	timer  *time.Timer
	closed bool
	acks   map[string]bool
	resps  map[string]bool
}

// AckCh returns the channel of the names of nodes that acknowledged the
// query. Nothing arrives on it unless QueryParams.RequestAck was set.
func (r *QueryResponse) AckCh() <-chan string { return r.ackCh }

// ResponseCh returns the channel of node responses.
func (r *QueryResponse) ResponseCh() <-chan NodeResponse { return r.respCh }

// Deadline returns when the channels close.
func (r *QueryResponse) Deadline() time.Time { return r.deadline }

// Close stops collecting answers and closes both channels. Idempotent.
func (r *QueryResponse) Close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	if r.timer != nil {
		r.timer.Stop()
	}
	if !time.Now().Before(r.deadline) {
		r.c.traffic.queriesTimedOut.Add(1)
	}
	close(r.ackCh)
	close(r.respCh)
	r.mu.Unlock()

	r.c.qs.mu.Lock()
	if r.c.qs.pending[r.key] == r {
		delete(r.c.qs.pending, r.key)
	}
	r.c.qs.mu.Unlock()
}

// add records an ack or a response from one node, once per node and kind,
// unless the query is closed or past its deadline. It never blocks.
func (r *QueryResponse) add(ack bool, from string, payload []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || time.Now().After(r.deadline) {
		return
	}
	kind, seen := "response", r.resps
	if ack {
		kind, seen = "ack", r.acks
	}
	if seen[from] {
		r.c.log.Debug("ignoring duplicate query "+kind, "SERF_QUERY_NAME", r.name, "SERF_MEMBER", from)
		return
	}
	seen[from] = true
	if ack {
		r.c.traffic.acksReceived.Add(1)
	} else {
		r.c.traffic.responsesReceived.Add(1)
	}
	var delivered bool
	if ack {
		select {
		case r.ackCh <- from:
			delivered = true
		default:
		}
	} else {
		select {
		case r.respCh <- NodeResponse{From: from, Payload: payload}:
			delivered = true
		default:
		}
	}
	if !delivered {
		r.c.log.Warn("query "+kind+" channel full; dropping "+kind, "SERF_QUERY_NAME", r.name, "SERF_MEMBER", from)
	}
}

// Query is an incoming query, delivered as Event{Type: EventQuery, ...}.
// Respond may be called from any goroutine, at most once successfully.
type Query struct {
	c           *Cluster
	key         queryKey
	name        string
	source      string
	sourceAddr  net.UDPAddr // where answers go
	relayFactor uint8
	deadline    time.Time
	// byStream: the source marked the query with queryFlagStreamResponse,
	// so it takes an answer larger than a packet over a stream.
	byStream bool

	mu        sync.Mutex
	responded bool
}

// Deadline returns the time after which Respond fails: the receipt time plus
// the query's timeout.
func (q *Query) Deadline() time.Time { return q.deadline }

// SourceNode returns the name of the node that sent the query.
func (q *Query) SourceNode() string { return q.source }

// Respond sends payload to the query's source. It succeeds at most once,
// before the deadline. An encoded response (and its relay envelope, when
// the query asked for relays) that fits Config.QueryResponseSizeLimit goes
// in a packet, with relayed copies; relayed copies are best effort: their
// failures are logged, not returned. A larger one goes, when the query's
// source asked for it (queryFlagStreamResponse: a serfd node), over
// memberlist's reliable stream straight to the source, without relays, up
// to Config.QueryResponseStreamSizeLimit; Respond then waits until the
// stream is written (at most memberlist's stream timeout). Otherwise it
// fails with an error wrapping ErrTooLarge that names the size, the limit
// and, for a source that cannot take a stream answer (a stock Serf agent),
// that reason; an oversized payload may be retried smaller.
func (q *Query) Respond(payload []byte) error {
	err := q.respond(payload)
	if err != nil {
		q.c.traffic.responsesFailed.Add(1)
	} else {
		q.c.traffic.responsesSent.Add(1)
	}
	return err
}

func (q *Query) respond(payload []byte) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.responded {
		return fmt.Errorf("respond to query %q: response already sent", q.name)
	}
	if time.Now().After(q.deadline) {
		return fmt.Errorf("respond to query %q: response is past the deadline %s", q.name,
			q.deadline.Format(time.RFC3339Nano))
	}
	if q.c.clusterState() == stateShutdown {
		return fmt.Errorf("respond to query %q: %w", q.name, ErrShutdown)
	}
	raw, err := q.encodeResponse(payload)
	if err != nil {
		return fmt.Errorf("respond to query %q: %w", q.name, err)
	}
	limit := q.c.cfg.QueryResponseSizeLimit
	what, size := "encoded response", len(raw)
	if size <= limit && q.relayFactor > 0 {
		env, err := q.c.wire.encodeRelay(relayHeader{DestAddr: q.sourceAddr, DestName: q.source}, raw)
		if err != nil {
			return fmt.Errorf("respond to query %q: %w", q.name, err)
		}
		what, size = "relayed response", len(env)
	}
	if size <= limit {
		if err := q.c.sendTo(q.sourceAddr, q.source, raw); err != nil {
			return fmt.Errorf("respond to query %q: send to %s: %w", q.name, q.source, err)
		}
		q.responded = true
		q.c.relay(q.relayFactor, q.sourceAddr, q.source, raw)
		return nil
	}
	if !q.byStream {
		return errorf(ErrTooLarge, "respond to query %q: %s is %d bytes, over the packet limit of %d bytes, "+
			"and the querier %s is not a serfd node taking answers by stream (its query does not ask for them), so it cannot take a larger answer",
			q.name, what, size, limit, q.source)
	}
	if streamLimit := q.c.cfg.QueryResponseStreamSizeLimit; len(raw) > streamLimit {
		return errorf(ErrTooLarge, "respond to query %q: encoded response is %d bytes, over the stream limit of %d bytes",
			q.name, len(raw), streamLimit)
	}
	if err := q.c.sendStream(q.sourceAddr, q.source, raw); err != nil {
		return fmt.Errorf("respond to query %q: send %d bytes to %s by stream: %w", q.name, len(raw), q.source, err)
	}
	q.responded = true
	q.c.traffic.responsesStreamed.Add(1)
	return nil
}

// encodeResponse returns the query response message carrying payload.
func (q *Query) encodeResponse(payload []byte) ([]byte, error) {
	return q.c.wire.encode(msgQueryResponse, &queryResponseMsg{
		LTime: q.key.ltime, ID: q.key.id, From: q.c.cfg.NodeName, Payload: payload,
	})
}

// queryState is the Cluster's query bookkeeping and the guard for the
// goroutines it starts for internal queries.
type queryState struct {
	gossipInterval time.Duration // memberlist's, for the default timeout

	mu       sync.Mutex
	pending  map[queryKey]*QueryResponse // outgoing queries still open
	closed   bool                        // Shutdown has begun: start no goroutine
	selfDone chan struct{}               // closed when a self-started shutdown finished; nil if none

	inOnShutdown atomic.Bool // Config.OnShutdown is running
	resolving    atomic.Bool // a name conflict resolution is running
}

// spawn runs f on a goroutine that Shutdown waits for. It reports false (and
// does not run f) once Shutdown has begun.
func (c *Cluster) spawn(f func()) bool {
	c.qs.mu.Lock()
	defer c.qs.mu.Unlock()
	if c.qs.closed {
		return false
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		f()
	}()
	return true
}

// stopQueries is called by Shutdown before it waits for goroutines: no
// goroutine starts afterwards, and every open QueryResponse is closed.
func (c *Cluster) stopQueries() {
	c.qs.mu.Lock()
	c.qs.closed = true
	open := make([]*QueryResponse, 0, len(c.qs.pending))
	for _, r := range c.qs.pending {
		open = append(open, r)
	}
	c.qs.mu.Unlock()
	for _, r := range open {
		r.Close()
	}
}

// DefaultQueryTimeout returns Serf's default query timeout:
// GossipInterval × 16 × ceil(log10(N+1)), N the number of live members.
func (c *Cluster) DefaultQueryTimeout() time.Duration {
	n := 1
	if c.ml != nil {
		n = c.ml.NumMembers()
	}
	interval := c.qs.gossipInterval
	if interval <= 0 {
		interval = 200 * time.Millisecond // memberlist's LAN profile
	}
	mult := time.Duration(math.Ceil(math.Log10(float64(n) + 1)))
	return interval * queryTimeoutMult * mult
}

// Query sends a query to the cluster and returns the stream of its acks and
// responses. The query is processed locally first (this node acks and may
// respond to itself) and then gossiped. Names starting with "_serf_" are
// reserved for internal queries; only "_serf_ping" with no payload may be
// sent (as `serf reachability` does).
func (c *Cluster) Query(name string, payload []byte, p *QueryParams) (*QueryResponse, error) {
	if strings.HasPrefix(name, internalQueryPrefix) && (name != pingQuery || len(payload) > 0) {
		return nil, fmt.Errorf("query %q: names starting with %q are reserved for internal queries",
			name, internalQueryPrefix)
	}
	if err := c.notMember(fmt.Sprintf("query %q", name)); err != nil {
		return nil, err
	}
	return c.query(name, payload, p)
}

// query sends any query, internal ones included.
func (c *Cluster) query(name string, payload []byte, p *QueryParams) (*QueryResponse, error) {
	if c.clusterState() == stateShutdown || c.ml == nil {
		return nil, fmt.Errorf("query %q: %w", name, ErrShutdown)
	}
	if serfProtocol < queryProtocolMin {
		return nil, fmt.Errorf("query %q: needs Serf protocol %d or later", name, queryProtocolMin)
	}
	if p == nil {
		p = &QueryParams{}
	}
	timeout := p.Timeout
	switch {
	case timeout == 0:
		timeout = c.DefaultQueryTimeout()
	case timeout < 0:
		return nil, errorf(ErrInvalid, "query %q: timeout %v is negative", name, timeout)
	}
	filters, err := c.encodeFilters(p)
	if err != nil {
		return nil, errorf(ErrInvalid, "query %q: %w", name, err)
	}
	local := c.ml.LocalNode()
	m := queryMsg{
		// Claim the current time atomically; handling the query below
		// witnesses it, as Serf does, so the next query gets a later one.
		LTime:       c.queryClock.Claim(),
		ID:          rand.Uint32(),
		Addr:        slices.Clone([]byte(local.Addr)),
		Port:        local.Port,
		SourceNode:  local.Name,
		Filters:     filters,
		RelayFactor: p.RelayFactor,
		Timeout:     timeout,
		Name:        name,
		Payload:     bytes.Clone(payload),
	}
	if p.RequestAck {
		m.Flags |= queryFlagAck
	}
	if c.cfg.QueryResponseStreamSizeLimit > c.cfg.QueryResponseSizeLimit {
		m.Flags |= queryFlagStreamResponse
	}
	raw, err := c.wire.encode(msgQuery, &m)
	if err != nil {
		return nil, fmt.Errorf("query %q: %w", name, err)
	}
	if limit := c.cfg.QuerySizeLimit; len(raw) > limit {
		return nil, errorf(ErrTooLarge, "query %q: encoded message is %d bytes, over the limit of %d bytes", name, len(raw), limit)
	}
	if n := c.queryQ.NumQueued(); n >= c.cfg.Backlog && c.hasOtherAliveMembers() {
		c.refusedQueries.Add(1)
		return nil, fmt.Errorf("query %q not sent: %d queries wait to be gossiped, the limit is %d: %w",
			name, n, c.cfg.Backlog, ErrBusy)
	}

	size := 2*int(c.numMembers.Load()) + 32
	r := &QueryResponse{
		c:        c,
		key:      queryKey{ltime: m.LTime, id: m.ID},
		name:     name,
		deadline: time.Now().Add(timeout),
		ackCh:    make(chan string, size),
		respCh:   make(chan NodeResponse, size),
		acks:     map[string]bool{},
		resps:    map[string]bool{},
	}
	c.qs.mu.Lock()
	if c.qs.closed {
		c.qs.mu.Unlock()
		return nil, fmt.Errorf("query %q: %w", name, ErrShutdown)
	}
	if c.qs.pending == nil {
		c.qs.pending = map[queryKey]*QueryResponse{}
	}
	c.qs.pending[r.key] = r
	c.qs.mu.Unlock()
	r.mu.Lock()
	r.timer = time.AfterFunc(timeout, r.Close)
	r.mu.Unlock()

	c.handleQuery(m)
	c.queryQ.QueueBroadcast(&broadcast{msg: raw})
	c.traffic.queriesSent.Add(1)
	return r, nil
}

// encodeFilters turns the node and tag filters into Serf's filter list. Tag
// filters are sorted by tag name so a query encodes the same way every time.
func (c *Cluster) encodeFilters(p *QueryParams) ([][]byte, error) {
	f, err := filterOf(p) // checks the expressions compile
	if err != nil {
		return nil, err
	}
	var filters [][]byte
	for _, set := range f.nodeSets {
		enc, err := encodeFilter(filterNode, set, c.wire)
		if err != nil {
			return nil, err
		}
		filters = append(filters, enc)
	}
	for _, t := range f.tags.tags { // unanchored: String is the expression as given
		enc, err := encodeFilter(filterTag, &tagFilter{Tag: t.tag, Expr: t.re.String()}, c.wire)
		if err != nil {
			return nil, err
		}
		filters = append(filters, enc)
	}
	return filters, nil
}

// encodeFilter returns the filter type byte followed by msgpack(v).
func encodeFilter(typ byte, v any, w *wireCodec) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte(typ)
	if err := codec.NewEncoder(&buf, w.enc).Encode(v); err != nil {
		return nil, fmt.Errorf("encode query filter: %w", err)
	}
	return buf.Bytes(), nil
}

// decodeValue decodes the msgpack value at the start of b into v, after
// checking that it is complete and bounded. Bytes after it are ignored.
func (w *wireCodec) decodeValue(b []byte, v any) error {
	n, err := scanValue(b, maxWireDepth)
	if err != nil {
		return err
	}
	return codec.NewDecoderBytes(b[:n], w.dec).Decode(v)
}

// handleQuery records a query in the query dedup ring and, the first time
// it is seen, processes it (filters, ack, delivery). It reports whether the
// query should be rebroadcast.
func (c *Cluster) handleQuery(m queryMsg) bool {
	if !c.recordQuery(m) {
		return false
	}
	c.processQuery(m)
	return m.Flags&queryFlagNoBroadcast == 0
}

// receiveQuery is handleQuery for a query from a peer, counted.
func (c *Cluster) receiveQuery(m queryMsg) bool {
	if !c.recordQuery(m) {
		c.traffic.queriesDuplicate.Add(1)
		return false
	}
	c.traffic.queriesReceived.Add(1)
	c.processQuery(m)
	if m.Flags&queryFlagNoBroadcast != 0 {
		return false
	}
	c.traffic.queriesRelayed.Add(1)
	return true
}

// recordQuery applies Serf's dedup rules to a query and reports whether it
// is new.
func (c *Cluster) recordQuery(m queryMsg) bool {
	c.queryClock.Witness(m.LTime)
	c.queryMu.Lock()
	defer c.queryMu.Unlock()
	if m.LTime < c.queryMinTime {
		return false
	}
	if cur := c.queryClock.Time(); cur > eventRing && m.LTime < cur-eventRing {
		c.log.Warn("dropping query older than the dedup ring", "SERF_QUERY_NAME", m.Name,
			"SERF_LTIME", m.LTime, "SERF_QUERY_CLOCK", cur)
		return false
	}
	idx := m.LTime % eventRing
	slot := c.queries[idx]
	if slot != nil && slot.LTime == m.LTime {
		if slices.Contains(slot.IDs, m.ID) {
			return false
		}
	} else {
		slot = &querySlot{LTime: m.LTime}
		c.queries[idx] = slot
	}
	slot.IDs = append(slot.IDs, m.ID)
	return true
}

// processQuery answers a first-seen query: it checks the filters, sends the
// ack (and its relays) at once if asked, then hands internal queries to
// their handler and every other query to OnEvent.
func (c *Cluster) processQuery(m queryMsg) {
	if !c.queryMatches(m) {
		return
	}
	src := net.UDPAddr{IP: net.IP(slices.Clone(m.Addr)), Port: int(m.Port)}
	if !c.memberAt(m.SourceNode, src) {
		c.badIn.note(c.log, "dropped malformed or implausible messages from the network", msgIDKey, MsgBadInput,
			"MESSAGE_TYPE", "query", "ERROR", fmt.Sprintf("query %q from %q at %s: no such member at that address",
				m.Name, m.SourceNode, src.String()))
		return
	}
	m.RelayFactor = min(m.RelayFactor, maxRelayFactor)
	q := &Query{
		c:           c,
		key:         queryKey{ltime: m.LTime, id: m.ID},
		name:        m.Name,
		source:      m.SourceNode,
		sourceAddr:  src,
		relayFactor: m.RelayFactor,
		deadline:    time.Now().Add(m.Timeout),
		byStream:    m.Flags&queryFlagStreamResponse != 0,
	}
	if m.Flags&queryFlagAck != 0 {
		ack, err := c.wire.encode(msgQueryResponse, &queryResponseMsg{
			LTime: m.LTime, ID: m.ID, From: c.cfg.NodeName, Flags: queryFlagAck,
		})
		if err == nil {
			err = c.sendTo(q.sourceAddr, q.source, ack)
		}
		if err != nil {
			c.log.Warn("cannot acknowledge query", "SERF_QUERY_NAME", m.Name, "SERF_MEMBER", m.SourceNode, "ERROR", err)
		} else {
			c.relay(m.RelayFactor, q.sourceAddr, q.source, ack)
		}
	}
	if strings.HasPrefix(m.Name, internalQueryPrefix) {
		c.handleInternalQuery(q, m.Payload)
		return
	}
	c.emit(Event{Type: EventQuery, LTime: m.LTime, Name: m.Name, Payload: bytes.Clone(m.Payload), Query: q})
}

// queryMatches reports whether every filter of the query selects this node.
// A filter that cannot be decoded, or of an unknown type, selects nothing.
func (c *Cluster) queryMatches(m queryMsg) bool {
	var f queryFilter
	for _, raw := range m.Filters {
		if len(raw) == 0 {
			c.log.Warn("ignoring query with an empty filter", "SERF_QUERY_NAME", m.Name, "SERF_MEMBER", m.SourceNode)
			return false
		}
		switch raw[0] {
		case filterNode:
			var names []string
			if err := c.wire.decodeValue(raw[1:], &names); err != nil {
				c.log.Warn("ignoring query with a malformed node filter", "SERF_QUERY_NAME", m.Name,
					"SERF_MEMBER", m.SourceNode, "ERROR", err)
				return false
			}
			f.nodeSets = append(f.nodeSets, names)
		case filterTag:
			var tf tagFilter
			if _, err := c.wire.decodeMap(raw[1:], &tf); err != nil {
				c.log.Warn("ignoring query with a malformed tag filter", "SERF_QUERY_NAME", m.Name,
					"SERF_MEMBER", m.SourceNode, "ERROR", err)
				return false
			}
			if err := f.tags.add(tf.Tag, tf.Expr, false); err != nil {
				c.log.Warn("ignoring query with a bad tag filter expression", "SERF_QUERY_NAME", m.Name,
					"SERF_MEMBER", m.SourceNode, "ERROR", err)
				return false
			}
		default:
			c.log.Warn("ignoring query with an unknown filter type", "SERF_QUERY_NAME", m.Name,
				"SERF_MEMBER", m.SourceNode, "FILTER_TYPE", raw[0])
			return false
		}
	}
	if len(f.nodeSets) == 0 && f.tags.Empty() {
		return true
	}
	return f.matches(c.cfg.NodeName, c.LocalMember().Tags)
}

// handleQueryResponse hands an ack or response to the open query it
// answers. It may have come in a packet or, from a serfd responder, over a
// stream: memberlist hands both to NotifyMsg. handleMessage has dropped
// any over QueryResponseStreamSizeLimit.
func (c *Cluster) handleQueryResponse(m queryResponseMsg) {
	c.qs.mu.Lock()
	r := c.qs.pending[queryKey{ltime: m.LTime, id: m.ID}]
	c.qs.mu.Unlock()
	if r == nil {
		c.log.Debug("ignoring answer to an unknown or finished query", "SERF_QUERY_LTIME", m.LTime,
			"SERF_QUERY_ID", m.ID, "SERF_MEMBER", m.From)
		return
	}
	r.add(m.Flags&queryFlagAck != 0, m.From, bytes.Clone(m.Payload))
}

// sendTo sends msg (type byte + body) straight to a node by UDP. A message
// for this node itself is handled in place.
func (c *Cluster) sendTo(addr net.UDPAddr, name string, msg []byte) error {
	return c.sendDirect(addr, name, msg, func() error { return c.ml.SendToAddress(memberAddress(addr, name), msg) })
}

// sendStream sends msg (type byte + body) straight to a node over
// memberlist's reliable stream (a TCP connection of its own, compressed
// and encrypted as memberlist's streams are), where memberlist hands it to
// NotifyMsg as it does a packet's. It returns once msg is written; the
// transport bounds the connection by memberlist's stream timeout. A
// message for this node itself is handled in place.
func (c *Cluster) sendStream(addr net.UDPAddr, name string, msg []byte) error {
	return c.sendDirect(addr, name, msg, func() error {
		return c.ml.SendReliable(&memberlist.Node{Name: name, Addr: addr.IP, Port: uint16(addr.Port)}, msg)
	})
}

// sendDirect checks addr, handles a message for this node itself in place,
// and otherwise sends it with send.
func (c *Cluster) sendDirect(addr net.UDPAddr, name string, msg []byte, send func() error) error {
	if c.ml == nil {
		return errors.New("no transport")
	}
	if len(addr.IP) != net.IPv4len && len(addr.IP) != net.IPv6len || addr.Port <= 0 || addr.Port > math.MaxUint16 {
		return fmt.Errorf("invalid address %s", addr.String())
	}
	if local := c.ml.LocalNode(); name == local.Name && addr.IP.Equal(local.Addr) && addr.Port == int(local.Port) {
		c.handleMessage(msg)
		return nil
	}
	return send()
}

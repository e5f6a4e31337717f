package gossip

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// Status is a member's state, numbered as Serf numbers it on the wire.
type Status int

// Member states.
const (
	StatusNone Status = iota
	StatusAlive
	StatusLeaving
	StatusLeft
	StatusFailed
)

// String returns "alive", "leaving", "left", "failed" or "none".
func (s Status) String() string {
	switch s {
	case StatusAlive:
		return "alive"
	case StatusLeaving:
		return "leaving"
	case StatusLeft:
		return "left"
	case StatusFailed:
		return "failed"
	}
	return "none"
}

// Member is a snapshot of one cluster member. Safe to keep; it shares nothing with the cluster.
type Member struct {
	Name   string
	Addr   net.IP
	Port   uint16
	Tags   map[string]string
	Status Status
	// memberlist protocol and Serf (delegate) protocol versions.
	ProtocolMin, ProtocolMax, ProtocolCur uint8
	DelegateMin, DelegateMax, DelegateCur uint8
}

// EventType is the kind of an Event; String gives Serf's handler names.
type EventType int

// Event kinds.
const (
	EventMemberJoin EventType = iota
	EventMemberLeave
	EventMemberFailed
	EventMemberUpdate
	EventMemberReap
	EventUser
	EventQuery
)

// String returns "member-join", "member-leave", "member-failed",
// "member-update", "member-reap", "user" or "query".
func (t EventType) String() string {
	switch t {
	case EventMemberJoin:
		return "member-join"
	case EventMemberLeave:
		return "member-leave"
	case EventMemberFailed:
		return "member-failed"
	case EventMemberUpdate:
		return "member-update"
	case EventMemberReap:
		return "member-reap"
	case EventUser:
		return "user"
	case EventQuery:
		return "query"
	}
	return "unknown"
}

// Verb says what a member event tells of its members, for log messages
// ("member web-2 failed"): "joined", "left", "failed", "updated" or
// "reaped"; "" for user events and queries.
func (t EventType) Verb() string {
	switch t {
	case EventMemberJoin:
		return "joined"
	case EventMemberLeave:
		return "left"
	case EventMemberFailed:
		return "failed"
	case EventMemberUpdate:
		return "updated"
	case EventMemberReap:
		return "reaped"
	}
	return ""
}

// membersNamed is how many members Describe names before it counts the
// rest.
const membersNamed = 3

// Describe is the message of a record about a member event: "member web-2
// failed (10.0.0.2:7946)", or for several members "3 members joined: a
// (10.0.0.1:7946), b (...), c (...)", naming at most three and counting
// the rest ("and 2 more").
func (t EventType) Describe(members []Member) string {
	verb := t.Verb()
	if verb == "" || len(members) == 0 {
		return t.String()
	}
	if len(members) == 1 {
		return "member " + members[0].Name + " " + verb + " (" + members[0].HostPort() + ")"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d members %s: ", len(members), verb)
	for i, m := range members[:min(len(members), membersNamed)] {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(m.Name + " (" + m.HostPort() + ")")
	}
	if more := len(members) - membersNamed; more > 0 {
		fmt.Fprintf(&b, " and %d more", more)
	}
	return b.String()
}

// HostPort is the member's gossip address, "ip:port".
func (m Member) HostPort() string {
	return net.JoinHostPort(m.Addr.String(), strconv.Itoa(int(m.Port)))
}

// Event is delivered to Config.OnEvent.
type Event struct {
	Type    EventType
	Members []Member // member events: the members concerned
	// User events and queries.
	LTime    uint64
	Name     string
	Payload  []byte
	Coalesce bool
	Query    *Query // EventQuery only: answer with Query.Respond
}

// Config configures a Cluster. Zero values mean the documented default.
type Config struct {
	NodeName      string // required
	BindAddr      string // IP to bind, default "0.0.0.0"
	BindPort      int    // default 7946; 0 picks a free port (tests)
	AdvertiseAddr string // default: derived by memberlist
	AdvertisePort int
	// Transport, if set, carries memberlist's packets and streams instead
	// of the UDP and TCP sockets Create would bind on BindAddr and
	// BindPort (which are then not used): the simulation's in-memory
	// network. Shutdown shuts it down.
	Transport memberlist.NodeAwareTransport
	Profile   string // "lan" (default), "wan", "local"
	// TimeScale, when above 1, stretches the profile's protocol periods
	// and timeouts (probe interval and timeout, gossip interval, gossip to
	// the dead, push/pull interval, stream timeout) by that factor. The
	// simulation runs a thousand nodes on a few CPUs slowed down by it, so
	// that the work of a period stays small beside the period, as on a
	// fleet where each node has a CPU of its own; its figures divide by
	// it. 0 or 1 keeps the profile's periods.
	TimeScale float64
	// Uncompressed turns memberlist's compression of packets and streams
	// off (Serf's profiles, and serfd's, compress; a peer reads either).
	// The messages in a packet stay the same: memberlist fills a packet
	// before compressing it. The simulation sets it: every compressed
	// packet allocates a new 64 KiB LZW table, which with a thousand
	// nodes in one process keeps the collector busy.
	Uncompressed bool
	Tags         map[string]string
	// UserEventSizeLimit bounds name+payload and the encoded message (Serf: 512, max 9216).
	UserEventSizeLimit int
	// Backlog bounds this node's user events not yet sent in a first
	// gossip packet, and separately the queries waiting in its gossip
	// queue (default 128). While other members are alive to take them,
	// UserEvent and Query refuse more with an error that wraps ErrBusy, so
	// a burst is refused up front instead of being accepted and then
	// dropped by receivers that it left more than their dedup window
	// behind. A user event already sent goes on being retransmitted, the
	// newest first (memberlist's queue order), so under load each event is
	// sent fewer times and push/pull, which carries the whole event window,
	// repairs a node a cut-short event missed (docs/bench/zeroloss.md).
	Backlog int
	// EventQueue is the capacity of the delivery queue between gossip and
	// OnEvent (default 1024). When full, new events are dropped, logged and counted.
	EventQueue int
	// OnEvent receives every event, in order, from one goroutine owned by the
	// Cluster. It may be slow: only later deliveries wait, never gossip.
	OnEvent func(Event)
	Logger  *slog.Logger // required

	// QuerySizeLimit and QueryResponseSizeLimit bound the encoded query and
	// query response messages, type byte included (default 1024 each).
	QuerySizeLimit, QueryResponseSizeLimit int
	// QueryResponseStreamSizeLimit bounds a query response that travels
	// over memberlist's reliable stream instead of a packet, type byte
	// included (default 1 MiB, at least QueryResponseSizeLimit, at most
	// MaxQueryResponseStreamSizeLimit). Above QueryResponseSizeLimit, this
	// node's queries ask for such answers (queryFlagStreamResponse) and it
	// accepts them up to this size; its own answers to queries that asked
	// go by stream up to this size. Equal to QueryResponseSizeLimit, no
	// answer travels by stream. Give every node the same value: an answer
	// over the querier's own limit is dropped on arrival.
	QueryResponseStreamSizeLimit int
	// EncryptKeys enables memberlist's keyring: the first key is primary;
	// each is 16, 24 or 32 bytes.
	EncryptKeys [][]byte
	// KeyringFile, if set, is rewritten (mode 0600) as a JSON array of
	// base64 keys, primary first, after every key change.
	KeyringFile string
	// KeyHandoverGrace is how long a key removed from the keyring still
	// lets a node holding it take over the current keyring, so that a node
	// that was down during a key rotation gets back in (handover.go).
	// 0 = 24h; negative = never (a rotation because a key leaked).
	// Retired keys are kept in KeyringFile + ".retired" if there is a file.
	KeyHandoverGrace time.Duration
	// OnShutdown, if set, is called once when the Cluster shuts itself down
	// (it lost a name conflict), after the shutdown, from a goroutine of
	// the Cluster. Shutdown waits for it unless called from it.
	OnShutdown func(reason error)

	// DisableCoordinates turns off network coordinates: no ping delegate,
	// acks carry no payload and LocalCoordinate returns nil.
	DisableCoordinates bool

	// SnapshotPath, if set, is Serf's snapshot file: members, clocks and
	// leaves are appended to it, and it is replayed at Create so a restarted
	// node rejoins its previous peers and never re-delivers events it
	// handled (snapshot.go).
	SnapshotPath string
	// RejoinAfterLeave keeps the snapshot's peers after a graceful leave;
	// otherwise a node that left does not rejoin them after a restart.
	RejoinAfterLeave bool
	// SnapshotRetention is how long the snapshot keeps the last address
	// of a member that failed or left (default 72h). After a restart the
	// node tries to rejoin the peers the snapshot lists alive, then
	// these, and keeps trying in the background until one join
	// succeeds or every address is older than this; the alive peers
	// count from the start. So a cluster whose nodes all went down one
	// after another forms again by itself when they come back within
	// the retention (Serf #333).
	SnapshotRetention time.Duration
	// A node restarted with a snapshot that holds an event clock receives,
	// on every join (the automatic rejoin or any other), the events
	// sent while it was down that are still in its peers' buffers, as
	// Serf does; the events it handled before stay dropped.
	// ReplayOnRejoin makes the automatic rejoin do so also when the
	// snapshot has no event clock (the node never saw an event), which
	// replays every event in the peers' buffers.
	ReplayOnRejoin bool
	// ReconnectInterval: how often to try to reach a failed member (default 30s).
	ReconnectInterval time.Duration
	// ReconnectTimeout: failed members are reaped after this (default 24h).
	ReconnectTimeout time.Duration
	// TombstoneTimeout: left members are reaped after this (default 24h).
	TombstoneTimeout time.Duration
	// Member events are coalesced when both periods are set (Serf agent:
	// 3s and 1s): held until QuiescentPeriod without a new one, at most
	// CoalescePeriod, then one event per type. 0 and 0 delivers at once.
	// Coalesced events are delivered at the flush, so after events that
	// arrived later but were not coalesced (queries, other kinds).
	CoalescePeriod, QuiescentPeriod time.Duration
	// User events sent with coalescing (CC) are coalesced when both are
	// set: only the latest LTime per name is delivered.
	UserCoalescePeriod, UserQuiescentPeriod time.Duration
}

// Cluster is one node's view of the cluster. All methods are safe for concurrent use.
//
// Lock order: memberMu, then eventMu or queryMu. stateMu is a leaf: nothing
// else is acquired while holding it. health.mu (events.go) is taken before
// stateMu and before nothing else. The broadcast queues take their own
// locks and call back only into atomics, so they may be used under any lock.
type Cluster struct {
	cfg    Config // defaults applied
	timing timing
	log    *slog.Logger
	wire   *wireCodec
	meta   []byte // encoded tags of the Config; see nodeMeta (tags.go)
	ml     *memberlist.Memberlist

	// Outgoing gossip, drained by GetBroadcasts in this order.
	intentQ, queryQ, eventQ *memberlist.TransmitLimitedQueue
	numMembers              atomic.Int64 // len(members), for the queues
	unsent                  unsentEvents // user events not yet in a gossip packet (unsent.go)

	clock, eventClock, queryClock lamportClock

	stateMu      sync.Mutex
	state        clusterState
	shutdownOnce sync.Once
	shutdownErr  error

	joinSem   chan struct{} // holds a token while a join runs: one at a time, so ignoreOld belongs to one join
	ignoreOld atomic.Bool   // set while a Join(..., true) runs

	catchingUp atomic.Bool   // the push/pulls after a join are under way (catchup.go)
	catchUps   atomic.Uint64 // catch-up push/pulls tried

	memberMu sync.Mutex
	members  map[string]*memberState
	intents  map[string]bufferedIntent // intents about nodes not yet known

	eventMu      sync.Mutex
	events       [EventWindow]*eventSlot
	eventMinTime uint64

	queryMu      sync.Mutex
	queries      [eventRing]*querySlot
	queryMinTime uint64

	deliver chan Event  // to the delivery goroutine; nil without OnEvent
	dropped dropCounter // events dropped because the delivery queue was full (logging.go)
	tooOld  dropCounter // user events from gossip dropped behind the window
	badIn   dropCounter // messages and push/pull states dropped as malformed or implausible
	// UserEvent and Query calls refused with ErrBusy.
	refusedEvents, refusedQueries atomic.Uint64
	health                        healthState // what CheckHealth watches (events.go)

	coords *coordState // nil when Config.DisableCoordinates

	qs queryState    // outgoing queries, internal query goroutines (query.go)
	ks keyState      // keyring and key operations (keys.go)
	ho handoverState // retired keys and key handover (handover.go)

	// Snapshot, rejoin, reconnect, coalescing and tags (snapshot.go,
	// reconnect.go, coalesce.go, tags.go).
	snap *snapshotter // nil without Config.SnapshotPath
	// seen records the user events handed to OnEvent (written by the
	// delivery goroutine only); seenBefore is what it held at Create,
	// read-only. nil without a snapshot or OnEvent; seenBefore also nil
	// when there was no seen log (seen.go).
	seen            *seenLog
	seenBefore      *seenSet
	prevPeers       []string       // alive peers from the snapshot; fixed after Create
	rejoinTargets   []rejoinTarget // what the automatic rejoin tries; fixed after Create
	rejoinIgnoreOld atomic.Bool    // join push/pulls ignore old events while rejoining
	// history: the snapshot (or the seen log) restored what this node
	// handled before a restart. Then no join ignores old events: the
	// events it handled are dropped anyway, and the others are ones it
	// missed. Set before memberlist starts; read-only after Create.
	history          bool
	memberCo, userCo *coalescer             // nil when not coalescing
	tagsMu           sync.Mutex             // serializes SetTags
	tagMeta          atomic.Pointer[[]byte] // encoded tags of the last SetTags
	flaps            atomic.Uint64
	traffic          traffic // counters.go

	stop chan struct{} // closed by Shutdown
	// ctx is cancelled by Shutdown, with stop: for the Cluster's own calls
	// that take a context.
	ctx       context.Context
	cancelCtx context.CancelFunc
	wg        sync.WaitGroup
}

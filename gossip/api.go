package gossip

import (
	"log/slog"
	"net"
	"sync"
	"sync/atomic"

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

// Event is delivered to Config.OnEvent.
type Event struct {
	Type    EventType
	Members []Member // member events: the members concerned
	// User events.
	LTime    uint64
	Name     string
	Payload  []byte
	Coalesce bool
}

// Config configures a Cluster. Zero values mean the documented default.
type Config struct {
	NodeName      string // required
	BindAddr      string // IP to bind, default "0.0.0.0"
	BindPort      int    // default 7946; 0 picks a free port (tests)
	AdvertiseAddr string // default: derived by memberlist
	AdvertisePort int
	Profile       string // "lan" (default), "wan", "local"
	Tags          map[string]string
	// UserEventSizeLimit bounds name+payload and the encoded message (Serf: 512, max 9216).
	UserEventSizeLimit int
	// EventQueue is the capacity of the delivery queue between gossip and
	// OnEvent (default 1024). When full, new events are dropped, logged and counted.
	EventQueue int
	// OnEvent receives every event, in order, from one goroutine owned by the
	// Cluster. It may be slow: only later deliveries wait, never gossip.
	OnEvent func(Event)
	Logger  *slog.Logger // required
}

// Cluster is one node's view of the cluster. All methods are safe for concurrent use.
//
// Lock order: memberMu, then eventMu or queryMu. stateMu is a leaf: nothing
// else is acquired while holding it. The broadcast queues take their own
// locks and call back only into atomics, so they may be used under any lock.
type Cluster struct {
	cfg    Config // defaults applied
	timing timing
	log    *slog.Logger
	wire   *wireCodec
	meta   []byte // encoded tags, fixed for the Cluster's life
	ml     *memberlist.Memberlist

	// Outgoing gossip, drained by GetBroadcasts in this order.
	intentQ, queryQ, eventQ *memberlist.TransmitLimitedQueue
	numMembers              atomic.Int64 // len(members), for the queues

	clock, eventClock, queryClock lamportClock

	stateMu      sync.Mutex
	state        clusterState
	shutdownOnce sync.Once
	shutdownErr  error

	joinMu    sync.Mutex  // serializes Join, so ignoreOld belongs to one join
	ignoreOld atomic.Bool // set while a Join(..., true) runs

	memberMu sync.Mutex
	members  map[string]*memberState
	intents  map[string]bufferedIntent // intents about nodes not yet known

	eventMu      sync.Mutex
	events       [eventRing]*eventSlot
	eventMinTime uint64

	queryMu      sync.Mutex
	queries      [eventRing]*querySlot
	queryMinTime uint64

	deliver chan Event // to the delivery goroutine; nil without OnEvent
	dropped atomic.Uint64

	stop chan struct{} // closed by Shutdown
	wg   sync.WaitGroup
}

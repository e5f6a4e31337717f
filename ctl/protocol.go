package ctl

import "time"

// DefaultSocket is where serfd listens unless configured otherwise.
const DefaultSocket = "/run/serfd.sock"

// SocketEnv names the environment variable that overrides DefaultSocket for clients.
const SocketEnv = "SERFD_SOCKET"

// Paths of the control API. Every path is versioned under /v1/.
const (
	PathMembers = "/v1/members"
	PathJoin    = "/v1/join"
	PathLeave   = "/v1/leave"
	PathEvent   = "/v1/event"
	// PathQuery answers with a stream of QueryRecord, one JSON object a line.
	PathQuery      = "/v1/query"
	PathTags       = "/v1/tags"
	PathForceLeave = "/v1/force-leave"
	PathKeys       = "/v1/keys"
	// PathRTT takes the query parameters a and b (node names; b defaults to
	// the local node).
	PathRTT = "/v1/rtt"
)

// MaxRequestBody bounds the body of any request the daemon accepts.
const MaxRequestBody = 64 << 10

// Member is one cluster member as the API reports it.
type Member struct {
	Name   string            `json:"name"`
	Addr   string            `json:"addr"`
	Port   uint16            `json:"port"`
	Tags   map[string]string `json:"tags"`
	Status string            `json:"status"` // alive, leaving, left, failed
	// Protocol holds the member's Serf protocol versions: min, max and
	// version (the one in use), as Serf's members output has them.
	Protocol map[string]uint8 `json:"protocol,omitempty"`
}

// MembersResponse answers GET PathMembers.
type MembersResponse struct {
	Members []Member `json:"members"`
}

// JoinRequest is the body of POST PathJoin.
type JoinRequest struct {
	Addrs  []string `json:"addrs"`
	Replay bool     `json:"replay,omitempty"`
}

// JoinResponse answers POST PathJoin.
type JoinResponse struct {
	Joined int `json:"joined"`
}

// EventRequest is the body of POST PathEvent.
type EventRequest struct {
	Name     string `json:"name"`
	Payload  []byte `json:"payload,omitempty"`
	Coalesce bool   `json:"coalesce,omitempty"`
}

// EventResponse answers POST PathEvent.
type EventResponse struct {
	Sent bool `json:"sent"`
}

// LeaveResponse answers POST PathLeave.
type LeaveResponse struct {
	Left bool `json:"left"`
}

// ErrorResponse is the body of every non-2xx response.
type ErrorResponse struct {
	Error string `json:"error"`
	// Problems lists every problem one by one when there are several (a
	// configuration that does not load: "file:line,col: message").
	Problems []string `json:"problems,omitempty"`
}

// Error is a failure the daemon reported, with the HTTP status it chose.
type Error struct {
	Status   int
	Message  string
	Problems []string
	// RetryAfter is the daemon's Retry-After: the same request may succeed
	// after it (a 503 because gossip was busy). 0 if not given.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	return e.Message
}

// IsStatus reports whether err is an *Error with the given HTTP status.
func IsStatus(err error, status int) bool {
	e, ok := err.(*Error)
	return ok && e.Status == status
}

// QueryRequest is the body of POST PathQuery.
type QueryRequest struct {
	Name        string            `json:"name"`
	Payload     []byte            `json:"payload,omitempty"`
	FilterNodes []string          `json:"filter_nodes,omitempty"`
	FilterTags  map[string]string `json:"filter_tags,omitempty"` // tag -> regexp
	NoAck       bool              `json:"no_ack,omitempty"`
	RelayFactor uint8             `json:"relay_factor,omitempty"`
	Timeout     string            `json:"timeout,omitempty"` // Go duration; "" = the cluster's default
}

// Query stream record types.
const (
	QueryStarted  = "started"
	QueryAck      = "ack"
	QueryResponse = "response"
	QueryDone     = "done"
)

// QueryRecord is one line of the PathQuery stream: a "started" record with
// the deadline, then "ack" and "response" records as they arrive, then a
// "done" record with the totals.
type QueryRecord struct {
	Type     string    `json:"type"`
	From     string    `json:"from,omitempty"`
	Payload  []byte    `json:"payload,omitempty"`
	Deadline time.Time `json:"deadline,omitzero"`
	// Expected, on the "started" record, is how many alive members match
	// the filters: the stream ends early once all of them have answered.
	Expected  int `json:"expected,omitempty"`
	Acks      int `json:"acks,omitempty"`
	Responses int `json:"responses,omitempty"`
}

// TagsRequest is the body of POST PathTags: deletes apply first, then sets.
type TagsRequest struct {
	Set    map[string]string `json:"set,omitempty"`
	Delete []string          `json:"delete,omitempty"`
}

// TagsResponse answers POST PathTags with the node's tags now.
type TagsResponse struct {
	Tags map[string]string `json:"tags"`
}

// ForceLeaveRequest is the body of POST PathForceLeave.
type ForceLeaveRequest struct {
	Node  string `json:"node"`
	Prune bool   `json:"prune,omitempty"`
}

// ForceLeaveResponse answers POST PathForceLeave.
type ForceLeaveResponse struct {
	Node string `json:"node"`
}

// Key operations of KeysRequest.Op.
const (
	KeyInstall = "install"
	KeyUse     = "use"
	KeyRemove  = "remove"
	KeyList    = "list"
)

// KeysRequest is the body of POST PathKeys. Key is base64; empty for list.
type KeysRequest struct {
	Op  string `json:"op"`
	Key string `json:"key,omitempty"`
}

// KeysResponse answers POST PathKeys: what every node reported.
type KeysResponse struct {
	NumNodes    int               `json:"num_nodes"`
	NumResp     int               `json:"num_resp"`
	NumErr      int               `json:"num_err"`
	Messages    map[string]string `json:"messages,omitempty"`     // node -> error
	Keys        map[string]int    `json:"keys,omitempty"`         // key -> nodes holding it
	PrimaryKeys map[string]int    `json:"primary_keys,omitempty"` // key -> nodes using it as primary
	// Error says what failed when not every node succeeded.
	Error string `json:"error,omitempty"`
}

// RTTResponse answers GET PathRTT.
type RTTResponse struct {
	A   string        `json:"a"`
	B   string        `json:"b"`
	RTT time.Duration `json:"rtt_ns"`
}

// Paths added for operators: monitor, info and reload.
const (
	// PathMonitor streams the daemon's log records as LogRecord, one JSON
	// object a line, until the client goes away. The query parameter
	// level (debug, info, warn, error; default info) sets the minimum.
	// It is the event stream too: each event gossip delivers is logged as
	// one INFO record with the attribute SERF_EVENT (its type) and no
	// HANDLER (the records of handler runs name theirs), member events
	// with SERF_MEMBERS, user events with SERF_USER_EVENT and
	// PAYLOAD_BYTES, queries with SERF_QUERY_NAME (serfctl members -watch
	// reads them).
	PathMonitor = "/v1/monitor"
	// PathInfo answers with InfoResponse.
	PathInfo = "/v1/info"
	// PathMetrics answers with serfd's Prometheus metrics, in the
	// Prometheus text format (OpenMetrics when the client asks for it).
	PathMetrics = "/v1/metrics"
	// PathReload re-reads the configuration and applies what can change
	// live; it answers with ReloadResponse, or 400 with every problem.
	PathReload = "/v1/reload"
	// PathPprof serves Go's runtime profiles (net/http/pprof: the index,
	// profile?seconds=N, heap, goroutine, trace, ...) to root and the admin
	// group only: a profile shows what is in serfd's memory.
	PathPprof = "/debug/pprof/"
)

// LogRecord is one line of the PathMonitor stream.
type LogRecord struct {
	Time    time.Time         `json:"time"`
	Level   string            `json:"level"` // DEBUG, INFO, WARN, ERROR
	Message string            `json:"msg"`
	Attrs   map[string]string `json:"attrs,omitempty"`
	// Dropped counts records this subscriber lost before this one because
	// it read too slowly.
	Dropped uint64 `json:"dropped,omitempty"`
}

// InfoResponse answers GET PathInfo.
type InfoResponse struct {
	Node            string            `json:"node"`
	Version         string            `json:"version"`
	GossipAddr      string            `json:"gossip_addr"`
	Tags            map[string]string `json:"tags"`
	ConfigFiles     []string          `json:"config_files"`
	ControlSocket   string            `json:"control_socket"`
	SocketActivated bool              `json:"socket_activated"`
	AdminGroup      string            `json:"admin_group"`
	LogLevel        string            `json:"log_level"`
	EncryptionOn    bool              `json:"encryption"`
	Members         MemberCounts      `json:"members"`
	Gossip          GossipStats       `json:"gossip"`
	Handlers        []HandlerStats    `json:"handlers"`
	HandlerPool     HandlerPoolStats  `json:"handler_pool"`
	Runtime         RuntimeInfo       `json:"runtime"`
	// MonitorDrops counts log records dropped for slow monitor clients.
	MonitorDrops uint64 `json:"monitor_drops"`
}

// RuntimeInfo describes the daemon process.
type RuntimeInfo struct {
	GoVersion  string        `json:"go_version"`
	OS         string        `json:"os"`
	Arch       string        `json:"arch"`
	MaxProcs   int           `json:"max_procs"`
	CPUCount   int           `json:"cpu_count"`
	Goroutines int           `json:"goroutines"`
	HeapInuse  uint64        `json:"heap_inuse_bytes"` // Go heap spans in use (runtime.MemStats.HeapInuse)
	Uptime     time.Duration `json:"uptime_ns"`
}

// MemberCounts counts members by status, as this node sees them.
type MemberCounts struct {
	Total   int `json:"total"`
	Alive   int `json:"alive"`
	Leaving int `json:"leaving"`
	Left    int `json:"left"`
	Failed  int `json:"failed"`
}

// GossipStats are the clocks, queue depths and counters of gossip.
type GossipStats struct {
	MemberTime       uint64 `json:"member_time"`
	EventTime        uint64 `json:"event_time"`
	QueryTime        uint64 `json:"query_time"`
	IntentQueue      int    `json:"intent_queue"`
	EventQueue       int    `json:"event_queue"`
	QueryQueue       int    `json:"query_queue"`
	DroppedEvents    uint64 `json:"dropped_events"`
	TooOldEvents     uint64 `json:"too_old_events"`  // user events dropped behind the dedup window
	RefusedEvents    uint64 `json:"refused_events"`  // user events refused: gossip busy (503)
	RefusedQueries   uint64 `json:"refused_queries"` // queries refused: gossip busy (503)
	HealthScore      int    `json:"health_score"`
	CoordinateResets uint64 `json:"coordinate_resets"`
	Flaps            uint64 `json:"flaps"`
}

// HandlerPoolStats describe the handler pool as a whole.
type HandlerPoolStats struct {
	Workers    int `json:"workers"`
	Running    int `json:"running"`
	Queued     int `json:"queued"` // runs waiting in memory
	QueueLimit int `json:"queue_limit"`
	// Spooled counts runs of user events waiting in the spool beyond the
	// queue; Spool is the spool file, "" when there is none.
	Spooled  int    `json:"spooled"`
	Spool    string `json:"spool"`
	Watching bool   `json:"watching"` // handlers.d changes are seen without waiting for an event
	// Dir is the handlers directory; DirProblem why it was not read
	// ("missing", or why it is refused), "" when it was.
	Dir        string `json:"dir"`
	DirProblem string `json:"dir_problem,omitempty"`
	Handlers   int    `json:"handlers"` // active handlers
	Refused    int    `json:"refused"`  // files of the directory refused as handlers
	Dropped    uint64 `json:"dropped"`  // runs dropped (queue full, or not started by the end of a stop's drain)
}

// HandlerStats are one handler's state, settings and counters; a file of
// the handlers directory that is no handler is listed too, with why.
type HandlerStats struct {
	Name   string `json:"name"`
	Active bool   `json:"active"`
	// State is exec.HandlerState: active, refused (a file refused as a
	// handler, Reason says why), ignored (a file whose name is never a
	// handler's, Reason says which) or gone (was a handler, is not now).
	// Empty from a serfd older than the field: Active tells.
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
	// Events is the event filter in Serf's syntax, "*" for every event;
	// Tags the handler block's tag filters (tag name -> regular
	// expression matched against the whole value), absent when it has
	// none; Concurrency the runs it may have in flight; Timeout a run's
	// deadline.
	Events         []string          `json:"events"`
	Tags           map[string]string `json:"tags,omitempty"`
	Concurrency    int               `json:"concurrency"`
	Timeout        time.Duration     `json:"timeout_ns"`
	Runs           uint64            `json:"runs"`
	Failures       uint64            `json:"failures"`
	Timeouts       uint64            `json:"timeouts"`
	Drops          uint64            `json:"drops"`
	Repeats        uint64            `json:"repeats"`
	Queued         int               `json:"queued"`
	Running        int               `json:"running"`
	LastDuration   time.Duration     `json:"last_duration_ns,omitempty"`
	LastExitStatus int               `json:"last_exit_status"`
	LastFinished   time.Time         `json:"last_finished,omitzero"`
	// LastOutcome is how the last run ended: ok, exit_nonzero, timeout,
	// killed or start_failed ("" before the first); LastSignal the signal
	// that ended it, if one did; LastEvent its event, as the journal names
	// it ("user event deploy", "member-join web-2").
	LastOutcome string `json:"last_outcome,omitempty"`
	LastSignal  string `json:"last_signal,omitempty"`
	LastEvent   string `json:"last_event,omitempty"`
}

// ReloadResponse answers POST PathReload.
type ReloadResponse struct {
	ConfigFiles []string `json:"config_files"`
	// Applied names the settings that changed and now apply.
	Applied []string `json:"applied"`
	// NeedsRestart names the settings that changed but apply only after
	// a restart of serfd; they keep their old values until then.
	NeedsRestart []string `json:"needs_restart,omitempty"`
}

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
}

// Error is a failure the daemon reported, with the HTTP status it chose.
type Error struct {
	Status  int
	Message string
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
	Type      string    `json:"type"`
	From      string    `json:"from,omitempty"`
	Payload   []byte    `json:"payload,omitempty"`
	Deadline  time.Time `json:"deadline,omitzero"`
	Acks      int       `json:"acks,omitempty"`
	Responses int       `json:"responses,omitempty"`
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

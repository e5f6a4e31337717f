package ctl

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

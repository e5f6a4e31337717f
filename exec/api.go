package exec

import (
	"log/slog"
	"time"
)

// Member is one member line of a member event's stdin.
type Member struct {
	Name string
	Addr string // IP only, no port
	Tags map[string]string
}

// Event is one event to hand to the handlers. The pool does not know where it came from.
type Event struct {
	Type      string // Serf's name: "member-join", ..., "user", "query"
	UserEvent string // user events: SERF_USER_EVENT
	QueryName string // queries: SERF_QUERY_NAME
	LTime     uint64 // SERF_USER_LTIME / SERF_QUERY_LTIME
	Payload   []byte // stdin of user events and queries
	Members   []Member
	SelfName  string
	SelfTags  map[string]string
	SelfAddr  string // the local node's IP: SERF_SELF_ADDR
	// QuerySource is the name of the node that sent a query:
	// SERF_QUERY_SOURCE. Queries only.
	QuerySource string
	// Respond answers a query with a handler's stdout (at most
	// Options.ResponseLimit bytes). It is called once per run that exits 0
	// having written to stdout; it must be safe for concurrent use and not
	// block for long (a large answer's send over a stream may take a
	// moment). nil for other events.
	Respond func(payload []byte) error
}

// HandlerConfig is the per-handler setting of a `handler "NAME"` block.
type HandlerConfig struct {
	Events []string // Serf filter syntax; empty means every event
	// Tags, when not empty, limits the handler to events whose tags
	// match, each value a regular expression (compiled by
	// Options.CompileTags): a member event runs it with only the members
	// whose own tags match (not at all if none does); a user event or a
	// query runs it only if this node's tags (Event.SelfTags) match.
	Tags        map[string]string
	Timeout     time.Duration
	Concurrency int
	Env         map[string]string
	// Command, when set, makes this a command handler: it is not a file
	// of the handlers directory but runs as `/bin/sh -c Command`, as a
	// Serf agent runs its event_handlers. A file of the same name is then
	// not run.
	Command string
}

// TagCompiler compiles a handler's tag filters (HandlerConfig.Tags: tag
// name -> regular expression) into the test a set of tags must pass, or
// says what is wrong with them. The pool decides which tags the test is
// applied to (see HandlerConfig.Tags); the caller decides what matching
// means.
type TagCompiler func(filters map[string]string) (test func(tags map[string]string) bool, err error)

// Options configures a Pool.
type Options struct {
	Dir       string        // handlers directory; may not exist yet
	Workers   int           // runs in flight across all handlers (default 4)
	Queue     int           // pending runs across all handlers (default 1024)
	Timeout   time.Duration // default per-run deadline (default 60s)
	KillGrace time.Duration // SIGTERM to SIGKILL (default 5s)
	// DrainTimeout bounds Close: queued runs not started by then are
	// dropped (left in the spool, with one) and running ones are stopped
	// as at their deadline (default 10s).
	DrainTimeout time.Duration
	// Spool is the file that keeps the runs of user events until they
	// finished, so that they survive a stop or a crash: New runs again
	// what it holds. Empty: no spool, runs waiting at a stop are lost.
	Spool       string
	OutputLimit int // bytes kept per stream per run (default 64 KiB)
	// ResponseLimit bounds a query handler's stdout, its response: up to
	// this many bytes are kept for it (of which the first OutputLimit are
	// logged), and a longer stdout is not sent (default: OutputLimit).
	ResponseLimit int
	Handlers      map[string]HandlerConfig
	// CompileTags compiles HandlerConfig.Tags; New and SetHandlers call
	// it for every handler that has tags, and its error is theirs.
	// Required when a handler has tags.
	CompileTags TagCompiler
	Path        string // PATH given to scripts (default /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)
	Logger      *slog.Logger
	// OnRun, if set, is told of every run as it ends and of every run
	// dropped (for metrics). It is called without the pool's locks held,
	// from any goroutine, and must not block.
	OnRun func(RunOutcome)
}

// Outcome is how a handler run ended, as counted by metrics.
type Outcome string

// The outcomes of a run. Exactly one applies to each run.
const (
	OutcomeOK          Outcome = "ok"           // exited 0
	OutcomeExitNonZero Outcome = "exit_nonzero" // exited with another status
	OutcomeTimeout     Outcome = "timeout"      // reached its deadline and was stopped
	OutcomeKilled      Outcome = "killed"       // ended by a signal not sent for its deadline
	OutcomeStartFailed Outcome = "start_failed" // could not be started
	OutcomeDropped     Outcome = "dropped"      // never started: the queue was full, or the drain at stop ended
)

// Outcomes lists every Outcome, for metrics that present them all from zero.
var Outcomes = []Outcome{OutcomeOK, OutcomeExitNonZero, OutcomeTimeout, OutcomeKilled, OutcomeStartFailed, OutcomeDropped}

// RunOutcome describes one finished or dropped run for Options.OnRun.
type RunOutcome struct {
	Handler  string
	Event    string // Event.Type
	Outcome  Outcome
	Duration time.Duration // zero for dropped runs
}

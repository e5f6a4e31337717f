// Package exec runs serfd's handler scripts: handlers.d discovery, the worker
// pool, one script run, and the script env/stdin contract Serf defined.
//
// Its room is starting, stopping and feeding a script. It must not know about
// clusters, gossip, sockets, systemd or HCL: an Event is plain data and the
// pool does not know where it came from; logs go to the *slog.Logger it is
// given. It is the only serfd package allowed to import os/exec and fsnotify,
// and it imports no other serfd package.
//
// # Discovery
//
// Every regular executable file in Options.Dir is a handler named by its file
// name. Dotfiles and editor or package-manager leftovers (*~, *.swp, *.tmp,
// *.dpkg-*, *.rpmnew, *.rpmsave, *.disabled) are ignored; subdirectories are
// skipped. A file that is not executable, is group- or world-writable, or is
// owned by a uid other than root or the daemon's effective uid is refused
// with one warning per change (a symlink must itself be owned by root or the
// daemon; its target is checked like a file). A group- or world-writable
// directory is refused whole. A missing directory is not an error: there are
// no handlers until it appears.
//
// The directory is watched with fsnotify (the directory, and its nearest
// existing ancestor, so that the directory appearing, vanishing or being
// replaced by a rename is seen; when the directory is a symlink, also the
// nearest existing directory above its target), and read again about
// 100ms after a change, without waiting for an event: "handler added:
// NAME", "handler replaced: NAME" (another file now has the name, as after
// an atomic write: temporary file, then rename), "handler removed: NAME"
// and refusals are logged within a second of the change, once per change
// whichever read sees it first. The pool keeps what the last read accepted, and Submit
// uses that list without reading the directory, unless it may be out of
// date: the watcher saw a change it has not read yet, the directory is
// not fully watched, or one stat of the directory shows another directory
// or a new ctime (which an entry added, removed or renamed moves at once,
// before the watcher hears of it; a read within 100ms of a change is not
// trusted, as ctime advances in clock ticks), or one stat of a symlink's
// target (which no watch follows) shows it changed. So files added,
// removed and replaced, and changed symlink targets, apply from the next
// event on; a change of an existing file's mode or owner applies once the
// watcher has seen it, normally well under a millisecond later. A watcher that cannot be created or armed (inotify
// limits) is logged, never fatal, and retried every ten seconds; until
// then every event reads the directory.
//
// # Which handlers run
//
// Submit runs a handler for an event when its event filter
// (HandlerConfig.Events, Serf's syntax, filter.go) matches and, if it has
// tag filters (HandlerConfig.Tags), when they let the event through
// (tagTest.apply). What the tags are matched against depends on the
// event: for a member event, each member's own tags, and the handler runs
// with only the members that match (stdin and the run's messages name
// those alone), or not at all when none does; for a user event or a
// query, which has no member, this node's tags (Event.SelfTags), and the
// handler runs with the event as it is, or not at all. What matching means
// is the caller's: Options.CompileTags compiles the tags into a test, so
// the pool holds no rule of its own. The decision is taken once, when
// Submit is called: runs read back from the spool are not matched again.
//
// # Scheduling
//
// Each handler has its own FIFO of pending runs; Options.Workers workers take
// the next handler that has a pending run and fewer than its Concurrency
// (default 1) runs in flight, round robin. So one handler's runs happen one at
// a time in event order, different handlers run in parallel, and a hung
// handler holds at most Concurrency workers while the others carry on.
// Options.Queue bounds the pending runs of the whole pool held in memory:
// when it is full the new run is dropped, logged and counted for its
// handler, except the runs of a user event when there is a spool: they
// wait in the spool (see below). Nothing blocks.
//
// # Spool
//
// With Options.Spool set, the runs of user events survive a stop or a
// crash. Submit appends one run record per user event that matched a
// handler (the handlers, and the event as it arrived: name, LTime,
// payload, the local node's name, tags and address) to the spool file
// before it returns, and each run that finished (exit, failure, timeout,
// failure to start) appends a done record. New queues every run without a
// done record again, in the order the events arrived, before any new
// event, logging how many (MsgHandlerRunsResumed); a run whose handler no
// longer exists is logged and marked done. While the directory itself is
// missing, refused or unreadable, runs stay in the spool until it is back. Queries are not spooled (their
// answer has a deadline a later run cannot meet), nor are member events
// (the membership is learned again on rejoin).
//
// Records are JSON lines, appended with one write(2) each and no fsync: a
// killed daemon loses nothing, a power loss can lose the last records. The
// file is rewritten with only the pending runs (temporary file, fsync,
// rename) at New and whenever done records and finished runs make up more
// than half of it (and at least 64 KiB), so it stays about the size of the
// pending runs. A torn last line (the daemon died in the middle of a
// write) is skipped; damaged lines are skipped and logged
// (MsgHandlerSpoolProblem), never fatal. A spool that cannot be written
// is logged and the runs go on in memory only. A spool that cannot be
// opened or rewritten at New is an error of New.
//
// When the queue is full, a user event's runs are written to the spool but
// not queued, and so are those of every later user event until the queue
// has room again: workers read them back, in order, whenever the queue is
// half empty. Memory stays bounded by Options.Queue, and a user event is
// never dropped for lack of room. Runs of other events are not held back:
// they are queued when there is room, and dropped otherwise.
//
// The spool also remembers the latest 1024 user events it took (name,
// LTime and a SHA-256 of the payload, as seen records once their run
// records are rewritten away), and Submit ignores one of them delivered
// again: the caller may do so after a crash that fell between the spool's
// record and the caller's own record of the delivery, and the event's
// runs are done or in the spool.
//
// A run is done when it finished, so delivery is at least once: a run
// that was running when the daemon was killed, or that Close stopped at
// the end of its drain, runs again from the start at the next New. A run
// whose done record was written never runs again. Runs read back from the
// spool take the handler settings in effect when they are queued.
//
// # One run
//
// The handler's absolute path is executed directly (no shell) in its own
// process group, with working directory / and an environment built from
// scratch: PATH=Options.Path, HOME=/, LANG=C.UTF-8, then HandlerConfig.Env,
// then Serf's variables (SERF_EVENT, SERF_SELF_NAME, SERF_SELF_ROLE,
// SERF_TAG_<NAME>, SERF_USER_EVENT and SERF_USER_LTIME, SERF_QUERY_NAME and
// SERF_QUERY_LTIME), then serfd's extras: SERF_SELF_ADDR (Event.SelfAddr,
// the local node's IP) on every event, SERF_QUERY_SOURCE (Event.QuerySource,
// the name of the node that sent the query) on queries, and
// SERF_HANDLER=<name>, and SERF_RUN_ATTEMPT (1, or how many times a
// spooled run has started, counting those a crash or stop cut short). The contract's variables and the extras win over
// HandlerConfig.Env. Nothing of the daemon's own environment
// (NOTIFY_SOCKET, LISTEN_*, WATCHDOG_*, ...) reaches a script. stdin carries
// one NAME\tADDR\tROLE\tTAGS line per member for member events and the raw
// payload (newline-terminated) for user events and queries; it is written by
// a goroutine and closed, so a script that does not read it does not hang.
// A start that fails with ETXTBSY (the file is still open for writing, as
// while a package manager or an editor replaces it) is retried five times
// over about 300ms before the run counts as failed.
//
// At the deadline (HandlerConfig.Timeout, else Options.Timeout) the process
// group gets SIGTERM, and SIGKILL after Options.KillGrace. When the script's
// main process has exited, the run waits at most two seconds for its output
// pipes to close; if a leftover child still holds them, its process group is
// SIGKILLed and the pipes are closed under it. A child that detaches its
// output (`cmd >/dev/null 2>&1 &`, Serf's forking idiom) is left alone. Each
// output line is one log record with HANDLER and STREAM, up to 200 lines
// per stream per run (the rest are counted in one warning); at most
// Options.OutputLimit bytes per stream are kept and the rest is reported as
// truncated. A query handler's stdout is its response: up to
// Options.ResponseLimit bytes are kept for it (only the first OutputLimit
// of them logged), and a longer stdout is not sent. Each run ends with one record carrying HANDLER, SERF_EVENT,
// SERF_USER_EVENT or SERF_QUERY_NAME, SERF_LTIME, EXIT_STATUS, SIGNAL,
// TIMED_OUT and DURATION_MS, at warning level with MsgHandlerFailed unless
// the script exited 0.
//
// # Messages
//
// Every record's message reads on its own, as `journalctl -u serfd` shows
// it without fields: it names the handler, says what happened with its key
// figures, and ends with the event in parentheses (message.go). A run's
// record is one line saying which handler ran for which event and how it
// ended, worded after its Outcome:
//
//	handler memresponse exited 0 after 5 ms (user event memresponse)
//	handler memresponse exited 3 after 12 ms (member-join web-2)
//	handler deploy timed out after 60.0 s; stopped by SIGTERM (user event deploy)
//	handler deploy timed out after 65.0 s; killed by SIGKILL (user event deploy)
//	handler probe killed by SIGSEGV after 3 ms (query load)
//	handler notify could not start: fork/exec /etc/serf/handlers.d/notify: exec format error (member-failed web-2)
//	handler deploy stopped at shutdown after 10.0 s by SIGTERM; it runs again at the next start (user event deploy)
//
// A member event is named by its type and up to three members ("member-join
// a, b, c and 2 more"); a run started again after a crash adds its attempt
// ("(user event deploy, attempt 2)"). Durations are whole milliseconds below
// ten seconds and seconds with one decimal above. The other records of a
// run follow the same pattern: "handler deploy timed out: still running at
// its 60.0 s deadline; sending SIGTERM (user event deploy)", "handler
// memresponse run dropped: queue full, 1024 runs waiting (member-join
// web-2)".
//
// # Concurrency and lifecycle
//
// New starts the workers and the watcher goroutine, owned by the Pool.
// Submit, SetHandlers, Stats and Summary are safe for concurrent use; Submit
// never waits on a script (with a spool it makes one write(2), and may
// wait for a rewrite of the spool in progress). Stats has each handler's
// state (active, or why not: a file refused, with the reason, a name
// ignored, a handler gone), its event filter, tag filters, concurrency
// and timeout, runs, failures, timeouts, drops, repeats, queue depth,
// runs in flight, and its last run's end, outcome, exit status or signal, duration and
// event; Summary the pool's workers, runs queued and in flight, runs
// waiting in the spool beyond the queue, files refused, runs dropped,
// what is wrong with the directory if anything, and whether it is
// watched. Close stops accepting events and stops the watcher (closing
// its fsnotify watcher, whose goroutine exits with it), lets queued and
// running runs go on for up to Options.DrainTimeout (default 10s; then the
// runs not started are dropped and counted, or with a spool left in it for
// the next start, and running scripts get SIGTERM and, after the kill
// grace, SIGKILL, as at a deadline), closes the spool, and returns only
// when every goroutine the pool started has exited; it is idempotent and
// safe to call concurrently. Runs waiting in the spool are not read back
// after Close. Within a run, the output readers and the deadline watchdog
// are waited for before the run is reported. Locks: the one serialising
// Submit and directory reads, then the spool's, then the queues'.
package exec

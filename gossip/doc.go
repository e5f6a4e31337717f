// Package gossip is serfd's room for Serf semantics over memberlist,
// wire-compatible with Serf: cluster membership (alive, leaving, left,
// failed), tags carried in memberlist node meta, Lamport clocks, join and
// leave intents, user events with Serf's dedup ring, and push/pull state
// merge. Every message it sends or accepts is byte-compatible with stock
// Serf 0.10 agents (Serf protocol 5, memberlist protocol 2). Queries are
// decoded, deduplicated and rebroadcast, but not yet delivered or answered.
//
// It must not know about handler scripts, sockets, systemd, journald or HCL:
// its caller configures it with a Config and receives Events through
// Config.OnEvent. Logging goes to the *slog.Logger the caller passes in;
// member state changes use upper-case journal field names as attribute keys
// (SERF_MEMBER, SERF_MEMBER_ADDR, ...).
//
// Concurrency and lifecycle: Create binds the transport and starts two
// goroutines owned by the Cluster, the event delivery loop (which calls
// Config.OnEvent, one event at a time, in order) and the reaper. memberlist
// callbacks never wait on OnEvent: they hand events to a bounded queue that
// drops (logging and counting) when full. Every exported method of Cluster is
// safe for concurrent use. Leave is a bounded graceful exit; Shutdown stops
// memberlist, waits for both goroutines and is idempotent. OnEvent must not
// call Shutdown, since Shutdown waits for the goroutine that runs OnEvent.
// Events still queued when Shutdown is called are not delivered.
//
// The first event, member-join for the local node (Serf sends it too), is
// queued inside Create and OnEvent may run with it before the caller has
// stored the returned *Cluster: OnEvent must not read a variable that the
// caller assigns from Create's result without synchronisation.
//
// Decoders of peer input validate before decoding and return errors; a bad
// packet is logged and dropped, never a panic.
package gossip

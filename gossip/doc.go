// Package gossip is serfd's room for Serf semantics over memberlist,
// wire-compatible with Serf: cluster membership (alive, leaving, left,
// failed), tags carried in memberlist node meta, Lamport clocks, join and
// leave intents, user events with Serf's dedup ring, and push/pull state
// merge. Every message it sends or accepts is byte-compatible with stock
// Serf 0.10 agents (Serf protocol 5, memberlist protocol 2).
//
// Queries (query.go, relay.go) are sent with Cluster.Query, which streams
// acks and responses until the deadline, and delivered as EventQuery events
// whose Query.Respond answers once. Filters, acks, relayed answers and the
// size limits follow Serf. Internal "_serf_" queries never reach OnEvent:
// this node acks _serf_ping, answers _serf_conflict and the four key queries
// (internal_query.go, keys.go) on receipt, not through the event queue, and
// resolves a name conflict about itself by shutting down if it loses
// (Config.OnShutdown says why). Key operations change memberlist's keyring
// on every node (Config.EncryptKeys, Config.KeyringFile).
//
// It must not know about handler scripts, sockets, systemd, journald or HCL:
// its caller configures it with a Config and receives Events through
// Config.OnEvent. Logging goes to the *slog.Logger the caller passes in;
// member state changes use upper-case journal field names as attribute keys
// (SERF_MEMBER, SERF_MEMBER_ADDR, ...).
//
// Concurrency and lifecycle: Create replays the snapshot (Config.SnapshotPath)
// before memberlist exists, so its clocks and event/query minimum times are in
// force before any network I/O, then binds the transport and starts
// goroutines owned by the Cluster: the event delivery loop (which calls
// Config.OnEvent, one event at a time, in order), the reaper, and the
// reconnector (every ReconnectInterval); with a snapshot, the snapshot writer
// and, when it lists peers (alive, or failed or left within
// SnapshotRetention), the rejoin, which retries them with a backoff until a
// join succeeds, another member is alive, or every address is past the
// retention (rejoin.go); with coalescing periods set, one coalescer per kind
// (member, user events). memberlist callbacks never wait on OnEvent, the
// snapshot or a coalescer: they hand events to bounded queues that drop
// (logging and counting) when full, or to a coalescer's map. Every exported
// method of Cluster is safe for concurrent use. Leave is a bounded graceful
// exit (it first records and syncs "leave" in the snapshot); Shutdown stops
// memberlist, waits for every goroutine (the snapshot is flushed and synced)
// and is idempotent. OnEvent must not
// call Shutdown, since Shutdown waits for the goroutine that runs OnEvent.
// Events still queued when Shutdown is called are not delivered.
//
// CheckHealth (events.go) reports a wedged delivery goroutine or memberlist
// node lock; its read of memberlist's state runs on a goroutine owned by the
// Cluster, at most one at a time.
//
// Query answering starts short-lived goroutines owned by the Cluster (a key
// change, which may write the keyring file; a name conflict resolution); an
// outgoing query holds only a timer. Shutdown closes every open
// QueryResponse and waits for those goroutines, and for Config.OnShutdown
// when the Cluster shut itself down (unless called from OnShutdown).
//
// The first event, member-join for the local node (Serf sends it too), is
// queued inside Create and OnEvent may run with it before the caller has
// stored the returned *Cluster: OnEvent must not read a variable that the
// caller assigns from Create's result without synchronisation.
//
// Decoders of peer input validate before decoding and return errors; a bad
// packet is logged and dropped, never a panic.
package gossip

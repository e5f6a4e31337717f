package gossip

import "sync/atomic"

// traffic counts what gossip sent, received, dropped and relayed since
// Create; Stats reports it. Every field only grows.
type traffic struct {
	eventsSent      atomic.Uint64 // user events accepted by UserEvent
	eventsReceived  atomic.Uint64 // new user events from peers (gossip or push/pull)
	eventsDuplicate atomic.Uint64 // user events from peers seen before
	eventsRelayed   atomic.Uint64 // user events from peers queued to gossip on

	queriesSent      atomic.Uint64 // queries started by Query
	queriesReceived  atomic.Uint64 // new queries from peers
	queriesDuplicate atomic.Uint64 // queries from peers seen before or too old
	queriesRelayed   atomic.Uint64 // queries from peers queued to gossip on

	acksReceived      atomic.Uint64 // acks to this node's queries
	responsesReceived atomic.Uint64 // responses to this node's queries
	responsesSent     atomic.Uint64 // responses this node sent (Query.Respond)
	responsesFailed   atomic.Uint64 // Query.Respond calls that sent nothing
	responsesStreamed atomic.Uint64 // of responsesSent, those sent over a stream
	queriesTimedOut   atomic.Uint64 // this node's queries that ran to their deadline

}

// TrafficStats are the counters of traffic, in Stats.
type TrafficStats struct {
	EventsSent, EventsReceived, EventsDuplicate, EventsRelayed     uint64
	QueriesSent, QueriesReceived, QueriesDuplicate, QueriesRelayed uint64
	// Answers to this node's queries, and this node's queries that ran
	// to their deadline rather than being closed earlier (the control
	// API closes a query once every node it expects has answered).
	AcksReceived, ResponsesReceived, QueriesTimedOut uint64
	// This node's answers to other nodes' queries: sent, or not (too
	// large, past the deadline, or the send failed).
	ResponsesSent, ResponsesFailed uint64
	// ResponsesStreamed counts the ResponsesSent that were larger than a
	// packet and went over memberlist's reliable stream.
	ResponsesStreamed uint64
	// MalformedMessages counts messages and push/pull states from the
	// network dropped as malformed or implausible.
	MalformedMessages uint64
	// Snapshot file writes (flushes of buffered lines), compactions, the
	// seconds spent in both, and records dropped because its queue was full.
	SnapshotFlushes, SnapshotCompactions, SnapshotDropped uint64
	SnapshotWriteSeconds                                  float64
}

func (t *traffic) stats() TrafficStats {
	return TrafficStats{
		EventsSent: t.eventsSent.Load(), EventsReceived: t.eventsReceived.Load(),
		EventsDuplicate: t.eventsDuplicate.Load(), EventsRelayed: t.eventsRelayed.Load(),
		QueriesSent: t.queriesSent.Load(), QueriesReceived: t.queriesReceived.Load(),
		QueriesDuplicate: t.queriesDuplicate.Load(), QueriesRelayed: t.queriesRelayed.Load(),
		AcksReceived: t.acksReceived.Load(), ResponsesReceived: t.responsesReceived.Load(),
		QueriesTimedOut: t.queriesTimedOut.Load(),
		ResponsesSent:   t.responsesSent.Load(), ResponsesFailed: t.responsesFailed.Load(),
		ResponsesStreamed: t.responsesStreamed.Load(),
	}
}

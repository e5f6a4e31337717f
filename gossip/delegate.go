package gossip

import (
	"fmt"
	"sync"

	"github.com/hashicorp/memberlist"
)

// broadcast is one queued Serf message. Every Serf message is unique, so
// none invalidates another (memberlist.UniqueBroadcast).
type broadcast struct {
	msg    []byte
	done   chan struct{} // closed once memberlist is finished with msg; may be nil
	once   sync.Once
	unsent *unsentEvents // tracks msg until it is first sent; may be nil
}

var _ memberlist.UniqueBroadcast = (*broadcast)(nil)

func (b *broadcast) Invalidates(memberlist.Broadcast) bool { return false }
func (b *broadcast) UniqueBroadcast()                      {}
func (b *broadcast) Message() []byte                       { return b.msg }
func (b *broadcast) Finished() {
	if b.unsent != nil {
		b.unsent.forget(b.msg)
	}
	if b.done != nil {
		b.once.Do(func() { close(b.done) })
	}
}

// delegate receives memberlist's callbacks for a Cluster. memberlist calls
// them from its packet, stream and state goroutines, sometimes while holding
// its own locks: none of them may block, and none may call back into
// memberlist. They run already during memberlist.Create (for the local node),
// before Cluster.ml is set.
type delegate struct {
	c *Cluster
}

var (
	_ memberlist.Delegate      = delegate{}
	_ memberlist.EventDelegate = delegate{}
)

// NodeMeta returns the encoded tags, checked against the limit in Create
// and SetTags.
func (d delegate) NodeMeta(limit int) []byte {
	meta := d.c.nodeMeta() // the Config's tags or the last SetTags (tags.go)
	if len(meta) > limit {
		d.c.log.Error("node meta exceeds memberlist's limit; sending none",
			"META_BYTES", len(meta), "LIMIT_BYTES", limit)
		return nil
	}
	return meta
}

// NotifyMsg handles one Serf message received by gossip or directly.
func (d delegate) NotifyMsg(buf []byte) {
	d.c.handleMessage(buf)
}

// GetBroadcasts returns queued messages: intents first, then queries, then
// user events, within limit bytes (each message costs overhead on top).
func (d delegate) GetBroadcasts(overhead, limit int) [][]byte {
	c := d.c
	msgs := c.intentQ.GetBroadcasts(overhead, limit)
	used := 0
	for _, m := range msgs {
		used += overhead + len(m)
	}
	for _, q := range []*memberlist.TransmitLimitedQueue{c.queryQ, c.eventQ} {
		more := q.GetBroadcasts(overhead, limit-used)
		for _, m := range more {
			used += overhead + len(m)
		}
		if q == c.eventQ {
			c.unsent.sent(more)
		}
		msgs = append(msgs, more...)
	}
	return msgs
}

// LocalState returns the push/pull state.
func (d delegate) LocalState(join bool) []byte {
	return d.c.localState()
}

// MergeRemoteState merges a peer's push/pull state.
func (d delegate) MergeRemoteState(buf []byte, join bool) {
	d.c.mergeRemoteState(buf, join)
}

// NotifyJoin is called when memberlist sees a node join (or come back).
func (d delegate) NotifyJoin(n *memberlist.Node) { d.c.nodeJoined(n) }

// NotifyLeave is called when memberlist sees a node leave or die.
func (d delegate) NotifyLeave(n *memberlist.Node) { d.c.nodeLeft(n) }

// NotifyUpdate is called when a node's meta (tags) or address changes.
func (d delegate) NotifyUpdate(n *memberlist.Node) { d.c.nodeUpdated(n) }

// handleMessage decodes and applies one Serf message, rebroadcasting it
// byte-for-byte when it was new. Malformed input is logged and dropped.
func (c *Cluster) handleMessage(buf []byte) {
	t, body, err := splitType(buf)
	if err != nil {
		return
	}
	var (
		rebroadcast bool
		queue       *memberlist.TransmitLimitedQueue
	)
	switch t {
	case msgLeave:
		var m leaveMsg
		if err = c.wire.decodeBody(t, body, &m); err == nil {
			err = c.clock.check(m.LTime)
		}
		if err == nil {
			rebroadcast, queue = c.handleLeaveIntent(m), c.intentQ
		}
	case msgJoin:
		var m joinMsg
		if err = c.wire.decodeBody(t, body, &m); err == nil {
			err = c.clock.check(m.LTime)
		}
		if err == nil {
			rebroadcast, queue = c.handleJoinIntent(m), c.intentQ
		}
	case msgUserEvent:
		var m userEventMsg
		if err = c.wire.decodeBody(t, body, &m); err == nil {
			err = c.eventClock.check(m.LTime)
		}
		if err == nil {
			rebroadcast, queue = c.handleUserEvent(m), c.eventQ
			if rebroadcast {
				c.traffic.eventsRelayed.Add(1)
			}
		}
	case msgQuery:
		var m queryMsg
		if err = c.wire.decodeBody(t, body, &m); err == nil {
			err = c.queryClock.check(m.LTime)
		}
		if err == nil {
			rebroadcast, queue = c.receiveQuery(m), c.queryQ
		}
	case msgQueryResponse:
		// A packet cannot be this large; a stream (from a serfd
		// responder) can, up to what memberlist reads (20 MB).
		if limit := c.cfg.QueryResponseStreamSizeLimit; len(buf) > limit {
			err = fmt.Errorf("%d bytes, over the query response stream limit of %d bytes", len(buf), limit)
			break
		}
		var m queryResponseMsg
		if err = c.wire.decodeBody(t, body, &m); err == nil {
			c.handleQueryResponse(m)
		}
	case msgRelay:
		var r relayMsg
		if r, err = c.wire.decodeRelay(body); err == nil {
			c.forwardRelay(r)
		}
	default:
		c.log.Debug("dropping message of unknown type", "MESSAGE_TYPE", uint8(t), "BYTES", len(buf))
		return
	}
	if err != nil {
		c.badIn.note(c.log, "dropped malformed or implausible messages from the network", msgIDKey, MsgBadInput,
			"MESSAGE_TYPE", t.String(), "BYTES", len(buf), "ERROR", err.Error())
		return
	}
	if rebroadcast {
		// memberlist may reuse buf after we return.
		queue.QueueBroadcast(&broadcast{msg: append([]byte(nil), buf...)})
	}
}

package gossip

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"time"
)

// querySlot holds the IDs of the queries seen at one Lamport time.
type querySlot struct {
	LTime uint64
	IDs   []uint32
}

// notMember returns an error wrapping ErrNotMember (leaving or left) or
// ErrShutdown if the cluster no longer gossips what is sent.
func (c *Cluster) notMember(what string) error {
	switch c.clusterState() {
	case stateLeaving, stateLeft:
		return fmt.Errorf("%s not sent: %w", what, ErrNotMember)
	case stateShutdown:
		return fmt.Errorf("%s not sent: %w", what, ErrShutdown)
	}
	return nil
}

// UserEvent broadcasts a user event to the cluster (and delivers it locally).
//
// Both len(name)+len(payload) and the encoded message must fit
// Config.UserEventSizeLimit. With Config.Backlog of this node's user events
// not yet in a first gossip packet (and another member alive) it sends
// nothing and returns an error wrapping ErrBusy; once Leave has begun, one wrapping ErrNotMember. The event claims the current event clock (Claim:
// concurrent calls never share a time); it is processed locally (so
// OnEvent sees it here too) before it is queued for gossip.
func (c *Cluster) UserEvent(name string, payload []byte, coalesce bool) error {
	if err := c.notMember(fmt.Sprintf("user event %q", name)); err != nil {
		return err
	}
	limit := c.cfg.UserEventSizeLimit
	if size := len(name) + len(payload); size > limit {
		return errorf(ErrTooLarge, "user event %q: name and payload are %d bytes, over the limit of %d bytes", name, size, limit)
	}
	if n := c.unsent.count(); n >= c.cfg.Backlog && c.hasOtherAliveMembers() {
		c.refusedEvents.Add(1)
		return fmt.Errorf("user event %q not sent: %d user events wait to be gossiped, the limit is %d: %w",
			name, n, c.cfg.Backlog, ErrBusy)
	}
	msg := userEventMsg{
		LTime:   c.eventClock.Claim(),
		Name:    name,
		Payload: bytes.Clone(payload),
		CC:      coalesce,
	}
	raw, err := c.wire.encode(msgUserEvent, &msg)
	if err != nil {
		return fmt.Errorf("user event %q: %w", name, err)
	}
	if len(raw) > limit {
		return errorf(ErrTooLarge, "user event %q: encoded message is %d bytes, over the limit of %d bytes", name, len(raw), limit)
	}
	if c.seen != nil { // before "sent": a restart spreads it and runs it here (seen.go)
		c.seen.record(seenRecord{ltime: msg.LTime, name: name, payload: msg.Payload})
	}
	c.receiveUserEvent(msg, fromLocal)
	c.eventQ.QueueBroadcast(c.unsent.queue(raw))
	c.traffic.eventsSent.Add(1)
	return nil
}

// eventSource is where a user event came from.
type eventSource int

const (
	fromGossip   eventSource = iota // a peer's broadcast
	fromPushPull                    // a peer's push/pull state: mostly events seen before
	fromLocal                       // UserEvent on this node
)

// handleUserEvent records a user event received by gossip in the dedup
// window and delivers it if it is new. It reports whether the event was new
// (and so worth rebroadcasting).
func (c *Cluster) handleUserEvent(m userEventMsg) bool {
	return c.receiveUserEvent(m, fromGossip)
}

// receiveUserEvent is handleUserEvent for an event from src. An event more
// than EventWindow Lamport times behind the clock cannot be told from one
// already delivered and is dropped; from gossip it is counted and logged
// (rate-limited), as a possible loss. A local event is always delivered:
// its time was just claimed, so it is new even when concurrent events have
// moved the clock a window past it.
func (c *Cluster) receiveUserEvent(m userEventMsg, src eventSource) bool {
	c.eventClock.Witness(m.LTime)
	c.eventMu.Lock()
	if m.LTime < c.eventMinTime {
		c.eventMu.Unlock()
		return false
	}
	if b := c.seenBefore; b != nil && m.LTime <= b.max && b.has(m.LTime, eventKey(m.Name, m.Payload)) {
		c.eventMu.Unlock()
		c.countDuplicate(src)
		return false // handled before the restart
	}
	if cur := c.eventClock.Time(); src != fromLocal && cur > EventWindow && m.LTime < cur-EventWindow {
		c.eventMu.Unlock()
		if src == fromGossip {
			c.tooOld.note(c.log, "dropped user events older than the dedup window", msgIDKey, MsgEventsTooOld,
				"SERF_USER_EVENT", m.Name, "SERF_LTIME", m.LTime, "SERF_EVENT_CLOCK", cur, "WINDOW", EventWindow)
		}
		return false
	}
	idx := m.LTime % EventWindow
	slot := c.events[idx]
	switch {
	case slot != nil && slot.LTime == m.LTime:
		for _, e := range slot.Events {
			if e.Name == m.Name && bytes.Equal(e.Payload, m.Payload) {
				c.eventMu.Unlock()
				c.countDuplicate(src)
				return false
			}
		}
		slot.Events = append(slot.Events, eventBody{Name: m.Name, Payload: m.Payload})
	case slot != nil && slot.LTime > m.LTime:
		// Only a local event gets here: its slot already holds a time a
		// window later. Its time is its own, so it needs no record.
	default:
		c.events[idx] = &eventSlot{LTime: m.LTime, Events: []eventBody{{Name: m.Name, Payload: m.Payload}}}
	}
	c.emit(Event{Type: EventUser, LTime: m.LTime, Name: m.Name, Payload: bytes.Clone(m.Payload), Coalesce: m.CC})
	c.eventMu.Unlock()
	if src != fromLocal {
		c.traffic.eventsReceived.Add(1)
	}
	return true
}

// countDuplicate counts a user event from a peer that was seen before.
func (c *Cluster) countDuplicate(src eventSource) {
	if src != fromLocal {
		c.traffic.eventsDuplicate.Add(1)
	}
}

// emit hands an event to the delivery goroutine without ever waiting: when
// the queue is full the event is dropped, logged and counted. Callers may
// hold memberMu or eventMu, which keeps events in state-change order.
func (c *Cluster) emit(ev Event) {
	c.snapshotEvent(ev) // never waits (snapshot.go)
	if c.deliver == nil {
		return
	}
	if c.coalesce(ev) { // never waits; delivers later (coalesce.go)
		return
	}
	c.enqueue(ev)
}

// enqueue is emit's last step, also used by the coalescers' flushes.
func (c *Cluster) enqueue(ev Event) {
	select {
	case <-c.stop: // a late memberlist callback after Shutdown
		return
	case c.deliver <- ev:
	default:
		c.dropped.note(c.log, "event queue full; dropping events", msgIDKey, MsgEventQueueFull,
			"DROPPED_EVENT", ev.Type.String(), "SERF_USER_EVENT", ev.Name, "EVENT_QUEUE", cap(c.deliver))
	}
}

// deliverLoop calls OnEvent for each queued event until Shutdown.
func (c *Cluster) deliverLoop() {
	defer c.wg.Done()
	for {
		select {
		case <-c.stop:
			return
		case ev := <-c.deliver:
			select {
			case <-c.stop: // Shutdown wins over a backlog
				return
			default:
			}
			c.deliverStarted()
			c.cfg.OnEvent(ev)
			if ev.Type == EventUser && c.seen != nil {
				c.seen.record(seenRecord{handled: true, ltime: ev.LTime, name: ev.Name, payload: ev.Payload})
			}
			c.deliverFinished()
		}
	}
}

// healthState is what CheckHealth reads: whether the delivery goroutine is
// inside OnEvent, since when, and how many calls have returned; and the one
// outstanding probe of memberlist's node lock, if any. Guarded by mu, which
// is a leaf held only for a few assignments.
type healthState struct {
	mu        sync.Mutex
	busy      bool          // the delivery goroutine is inside OnEvent
	busySince time.Time     // when the current OnEvent call started
	delivered uint64        // OnEvent calls returned
	moved     chan struct{} // closed when the next call returns; nil if nobody waits
	probe     *memberProbe  // a read of memberlist's state still waiting for its lock
}

// memberProbe is one read of memberlist's state; done is closed when the
// read returns.
type memberProbe struct {
	since time.Time
	done  chan struct{}
}

// deliverStarted and deliverFinished bracket each OnEvent call.
func (c *Cluster) deliverStarted() {
	h := &c.health
	h.mu.Lock()
	h.busy, h.busySince = true, time.Now()
	h.mu.Unlock()
}

func (c *Cluster) deliverFinished() {
	h := &c.health
	h.mu.Lock()
	h.busy = false
	h.delivered++
	if h.moved != nil {
		close(h.moved)
		h.moved = nil
	}
	h.mu.Unlock()
}

// CheckHealth reports whether the Cluster is working: not shut down,
// memberlist's state readable (its node lock free) and the event delivery
// goroutine making progress. It waits at most until ctx is done and never
// holds up gossip or event delivery.
//
// Delivery is healthy when the goroutine is idle (the queue is empty or it
// is about to take the next event) or when an OnEvent call returns before
// ctx is done: a long but moving backlog is healthy, one OnEvent call that
// outlasts ctx is not. The error names what is stuck and for how long.
//
// A read of memberlist's state that outlasts ctx keeps waiting, owned by
// the Cluster (Shutdown waits for it); later calls wait on the same read
// rather than start another. Safe for concurrent use.
func (c *Cluster) CheckHealth(ctx context.Context) error {
	if c.clusterState() == stateShutdown {
		return ErrShutdown
	}
	if err := c.checkMemberlist(ctx); err != nil {
		return err
	}
	return c.checkDelivery(ctx)
}

// checkMemberlist reads memberlist's member count, which takes its node
// lock, from a goroutine of the Cluster and waits for it until ctx is done.
func (c *Cluster) checkMemberlist(ctx context.Context) error {
	h := &c.health
	h.mu.Lock()
	p := h.probe
	if p == nil {
		p = &memberProbe{since: time.Now(), done: make(chan struct{})}
		started := c.goOwned(func() {
			c.ml.NumMembers()
			h.mu.Lock()
			h.probe = nil
			h.mu.Unlock()
			close(p.done)
		})
		if !started {
			h.mu.Unlock()
			return ErrShutdown
		}
		h.probe = p
	}
	h.mu.Unlock()
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("memberlist state unreadable for %s: its node lock is held",
			time.Since(p.since).Round(time.Millisecond))
	}
}

// checkDelivery waits until the delivery goroutine is idle or returns from
// an OnEvent call, or until ctx is done.
func (c *Cluster) checkDelivery(ctx context.Context) error {
	if c.deliver == nil {
		return nil // no OnEvent, no delivery goroutine
	}
	h := &c.health
	h.mu.Lock()
	if !h.busy {
		h.mu.Unlock()
		return nil
	}
	if h.moved == nil {
		h.moved = make(chan struct{})
	}
	moved := h.moved
	h.mu.Unlock()

	select {
	case <-moved:
		return nil
	case <-c.stop:
		return ErrShutdown
	case <-ctx.Done():
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	select {
	case <-moved: // returned just as ctx ended
		return nil
	default:
	}
	return fmt.Errorf("event delivery stuck for %s with %d events queued",
		time.Since(h.busySince).Round(time.Millisecond), len(c.deliver))
}

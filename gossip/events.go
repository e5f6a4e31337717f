package gossip

import (
	"bytes"
	"errors"
	"fmt"
)

// querySlot holds the IDs of the queries seen at one Lamport time.
type querySlot struct {
	LTime uint64
	IDs   []uint32
}

// UserEvent broadcasts a user event to the cluster (and delivers it locally).
//
// Both len(name)+len(payload) and the encoded message must fit
// Config.UserEventSizeLimit. The event takes the current event clock, which
// then advances; it is processed locally (so OnEvent sees it here too) before
// it is queued for gossip.
func (c *Cluster) UserEvent(name string, payload []byte, coalesce bool) error {
	if c.clusterState() == stateShutdown {
		return errors.New("user event: cluster is shut down")
	}
	limit := c.cfg.UserEventSizeLimit
	if size := len(name) + len(payload); size > limit {
		return fmt.Errorf("user event %q: name and payload are %d bytes, over the limit of %d bytes", name, size, limit)
	}
	msg := userEventMsg{
		LTime:   c.eventClock.Time(),
		Name:    name,
		Payload: bytes.Clone(payload),
		CC:      coalesce,
	}
	raw, err := c.wire.encode(msgUserEvent, &msg)
	if err != nil {
		return fmt.Errorf("user event %q: %w", name, err)
	}
	if len(raw) > limit {
		return fmt.Errorf("user event %q: encoded message is %d bytes, over the limit of %d bytes", name, len(raw), limit)
	}
	c.eventClock.Increment()
	c.handleUserEvent(msg)
	c.eventQ.QueueBroadcast(&broadcast{msg: raw})
	return nil
}

// handleUserEvent records a user event in the dedup ring and delivers it if
// it is new. It reports whether the event was new (and so worth
// rebroadcasting).
func (c *Cluster) handleUserEvent(m userEventMsg) bool {
	c.eventClock.Witness(m.LTime)
	c.eventMu.Lock()
	defer c.eventMu.Unlock()
	if m.LTime < c.eventMinTime {
		return false
	}
	if cur := c.eventClock.Time(); cur > eventRing && m.LTime < cur-eventRing {
		c.log.Warn("dropping user event older than the dedup ring", "SERF_USER_EVENT", m.Name,
			"SERF_LTIME", m.LTime, "SERF_EVENT_CLOCK", cur)
		return false
	}
	idx := m.LTime % eventRing
	slot := c.events[idx]
	if slot != nil && slot.LTime == m.LTime {
		for _, e := range slot.Events {
			if e.Name == m.Name && bytes.Equal(e.Payload, m.Payload) {
				return false
			}
		}
	} else {
		slot = &eventSlot{LTime: m.LTime}
		c.events[idx] = slot
	}
	slot.Events = append(slot.Events, eventBody{Name: m.Name, Payload: m.Payload})
	c.emit(Event{Type: EventUser, LTime: m.LTime, Name: m.Name, Payload: bytes.Clone(m.Payload), Coalesce: m.CC})
	return true
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
		n := c.dropped.Add(1)
		c.log.Warn("event queue full; dropping event", "DROPPED_EVENT", ev.Type.String(),
			"EVENT_QUEUE", cap(c.deliver), "DROPPED_TOTAL", n)
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
			c.cfg.OnEvent(ev)
		}
	}
}

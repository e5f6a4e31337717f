package daemon

import (
	"fmt"
	"sync"

	"github.com/serfd/serfd/exec"
	"github.com/serfd/serfd/gossip"
)

// maxEventStreams bounds the RPC event streams open at once, over every
// connection.
const maxEventStreams = 64

// eventHub fans the events gossip delivers out to Serf RPC event streams.
// Publishing never blocks the delivery goroutine: a stream whose buffer
// (rpcStreamBuffer events, as Serf's) is full loses the event; the losses
// are counted, and the pump logs their total at most once a second.
type eventHub struct {
	mu   sync.Mutex
	subs map[*eventSub]struct{}
}

type eventSub struct {
	filter  exec.Filter
	ch      chan gossip.Event
	dropped uint64 // guarded by eventHub.mu
}

func newEventHub() *eventHub { return &eventHub{subs: map[*eventSub]struct{}{}} }

func (h *eventHub) subscribe(f exec.Filter) (*eventSub, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.subs) >= maxEventStreams {
		return nil, fmt.Errorf("%d event streams are open, the limit is %d", len(h.subs), maxEventStreams)
	}
	s := &eventSub{filter: f, ch: make(chan gossip.Event, rpcStreamBuffer)}
	h.subs[s] = struct{}{}
	return s, nil
}

func (h *eventHub) unsubscribe(s *eventSub) {
	h.mu.Lock()
	delete(h.subs, s)
	h.mu.Unlock()
}

// publish offers ev to every stream whose filter matches xe (ev as the
// handler pool sees it) and returns how many streams lost it.
func (h *eventHub) publish(ev gossip.Event, xe *exec.Event) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	lost := 0
	for s := range h.subs {
		if !s.filter.Matches(xe) {
			continue
		}
		select {
		case s.ch <- ev:
		default:
			s.dropped++
			lost++
		}
	}
	return lost
}

package gossip

import (
	"sort"
	"sync"
	"time"
)

// Coalescing merges bursts of events before delivery.
// A coalescer sits between event processing (emit) and the delivery queue.
// offer only updates a map under the coalescer's own leaf mutex, so it never
// waits on anything and is safe under memberMu or eventMu. The coalescer's
// goroutine flushes after QuiescentPeriod without a new event, or after
// CoalescePeriod since the first event of the burst, whichever comes first.
// Each flush starts from an empty map, so nothing is delivered twice and the
// state is bounded by the members (or event names) of one burst (unlike
// Serf's #555). Queries are never coalesced.

// coalesceState is the merge policy of one coalescer. Its methods run under
// the coalescer's mutex.
type coalesceState interface {
	// add merges ev and reports whether it did; false means ev is not
	// coalesced and must be delivered as is.
	add(ev Event) bool
	// flush returns the merged events and starts over.
	flush() []Event
}

// coalescer runs one coalesceState; its run goroutine is owned by the Cluster.
type coalescer struct {
	period, quiet time.Duration
	out           func(Event) // must not block

	mu      sync.Mutex // leaf
	state   coalesceState
	lastAdd time.Time
	kick    chan struct{} // capacity 1: something was added
}

func newCoalescer(period, quiet time.Duration, state coalesceState, out func(Event)) *coalescer {
	return &coalescer{period: period, quiet: quiet, state: state, out: out, kick: make(chan struct{}, 1)}
}

// offer hands ev to the coalescer and reports whether it took it.
func (co *coalescer) offer(ev Event) bool {
	co.mu.Lock()
	ok := co.state.add(ev)
	if ok {
		co.lastAdd = time.Now()
	}
	co.mu.Unlock()
	if ok {
		select {
		case co.kick <- struct{}{}:
		default:
		}
	}
	return ok
}

// run flushes bursts until stop closes. Events still held then are dropped,
// like any event queued at Shutdown.
func (co *coalescer) run(stop <-chan struct{}) {
	quantum := time.NewTimer(co.period)
	quantum.Stop()
	quiet := time.NewTimer(co.quiet)
	quiet.Stop()
	defer quantum.Stop()
	defer quiet.Stop()
	burst := false
	for {
		select {
		case <-stop:
			return
		case <-co.kick:
			if !burst {
				burst = true
				quantum.Reset(co.period)
			}
			quiet.Reset(co.quiet)
		case <-quiet.C:
			co.mu.Lock()
			wait := co.quiet - time.Since(co.lastAdd)
			co.mu.Unlock()
			if wait > 0 { // an event came after the timer was set
				quiet.Reset(wait)
				continue
			}
			burst = false
			quantum.Stop()
			co.flush()
		case <-quantum.C:
			burst = false
			quiet.Stop()
			co.flush()
		}
	}
}

func (co *coalescer) flush() {
	co.mu.Lock()
	evs := co.state.flush()
	co.mu.Unlock()
	for _, ev := range evs {
		co.out(ev)
	}
}

// memberCoalesce keeps the latest event type per member and delivers one
// event per type. A member whose latest type equals the type last delivered
// for it is skipped (it flapped back within the burst), except updates.
type memberCoalesce struct {
	pending  map[string]pendingMember // this burst; emptied by flush
	lastSent map[string]EventType     // forgotten when the member is reaped
}

type pendingMember struct {
	typ EventType
	m   Member
}

func newMemberCoalesce() *memberCoalesce {
	return &memberCoalesce{pending: make(map[string]pendingMember), lastSent: make(map[string]EventType)}
}

// memberEventOrder is the order in which a flush delivers member events.
var memberEventOrder = [...]EventType{EventMemberJoin, EventMemberLeave, EventMemberFailed, EventMemberUpdate, EventMemberReap}

func (mc *memberCoalesce) add(ev Event) bool {
	switch ev.Type {
	case EventMemberJoin, EventMemberLeave, EventMemberFailed, EventMemberUpdate, EventMemberReap:
	default:
		return false
	}
	for _, m := range ev.Members {
		typ := ev.Type
		// A join still pending carries the newest tags; an update after it
		// must not hide that the member joined (cf. Serf #393).
		if p, ok := mc.pending[m.Name]; ok && p.typ == EventMemberJoin && typ == EventMemberUpdate {
			typ = EventMemberJoin
		}
		mc.pending[m.Name] = pendingMember{typ: typ, m: m}
	}
	return true
}

func (mc *memberCoalesce) flush() []Event {
	byType := make(map[EventType][]Member)
	for name, p := range mc.pending {
		if last, ok := mc.lastSent[name]; ok && last == p.typ && p.typ != EventMemberUpdate {
			continue
		}
		byType[p.typ] = append(byType[p.typ], p.m)
		if p.typ == EventMemberReap {
			delete(mc.lastSent, name)
		} else {
			mc.lastSent[name] = p.typ
		}
	}
	clear(mc.pending)
	var out []Event
	for _, typ := range memberEventOrder {
		ms := byType[typ]
		if len(ms) == 0 {
			continue
		}
		sort.Slice(ms, func(i, j int) bool { return ms[i].Name < ms[j].Name })
		out = append(out, Event{Type: typ, Members: ms})
	}
	return out
}

// userCoalesce keeps, per event name, only the events with the highest
// LTime (all of them when several share it). Only events sent with
// coalescing requested (CC) are taken.
type userCoalesce struct {
	pending map[string]*userBatch
}

type userBatch struct {
	ltime  uint64
	events []Event
}

func newUserCoalesce() *userCoalesce {
	return &userCoalesce{pending: make(map[string]*userBatch)}
}

func (uc *userCoalesce) add(ev Event) bool {
	if ev.Type != EventUser || !ev.Coalesce {
		return false
	}
	b := uc.pending[ev.Name]
	switch {
	case b == nil || ev.LTime > b.ltime:
		uc.pending[ev.Name] = &userBatch{ltime: ev.LTime, events: []Event{ev}}
	case ev.LTime == b.ltime:
		b.events = append(b.events, ev)
	}
	return true // older ones are superseded: taken and dropped
}

func (uc *userCoalesce) flush() []Event {
	var out []Event
	for _, b := range uc.pending {
		out = append(out, b.events...)
	}
	clear(uc.pending)
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].LTime != out[j].LTime {
			return out[i].LTime < out[j].LTime
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// initCoalescers builds the coalescers the Config asks for. Called in
// Create before memberlist exists, since memberlist already delivers the
// local member-join.
func (c *Cluster) initCoalescers() {
	if c.deliver == nil {
		return
	}
	if c.cfg.CoalescePeriod > 0 {
		c.memberCo = newCoalescer(c.cfg.CoalescePeriod, c.cfg.QuiescentPeriod, newMemberCoalesce(), c.enqueue)
	}
	if c.cfg.UserCoalescePeriod > 0 {
		c.userCo = newCoalescer(c.cfg.UserCoalescePeriod, c.cfg.UserQuiescentPeriod, newUserCoalesce(), c.enqueue)
	}
}

// coalesce offers ev to the coalescers and reports whether one took it.
func (c *Cluster) coalesce(ev Event) bool {
	if c.memberCo != nil && c.memberCo.offer(ev) {
		return true
	}
	return c.userCo != nil && c.userCo.offer(ev)
}

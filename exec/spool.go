package exec

import (
	"fmt"
	"maps"
	"slices"
)

// This file is the pool's side of the spool (spoolfile.go is the file):
// what Submit writes, what New and the workers read back, what Close
// leaves behind. Lock order: Pool.submitMu, then spool.mu, then Pool.mu.

// submitSpooled writes the run record of a user event and queues its
// runs, or leaves them in the spool when the queue is full or runs wait
// there already (so that they keep their order). A run record that cannot
// be written makes the runs in-memory ones, dropped when the queue is
// full. Called with submitMu held.
func (p *Pool) submitSpooled(ev *Event, matched []found) {
	sp := p.sp
	names := make([]string, len(matched))
	for i, f := range matched {
		names[i] = f.name
	}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	rec := &spoolRecord{Seq: sp.nextSeq, Handlers: names, Event: spoolEventOf(ev)}
	if !sp.recent.add(keyOf(rec.Event)) {
		// Delivered again after a crash that fell between this record
		// and the caller's record of the delivery; its runs are in the
		// spool or done.
		p.log.Info(fmt.Sprintf("user event %s seen before (delivered again after a restart); not run again", ev.UserEvent),
			"SERF_USER_EVENT", ev.UserEvent, "SERF_LTIME", ev.LTime)
		return
	}
	off := sp.size
	n, err := sp.appendLocked(rec)
	if err != nil {
		p.queueRuns(ev, matched, 0, nil)
		return
	}
	sp.nextSeq++

	p.mu.Lock()
	full, closed := p.queued >= p.queueLimit, p.closed
	p.mu.Unlock()
	if closed { // Close ran during the scan: the runs wait for the next start
		return
	}
	if sp.spilling || full {
		if !sp.spilling {
			sp.spilling, sp.spillSeq, sp.spillOff = true, rec.Seq, off
			p.log.Warn("handler queue full; runs of new user events wait in the spool until it drains",
				"QUEUE_LIMIT", p.queueLimit, "FILE", sp.path)
		}
		sp.spilledRuns += len(names)
		return
	}
	sp.live[rec.Seq] = &liveRecord{event: rec.Event, size: n, pending: names}
	p.queueRuns(ev, matched, rec.Seq, nil)
}

// resume logs what New found in the spool and queues the runs that were
// pending at the last stop, before any new event. Called by New before the
// workers start.
func (p *Pool) resume(rep spoolReplay) {
	sp := p.sp
	if rep.torn {
		p.log.Info("handler spool: skipped an incomplete last record (written as the daemon stopped)", "FILE", sp.path)
	}
	if rep.damaged > 0 {
		p.log.Warn("handler spool: skipped damaged records", "FILE", sp.path, "DAMAGED", rep.damaged,
			"FIRST", rep.firstDamage, msgIDKey, MsgHandlerSpoolProblem)
	}
	if rep.pendingRuns > 0 {
		p.log.Info(fmt.Sprintf("resuming %d handler runs from before the restart (%d cut short)", rep.pendingRuns, rep.interruptedRuns),
			"RUNS", rep.pendingRuns,
			"CUT_SHORT", rep.interruptedRuns, "FILE", sp.path, msgIDKey, MsgHandlerRunsResumed)
		p.mu.Lock()
		ok := p.dirOK
		p.mu.Unlock()
		if !ok {
			p.log.Warn("handler runs from before the restart wait until the handlers directory can be read",
				"DIR", p.dir, "FILE", sp.path)
		}
	}
	sp.mu.Lock()
	p.loadSpilledLocked()
	sp.mu.Unlock()
}

// refill reads runs waiting in the spool back into the queue when it is at
// most half full (so that the file is read in batches, not a record per
// run). Not after Close: what waits then runs at the next start.
func (p *Pool) refill() {
	sp := p.sp
	if sp == nil {
		return
	}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if !sp.spilling {
		return
	}
	p.mu.Lock()
	low := !p.closed && p.queued <= p.queueLimit/2
	p.mu.Unlock()
	if low {
		p.loadSpilledLocked()
	}
}

// loadSpilledLocked queues spilled run records, in order, until the queue
// is full or none is left. A run whose handler no longer exists is marked
// done; each such handler gets one record with the runs it lost and the
// last of their events. Called with sp.mu held.
func (p *Pool) loadSpilledLocked() {
	sp := p.sp
	type gone struct {
		runs int
		last *spoolEvent
	}
	var lost map[string]*gone
	defer func() {
		for _, name := range slices.Sorted(maps.Keys(lost)) {
			g := lost[name]
			p.log.Warn(fmt.Sprintf("handler %s no longer exists: %d spooled runs not started, the last for user event %s",
				name, g.runs, g.last.UserEvent), "HANDLER", name, "RUNS", g.runs,
				"SERF_EVENT", g.last.Type, "SERF_USER_EVENT", g.last.UserEvent, "SERF_LTIME", g.last.LTime)
		}
	}()
	sp.readSpilledLocked(func(rec *spoolRecord, size int64) bool {
		p.mu.Lock()
		if p.closed || p.queued >= p.queueLimit || !p.dirOK {
			p.mu.Unlock()
			return false
		}
		var present []found
		var missing []string
		for _, name := range rec.Handlers {
			if i := slices.IndexFunc(p.list, func(f found) bool { return f.name == name }); i >= 0 {
				present = append(present, p.list[i])
			} else {
				missing = append(missing, name)
			}
		}
		p.mu.Unlock()

		for _, name := range missing {
			if lost == nil {
				lost = map[string]*gone{}
			}
			if lost[name] == nil {
				lost[name] = &gone{}
			}
			lost[name].runs++
			lost[name].last = rec.Event
			// Not doneLocked: no rewrite while the file is being read.
			if n, err := sp.appendLocked(&spoolRecord{Seq: rec.Seq, Done: name}); err == nil {
				sp.garbage += n
			}
		}
		if len(present) == 0 {
			sp.garbage += size
			return true
		}
		names := make([]string, len(present))
		for i, f := range present {
			names[i] = f.name
		}
		sp.live[rec.Seq] = &liveRecord{event: rec.Event, size: size, pending: names, attempts: maps.Clone(rec.Attempts)}
		ev := rec.Event.event()
		p.queueRuns(&ev, present, rec.Seq, rec.Attempts)
		return true
	})
}

// closeSpool logs how many runs wait in the spool for the next start and
// closes it, once. Called by Close once every worker has exited.
func (p *Pool) closeSpool() {
	sp := p.sp
	sp.mu.Lock()
	if sp.f == nil {
		sp.mu.Unlock()
		return
	}
	pending := sp.spilledRuns
	for _, lr := range sp.live {
		pending += len(lr.pending)
	}
	path := sp.path
	sp.mu.Unlock()
	if pending > 0 {
		p.log.Info(fmt.Sprintf("%d handler runs left in the spool; they run at the next start", pending), "RUNS", pending, "FILE", path)
	}
	sp.close()
}

package exec

import (
	"bufio"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"sync"
)

// The spool is a file of JSON lines that makes the runs of user events
// survive a stop or a crash of the daemon. Submit appends one run record
// per accepted user event (the handlers it matched and everything needed to
// rebuild the run) before it returns; a worker appends a start record as it
// starts a run and a done record when the run finished. A run record's
// runs without a done record are pending: New queues them again, in order,
// before any new event. A pending run with a start record was cut short by
// a crash (or by the end of the drain at a stop) and may have done some or
// all of its work: it runs again, and its handler is told so by
// SERF_RUN_ATTEMPT (2 or more), since no daemon can know whether a script
// killed with it had finished its work; exactly-once across such a crash
// takes a handler that checks its own record of the event.
//
// Appends are plain write(2) calls to an O_APPEND file, without fsync: a
// killed daemon loses nothing (the page cache survives it), a power loss
// can lose the last records. The file is rewritten with only the pending
// records (temporary file, fsync, rename) at New and whenever done records
// and finished runs make up more than half of it, so its size stays bounded
// by the pending runs. A rewrite starts with one seen record for each of
// the latest spoolRemember user events, so that they are still known when
// their run records are gone.
//
// When the in-memory queue is full, a new user event's run record is
// written but not queued: it is "spilled", and records from the first
// spilled one on are read back from the file as the queue drains. So the
// memory held stays bounded by Options.Queue while no accepted user event
// is dropped for lack of queue space. New starts with every pending record
// spilled and reads back as many as the queue holds.

const (
	// spoolRemember is how many of the latest user events the spool
	// remembers, to run none of them twice: an event is delivered again
	// after a restart when a crash fell between its spool record and the
	// caller's record of the delivery (normally the last one or two).
	spoolRemember = 1024

	// spoolCompactMin is the garbage (bytes of done records and finished
	// run records) below which the spool is never rewritten at run time.
	spoolCompactMin = 64 << 10

	// maxSpoolLine bounds one record; a longer line is damaged.
	maxSpoolLine = 16 << 20
)

// liveRecord is a run record whose runs are in memory (queued or running)
// and not all done.
type liveRecord struct {
	event    *spoolEvent
	size     int64          // bytes of its line in the file
	pending  []string       // handlers whose run has not finished
	attempts map[string]int // runs started, per handler, here and before a restart
}

// spool is the open spool file and what the pool knows of it. Its mutex is
// taken after Pool.submitMu and before Pool.mu.
type spool struct {
	path string
	log  *slog.Logger

	mu      sync.Mutex
	f       *os.File // O_APPEND; nil once closed
	size    int64    // bytes in the file
	garbage int64    // bytes of done records and of run records with every run done
	nextSeq uint64
	live    map[uint64]*liveRecord
	recent  recentEvents // the latest user events spooled, here or before a restart

	// While spilling, the run records with Seq >= spillSeq, found from
	// byte spillOff on, are in the file only; spilledRuns counts their runs.
	spilling    bool
	spillSeq    uint64
	spillOff    int64
	spilledRuns int

	writeProblem string // last logged write failure, "" when writes work
	retryCompact int64  // after a failed rewrite, the garbage that makes the next try
}

// spoolReplay is what openSpool found.
type spoolReplay struct {
	pendingRuns     int
	interruptedRuns int    // of the pending runs, those that had started
	damaged         int    // lines that are not records, or not valid ones
	firstDamage     string // where and why, for the log
	torn            bool   // an incomplete last line was skipped
}

// openSpool reads the spool at path (a missing file is an empty spool),
// rewrites it with only its pending run records, and opens it for appends
// with every pending record spilled, to be read back by the pool.
func openSpool(path string, log *slog.Logger) (*spool, spoolReplay, error) {
	var rep spoolReplay
	done := map[runKey]bool{}
	started := map[runKey]int{}
	var maxSeq uint64
	var recent recentEvents
	err := readSpool(path, 0, func(line []byte, rec *spoolRecord, lineNo int, err error) bool {
		switch {
		case err != nil:
			rep.noteDamage(path, lineNo, err)
		case rec.Seen != nil:
			recent.add(eventKey{name: rec.Seen.UserEvent, ltime: rec.Seen.LTime, sum: [sha256.Size]byte(rec.Seen.PayloadSHA256)})
		case rec.Done != "":
			done[runKey{rec.Seq, rec.Done}] = true
		case rec.Start != "":
			started[runKey{rec.Seq, rec.Start}]++
		default:
			maxSeq = max(maxSeq, rec.Seq)
			recent.add(keyOf(rec.Event))
		}
		return true
	}, &rep.torn)
	if err != nil {
		return nil, rep, err
	}

	// Rewrite with the latest events and the pending runs only, in the
	// order they arrived.
	tmp := path + ".tmp"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, rep, fmt.Errorf("rewrite handler spool: %w", err)
	}
	w := bufio.NewWriter(out)
	recent.writeTo(w)
	seen := map[uint64]bool{}
	err = readSpool(path, 0, func(_ []byte, rec *spoolRecord, _ int, err error) bool {
		if err != nil || !rec.isRun() || seen[rec.Seq] {
			return true
		}
		seen[rec.Seq] = true
		pending := slices.DeleteFunc(rec.Handlers, func(h string) bool { return done[runKey{rec.Seq, h}] })
		if len(pending) == 0 {
			return true
		}
		rep.pendingRuns += len(pending)
		attempts := startedRuns(pending, func(h string) int { return rec.Attempts[h] + started[runKey{rec.Seq, h}] })
		rep.interruptedRuns += len(attempts)
		rec.Handlers, rec.Attempts = pending, attempts
		line, _ := json.Marshal(rec) // plain data: cannot fail
		w.Write(append(line, '\n'))
		return true
	}, nil)
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return nil, rep, fmt.Errorf("rewrite handler spool %s: %w", path, err)
	}

	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, rep, fmt.Errorf("open handler spool: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, rep, fmt.Errorf("open handler spool: %w", err)
	}
	sp := &spool{path: path, log: log, f: f, size: fi.Size(), nextSeq: maxSeq + 1, live: map[uint64]*liveRecord{},
		recent: recent}
	if rep.pendingRuns > 0 {
		sp.spilling, sp.spillSeq, sp.spillOff, sp.spilledRuns = true, 1, 0, rep.pendingRuns
	}
	return sp, rep, nil
}

func (r *spoolReplay) noteDamage(path string, lineNo int, err error) {
	if r.damaged == 0 {
		r.firstDamage = fmt.Sprintf("%s:%d: %v", path, lineNo, err)
	}
	r.damaged++
}

// errSpoolClosed: the spool was closed by Close, or given up after a
// failed rewrite (which was logged).
var errSpoolClosed = errors.New("handler spool closed")

// appendLocked writes rec as one line at the end of the file, in one
// write(2). A failed or short write is cut off again so that the next
// record starts on a line of its own, and is logged once per distinct
// failure. Called with mu held.
func (sp *spool) appendLocked(rec *spoolRecord) (int64, error) {
	if sp.f == nil {
		return 0, errSpoolClosed
	}
	line, err := json.Marshal(rec)
	if err != nil {
		return 0, fmt.Errorf("encode handler spool record: %w", err)
	}
	line = append(line, '\n')
	n, err := sp.f.Write(line)
	if err != nil {
		if n > 0 {
			_ = sp.f.Truncate(sp.size) // best effort: the next start skips a damaged line anyway
		}
		err = fmt.Errorf("append to handler spool %s: %w", sp.path, err)
		if sp.writeProblem != err.Error() {
			sp.writeProblem = err.Error()
			sp.log.Error(err.Error()+"; runs of new user events will not survive a restart",
				"FILE", sp.path, "ERROR", err.Error(), msgIDKey, MsgHandlerSpoolProblem)
		}
		return 0, err
	}
	if sp.writeProblem != "" {
		sp.writeProblem = ""
		sp.log.Info("handler spool writable again", "FILE", sp.path)
	}
	sp.size += int64(n)
	return int64(n), nil
}

// startLocked appends the start record of handler's run of seq, so that a
// restart knows the run may have done its work, and returns how many runs
// of it have started, this one included. Called with mu held.
func (sp *spool) startLocked(seq uint64, handler string) int {
	lr := sp.live[seq]
	if lr == nil {
		return 1
	}
	if lr.attempts == nil {
		lr.attempts = map[string]int{}
	}
	lr.attempts[handler]++
	if n, err := sp.appendLocked(&spoolRecord{Seq: seq, Start: handler}); err == nil {
		sp.garbage += n
	}
	return lr.attempts[handler]
}

// doneLocked appends the done record of handler's run of seq and, when
// garbage makes up more than half of the file, rewrites it. Called with mu
// held.
func (sp *spool) doneLocked(seq uint64, handler string) {
	n, err := sp.appendLocked(&spoolRecord{Seq: seq, Done: handler})
	if err != nil {
		return // the run may run again after a restart
	}
	sp.garbage += n
	if lr := sp.live[seq]; lr != nil {
		lr.pending = slices.DeleteFunc(lr.pending, func(h string) bool { return h == handler })
		if len(lr.pending) == 0 {
			sp.garbage += lr.size
			delete(sp.live, seq)
		}
	}
	if sp.garbage >= max(spoolCompactMin, sp.retryCompact) && sp.garbage*2 > sp.size {
		err := sp.compactLocked()
		if err != nil {
			sp.retryCompact = 2 * sp.garbage // not at every run: when garbage has doubled
		}
		if err != nil && sp.f == nil {
			sp.log.Error(err.Error()+"; runs of new user events will not survive a restart", "FILE", sp.path,
				"ERROR", err.Error(), msgIDKey, MsgHandlerSpoolProblem)
		} else if err != nil {
			sp.log.Warn(err.Error()+"; it keeps growing until the next start", "FILE", sp.path, "ERROR", err.Error(),
				msgIDKey, MsgHandlerSpoolProblem)
		}
	}
}

// compactLocked rewrites the file with only the pending run records: those
// in memory (with the runs not done), then those spilled. Called with mu
// held.
func (sp *spool) compactLocked() error {
	tmp := sp.path + ".tmp"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("compact handler spool: %w", err)
	}
	cw := &countWriter{w: bufio.NewWriter(out)}
	sp.recent.writeTo(cw)
	for _, seq := range slices.Sorted(maps.Keys(sp.live)) {
		lr := sp.live[seq]
		attempts := startedRuns(lr.pending, func(h string) int { return lr.attempts[h] })
		line, _ := json.Marshal(&spoolRecord{Seq: seq, Handlers: lr.pending, Event: lr.event, Attempts: attempts})
		before := cw.n
		cw.Write(append(line, '\n'))
		lr.size = cw.n - before
	}
	spillOff := cw.n
	if sp.spilling {
		err = scanSpool(io.NewSectionReader(sp.f, sp.spillOff, sp.size-sp.spillOff), func(line []byte, rec *spoolRecord, _ int, err error) bool {
			if err == nil && rec.isRun() && rec.Seq >= sp.spillSeq {
				cw.Write(line)
			}
			return true
		}, nil, sp.path)
	}
	if err == nil {
		err = cw.err
	}
	if err == nil {
		err = cw.w.Flush()
	}
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, sp.path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("compact handler spool %s: %w", sp.path, err)
	}
	f, err := os.OpenFile(sp.path, os.O_RDWR|os.O_APPEND, 0o600)
	if err != nil {
		// The old descriptor now names a file no one will read: stop
		// spooling rather than write into it.
		sp.f.Close()
		sp.f = nil
		return fmt.Errorf("reopen handler spool %s after compacting it: %w", sp.path, err)
	}
	sp.f.Close()
	sp.f = f
	sp.size = cw.n
	sp.garbage = 0
	sp.retryCompact = 0
	sp.spillOff = spillOff
	return nil
}

// startedRuns maps each handler of pending whose run has started (count
// says how many times) to that count; nil if none has.
func startedRuns(pending []string, count func(handler string) int) map[string]int {
	var out map[string]int
	for _, h := range pending {
		if n := count(h); n > 0 {
			if out == nil {
				out = map[string]int{}
			}
			out[h] = n
		}
	}
	return out
}

// countWriter counts the bytes written and keeps the first error.
type countWriter struct {
	w   *bufio.Writer
	n   int64
	err error
}

func (c *countWriter) Write(b []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(b)
	c.n += int64(n)
	c.err = err
	return n, err
}

// readSpilledLocked calls fn for each spilled run record in order, from
// the first not read back yet, until fn returns false; fn returns whether
// it took the record. At the end of the file nothing is spilled any more.
// Called with mu held.
func (sp *spool) readSpilledLocked(fn func(rec *spoolRecord, size int64) bool) {
	if !sp.spilling || sp.f == nil {
		return
	}
	atEnd := true
	off := sp.spillOff
	err := scanSpool(io.NewSectionReader(sp.f, sp.spillOff, sp.size-sp.spillOff), func(line []byte, rec *spoolRecord, lineNo int, err error) bool {
		size := int64(len(line))
		if err == nil && rec.isRun() && rec.Seq >= sp.spillSeq {
			if !fn(rec, size) {
				atEnd = false
				return false
			}
			sp.spillSeq = rec.Seq + 1
			sp.spilledRuns -= len(rec.Handlers)
		}
		off += size
		sp.spillOff = off
		return true
	}, nil, sp.path)
	if err != nil {
		sp.log.Warn(err.Error()+"; runs waiting in it start after the next restart", "FILE", sp.path, "ERROR", err.Error(),
			msgIDKey, MsgHandlerSpoolProblem)
		atEnd = true
	}
	if atEnd {
		sp.spilling = false
		sp.spilledRuns = 0
	}
}

// close closes the file; the records in it stay for the next start.
func (sp *spool) close() {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.f != nil {
		sp.f.Close()
		sp.f = nil
	}
}

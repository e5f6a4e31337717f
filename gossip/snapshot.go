package gossip

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// The snapshot file is Serf's append-only text log,
// one record a line, readable by stock Serf and written by it:
//
//	alive: NAME IP:PORT     a member joined (NAME may contain spaces)
//	not-alive: NAME         a member left or failed
//	failed: NAME IP:PORT T  serfd only: after not-alive, the member failed at T
//	left: NAME IP:PORT T    serfd only: after not-alive, the member left at T
//	clock: N                membership Lamport clock (its time minus one)
//	event-clock: N          highest user event LTime handled
//	query-clock: N          highest query LTime seen
//	leave                   this node left the cluster gracefully
//	# comment
//
// Legacy "coordinate:" lines are skipped; any other line is logged and
// skipped. A torn last line (a crash mid-write) is skipped the same way.
//
// Failed and left records (T in RFC 3339, UTC) keep the last address of a
// member that is no longer alive for Config.SnapshotRetention, so that
// after a full outage, when every node's snapshot lists as alive only peers
// that went down after it, the nodes still find each other (Serf #333).
// Readers that do not know them (stock Serf, older serfd) log and skip
// these lines, and the not-alive record written before each keeps what
// they replay as it was. Replay forgets the records older than the
// retention; compaction drops them from the file.
//
// Clocks and leave: replaying "leave" forgets the alive peers and the failed
// and left ones (so a node that left does not rejoin them by itself) and
// zeroes the membership clock, as Serf does, unless RejoinAfterLeave. Unlike
// Serf, it does NOT zero the event and query clocks: they record what this
// node's handlers already ran, and a leave does not undo that. So a node
// restarted after a leave still never re-runs an event it handled, even if
// it then joins with replay. Keeping a Lamport clock high is always safe;
// peers witness it.

// Snapshot tuning, as Serf's.
const (
	snapshotFlushInterval = 500 * time.Millisecond
	snapshotBytesPerNode  = 128
	snapshotCompactFactor = 2
	snapshotMinCompact    = 128 << 10
	snapshotRetryInterval = 30 * time.Second
	snapshotQueue         = 2048
	snapshotMaxLine       = 64 << 10 // longer lines are garbage
	snapshotMaxWarnings   = 10       // per replay; then one summary
)

// snapshotter appends to the snapshot file from one goroutine (run). Other
// goroutines only call record, which never waits, and leave.
type snapshotter struct {
	path             string
	log              *slog.Logger
	rejoinAfterLeave bool
	retention        time.Duration // failed and left records are kept this long
	in               chan snapRecord
	leaveCh          chan chan struct{}
	dropped          atomic.Uint64
	// Writes to the file: flushes of buffered lines, compactions, and
	// the time spent in both.
	flushes, compacts, writeNanos atomic.Uint64

	// Sampled on each tick; nil means not sampled.
	clock      func() uint64 // membership clock
	queryClock func() uint64
	eventFloor func() uint64 // events below this are never delivered

	flushInterval, retryInterval time.Duration
	minCompact                   int64

	replayed snapState // what the file said at open; read-only

	// Owned by run once it starts (by openSnapshotter before).
	f           *os.File // nil after a failed reopen
	w           *bufio.Writer
	size        int64 // bytes in the file, buffered ones included
	state       snapState
	left        bool // leave recorded: nothing more is written
	failing     bool // a write failed; compaction rewrites the file
	nextCompact time.Time
}

// openSnapshotter opens (creating it if needed) and replays the snapshot at
// path, forgetting the failed and left records older than retention. The
// returned snapshotter is ready for run.
func openSnapshotter(path string, rejoinAfterLeave bool, retention time.Duration, log *slog.Logger) (*snapshotter, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open snapshot: %w", err)
	}
	warnings := 0
	st, err := replaySnapshot(f, rejoinAfterLeave, func(lineNo int, err error) {
		warnings++
		if warnings <= snapshotMaxWarnings {
			log.Warn("skipping bad snapshot line", "SNAPSHOT", path, "LINE", lineNo, "ERROR", err)
		}
	})
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("read snapshot %s: %w", path, err)
	}
	if warnings > snapshotMaxWarnings {
		log.Warn("skipped more bad snapshot lines", "SNAPSHOT", path, "COUNT", warnings-snapshotMaxWarnings)
	}
	now := time.Now()
	if n := st.expire(now.Add(-retention).Unix(), now.Unix()); n > 0 {
		log.Info(fmt.Sprintf("forgot %d failed or left members of the snapshot: they went more than %v ago (snapshot retention)", n, retention),
			"SNAPSHOT", path, "COUNT", n, "SNAPSHOT_RETENTION", retention.String())
	}
	s := &snapshotter{
		path:             path,
		log:              log,
		rejoinAfterLeave: rejoinAfterLeave,
		retention:        retention,
		in:               make(chan snapRecord, snapshotQueue),
		leaveCh:          make(chan chan struct{}),
		flushInterval:    snapshotFlushInterval,
		retryInterval:    snapshotRetryInterval,
		minCompact:       snapshotMinCompact,
		replayed:         st,
		state: snapState{
			alive:      maps.Clone(st.alive),
			gone:       maps.Clone(st.gone),
			clock:      st.clock,
			eventClock: st.eventClock,
			queryClock: st.queryClock,
		},
	}
	if err := s.attach(f); err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

// attach makes f, opened for appending, the file written to. A torn last
// line gets its newline, so the next record starts on a line of its own.
func (s *snapshotter) attach(f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat snapshot %s: %w", s.path, err)
	}
	s.f, s.w, s.size = f, bufio.NewWriterSize(f, 64<<10), fi.Size()
	if s.size > 0 {
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, s.size-1); err != nil {
			return fmt.Errorf("read snapshot %s: %w", s.path, err)
		}
		if last[0] != '\n' {
			s.write("")
		}
	}
	return nil
}

// record queues r for the file without ever waiting; when the queue is full
// the record is dropped, logged and counted.
func (s *snapshotter) record(r snapRecord) {
	select {
	case s.in <- r:
	default:
		n := s.dropped.Add(1)
		s.log.Warn("snapshot queue full; dropping record", "SNAPSHOT", s.path,
			"RECORD", r.line(), "DROPPED_TOTAL", n)
	}
}

// leave records a graceful leave, flushed and synced, and waits for it
// (unless stop closes first). Nothing is recorded afterwards.
func (s *snapshotter) leave(stop <-chan struct{}) {
	done := make(chan struct{})
	select {
	case s.leaveCh <- done:
	case <-stop:
		return
	}
	select {
	case <-done:
	case <-stop:
	}
}

// run writes records until stop closes, then flushes, syncs and closes the
// file.
func (s *snapshotter) run(stop <-chan struct{}) {
	t := time.NewTicker(s.flushInterval)
	defer t.Stop()
	for {
		select {
		case r := <-s.in:
			s.apply(r)
		case <-t.C:
			s.tick()
		case done := <-s.leaveCh:
			s.drain()
			s.recordLeave()
			close(done)
		case <-stop:
			s.drain()
			s.sample()
			s.close()
			return
		}
	}
}

// drain applies every record already queued.
func (s *snapshotter) drain() {
	for {
		select {
		case r := <-s.in:
			s.apply(r)
		default:
			return
		}
	}
}

// apply records r if it changes the snapshot's state.
func (s *snapshotter) apply(r snapRecord) {
	if s.left {
		return
	}
	st := &s.state
	switch r.kind {
	case snapAlive:
		if strings.ContainsAny(r.name, "\r\n") {
			s.log.Warn("not recording a member whose name contains a line break", "SERF_MEMBER", r.name)
			return
		}
		if old, ok := st.alive[r.name]; ok && old == r.addr {
			return
		}
		st.alive[r.name] = r.addr
		delete(st.gone, r.name)
	case snapNotAlive:
		if _, ok := st.alive[r.name]; !ok {
			return
		}
		delete(st.alive, r.name)
	case snapFailed, snapLeft:
		if strings.ContainsAny(r.name, "\r\n") {
			return // never recorded alive either
		}
		if _, ok := st.alive[r.name]; ok {
			// What readers that skip failed and left lines go by.
			delete(st.alive, r.name)
			s.write(snapRecord{kind: snapNotAlive, name: r.name}.line())
		} else if old, ok := st.gone[r.name]; ok && old.addr == r.addr {
			return // failed, then forced out: it went at the first time
		}
		st.gone[r.name] = departure{addr: r.addr, at: r.at, left: r.kind == snapLeft}
	case snapClock:
		if r.n <= st.clock {
			return
		}
		st.clock = r.n
	case snapEventClock:
		if r.n <= st.eventClock {
			return
		}
		st.eventClock = r.n
	case snapQueryClock:
		if r.n <= st.queryClock {
			return
		}
		st.queryClock = r.n
	default:
		return
	}
	s.write(r.line())
	s.maybeCompact()
}

// sample records the clocks that moved since the last record.
func (s *snapshotter) sample() {
	if s.clock != nil {
		if t := s.clock(); t > 0 {
			s.apply(snapRecord{kind: snapClock, n: t - 1})
		}
	}
	if s.queryClock != nil {
		if t := s.queryClock(); t > 0 {
			s.apply(snapRecord{kind: snapQueryClock, n: t - 1})
		}
	}
	if s.eventFloor != nil {
		if t := s.eventFloor(); t > 0 {
			s.apply(snapRecord{kind: snapEventClock, n: t - 1})
		}
	}
}

// tick samples the clocks, flushes and, after a failure, retries compaction.
func (s *snapshotter) tick() {
	s.sample()
	s.flush()
	if s.failing && !s.left {
		s.maybeCompact()
	}
}

// write appends one line to the buffer.
func (s *snapshotter) write(line string) {
	if s.w == nil {
		s.fail(errors.New("no open snapshot file"))
		return
	}
	n, err := s.w.WriteString(line + "\n")
	s.size += int64(n)
	if err != nil {
		s.fail(err)
	}
}

func (s *snapshotter) flush() {
	if s.w == nil || s.w.Buffered() == 0 {
		return
	}
	start := time.Now()
	err := s.w.Flush()
	s.flushes.Add(1)
	s.writeNanos.Add(uint64(time.Since(start)))
	if err != nil {
		s.fail(err)
	}
}

// fail notes a write error. The in-memory state stays complete, and the next
// compaction rewrites the whole file from it.
func (s *snapshotter) fail(err error) {
	if !s.failing {
		s.log.Error("snapshot write failed; will rewrite it by compaction", "SNAPSHOT", s.path,
			"ERROR", err, "RETRY_IN", s.retryInterval.String())
		s.nextCompact = time.Now().Add(s.retryInterval)
	}
	s.failing = true
}

// threshold is the file size past which the snapshot is compacted.
func (s *snapshotter) threshold() int64 {
	return max(int64(snapshotCompactFactor*snapshotBytesPerNode*(len(s.state.alive)+len(s.state.gone))), s.minCompact)
}

// maybeCompact compacts when the file is too big or broken, at most once per
// retryInterval after a failure.
func (s *snapshotter) maybeCompact() {
	if s.size <= s.threshold() && !s.failing {
		return
	}
	if time.Now().Before(s.nextCompact) {
		return
	}
	start := time.Now()
	err := s.compact()
	s.compacts.Add(1)
	s.writeNanos.Add(uint64(time.Since(start)))
	if err != nil {
		s.log.Error("snapshot compaction failed", "SNAPSHOT", s.path, "ERROR", err,
			"RETRY_IN", s.retryInterval.String())
		s.failing = true
		s.nextCompact = time.Now().Add(s.retryInterval)
		return
	}
	if s.failing {
		s.log.Info("snapshot rewritten after a write failure", "SNAPSHOT", s.path)
	}
	s.failing = false
	s.nextCompact = time.Time{}
}

// compact writes the current state to PATH.compact, syncs it, renames it
// over PATH and continues appending there. Failed and left records past
// the retention are dropped.
func (s *snapshotter) compact() error {
	now := time.Now()
	s.state.expire(now.Add(-s.retention).Unix(), now.Unix())
	err := replaceFile(s.path, s.state.write)
	if err != nil {
		return err
	}

	// The old file is gone; what was buffered for it is in the new one.
	if s.f != nil {
		s.f.Close()
	}
	s.f, s.w = nil, nil
	nf, err := os.OpenFile(s.path, os.O_RDWR|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("reopen snapshot after compaction: %w", err)
	}
	if err := s.attach(nf); err != nil {
		nf.Close()
		s.f, s.w = nil, nil
		return err
	}
	return nil
}

// write writes st as a compacted snapshot, which replays to st: the alive
// members, the failed and left ones, each by name, then the clocks.
func (st *snapState) write(w *bufio.Writer) {
	for _, name := range slices.Sorted(maps.Keys(st.alive)) {
		w.WriteString(snapRecord{kind: snapAlive, name: name, addr: st.alive[name]}.line() + "\n")
	}
	for _, name := range slices.Sorted(maps.Keys(st.gone)) {
		w.WriteString(st.gone[name].record(name).line() + "\n")
	}
	for _, r := range []snapRecord{
		{kind: snapClock, n: st.clock},
		{kind: snapEventClock, n: st.eventClock},
		{kind: snapQueryClock, n: st.queryClock},
	} {
		w.WriteString(r.line() + "\n")
	}
}

// replaceFile writes path anew through write: to PATH.compact first, then
// synced and renamed over path, so a crash leaves the old file or the new
// one, never a part.
func replaceFile(path string, write func(*bufio.Writer)) error {
	tmp := path + ".compact"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	w := bufio.NewWriter(f)
	write(w)
	err = w.Flush()
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	syncDir(filepath.Dir(path))
	return nil
}

// syncDir makes a rename in dir durable. Best effort.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// recordLeave writes "leave", flushes and syncs; nothing is written after.
func (s *snapshotter) recordLeave() {
	if s.left {
		return
	}
	s.write(snapRecord{kind: snapLeave}.line())
	s.flush()
	s.sync()
	s.left = true
	if !s.rejoinAfterLeave {
		clear(s.state.alive)
		clear(s.state.gone)
	}
}

func (s *snapshotter) sync() {
	if s.f == nil {
		return
	}
	if err := s.f.Sync(); err != nil {
		s.log.Error("cannot sync snapshot", "SNAPSHOT", s.path, "ERROR", err)
	}
}

// close flushes, syncs and closes the file.
func (s *snapshotter) close() {
	s.flush()
	s.sync()
	if s.f != nil {
		if err := s.f.Close(); err != nil {
			s.log.Error("cannot close snapshot", "SNAPSHOT", s.path, "ERROR", err)
		}
		s.f, s.w = nil, nil
	}
}

package gossip

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
)

// The seen log (Config.SnapshotPath + ".seen") makes "exactly once" hold
// across restarts. Serf's snapshot keeps one event clock, the highest user
// event time seen, and after a restart drops every event at or below it:
// an event that arrived but was not yet handed to the handlers when the
// node stopped or was killed is lost, and so is one with a lower time that
// was still on its way from a slower sender. The seen log instead records
// each user event once OnEvent has returned for it (the handlers have it),
// one line each:
//
//	LTIME HASH      HASH: 16 hex digits of SHA-256 over name, NUL, payload
//
// At Create it is replayed: the events it names are dropped as duplicates,
// and every other event within the window (eventWindow Lamport times below
// the highest time the node had seen) is delivered when a peer's push/pull
// or gossip brings it. Only the delivery goroutine writes it, one write(2)
// per event (no fsync: a kill -9 keeps it, a power loss may lose the last
// lines). It is compacted to the window's records when it reaches
// seenCompactFactor windows of lines. A torn or garbled line is skipped.
// Without the file (a first start, a snapshot written by stock Serf) the
// snapshot's event clock rules, as in Serf.

// seenCompactFactor: the log is rewritten with the window's records when it
// holds this many windows of lines.
const seenCompactFactor = 4

// eventKey identifies a user event within a Lamport time.
func eventKey(name string, payload []byte) uint64 {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte{0})
	h.Write(payload)
	return binary.BigEndian.Uint64(h.Sum(nil))
}

// seenRecord is one line of the seen log.
type seenRecord struct {
	ltime, key uint64
}

func (r seenRecord) line() string {
	return strconv.FormatUint(r.ltime, 10) + " " + fmt.Sprintf("%016x", r.key) + "\n"
}

func parseSeen(line string) (seenRecord, bool) {
	lt, key, ok := strings.Cut(line, " ")
	if !ok || len(key) != 16 {
		return seenRecord{}, false
	}
	l, err1 := strconv.ParseUint(lt, 10, 64)
	k, err2 := strconv.ParseUint(key, 16, 64)
	return seenRecord{l, k}, err1 == nil && err2 == nil
}

// seenLog appends to the seen log. Used only by the delivery goroutine
// after openSeenLog returns.
type seenLog struct {
	path   string
	log    *slog.Logger
	f      *os.File // nil after a failure: nothing more is recorded
	recent []seenRecord
	lines  int // lines in the file
	max    uint64
}

// seenSet is the replayed seen log: the user events handled before the
// restart, by Lamport time. Read-only once Create returns.
type seenSet struct {
	keys map[uint64][]uint64
	max  uint64 // highest time in keys; 0 when empty
}

func (s *seenSet) has(ltime, key uint64) bool {
	for _, k := range s.keys[ltime] {
		if k == key {
			return true
		}
	}
	return false
}

// openSeenLog replays the seen log at path, rewrites it with the records of
// the window and opens it for appending. The set is nil when there was no
// file: nothing is known of what was handled.
func openSeenLog(path string, log *slog.Logger) (*seenLog, *seenSet, error) {
	set := &seenSet{keys: make(map[uint64][]uint64)}
	existed := true
	var records []seenRecord
	bad := 0
	if f, err := os.Open(path); err == nil {
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 256), 256)
		for sc.Scan() {
			r, ok := parseSeen(sc.Text())
			if !ok {
				bad++
				continue
			}
			records = append(records, r)
			set.max = max(set.max, r.ltime)
		}
		err = sc.Err()
		f.Close()
		if err != nil && err != bufio.ErrTooLong {
			return nil, nil, fmt.Errorf("read seen log %s: %w", path, err)
		}
	} else if os.IsNotExist(err) {
		existed = false
	} else {
		return nil, nil, fmt.Errorf("open seen log: %w", err)
	}
	if bad > 0 {
		log.Warn("skipped bad lines of the seen log", "SEEN_LOG", path, "COUNT", bad)
	}
	s := &seenLog{path: path, log: log, max: set.max}
	s.recent = inWindow(records, set.max)
	for _, r := range s.recent {
		set.keys[r.ltime] = append(set.keys[r.ltime], r.key)
	}
	if err := s.rewrite(); err != nil {
		return nil, nil, err
	}
	if !existed {
		set = nil
	}
	return s, set, nil
}

// inWindow returns the records of the window below top, in order.
func inWindow(records []seenRecord, top uint64) []seenRecord {
	var out []seenRecord
	for _, r := range records {
		if top < eventWindow || r.ltime > top-eventWindow {
			out = append(out, r)
		}
	}
	return out
}

// rewrite replaces the file with s.recent (temp file, sync, rename) and
// reopens it for appending.
func (s *seenLog) rewrite() error {
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
	err := replaceFile(s.path, func(w *bufio.Writer) {
		for _, r := range s.recent {
			w.WriteString(r.line())
		}
	})
	if err != nil {
		return err
	}
	if s.f, err = os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
		return fmt.Errorf("reopen seen log: %w", err)
	}
	s.lines = len(s.recent)
	return nil
}

// record appends one handled event, compacting when the file is long. A
// write failure is logged once and recording stops: after a restart the
// snapshot's event clock rules again.
func (s *seenLog) record(r seenRecord) {
	if s.f == nil {
		return
	}
	if _, err := s.f.WriteString(r.line()); err != nil {
		s.fail(err)
		return
	}
	s.max = max(s.max, r.ltime)
	s.recent = append(s.recent, r)
	if s.lines++; s.lines < seenCompactFactor*eventWindow {
		return
	}
	s.recent = inWindow(s.recent, s.max)
	if err := s.rewrite(); err != nil {
		s.fail(err)
	}
}

func (s *seenLog) fail(err error) {
	s.log.Error("cannot record handled events; after a restart, events may be missed or run again",
		"SEEN_LOG", s.path, "ERROR", err)
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
	os.Remove(s.path) // a log with a gap must not be trusted at the next start
}

// close closes the file. Safe to call once the delivery goroutine is done.
func (s *seenLog) close() {
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
}

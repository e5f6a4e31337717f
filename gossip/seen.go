package gossip

import (
	"bufio"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
)

// The seen log (Config.SnapshotPath + ".seen") makes "exactly once" hold
// across restarts. Serf's snapshot keeps one event clock, the highest user
// event time seen, and after a restart drops every event at or below it:
// an event that arrived but was not yet handed to the handlers when the
// node stopped or was killed is lost, and so is one with a lower time that
// was still on its way from a slower sender; and the events this node alone
// held (accepted here while cut off) are gone with its memory. The seen log
// records, one line each:
//
//	h LTIME KEY NAME PAYLOAD   handled: OnEvent returned for the event
//	a LTIME KEY NAME PAYLOAD   accepted: UserEvent on this node, before it
//	                           returns, so before "sent" is answered
//
// KEY is 16 hex digits of SHA-256 over name, NUL, payload; NAME and PAYLOAD
// are base64 (standard, padded; "-" when empty). At Create it is replayed:
// the handled events are dropped as duplicates; the events of both kinds
// refill the dedup window, so push/pull spreads them again (one this node
// accepted but nobody else received before it went down reaches the
// cluster after all); an accepted event not handled is delivered here; and
// every other event within the window (EventWindow Lamport times below the
// highest time the node had seen) is delivered when a peer's push/pull or
// gossip brings it. One write(2) per line (no fsync: a kill -9 keeps it, a
// power loss may lose the last lines). It is compacted to the window's
// records when it reaches seenCompactFactor windows of lines. A torn,
// garbled or overlong line is skipped. Without the file (a first start, a
// snapshot written by stock Serf) the snapshot's event clock rules, as in
// Serf.

// seenCompactFactor: the log is rewritten with the window's records when it
// holds this many windows of lines.
const seenCompactFactor = 4

// seenMaxLine bounds a line: a user event is at most 9 KiB, 12 KiB in
// base64, twice (name and payload) with room to spare.
const seenMaxLine = 32 << 10

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
	handled bool // "h"; else "a", accepted here
	ltime   uint64
	name    string
	payload []byte
}

func (r seenRecord) key() uint64 { return eventKey(r.name, r.payload) }

func b64(b []byte) string {
	if len(b) == 0 {
		return "-"
	}
	return base64.StdEncoding.EncodeToString(b)
}

func unb64(s string) ([]byte, error) {
	if s == "-" {
		return nil, nil
	}
	return base64.StdEncoding.DecodeString(s)
}

func (r seenRecord) line() string {
	kind := "a"
	if r.handled {
		kind = "h"
	}
	return fmt.Sprintf("%s %d %016x %s %s\n", kind, r.ltime, r.key(), b64([]byte(r.name)), b64(r.payload))
}

func parseSeen(line string) (seenRecord, bool) {
	f := strings.Fields(line)
	if len(f) != 5 || (f[0] != "h" && f[0] != "a") || len(f[2]) != 16 {
		return seenRecord{}, false
	}
	lt, err1 := strconv.ParseUint(f[1], 10, 64)
	key, err2 := strconv.ParseUint(f[2], 16, 64)
	name, err3 := unb64(f[3])
	payload, err4 := unb64(f[4])
	r := seenRecord{handled: f[0] == "h", ltime: lt, name: string(name), payload: payload}
	// The key guards against a line torn and completed by a later write.
	return r, errors.Join(err1, err2, err3, err4) == nil && r.key() == key
}

// seenLog appends to the seen log. record is safe for concurrent use.
type seenLog struct {
	path string
	log  *slog.Logger

	mu     sync.Mutex
	f      *os.File // nil after a failure: nothing more is recorded
	recent []seenRecord
	lines  int // lines in the file
	max    uint64
}

// seenSet is the replayed seen log. Read-only once Create returns.
type seenSet struct {
	keys map[uint64][]uint64 // handled events by Lamport time
	max  uint64              // highest time in the log; 0 when empty
	// bodies are the events of the window, handled or accepted here, in
	// the order recorded, once each; pending are the accepted ones never
	// handled.
	bodies, pending []seenRecord
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
		r := bufio.NewReader(f)
		for {
			line, err := r.ReadString('\n')
			if len(line) > 0 {
				if rec, ok := parseSeen(line); ok && len(line) <= seenMaxLine {
					records = append(records, rec)
					set.max = max(set.max, rec.ltime)
				} else {
					bad++
				}
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				f.Close()
				return nil, nil, fmt.Errorf("read seen log %s: %w", path, err)
			}
		}
		f.Close()
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
	type id struct{ ltime, key uint64 }
	handled := make(map[id]bool)
	for _, r := range s.recent {
		if r.handled {
			set.keys[r.ltime] = append(set.keys[r.ltime], r.key())
			handled[id{r.ltime, r.key()}] = true
		}
	}
	known := make(map[id]bool)
	for _, r := range s.recent {
		k := id{r.ltime, r.key()}
		if known[k] {
			continue
		}
		known[k] = true
		set.bodies = append(set.bodies, r)
		if !handled[k] {
			set.pending = append(set.pending, r)
		}
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
		if top < EventWindow || r.ltime > top-EventWindow {
			out = append(out, r)
		}
	}
	return out
}

// rewrite replaces the file with s.recent (temp file, sync, rename) and
// reopens it for appending. Called by openSeenLog, or with mu held.
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

// record appends one record, compacting when the file is long. A write
// failure is logged once and recording stops: after a restart the
// snapshot's event clock rules again.
func (s *seenLog) record(r seenRecord) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return
	}
	if _, err := s.f.WriteString(r.line()); err != nil {
		s.fail(err)
		return
	}
	s.max = max(s.max, r.ltime)
	s.recent = append(s.recent, r)
	if s.lines++; s.lines < seenCompactFactor*EventWindow {
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

// close closes the file; later records are not written.
func (s *seenLog) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
}

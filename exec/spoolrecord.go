package exec

// The records of the spool file (spoolfile.go) and how its lines are read:
// one JSON object per line, appended whole; see the comment there.

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"slices"
	"strings"
	"unicode/utf8"
)

// spoolRecord is one line of the spool: a run record (Seq, Handlers,
// Event, maybe Attempts), a start record (Seq, Start), a done record (Seq,
// Done), or a seen record (Seen alone).
type spoolRecord struct {
	Seq      uint64      `json:"seq,omitempty"`
	Handlers []string    `json:"handlers,omitempty"`
	Event    *spoolEvent `json:"event,omitempty"`
	// Attempts counts, per handler, the runs of this record that started
	// before the file was last rewritten and never finished.
	Attempts map[string]int `json:"attempts,omitempty"`
	Start    string         `json:"start,omitempty"` // the handler whose run of Seq is starting
	Done     string         `json:"done,omitempty"`  // the handler whose run of Seq finished
	Seen     *seenEvent     `json:"seen,omitempty"`  // a user event whose run records are gone
}

// seenEvent is what identifies a user event, as Serf tells events apart:
// the same name, LTime and payload make the same event.
type seenEvent struct {
	UserEvent     string `json:"user_event"`
	LTime         uint64 `json:"ltime"`
	PayloadSHA256 []byte `json:"payload_sha256"`
}

// eventKey is a seenEvent as a map key.
type eventKey struct {
	name  string
	ltime uint64
	sum   [sha256.Size]byte
}

// keyOf is e's key. The name is taken as JSON keeps it (each invalid
// UTF-8 byte replaced by U+FFFD), so that a key made before a restart
// matches one made after.
func keyOf(e *spoolEvent) eventKey {
	name := e.UserEvent
	if !utf8.ValidString(name) {
		var b strings.Builder
		for _, r := range name { // an invalid byte comes as utf8.RuneError
			b.WriteRune(r)
		}
		name = b.String()
	}
	return eventKey{name: name, ltime: e.LTime, sum: sha256.Sum256(e.Payload)}
}

func (k eventKey) seen() *seenEvent {
	return &seenEvent{UserEvent: k.name, LTime: k.ltime, PayloadSHA256: k.sum[:]}
}

// recentEvents remembers the keys of the latest spoolRemember user events.
type recentEvents struct {
	keys  map[eventKey]bool
	order []eventKey // oldest first
}

// add remembers k; it reports false if k was remembered already.
func (r *recentEvents) add(k eventKey) bool {
	if r.keys == nil {
		r.keys = map[eventKey]bool{}
	}
	if r.keys[k] {
		return false
	}
	r.keys[k] = true
	r.order = append(r.order, k)
	if len(r.order) > spoolRemember {
		delete(r.keys, r.order[0])
		r.order = slices.Delete(r.order, 0, 1)
	}
	return true
}

// writeTo writes one seen record per remembered event, oldest first.
func (r *recentEvents) writeTo(w io.Writer) {
	for _, k := range r.order {
		line, _ := json.Marshal(&spoolRecord{Seen: k.seen()}) // plain data: cannot fail
		w.Write(append(line, '\n'))
	}
}

// spoolEvent is what a run of a user event needs, as it was when the event
// arrived.
type spoolEvent struct {
	Type      string            `json:"type"`
	UserEvent string            `json:"user_event"`
	LTime     uint64            `json:"ltime"`
	Payload   []byte            `json:"payload,omitempty"`
	SelfName  string            `json:"self_name"`
	SelfTags  map[string]string `json:"self_tags,omitempty"`
	SelfAddr  string            `json:"self_addr,omitempty"`
}

// spoolEventOf copies what the spool keeps of ev.
func spoolEventOf(ev *Event) *spoolEvent {
	return &spoolEvent{Type: ev.Type, UserEvent: ev.UserEvent, LTime: ev.LTime, Payload: bytes.Clone(ev.Payload),
		SelfName: ev.SelfName, SelfTags: maps.Clone(ev.SelfTags), SelfAddr: ev.SelfAddr}
}

func (e *spoolEvent) event() Event {
	return Event{Type: e.Type, UserEvent: e.UserEvent, LTime: e.LTime, Payload: e.Payload,
		SelfName: e.SelfName, SelfTags: e.SelfTags, SelfAddr: e.SelfAddr}
}

// spooled reports whether ev's runs go to the spool: user events only. A
// query's answer has a deadline a run after a restart cannot meet, and the
// membership a member event reports is learned again on rejoin.
func spooled(ev *Event) bool {
	return ev.Type == "user"
}

// isRun reports whether r is a run record.
func (r *spoolRecord) isRun() bool {
	return r.Seen == nil && r.Start == "" && r.Done == ""
}

// check says what is wrong with a decoded record, if anything.
func (r *spoolRecord) check() error {
	switch {
	case r.Seen != nil && (r.Seq != 0 || r.Done != "" || r.Start != "" || r.Event != nil || len(r.Handlers) > 0 || r.Attempts != nil):
		return errors.New("a seen record with more")
	case r.Seen != nil && len(r.Seen.PayloadSHA256) != sha256.Size:
		return errors.New("a seen record without a SHA-256")
	case r.Seen != nil:
		return nil
	case r.Seq == 0:
		return errors.New("no sequence number")
	case r.Done != "" && r.Start != "":
		return errors.New("both a start and a done record")
	case (r.Done != "" || r.Start != "") && (r.Event != nil || len(r.Handlers) > 0 || r.Attempts != nil):
		return errors.New("both a run record and a start or done record")
	case r.Done != "" || r.Start != "":
		return nil
	case r.Event == nil || len(r.Handlers) == 0:
		return errors.New("neither a run nor a done record")
	case r.Event.Type != "user":
		return fmt.Errorf("event type %q is not spooled", r.Event.Type)
	case slices.Contains(r.Handlers, ""):
		return errors.New("empty handler name")
	}
	for h, n := range r.Attempts {
		if n < 0 || !slices.Contains(r.Handlers, h) {
			return fmt.Errorf("attempts %d of handler %q that the record does not run", n, h)
		}
	}
	return nil
}

// runKey names one run: a handler's run of one run record.
type runKey struct {
	seq     uint64
	handler string
}

// readSpool calls fn for each line of the file at path from byte off on,
// with the decoded record or why it is not one, until fn returns false. A
// last line without a newline is a record if it decodes and is valid;
// otherwise it was torn by a stop in the middle of a write and is skipped,
// setting *torn if torn is not nil. A missing file has no lines.
func readSpool(path string, off int64, fn func(line []byte, rec *spoolRecord, lineNo int, err error) bool, torn *bool) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read handler spool: %w", err)
	}
	defer f.Close()
	return scanSpool(io.NewSectionReader(f, off, 1<<62), fn, torn, path)
}

// scanSpool is readSpool over r.
func scanSpool(r io.Reader, fn func(line []byte, rec *spoolRecord, lineNo int, err error) bool, torn *bool, name string) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for lineNo := 1; ; lineNo++ {
		line, err := readLine(br)
		if err != nil && !errors.Is(err, io.EOF) {
			if errors.Is(err, errLongLine) {
				if !fn(nil, nil, lineNo, err) {
					return nil
				}
				continue
			}
			return fmt.Errorf("read handler spool %s: %w", name, err)
		}
		if len(line) == 0 && err != nil { // end of file
			return nil
		}
		complete := err == nil
		rec, derr := decodeRecord(line)
		if !complete && derr != nil {
			if torn != nil {
				*torn = true
			}
			return nil
		}
		if !fn(line, rec, lineNo, derr) || !complete {
			return nil
		}
	}
}

var errLongLine = fmt.Errorf("record longer than %d bytes", maxSpoolLine)

// readLine reads one line with its newline; at the end of the file it
// returns what is left (maybe nothing) and io.EOF. A line longer than
// maxSpoolLine is read past and reported as errLongLine.
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line)+len(chunk) > maxSpoolLine {
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			if err == nil {
				return nil, errLongLine
			}
			return nil, err
		}
		line = append(line, chunk...)
		if !errors.Is(err, bufio.ErrBufferFull) {
			return line, err
		}
	}
}

func decodeRecord(line []byte) (*spoolRecord, error) {
	var rec spoolRecord
	dec := json.NewDecoder(bytes.NewReader(line))
	if err := dec.Decode(&rec); err != nil {
		return nil, fmt.Errorf("not a record: %w", err)
	}
	if rest := bytes.TrimSpace(line[dec.InputOffset():]); len(rest) > 0 {
		return nil, errors.New("not a record: data after it")
	}
	if err := rec.check(); err != nil {
		return nil, fmt.Errorf("not a valid record: %w", err)
	}
	return &rec, nil
}

package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-systemd/v22/journal"
)

// newLogger returns the daemon's logger: native journald records with
// fields when stderr is connected to the journal, text on stderr otherwise;
// either way every record is also offered to the monitor subscribers of hub.
// Only journald gets the MESSAGE_ID attribute (msgIDKey): it is for
// `journalctl MESSAGE_ID=` and the catalog, and 32 hex digits on every
// text line would drown the message.
//
// Records for journald go through a journalQueue, so logging never waits
// for journald; the returned close flushes the queue (bounded) and must be
// called once, after the last record.
func newLogger(stderr io.Writer, level *slog.LevelVar, hub *logHub) (*slog.Logger, func()) {
	var h slog.Handler
	closeLog := func() {}
	if ok, _ := journal.StderrIsJournalStream(); ok && journal.Enabled() {
		q := newJournalQueue(journal.Send, journalQueueSize)
		h = &journalHandler{level: level, send: q.send}
		closeLog = func() { q.close(journalFlushTimeout) }
	} else {
		h = newTextHandler(stderr, level)
	}
	return slog.New(&teeHandler{inner: h, hub: hub}), closeLog
}

// The journal queue's size, and how long serfd waits at exit for journald
// to take what is still queued.
const (
	journalQueueSize    = 4096
	journalFlushTimeout = 2 * time.Second
)

// journalQueue hands records to journald from a goroutine of its own, so a
// stalled or restarting journald holds up no caller: not gossip's event
// delivery, not the watchdog's health check. When the queue is full a
// record is dropped and counted; the next record that gets through is
// preceded by one saying how many were lost (msgIDLogDropped). send and
// close are safe for concurrent use; close is idempotent.
type journalQueue struct {
	write   func(string, journal.Priority, map[string]string) error
	ch      chan journalEntry
	dropped atomic.Uint64
	done    chan struct{} // closed when run has sent everything

	mu     sync.RWMutex // guards closed against send racing close
	closed bool
}

type journalEntry struct {
	msg  string
	pri  journal.Priority
	vars map[string]string
}

func newJournalQueue(write func(string, journal.Priority, map[string]string) error, size int) *journalQueue {
	q := &journalQueue{write: write, ch: make(chan journalEntry, size), done: make(chan struct{})}
	go q.run()
	return q
}

// send queues one record without waiting.
func (q *journalQueue) send(msg string, pri journal.Priority, vars map[string]string) error {
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.closed {
		return nil
	}
	select {
	case q.ch <- journalEntry{msg, pri, vars}:
	default:
		q.dropped.Add(1)
	}
	return nil
}

func (q *journalQueue) run() {
	defer close(q.done)
	var reported uint64
	for e := range q.ch {
		if d := q.dropped.Load(); d > reported {
			_ = q.write(fmt.Sprintf("%d log records dropped: journald did not keep up", d-reported),
				journal.PriWarning, map[string]string{"SYSLOG_IDENTIFIER": "serfd", msgIDKey: msgIDLogDropped,
					"DROPPED": strconv.FormatUint(d-reported, 10), "DROPPED_TOTAL": strconv.FormatUint(d, 10)})
			reported = d
		}
		_ = q.write(e.msg, e.pri, e.vars)
	}
}

// close stops taking records and waits up to timeout for the queued ones
// to be written.
func (q *journalQueue) close(timeout time.Duration) {
	q.mu.Lock()
	if !q.closed {
		q.closed = true
		close(q.ch)
	}
	q.mu.Unlock()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-q.done:
	case <-t.C:
	}
}

// newTextHandler is the handler for stderr outside journald: slog's text
// format with its own timestamps, without MESSAGE_ID.
func newTextHandler(w io.Writer, level slog.Leveler) slog.Handler {
	return slog.NewTextHandler(w, &slog.HandlerOptions{Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == msgIDKey {
				return slog.Attr{}
			}
			return a
		}})
}

// journalHandler is a slog.Handler that writes each record to journald
// with its attributes as fields. Field names are upper-cased and anything
// outside [A-Z0-9_] becomes '_', as journald drops other names silently.
// The record's time is not sent: journald stamps each entry on receipt
// (__REALTIME_TIMESTAMP), and a field of ours would only duplicate it.
// Safe for concurrent use.
type journalHandler struct {
	level  slog.Leveler
	prefix string            // group prefix for attributes added later
	fields map[string]string // attributes added by WithAttrs
	send   func(string, journal.Priority, map[string]string) error
}

func (h *journalHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.level.Level()
}

func (h *journalHandler) Handle(_ context.Context, r slog.Record) error {
	vars := make(map[string]string, len(h.fields)+r.NumAttrs()+2)
	for k, v := range h.fields {
		vars[k] = v
	}
	r.Attrs(func(a slog.Attr) bool {
		addField(vars, h.prefix, a)
		return true
	})
	vars["SYSLOG_IDENTIFIER"] = "serfd"
	return h.send(r.Message, priority(r.Level), vars)
}

func (h *journalHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	n := *h
	n.fields = make(map[string]string, len(h.fields)+len(attrs))
	for k, v := range h.fields {
		n.fields[k] = v
	}
	for _, a := range attrs {
		addField(n.fields, h.prefix, a)
	}
	return &n
}

func (h *journalHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	n := *h
	n.prefix = h.prefix + name + "_"
	return &n
}

func addField(vars map[string]string, prefix string, a slog.Attr) {
	flattenAttr(prefix, "_", a, func(key string, v slog.Value) {
		if name := fieldName(key); name != "" {
			vars[name] = v.String()
		}
	})
}

// flattenAttr calls leaf with the full key of every non-group attribute in
// a, groups joined to their members by sep.
func flattenAttr(prefix, sep string, a slog.Attr, leaf func(key string, v slog.Value)) {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return
	}
	if a.Value.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += a.Key + sep
		}
		for _, g := range a.Value.Group() {
			flattenAttr(p, sep, g, leaf)
		}
		return
	}
	leaf(prefix+a.Key, a.Value)
}

// fieldName maps an attribute key to a valid journal field name, or "".
func fieldName(key string) string {
	var b strings.Builder
	for _, r := range strings.ToUpper(key) {
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	s := strings.TrimLeft(b.String(), "_")
	if s == "" || (s[0] >= '0' && s[0] <= '9') {
		return ""
	}
	if len(s) > 64 {
		s = s[:64]
	}
	switch s {
	case "MESSAGE", "PRIORITY": // journal.Send sets these itself
		return "SERFD_" + s
	}
	return s
}

func priority(l slog.Level) journal.Priority {
	switch {
	case l >= slog.LevelError:
		return journal.PriErr
	case l >= slog.LevelWarn:
		return journal.PriWarning
	case l >= slog.LevelInfo:
		return journal.PriInfo
	}
	return journal.PriDebug
}

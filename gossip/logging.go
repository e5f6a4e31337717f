package gossip

import (
	"bytes"
	"context"
	"log"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// newMemberlistLogger returns the *log.Logger memberlist writes to, feeding
// its lines into l. memberlist writes "[LEVEL] memberlist: message"; the
// level becomes the slog level (DEBUG and TRACE to Debug, WARN to Warn, ERR
// and ERROR to Error, anything else Info) and the prefix is dropped.
//
// memberlist logs a warning or an error for every bad packet it receives,
// so a flood of hostile packets would become a flood of records (and
// journald would drop serfd's own). Warnings and errors are therefore
// rate-limited per kind (the words the line starts with, before any name,
// address or number): the first at once, then at most one record of that
// kind per dropLogInterval, carrying how many lines it stands for
// (REPEATED). Kinds past maxLogKinds share one limit.
func newMemberlistLogger(l *slog.Logger) *log.Logger {
	return log.New(&levelWriter{log: l, kinds: map[string]*dropCounter{}}, "", 0)
}

// maxLogKinds bounds the kinds of memberlist lines rate-limited apart.
const maxLogKinds = 64

// perKind is kind's entry in m, made at first use; past maxLogKinds
// kinds, the rest share other. m must not be used concurrently.
func perKind[T any](m map[string]*T, other *T, kind string) *T {
	if k := m[kind]; k != nil {
		return k
	}
	if len(m) >= maxLogKinds {
		return other
	}
	k := new(T)
	m[kind] = k
	return k
}

type levelWriter struct {
	log   *slog.Logger
	kinds map[string]*dropCounter // by lineKind; log.Logger serializes Write
	other dropCounter             // kinds past maxLogKinds
}

// Write handles one log line. log.Logger serializes calls to it.
func (w *levelWriter) Write(p []byte) (int, error) {
	level, msg := parseLevel(p)
	ctx := context.Background()
	if !w.log.Enabled(ctx, level) {
		return len(p), nil
	}
	if level < slog.LevelWarn {
		w.log.Log(ctx, level, msg, "COMPONENT", "memberlist")
		return len(p), nil
	}
	kind := lineKind(msg)
	if n, _, ok := perKind(w.kinds, &w.other, kind).due(); ok {
		attrs := []any{"COMPONENT", "memberlist"}
		if n > 1 {
			attrs = append(attrs, "REPEATED", n)
		}
		w.log.Log(ctx, level, msg, attrs...)
	}
	return len(p), nil
}

// lineKind is the leading letters and spaces of a memberlist message, the
// part that names what happened before any name, address or number.
func lineKind(msg string) string {
	for i, r := range msg {
		if r != ' ' && (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') {
			return msg[:i]
		}
	}
	return msg
}

// parseLevel splits a "[LEVEL] component: message" line.
func parseLevel(p []byte) (slog.Level, string) {
	p = bytes.TrimRight(p, "\r\n")
	level := slog.LevelInfo
	if len(p) > 0 && p[0] == '[' {
		if end := bytes.IndexByte(p, ']'); end > 0 {
			switch string(p[1:end]) {
			case "TRACE", "DEBUG":
				level = slog.LevelDebug
			case "WARN", "WARNING":
				level = slog.LevelWarn
			case "ERR", "ERROR":
				level = slog.LevelError
			}
			p = bytes.TrimLeft(p[end+1:], " ")
		}
	}
	p = bytes.TrimPrefix(p, []byte("memberlist: "))
	return level, string(p)
}

// dropLogInterval is the least time between two records of one kind of
// drop: a flood of drops costs one record a second, not one each.
const dropLogInterval = time.Second

// dropCounter counts one kind of drop and logs it rate-limited: the first
// at once, then at most one record per dropLogInterval, carrying the number
// dropped since the last record (DROPPED) and in all (DROPPED_TOTAL). A
// flood of drops costs a record a second, not one each. Safe for
// concurrent use and under any Cluster lock (logging does not wait).
type dropCounter struct {
	total atomic.Uint64
	mu    sync.Mutex
	last  time.Time
	since uint64 // drops not yet in a record
}

// note counts one drop and, unless one was logged less than
// dropLogInterval ago, logs msg with attrs.
func (d *dropCounter) note(log *slog.Logger, msg string, attrs ...any) {
	if n, total, ok := d.due(); ok {
		log.Warn(msg, append(attrs, "DROPPED", n, "DROPPED_TOTAL", total)...)
	}
}

// due counts one occurrence and reports whether a record is due (none in
// the last dropLogInterval) and, if so, how many occurrences it stands for
// and how many there were in all.
func (d *dropCounter) due() (n, total uint64, ok bool) {
	total = d.total.Add(1)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.since++
	if time.Since(d.last) < dropLogInterval {
		return 0, total, false
	}
	n = d.since
	d.since, d.last = 0, time.Now()
	return n, total, true
}

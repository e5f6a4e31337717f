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
func newMemberlistLogger(l *slog.Logger) *log.Logger {
	return log.New(&levelWriter{log: l}, "", 0)
}

type levelWriter struct {
	log *slog.Logger
}

// Write handles one log line. log.Logger serializes calls to it.
func (w *levelWriter) Write(p []byte) (int, error) {
	level, msg := parseLevel(p)
	ctx := context.Background()
	if w.log.Enabled(ctx, level) {
		w.log.Log(ctx, level, msg, "COMPONENT", "memberlist")
	}
	return len(p), nil
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
	total := d.total.Add(1)
	d.mu.Lock()
	d.since++
	if time.Since(d.last) < dropLogInterval {
		d.mu.Unlock()
		return
	}
	n := d.since
	d.since, d.last = 0, time.Now()
	d.mu.Unlock()
	log.Warn(msg, append(attrs, "DROPPED", n, "DROPPED_TOTAL", total)...)
}

package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"

	"github.com/serfd/serfd/ctl"
)

// monitorBuffer is how many records one monitor subscriber may fall behind
// before its records are dropped (and counted).
const monitorBuffer = 512

// monitorReplay is how many recent records a new subscriber gets first
// (Serf's monitor replays 512 lines; half that keeps the replay within the
// buffer with room to spare).
const monitorReplay = 256

// maxMonitors bounds the monitor streams open at once: each may hold
// monitorBuffer records (up to about 1 KB each with their attributes),
// and monitor is open to every user who may connect.
const maxMonitors = 16

// errTooManyMonitors refuses a subscriber past maxMonitors.
var errTooManyMonitors = fmt.Errorf("%d monitor streams are open, the limit is %d; close one (or try again later)", maxMonitors, maxMonitors)

// logHub fans log records out to monitor subscribers and keeps the last
// monitorReplay records the daemon logged for new subscribers. Publishing
// never blocks: a subscriber whose buffer is full loses the record, and the
// loss is counted and reported with its next record. Safe for concurrent use.
type logHub struct {
	// minLevel is the lowest level any subscriber wants; MaxInt64 when
	// there is none, so logging pays nothing without subscribers.
	minLevel atomic.Int64
	dropped  atomic.Uint64 // every record dropped for any subscriber

	mu     sync.Mutex
	subs   map[*logSub]struct{}
	recent []ctl.LogRecord // ring of the last monitorReplay records
	next   int             // where the ring writes next once full
}

// logSub is one monitor client's feed.
type logSub struct {
	level   slog.Level
	ch      chan ctl.LogRecord
	dropped uint64 // since its last delivered record; guarded by logHub.mu
}

func newLogHub() *logHub {
	h := &logHub{subs: map[*logSub]struct{}{}, recent: make([]ctl.LogRecord, 0, monitorReplay)}
	h.minLevel.Store(math.MaxInt64)
	return h
}

// subscribe returns a feed of records at level or above, starting with the
// recent ones; the caller must unsubscribe it. With maxMonitors feeds open
// it returns errTooManyMonitors.
func (h *logHub) subscribe(level slog.Level) (*logSub, error) {
	h.mu.Lock()
	if len(h.subs) >= maxMonitors {
		h.mu.Unlock()
		return nil, errTooManyMonitors
	}
	s := &logSub{level: level, ch: make(chan ctl.LogRecord, monitorBuffer)}
	for i := range len(h.recent) {
		rec := h.recent[(h.next+i)%len(h.recent)]
		if levelOf(rec) >= level {
			s.ch <- rec // fits: monitorReplay < monitorBuffer
		}
	}
	h.subs[s] = struct{}{}
	h.updateLocked()
	h.mu.Unlock()
	return s, nil
}

func (h *logHub) unsubscribe(s *logSub) {
	h.mu.Lock()
	delete(h.subs, s)
	h.updateLocked()
	h.mu.Unlock()
}

func (h *logHub) updateLocked() {
	lowest := int64(math.MaxInt64)
	for s := range h.subs {
		lowest = min(lowest, int64(s.level))
	}
	h.minLevel.Store(lowest)
}

func (h *logHub) wants(l slog.Level) bool {
	return int64(l) >= h.minLevel.Load()
}

// rememberLocked keeps rec for the replay to new subscribers.
func (h *logHub) rememberLocked(rec ctl.LogRecord) {
	if len(h.recent) < monitorReplay {
		h.recent = append(h.recent, rec)
		return
	}
	h.recent[h.next] = rec
	h.next = (h.next + 1) % monitorReplay
}

func levelOf(rec ctl.LogRecord) slog.Level {
	var l slog.Level
	if l.UnmarshalText([]byte(rec.Level)) != nil {
		return slog.LevelInfo
	}
	return l
}

// publish offers rec to every subscriber that wants its level and, when
// remember is set (the daemon logged it), keeps it for later subscribers;
// both under one lock, so a new subscriber sees each record once.
func (h *logHub) publish(rec ctl.LogRecord, level slog.Level, remember bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if remember {
		h.rememberLocked(rec)
	}
	for s := range h.subs {
		if level < s.level {
			continue
		}
		r := rec
		r.Dropped = s.dropped
		select {
		case s.ch <- r:
			s.dropped = 0
		default:
			s.dropped++
			h.dropped.Add(1)
		}
	}
}

// teeHandler passes records to the daemon's own handler (journal or
// stderr) and copies them to the monitor subscribers. Safe for concurrent use.
type teeHandler struct {
	inner  slog.Handler
	hub    *logHub
	attrs  map[string]string // from WithAttrs, flattened
	prefix string            // from WithGroup
}

func (t *teeHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return t.inner.Enabled(ctx, l) || t.hub.wants(l)
}

func (t *teeHandler) Handle(ctx context.Context, r slog.Record) error {
	var err error
	logged := t.inner.Enabled(ctx, r.Level)
	if logged {
		err = t.inner.Handle(ctx, r)
	}
	wanted := t.hub.wants(r.Level)
	if !logged && !wanted {
		return err
	}
	rec := ctl.LogRecord{Time: r.Time, Level: r.Level.String(), Message: r.Message,
		Attrs: make(map[string]string, len(t.attrs)+r.NumAttrs())}
	for k, v := range t.attrs {
		rec.Attrs[k] = v
	}
	r.Attrs(func(a slog.Attr) bool {
		flatten(rec.Attrs, t.prefix, a)
		return true
	})
	delete(rec.Attrs, msgIDKey) // for journald only (newLogger)
	t.hub.publish(rec, r.Level, logged)
	return err
}

func (t *teeHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	n := *t
	n.inner = t.inner.WithAttrs(attrs)
	n.attrs = make(map[string]string, len(t.attrs)+len(attrs))
	for k, v := range t.attrs {
		n.attrs[k] = v
	}
	for _, a := range attrs {
		flatten(n.attrs, t.prefix, a)
	}
	return &n
}

func (t *teeHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return t
	}
	n := *t
	n.inner = t.inner.WithGroup(name)
	n.prefix = t.prefix + name + "."
	return &n
}

func flatten(dst map[string]string, prefix string, a slog.Attr) {
	flattenAttr(prefix, ".", a, func(key string, v slog.Value) { dst[key] = v.String() })
}

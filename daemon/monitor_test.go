package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/serfd/serfd/internal/testutil"
)

// TestLogHubNeverBlocks logs far more than a subscriber's buffer while
// nobody reads: logging goes on, the loss is counted and reported with
// the next record delivered.
func TestLogHubNeverBlocks(t *testing.T) {
	hub := newLogHub()
	var out bytes.Buffer
	level := new(slog.LevelVar)
	level.Set(slog.LevelWarn)
	log := slog.New(&teeHandler{inner: slog.NewTextHandler(&out, &slog.HandlerOptions{Level: level}), hub: hub})

	log.Debug("before anyone listens")
	sub := mustSubscribe(t, hub, slog.LevelDebug)
	const n = 3 * monitorBuffer
	for i := range n {
		log.With("N", i).WithGroup("g").Debug("flood", "K", "v")
	}
	if got, want := hub.dropped.Load(), uint64(n-monitorBuffer); got != want {
		t.Errorf("logHub dropped after %d records into a %d buffer = %d; want %d", n, monitorBuffer, got, want)
	}
	first := testutil.Recv(t, sub.ch, 5*time.Second, "the first monitored record")
	if first.Message != "flood" || first.Attrs["N"] != "0" || first.Attrs["g.K"] != "v" || first.Level != "DEBUG" {
		t.Errorf("first monitored record = %+v; want flood with N=0 and g.K=v at DEBUG", first)
	}
	for range monitorBuffer - 1 {
		testutil.Recv(t, sub.ch, 5*time.Second, "a buffered monitored record")
	}
	log.Info("after")
	if rec := testutil.Recv(t, sub.ch, 5*time.Second, "the record after the flood"); rec.Message != "after" || rec.Dropped != n-monitorBuffer {
		t.Errorf("record after the flood = %+v; want 'after' reporting %d dropped", rec, n-monitorBuffer)
	}
	if out.Len() != 0 {
		t.Errorf("daemon log at level warn = %q; want the debug and info records only in the monitor", out.String())
	}
	hub.unsubscribe(sub)
	if hub.wants(slog.LevelError) {
		t.Errorf("logHub.wants(error) with no subscriber = true; want false")
	}
}

// TestLogHubReplays gives a new subscriber the recent records the daemon
// logged, at its level or above, before live ones.
func TestLogHubReplays(t *testing.T) {
	hub := newLogHub()
	var out bytes.Buffer
	log := slog.New(&teeHandler{inner: slog.NewTextHandler(&out, nil), hub: hub})
	for i := range monitorReplay + 10 {
		log.Info("old", "N", i)
	}
	log.Warn("warned")
	log.Debug("not logged, not kept")

	sub := mustSubscribe(t, hub, slog.LevelWarn)
	defer hub.unsubscribe(sub)
	log.Error("live")
	for _, want := range []string{"warned", "live"} {
		if rec := testutil.Recv(t, sub.ch, 5*time.Second, "record "+want); rec.Message != want {
			t.Errorf("record for a new warn subscriber = %+v; want %q", rec, want)
		}
	}
	all := mustSubscribe(t, hub, slog.LevelDebug)
	defer hub.unsubscribe(all)
	if got := len(all.ch); got != monitorReplay {
		t.Errorf("records replayed to a new debug subscriber = %d; want the last %d", got, monitorReplay)
	}
	if rec := testutil.Recv(t, all.ch, 5*time.Second, "the first replayed record"); rec.Message != "old" || rec.Attrs["N"] != "12" {
		t.Errorf("first replayed record = %+v; want old N=12 (the oldest kept)", rec)
	}
}

func mustSubscribe(t *testing.T, hub *logHub, level slog.Level) *logSub {
	t.Helper()
	s, err := hub.subscribe(level)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// At most maxMonitors feeds are open at once; one more is refused with a
// message naming the limit, and a closed feed frees its place.
func TestLogHubBoundsSubscribers(t *testing.T) {
	hub := newLogHub()
	var subs []*logSub
	for range maxMonitors {
		subs = append(subs, mustSubscribe(t, hub, slog.LevelInfo))
	}
	if _, err := hub.subscribe(slog.LevelInfo); !errors.Is(err, errTooManyMonitors) ||
		!strings.Contains(err.Error(), fmt.Sprintf("the limit is %d", maxMonitors)) {
		t.Errorf("subscribe past the limit = %v; want errTooManyMonitors naming the limit", err)
	}
	hub.unsubscribe(subs[0])
	hub.unsubscribe(mustSubscribe(t, hub, slog.LevelInfo))
}

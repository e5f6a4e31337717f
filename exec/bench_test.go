package exec

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkSubmit measures what an event costs the gossip path when no
// handler runs for it: finding the handlers (eight in handlers.d, filtered
// on another event) and matching them.
func BenchmarkSubmit(b *testing.B) {
	dir := b.TempDir()
	handlers := map[string]HandlerConfig{}
	for i := range 8 {
		name := fmt.Sprintf("h%d", i)
		writeScript(b, dir, name, "exit 0\n")
		handlers[name] = HandlerConfig{Events: []string{"user:other"}}
	}
	p, err := New(Options{Dir: dir, Handlers: handlers, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	ev := userEvent("deploy", "v1", 1)
	b.ReportAllocs()
	for b.Loop() {
		p.Submit(ev)
	}
}

// BenchmarkSpoolAppend measures the write Submit adds for a user event when
// there is a spool: one run record with a 512-byte payload.
func BenchmarkSpoolAppend(b *testing.B) {
	sp, _, err := openSpool(filepath.Join(b.TempDir(), "runs"), slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer sp.close()
	ev := userEvent("deploy", strings.Repeat("x", 512), 1)
	ev.SelfTags = map[string]string{"role": "web", "dc": "eu1"}
	b.ReportAllocs()
	for b.Loop() {
		rec := &spoolRecord{Seq: sp.nextSeq, Handlers: []string{"a", "b"}, Event: spoolEventOf(&ev)}
		sp.nextSeq++
		sp.mu.Lock()
		_, err := sp.appendLocked(rec)
		sp.mu.Unlock()
		if err != nil {
			b.Fatal(err)
		}
	}
}

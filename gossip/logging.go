package gossip

import (
	"bytes"
	"context"
	"log"
	"log/slog"
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

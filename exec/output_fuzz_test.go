package exec

import (
	"bytes"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
)

// chunkReader hands out data at most n bytes per Read, as a pipe may.
type chunkReader struct {
	data []byte
	n    int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), r.n, len(r.data))
	copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

// wantLines is what capture must log for out: every non-blank line (a
// trailing "\r" removed) of the kept bytes, the unterminated last one too.
func wantLines(kept []byte) []string {
	var lines []string
	for _, l := range strings.Split(string(kept), "\n") {
		if s := strings.TrimSuffix(l, "\r"); strings.TrimSpace(s) != "" {
			lines = append(lines, s)
		}
	}
	return lines
}

// FuzzCapture feeds arbitrary handler output, in arbitrary pieces, to the
// capture of one stream: it logs the first maxLoggedLines non-blank lines
// of its first limit bytes in order, keeps exactly the first keep bytes
// (the query response; none when keep is 0), counts the rest of each, and
// reports what it did not log: as lost (a warning) when it keeps nothing,
// as not logged (information) when the bytes are kept for a response.
func FuzzCapture(f *testing.F) {
	f.Add([]byte("one\ntwo\r\n\n  \nthree"), uint16(1024), uint8(0))
	f.Add([]byte("abcdef\nghij\n"), uint16(5), uint8(2))
	f.Add([]byte(strings.Repeat("line\n", maxLoggedLines+3)), uint16(4096), uint8(255))
	f.Add([]byte("\r\n\r\r\n\xff\xfe\n"), uint16(0), uint8(1))
	f.Add([]byte{}, uint16(10), uint8(3))
	f.Add([]byte("abcdef\nghij\nklmn\n"), uint16(6), uint8(3))
	f.Fuzz(func(t *testing.T, data []byte, limit uint16, chunk uint8) {
		keep := int(limit) * int(chunk%4) / 2 // none, half, as much as, or more than the logged bytes
		rec := &recorder{}
		c := &capture{log: slog.New(rec), handler: "h", stream: "stdout", limit: int(limit), keep: keep}
		c.drain(io.NopCloser(&chunkReader{data: data, n: int(chunk) + 1}))
		c.reportTruncation()

		logged := data[:min(len(data), int(limit))]
		if c.kept != len(logged) || c.dropped != int64(len(data)-len(logged)) {
			t.Fatalf("capture of %d bytes with limit %d took %d for the log, dropped %d; want %d and %d",
				len(data), limit, c.kept, c.dropped, len(logged), len(data)-len(logged))
		}
		body, over := data[:min(len(data), keep)], int64(0)
		if keep > 0 {
			over = int64(len(data) - len(body))
		}
		if !bytes.Equal(c.body, body) || c.over != over {
			t.Fatalf("capture of %d bytes keeping %d kept %q, %d over; want %q and %d over",
				len(data), keep, c.body, c.over, body, over)
		}
		lines := wantLines(logged)
		wantLogged := lines[:min(len(lines), maxLoggedLines)]
		var got []string
		var warnings []record
		notLogged := false
		for _, r := range rec.records {
			switch {
			case r.level == slog.LevelWarn:
				warnings = append(warnings, r)
				continue
			case r.attr("BYTES_NOT_LOGGED") != "<unset>":
				notLogged = true
				if keep == 0 || r.attr("BYTES_NOT_LOGGED") != strconv.Itoa(len(data)-len(logged)) {
					t.Errorf("not-logged record says BYTES_NOT_LOGGED=%s keeping %d; want %d, and only when keeping",
						r.attr("BYTES_NOT_LOGGED"), keep, len(data)-len(logged))
				}
				continue
			}
			if r.attr("HANDLER") != "h" || r.attr("STREAM") != "stdout" {
				t.Fatalf("capture logged %q with HANDLER=%s STREAM=%s; want h and stdout", r.msg, r.attr("HANDLER"), r.attr("STREAM"))
			}
			got = append(got, r.msg)
		}
		if strings.Join(got, "\n") != strings.Join(wantLogged, "\n") || len(got) != len(wantLogged) {
			t.Fatalf("capture of %q (limit %d) logged %q; want %q", data, limit, got, wantLogged)
		}
		var truncated, unlogged bool
		for _, w := range warnings {
			switch {
			case w.attr("BYTES_DROPPED") != "<unset>":
				truncated = true
				if w.attr("BYTES_DROPPED") != strconv.Itoa(len(data)-len(logged)) {
					t.Errorf("truncation warning says BYTES_DROPPED=%s; want %d", w.attr("BYTES_DROPPED"), len(data)-len(logged))
				}
			case w.attr("LINES_NOT_LOGGED") != "<unset>":
				unlogged = true
				if w.attr("LINES_NOT_LOGGED") != strconv.Itoa(len(lines)-len(wantLogged)) {
					t.Errorf("warning says LINES_NOT_LOGGED=%s; want %d", w.attr("LINES_NOT_LOGGED"), len(lines)-len(wantLogged))
				}
			default:
				t.Errorf("capture warned %q; want only truncation and unlogged-lines warnings", w.msg)
			}
		}
		past := len(logged) < len(data)
		if truncated != (past && keep == 0) || notLogged != (past && keep > 0) || unlogged != (len(wantLogged) < len(lines)) {
			t.Errorf("capture of %d bytes (limit %d, keep %d, %d lines): truncation warning %t, not-logged record %t, unlogged warning %t; want %t, %t, %t",
				len(data), limit, keep, len(lines), truncated, notLogged, unlogged, past && keep == 0, past && keep > 0, len(wantLogged) < len(lines))
		}
	})
}

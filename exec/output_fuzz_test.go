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
// capture of one stream: it keeps exactly the first limit bytes (the query
// response), counts the rest, logs the first maxLoggedLines non-blank
// lines in order, and reports what it dropped or did not log.
func FuzzCapture(f *testing.F) {
	f.Add([]byte("one\ntwo\r\n\n  \nthree"), uint16(1024), uint8(0))
	f.Add([]byte("abcdef\nghij\n"), uint16(5), uint8(2))
	f.Add([]byte(strings.Repeat("line\n", maxLoggedLines+3)), uint16(4096), uint8(255))
	f.Add([]byte("\r\n\r\r\n\xff\xfe\n"), uint16(0), uint8(1))
	f.Add([]byte{}, uint16(10), uint8(3))
	f.Fuzz(func(t *testing.T, data []byte, limit uint16, chunk uint8) {
		rec := &recorder{}
		c := &capture{log: slog.New(rec), handler: "h", stream: "stdout", limit: int(limit), retain: true}
		c.drain(io.NopCloser(&chunkReader{data: data, n: int(chunk) + 1}))
		c.reportTruncation()

		kept := data[:min(len(data), int(limit))]
		if c.kept != len(kept) || c.dropped != int64(len(data)-len(kept)) || !bytes.Equal(c.body, kept) {
			t.Fatalf("capture of %d bytes with limit %d kept %d (body %q), dropped %d; want %q and %d dropped",
				len(data), limit, c.kept, c.body, c.dropped, kept, len(data)-len(kept))
		}
		lines := wantLines(kept)
		logged := lines[:min(len(lines), maxLoggedLines)]
		var got []string
		var warnings []record
		for _, r := range rec.records {
			if r.level == slog.LevelWarn {
				warnings = append(warnings, r)
				continue
			}
			if r.attr("HANDLER") != "h" || r.attr("STREAM") != "stdout" {
				t.Fatalf("capture logged %q with HANDLER=%s STREAM=%s; want h and stdout", r.msg, r.attr("HANDLER"), r.attr("STREAM"))
			}
			got = append(got, r.msg)
		}
		if strings.Join(got, "\n") != strings.Join(logged, "\n") || len(got) != len(logged) {
			t.Fatalf("capture of %q (limit %d) logged %q; want %q", data, limit, got, logged)
		}
		var truncated, unlogged bool
		for _, w := range warnings {
			switch {
			case w.attr("BYTES_DROPPED") != "<unset>":
				truncated = true
				if w.attr("BYTES_DROPPED") != strconv.Itoa(len(data)-len(kept)) {
					t.Errorf("truncation warning says BYTES_DROPPED=%s; want %d", w.attr("BYTES_DROPPED"), len(data)-len(kept))
				}
			case w.attr("LINES_NOT_LOGGED") != "<unset>":
				unlogged = true
				if w.attr("LINES_NOT_LOGGED") != strconv.Itoa(len(lines)-len(logged)) {
					t.Errorf("warning says LINES_NOT_LOGGED=%s; want %d", w.attr("LINES_NOT_LOGGED"), len(lines)-len(logged))
				}
			default:
				t.Errorf("capture warned %q; want only truncation and unlogged-lines warnings", w.msg)
			}
		}
		if truncated != (len(kept) < len(data)) || unlogged != (len(logged) < len(lines)) {
			t.Errorf("capture of %d bytes (limit %d, %d lines): truncation warning %t, unlogged warning %t; want %t, %t",
				len(data), limit, len(lines), truncated, unlogged, len(kept) < len(data), len(logged) < len(lines))
		}
	})
}

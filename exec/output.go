package exec

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// maxLoggedLines is how many lines of one stream of one run become journal
// records; later lines are counted, not logged, so a chatty script cannot
// push the daemon's own records past journald's rate limit (by default
// 10,000 records per 30s per service).
const maxLoggedLines = 200

// capture logs one output stream of one run, a record per line (at most
// maxLoggedLines of them, from its first limit bytes), counting the bytes
// past limit; when keep is set it also keeps the stream's first keep bytes
// (a query handler's stdout: its response), counting the rest. Used by one
// goroutine at a time: its reader, then (after the reader has finished)
// the run.
type capture struct {
	log     *slog.Logger
	handler string
	event   string // describeEvent of the run's event
	stream  string // "stdout" or "stderr"
	limit   int    // bytes logged
	keep    int    // bytes kept in body; 0 keeps none

	kept     int   // bytes within limit
	dropped  int64 // bytes past limit
	logged   int   // lines logged
	unlogged int   // lines past maxLoggedLines
	body     []byte
	over     int64  // bytes past keep
	line     []byte // incomplete last line
}

// drain reads r to end of file (or until r is closed under it), then closes
// r and logs any unterminated last line. Bytes past the limit are read and
// discarded, so the script never blocks on a full pipe.
func (c *capture) drain(r io.ReadCloser) {
	defer r.Close()
	buf := make([]byte, 16<<10)
	for {
		n, err := r.Read(buf)
		c.write(buf[:n])
		if err != nil {
			break
		}
	}
	if len(c.line) > 0 {
		c.emit(c.line)
		c.line = nil
	}
}

func (c *capture) write(b []byte) {
	if c.keep > 0 {
		k := b
		if room := c.keep - len(c.body); len(k) > room {
			c.over += int64(len(k) - room)
			k = k[:room]
		}
		c.body = append(c.body, k...)
	}
	if room := c.limit - c.kept; len(b) > room {
		c.dropped += int64(len(b) - room)
		b = b[:room]
	}
	c.kept += len(b)
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			c.line = append(c.line, b...)
			return
		}
		c.emit(append(c.line, b[:i]...))
		c.line = c.line[:0]
		b = b[i+1:]
	}
}

// emit logs one line; blank lines are not worth a record.
func (c *capture) emit(line []byte) {
	s := strings.TrimSuffix(string(line), "\r")
	if strings.TrimSpace(s) == "" {
		return
	}
	if c.logged >= maxLoggedLines {
		c.unlogged++
		return
	}
	c.logged++
	c.log.Info(s, "HANDLER", c.handler, "STREAM", c.stream)
}

// reportTruncation logs how much output went past the limits, if any.
func (c *capture) reportTruncation() {
	if c.unlogged > 0 {
		c.log.Warn(fmt.Sprintf("handler %s: %d more lines of %s not logged, past %d (%s)",
			c.handler, c.unlogged, c.stream, c.logged, c.event), "HANDLER", c.handler, "STREAM", c.stream,
			"LINES_NOT_LOGGED", c.unlogged, "LINES_LOGGED", c.logged)
	}
	if c.dropped == 0 {
		return
	}
	if c.keep > 0 { // the bytes are a response, not lost: Pool.respond says what became of them
		c.log.Info(fmt.Sprintf("handler %s: %s logged up to the output limit of %d bytes, %d more not logged (%s)",
			c.handler, c.stream, c.limit, c.dropped, c.event), "HANDLER", c.handler, "STREAM", c.stream,
			"BYTES_NOT_LOGGED", c.dropped, "OUTPUT_LIMIT", c.limit)
		return
	}
	c.log.Warn(fmt.Sprintf("handler %s: %s truncated, %d bytes past the limit of %d (%s)",
		c.handler, c.stream, c.dropped, c.limit, c.event), "HANDLER", c.handler, "STREAM", c.stream,
		"BYTES_DROPPED", c.dropped, "OUTPUT_LIMIT", c.limit)
}

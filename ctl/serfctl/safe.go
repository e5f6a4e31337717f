package main

import (
	"bytes"
	"fmt"
	"io"
)

// Terminal control sequences serfctl writes itself; safeWriter lets these,
// and only these, through.
const (
	sgrGreen   = "\x1b[32m"
	sgrRed     = "\x1b[31m"
	sgrYellow  = "\x1b[33m"
	sgrDefault = "\x1b[39m"
	sgrReset   = "\x1b[0m"
	clearLine  = "\r\x1b[K"
)

var ownSequences = [][]byte{[]byte(sgrGreen), []byte(sgrRed), []byte(sgrYellow), []byte(sgrDefault), []byte(sgrReset), []byte(clearLine)}

// safeWriter escapes every control character but newline and tab as
// \u00XX (C0, DEL, and C1 encoded as UTF-8), so that names, tags, events,
// query answers and log messages that came from the network cannot move
// the cursor, retitle the terminal or hide text: every serfctl command
// writes through it. The escape is valid inside a JSON string and decodes
// to the same character, so JSON output stays lossless and valid.
type safeWriter struct {
	w io.Writer
}

func (s safeWriter) Write(p []byte) (int, error) {
	var out bytes.Buffer
	out.Grow(len(p))
	for i := 0; i < len(p); {
		b := p[i]
		if b == 0x1b || b == '\r' {
			if n := ownSequenceAt(p[i:]); n > 0 {
				out.Write(p[i : i+n])
				i += n
				continue
			}
		}
		switch {
		case b < 0x20 && b != '\n' && b != '\t', b == 0x7f:
			fmt.Fprintf(&out, `\u%04x`, b)
			i++
		case b == 0xc2 && i+1 < len(p) && p[i+1] >= 0x80 && p[i+1] <= 0x9f: // U+0080..U+009F
			fmt.Fprintf(&out, `\u%04x`, p[i+1])
			i += 2
		default:
			out.WriteByte(b)
			i++
		}
	}
	if _, err := s.w.Write(out.Bytes()); err != nil {
		return 0, err
	}
	return len(p), nil
}

func ownSequenceAt(p []byte) int {
	for _, seq := range ownSequences {
		if bytes.HasPrefix(p, seq) {
			return len(seq)
		}
	}
	return 0
}

package main

import (
	"bytes"
	"encoding/json"
	"testing"
)

// Control characters from the network reach no terminal: C0 (but newline
// and tab), DEL and C1 are written as \u00XX; serfctl's own colours and
// progress-line clearing pass; JSON written through it stays valid and
// decodes to what was encoded.
func TestSafeWriter(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain text\tand tab\n", "plain text\tand tab\n"},
		{"\x1b]0;pwned\x07title", `\u001b]0;pwned\u0007title`},
		{"\x1b[2J\x1b[H", `\u001b[2J\u001b[H`},
		{"over\rwrite", `over\u000dwrite`},
		{"del\x7f", `del\u007f`},
		{"c1 csi \u009b2J", `c1 csi \u009b2J`},
		{"ünï ✓", "ünï ✓"},
		{sgrGreen + "alive" + sgrReset + clearLine, sgrGreen + "alive" + sgrReset + clearLine},
		{"\x1b[31;1m", `\u001b[31;1m`},
	} {
		var out bytes.Buffer
		n, err := safeWriter{&out}.Write([]byte(tc.in))
		if err != nil || n != len(tc.in) || out.String() != tc.want {
			t.Errorf("Write(%q) = %d, %v, wrote %q; want %d, nil, %q", tc.in, n, err, out.String(), len(tc.in), tc.want)
		}
	}

	tags := map[string]string{"evil": "\x1b]0;x\x07\x7f\u009b\r\n"}
	var out bytes.Buffer
	if err := json.NewEncoder(safeWriter{&out}).Encode(tags); err != nil {
		t.Fatal(err)
	}
	var back map[string]string
	if err := json.Unmarshal(out.Bytes(), &back); err != nil || back["evil"] != tags["evil"] {
		t.Errorf("JSON through safeWriter %q decodes to %q, %v; want %q", out.String(), back, err, tags)
	}
	if bytes.ContainsAny(out.Bytes(), "\x1b\x07\x7f\r") || bytes.Contains(out.Bytes(), []byte("\u009b")) {
		t.Errorf("JSON through safeWriter = %q; want no raw control character", out.String())
	}
}

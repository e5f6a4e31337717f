package main

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/serfd/serfd/internal/testutil"
)

// largeAnswer writes size bytes of numbered lines of text to a file in dir
// and returns its path and content.
func largeAnswer(t testing.TB, dir string, size int) (string, string) {
	t.Helper()
	var b strings.Builder
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, "line %06d of the large answer: the quick brown fox jumps over the lazy dog\n", i)
	}
	content := b.String()[:size-1] + "\n"
	path := filepath.Join(dir, fmt.Sprintf("answer-%d.txt", size))
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, content
}

// answerFileHandler answers the query %[1]s with the file %[2]s.
const answerFileHandler = `#!/bin/sh
[ "$SERF_EVENT" = query ] && [ "$SERF_QUERY_NAME" = %[1]q ] || exit 0
cat >/dev/null
cat %[2]q
`

// sum is a short digest of s for failure messages.
func sum(s string) string {
	return fmt.Sprintf("%d bytes, sha256 %x", len(s), sha256.Sum256([]byte(s)))
}

// textResponse returns the payload serfctl's text output gives for from:
// what follows "Response from 'FROM': " up to the "Total Acks" line.
func textResponse(out, from string) string {
	_, rest, ok := strings.Cut(out, "Response from '"+from+"': ")
	if !ok {
		return ""
	}
	payload, _, _ := strings.Cut(rest, "\nTotal Acks:")
	return payload
}

// TestSerfctlQueryLargeResponse: a query handler's 300 KB answer, far
// larger than a packet, reaches serfctl on the other node whole, as text
// and as JSON; an answer past the responder's stream limit is not sent,
// and its journal says why.
func TestSerfctlQueryLargeResponse(t *testing.T) {
	t.Parallel()
	// The LAN profile: its 10s stream timeout leaves room for 300 KB to be
	// compressed, checked and decompressed by -race binaries on a busy
	// machine (the local profile gives a stream 1s).
	a := startNodeWithSocket(t, "big1", "127.0.0.141", "", `profile = "lan"`)
	b := startNodeWithSocket(t, "big2", "127.0.0.142", "", `profile = "lan"`, "query_response_stream_size_limit = 400000",
		fmt.Sprintf("join = [%q]", a.addr))
	a.waitStatus(t, 30*time.Second, "alive", "big1", "big2")
	path, want := largeAnswer(t, b.dir, 300_000)
	b.addHandler(t, "big", fmt.Sprintf(answerFileHandler, "big", path))
	hugePath, _ := largeAnswer(t, b.dir, 500_000)
	b.addHandler(t, "huge", fmt.Sprintf(answerFileHandler, "huge", hugePath))

	out, errOut, code := a.ctl(t, "query", "-node", "big2", "-timeout", "60s", "big")
	if got := textResponse(out, "big2"); code != 0 || got != strings.TrimSuffix(want, "\n") ||
		!strings.Contains(out, "Total Acks: 1\nTotal Responses: 1") {
		t.Errorf("serfctl query big = exit %d, %q; response from big2 %s; want the handler's %s", code, errOut, sum(got), sum(want))
	}

	var resp struct {
		Acks      []string          `json:"Acks"`
		Responses map[string]string `json:"Responses"`
	}
	a.ctlJSON(t, &resp, "query", "-node", "big2", "-timeout", "60s", "big")
	if got := resp.Responses["big2"]; got != want {
		t.Errorf("serfctl -format json query big: response from big2 %s; want %s", sum(got), sum(want))
	}

	out, errOut, code = a.ctl(t, "query", "-node", "big2", "-timeout", "5s", "huge")
	if code != 0 || strings.Contains(out, "Response from") || !strings.Contains(out, "Total Responses: 0") {
		t.Errorf("serfctl query huge = exit %d, %q %q; want no response", code, out, errOut)
	}
	testutil.Poll(t, 30*time.Second, "big2's journal to say why the 500 KB answer was not sent", func() (bool, string) {
		log := b.proc.Out.String()
		return strings.Contains(log, "handler huge's response to query huge (400000 bytes) not sent: its stdout went 100000 bytes past the response limit of 400000 bytes"), log
	})
}

// TestInteropLargeResponses: in a cluster with a stock Serf agent, a stock
// querier gets what stock Serf would (no answer from a serfd handler whose
// stdout does not fit a packet, and the serfd node's journal names the
// querier and why), while a serfd querier, through serfctl or through
// Serf's RPC with the stock `serf query`, gets the 300 KB answer whole.
func TestInteropLargeResponses(t *testing.T) {
	serf := testutil.SerfBin(t)
	t.Parallel()
	dir := testutil.ShortTempDir(t, "bigq-")
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	stockHandler := filepath.Join(dir, "stock.sh")
	if err := os.WriteFile(stockHandler, []byte("#!/bin/sh\ncat >/dev/null\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	path, want := largeAnswer(t, dir, 300_000)

	s := startStock(t, serf, "ls1", "127.0.0.143", stockHandler, "")
	d1 := startNodeWithSocket(t, "ld1", "127.0.0.144", "", `profile = "lan"`)
	rpcAddr := net.JoinHostPort("127.0.0.145", fmt.Sprint(testutil.FreePort(t, "127.0.0.145")))
	d2 := startNodeWithSocket(t, "ld2", "127.0.0.145", "", `profile = "lan"`, fmt.Sprintf("rpc { address = %q }", rpcAddr))
	d1.addHandler(t, "big", fmt.Sprintf(answerFileHandler, "big", path))
	if _, errOut, code := s.run(t, "join", d1.addr); code != 0 {
		t.Fatalf("serf join %s = %q exit %d", d1.addr, errOut, code)
	}
	if _, errOut, code := d2.ctl(t, "join", s.addr); code != 0 {
		t.Fatalf("serfctl join %s = %q exit %d", s.addr, errOut, code)
	}
	for _, o := range []observer{s, d1, d2} {
		waitSees(t, o, "alive", nil, "ls1", "ld1", "ld2")
	}

	type answers struct {
		Acks      []string
		Responses map[string]string
	}
	out, errOut, code := s.run(t, "query", "-format", "json", "-timeout", "5s", "big")
	var sr answers
	if code != 0 || json.Unmarshal([]byte(out), &sr) != nil {
		t.Fatalf("serf query big (from stock) = exit %d, %q", code, errOut)
	}
	if _, ok := sr.Responses["ld1"]; ok || len(sr.Acks) != 3 {
		t.Errorf("serf query big (from stock) = acks %v, responses from %d nodes; want 3 acks and no response from ld1", sr.Acks, len(sr.Responses))
	}
	testutil.Poll(t, 30*time.Second, "ld1's journal to say why ls1 got no answer", func() (bool, string) {
		log := d1.proc.Out.String()
		return strings.Contains(log, "level=WARN msg=\"handler big's response to query big (300000 bytes) not sent: ") &&
			strings.Contains(log, "over the packet limit of 1024 bytes, and the querier ls1 is not a serfd node"), log
	})

	var dr answers
	d2.ctlJSON(t, &dr, "query", "-node", "ld1", "-timeout", "60s", "big")
	if got := dr.Responses["ld1"]; got != want {
		t.Errorf("serfctl query big (from ld2, stock ls1 in the cluster): response from ld1 %s; want %s", sum(got), sum(want))
	}

	// Serf's `serf query` waits for the query's whole timeout.
	out, errOut, code = testutil.Run(t, osexec.Command(serf, "query", "-rpc-addr", rpcAddr, "-format", "json", "-node", "ld1", "-timeout", "15s", "big"))
	var rr answers
	if code != 0 || json.Unmarshal([]byte(out), &rr) != nil {
		t.Fatalf("serf query -rpc-addr ld2 big = exit %d, %q", code, errOut)
	}
	if got := rr.Responses["ld1"]; got != want {
		t.Errorf("serf query big over ld2's Serf RPC: response from ld1 %s; want %s", sum(got), sum(want))
	}
}

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/serfd/serfd/internal/testutil"
)

// TestControlSlowHeaders checks that a client sending its request headers
// one byte at a time is cut off by the header deadline.
func TestControlSlowHeaders(t *testing.T) {
	t.Parallel()
	n := startNodeWithSocket(t, "w1", "127.0.0.74", "")
	c, err := net.Dial("unix", n.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		_, _ = io.Copy(io.Discard, c)
	}()
	start := time.Now()
	req := "GET /v1/members HTTP/1.1\r\nHost: serfd\r\nX-Slow: " + strings.Repeat("a", 1000)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-closed:
			if took := time.Since(start); took > 15*time.Second {
				t.Errorf("slow-header client cut off after %v; want within the 5s header deadline", took)
			}
			return
		case <-tick.C:
		}
		if i >= len(req) || time.Since(start) > 20*time.Second {
			t.Fatalf("slow-header client still connected after %v; want it cut off by the header deadline", time.Since(start))
		}
		if _, err := c.Write([]byte{req[i]}); err != nil {
			testutil.Recv(t, closed, 20*time.Second, "the cut-off connection to be drained")
			return
		}
	}
}

// TestControlAbuse fires 10,000 malformed, oversized, garbage and slow
// requests at a real serfd over its socket and checks it keeps serving
// with flat memory.
func TestControlAbuse(t *testing.T) {
	t.Parallel()
	n := startNodeWithSocket(t, "x1", "127.0.0.75", "")
	pid := n.proc.Pid()
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", n.socket)
		},
		MaxIdleConnsPerHost: 32,
	}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	big := `{"addrs":["` + strings.Repeat("a", 70<<10) + `"]}`
	type shot struct {
		method, path, body string
		want               int
	}
	shots := []shot{
		{"POST", "/v1/event", `{bad`, 400},
		{"POST", "/v1/tags", `{"x":1}`, 400},
		{"GET", "/v1/nope", "", 404},
		{"POST", "/v1/query", `{"name":"x","timeout":"bogus"}`, 400},
		{"POST", "/v1/keys", `{"op":"install","key":"!!"}`, 400},
		{"POST", "/v1/event", `{"name":"e"} {"name":"f"}`, 400},
		{"DELETE", "/v1/members", "", 404}, // no such endpoint
		{"POST", "/v1/join", `[]`, 400},
		// Every mutating route rejects a body that is not its request,
		// leave and reload (empty requests) included.
		{"POST", "/v1/leave", `garbage`, 400},
		{"POST", "/v1/leave", `{"now":true}`, 400},
		{"POST", "/v1/leave", ``, 400},
		{"POST", "/v1/reload", `{bad`, 400},
		{"POST", "/v1/force-leave", `"x"`, 400},
	}
	fire := func(i int) error {
		switch {
		case i%100 == 0: // oversized
			resp, err := client.Post("http://serfd/v1/join", "application/json", strings.NewReader(big))
			if err != nil {
				return nil // the daemon may close before reading it all
			}
			resp.Body.Close()
			if resp.StatusCode != 413 {
				return fmt.Errorf("oversized POST /v1/join = %s; want 413", resp.Status)
			}
			return nil
		case i%10 == 1: // not HTTP at all
			c, err := net.Dial("unix", n.socket)
			if err != nil {
				return err
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			_, _ = c.Write([]byte("\x00\x01\x02 garbage \xff\r\n\r\n"))
			_, _ = io.Copy(io.Discard, c)
			return nil
		}
		s := shots[i%len(shots)]
		req, err := http.NewRequest(s.method, "http://serfd"+s.path, strings.NewReader(s.body))
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != s.want {
			return fmt.Errorf("%s %s %q = %s; want %d", s.method, s.path, s.body, resp.Status, s.want)
		}
		return nil
	}
	run := func(from, to int) {
		t.Helper()
		jobs := make(chan int)
		errs := make(chan error, to-from)
		var wg sync.WaitGroup
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range jobs {
					if err := fire(i); err != nil {
						errs <- err
					}
				}
			}()
		}
		for i := from; i < to; i++ {
			jobs <- i
		}
		close(jobs)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
			return
		}
	}

	// Slow clients: headers started, never finished; the header deadline
	// cuts them off while the flood runs.
	var slow []net.Conn
	for range 20 {
		c, err := net.Dial("unix", n.socket)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte("POST /v1/event HTTP/1.1\r\nHost: serfd\r\n")); err != nil {
			t.Fatal(err)
		}
		slow = append(slow, c)
	}

	start := time.Now()
	run(0, 1000) // warm up: buffers and pools reach their working size
	before := testutil.ProcStatusKiB(t, pid, "VmRSS")[0]
	run(1000, 10000-len(slow))
	after := testutil.ProcStatusKiB(t, pid, "VmRSS")[0]
	took := time.Since(start)

	for _, c := range slow {
		_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
		if _, err := io.Copy(io.Discard, c); err != nil {
			t.Errorf("slow client: %v; want the daemon to close it at the header deadline", err)
		}
	}
	if after > before+64<<10 {
		t.Errorf("serfd VmRSS after 9,000 bad requests = %d kB; want within 64 MiB of %d kB", after, before)
	}
	if out, errOut, code := n.ctl(t, "members"); code != 0 || !strings.Contains(out, "x1") {
		t.Errorf("serfctl members after the flood = %q %q exit %d; want exit 0", out, errOut, code)
	}
	t.Logf("10,000 bad requests in %v; VmRSS %d kB -> %d kB", took, before, after)
}

// TestControlQueryDisconnect opens query streams and hangs up after the
// first record: the daemon frees each one at once (its log says so) and
// keeps serving.
func TestControlQueryDisconnect(t *testing.T) {
	t.Parallel()
	n := startNodeWithSocket(t, "y1", "127.0.0.76", "")
	const streams = 50
	for i := range streams {
		c, err := net.Dial("unix", n.socket)
		if err != nil {
			t.Fatal(err)
		}
		body := fmt.Sprintf(`{"name":"hang%d","timeout":"10m"}`, i)
		fmt.Fprintf(c, "POST /v1/query HTTP/1.1\r\nHost: serfd\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("POST /v1/query: %v", err)
		}
		line, err := bufio.NewReader(resp.Body).ReadString('\n')
		if err != nil || !strings.Contains(line, `"type":"started"`) {
			t.Fatalf("first record of POST /v1/query = %q, %v; want started", line, err)
		}
		c.Close()
	}
	// Each query ran to "query hangN sent"; a hung-up stream leaves no
	// goroutine behind: the daemon still answers at once and stops cleanly.
	if out, errOut, code := n.ctl(t, "info"); code != 0 || !strings.Contains(out, "y1") {
		t.Errorf("serfctl info after %d abandoned queries = %q %q exit %d; want exit 0", streams, out, errOut, code)
	}
	if err := n.proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-n.proc.Exited():
		if n.proc.Err() != nil {
			t.Errorf("serfd after SIGTERM with %d abandoned queries = %v; want exit 0", streams, n.proc.Err())
		}
	case <-time.After(20 * time.Second):
		t.Errorf("serfd did not stop within 20s of SIGTERM with %d abandoned 10m queries; want them freed on hang-up", streams)
	}
	if strings.Contains(n.proc.Out.String(), "control server did not stop in time") {
		t.Errorf("serfd logs = %q; want no in-flight query streams left at shutdown", n.proc.Out.String())
	}
}

// 500 monitor streams that never read: past the limit each is refused at
// once with 503 and the limit; the Go heap stays within 30 MB of what it
// was (RSS says little of a -race binary, whose shadow memory grows with
// every connection); once they close, a monitor works again.
func TestMonitorStreamsBounded(t *testing.T) {
	t.Parallel()
	n := startNodeWithSocket(t, "mon1", "127.0.0.76", "")
	heap := func() int {
		t.Helper()
		out, errOut, code := n.ctl(t, "-format", "json", "info")
		var info struct {
			Runtime struct {
				HeapInuse int `json:"heap_inuse_bytes"`
			} `json:"runtime"`
		}
		if err := json.Unmarshal([]byte(out), &info); code != 0 || err != nil || info.Runtime.HeapInuse == 0 {
			t.Fatalf("serfctl info: %q %q exit %d, %v; want heap_inuse_bytes", out, errOut, code, err)
		}
		return info.Runtime.HeapInuse >> 10
	}
	before := heap()
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	refused := 0
	for i := range 500 {
		c, err := net.Dial("unix", n.socket)
		if err != nil {
			t.Fatalf("monitor stream %d: %v", i, err)
		}
		conns = append(conns, c)
		if _, err := c.Write([]byte("GET /v1/monitor?level=debug HTTP/1.1\r\nHost: serfd\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
		status, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			t.Fatalf("monitor stream %d: no status line: %v", i, err)
		}
		if strings.Contains(status, " 503 ") {
			refused++
		} else if !strings.Contains(status, " 200 ") {
			t.Fatalf("monitor stream %d: %q; want 200 or 503", i, status)
		}
	}
	after := heap()
	if refused != 500-16 {
		t.Errorf("monitor streams refused = %d of 500; want all but 16", refused)
	}
	if after > before+30<<10 {
		t.Errorf("serfd heap in use with 500 unread monitor streams = %d kB; want within 30 MB of %d kB", after, before)
	}
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	testutil.WaitFor(t, 30*time.Second, "a monitor stream to be accepted again", func() bool {
		c, err := net.Dial("unix", n.socket)
		if err != nil {
			return false
		}
		defer c.Close()
		_, _ = c.Write([]byte("GET /v1/monitor HTTP/1.1\r\nHost: serfd\r\n\r\n"))
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		status, _ := bufio.NewReader(c).ReadString('\n')
		return strings.Contains(status, " 200 ")
	})
	t.Logf("heap in use %d kB -> %d kB with 500 monitor streams (%d refused)", before, after, refused)
}

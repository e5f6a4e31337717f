package daemon

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/serfd/serfd/internal/testutil"
)

// heldListener hands over each accepted connection only once release is
// closed, as a connection that Accept returned just as the listener was
// closed reaches the server late.
type heldListener struct {
	net.Listener
	accepted  chan struct{} // closed when the first connection is accepted
	release   chan struct{}
	closed    chan struct{}
	closeOnce sync.Once
	acceptOne sync.Once
}

func (l *heldListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.acceptOne.Do(func() { close(l.accepted) })
	<-l.release
	return c, nil
}

func (l *heldListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// A request on a connection accepted as the control server shuts down is
// answered before shutdown returns (serfd exits right after it, during a
// restart with clients waiting on the socket): it is not dropped.
//
// net/http marks the connection active once it has read the request and
// only then checks whether the server is shutting down (dropping the
// request if so): the connection's goroutine is held right there until
// either the http.Server's Shutdown began or shutdown is seen waiting for
// this connection, the interleaving that drops the request if shutdown
// lets the connection go when it turns active.
func TestShutdownAnswersConnectionAcceptedLate(t *testing.T) {
	sock := filepath.Join(testutil.ShortTempDir(t, "cs-"), "s")
	inner, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	l := &heldListener{Listener: inner, accepted: make(chan struct{}), release: make(chan struct{}), closed: make(chan struct{})}
	cs := newControlServer(slog.New(slog.NewTextHandler(io.Discard, nil)), []route{{method: http.MethodGet, path: "/v1/x",
		handle: func(http.ResponseWriter, *http.Request) (any, error) { return map[string]string{"ok": "yes"}, nil }}}, "", -1, nil)
	shutdownBegan := make(chan struct{})
	cs.srv.RegisterOnShutdown(func() { close(shutdownBegan) })
	connState := cs.srv.ConnState
	cs.srv.ConnState = func(c net.Conn, st http.ConnState) {
		connState(c, st)
		if st != http.StateActive {
			return
		}
		testutil.Eventually(20*time.Second, func() bool {
			select {
			case <-shutdownBegan:
				return true
			case <-cs.served:
			default:
				return false
			}
			cs.mu.Lock()
			defer cs.mu.Unlock()
			return cs.fresh[c]
		})
	}
	go func() { _ = cs.serve(l) }()

	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET /v1/x HTTP/1.1\r\nHost: serfd\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	testutil.Recv(t, l.accepted, 10*time.Second, "the connection to be accepted")

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- cs.shutdown(ctx) }()
	testutil.Recv(t, l.closed, 10*time.Second, "shutdown to close the listener")
	close(l.release) // the late connection reaches the server now
	if err := testutil.Recv(t, done, 20*time.Second, "shutdown to return"); err != nil {
		t.Fatalf("shutdown = %v", err)
	}
	// Answered already: read without waiting for anything more.
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("the late connection got no answer by the time shutdown returned: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("late connection answered %d; want 200", resp.StatusCode)
	}
}

package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/serfd/serfd/internal/testutil"
)

// fuzzStatuses are the statuses the fuzzed daemon answers with.
var fuzzStatuses = []int{http.StatusOK, http.StatusBadRequest, http.StatusForbidden, http.StatusNotFound,
	http.StatusRequestEntityTooLarge, http.StatusInternalServerError, http.StatusServiceUnavailable}

// FuzzClientResponses has a daemon on a real Unix socket answer every
// request with an arbitrary status and body, as a broken or hostile serfd
// could. An error status is always an *Error with that status and a
// message (the daemon's own when its body says one); a body that does not
// decode is an error naming the socket; a query stream succeeds only when
// its last record is "done".
func FuzzClientResponses(f *testing.F) {
	socket := filepath.Join(testutil.ShortTempDir(f, "ctl-"), "s")
	l, err := net.Listen("unix", socket)
	if err != nil {
		f.Fatal(err)
	}
	var mu sync.Mutex
	var status int
	var body []byte
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		st, b := status, body
		mu.Unlock()
		w.WriteHeader(st)
		w.Write(b)
	})}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	f.Cleanup(func() {
		srv.Close()
		testutil.Recv(f, served, 10*time.Second, "the fuzzed daemon to stop")
	})
	c := NewClient(socket)

	for _, seed := range []struct {
		status byte
		body   string
	}{
		{0, `{"members":[{"name":"a","addr":"127.0.0.1","port":7946,"status":"alive"}]}`},
		{0, "{\"type\":\"started\",\"expected\":1}\n{\"type\":\"ack\",\"from\":\"a\"}\n{\"type\":\"done\",\"acks\":1}\n"},
		{0, `{"type":"ack"}`},
		{0, `{"members":`},
		{0, ``},
		{1, `{"error":"join needs at least one address"}`},
		{1, `{"error":"config does not load","problems":["a.hcl:1,1: x"]}`},
		{5, `not json`},
		{6, `{"error":""}`},
	} {
		f.Add(seed.status, []byte(seed.body))
	}
	f.Fuzz(func(t *testing.T, st byte, b []byte) {
		mu.Lock()
		status, body = fuzzStatuses[int(st)%len(fuzzStatuses)], b
		want := status
		mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()

		var daemonSays ErrorResponse
		saysError := json.Unmarshal(b, &daemonSays) == nil && daemonSays.Error != ""
		checkErr := func(call string, err error) {
			t.Helper()
			if want/100 == 2 {
				if err != nil && !strings.Contains(err.Error(), socket) {
					t.Fatalf("%s with a 200 and %q = %v; want an error naming %s", call, b, err, socket)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || e.Status != want || e.Message == "" {
				t.Fatalf("%s with %d and %q = %v; want an *Error with status %d and a message", call, want, b, err, want)
			}
			if saysError && e.Message != daemonSays.Error {
				t.Fatalf("%s with %d and %q = message %q; want the daemon's %q", call, want, b, e.Message, daemonSays.Error)
			}
		}

		_, err := c.Members(ctx)
		checkErr("Members", err)
		_, err = c.Info(ctx)
		checkErr("Info", err)

		var last QueryRecord
		err = c.Query(ctx, QueryRequest{Name: "q"}, func(r QueryRecord) error { last = r; return nil })
		checkErr("Query", err)
		if want/100 == 2 && (err == nil) != (last.Type == QueryDone) {
			t.Fatalf("Query with stream %q = %v after a %q record; want success exactly when the last record is done", b, err, last.Type)
		}

		err = c.Monitor(ctx, "debug", func(LogRecord) error { return nil })
		if err == nil {
			t.Fatalf("Monitor with %d and %q = nil; want the stream's end reported", want, b)
		}
		checkErr("Monitor", err)
	})
}

package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/serfd/serfd/ctl"
	"github.com/serfd/serfd/gossip"
)

// Each kind of error gossip returns is answered with its status: a real
// cluster's refusals of an event, a query, tags and force-leave (busy and
// leaving are 503 with Retry-After, as during a restart the next daemon
// takes the request), each with gossip's message.
func TestGossipErrorStatus(t *testing.T) {
	c, err := gossip.Create(gossip.Config{NodeName: "ge-1", BindAddr: "127.0.0.96", Profile: "local",
		Logger: slog.New(slog.DiscardHandler), OnEvent: func(gossip.Event) {}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Shutdown()
	refusal := func(err error) error {
		if err == nil {
			t.Fatal("gossip accepted what it should refuse")
		}
		return err
	}
	_, negative := c.Query("q", nil, &gossip.QueryParams{Timeout: -time.Second})
	cases := []struct {
		err        error
		status     int
		retryAfter string
	}{
		{refusal(c.UserEvent("big", make([]byte, 4096), false)), http.StatusRequestEntityTooLarge, ""},
		{refusal(negative), http.StatusBadRequest, ""},
		{refusal(c.SetTags(map[string]string{"t": strings.Repeat("x", 600)})), http.StatusRequestEntityTooLarge, ""},
		{refusal(c.RemoveFailedNode("nobody", false)), http.StatusNotFound, ""},
		{refusal(c.RemoveFailedNode("ge-1", false)), http.StatusConflict, ""},
		{fmt.Errorf("user event \"x\" not sent: 128 user events wait to be gossiped, the limit is 128: %w", gossip.ErrBusy), http.StatusServiceUnavailable, "1"},
		{fmt.Errorf("user event \"x\" not sent: %w", gossip.ErrNotMember), http.StatusServiceUnavailable, "1"},
		{errors.New("something gossip does not classify"), http.StatusInternalServerError, ""},
	}
	if err := c.Shutdown(); err != nil {
		t.Fatal(err)
	}
	cases = append(cases, struct {
		err        error
		status     int
		retryAfter string
	}{refusal(c.UserEvent("late", nil, false)), http.StatusServiceUnavailable, "1"})

	cs := newControlServer(slog.New(slog.NewTextHandler(io.Discard, nil)), nil, "", -1, nil)
	for _, tc := range cases {
		h := cs.wrap(route{method: http.MethodPost, path: ctl.PathEvent,
			handle: func(http.ResponseWriter, *http.Request) (any, error) {
				return nil, gossipError(tc.err, http.StatusInternalServerError)
			}})
		rec := httptest.NewRecorder()
		h(rec, httptest.NewRequest(http.MethodPost, ctl.PathEvent, nil))
		var body ctl.ErrorResponse
		_ = json.Unmarshal(rec.Body.Bytes(), &body)
		if rec.Code != tc.status || rec.Header().Get("Retry-After") != tc.retryAfter || body.Error != tc.err.Error() {
			t.Errorf("refusal %q answered %d, Retry-After %q, error %q; want %d, %q and the message",
				tc.err, rec.Code, rec.Header().Get("Retry-After"), body.Error, tc.status, tc.retryAfter)
		}
	}
}

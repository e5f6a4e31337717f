package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/serfd/serfd/ctl"
	"github.com/serfd/serfd/gossip"
)

// A user event or query that gossip refused as busy, or because the node is
// leaving (a restart: the next daemon takes it), is answered 503 with
// Retry-After and gossip's message; any other refusal is 400.
func TestNotSentStatus(t *testing.T) {
	cs := newControlServer(slog.New(slog.NewTextHandler(io.Discard, nil)), nil, "", -1, nil)
	for _, tc := range []struct {
		err        error
		status     int
		retryAfter string
	}{
		{fmt.Errorf("user event \"x\" not sent: 128 user events wait to be gossiped, the limit is 128: %w", gossip.ErrBusy), http.StatusServiceUnavailable, "1"},
		{fmt.Errorf("user event \"x\" not sent: %w", gossip.ErrNotMember), http.StatusServiceUnavailable, "1"},
		{errors.New("user event \"x\": name and payload are 600 bytes, over the limit of 512 bytes"), http.StatusBadRequest, ""},
	} {
		h := cs.wrap(route{method: http.MethodPost, path: ctl.PathEvent,
			handle: func(http.ResponseWriter, *http.Request) (any, error) { return nil, notSent(tc.err) }})
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

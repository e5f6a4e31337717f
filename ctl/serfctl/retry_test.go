package main

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/serfd/serfd/ctl"
)

func TestRetryBusy(t *testing.T) {
	busy := &ctl.Error{Status: http.StatusServiceUnavailable, Message: "gossip is busy", RetryAfter: time.Millisecond}

	// Busy twice, then sent: three tries, success.
	calls := 0
	got, err := retryBusy(context.Background(), time.Minute, func() (int, error) {
		if calls++; calls < 3 {
			return 0, busy
		}
		return 7, nil
	})
	if got != 7 || err != nil || calls != 3 {
		t.Errorf("retryBusy(busy, busy, ok) = %d, %v after %d calls; want 7, nil after 3", got, err, calls)
	}

	// Any other error is returned at once.
	calls = 0
	bad := &ctl.Error{Status: http.StatusBadRequest, Message: "too large"}
	if _, err := retryBusy(context.Background(), time.Minute, func() (int, error) { calls++; return 0, bad }); !errors.Is(err, bad) || calls != 1 {
		t.Errorf("retryBusy(400) = %v after %d calls; want the 400 after 1", err, calls)
	}

	// -wait 0: one try, the daemon's message.
	calls = 0
	if _, err := retryBusy(context.Background(), 0, func() (int, error) { calls++; return 0, busy }); err == nil || err.Error() != busy.Message || calls != 1 {
		t.Errorf("retryBusy(wait 0, busy) = %v after %d calls; want %q after 1", err, calls, busy.Message)
	}

	// Busy past the wait: the daemon's message and how long it was retried.
	calls = 0
	_, err = retryBusy(context.Background(), 20*time.Millisecond, func() (int, error) { calls++; return 0, busy })
	if err == nil || !strings.Contains(err.Error(), busy.Message) || !strings.Contains(err.Error(), "retried for 20ms") || calls < 2 {
		t.Errorf("retryBusy(wait 20ms, always busy) = %v after %d calls; want the message, \"retried for 20ms\", at least 2 calls", err, calls)
	}
}

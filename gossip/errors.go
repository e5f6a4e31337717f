package gossip

import (
	"errors"
	"fmt"
)

// The kinds of error the Cluster's methods return. Every error a caller may
// want to tell apart wraps exactly one of them, so that errors.Is answers
// "why" without reading the message: a control API answers 503 for
// ErrBusy, ErrNotMember and ErrShutdown (the same request may succeed
// later, or on the next daemon), 413 for ErrTooLarge, 400 for ErrInvalid,
// 404 for ErrNoSuchMember and 409 for ErrMemberAlive.
var (
	// ErrBusy: a UserEvent or Query refused because Config.Backlog messages
	// of its kind already wait to be gossiped. Nothing was sent, and the
	// same call may succeed shortly.
	ErrBusy = errors.New("gossip is busy; try again shortly")
	// ErrNotMember: refused because this node is leaving the cluster or
	// has left it: what it sent now would never be gossiped. A restarted
	// daemon accepts it.
	ErrNotMember = errors.New("this node is leaving or has left the cluster")
	// ErrShutdown: the Cluster is shut down (or shut down during the call).
	ErrShutdown = errors.New("cluster is shut down")
	// ErrTooLarge: a message or the tags are over their size limit; the
	// error names the size and the limit. The same call always fails.
	ErrTooLarge = errors.New("over the size limit")
	// ErrInvalid: an argument is wrong (a negative timeout, a filter that
	// does not compile, a leave already running). The same call always
	// fails.
	ErrInvalid = errors.New("invalid request")
	// ErrNoSuchMember: the named member is not known.
	ErrNoSuchMember = errors.New("no such member")
	// ErrMemberAlive: the named member is alive, and the operation needs
	// one that failed.
	ErrMemberAlive = errors.New("member is alive")
)

// kindError is an error of one of the kinds above whose message already
// says what happened, without the kind's own text appended.
type kindError struct {
	kind error
	err  error // the message, and what it wraps with %w
}

func (e *kindError) Error() string   { return e.err.Error() }
func (e *kindError) Unwrap() []error { return []error{e.kind, e.err} }

// errorf is an error of kind with the formatted message; %w in format
// wraps a cause as well.
func errorf(kind error, format string, args ...any) error {
	return &kindError{kind: kind, err: fmt.Errorf(format, args...)}
}

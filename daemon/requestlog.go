package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
)

// The record of a mutating control request names the request, what it is
// about and who sent it, so that it reads on its own in the journal:
// "control: event memresponse from uid 0 pid 1234". What it is about is in
// the body, which the route's handler reads: a route marked named says so
// with noteRequest once it has read it, and the record is written then
// (before the request acts); for any other route it is written before the
// handler runs, and for a named one whose body did not decode, when the
// handler returns.

// requestNote writes one request's record, once.
type requestNote struct {
	once  sync.Once
	write func(subject string)
}

type requestNoteKey struct{}

// logRequest arranges for the record of a mutating request from peer p
// and returns r carrying it; the caller calls noteRequest(r, "") when the
// handler has returned.
func (cs *controlServer) logRequest(r *http.Request, rt route, p peerCred) *http.Request {
	level := slog.LevelInfo
	if rt.perEvent {
		level = slog.LevelDebug
	}
	ctx := r.Context()
	method, path := r.Method, r.URL.Path
	n := &requestNote{write: func(subject string) {
		cs.log.Log(ctx, level, requestMessage(rt.path, subject, p), "METHOD", method, "PATH", path,
			"PEER_UID", p.uid, "PEER_PID", p.pid)
	}}
	r = r.WithContext(context.WithValue(ctx, requestNoteKey{}, n))
	if !rt.named {
		noteRequest(r, "")
	}
	return r
}

// noteRequest writes the record of the request r, naming what it is about
// (subject, "" if nothing), unless it is written already or r is not
// logged.
func noteRequest(r *http.Request, subject string) {
	if n, ok := r.Context().Value(requestNoteKey{}).(*requestNote); ok {
		n.once.Do(func() { n.write(subject) })
	}
}

// requestMessage is the message of a request's record: "control: VERB
// [SUBJECT] from uid U pid P", the verb being the route's last element
// (event, join, force-leave, ...).
func requestMessage(path, subject string, p peerCred) string {
	what := strings.TrimPrefix(path, "/v1/")
	if subject != "" {
		what += " " + subject
	}
	return fmt.Sprintf("control: %s from uid %d pid %d", what, p.uid, p.pid)
}

// refusalMessage is the message of the record of a mutating request
// refused to peer p.
func refusalMessage(path string, p peerCred, err error) string {
	return fmt.Sprintf("control: %s refused to uid %d pid %d: %v", strings.TrimPrefix(path, "/v1/"), p.uid, p.pid, err)
}

// tagsSubject names a tags request: "set role=web zone=b, delete dc".
func tagsSubject(set map[string]string, del []string) string {
	var parts []string
	if len(set) > 0 {
		parts = append(parts, "set "+tagList(set))
	}
	if len(del) > 0 {
		parts = append(parts, "delete "+strings.Join(del, " "))
	}
	return strings.Join(parts, ", ")
}

// tagList is tags for a log message: "role=web zone=b", sorted by name.
func tagList(tags map[string]string) string {
	kv := make([]string, 0, len(tags))
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		kv = append(kv, k+"="+tags[k])
	}
	return strings.Join(kv, " ")
}

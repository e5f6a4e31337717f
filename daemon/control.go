package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/activation"

	"github.com/serfd/serfd/ctl"
)

// apiError is an error with the HTTP status it should be answered with.
type apiError struct {
	status int
	err    error
	// retryAfter, if set, is sent as Retry-After: the same request may
	// succeed after it.
	retryAfter time.Duration
}

func (e *apiError) Error() string { return e.err.Error() }

func (e *apiError) Unwrap() error { return e.err }

func badRequest(format string, args ...any) error {
	return &apiError{status: http.StatusBadRequest, err: fmt.Errorf(format, args...)}
}

// route is one entry of the control API. mutating routes may be used only
// by root and members of the admin group, and are logged with the peer's
// credentials; the others by any peer that can connect to the socket.
type route struct {
	method   string
	path     string
	mutating bool
	// perEvent routes (event, query) are logged at debug level: each
	// event already gets its own record on every node, and one more per
	// request would double the journal's load under a stream of events.
	perEvent bool
	// named routes say what a request is about (noteRequest) once they
	// have read its body; the request's record is written then.
	named  bool
	handle func(w http.ResponseWriter, r *http.Request) (any, error)
}

// controlServer serves the control API on a Unix listener. It owns the
// listener; Shutdown waits for in-flight requests.
type controlServer struct {
	log *slog.Logger
	srv *http.Server
	// endRequests cancels the context of every request, ending streams
	// (monitor, query) at shutdown.
	endRequests context.CancelFunc
	// served is closed when serve returned: every connection its
	// listener's Accept handed over is then known to the http.Server.
	served chan struct{}
	// listener is what serve accepts on, closed first at shutdown.
	listener net.Listener
	// fresh holds the connections whose first request has not reached a
	// handler yet (and that are not idle or closed either); freshGone is
	// signalled when one leaves it.
	fresh     map[net.Conn]bool
	freshGone chan struct{}
	stopping  bool // shutdown began: the listener is closed or about to be

	mu         sync.Mutex
	adminGroup string
	adminGID   int // -1: the group does not exist; only root may mutate
}

type peerKey struct{}

// connKey is the request context's key of its connection.
type connKey struct{}

// peerCred is what SO_PEERCRED says of the process at the other end.
type peerCred struct {
	uid, gid uint32
	pid      int32
	ok       bool
}

// newControlServer serves routes; wrap, if not nil, wraps the whole mux
// (metrics count each request).
func newControlServer(log *slog.Logger, routes []route, adminGroup string, adminGID int, wrap func(http.Handler) http.Handler) *controlServer {
	mux := http.NewServeMux()
	cs := &controlServer{log: log, adminGroup: adminGroup, adminGID: adminGID, served: make(chan struct{}),
		fresh: map[net.Conn]bool{}, freshGone: make(chan struct{}, 1)}
	base, cancel := context.WithCancel(context.Background())
	cs.endRequests = cancel
	for _, rt := range routes {
		mux.HandleFunc(rt.method+" "+rt.path, cs.wrap(rt))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Errorf("no such endpoint: %s %s", r.Method, r.URL.Path))
	})
	var h http.Handler = mux
	if wrap != nil {
		h = wrap(mux)
	}
	cs.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if c, ok := r.Context().Value(connKey{}).(net.Conn); ok {
				cs.leaveFresh(c)
			}
			h.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      2 * time.Minute,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return base },
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(context.WithValue(ctx, peerKey{}, credOf(c)), connKey{}, c)
		},
		ConnState: cs.connState,
	}
	return cs
}

func (cs *controlServer) wrap(rt route) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, ctl.MaxRequestBody)
		if rt.mutating {
			p, _ := r.Context().Value(peerKey{}).(peerCred)
			if err := cs.mayMutate(p, rt.path); err != nil {
				cs.log.Warn(refusalMessage(rt.path, p, err), "METHOD", r.Method, "PATH", r.URL.Path,
					"PEER_UID", p.uid, "PEER_PID", p.pid, "ERROR", err)
				writeError(w, http.StatusForbidden, err)
				return
			}
			r = cs.logRequest(r, rt, p)
			defer noteRequest(r, "") // a body that did not decode names nothing
		}
		out, err := rt.handle(w, r)
		if err != nil {
			status := http.StatusInternalServerError
			var ae *apiError
			var mbe *http.MaxBytesError
			switch {
			case errors.As(err, &ae):
				status = ae.status
				if ae.retryAfter > 0 {
					w.Header().Set("Retry-After", strconv.Itoa(int(ae.retryAfter.Seconds())))
				}
			case errors.As(err, &mbe):
				status = http.StatusRequestEntityTooLarge
			}
			writeError(w, status, err)
			return
		}
		if out == nil {
			return // streamed
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	}
}

func writeError(w http.ResponseWriter, status int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	out := ctl.ErrorResponse{Error: err.Error()}
	var ce *ConfigError
	if errors.As(err, &ce) {
		out.Problems = ce.Problems
	}
	_ = json.NewEncoder(w).Encode(out)
}

// setAdmin changes the admin group (on reload).
func (cs *controlServer) setAdmin(group string, gid int) {
	cs.mu.Lock()
	cs.adminGroup, cs.adminGID = group, gid
	cs.mu.Unlock()
}

// mayMutate says why the peer may not use a mutating route, or nil.
func (cs *controlServer) mayMutate(p peerCred, path string) error {
	cs.mu.Lock()
	group, gid := cs.adminGroup, cs.adminGID
	cs.mu.Unlock()
	if p.ok && (p.uid == 0 || (gid >= 0 && inGroup(p, uint32(gid)))) {
		return nil
	}
	what := "serfctl " + strings.TrimPrefix(path, "/v1/")
	if !strings.HasPrefix(path, "/v1/") {
		what = path // not a serfctl command: the profiles
	}
	if gid < 0 {
		return fmt.Errorf("%s needs root or membership of group %s (no group %s exists on this host, so only root may)", what, group, group)
	}
	return fmt.Errorf("%s needs root or membership of group %s", what, group)
}

// inGroup reports whether the peer's primary or supplementary groups hold
// gid. Supplementary groups come from /proc/PID/status of the peer.
func inGroup(p peerCred, gid uint32) bool {
	if p.gid == gid {
		return true
	}
	groups, err := procGroups(p.pid)
	if err != nil {
		return false
	}
	return slices.Contains(groups, gid)
}

// procGroups reads the "Groups:" line of /proc/PID/status.
func procGroups(pid int32) ([]uint32, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, fmt.Errorf("read groups of pid %d: %w", pid, err)
	}
	for line := range strings.Lines(string(data)) {
		rest, ok := strings.CutPrefix(line, "Groups:")
		if !ok {
			continue
		}
		var out []uint32
		for _, f := range strings.Fields(rest) {
			g, err := strconv.ParseUint(f, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("read groups of pid %d: %q is not a gid", pid, f)
			}
			out = append(out, uint32(g))
		}
		return out, nil
	}
	return nil, fmt.Errorf("read groups of pid %d: no Groups line", pid)
}

// decode reads a JSON body into v, rejecting unknown fields and trailing data.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		if errors.Is(err, io.EOF) {
			return badRequest("request body is empty; want a JSON object")
		}
		return badRequest("decode request body: %v", err)
	}
	if dec.More() {
		return badRequest("request body holds more than one JSON value")
	}
	return nil
}

func (cs *controlServer) serve(l net.Listener) error {
	defer close(cs.served)
	ll := newLimitListener(l)
	cs.mu.Lock()
	cs.listener = ll
	cs.mu.Unlock()
	// After Shutdown, Serve returns ErrServerClosed at once.
	err := cs.srv.Serve(ll)
	cs.mu.Lock()
	stopping := cs.stopping
	cs.mu.Unlock()
	if errors.Is(err, http.ErrServerClosed) || (stopping && errors.Is(err, net.ErrClosed)) {
		return nil
	}
	return err
}

// connState keeps the set of fresh connections: a new one joins it, and
// one that is idle, closed or hijacked leaves it. An active one stays
// until its request reaches the handler (leaveFresh): net/http marks a
// connection active once it read the request, and drops the request
// unanswered if the server is shutting down by the time it looks next.
func (cs *controlServer) connState(c net.Conn, st http.ConnState) {
	switch st {
	case http.StateNew:
		cs.mu.Lock()
		cs.fresh[c] = true
		cs.mu.Unlock()
	case http.StateIdle, http.StateClosed, http.StateHijacked:
		cs.leaveFresh(c)
	}
}

// leaveFresh takes c out of the fresh connections.
func (cs *controlServer) leaveFresh(c net.Conn) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.fresh[c] {
		delete(cs.fresh, c)
		select {
		case cs.freshGone <- struct{}{}:
		default:
		}
	}
}

// shutdown stops accepting connections, ends streams and waits for the
// requests in flight until ctx is done.
//
// net/http drops a request it reads after Shutdown began, without an
// answer. During a restart clients connect right up to the stop, so the
// listener is closed first, and Shutdown waits until the request of every
// connection accepted by then has reached its handler (those are
// answered); a connection that sends nothing is held at most until ctx is
// done (and ReadHeaderTimeout ends it anyway).
func (cs *controlServer) shutdown(ctx context.Context) error {
	defer cs.endRequests()
	cs.mu.Lock()
	cs.stopping = true
	l := cs.listener
	cs.mu.Unlock()
	if l != nil {
		_ = l.Close()
		select {
		case <-cs.served: // every connection Accept returned is known now
		case <-ctx.Done():
		}
	}
	for {
		cs.mu.Lock()
		n := len(cs.fresh)
		cs.mu.Unlock()
		if n == 0 {
			break
		}
		select {
		case <-cs.freshGone:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	done := make(chan error, 1)
	go func() { done <- cs.srv.Shutdown(ctx) }()
	cs.endRequests()
	return <-done
}

func credOf(c net.Conn) peerCred {
	if lc, ok := c.(*limitedConn); ok {
		return lc.cred
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return peerCred{}
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return peerCred{}
	}
	var cred *syscall.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil || cerr != nil {
		return peerCred{}
	}
	return peerCred{uid: cred.Uid, gid: cred.Gid, pid: cred.Pid, ok: true}
}

// controlListener returns the socket handed over by systemd, or creates one
// at path with mode 0660. An existing file at path is removed only when a
// connect to it fails, so a running serfd is never robbed of its socket.
func controlListener(path string) (net.Listener, bool, error) {
	ls, err := activation.Listeners()
	if err != nil {
		return nil, false, fmt.Errorf("take sockets from systemd: %w", err)
	}
	for i, l := range ls {
		if l == nil {
			continue
		}
		if _, ok := l.(*net.UnixListener); !ok {
			return nil, false, fmt.Errorf("socket %d from systemd is %s, not a Unix stream socket", i, l.Addr().Network())
		}
		for _, extra := range ls[i+1:] {
			if extra != nil {
				extra.Close()
			}
		}
		return l, true, nil
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			return nil, false, fmt.Errorf("create control socket %s: a file that is not a socket is in the way", path)
		}
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			return nil, false, fmt.Errorf("create control socket %s: another serfd is serving it", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, false, fmt.Errorf("remove stale control socket %s: %w", path, err)
		}
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, false, fmt.Errorf("create control socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		l.Close()
		return nil, false, fmt.Errorf("chmod control socket %s: %w", path, err)
	}
	return l, false, nil
}

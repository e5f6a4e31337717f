package daemon

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/serfd/serfd/ctl"
	"github.com/serfd/serfd/gossip"
)

// routes is the control API's one route table. Each handler decodes, calls
// one method of a leaf, and returns what to encode; a streaming handler
// writes its own response and returns nil, nil.
func (d *daemon) routes() []route {
	return []route{
		{method: http.MethodGet, path: ctl.PathMembers, handle: d.members},
		{method: http.MethodPost, path: ctl.PathJoin, mutating: true, named: true, handle: d.join},
		{method: http.MethodPost, path: ctl.PathLeave, mutating: true, handle: d.leave},
		{method: http.MethodPost, path: ctl.PathEvent, mutating: true, perEvent: true, named: true, handle: d.event},
		{method: http.MethodPost, path: ctl.PathQuery, mutating: true, perEvent: true, named: true, handle: d.query},
		{method: http.MethodPost, path: ctl.PathTags, mutating: true, named: true, handle: d.tags},
		{method: http.MethodPost, path: ctl.PathForceLeave, mutating: true, named: true, handle: d.forceLeave},
		{method: http.MethodPost, path: ctl.PathKeys, mutating: true, named: true, handle: d.keys},
		{method: http.MethodGet, path: ctl.PathRTT, handle: d.rtt},
		{method: http.MethodGet, path: ctl.PathMonitor, handle: d.monitor},
		{method: http.MethodGet, path: ctl.PathInfo, handle: d.info},
		{method: http.MethodGet, path: ctl.PathMetrics, handle: d.serveMetrics},
		{method: http.MethodPost, path: ctl.PathReload, mutating: true, handle: d.reloadRoute},
		// Not mutating, but admin-only like the mutating routes.
		{method: http.MethodGet, path: ctl.PathPprof, mutating: true, handle: servePprof},
	}
}

// servePprof serves net/http/pprof's pages under ctl.PathPprof.
func servePprof(w http.ResponseWriter, r *http.Request) (any, error) {
	switch name := strings.TrimPrefix(r.URL.Path, ctl.PathPprof); name {
	case "":
		pprof.Index(w, r)
	case "cmdline":
		pprof.Cmdline(w, r)
	case "profile":
		pprof.Profile(w, r)
	case "symbol":
		pprof.Symbol(w, r)
	case "trace":
		pprof.Trace(w, r)
	default:
		pprof.Handler(name).ServeHTTP(w, r)
	}
	return nil, nil // written
}

func (d *daemon) members(_ http.ResponseWriter, _ *http.Request) (any, error) {
	ms := d.cluster.Members()
	out := ctl.MembersResponse{Members: make([]ctl.Member, 0, len(ms))}
	for _, m := range ms {
		out.Members = append(out.Members, apiMember(m))
	}
	return out, nil
}

func apiMember(m gossip.Member) ctl.Member {
	proto := map[string]uint8{"min": m.DelegateMin, "max": m.DelegateMax, "version": m.DelegateCur}
	tags := m.Tags
	if tags == nil {
		tags = map[string]string{}
	}
	return ctl.Member{Name: m.Name, Addr: m.Addr.String(), Port: m.Port, Tags: tags, Status: m.Status.String(), Protocol: proto}
}

func (d *daemon) join(_ http.ResponseWriter, r *http.Request) (any, error) {
	var req ctl.JoinRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	noteRequest(r, strings.Join(req.Addrs, " "))
	if len(req.Addrs) == 0 {
		return nil, badRequest("join: no address given")
	}
	for _, a := range req.Addrs {
		if err := checkJoinAddr(a); err != nil {
			return nil, badRequest("%v", err)
		}
	}
	n, err := d.joinEntries(r.Context(), req.Addrs, !req.Replay)
	if n == 0 {
		// No address answered: the peers' fault, unless gossip says why.
		return nil, gossipError(fmt.Errorf("join %v: %w", req.Addrs, err), http.StatusBadGateway)
	}
	return ctl.JoinResponse{Joined: n}, nil
}

func (d *daemon) leave(_ http.ResponseWriter, r *http.Request) (any, error) {
	var req struct{}
	if err := decode(r, &req); err != nil { // a garbage body is no request to leave
		return nil, err
	}
	if err := d.leaveCluster(); err != nil {
		return nil, fmt.Errorf("leave: %w", err)
	}
	d.requestStop()
	return ctl.LeaveResponse{Left: true}, nil
}

func (d *daemon) event(_ http.ResponseWriter, r *http.Request) (any, error) {
	var req ctl.EventRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	noteRequest(r, req.Name)
	if req.Name == "" {
		return nil, badRequest("the event name is empty")
	}
	if err := d.cluster.UserEvent(req.Name, req.Payload, req.Coalesce); err != nil {
		return nil, gossipError(err, http.StatusInternalServerError)
	}
	return ctl.EventResponse{Sent: true}, nil
}

// busyRetryAfter is the Retry-After of a request refused because gossip is
// busy: about the time a gossip queue takes to drain a little.
const busyRetryAfter = time.Second

// gossipError is the API error of a call into gossip that failed, by the
// kind of error gossip returned: 503 with Retry-After when gossip was busy
// (the backlog is full: the same request may succeed shortly) or this node
// is leaving or stopping (as during a restart: the next daemon accepts
// it); 413 for a message or tags over their limit; 400 for a request that
// is wrong in itself; 404 for an unknown member, 409 for one that is alive
// where a failed one is needed; otherwise fallback.
func gossipError(err error, fallback int) error {
	status, retry := fallback, time.Duration(0)
	switch {
	case errors.Is(err, gossip.ErrBusy), errors.Is(err, gossip.ErrNotMember), errors.Is(err, gossip.ErrShutdown):
		status, retry = http.StatusServiceUnavailable, busyRetryAfter
	case errors.Is(err, gossip.ErrTooLarge):
		status = http.StatusRequestEntityTooLarge
	case errors.Is(err, gossip.ErrInvalid):
		status = http.StatusBadRequest
	case errors.Is(err, gossip.ErrNoSuchMember):
		status = http.StatusNotFound
	case errors.Is(err, gossip.ErrMemberAlive):
		status = http.StatusConflict
	}
	return &apiError{status: status, err: err, retryAfter: retry}
}

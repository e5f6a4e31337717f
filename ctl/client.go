package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"os"
	"os/user"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

// Client talks to serfd over its Unix socket.
type Client struct {
	socket string
	hc     *http.Client
}

// NewClient returns a client for the daemon listening on socket.
func NewClient(socket string) *Client {
	d := net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", socket)
		},
		DisableCompression: true,
		MaxIdleConns:       1,
	}
	return &Client{socket: socket, hc: &http.Client{Transport: tr}}
}

// SocketFromEnv returns $SERFD_SOCKET, or DefaultSocket when it is unset.
func SocketFromEnv() string {
	if s := os.Getenv(SocketEnv); s != "" {
		return s
	}
	return DefaultSocket
}

// Socket is the path of the control socket the client talks to.
func (c *Client) Socket() string { return c.socket }

// Members lists every known member.
func (c *Client) Members(ctx context.Context) (MembersResponse, error) {
	var out MembersResponse
	err := c.do(ctx, http.MethodGet, PathMembers, nil, &out)
	return out, err
}

// Join asks the daemon to join the cluster through addrs.
func (c *Client) Join(ctx context.Context, req JoinRequest) (JoinResponse, error) {
	var out JoinResponse
	err := c.do(ctx, http.MethodPost, PathJoin, req, &out)
	return out, err
}

// Leave asks the daemon to leave the cluster gracefully.
func (c *Client) Leave(ctx context.Context) (LeaveResponse, error) {
	var out LeaveResponse
	err := c.do(ctx, http.MethodPost, PathLeave, struct{}{}, &out)
	return out, err
}

// Event broadcasts a user event.
func (c *Client) Event(ctx context.Context, req EventRequest) (EventResponse, error) {
	var out EventResponse
	err := c.do(ctx, http.MethodPost, PathEvent, req, &out)
	return out, err
}

// Query sends a query and calls fn with each record of the stream as it
// arrives, until the "done" record or an error.
func (c *Client) Query(ctx context.Context, req QueryRequest, fn func(QueryRecord) error) error {
	resp, err := c.send(ctx, http.MethodPost, PathQuery, req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var rec QueryRecord
		if err := dec.Decode(&rec); err != nil {
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("query stream from %s ended before it was done", c.socket)
			}
			return fmt.Errorf("read query stream from %s: %w", c.socket, err)
		}
		if err := fn(rec); err != nil {
			return err
		}
		if rec.Type == QueryDone {
			return nil
		}
	}
}

// Tags deletes then sets tags of the local node.
func (c *Client) Tags(ctx context.Context, req TagsRequest) (TagsResponse, error) {
	var out TagsResponse
	err := c.do(ctx, http.MethodPost, PathTags, req, &out)
	return out, err
}

// ForceLeave makes a failed node leave (and with Prune, forgets it).
func (c *Client) ForceLeave(ctx context.Context, req ForceLeaveRequest) (ForceLeaveResponse, error) {
	var out ForceLeaveResponse
	err := c.do(ctx, http.MethodPost, PathForceLeave, req, &out)
	return out, err
}

// Keys runs a cluster-wide key operation.
func (c *Client) Keys(ctx context.Context, req KeysRequest) (KeysResponse, error) {
	var out KeysResponse
	err := c.do(ctx, http.MethodPost, PathKeys, req, &out)
	return out, err
}

// RTT estimates the round trip time between nodes a and b ("" = local).
func (c *Client) RTT(ctx context.Context, a, b string) (RTTResponse, error) {
	var out RTTResponse
	q := url.Values{"a": {a}}
	if b != "" {
		q.Set("b", b)
	}
	err := c.do(ctx, http.MethodGet, PathRTT+"?"+q.Encode(), nil, &out)
	return out, err
}

// Monitor streams the daemon's log records at level or above ("" = info)
// to fn until ctx ends, fn fails or the daemon stops.
func (c *Client) Monitor(ctx context.Context, level string, fn func(LogRecord) error) error {
	return c.MonitorStarted(ctx, level, nil, fn)
}

// MonitorStarted is Monitor that also calls started (unless nil) once the
// daemon has accepted the stream, before the first record: a quiet
// stream is up all the same.
func (c *Client) MonitorStarted(ctx context.Context, level string, started func(), fn func(LogRecord) error) error {
	path := PathMonitor
	if level != "" {
		path += "?" + url.Values{"level": {level}}.Encode()
	}
	resp, err := c.send(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if started != nil {
		started()
	}
	dec := json.NewDecoder(resp.Body)
	for {
		var rec LogRecord
		if err := dec.Decode(&rec); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("log stream from %s ended (serfd stopped)", c.socket)
			}
			return fmt.Errorf("read log stream from %s: %w", c.socket, err)
		}
		if err := fn(rec); err != nil {
			return err
		}
	}
}

// Info reports the daemon's state: members, handlers, queues, versions.
func (c *Client) Info(ctx context.Context) (InfoResponse, error) {
	var out InfoResponse
	err := c.do(ctx, http.MethodGet, PathInfo, nil, &out)
	return out, err
}

// Reload makes the daemon re-read its configuration. A configuration that
// does not load is an *Error with status 400 and every problem in Problems.
func (c *Client) Reload(ctx context.Context) (ReloadResponse, error) {
	var out ReloadResponse
	err := c.do(ctx, http.MethodPost, PathReload, struct{}{}, &out)
	return out, err
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	resp, err := c.send(ctx, method, path, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("read response from %s: %w", c.socket, err)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode response from %s: %w", c.socket, err)
	}
	return nil
}

// send makes a request and returns the response when its status is 2xx;
// otherwise the daemon's error as an *Error.
func (c *Client) send(ctx context.Context, method, path string, in any) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("encode %s request: %w", path, err)
		}
		body = bytes.NewReader(b)
	}
	// Whether a connection was made and whether serfd answered a byte
	// tell "closed without an answer" from the errors of a dial, whatever
	// net/http calls it (EOF, reset, "server closed idle connection").
	var connected, answered atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn:              func(httptrace.GotConnInfo) { connected.Store(true) },
		GotFirstResponseByte: func() { answered.Store(true) },
	})
	req, err := http.NewRequestWithContext(ctx, method, "http://serfd"+path, body)
	if err != nil {
		return nil, fmt.Errorf("build %s request: %w", path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, c.connError(err, connected.Load() && !answered.Load())
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		var e ErrorResponse
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = fmt.Sprintf("serfd answered %s", resp.Status)
		}
		ce := &Error{Status: resp.StatusCode, Message: e.Error, Problems: e.Problems}
		if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
			ce.RetryAfter = time.Duration(secs) * time.Second
		}
		return nil, ce
	}
	return resp, nil
}

// How to find out why serfd is not answering; connError's messages end
// with it.
const whyHint = "see why with `systemctl status serfd`, `journalctl -u serfd` and `serfd -check`"

// connError turns a failure to reach the socket, or a connection closed
// without an answer (dropped), into a message that says what to do about it.
func (c *Client) connError(err error, dropped bool) error {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("serfd did not answer on %s in time: it may be starting, restarting or stuck; %s", c.socket, whyHint)
	case dropped:
		// The socket accepted the connection but nothing answered: the
		// service it starts failed, or serfd died while serving it.
		return fmt.Errorf("serfd closed the connection on %s without an answer: the service could not start or stopped; %s", c.socket, whyHint)
	case errors.Is(err, syscall.ENOENT):
		// serfd.socket is stopped: serfd was taken out on purpose
		// (systemctl stop serfd, serfctl leave) or never started.
		return fmt.Errorf("serfd is not running (no socket at %s): start it with `systemctl start serfd`", c.socket)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("serfd is not running (%s refuses connections): start it with `systemctl start serfd`; if it does not start, %s", c.socket, whyHint)
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return fmt.Errorf("permission denied on %s: %s", c.socket, accessHint(c.socket))
	}
	return fmt.Errorf("talk to serfd at %s: %w", c.socket, err)
}

// accessHint names the group whose members may use the socket.
func accessHint(socket string) string {
	fi, err := os.Stat(socket)
	if err != nil {
		return "run as root or as a member of the socket's group"
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "run as root or as a member of the socket's group"
	}
	group := strconv.FormatUint(uint64(st.Gid), 10)
	if g, err := user.LookupGroupId(group); err == nil {
		group = g.Name
	}
	return fmt.Sprintf("the socket belongs to group %q; join it (usermod -aG %s $USER, then log in again) or run as root", group, group)
}

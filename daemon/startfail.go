package daemon

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/activation"

	"github.com/serfd/serfd/ctl"
)

// When serfd was started by serfd.socket and cannot start (a bad
// configuration, a gossip address it cannot bind), the client whose
// connection started it is waiting in the socket's backlog. Left there, it
// would make systemd start serfd again at once, and again, until the
// socket unit gives up and fails; the client would read "connection reset
// by peer". Instead serfd answers every client already waiting with the
// reason, then exits: the socket goes back to listening, one start per
// client call, and the client prints what is wrong.
const (
	// startFailWait is how long an answering serfd waits for one more
	// client after the last one.
	startFailWait = 200 * time.Millisecond
	// startFailIO bounds reading one request and writing its answer.
	startFailIO = time.Second
	// startFailMax bounds the clients answered by one start.
	startFailMax = 256
)

// answerActivatedStartFailure answers the clients waiting on the sockets
// systemd passed (if any) with cause, for a serfd that failed before it
// took its control socket.
func answerActivatedStartFailure(cause error) {
	ls, err := activation.Listeners()
	if err != nil {
		return
	}
	for _, l := range ls {
		if l == nil {
			continue
		}
		answerStartFailure(l, cause)
		l.Close()
	}
}

// answerStartFailure answers each client that connects to l until none has
// for startFailWait, with 503 and cause in the control API's error shape.
func answerStartFailure(l net.Listener, cause error) {
	dl, ok := l.(interface{ SetDeadline(time.Time) error })
	if !ok {
		return
	}
	body := startFailureBody(cause)
	for range startFailMax {
		if err := dl.SetDeadline(time.Now().Add(startFailWait)); err != nil {
			return
		}
		c, err := l.Accept()
		if err != nil {
			return // the deadline: nobody else is waiting
		}
		answerOne(c, body)
	}
}

func answerOne(c net.Conn, body []byte) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(startFailIO))
	req, err := http.ReadRequest(bufio.NewReader(c))
	if err != nil {
		return
	}
	// Read the body too: a Unix socket closed with unread data resets
	// the connection, and the client would not see the answer.
	_, _ = io.Copy(io.Discard, io.LimitReader(req.Body, 1<<20))
	resp := &http.Response{
		StatusCode:    http.StatusServiceUnavailable,
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{"Content-Type": {"application/json"}},
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		Close:         true,
	}
	_ = resp.Write(c)
}

// startFailureBody is the answer: what failed and what to do.
func startFailureBody(cause error) []byte {
	out := ctl.ErrorResponse{}
	var ce *ConfigError
	if errors.As(cause, &ce) {
		out.Error = "serfd could not start: its configuration is invalid; fix it (`serfd -check` re-checks it), then `systemctl start serfd`"
		out.Problems = ce.Problems
	} else {
		out.Error = fmt.Sprintf("serfd could not start: %v; see `journalctl -u serfd`", cause)
	}
	b, _ := json.Marshal(out)
	return append(b, '\n')
}

// startFailed answers the clients waiting on an activated control socket
// with err, and returns err.
func (d *daemon) startFailed(l net.Listener, err error) error {
	if d.activated {
		answerStartFailure(l, err)
	}
	return err
}

// advertiseProblem turns memberlist's "no private IP address found" (bind
// on 0.0.0.0 on a host with public addresses only) into a configuration
// error that names the advertise key and the addresses found, so that
// serfd exits 78 with the fix instead of being restarted to fail again.
// Other errors pass unchanged.
func advertiseProblem(err error, addrs []net.Addr) error {
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), "no private ip address found") {
		return err
	}
	var found []string
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.IsGlobalUnicast() {
			found = append(found, ipn.IP.String())
		}
	}
	hint := "none"
	if len(found) > 0 {
		hint = strings.Join(found, ", ")
	}
	return &ConfigError{Problems: []string{fmt.Sprintf(
		"gossip cannot choose an address to advertise: this host has no private address (%v); "+
			"set advertise = \"IP\" (or bind to one address) in the configuration; addresses on this host: %s", err, hint)}}
}

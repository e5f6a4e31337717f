package daemon

import (
	"encoding/json"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/serfd/serfd/ctl"
)

// Control connections are bounded, per user and in all, so that no local
// user can exhaust the daemon's memory or descriptors, nor lock others out
// by holding connections open (each is also cut by the server's header,
// read and idle deadlines). root is bounded only by the total.
const (
	maxControlConns        = 512
	maxControlConnsPerUser = 64
)

// limitListener accepts at most maxControlConns connections at once, and
// maxControlConnsPerUser of one non-root user; a connection past a limit
// is answered 503 with the limit and closed at once, never queued.
type limitListener struct {
	net.Listener
	max, maxPerUser int

	mu     sync.Mutex
	total  int
	byUser map[uint32]int
}

func newLimitListener(l net.Listener) *limitListener {
	return &limitListener{Listener: l, max: maxControlConns, maxPerUser: maxControlConnsPerUser, byUser: map[uint32]int{}}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		cred := credOf(c)
		if problem := l.take(cred); problem != "" {
			go refuseConn(c, problem)
			continue
		}
		return &limitedConn{Conn: c, cred: cred, l: l}, nil
	}
}

// take counts a new connection of cred, or says which limit it is past.
func (l *limitListener) take(cred peerCred) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total >= l.max {
		return fmt.Sprintf("%d control connections are open, the limit is %d", l.total, l.max)
	}
	if cred.ok && cred.uid != 0 && l.byUser[cred.uid] >= l.maxPerUser {
		return fmt.Sprintf("uid %d holds %d control connections, the limit is %d", cred.uid, l.byUser[cred.uid], l.maxPerUser)
	}
	l.total++
	l.byUser[cred.uid]++
	return ""
}

func (l *limitListener) release(cred peerCred) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.byUser[cred.uid]--; l.byUser[cred.uid] <= 0 {
		delete(l.byUser, cred.uid)
	}
}

// limitedConn gives its place back when closed, once.
type limitedConn struct {
	net.Conn
	cred peerCred
	l    *limitListener
	once sync.Once
}

func (c *limitedConn) Close() error {
	c.once.Do(func() { c.l.release(c.cred) })
	return c.Conn.Close()
}

// refuseConn answers a connection past a limit with 503 and closes it.
func refuseConn(c net.Conn, problem string) {
	defer c.Close()
	body, _ := json.Marshal(ctl.ErrorResponse{Error: problem + "; try again shortly"}) // plain data: cannot fail
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	fmt.Fprintf(c, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"+
		"Connection: close\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}

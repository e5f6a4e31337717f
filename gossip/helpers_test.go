package gossip

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/serfd/serfd/internal/testutil"
)

// testLogger is a debug-level logger for node name, printed if the test fails.
func testLogger(t *testing.T, name string) *slog.Logger {
	return testutil.Logger(t, name, slog.LevelDebug)
}

// recorder collects events delivered to OnEvent.
type recorder struct {
	mu     sync.Mutex
	events []Event
}

func (r *recorder) OnEvent(ev Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
}

func (r *recorder) all() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}

// users returns the user events named name.
func (r *recorder) users(name string) []Event {
	var out []Event
	for _, ev := range r.all() {
		if ev.Type == EventUser && ev.Name == name {
			out = append(out, ev)
		}
	}
	return out
}

// memberEvent reports whether an event of type typ about member was seen.
func (r *recorder) memberEvent(typ EventType, member string) bool {
	for _, ev := range r.all() {
		if ev.Type != typ {
			continue
		}
		for _, m := range ev.Members {
			if m.Name == member {
				return true
			}
		}
	}
	return false
}

// testTiming shortens Serf's fixed delays for tests.
func testTiming() timing {
	tm := defaultTiming()
	tm.broadcastTimeout = 2 * time.Second
	tm.propagateDelay = 100 * time.Millisecond
	return tm
}

// node is a Cluster on a real memberlist bound to a loopback address.
type node struct {
	*Cluster
	rec  *recorder
	addr string // ip:port to join
}

// newNode starts a node named name on 127.0.0.<host> with a free port.
func newNode(t *testing.T, name string, host int, tags map[string]string) *node {
	t.Helper()
	return newNodeWith(t, name, host, tags, nil)
}

// newNodeTiming is newNode with the test timing changed by edit.
func newNodeTiming(t *testing.T, name string, host int, edit func(*timing)) *node {
	t.Helper()
	return newNodeWith(t, name, host, nil, edit)
}

func newNodeWith(t *testing.T, name string, host int, tags map[string]string, edit func(*timing)) *node {
	t.Helper()
	rec := &recorder{}
	tm := testTiming()
	if edit != nil {
		edit(&tm)
	}
	c, err := create(Config{
		NodeName: name,
		BindAddr: fmt.Sprintf("127.0.0.%d", host),
		Profile:  "local",
		Tags:     tags,
		OnEvent:  rec.OnEvent,
		Logger:   testLogger(t, name),
	}, tm)
	if err != nil {
		t.Fatalf("create(%s) error: %v", name, err)
	}
	t.Cleanup(func() { c.Shutdown() })
	self := c.LocalMember()
	return &node{Cluster: c, rec: rec, addr: net.JoinHostPort(self.Addr.String(), strconv.Itoa(int(self.Port)))}
}

// memberStatus returns how c sees member name, StatusNone if unknown.
func memberStatus(c *Cluster, name string) Status {
	for _, m := range c.Members() {
		if m.Name == name {
			return m.Status
		}
	}
	return StatusNone
}

// newBare builds a Cluster without memberlist or goroutines, for testing
// message handling directly. Delivered events wait in c.deliver.
func newBare(t *testing.T, name string) *Cluster {
	t.Helper()
	return newBareTagged(t, name, nil)
}

// newBareTagged is newBare for a node with tags.
func newBareTagged(t *testing.T, name string, tags map[string]string) *Cluster {
	t.Helper()
	cfg := Config{NodeName: name, Tags: tags, Logger: testLogger(t, name), OnEvent: func(Event) {}}
	if _, err := checkConfig(&cfg); err != nil {
		t.Fatal(err)
	}
	c, err := newCluster(cfg, defaultTiming(), 4)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// drain returns the events waiting in a bare cluster's delivery queue.
func drain(c *Cluster) []Event {
	var out []Event
	for {
		select {
		case ev := <-c.deliver:
			out = append(out, ev)
		default:
			return out
		}
	}
}

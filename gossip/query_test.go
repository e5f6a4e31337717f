package gossip

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/serfd/serfd/internal/testutil"
)

// newQueryNode starts a node on 127.0.0.<host> whose OnEvent records every
// event and answers the query "echo" with "<name>:<payload>". mut, if not
// nil, adjusts the Config first.
func newQueryNode(t *testing.T, name string, host int, tags map[string]string, mut func(*Config)) *node {
	t.Helper()
	rec := &recorder{}
	cfg := Config{
		NodeName: name,
		BindAddr: fmt.Sprintf("127.0.0.%d", host),
		Profile:  "local",
		Tags:     tags,
		OnEvent: func(ev Event) {
			rec.OnEvent(ev)
			if ev.Type == EventQuery && ev.Name == "echo" {
				if err := ev.Query.Respond([]byte(name + ":" + string(ev.Payload))); err != nil {
					t.Errorf("%s: Respond(echo) = %v; want nil", name, err)
				}
			}
		},
		Logger: testLogger(t, name),
	}
	if mut != nil {
		mut(&cfg)
	}
	c, err := create(cfg, testTiming())
	if err != nil {
		t.Fatalf("create(%s) error: %v", name, err)
	}
	t.Cleanup(func() { c.Shutdown() })
	self := c.LocalMember()
	return &node{Cluster: c, rec: rec, addr: net.JoinHostPort(self.Addr.String(), strconv.Itoa(int(self.Port)))}
}

// joinAll joins every node to the first and waits until all see len(nodes)
// alive members.
func joinAll(t *testing.T, nodes []*node) {
	t.Helper()
	for _, n := range nodes[1:] {
		if got, err := n.Join(t.Context(), []string{nodes[0].addr}, true); got != 1 || err != nil {
			t.Fatalf("%s.Join(%s) = %d, %v; want 1, nil", n.LocalMember().Name, nodes[0].addr, got, err)
		}
	}
	for _, n := range nodes {
		testutil.WaitFor(t, settle, fmt.Sprintf("%s to see %d alive members", n.LocalMember().Name, len(nodes)), func() bool {
			return n.Stats().Alive == len(nodes)
		})
	}
}

// threeQueryNodes starts a, b, c (roles r-a, r-b, r-c) on 127.0.0.<base+i>.
func threeQueryNodes(t *testing.T, base int, mut func(*Config)) []*node {
	t.Helper()
	var nodes []*node
	for i, name := range []string{"a", "b", "c"} {
		nodes = append(nodes, newQueryNode(t, name, base+i, map[string]string{"role": "r-" + name}, mut))
	}
	joinAll(t, nodes)
	return nodes
}

// answers is what a QueryResponse delivered.
type answers struct {
	acks      []string
	responses map[string]string
	closed    bool // both channels closed
}

// collect reads r until it has wantAcks acks and wantResps responses, or
// until both channels close (wantAcks < 0: read until closed).
func collect(t *testing.T, r *QueryResponse, wantAcks, wantResps int) answers {
	t.Helper()
	got := answers{responses: map[string]string{}}
	ackCh, respCh := r.AckCh(), r.ResponseCh()
	timeout := time.NewTimer(time.Until(r.Deadline()) + settle)
	defer timeout.Stop()
	for ackCh != nil || respCh != nil {
		if wantAcks >= 0 && len(got.acks) >= wantAcks && len(got.responses) >= wantResps {
			return got
		}
		select {
		case from, ok := <-ackCh:
			if !ok {
				ackCh = nil
				continue
			}
			got.acks = append(got.acks, from)
		case resp, ok := <-respCh:
			if !ok {
				respCh = nil
				continue
			}
			if _, dup := got.responses[resp.From]; dup {
				t.Errorf("ResponseCh delivered %s twice", resp.From)
			}
			got.responses[resp.From] = string(resp.Payload)
		case <-timeout.C:
			t.Fatalf("QueryResponse channels still open %v after the deadline", settle)
		}
	}
	got.closed = true
	slices.Sort(got.acks)
	return got
}

// queryEvents returns the query events named name that n delivered.
func queryEvents(n *node, name string) []Event {
	var out []Event
	for _, ev := range n.rec.all() {
		if ev.Type == EventQuery && ev.Name == name {
			out = append(out, ev)
		}
	}
	return out
}

func TestQueryAcksAndResponsesFromThreeNodes(t *testing.T) {
	nodes := threeQueryNodes(t, 41, nil)
	if got, want := nodes[0].DefaultQueryTimeout(), 1600*time.Millisecond; got != want {
		t.Errorf("DefaultQueryTimeout() with 3 nodes, local profile = %v; want %v", got, want)
	}
	r, err := nodes[0].Query("echo", []byte("hi"), &QueryParams{RequestAck: true, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("Query(echo) = %v; want nil", err)
	}
	got := collect(t, r, 3, 3)
	slices.Sort(got.acks)
	if want := []string{"a", "b", "c"}; !reflect.DeepEqual(got.acks, want) {
		t.Errorf("Query(echo) acks = %v; want %v", got.acks, want)
	}
	want := map[string]string{"a": "a:hi", "b": "b:hi", "c": "c:hi"}
	if !reflect.DeepEqual(got.responses, want) {
		t.Errorf("Query(echo) responses = %v; want %v", got.responses, want)
	}
	r.Close()
	r.Close() // idempotent
	if _, ok := testutil.RecvOK(t, r.AckCh(), settle, "AckCh to close"); ok {
		t.Errorf("AckCh() after Close delivered; want closed")
	}
	if _, ok := testutil.RecvOK(t, r.ResponseCh(), settle, "ResponseCh to close"); ok {
		t.Errorf("ResponseCh() after Close delivered; want closed")
	}
	for _, n := range nodes {
		evs := queryEvents(n, "echo")
		if len(evs) != 1 || string(evs[0].Payload) != "hi" || evs[0].Query == nil || evs[0].Query.SourceNode() != "a" {
			t.Errorf("%s delivered echo events %+v; want one with payload hi from a", n.LocalMember().Name, evs)
		}
	}
}

func TestQueryFilters(t *testing.T) {
	nodes := threeQueryNodes(t, 44, nil)
	tests := []struct {
		name string
		p    QueryParams
		want []string
	}{
		{"node filter", QueryParams{FilterNodes: []string{"b", "nobody"}}, []string{"b"}},
		{"tag filter unanchored", QueryParams{FilterTags: map[string]string{"role": "-c"}}, []string{"c"}},
		{"tag filter regexp", QueryParams{FilterTags: map[string]string{"role": "^r-(a|b)$"}}, []string{"a", "b"}},
		{"missing tag matches empty", QueryParams{FilterTags: map[string]string{"dc": "^$"}}, []string{"a", "b", "c"}},
		{"both filters", QueryParams{FilterNodes: []string{"a", "c"}, FilterTags: map[string]string{"role": "a"}}, []string{"a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.p
			p.RequestAck = true
			p.Timeout = time.Second
			r, err := nodes[0].Query("echo", []byte(tt.name), &p)
			if err != nil {
				t.Fatalf("Query(echo, %+v) = %v; want nil", p, err)
			}
			got := collect(t, r, -1, 0) // read until the deadline
			var responders []string
			for from := range got.responses {
				responders = append(responders, from)
			}
			slices.Sort(responders)
			if !reflect.DeepEqual(got.acks, tt.want) || !reflect.DeepEqual(responders, tt.want) {
				t.Errorf("Query(echo, %+v) acks %v, responders %v; want %v for both", p, got.acks, responders, tt.want)
			}
			// The sender's count of whom to wait for is the same rule.
			answerers, err := nodes[0].Answerers(&p)
			slices.Sort(answerers)
			if err != nil || !reflect.DeepEqual(answerers, tt.want) {
				t.Errorf("Answerers(%+v) = %v, %v; want %v", p, answerers, err, tt.want)
			}
		})
	}
	if _, err := nodes[0].Query("echo", nil, &QueryParams{FilterTags: map[string]string{"role": "("}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Query(echo, tag filter \"(\") = %v; want a regexp error wrapping ErrInvalid", err)
	}
	if _, err := nodes[0].Answerers(&QueryParams{FilterTags: map[string]string{"role": "("}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Answerers(tag filter \"(\") = %v; want a regexp error wrapping ErrInvalid", err)
	}
}

func TestQueryWithoutAckAndWithRelay(t *testing.T) {
	nodes := threeQueryNodes(t, 47, nil)
	r, err := nodes[1].Query("echo", []byte("x"), &QueryParams{Timeout: time.Second})
	if err != nil {
		t.Fatalf("Query(echo, no ack) = %v; want nil", err)
	}
	got := collect(t, r, -1, 0)
	if len(got.acks) != 0 || len(got.responses) != 3 {
		t.Errorf("Query(echo, no ack) = %d acks, %d responses; want 0 acks, 3 responses", len(got.acks), len(got.responses))
	}

	r, err = nodes[1].Query("echo", []byte("y"), &QueryParams{RequestAck: true, RelayFactor: 1, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("Query(echo, relay 1) = %v; want nil", err)
	}
	got = collect(t, r, 3, 3)
	if len(got.acks) != 3 || len(got.responses) != 3 || got.responses["c"] != "c:y" {
		t.Errorf("Query(echo, relay 1) = acks %v, responses %v; want 3 of each", got.acks, got.responses)
	}
	r.Close()

	// A relay received is forwarded verbatim to its destination: c hands a
	// response addressed to b's open query to b.
	r, err = nodes[1].Query("manual", nil, &QueryParams{FilterNodes: []string{"nobody"}, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	inner, err := nodes[2].wire.encode(msgQueryResponse, &queryResponseMsg{LTime: r.key.ltime, ID: r.key.id, From: "relayed", Payload: []byte("p")})
	if err != nil {
		t.Fatal(err)
	}
	b := nodes[1].LocalMember()
	env, err := nodes[2].wire.encodeRelay(relayHeader{DestAddr: net.UDPAddr{IP: b.Addr, Port: int(b.Port)}, DestName: "b"}, inner)
	if err != nil {
		t.Fatal(err)
	}
	nodes[2].handleMessage(env)
	select {
	case resp := <-r.ResponseCh():
		if resp.From != "relayed" || string(resp.Payload) != "p" {
			t.Errorf("relayed response = %+v; want From relayed, Payload p", resp)
		}
	case <-time.After(settle):
		t.Fatalf("relay forwarded by c never reached b")
	}
}

func TestQueryRespondErrors(t *testing.T) {
	nodes := threeQueryNodes(t, 50, func(cfg *Config) { cfg.QueryResponseStreamSizeLimit = 2048 })
	a, b := nodes[0], nodes[1]
	start := time.Now()
	r, err := a.Query("manual", []byte("p"), &QueryParams{FilterNodes: []string{"b"}, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if d := r.Deadline(); d.Before(start.Add(10*time.Second)) || d.After(time.Now().Add(10*time.Second)) {
		t.Errorf("Deadline() = %v; want 10s after Query", d)
	}
	testutil.WaitFor(t, settle, "b to deliver the query", func() bool { return len(queryEvents(b, "manual")) == 1 })
	q := queryEvents(b, "manual")[0].Query
	if q.SourceNode() != "a" {
		t.Errorf("SourceNode() = %q; want a", q.SourceNode())
	}
	if d := q.Deadline(); d.Before(start) || d.After(time.Now().Add(10*time.Second)) {
		t.Errorf("Query.Deadline() = %v; want about 10s after receipt", d)
	}
	big := bytes.Repeat([]byte("x"), 2100)
	if err := q.Respond(big); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "over the stream limit of 2048 bytes") {
		t.Errorf("Respond(2100 bytes) = %v; want an over-the-limit error", err)
	}
	if err := q.Respond([]byte("ok")); err != nil {
		t.Errorf("Respond(ok) after an oversized attempt = %v; want nil", err)
	}
	if err := q.Respond([]byte("again")); err == nil || !strings.Contains(err.Error(), "response already sent") {
		t.Errorf("second Respond = %v; want \"response already sent\"", err)
	}
	got := collect(t, r, 0, 1)
	if !reflect.DeepEqual(got.responses, map[string]string{"b": "ok"}) {
		t.Errorf("responses = %v; want b: ok", got.responses)
	}
	if len(queryEvents(a, "manual"))+len(queryEvents(nodes[2], "manual")) != 0 {
		t.Errorf("nodes filtered out delivered the query")
	}

	if _, err := a.Query("big", bytes.Repeat([]byte("x"), 1024), nil); err == nil || !strings.Contains(err.Error(), "over the limit") {
		t.Errorf("Query(big, 1024 bytes) = %v; want an over-the-limit error", err)
	}
	if _, err := a.Query("neg", nil, &QueryParams{Timeout: -time.Second}); err == nil {
		t.Errorf("Query(neg, timeout -1s) = nil error; want an error")
	}
}

func TestQueryDeadline(t *testing.T) {
	nodes := threeQueryNodes(t, 53, nil)
	a, b := nodes[0], nodes[1]
	r, err := a.Query("late", nil, &QueryParams{FilterNodes: []string{"b"}, RequestAck: true, Timeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, settle, "b to deliver the query", func() bool { return len(queryEvents(b, "late")) == 1 })
	q := queryEvents(b, "late")[0].Query
	testutil.WaitFor(t, settle, "b's deadline to pass", func() bool { return time.Now().After(q.Deadline()) })
	if err := q.Respond([]byte("late")); err == nil || !strings.Contains(err.Error(), "past the deadline") {
		t.Errorf("Respond after the deadline = %v; want a past-the-deadline error", err)
	}
	got := collect(t, r, -1, 0)
	if !got.closed || time.Now().Before(r.Deadline()) {
		t.Errorf("channels closed at %v, deadline %v; want closed at the deadline", time.Now(), r.Deadline())
	}
	if !reflect.DeepEqual(got.acks, []string{"b"}) || len(got.responses) != 0 {
		t.Errorf("late query got acks %v, responses %v; want ack from b only", got.acks, got.responses)
	}
}

func TestPingQueryIsAckedNotDelivered(t *testing.T) {
	nodes := threeQueryNodes(t, 56, nil)
	r, err := nodes[0].Query(pingQuery, nil, &QueryParams{RequestAck: true, Timeout: time.Second})
	if err != nil {
		t.Fatalf("Query(_serf_ping) = %v; want nil", err)
	}
	got := collect(t, r, -1, 0)
	if !reflect.DeepEqual(got.acks, []string{"a", "b", "c"}) || len(got.responses) != 0 {
		t.Errorf("Query(_serf_ping) = acks %v, responses %v; want acks from a, b, c and no response", got.acks, got.responses)
	}
	for _, n := range nodes {
		for _, ev := range n.rec.all() {
			if ev.Type == EventQuery {
				t.Errorf("%s delivered query %q to OnEvent; want internal queries kept out", n.LocalMember().Name, ev.Name)
			}
		}
	}
	for _, bad := range []struct {
		name    string
		payload []byte
	}{{conflictQuery, []byte("a")}, {listKeysQuery, nil}, {pingQuery, []byte("x")}, {"_serf_anything", nil}} {
		if _, err := nodes[0].Query(bad.name, bad.payload, nil); err == nil || !strings.Contains(err.Error(), "reserved") {
			t.Errorf("Query(%q, %q) = %v; want a reserved-name error", bad.name, bad.payload, err)
		}
	}
}

func TestQueryMatches(t *testing.T) {
	c := newBareTagged(t, "web-1", map[string]string{"role": "web", "dc": "east"})
	node := func(names ...string) []byte {
		f, err := encodeFilter(filterNode, names, c.wire)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	tag := func(name, expr string) []byte {
		f, err := encodeFilter(filterTag, &tagFilter{Tag: name, Expr: expr}, c.wire)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	tests := []struct {
		name    string
		filters [][]byte
		want    bool
	}{
		{"none", nil, true},
		{"node listed", [][]byte{node("x", "web-1")}, true},
		{"node not listed", [][]byte{node("web-2")}, false},
		{"empty node list", [][]byte{node()}, false},
		{"tag unanchored", [][]byte{tag("role", "e")}, true},
		{"tag anchored miss", [][]byte{tag("role", "^e")}, false},
		{"missing tag vs empty", [][]byte{tag("rack", "^$")}, true},
		{"all must match", [][]byte{tag("role", "web"), tag("dc", "west")}, false},
		{"node and tag", [][]byte{node("web-1"), tag("dc", "east")}, true},
		{"bad regexp", [][]byte{tag("role", "(")}, false},
		{"unknown type", [][]byte{{2, 0x90}}, false},
		{"empty filter", [][]byte{{}}, false},
		{"malformed node filter", [][]byte{{filterNode, 0x91}}, false},
		{"node filter not an array", [][]byte{{filterNode, 0xa1, 'x'}}, false},
		{"malformed tag filter", [][]byte{{filterTag, 0x91, 0xa1, 'x'}}, false},
	}
	for _, tt := range tests {
		if got := c.queryMatches(queryMsg{Name: "q", Filters: tt.filters}); got != tt.want {
			t.Errorf("queryMatches(%s) = %v; want %v", tt.name, got, tt.want)
		}
	}
}

func TestQueryDeliveryOnBareCluster(t *testing.T) {
	c := newBareTagged(t, "a", nil)
	c.members["b"] = &memberState{m: Member{Name: "b", Addr: net.IPv4(10, 0, 0, 2), Port: 7946, Status: StatusAlive}}
	w := c.wire
	from := func(m queryMsg) *queryMsg {
		m.SourceNode, m.Addr, m.Port = "b", []byte{10, 0, 0, 2}, 7946
		return &m
	}
	for i, name := range []string{pingQuery, conflictQuery, listKeysQuery, "_serf_unknown"} {
		raw, _ := w.encode(msgQuery, from(queryMsg{LTime: 3, ID: uint32(i), Name: name, Payload: []byte("b"), Timeout: time.Second}))
		c.handleMessage(raw)
	}
	c.wg.Wait() // the list-keys answer ran on a goroutine (and found no transport)
	if got := drain(c); len(got) != 0 {
		t.Errorf("internal queries delivered %+v; want none", got)
	}
	// A query from no member at its address is dropped and counted: its
	// answers would go to whatever address it names.
	for i, m := range []queryMsg{{SourceNode: "b", Addr: []byte{192, 0, 2, 1}, Port: 7946}, {SourceNode: "ghost", Addr: []byte{10, 0, 0, 2}, Port: 7946}} {
		m.LTime, m.ID, m.Name, m.Timeout = 4, uint32(20+i), "user", time.Minute
		raw, _ := w.encode(msgQuery, &m)
		c.handleMessage(raw)
	}
	if got := drain(c); len(got) != 0 || c.badIn.total.Load() != 2 {
		t.Errorf("queries from no member at their address delivered %+v, %d counted as bad input; want none, 2", got, c.badIn.total.Load())
	}
	raw, _ := w.encode(msgQuery, from(queryMsg{LTime: 4, ID: 9, Name: "user", Payload: []byte("p"), Timeout: time.Minute}))
	c.handleMessage(raw)
	got := drain(c)
	if len(got) != 1 || got[0].Type != EventQuery || got[0].Name != "user" || string(got[0].Payload) != "p" ||
		got[0].LTime != 4 || got[0].Query == nil {
		t.Fatalf("user query delivered %+v; want one EventQuery user/p at LTime 4 with a Query", got)
	}
	if c.queryClock.Time() != 5 {
		t.Errorf("query clock after LTime 4 = %d; want 5", c.queryClock.Time())
	}
	q := got[0].Query
	if err := q.Respond([]byte("r")); err == nil {
		t.Errorf("Respond without a transport = nil; want an error")
	}
}

func TestQueryResponseAddDedupAndDeadline(t *testing.T) {
	c := newBareTagged(t, "a", nil)
	r := &QueryResponse{c: c, name: "q", deadline: time.Now().Add(time.Hour),
		ackCh: make(chan string, 4), respCh: make(chan NodeResponse, 4), acks: map[string]bool{}, resps: map[string]bool{}}
	r.add(true, "b", nil)
	r.add(true, "b", nil)
	r.add(false, "b", []byte("1"))
	r.add(false, "b", []byte("2"))
	if len(r.ackCh) != 1 || len(r.respCh) != 1 {
		t.Errorf("after duplicate acks and responses: %d acks, %d responses queued; want 1 and 1", len(r.ackCh), len(r.respCh))
	}
	r.deadline = time.Now().Add(-time.Second)
	r.add(true, "c", nil)
	r.add(false, "c", nil)
	if len(r.ackCh) != 1 || len(r.respCh) != 1 {
		t.Errorf("answers after the deadline were queued; want them ignored")
	}
	r.Close()
	r.Close()
	r.add(true, "d", nil) // after Close: ignored, no panic
}

// FuzzQueryFilters feeds arbitrary filters to the filter decoder and matcher.
func FuzzQueryFilters(f *testing.F) {
	w := newWireCodec()
	for _, seed := range [][]byte{
		mustFilter(f, w, filterNode, []string{"a", "b"}),
		mustFilter(f, w, filterTag, &tagFilter{Tag: "role", Expr: "^web$"}),
		{filterTag, 0x80},
		{filterNode, 0xc0},
		{7},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c := newBareTagged(t, "a", map[string]string{"role": "web"})
		c.queryMatches(queryMsg{Filters: [][]byte{data}})
		var names []string
		if len(data) > 0 {
			w.decodeValue(data[1:], &names)
		}
	})
}

func mustFilter(f *testing.F, w *wireCodec, typ byte, v any) []byte {
	b, err := encodeFilter(typ, v, w)
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// FuzzQueryMessages feeds arbitrary query, query response and relay bodies
// to a cluster that has a query open, as they would arrive from peers.
func FuzzQueryMessages(f *testing.F) {
	w := newWireCodec()
	for _, seed := range []struct {
		t msgType
		v any
	}{
		{msgQuery, &queryMsg{LTime: 1, ID: 1, Addr: []byte{127, 0, 0, 1}, Port: 7946, SourceNode: "b", Flags: queryFlagAck,
			RelayFactor: 2, Timeout: time.Second, Name: "q", Payload: []byte("p")}},
		{msgQuery, &queryMsg{LTime: 2, ID: 2, Name: installKeyQuery, Payload: []byte{byte(msgKeyRequest), 0x81, 0xa3, 'K', 'e', 'y', 0xa0}}},
		{msgQueryResponse, &queryResponseMsg{LTime: 7, ID: 7, From: "b", Flags: queryFlagAck}},
		{msgQueryResponse, &queryResponseMsg{LTime: 7, ID: 7, From: "b", Payload: []byte("r")}},
		{msgRelay, &relayHeader{DestAddr: net.UDPAddr{IP: net.IPv4(127, 0, 0, 1).To4(), Port: 1}, DestName: "b"}},
	} {
		b, err := w.encode(seed.t, seed.v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 0 {
			w.decodeBody(msgQuery, data[1:], &queryMsg{})
			w.decodeBody(msgQueryResponse, data[1:], &queryResponseMsg{})
			w.decodeRelay(data[1:])
		}
		c := newBareTagged(t, "a", nil)
		c.members["b"] = &memberState{m: Member{Name: "b", Addr: net.IPv4(127, 0, 0, 1), Port: 7946, Status: StatusAlive}}
		r := &QueryResponse{c: c, key: queryKey{ltime: 7, id: 7}, name: "q", deadline: time.Now().Add(time.Minute),
			ackCh: make(chan string, 4), respCh: make(chan NodeResponse, 4), acks: map[string]bool{}, resps: map[string]bool{}}
		c.qs.pending = map[queryKey]*QueryResponse{r.key: r}
		c.handleMessage(data)
		c.wg.Wait()
		r.Close()
	})
}

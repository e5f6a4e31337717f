package gossip

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/mdns"
	"github.com/serfd/serfd/internal/testutil"
)

// testPoll is the poll interval of mDNS in tests.
const testPoll = 300 * time.Millisecond

// joins records the batches an MDNS hands to Join.
type joins struct {
	mu      sync.Mutex
	batches [][]string
	at      []time.Time // when each batch was handed over
}

func (j *joins) join(_ context.Context, addrs []string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.batches = append(j.batches, slices.Clone(addrs))
	j.at = append(j.at, time.Now())
}

// times returns when addr was handed to Join, in order.
func (j *joins) times(addr string) []time.Time {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []time.Time
	for i, b := range j.batches {
		if slices.Contains(b, addr) {
			out = append(out, j.at[i])
		}
	}
	return out
}

// all returns every address joined, in order, with repeats.
func (j *joins) all() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []string
	for _, b := range j.batches {
		out = append(out, b...)
	}
	return out
}

// count returns how many times addr was joined.
func (j *joins) count(addr string) int {
	n := 0
	for _, a := range j.all() {
		if a == addr {
			n++
		}
	}
	return n
}

// mdnsNode is a started MDNS and what it joined.
type mdnsNode struct {
	*MDNS
	addr  string
	joins *joins
}

// startMDNS starts mDNS for node name in cluster, advertising ip and a
// free port, stopped at cleanup; edit may change the config first.
func startMDNS(t *testing.T, cluster, name, ip string, edit func(*MDNSConfig)) *mdnsNode {
	t.Helper()
	port := testutil.FreePort(t, ip)
	j := &joins{}
	cfg := MDNSConfig{
		Cluster:      cluster,
		NodeName:     name,
		Addr:         net.ParseIP(ip),
		Port:         port,
		Logger:       testLogger(t, name),
		Join:         j.join,
		PollInterval: testPoll,
	}
	if edit != nil {
		edit(&cfg)
	}
	m, err := StartMDNS(cfg)
	if err != nil {
		t.Fatalf("StartMDNS(%s): %v", name, err)
	}
	t.Cleanup(m.Stop)
	return &mdnsNode{MDNS: m, addr: net.JoinHostPort(ip, strconv.Itoa(cfg.Port)), joins: j}
}

// waitPolls waits until every node finished n more lookups than now.
func waitPolls(t *testing.T, n uint64, nodes ...*mdnsNode) {
	t.Helper()
	want := make([]uint64, len(nodes))
	for i, nd := range nodes {
		want[i] = nd.polls.Load() + n
	}
	testutil.Poll(t, 30*time.Second, fmt.Sprintf("%d more mDNS lookups", n), func() (bool, string) {
		var state []string
		ok := true
		for i, nd := range nodes {
			got := nd.polls.Load()
			ok = ok && got >= want[i]
			state = append(state, fmt.Sprintf("%s: %d of %d", nd.addr, got, want[i]))
		}
		return ok, strings.Join(state, ", ")
	})
}

// TestMDNSDiscovery starts three nodes of one cluster, one looking up
// over IPv4 only, one over IPv6 only and advertising ::1, and a node of
// another cluster: each of the three must join the other two, once, and
// only them, the other none, and Stop must return in about a lookup's
// time at most.
func TestMDNSDiscovery(t *testing.T) {
	if !inNetns(t) {
		return
	}
	a := startMDNS(t, "alpha", "a", "127.0.0.11", nil)
	b := startMDNS(t, "alpha", "b", "127.0.0.12", func(c *MDNSConfig) { c.DisableIPv6 = true })
	c := startMDNS(t, "alpha", "c", "::1", func(c *MDNSConfig) { c.DisableIPv4 = true })
	o := startMDNS(t, "other", "o", "127.0.0.14", nil)
	nodes := []*mdnsNode{a, b, c}
	for _, n := range nodes {
		testutil.Poll(t, 30*time.Second, n.addr+" to join the other two", func() (bool, string) {
			got := n.joins.all()
			for _, m := range nodes {
				if m != n && !slices.Contains(got, m.addr) {
					return false, fmt.Sprintf("joined %v", got)
				}
			}
			return true, ""
		})
	}
	// Two full lookups of every node after all four answer: any answer
	// across clusters would have come by then.
	waitPolls(t, 2, a, b, c, o)
	for _, n := range nodes {
		got := n.joins.all()
		for _, m := range nodes {
			if m != n && n.joins.count(m.addr) != 1 {
				t.Errorf("%s joined %s %d times (%v); want once: it is remembered", n.addr, m.addr, n.joins.count(m.addr), got)
			}
		}
		if slices.Contains(got, n.addr) {
			t.Errorf("%s joined its own address: %v", n.addr, got)
		}
		if slices.Contains(got, o.addr) {
			t.Errorf("%s of cluster alpha joined %s of cluster other: %v", n.addr, o.addr, got)
		}
		if n.ignored.Load() != 0 {
			t.Errorf("%s ignored %d answers; want none from well-behaved peers", n.addr, n.ignored.Load())
		}
	}
	if got := o.joins.all(); len(got) != 0 {
		t.Errorf("the node of cluster other joined %v; want nothing", got)
	}

	var wg sync.WaitGroup
	for _, n := range append(nodes, o) {
		wg.Go(func() {
			start := time.Now()
			n.Stop()
			// At most a lookup under way (1s) to wait out, and some slack.
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("Stop of %s took %v; want at most about a lookup's time (1s)", n.addr, d)
			}
			n.Stop() // idempotent
		})
	}
	wg.Wait()
}

func TestCheckMDNSCluster(t *testing.T) {
	for _, name := range []string{"a", "prod", "Prod-2", "0", "-x-", strings.Repeat("z", 57)} {
		if err := CheckMDNSCluster(name); err != nil {
			t.Errorf("CheckMDNSCluster(%q) = %v; want nil", name, err)
		}
	}
	for name, want := range map[string]string{
		"":                      "empty",
		strings.Repeat("z", 58): "at most 57",
		"a.b":                   `'.'`,
		"a_b":                   `'_'`,
		"a b":                   `' '`,
		"é":                     "only ASCII letters, digits and '-'",
		"x\x00":                 `'\x00'`,
	} {
		err := CheckMDNSCluster(name)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckMDNSCluster(%q) = %v; want an error saying %s", name, err, want)
		}
	}
}

// TestStartMDNSRejectsBadConfig checks the errors StartMDNS returns
// before it opens any socket.
func TestStartMDNSRejectsBadConfig(t *testing.T) {
	good := func() MDNSConfig {
		return MDNSConfig{Cluster: "c", NodeName: "n", Addr: net.ParseIP("127.0.0.1"), Port: 7946,
			Join: func(context.Context, []string) {}}
	}
	for _, tc := range []struct {
		edit func(*MDNSConfig)
		want string
	}{
		{func(c *MDNSConfig) { c.Cluster = "" }, "discover name is empty"},
		{func(c *MDNSConfig) { c.Cluster = "a.b" }, "discover name"},
		{func(c *MDNSConfig) { c.NodeName = "" }, "node name is empty"},
		{func(c *MDNSConfig) { c.Addr = nil }, "not an IP address"},
		{func(c *MDNSConfig) { c.Addr = net.IPv4zero }, "unspecified"},
		{func(c *MDNSConfig) { c.Addr = net.IPv6unspecified }, "unspecified"},
		{func(c *MDNSConfig) { c.Addr = net.ParseIP("224.0.0.251") }, "multicast"},
		{func(c *MDNSConfig) { c.Port = 0 }, "port 0"},
		{func(c *MDNSConfig) { c.Port = 65536 }, "port 65536"},
		{func(c *MDNSConfig) { c.DisableIPv4, c.DisableIPv6 = true, true }, "both set"},
		{func(c *MDNSConfig) { c.Join = nil }, "no Join"},
		{func(c *MDNSConfig) { c.Interface = "nosuchif0" }, `interface "nosuchif0"`},
	} {
		cfg := good()
		tc.edit(&cfg)
		m, err := StartMDNS(cfg)
		if err == nil {
			m.Stop()
			t.Errorf("StartMDNS(%+v) = nil error; want one saying %q", cfg, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("StartMDNS(%+v) = %v; want an error saying %q", cfg, err, tc.want)
		}
	}
}

func TestMDNSInstance(t *testing.T) {
	for _, name := range []string{"node1", "web-01", "a_b", strings.Repeat("n", 63)} {
		if got := mdnsInstance(name); got != name {
			t.Errorf("mdnsInstance(%q) = %q; want the name itself", name, got)
		}
	}
	seen := map[string]string{}
	for _, name := range []string{"web.example.com", "web-example-com-x", "web example com", "ünï",
		strings.Repeat("n", 64), strings.Repeat("n", 63) + "m", strings.Repeat("n", 200)} {
		got := mdnsInstance(name)
		if len(got) > 63 {
			t.Errorf("mdnsInstance(%q) = %q, %d bytes; want at most 63", name, got, len(got))
		}
		for i := 0; i < len(got); i++ {
			if !isLDH(got[i]) && got[i] != '_' {
				t.Errorf("mdnsInstance(%q) = %q; has %q", name, got, got[i])
			}
		}
		if other, ok := seen[got]; ok {
			t.Errorf("mdnsInstance(%q) = mdnsInstance(%q) = %q; want them apart", name, other, got)
		}
		seen[got] = name
	}
}

// testMDNS builds an MDNS that is not started, for its bookkeeping.
func testMDNS(t *testing.T, edit func(*MDNSConfig)) *MDNS {
	t.Helper()
	cfg := MDNSConfig{Cluster: "alpha", NodeName: "self", Addr: net.ParseIP("127.0.0.1"), Port: 7946,
		Join: func(context.Context, []string) {}, Logger: testLogger(t, "self"), PollInterval: time.Minute}
	if edit != nil {
		edit(&cfg)
	}
	m, err := newMDNS(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.cancel)
	return m
}

// entry is an answer as hashicorp/mdns reports it.
func entry(instance string, ip string, port int) *mdns.ServiceEntry {
	e := &mdns.ServiceEntry{Name: instance + "._serf_alpha._tcp.local.", Port: port}
	if p := net.ParseIP(ip); p.To4() != nil {
		e.AddrV4 = p.To4()
	} else if p != nil {
		e.AddrV6IPAddr = &net.IPAddr{IP: p}
	}
	return e
}

func TestMDNSEntryAddr(t *testing.T) {
	m := testMDNS(t, nil)
	v6ll := entry("ll", "fe80::1", 7946)
	v6ll.AddrV6IPAddr.Zone = "eth0"
	both := entry("both", "127.0.0.9", 7000)
	both.AddrV6IPAddr = &net.IPAddr{IP: net.ParseIP("::1")}
	for _, tc := range []struct {
		e            *mdns.ServiceEntry
		addr, reason string
	}{
		{entry("n", "127.0.0.2", 7946), "127.0.0.2:7946", ""},
		{entry("n", "::1", 7946), "[::1]:7946", ""},
		{v6ll, "[fe80::1%eth0]:7946", ""},
		{both, "127.0.0.9:7000", ""},
		{&mdns.ServiceEntry{Name: "N._SERF_ALPHA._TCP.LOCAL.", AddrV4: net.IPv4(10, 1, 2, 3), Port: 1}, "10.1.2.3:1", ""},
		{nil, "", "empty answer"},
		{&mdns.ServiceEntry{Name: "x._http._tcp.local.", AddrV4: net.IPv4(127, 0, 0, 2), Port: 80}, "", "not our service"},
		{&mdns.ServiceEntry{Name: "x._serf_alphabet._tcp.local.", AddrV4: net.IPv4(127, 0, 0, 2), Port: 80}, "", "not our service"},
		{&mdns.ServiceEntry{Name: "_serf_alpha._tcp.local.", AddrV4: net.IPv4(127, 0, 0, 2), Port: 80}, "", "not our service"},
		{entry("n", "127.0.0.2", 0), "", "port out of range"},
		{entry("n", "127.0.0.2", 70000), "", "port out of range"},
		{entry("n", "0.0.0.0", 7946), "", "address is unspecified"},
		{entry("n", "::", 7946), "", "address is unspecified"},
		{entry("n", "224.0.0.251", 7946), "", "address is multicast"},
		{entry("n", "ff02::fb", 7946), "", "address is multicast"},
		{entry("n", "255.255.255.255", 7946), "", "address is broadcast"},
		{entry("n", "fe80::1", 7946), "", "link-local address without a zone"},
		{entry("n", "", 7946), "", "no address"},
		{&mdns.ServiceEntry{Name: "n._serf_alpha._tcp.local.", AddrV4: net.IP{1, 2, 3}, Port: 1}, "", "malformed IPv4 address"},
	} {
		addr, reason := m.entryAddr(tc.e)
		if addr != tc.addr || reason != tc.reason {
			t.Errorf("entryAddr(%+v) = %q, %q; want %q, %q", tc.e, addr, reason, tc.addr, tc.reason)
		}
	}
}

// TestMDNSBatchBounded checks that at most mdnsMaxPending addresses wait
// for a batch, that repeats and our own address are not added, and that
// a joined address is not added again until seenTTL has passed.
func TestMDNSBatchBounded(t *testing.T) {
	m := testMDNS(t, nil)
	if m.consider(nil) || m.ignored.Load() != 1 {
		t.Errorf("consider(nil): want it ignored and counted; %d ignored", m.ignored.Load())
	}
	if m.consider(entry("self", "127.0.0.1", 7946)) {
		t.Error("consider(our own address) = true; want false")
	}
	for i := range 300 {
		m.consider(entry(fmt.Sprint("n", i), fmt.Sprintf("127.1.%d.%d", i/200, i%200+1), 7946))
		m.consider(entry(fmt.Sprint("n", i), fmt.Sprintf("127.1.%d.%d", i/200, i%200+1), 7946)) // again
	}
	// Each of the 44 past the bound is dropped twice: once each time.
	if len(m.pending) != mdnsMaxPending || m.dropped.Load() != 2*(300-mdnsMaxPending) {
		t.Fatalf("after 300 addresses twice: %d pending, %d dropped; want %d, %d",
			len(m.pending), m.dropped.Load(), mdnsMaxPending, 2*(300-mdnsMaxPending))
	}
	now := time.Now()
	batch := m.takeBatch(now)
	if len(batch) != mdnsMaxPending || batch[0] != "127.1.0.1:7946" || len(m.pending) != 0 {
		t.Fatalf("takeBatch = %d addresses from %v, %d left; want %d from 127.1.0.1:7946, none left",
			len(batch), batch[0], len(m.pending), mdnsMaxPending)
	}
	if m.consider(entry("n0", "127.1.0.1", 7946)) {
		t.Error("an address just joined was added again; want it remembered")
	}
	if !m.consider(entry("n299", "127.1.1.100", 7946)) {
		t.Error("an address dropped from a full batch was not added later")
	}
	// The same address joined seenTTL ago is joined again.
	m.takeBatch(now.Add(-mdnsSeenTTL))
	m.seen["127.1.0.1:7946"] = seenAddr{at: now.Add(-mdnsSeenTTL), wait: mdnsSeenTTL}
	if !m.consider(entry("n0", "127.1.0.1", 7946)) {
		t.Error("an address joined seenTTL ago was not added again")
	}
	// prune forgets those two and keeps the other 255 of the first batch.
	m.prune(now)
	if len(m.seen) != mdnsMaxPending-1 {
		t.Errorf("after prune: %d remembered; want %d", len(m.seen), mdnsMaxPending-1)
	}
}

// TestMDNSSeenBounded checks that at most mdnsMaxSeen joined addresses
// are remembered, the oldest forgotten first.
func TestMDNSSeenBounded(t *testing.T) {
	m := testMDNS(t, nil)
	now := time.Now()
	n := 0
	for b := range mdnsMaxSeen/mdnsMaxPending + 2 {
		for range mdnsMaxPending {
			if !m.consider(entry(fmt.Sprint("n", n), fmt.Sprintf("127.3.%d.%d", n/250, n%250+1), 7946)) {
				t.Fatalf("address %d not added", n)
			}
			n++
		}
		m.takeBatch(now.Add(time.Duration(b) * time.Millisecond))
	}
	if len(m.seen) != mdnsMaxSeen {
		t.Errorf("%d addresses remembered after %d; want %d", len(m.seen), n, mdnsMaxSeen)
	}
	if _, ok := m.seen["127.3.0.1:7946"]; ok {
		t.Error("the oldest address is still remembered; want it forgotten first")
	}
	if _, ok := m.seen[fmt.Sprintf("127.3.%d.%d:7946", (n-1)/250, (n-1)%250+1)]; !ok {
		t.Error("the newest address is not remembered")
	}
}

// TestMDNSRetryBackoff checks, with IsMember set, that an alive member
// is never added, and that an address that is not a member is retried
// after half a poll, then after twice as long each time, up to seenTTL.
func TestMDNSRetryBackoff(t *testing.T) {
	var alive sync.Map
	m := testMDNS(t, func(c *MDNSConfig) {
		c.IsMember = func(addr string) bool { _, ok := alive.Load(addr); return ok }
	})
	const addr = "127.0.0.2:7946"
	alive.Store(addr, true)
	if m.consider(entry("n", "127.0.0.2", 7946)) {
		t.Fatal("an alive member's address was added")
	}
	alive.Delete(addr)
	var waits []time.Duration
	now := time.Now()
	for range 7 {
		if !m.consider(entry("n", "127.0.0.2", 7946)) {
			t.Fatalf("after waits %v: the address was not added", waits)
		}
		now = now.Add(-time.Hour) // as if the last attempt were long ago
		m.takeBatch(now)
		waits = append(waits, m.seen[addr].wait)
	}
	want := []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute,
		10 * time.Minute, 10 * time.Minute}
	if !slices.Equal(waits, want) {
		t.Errorf("retry waits %v; want %v", waits, want)
	}
	alive.Store(addr, true)
	if m.consider(entry("n", "127.0.0.2", 7946)) {
		t.Fatal("an alive member's address was added")
	}
	if _, ok := m.seen[addr]; ok {
		t.Error("an alive member's backoff was kept; want it forgotten")
	}
}

func TestMDNSLogLimit(t *testing.T) {
	l := pollLimiter{epoch: 1, kinds: map[string]*pollKind{}}
	type step struct {
		kind string
		n    uint64
		ok   bool
	}
	check := func(steps ...step) {
		t.Helper()
		for _, s := range steps {
			if n, ok := l.allow(s.kind); n != s.n || ok != s.ok {
				t.Errorf("allow(%q) = %d, %v; want %d, %v", s.kind, n, ok, s.n, s.ok)
			}
		}
	}
	check(step{"a", 1, true}, step{"a", 0, false}, step{"b", 1, true}, step{"a", 0, false})
	l.newPoll()
	check(step{"a", 3, true}, step{"b", 1, true}, step{"b", 0, false})
	l.newPoll()
	l.newPoll()
	check(step{"b", 2, true})
	for i := range 2 * maxLogKinds {
		l.allow(fmt.Sprint("k", i))
	}
	if len(l.kinds) != maxLogKinds {
		t.Errorf("%d kinds kept; want at most %d", len(l.kinds), maxLogKinds)
	}
}

package gossip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/serfd/serfd/internal/testutil"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// netnsEnv names, in the environment of a test binary that inNetns
// started in a network namespace, the test it is to run there.
const netnsEnv = "SERFD_TEST_NETNS"

// netnsTimeout bounds one test run in a namespace.
const netnsTimeout = 3 * time.Minute

// inNetns runs the calling test in network and PID namespaces of its
// own, where multicast works (see setupNetns) and nothing reaches another
// network. It reports true in the process that is to run the test body,
// once the namespace is set up. In the outer process it runs the test
// binary again, as root, under
//
//	unshare --net --pid --fork --kill-child
//
// for this test alone, in parallel with the other such tests, reports
// how it went and returns false. The namespaces go away with their last
// process: the PID namespace makes every process the test starts in
// there (stock serf, say) die with the test binary, which dies with
// unshare, which is killed at cleanup if it still runs. It skips when
// not root, when unshare or ip is missing, or when the namespaces cannot
// be made, and under an emulator (`make test-arm64`): qemu-user does not
// carry the multicast socket options through (joining a group fails with
// "no such device", others with "protocol not available").
func inNetns(t *testing.T) bool {
	t.Helper()
	testutil.SkipIfEmulated(t, "qemu-user does not pass multicast socket options (IP_ADD_MEMBERSHIP and others) through")
	if os.Getenv(netnsEnv) == t.Name() {
		setupNetns(t)
		return true
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root, to create a network namespace where multicast works on loopback")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("needs unshare (util-linux), to create a network namespace")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip (iproute2), to set up a network namespace's loopback")
	}
	if out, err := exec.Command(unshare, "--net", "--pid", "--fork", "--kill-child", "true").CombinedOutput(); err != nil {
		t.Skipf("cannot create network and PID namespaces here: %v: %s", err, out)
	}
	t.Parallel() // each in namespaces of its own, mostly waiting on lookups
	cmd := exec.Command(unshare, "--net", "--pid", "--fork", "--kill-child", "--",
		os.Args[0], "-test.run=^"+regexp.QuoteMeta(t.Name())+"$", "-test.v", "-test.count=1",
		"-test.timeout="+netnsTimeout.String())
	cmd.Env = append(os.Environ(), netnsEnv+"="+t.Name())
	p := testutil.Start(t, t.Name()+" in a network namespace", cmd)
	err = p.Wait(t, netnsTimeout+30*time.Second)
	out := p.Out.String()
	switch {
	case err == nil && strings.Contains(out, "--- PASS: "+t.Name()):
		if testing.Verbose() {
			t.Logf("in a network namespace:\n%s", out)
		}
	case err == nil && strings.Contains(out, "--- SKIP: "+t.Name()):
		t.Skipf("skipped in the network namespace:\n%s", out)
	default:
		t.Fatalf("in a network namespace: %v (its output follows)", err)
	}
	return false
}

var netnsOnce sync.Once

// setupNetns brings the namespace's loopback up with multicast on and
// routes the IPv4 mDNS group through it. IPv6 multicast is not looped
// back on lo, so a veth pair, mdns0 and mdns1, carries it: a multicast
// sent out of one is looped back to the sockets of this namespace that
// joined the group there. Duplicate address detection is turned off in
// the namespace so their link-local addresses serve at once. The veth
// pair has no other address and leads nowhere but into this namespace.
func setupNetns(t *testing.T) {
	t.Helper()
	var failed string
	netnsOnce.Do(func() {
		for _, conf := range []string{"all", "default"} {
			p := "/proc/sys/net/ipv6/conf/" + conf + "/accept_dad"
			if err := os.WriteFile(p, []byte("0"), 0o644); err != nil {
				failed = err.Error()
				return
			}
		}
		for _, args := range [][]string{
			{"link", "set", "lo", "up"},
			{"link", "set", "lo", "multicast", "on"},
			{"route", "add", "224.0.0.0/4", "dev", "lo"},
			{"link", "add", "mdns0", "type", "veth", "peer", "name", "mdns1"},
			{"link", "set", "mdns0", "up"},
			{"link", "set", "mdns1", "up"},
		} {
			if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
				failed = "ip " + strings.Join(args, " ") + ": " + err.Error() + ": " + string(out)
				return
			}
		}
	})
	if failed != "" {
		t.Fatal(failed)
	}
}

// TestMDNSRejoinsRestartedPeer restarts a peer: it must be joined again
// once the address has been remembered for seenTTL, and not before.
func TestMDNSRejoinsRestartedPeer(t *testing.T) {
	if !inNetns(t) {
		return
	}
	const ttl = 2 * time.Second
	a := startMDNS(t, "alpha", "a", "127.0.0.11", func(c *MDNSConfig) { c.seenTTL = ttl })
	b := startMDNS(t, "alpha", "b", "127.0.0.12", nil)
	testutil.WaitFor(t, 30*time.Second, "a to join b", func() bool { return a.joins.count(b.addr) >= 1 })
	b.Stop()
	port := b.MDNS.cfg.Port
	b2 := startMDNS(t, "alpha", "b", "127.0.0.12", func(c *MDNSConfig) { c.Port = port })
	if b2.addr != b.addr {
		t.Fatalf("restarted b advertises %s; want %s", b2.addr, b.addr)
	}
	testutil.WaitFor(t, 30*time.Second, "a to join the restarted b again", func() bool { return a.joins.count(b.addr) >= 2 })
	// Compared by when Join was called. The address is remembered from
	// just before the first call, so the second comes at least ttl after
	// that, less the hop from there to the call; a busy machine only makes
	// the interval longer.
	const hop = 250 * time.Millisecond
	if at := a.joins.times(b.addr); at[1].Sub(at[0]) < ttl-hop {
		t.Errorf("a joined b again %v after the first time; want not before %v", at[1].Sub(at[0]), ttl-hop)
	}
}

// TestMDNSSkipsMembers checks IsMember: an alive member is not joined;
// once it is not, it is joined, and retried while it stays out.
func TestMDNSSkipsMembers(t *testing.T) {
	if !inNetns(t) {
		return
	}
	var member sync.Map
	var asked atomic.Int64
	b := startMDNS(t, "alpha", "b", "127.0.0.12", nil)
	member.Store(b.addr, true)
	a := startMDNS(t, "alpha", "a", "127.0.0.11", func(c *MDNSConfig) {
		c.IsMember = func(addr string) bool {
			asked.Add(1)
			_, ok := member.Load(addr)
			return ok
		}
	})
	testutil.WaitFor(t, 30*time.Second, "a to ask IsMember about b", func() bool { return asked.Load() > 0 })
	waitPolls(t, 2, a)
	if got := a.joins.all(); len(got) != 0 {
		t.Fatalf("a joined %v while b is an alive member; want nothing", got)
	}
	member.Delete(b.addr)
	testutil.WaitFor(t, 30*time.Second, "a to join b, no longer a member", func() bool { return a.joins.count(b.addr) == 1 })
	testutil.WaitFor(t, 30*time.Second, "a to retry b, still not a member", func() bool { return a.joins.count(b.addr) == 2 })
	member.Store(b.addr, true)
	waitPolls(t, 1, a) // a lookup that may have begun before the Store
	n := a.joins.count(b.addr)
	waitPolls(t, 3, a)
	if got := a.joins.count(b.addr); got != n {
		t.Errorf("a joined b %d more times while b is an alive member; want none", got-n)
	}
}

// hostileResponder answers every lookup of _serf_alpha._tcp.local. it
// receives with the answers build returns, one packet each, sent to the
// asker as hashicorp/mdns's responder does. It stops at cleanup.
func hostileResponder(t *testing.T, build func() [][]byte) (answered *atomic.Int64) {
	t.Helper()
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenMulticastUDP("udp4", lo, &net.UDPAddr{IP: net.ParseIP("224.0.0.251"), Port: 5353})
	if err != nil {
		t.Fatal(err)
	}
	answered = &atomic.Int64{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			n, from, err := conn.ReadFromUDP(buf)
			if err != nil {
				return
			}
			var q dns.Msg
			if q.Unpack(buf[:n]) != nil || q.Response || len(q.Question) != 1 ||
				q.Question[0].Name != "_serf_alpha._tcp.local." {
				continue
			}
			for _, p := range build() {
				_, _ = conn.WriteToUDP(p, from)
			}
			answered.Add(1)
		}
	}()
	t.Cleanup(func() {
		conn.Close()
		<-done
	})
	return answered
}

// answer packs a response for instance of service, as hashicorp/mdns's
// responder packs one: PTR, SRV, A or AAAA, TXT.
func answer(t *testing.T, service, instance string, ip net.IP, port uint16) []byte {
	t.Helper()
	name := instance + "." + service
	hdr := func(n string, typ uint16) dns.RR_Header {
		return dns.RR_Header{Name: n, Rrtype: typ, Class: dns.ClassINET, Ttl: 120}
	}
	m := &dns.Msg{MsgHdr: dns.MsgHdr{Response: true, Authoritative: true}}
	m.Answer = []dns.RR{
		&dns.PTR{Hdr: hdr("_serf_alpha._tcp.local.", dns.TypePTR), Ptr: name},
		&dns.SRV{Hdr: hdr(name, dns.TypeSRV), Priority: 10, Weight: 1, Port: port, Target: name},
	}
	if ip4 := ip.To4(); ip4 != nil {
		m.Answer = append(m.Answer, &dns.A{Hdr: hdr(name, dns.TypeA), A: ip4})
	} else {
		m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr(name, dns.TypeAAAA), AAAA: ip})
	}
	m.Answer = append(m.Answer, &dns.TXT{Hdr: hdr(name, dns.TypeTXT), Txt: []string{"Serf 'alpha' cluster"}})
	p, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestMDNSHostileAnswers answers every lookup with answers that cannot
// be right, packets that do not parse and a flood of addresses: none of
// the bad ones may be joined, batches must stay within the bound, the
// complaints must be logged at most once per poll each, and discovery
// must go on working.
func TestMDNSHostileAnswers(t *testing.T) {
	if !inNetns(t) {
		return
	}
	const serf = "_serf_alpha._tcp.local."
	logBuf := &testutil.Buffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log of the node asking:\n%s", logBuf.String())
		}
	})
	const selfIP = "127.0.0.11"
	selfPort := testutil.FreePort(t, selfIP)
	type ans struct {
		service, instance, ip string
		port                  uint16
		why                   string // why it must not be joined; "" if it may
	}
	answers := []ans{
		{serf, "good", "127.0.0.50", 7000, ""},
		{serf, "port0", "127.0.0.51", 0, "port 0"},
		{serf, "unspec", "0.0.0.0", 7001, "unspecified"},
		{serf, "mcast", "224.0.0.1", 7002, "multicast"},
		{serf, "bcast", "255.255.255.255", 7003, "broadcast"},
		{serf, "ll", "fe80::1", 7004, "link-local without a zone"},
		{"_http._tcp.local.", "web", "127.0.0.52", 80, "another service"},
		{"_serf_beta._tcp.local.", "beta", "127.0.0.53", 7005, "another cluster"},
		{serf, "impostor", selfIP, uint16(selfPort), "our own address"},
	}
	bad := map[string]string{}
	for _, a := range answers {
		if a.why != "" {
			bad[net.JoinHostPort(a.ip, strconv.Itoa(int(a.port)))] = a.why
		}
	}
	var flood atomic.Int64
	build := func() [][]byte {
		var out [][]byte
		for _, a := range answers {
			out = append(out, answer(t, a.service, a.instance, net.ParseIP(a.ip), a.port))
		}
		out = append(out, []byte("not DNS at all"), []byte{0, 1}, make([]byte, 12+5))
		// One packet of many answers: hashicorp/mdns reports at most one.
		many := &dns.Msg{MsgHdr: dns.MsgHdr{Response: true}}
		for i := range 400 {
			many.Answer = append(many.Answer, &dns.PTR{
				Hdr: dns.RR_Header{Name: serf, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: 120},
				Ptr: fmt.Sprintf("many%d.%s", i, serf)})
		}
		pm, err := many.Pack()
		if err != nil {
			t.Error(err)
		}
		out = append(out, pm)
		// A flood of well-formed answers, new addresses each lookup.
		base := flood.Add(600) - 600
		for i := base; i < base+600; i++ {
			ip := net.IPv4(127, 2, byte(i/250), byte(i%250+1))
			out = append(out, answer(t, serf, fmt.Sprint("f", i), ip, 7946))
		}
		return out
	}

	answered := hostileResponder(t, build)
	a := startMDNS(t, "alpha", "a", selfIP, func(c *MDNSConfig) {
		c.Logger = slog.New(slog.NewTextHandler(logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
		c.Port = selfPort
	})
	testutil.WaitFor(t, 30*time.Second, "the hostile responder to answer a lookup", func() bool { return answered.Load() > 0 })
	testutil.WaitFor(t, 30*time.Second, "the good answer to be joined", func() bool { return a.joins.count("127.0.0.50:7000") == 1 })
	waitPolls(t, 3, a)

	// A well-behaved peer that comes now is still found.
	b := startMDNS(t, "alpha", "b", "127.0.0.12", nil)
	testutil.WaitFor(t, 30*time.Second, "a to join a new peer amid the flood", func() bool { return a.joins.count(b.addr) == 1 })
	a.Stop()
	polls := a.polls.Load()

	a.joins.mu.Lock()
	batches := slices.Clone(a.joins.batches)
	a.joins.mu.Unlock()
	for i, batch := range batches {
		if len(batch) > mdnsMaxPending {
			t.Errorf("batch %d has %d addresses; want at most %d", i, len(batch), mdnsMaxPending)
		}
	}
	for _, addr := range a.joins.all() {
		if why, ok := bad[addr]; ok {
			t.Errorf("joined %s (%s)", addr, why)
		}
		if !strings.HasPrefix(addr, "127.2.") && addr != "127.0.0.50:7000" && addr != b.addr {
			t.Errorf("joined %s; nobody answered with it", addr)
		}
	}
	if a.ignored.Load() < 5 {
		t.Errorf("%d answers ignored; want the 5 bad ones of each lookup at least", a.ignored.Load())
	}
	// Each kind of complaint at most once per poll (and once before the
	// first, from the responder): an ignored answer's kind is its reason.
	kinds := map[string]int{}
	for _, line := range strings.Split(logBuf.String(), "\n") {
		switch {
		case strings.Contains(line, "ignored an mDNS answer"):
			_, reason, _ := strings.Cut(line, "REASON=")
			reason, _, _ = strings.Cut(reason, " INSTANCE=")
			kinds["ignored: "+reason]++
		case strings.Contains(line, "Failed to unpack packet"):
			kinds["unpack"]++
		}
	}
	for _, kind := range []string{"unpack", `ignored: "address is unspecified"`, `ignored: "address is multicast"`,
		`ignored: "address is broadcast"`, `ignored: "link-local address without a zone"`, `ignored: "not our service"`} {
		if n := kinds[kind]; n == 0 || n > int(polls+1) {
			t.Errorf("%s logged %d times in %d polls; want 1 to %d", kind, n, polls, polls+1)
		}
		delete(kinds, kind)
	}
	if len(kinds) != 0 {
		t.Errorf("other complaints logged: %v; want none", kinds)
	}
}

// TestMDNSWithStockSerf runs a gossip node with mDNS on interface lo and
// a stock serf agent with -discover of the same name: each must find the
// other. Our Join only records, so the stock agent can only learn of us
// by finding us through mDNS itself. IPv6 multicast cannot be sent on lo
// (it goes through the namespace's veth pair): our lookups must fall
// back to IPv4 by themselves.
func TestMDNSWithStockSerf(t *testing.T) {
	if !inNetns(t) {
		return
	}
	bin := testutil.SerfBin(t)
	g := newNode(t, "gossip", 22, nil)
	self := g.LocalMember()
	j := &joins{}
	m, err := StartMDNS(MDNSConfig{Cluster: "interop", NodeName: "gossip", Addr: self.Addr, Port: int(self.Port),
		Interface: "lo", Logger: testLogger(t, "gossip mdns"), Join: j.join, PollInterval: testPoll})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)

	const ip = "127.0.0.21"
	gossipPort, rpcPort := testutil.FreePort(t, ip), testutil.FreePort(t, ip)
	rpc := net.JoinHostPort(ip, strconv.Itoa(rpcPort))
	stock := net.JoinHostPort(ip, strconv.Itoa(gossipPort))
	// Stock serf 0.10.2 dereferences a nil interface at start with
	// -discover unless it is told one. Its lookups, as ours, fail whole
	// where IPv6 multicast cannot be sent, as on lo: it needs IPv6 off.
	serfLog := startStockAgent(t, bin, "stock", ip, gossipPort, rpc, "-discover", "interop",
		"-mdns-iface", "lo", "-mdns-disable-ipv6")

	testutil.WaitFor(t, settle, "our mDNS to find the stock agent", func() bool { return j.count(stock) > 0 })
	testutil.WaitFor(t, settle, "the stock agent to find us by mDNS and see us alive", func() bool {
		ms, err := serfMembers(bin, rpc)
		return err == nil && ms["gossip"].Status == "alive"
	})
	if got := j.all(); slices.ContainsFunc(got, func(a string) bool { return a != stock }) {
		t.Errorf("our mDNS joined %v; want only the stock agent %s", got, stock)
	}
	if m.ignored.Load() != 0 {
		t.Errorf("our mDNS ignored %d answers; want none from the stock agent", m.ignored.Load())
	}
	if n := m.fallbacks.Load(); n == 0 {
		t.Error("our lookups never fell back to IPv4; want them to, IPv6 being unsendable on lo")
	}
	for _, line := range strings.Split(serfLog.String(), "\n") {
		if strings.Contains(line, "mdns") && (strings.Contains(line, "[ERR]") || strings.Contains(line, "[WARN]")) {
			t.Errorf("stock serf logged %q; want no mDNS complaint", line)
		}
	}
}

// listen5353 opens a UDP socket on port 5353 of every address of
// network with setsockopt options set to 1, as another mDNS program
// would.
func listen5353(t *testing.T, network string, opts ...int) (net.PacketConn, error) {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			for _, opt := range opts {
				if serr == nil {
					serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, opt, 1)
				}
			}
		})
		return errors.Join(err, serr)
	}}
	pc, err := lc.ListenPacket(t.Context(), network, ":5353")
	if err == nil {
		t.Cleanup(func() { pc.Close() })
	}
	return pc, err
}

// TestMDNSSharesPort5353 checks what the doc says of UDP port 5353: mDNS
// works beside a socket opened as avahi-daemon opens its own
// (SO_REUSEADDR and SO_REUSEPORT), which gets our lookups too; and
// StartMDNS fails, saying so, when a program holds the port alone.
func TestMDNSSharesPort5353(t *testing.T) {
	if !inNetns(t) {
		return
	}
	pc, err := listen5353(t, "udp4", unix.SO_REUSEADDR, unix.SO_REUSEPORT)
	if err != nil {
		t.Fatal(err)
	}
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := ipv4.NewPacketConn(pc).JoinGroup(lo, &net.UDPAddr{IP: net.ParseIP("224.0.0.251")}); err != nil {
		t.Fatal(err)
	}
	heard := make(chan struct{})
	go func() {
		buf := make([]byte, 65536)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var q dns.Msg
			if q.Unpack(buf[:n]) == nil && len(q.Question) == 1 && q.Question[0].Name == "_serf_alpha._tcp.local." {
				close(heard)
				return
			}
		}
	}()
	a := startMDNS(t, "alpha", "a", "127.0.0.11", nil)
	b := startMDNS(t, "alpha", "b", "127.0.0.12", nil)
	testutil.WaitFor(t, 30*time.Second, "a and b to find each other beside the avahi-like socket", func() bool {
		return a.joins.count(b.addr) == 1 && b.joins.count(a.addr) == 1
	})
	testutil.Recv(t, heard, 30*time.Second, "the avahi-like socket to hear a lookup")
	a.Stop()
	b.Stop()
	pc.Close()

	// A dual-stack socket without SO_REUSEADDR holds 5353 of both families.
	if _, err := listen5353(t, "udp"); err != nil {
		t.Fatal(err)
	}
	m, err := StartMDNS(MDNSConfig{Cluster: "alpha", NodeName: "c", Addr: net.ParseIP("127.0.0.13"), Port: 7946,
		Join: func(context.Context, []string) {}})
	if err == nil {
		m.Stop()
		t.Fatal("StartMDNS succeeded while another program holds UDP port 5353 alone; want an error")
	}
	if !strings.Contains(err.Error(), "5353") {
		t.Errorf("StartMDNS error %q does not name UDP port 5353", err)
	}
}

package gossip

// mDNS discovery: Serf's -discover.

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/mdns"
)

// MDNSConfig configures mDNS discovery.
type MDNSConfig struct {
	// Cluster is the discover name; required. CheckMDNSCluster tells
	// which names are valid.
	Cluster string
	// NodeName names this node's mDNS service instance.
	NodeName string
	// Addr and Port are the gossip address advertised: memberlist's
	// address and port for this node. Addr must be a unicast address,
	// not 0.0.0.0 or ::.
	Addr net.IP
	Port int
	// Interface is the network interface mDNS uses: its multicast
	// listener joins the group there and lookups are sent out of it. ""
	// leaves the choice to the system: its default multicast interface,
	// the one the route to 224.0.0.251 (ff02::fb) goes through; it is
	// one interface, not every one. Either way hashicorp/mdns's lookup
	// also joins the group on the default interface, and drops a family
	// for which that fails: a host with no route for multicast at all
	// needs one (e.g. a default route) for lookups to work.
	Interface string
	// DisableIPv4 and DisableIPv6 keep lookups off that family; both
	// set is an error. They do not touch the responder, which
	// hashicorp/mdns always opens on every family it can, nor which
	// family of address a peer advertises.
	DisableIPv4 bool
	DisableIPv6 bool
	// Logger receives records with fields. Errors that repeat, from the
	// network or from hashicorp/mdns, are logged at most once per poll
	// each, with how many they stand for (REPEATED). nil discards.
	Logger *slog.Logger
	// Join is called with batches of "ip:port" addresses to join. It
	// runs in a goroutine of its own, one batch at a time, and should
	// return when ctx is done: ctx is cancelled at Stop. Required.
	Join func(ctx context.Context, addrs []string)
	// IsMember, if set, reports whether an "ip:port" address is that of
	// a member alive in the cluster; such an address is not joined.
	IsMember func(addr string) bool
	// PollInterval is how often peers are looked up; the first lookup
	// runs at start. Default 60s.
	PollInterval time.Duration

	// Knobs for tests; zero means the default.
	seenTTL      time.Duration // how long a joined address is remembered
	queryTimeout time.Duration // how long one lookup listens for answers
}

// MDNS is mDNS discovery started by StartMDNS: a responder that answers
// for this node and a loop that looks peers up and joins them.
//
// It does what Serf's -discover does and answers Serf the same way:
// the service is _serf_<cluster>._tcp in the domain local., the instance
// is named after the node (made a valid DNS label when the name is not
// one), the TXT record is "Serf '<cluster>' cluster", and the SRV and A
// (or AAAA) records give the gossip address and port. Peers are looked
// up at start and every PollInterval; a lookup listens for answers for a
// second, and the addresses it found are joined in one batch when it
// ends. (Answers are read only once the lookup is over: hashicorp/mdns
// goes on writing to an answer it has handed over when more packets
// about that instance come, a data race for a reader that does not
// wait.)
//
// Unlike Serf, an address is not remembered forever: an address handed
// to Join is not handed again for 10 minutes, so a peer that restarted
// or moved is joined again. With IsMember set, an address of an alive
// member is never joined, and one that is not a member is retried at the
// next poll, then after twice as long each time up to 10 minutes. At
// most 256 addresses wait for a batch; more in one batch are dropped
// (counted, logged) and come back at a later poll.
//
// Also unlike Serf, a lookup that cannot be sent over one family (IPv6
// multicast on an interface without it, say), which hashicorp/mdns gives
// up whole, is sent again over the other family alone, with a warning
// once per poll; DisableIPv6 (or DisableIPv4) avoids the attempt.
//
// Answers that cannot be right are ignored, counted and logged at most
// once per poll: another service's, an address that is unspecified,
// multicast or broadcast, an IPv6 link-local address without a zone.
// (One without a port, or with port 0, hashicorp/mdns never reports.)
// Our own address answers every lookup and is skipped silently. Packets
// that do not parse are dropped by hashicorp/mdns, whose complaints are
// logged at most once per poll each.
//
// Limits, as with Serf:
//   - mDNS reaches one link (L2 segment): peers behind a router are not
//     found; join them by address.
//   - The network must carry multicast (224.0.0.251 and ff02::fb, UDP
//     port 5353); many cloud networks do not, and a firewall must let
//     UDP 5353 in.
//   - The responder listens on UDP port 5353, as does the lookup.
//     hashicorp/mdns opens these sockets with Go's
//     net.ListenMulticastUDP, which on Linux sets SO_REUSEADDR and not
//     SO_REUSEPORT. Linux lets UDP sockets share a port when each of
//     them has SO_REUSEADDR set, so SO_REUSEPORT does not matter here:
//     serfd coexists with avahi-daemon (which sets both), with
//     systemd-resolved's mDNS (recent versions set SO_REUSEADDR; old
//     ones turn their own mDNS off when the port is taken) and with
//     another serfd on the host. A program that binds 5353 without
//     SO_REUSEADDR (exclusively, or with SO_REUSEPORT alone) keeps
//     StartMDNS from succeeding, or serfd keeps it from starting.
//     Multicast datagrams reach every socket sharing the port; a
//     unicast one reaches only one of them.
//   - The answer carries one address, Addr: a node with several
//     addresses is found on the one it advertises.
//   - Discovery only finds peers; whether to join them is not
//     authenticated. Anyone on the link can answer, so a keyring (gossip
//     encryption) is what keeps strangers out of the cluster.
type MDNS struct {
	cfg      MDNSConfig
	log      *slog.Logger
	service  string // _serf_<cluster>._tcp
	suffix   string // ._serf_<cluster>._tcp.local., lower case
	self     string // our advertised ip:port
	iface    *net.Interface
	libLog   *log.Logger // what hashicorp/mdns writes to
	server   *mdns.Server
	kick     chan struct{} // a batch is ready to join
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	stopOnce sync.Once
	limit    pollLimiter

	mu      sync.Mutex
	pending []string // addresses waiting for a batch, in the order found
	seen    map[string]seenAddr

	// Counters, for tests and records.
	polls     atomic.Uint64 // lookups finished
	fallbacks atomic.Uint64 // lookups sent again over one family
	ignored   atomic.Uint64 // answers that cannot be right
	dropped   atomic.Uint64 // addresses past mdnsMaxPending
}

// seenAddr remembers an address handed to Join: at when, and after how
// long since then it may be handed again.
type seenAddr struct {
	at   time.Time
	wait time.Duration
}

const (
	mdnsDomain          = "local."
	mdnsDefaultPoll     = 60 * time.Second
	mdnsQueryTimeout    = time.Second // one lookup listens this long
	mdnsSeenTTL         = 10 * time.Minute
	mdnsMaxPending      = 256
	mdnsMaxSeen         = 4096
	mdnsEntryBuffer     = 2 * mdnsMaxPending // answers one lookup may report; hashicorp/mdns drops past this
	mdnsStopWait        = 5 * time.Second    // Stop waits this long for a Join that ignores its ctx
	mdnsMaxClusterBytes = 63 - len("_serf_")
	mdnsMaxLogLine      = 512
)

// CheckMDNSCluster reports whether name can be a discover name: it
// becomes the DNS label _serf_<name>, so it must be 1 to 57 bytes of
// ASCII letters, digits and '-'.
func CheckMDNSCluster(name string) error {
	if name == "" {
		return errors.New("discover name is empty; it names the cluster to find by mDNS")
	}
	if len(name) > mdnsMaxClusterBytes {
		return fmt.Errorf("discover name %q is %d bytes; at most %d fit in the DNS label _serf_<name>",
			name, len(name), mdnsMaxClusterBytes)
	}
	for i := 0; i < len(name); i++ {
		if !isLDH(name[i]) {
			return fmt.Errorf("discover name %q has %q at byte %d; only ASCII letters, digits and '-' may be in a DNS label",
				name, name[i], i)
		}
	}
	return nil
}

func isLDH(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-'
}

// mdnsInstance is the service instance label for a node: the node name
// when it is a valid label, else the name made one (bytes other than
// letters, digits, '-' and '_' become '-', cut to fit) with a hash of the
// whole name, so that two names do not become one instance, which
// hashicorp/mdns would report once.
func mdnsInstance(node string) string {
	ok := len(node) <= 63
	for i := 0; ok && i < len(node); i++ {
		ok = isLDH(node[i]) || node[i] == '_'
	}
	if ok {
		return node
	}
	b := []byte(node)
	for i := range b {
		if !isLDH(b[i]) && b[i] != '_' {
			b[i] = '-'
		}
	}
	if len(b) > 54 {
		b = b[:54]
	}
	h := fnv.New32a()
	h.Write([]byte(node))
	return fmt.Sprintf("%s-%08x", b, h.Sum32())
}

// StartMDNS checks cfg, starts the responder and the poll loop. It
// fails if no multicast socket can be opened for the responder.
func StartMDNS(cfg MDNSConfig) (*MDNS, error) {
	m, err := newMDNS(cfg)
	if err != nil {
		return nil, err
	}
	if err := m.start(); err != nil {
		return nil, err
	}
	return m, nil
}

// newMDNS checks cfg and builds an MDNS that is not started: no socket
// is open, no goroutine runs.
func newMDNS(cfg MDNSConfig) (*MDNS, error) {
	if err := CheckMDNSCluster(cfg.Cluster); err != nil {
		return nil, err
	}
	if cfg.NodeName == "" {
		return nil, errors.New("mDNS: the node name is empty")
	}
	ip := cfg.Addr
	if ip4 := ip.To4(); ip4 != nil {
		ip = ip4
	}
	if len(ip) != net.IPv4len && len(ip) != net.IPv6len {
		return nil, fmt.Errorf("mDNS: advertised address %v is not an IP address", cfg.Addr)
	}
	if reason := badAddr(ip); reason != "" {
		return nil, fmt.Errorf("mDNS: advertised address %v is %s; give the address peers reach this node at", ip, reason)
	}
	if cfg.Port <= 0 || cfg.Port > 65535 {
		return nil, fmt.Errorf("mDNS: advertised port %d is not 1-65535", cfg.Port)
	}
	if cfg.DisableIPv4 && cfg.DisableIPv6 {
		return nil, errors.New("mDNS: disable_ipv4 and disable_ipv6 are both set; at least one family must be left for lookups")
	}
	if cfg.Join == nil {
		return nil, errors.New("mDNS: no Join function")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = mdnsDefaultPoll
	}
	if cfg.seenTTL <= 0 {
		cfg.seenTTL = mdnsSeenTTL
	}
	if cfg.queryTimeout <= 0 {
		cfg.queryTimeout = mdnsQueryTimeout
	}
	cfg.Addr = ip

	m := &MDNS{
		cfg:     cfg,
		service: "_serf_" + cfg.Cluster + "._tcp",
		self:    net.JoinHostPort(ip.String(), strconv.Itoa(cfg.Port)),
		kick:    make(chan struct{}, 1),
		seen:    map[string]seenAddr{},
		limit:   pollLimiter{epoch: 1, kinds: map[string]*pollKind{}},
	}
	m.suffix = strings.ToLower("." + m.service + "." + mdnsDomain)
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.log = cfg.Logger.With("COMPONENT", "mdns")
	m.libLog = log.New(mdnsLibWriter{m}, "", 0)
	if cfg.Interface != "" {
		iface, err := net.InterfaceByName(cfg.Interface)
		if err != nil {
			m.cancel()
			return nil, fmt.Errorf("mDNS interface %q: %w", cfg.Interface, err)
		}
		if iface.Flags&net.FlagMulticast == 0 {
			m.cancel()
			return nil, fmt.Errorf("mDNS interface %q does not do multicast", cfg.Interface)
		}
		m.iface = iface
	}
	return m, nil
}

// start opens the responder and starts the poll loop.
func (m *MDNS) start() error {
	cfg := m.cfg
	ifaceName := cfg.Interface
	if ifaceName == "" {
		ifaceName = "(default)"
	}
	ip := cfg.Addr
	instance := mdnsInstance(cfg.NodeName)
	// The host name is the instance's own name: unique per node, so that
	// several nodes on one host do not answer for one host name, and
	// independent of the machine's host name.
	host := instance + "." + m.service + "." + mdnsDomain
	txt := fmt.Sprintf("Serf '%s' cluster", cfg.Cluster)
	zone, err := mdns.NewMDNSService(instance, m.service, mdnsDomain, host, cfg.Port, []net.IP{ip}, []string{txt})
	if err != nil {
		return fmt.Errorf("mDNS service: %w", err)
	}
	m.server, err = mdns.NewServer(&mdns.Config{Zone: zone, Iface: m.iface, Logger: m.libLog})
	if err != nil {
		m.cancel()
		return fmt.Errorf("mDNS responder on interface %s (UDP port 5353): %w", ifaceName, err)
	}
	m.wg.Add(2)
	go m.pollLoop()
	go m.joinLoop()
	m.log.Info("mDNS discovery started", "SERVICE", m.service, "ADDR", m.self,
		"INTERFACE", ifaceName, "POLL_INTERVAL", cfg.PollInterval.String())
	return nil
}

// Stop stops the responder and the poll loop and cancels a Join running.
// It waits for its goroutines: about a second for a lookup under way
// (hashicorp/mdns closes its sockets at once but listens out its
// timeout), at most mdnsStopWait for a Join that does not return at once.
// Safe to call more than once.
func (m *MDNS) Stop() {
	m.stopOnce.Do(func() {
		m.cancel()
		_ = m.server.Shutdown()
		done := make(chan struct{})
		go func() {
			m.wg.Wait()
			close(done)
		}()
		t := time.NewTimer(m.cfg.queryTimeout + mdnsStopWait)
		defer t.Stop()
		select {
		case <-done:
			m.log.Info("mDNS discovery stopped")
		case <-t.C:
			m.log.Warn("mDNS discovery stopped without waiting for a join that ignores its cancellation")
		}
	})
}

// pollLoop looks peers up at start and every PollInterval.
func (m *MDNS) pollLoop() {
	defer m.wg.Done()
	tick := time.NewTicker(m.cfg.PollInterval)
	defer tick.Stop()
	for m.ctx.Err() == nil {
		m.poll()
		select {
		case <-m.ctx.Done():
		case <-tick.C:
		}
	}
}

// poll runs one lookup, then keeps the addresses worth joining and
// kicks joinLoop if there are any.
func (m *MDNS) poll() {
	m.limit.newPoll()
	m.prune(time.Now())
	entries := make(chan *mdns.ServiceEntry, mdnsEntryBuffer)
	params := &mdns.QueryParam{
		Service:     m.service,
		Domain:      mdnsDomain,
		Timeout:     m.cfg.queryTimeout,
		Interface:   m.iface,
		Entries:     entries,
		DisableIPv4: m.cfg.DisableIPv4,
		DisableIPv6: m.cfg.DisableIPv6,
		Logger:      m.libLog,
	}
	// QueryContext closes its sockets as soon as ctx is done, but listens
	// out its Timeout all the same.
	err := mdns.QueryContext(m.ctx, params)
	// hashicorp/mdns sends a lookup over IPv4, then IPv6, and gives the
	// whole lookup up, listening to nothing, if either send fails: where
	// one family cannot send multicast (IPv6 on an interface without it,
	// say), no lookup would ever succeed. Look up over the other only.
	var op *net.OpError
	if err != nil && m.ctx.Err() == nil && errors.As(err, &op) &&
		(op.Net == "udp6" && !m.cfg.DisableIPv4 || op.Net == "udp4" && !m.cfg.DisableIPv6) {
		family, other := "IPv6", "IPv4"
		if op.Net == "udp4" {
			family, other = other, family
		}
		// Said once as a warning: on a host without that family's
		// multicast it fails at every poll, and nothing changes.
		level := slog.LevelWarn
		if m.fallbacks.Load() > 0 {
			level = slog.LevelDebug
		}
		m.note(level, "mDNS lookup failed over "+family,
			"mDNS lookup could not be sent over "+family+"; looking up over "+other+" only",
			"HINT", "disable_"+strings.ToLower(family)+" = true skips the attempt",
			"ERROR", err.Error())
		m.fallbacks.Add(1)
		retry := *params
		retry.DisableIPv6, retry.DisableIPv4 = op.Net == "udp6", op.Net == "udp4"
		err = mdns.QueryContext(m.ctx, &retry)
	}
	m.polls.Add(1)
	if m.ctx.Err() != nil {
		return
	}
	if err != nil {
		attrs := []any{"ERROR", err.Error()}
		// hashicorp/mdns joins the lookup's multicast group on the
		// interface the route to it names, whatever Interface says.
		if strings.Contains(err.Error(), "bind to any multicast") {
			attrs = append(attrs, "HINT", "no route for multicast: the host needs a default route or one for 224.0.0.0/4 (ip route add 224.0.0.0/4 dev IFACE)")
		}
		m.note(slog.LevelWarn, "mDNS lookup failed", "mDNS lookup failed", attrs...)
	}
	// QueryContext has returned: hashicorp/mdns writes to no entry now.
	added := false
	for len(entries) > 0 {
		if m.consider(<-entries) {
			added = true
		}
	}
	if added {
		select {
		case m.kick <- struct{}{}:
		default: // a kick is waiting already
		}
	}
}

// joinLoop hands each batch to Join, one at a time.
func (m *MDNS) joinLoop() {
	defer m.wg.Done()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-m.kick:
		}
		batch := m.takeBatch(time.Now())
		if len(batch) == 0 || m.ctx.Err() != nil {
			continue
		}
		m.log.Info("joining nodes found by mDNS", "COUNT", len(batch), "ADDRS", strings.Join(batch, ","))
		m.cfg.Join(m.ctx, batch)
	}
}

// consider checks one answer and adds its address to the batch if it is
// worth joining; it reports whether it added one.
func (m *MDNS) consider(e *mdns.ServiceEntry) bool {
	addr, reason := m.entryAddr(e)
	if reason != "" {
		m.ignored.Add(1)
		var name string
		if e != nil {
			name = truncate(e.Name, 255)
		}
		m.note(slog.LevelWarn, "ignored mDNS answer: "+reason, "ignored an mDNS answer",
			"REASON", reason, "INSTANCE", name, "IGNORED_TOTAL", m.ignored.Load())
		return false
	}
	if addr == m.self {
		return false
	}
	if m.cfg.IsMember != nil && m.cfg.IsMember(addr) {
		m.mu.Lock()
		delete(m.seen, addr) // joined: a later failure starts the backoff anew
		m.mu.Unlock()
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if s, ok := m.seen[addr]; ok && time.Since(s.at) < s.wait {
		return false
	}
	for _, p := range m.pending {
		if p == addr {
			return false
		}
	}
	if len(m.pending) >= mdnsMaxPending {
		m.dropped.Add(1)
		m.note(slog.LevelWarn, "mDNS batch full", "too many addresses found by mDNS; dropped one until a later poll",
			"ADDR", addr, "LIMIT", mdnsMaxPending, "DROPPED_TOTAL", m.dropped.Load())
		return false
	}
	m.pending = append(m.pending, addr)
	return true
}

// takeBatch empties the batch and remembers its addresses as handed to
// Join at now.
func (m *MDNS) takeBatch(now time.Time) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	batch := m.pending
	m.pending = nil
	for _, addr := range batch {
		wait := m.cfg.seenTTL
		if m.cfg.IsMember != nil {
			// Not a member when found: retry at the next poll, then back off.
			wait = m.cfg.PollInterval / 2
			if s, ok := m.seen[addr]; ok {
				wait = 2 * s.wait
			}
			wait = min(wait, m.cfg.seenTTL)
		}
		if _, ok := m.seen[addr]; !ok && len(m.seen) >= mdnsMaxSeen {
			m.evictOldest()
		}
		m.seen[addr] = seenAddr{at: now, wait: wait}
	}
	return batch
}

// evictOldest forgets the address handed to Join longest ago. Called
// with m.mu held.
func (m *MDNS) evictOldest() {
	var oldest string
	var at time.Time
	for addr, s := range m.seen {
		if oldest == "" || s.at.Before(at) {
			oldest, at = addr, s.at
		}
	}
	delete(m.seen, oldest)
}

// prune forgets addresses handed to Join seenTTL or longer ago.
func (m *MDNS) prune(now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for addr, s := range m.seen {
		if now.Sub(s.at) >= m.cfg.seenTTL {
			delete(m.seen, addr)
		}
	}
}

// entryAddr returns the "ip:port" an answer advertises, or why it cannot
// be right.
func (m *MDNS) entryAddr(e *mdns.ServiceEntry) (addr, reason string) {
	if e == nil {
		return "", "empty answer"
	}
	if !strings.HasSuffix(strings.ToLower(e.Name), m.suffix) {
		return "", "not our service"
	}
	if e.Port <= 0 || e.Port > 65535 {
		return "", "port out of range"
	}
	var host string
	switch {
	case e.AddrV4 != nil:
		ip := e.AddrV4.To4()
		if ip == nil {
			return "", "malformed IPv4 address"
		}
		if r := badAddr(ip); r != "" {
			return "", "address is " + r
		}
		host = ip.String()
	case e.AddrV6IPAddr != nil:
		ip := e.AddrV6IPAddr.IP
		if len(ip) != net.IPv6len {
			return "", "malformed IPv6 address"
		}
		if r := badAddr(ip); r != "" {
			return "", "address is " + r
		}
		host = ip.String()
		if ip.IsLinkLocalUnicast() {
			if e.AddrV6IPAddr.Zone == "" {
				return "", "link-local address without a zone"
			}
			host += "%" + e.AddrV6IPAddr.Zone
		}
	default:
		return "", "no address"
	}
	return net.JoinHostPort(host, strconv.Itoa(e.Port)), ""
}

// badAddr says why ip cannot be a node's gossip address, "" if it can.
func badAddr(ip net.IP) string {
	switch {
	case ip.IsUnspecified():
		return "unspecified"
	case ip.IsMulticast():
		return "multicast"
	case ip.Equal(net.IPv4bcast):
		return "broadcast"
	}
	return ""
}

// note logs msg at level unless a record of kind was logged in this poll
// already; the record carries how many it stands for (REPEATED).
func (m *MDNS) note(level slog.Level, kind, msg string, attrs ...any) {
	ctx := context.Background()
	if !m.log.Enabled(ctx, level) {
		return
	}
	if n, ok := m.limit.allow(kind); ok {
		if n > 1 {
			attrs = append(attrs, "REPEATED", n)
		}
		m.log.Log(ctx, level, msg, attrs...)
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// mdnsLibWriter turns hashicorp/mdns's log lines ("[ERR] mdns: ...")
// into records, each kind at most once per poll. Its errors are about
// packets from the network or sockets it could not open: warnings here.
// Its [INFO] lines are about its own sockets: debug.
type mdnsLibWriter struct{ m *MDNS }

func (w mdnsLibWriter) Write(p []byte) (int, error) {
	level, msg := parseLevel(p)
	msg = strings.TrimPrefix(msg, "mdns: ")
	if w.m.cfg.DisableIPv4 && strings.HasSuffix(msg, "on IPv4") ||
		w.m.cfg.DisableIPv6 && strings.HasSuffix(msg, "on IPv6") {
		return len(p), nil // that family is off, as configured
	}
	switch {
	case w.m.ctx.Err() != nil:
		level = slog.LevelDebug // its sockets closing under it at Stop
	case level >= slog.LevelError:
		level = slog.LevelWarn
	case level < slog.LevelWarn:
		level = slog.LevelDebug
	}
	w.m.note(level, "lib: "+lineKind(msg), truncate(msg, mdnsMaxLogLine), "SOURCE", "hashicorp/mdns")
	return len(p), nil
}

// pollLimiter lets one record of each kind through per poll and counts
// the rest. Kinds past maxLogKinds share one count.
type pollLimiter struct {
	mu    sync.Mutex
	epoch uint64 // the poll running; starts at 1
	kinds map[string]*pollKind
	other pollKind
}

type pollKind struct {
	logged uint64 // the epoch of the last record; 0 for none
	held   uint64 // occurrences since the last record, counting this one
}

func (l *pollLimiter) newPoll() {
	l.mu.Lock()
	l.epoch++
	l.mu.Unlock()
}

// allow counts one occurrence of kind and reports whether a record is
// due, and how many occurrences it stands for.
func (l *pollLimiter) allow(kind string) (uint64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := perKind(l.kinds, &l.other, kind)
	k.held++
	if k.logged == l.epoch {
		return 0, false
	}
	n := k.held
	k.logged, k.held = l.epoch, 0
	return n, true
}

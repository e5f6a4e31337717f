package gossip

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// Serf's protocol numbers.
const (
	serfProtocol       = 5 // memberlist delegate version we speak
	serfProtocolMin    = 2
	serfProtocolMax    = 5
	memberlistProtocol = 2 // what every Serf protocol maps to
)

// Size limits.
const (
	defaultUserEventSizeLimit = 512
	maxUserEventSizeLimit     = 9 * 1024 // Serf's hard cap
	defaultEventQueue         = 1024
	defaultBacklog            = 128  // user events, and queries, waiting in the gossip queue
	maxQueueDepth             = 4096 // broadcast queues are pruned beyond this
)

// maxTimeScale bounds Config.TimeScale.
const maxTimeScale = 100

// timing holds the durations Serf hard-codes; tests shorten them.
type timing struct {
	broadcastTimeout time.Duration // wait for our leave intent to go out
	propagateDelay   time.Duration // stay up after leaving so peers learn it
	reapInterval     time.Duration
	reconnectTimeout time.Duration   // failed members are forgotten after this
	tombstoneTimeout time.Duration   // left members are forgotten after this
	intentTimeout    time.Duration   // intents about unknown nodes expire
	catchUp          []time.Duration // push/pulls after a join (catchup.go)
}

func defaultTiming() timing {
	return timing{
		broadcastTimeout: 5 * time.Second,
		propagateDelay:   time.Second,
		reapInterval:     15 * time.Second,
		reconnectTimeout: 24 * time.Hour,
		tombstoneTimeout: 24 * time.Hour,
		intentTimeout:    5 * time.Minute,
		catchUp:          defaultCatchUp,
	}
}

// clusterState is the local node's lifecycle state.
type clusterState int

const (
	stateAlive clusterState = iota
	stateLeaving
	stateLeft
	stateShutdown
)

func (c *Cluster) clusterState() clusterState {
	c.stateMu.Lock()
	defer c.stateMu.Unlock()
	return c.state
}

// Stats is a point-in-time summary of a Cluster, for `info` and status lines.
type Stats struct {
	Members                             int // every known member, self included
	Alive, Leaving, Left, Failed        int
	MemberTime                          uint64 // membership Lamport clock
	EventTime                           uint64 // user event Lamport clock
	QueryTime                           uint64 // query Lamport clock
	IntentQueue, EventQueue, QueryQueue int    // messages waiting to be gossiped
	DroppedEvents                       uint64 // events dropped because OnEvent fell behind
	TooOldEvents                        uint64 // user events from gossip dropped behind the dedup window
	RefusedEvents, RefusedQueries       uint64 // refused with ErrBusy
	HealthScore                         int    // memberlist's awareness score; 0 is healthy
	CoordinateResets                    uint64 // times the local coordinate became invalid and restarted
	Flaps                               uint64 // failed members back within 60s
	Traffic                             TrafficStats
}

// Create binds the gossip transport and starts the node alone in its cluster.
func Create(cfg Config) (*Cluster, error) {
	return create(cfg, defaultTiming())
}

func create(cfg Config, tm timing) (*Cluster, error) {
	mc, err := checkConfig(&cfg)
	if err != nil {
		return nil, err
	}
	c, err := newCluster(cfg, tm, mc.RetransmitMult)
	if err != nil {
		return nil, err
	}
	d := delegate{c: c}
	mc.Delegate = d
	mc.Events = d
	mc.Alive = d
	c.enableCoordinates(mc)
	if err := c.configureQueries(mc, d); err != nil {
		return nil, err
	}
	// Snapshot clocks first: nothing may reach the network before (Serf #465).
	if err := c.prepareLocal(); err != nil {
		return nil, err
	}
	c.loadRetired()
	var tr memberlist.NodeAwareTransport = cfg.Transport
	if tr == nil {
		bound, err := newTransport(mc, cfg.QueryResponseStreamSizeLimit, func(err error) {
			kind := "push-pull stream"
			if errors.Is(err, errUserStreamRefused) {
				kind = "stream message"
			}
			c.badIn.note(c.log, "dropped malformed or implausible messages from the network", msgIDKey, MsgBadInput,
				"MESSAGE_TYPE", kind, "ERROR", err.Error())
		}, c.handoverPacket)
		if err != nil {
			c.closeSnapshot()
			return nil, err
		}
		tr = bound
		c.ho.tr = bound
	}
	mc.Transport = tr
	// memberlist calls the delegate (NodeMeta, NotifyJoin for us) before
	// Create returns; the delegate does not need c.ml.
	ml, err := memberlist.Create(mc)
	if err != nil {
		tr.Shutdown()
		c.closeSnapshot()
		return nil, fmt.Errorf("start memberlist: %w", err)
	}
	c.ml = ml

	c.wg.Add(1)
	go c.reapLoop()
	if c.deliver != nil {
		c.wg.Add(1)
		go c.deliverLoop()
	}
	c.startWorkers() // snapshot, coalescers, reconnect, rejoin (reconnect.go)
	return c, nil
}

// newCluster builds a Cluster from a checked Config, everything but
// memberlist and the goroutines.
func newCluster(cfg Config, tm timing, retransmitMult int) (*Cluster, error) {
	c := &Cluster{
		cfg:     cfg,
		timing:  tm,
		log:     cfg.Logger,
		wire:    newWireCodec(),
		members: make(map[string]*memberState),
		intents: make(map[string]bufferedIntent),
		stop:    make(chan struct{}),
		joinSem: make(chan struct{}, 1),
		ho:      newHandoverState(),
	}
	c.ctx, c.cancelCtx = context.WithCancel(context.Background())
	var err error
	if c.meta, err = c.wire.encodeTags(cfg.Tags); err != nil {
		return nil, err
	}
	if len(c.meta) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("tags encode to %d bytes, over memberlist's node meta limit of %d bytes",
			len(c.meta), memberlist.MetaMaxSize)
	}
	numNodes := func() int { return int(c.numMembers.Load()) }
	c.intentQ = &memberlist.TransmitLimitedQueue{NumNodes: numNodes, RetransmitMult: retransmitMult}
	c.queryQ = &memberlist.TransmitLimitedQueue{NumNodes: numNodes, RetransmitMult: retransmitMult}
	c.eventQ = &memberlist.TransmitLimitedQueue{NumNodes: numNodes, RetransmitMult: retransmitMult}
	if cfg.OnEvent != nil {
		c.deliver = make(chan Event, cfg.EventQueue)
	}
	// Serf starts every clock at 1.
	c.clock.Increment()
	c.eventClock.Increment()
	c.queryClock.Increment()
	return c, nil
}

// checkConfig applies defaults to cfg, validates it and returns the
// memberlist configuration it implies.
func checkConfig(cfg *Config) (*memberlist.Config, error) {
	var problems []string
	if err := CheckNodeName(cfg.NodeName); err != nil {
		problems = append(problems, err.Error())
	}
	if cfg.Logger == nil {
		problems = append(problems, "logger is nil")
	}
	if cfg.BindAddr == "" {
		cfg.BindAddr = "0.0.0.0"
	}
	if cfg.BindPort < 0 || cfg.BindPort > 65535 {
		problems = append(problems, fmt.Sprintf("bind port %d out of range 0-65535", cfg.BindPort))
	}
	if cfg.AdvertisePort < 0 || cfg.AdvertisePort > 65535 {
		problems = append(problems, fmt.Sprintf("advertise port %d out of range 0-65535", cfg.AdvertisePort))
	}
	switch {
	case cfg.UserEventSizeLimit == 0:
		cfg.UserEventSizeLimit = defaultUserEventSizeLimit
	case cfg.UserEventSizeLimit < 0 || cfg.UserEventSizeLimit > maxUserEventSizeLimit:
		problems = append(problems, fmt.Sprintf("user event size limit %d out of range 1-%d",
			cfg.UserEventSizeLimit, maxUserEventSizeLimit))
	}
	switch {
	case cfg.Backlog == 0:
		cfg.Backlog = defaultBacklog
	case cfg.Backlog < 0:
		problems = append(problems, fmt.Sprintf("backlog %d is negative", cfg.Backlog))
	}
	switch {
	case cfg.EventQueue == 0:
		cfg.EventQueue = defaultEventQueue
	case cfg.EventQueue < 0:
		problems = append(problems, fmt.Sprintf("event queue capacity %d is negative", cfg.EventQueue))
	}
	var mc *memberlist.Config
	switch cfg.Profile {
	case "", "lan":
		cfg.Profile = "lan"
		mc = memberlist.DefaultLANConfig()
	case "wan":
		mc = memberlist.DefaultWANConfig()
	case "local":
		mc = memberlist.DefaultLocalConfig()
	default:
		problems = append(problems, fmt.Sprintf("profile %q is not one of lan, wan, local", cfg.Profile))
	}
	if !(cfg.TimeScale >= 0 && cfg.TimeScale <= maxTimeScale) {
		problems = append(problems, fmt.Sprintf("time scale %v is not in 0..%d", cfg.TimeScale, maxTimeScale))
	}
	problems = append(problems, checkKeyConfig(cfg)...)
	problems = append(problems, checkLifecycleConfig(cfg)...)
	if len(problems) > 0 {
		return nil, fmt.Errorf("gossip config: %s", strings.Join(problems, "; "))
	}
	if cfg.TimeScale > 1 {
		for _, d := range []*time.Duration{&mc.ProbeInterval, &mc.ProbeTimeout, &mc.GossipInterval,
			&mc.GossipToTheDeadTime, &mc.PushPullInterval, &mc.TCPTimeout} {
			*d = time.Duration(float64(*d) * cfg.TimeScale)
		}
	}
	if cfg.Uncompressed {
		mc.EnableCompression = false
	}
	mc.Name = cfg.NodeName
	mc.BindAddr = cfg.BindAddr
	mc.BindPort = cfg.BindPort
	mc.AdvertiseAddr = cfg.AdvertiseAddr
	mc.AdvertisePort = cfg.AdvertisePort
	if mc.AdvertisePort == 0 {
		mc.AdvertisePort = cfg.BindPort // memberlist fixes it up when BindPort is 0
	}
	mc.ProtocolVersion = memberlistProtocol
	mc.DelegateProtocolVersion = serfProtocol
	mc.DelegateProtocolMin = serfProtocolMin
	mc.DelegateProtocolMax = serfProtocolMax
	mc.Logger = newMemberlistLogger(cfg.Logger)
	return mc, nil
}

// Join contacts the given "host[:port]" addresses; it returns how many were
// contacted. With ignoreOld, user events older than the join are not
// replayed, except on a node restarted with a snapshot that holds an event
// clock: it knows what it handled, so every join delivers the events it
// missed (those still in its peers' windows) and none it handled. Were only
// the first join after a restart to do so, a second one (a configured join
// racing the snapshot's rejoin) would raise the event floor past events
// still on their way.
//
// Join returns when the join is over or when ctx is done, whichever comes
// first, so it never holds up its caller longer than ctx allows. A join
// that outlasts ctx goes on in a goroutine of the Cluster until memberlist
// gives up on each address (its TCP timeout: 10s lan, 30s wan) or Shutdown
// aborts it; joins run one at a time, and the next waits for it as long as
// its own ctx allows.
func (c *Cluster) Join(ctx context.Context, addrs []string, ignoreOld bool) (int, error) {
	switch c.clusterState() {
	case stateLeaving, stateLeft:
		return 0, fmt.Errorf("cannot join: %w", ErrNotMember)
	case stateShutdown:
		return 0, fmt.Errorf("cannot join: %w", ErrShutdown)
	}
	select {
	case c.joinSem <- struct{}{}:
	case <-ctx.Done():
		return 0, fmt.Errorf("gave up waiting for the join still running before: %w", context.Cause(ctx))
	case <-c.stop:
		return 0, fmt.Errorf("join: %w", ErrShutdown)
	}
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	started := c.goOwned(func() {
		defer func() { <-c.joinSem }()
		if ignoreOld && !c.history {
			c.ignoreOld.Store(true)
			defer c.ignoreOld.Store(false)
		}
		n, err := c.ml.Join(addrs)
		if n > 0 && c.clusterState() == stateAlive {
			// Not once a leave started (a join that was under way, such
			// as the rejoin's): its intent must stay the latest.
			c.broadcastJoin()
			c.startCatchUp()
		} else {
			c.askForKeys(addrs)
		}
		done <- result{n, flattenErrors(err)}
	})
	if !started {
		<-c.joinSem
		return 0, fmt.Errorf("join: %w", ErrShutdown)
	}
	select {
	case r := <-done:
		return r.n, r.err
	case <-ctx.Done():
		return 0, fmt.Errorf("gave up before any address answered: %w", context.Cause(ctx))
	}
}

// goOwned runs f in a goroutine that Shutdown waits for, unless the Cluster
// is already shut down; it reports whether f was started. The WaitGroup is
// added to under stateMu, so that it happens before Shutdown's Wait or not
// at all.
func (c *Cluster) goOwned(f func()) bool {
	c.stateMu.Lock()
	defer c.stateMu.Unlock()
	if c.state == stateShutdown {
		return false
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		f()
	}()
	return true
}

// flattenErrors turns memberlist's multi-line error list ("1 error
// occurred:\n\t* ...") into one line, the errors joined by "; ".
func flattenErrors(err error) error {
	multi, ok := err.(interface{ WrappedErrors() []error })
	if !ok {
		return err
	}
	parts := make([]string, 0, len(multi.WrappedErrors()))
	for _, e := range multi.WrappedErrors() {
		parts = append(parts, e.Error())
	}
	if len(parts) == 0 {
		return err
	}
	return errors.New(strings.Join(parts, "; "))
}

// Members returns every known member, including self, left and failed ones,
// sorted by name.
func (c *Cluster) Members() []Member {
	c.memberMu.Lock()
	out := make([]Member, 0, len(c.members))
	for _, ms := range c.members {
		out = append(out, ms.snapshot())
	}
	c.memberMu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// LocalMember returns this node.
func (c *Cluster) LocalMember() Member {
	c.memberMu.Lock()
	defer c.memberMu.Unlock()
	if ms, ok := c.members[c.cfg.NodeName]; ok {
		return ms.snapshot()
	}
	// Only after our own entry was reaped, long after leaving.
	self := memberState{m: Member{Name: c.cfg.NodeName, Status: StatusLeft, Tags: c.cfg.Tags}}
	return self.snapshot()
}

// Stats returns a summary of the cluster as this node sees it.
func (c *Cluster) Stats() Stats {
	s := Stats{
		MemberTime:     c.clock.Time(),
		EventTime:      c.eventClock.Time(),
		QueryTime:      c.queryClock.Time(),
		IntentQueue:    c.intentQ.NumQueued(),
		EventQueue:     c.eventQ.NumQueued(),
		QueryQueue:     c.queryQ.NumQueued(),
		DroppedEvents:  c.dropped.total.Load(),
		TooOldEvents:   c.tooOld.total.Load(),
		RefusedEvents:  c.refusedEvents.Load(),
		RefusedQueries: c.refusedQueries.Load(),
		HealthScore:    c.ml.GetHealthScore(),
	}
	s.CoordinateResets = c.coordinateResets()
	s.Flaps = c.flaps.Load()
	s.Traffic = c.traffic.stats()
	s.Traffic.MalformedMessages = c.badIn.total.Load()
	if c.snap != nil {
		s.Traffic.SnapshotDropped = c.snap.dropped.Load()
		s.Traffic.SnapshotFlushes = c.snap.flushes.Load()
		s.Traffic.SnapshotCompactions = c.snap.compacts.Load()
		s.Traffic.SnapshotWriteSeconds = float64(c.snap.writeNanos.Load()) / 1e9
	}
	c.memberMu.Lock()
	defer c.memberMu.Unlock()
	s.Members = len(c.members)
	for _, ms := range c.members {
		switch ms.m.Status {
		case StatusAlive:
			s.Alive++
		case StatusLeaving:
			s.Leaving++
		case StatusLeft:
			s.Left++
		case StatusFailed:
			s.Failed++
		}
	}
	return s
}

// Leave broadcasts a graceful leave and waits for it to propagate (bounded).
//
// It marks this node leaving, gossips a leave intent (waiting up to 5s for it
// to be sent when other members are alive), leaves memberlist (up to 5s more)
// and stays up 1s so peers learn of it. Calling it again after it finished
// returns nil; calling it while it runs or after Shutdown is an error.
func (c *Cluster) Leave() error {
	c.stateMu.Lock()
	switch c.state {
	case stateLeft:
		c.stateMu.Unlock()
		return nil
	case stateLeaving:
		c.stateMu.Unlock()
		return errorf(ErrInvalid, "leave already in progress")
	case stateShutdown:
		c.stateMu.Unlock()
		return fmt.Errorf("leave: %w", ErrShutdown)
	}
	c.state = stateLeaving
	c.stateMu.Unlock()
	c.log.Info("leaving cluster", "SERF_MEMBER", c.cfg.NodeName)
	c.snapshotLeave() // recorded and synced first, as Serf does (snapshot.go)

	if c.hasOtherAliveMembers() {
		c.drainEvents()
	}
	msg := leaveMsg{LTime: c.clock.Claim(), Node: c.cfg.NodeName}
	c.handleLeaveIntent(msg)

	if c.hasOtherAliveMembers() {
		direct := c.sendLeaveDirect(msg)
		sent := make(chan struct{})
		if c.queueIntent(msgLeave, &msg, sent) {
			if err := c.wait(sent, c.timing.broadcastTimeout); err != nil {
				return err
			}
		}
		if err := c.wait(direct, c.timing.broadcastTimeout); err != nil {
			return err
		}
	}
	if err := c.ml.Leave(c.timing.broadcastTimeout); err != nil {
		c.log.Warn("memberlist leave did not finish", "ERROR", err)
	}
	if err := c.wait(nil, c.timing.propagateDelay); err != nil {
		return err
	}

	c.stateMu.Lock()
	if c.state != stateShutdown {
		c.state = stateLeft
	}
	c.stateMu.Unlock()
	c.log.Info("left cluster", "SERF_MEMBER", c.cfg.NodeName)
	return nil
}

// leaveDirectPeers is how many alive members get this node's leave intent
// over a reliable stream besides the gossip (memberlist's fan-out).
const leaveDirectPeers = 3

// sendLeaveDirect sends the leave intent msg over memberlist's reliable
// stream to up to leaveDirectPeers random alive members, in parallel, and
// returns a channel closed once every send is done. The gossip copies go
// by UDP, and memberlist's own "dead" message follows them; a peer that
// lost every copy (a full socket buffer on a loaded host) or handled the
// "dead" message first (memberlist's inbound message queue is last in,
// first out) would take the leave for a failure. A stream message skips
// that queue: memberlist hands it to NotifyMsg as soon as it is read. A
// stock Serf peer handles it as it handles the gossiped copy.
func (c *Cluster) sendLeaveDirect(msg leaveMsg) <-chan struct{} {
	done := make(chan struct{})
	raw, err := c.wire.encode(msgLeave, &msg)
	if err != nil {
		c.log.Error("cannot encode leave intent", "ERROR", err)
		close(done)
		return done
	}
	var wg sync.WaitGroup
	for _, m := range c.randomAlivePeers(leaveDirectPeers, nil) {
		wg.Add(1)
		if !c.goOwned(func() {
			defer wg.Done()
			to := net.UDPAddr{IP: m.Addr, Port: int(m.Port)}
			if err := c.sendStream(to, m.Name, raw); err != nil {
				c.log.Debug("cannot send leave intent over a stream; the gossiped copies remain", "SERF_MEMBER", m.Name,
					"SERF_MEMBER_ADDR", to.String(), "ERROR", err)
			}
		}) {
			wg.Done()
		}
	}
	go func() {
		wg.Wait()
		close(done)
	}()
	return done
}

// drainEvents waits, up to broadcastTimeout, until every user event this
// node accepted (or relays after a push/pull) has gone out in a gossip
// packet at least once, so that a graceful leave (a stop, a restart, an
// upgrade) does not take them along; the peers that got them gossip them
// on. UserEvent refuses new ones meanwhile.
func (c *Cluster) drainEvents() {
	if c.unsent.count() == 0 {
		return
	}
	deadline := time.NewTimer(c.timing.broadcastTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond) // a fraction of a gossip round
	defer tick.Stop()
	for c.unsent.count() > 0 {
		select {
		case <-tick.C:
		case <-deadline.C:
			c.log.Warn("leaving with user events not yet gossiped; peers get them by push/pull if this node comes back",
				"UNSENT", c.unsent.count(), "TIMEOUT", c.timing.broadcastTimeout.String())
			return
		case <-c.stop:
			return
		}
	}
}

// wait waits for done (if not nil) or for d, whichever comes first. It fails
// only if the Cluster is shut down meanwhile.
func (c *Cluster) wait(done <-chan struct{}, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		if done != nil {
			c.log.Warn("timed out waiting for the leave intent to be sent", "TIMEOUT", d.String())
		}
	case <-c.stop:
		return fmt.Errorf("leave interrupted: %w", ErrShutdown)
	}
	return nil
}

// Shutdown stops gossip and waits for every goroutine. Idempotent: every call
// waits for the first to finish and returns its result.
//
// Without a prior Leave, peers will see this node as failed.
func (c *Cluster) Shutdown() error {
	err := c.shutdown()
	c.waitSelfShutdown() // one the Cluster started itself (internal_query.go)
	return err
}

// shutdown is Shutdown without waiting for a self-started shutdown.
func (c *Cluster) shutdown() error {
	c.shutdownOnce.Do(func() {
		c.stateMu.Lock()
		if c.state != stateLeft {
			c.log.Warn("shutting down without a graceful leave; peers will see this node fail")
		}
		c.state = stateShutdown
		c.stateMu.Unlock()

		err := c.ml.Shutdown()
		c.stopQueries() // no new goroutines; open queries close (query.go)
		close(c.stop)
		c.cancelCtx()
		c.wg.Wait()
		if c.seen != nil { // the snapshotter closed its file itself
			c.seen.close()
		}
		if err != nil {
			c.shutdownErr = fmt.Errorf("shut down memberlist: %w", err)
		}
	})
	return c.shutdownErr
}

// reapLoop periodically forgets long-gone members and stale intents, and
// keeps the broadcast queues bounded.
func (c *Cluster) reapLoop() {
	defer c.wg.Done()
	t := time.NewTicker(c.timing.reapInterval)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case now := <-t.C:
			c.reap(now)
			c.pruneQueues()
		}
	}
}

// pruneQueues drops the oldest broadcasts of any queue deeper than
// maxQueueDepth, as Serf does, so a storm cannot grow them without bound.
func (c *Cluster) pruneQueues() {
	for name, q := range map[string]*memberlist.TransmitLimitedQueue{
		"intent": c.intentQ, "event": c.eventQ, "query": c.queryQ,
	} {
		if n := q.NumQueued(); n > maxQueueDepth {
			c.log.Warn("broadcast queue too deep; dropping messages", "QUEUE", name,
				"DEPTH", n, "LIMIT", maxQueueDepth)
			q.Prune(maxQueueDepth)
		}
	}
}

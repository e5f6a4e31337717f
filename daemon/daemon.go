package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"

	"github.com/serfd/serfd/exec"
	"github.com/serfd/serfd/gossip"
)

// Options are what main hands to Run.
type Options struct {
	ConfigPath string
	Stderr     io.Writer
	// Reload receives SIGHUP.
	Reload <-chan os.Signal
	// Version is serfd's version, reported by the info route.
	Version string
}

// daemon is the running composition: gossip, the handler pool and the
// control server, glued by the event pump.
type daemon struct {
	// cfg is the configuration serfd started with; settings that cannot
	// change live are always read from it. Immutable.
	cfg        *Config
	configPath string
	version    string
	log        *slog.Logger
	level      *slog.LevelVar
	logs       *logHub
	activated  bool // the control socket came from systemd
	startTime  time.Time
	cluster    *gossip.Cluster
	// started is closed once cluster is set: gossip delivers its first
	// event (our own member-join) from inside Create.
	started chan struct{}
	pool    *exec.Pool
	ctl     *controlServer
	metrics *metrics
	// events feeds Serf RPC event streams; streamLost counts the events
	// streams lost, streamLostLogged is when that was last logged (Unix ns).
	events           *eventHub
	streamLost       atomic.Uint64
	streamLostLogged atomic.Int64

	leaveOnce sync.Once
	// stopMDNS stops mDNS discovery (a no-op without it); set before the
	// control server and the RPC serve, called before leaving.
	stopMDNS func()
	leaveErr error

	// stop asks Run to shut down (after a leave requested over the API).
	stop     chan struct{}
	stopOnce sync.Once
	// reloadReq carries reloads requested over the API to Run's loop,
	// which answers on the channel sent; done is closed when the loop ends.
	reloadReq chan chan reloadResult
	done      chan struct{}
	// probe is received by Run's loop: the watchdog's proof that it turns.
	probe chan struct{}
	// statusPoke asks statusLoop for a STATUS= update (notifyStatus).
	statusPoke chan struct{}

	mu         sync.Mutex
	joinState  string // for STATUS=: the configured join until it succeeds ("joining", "retrying join (attempt 4)"), else ""
	fatal      error  // why gossip stopped on its own
	lastEvent  string
	lastReload string  // for STATUS=: how the last reload went
	current    *Config // the configuration last loaded (live settings applied)
	unhealthy  string  // for STATUS=: why watchdog pings are withheld, "" if they are not
}

// Run loads the configuration, starts serfd and blocks until ctx is
// cancelled (SIGTERM) or a client asks it to leave. It leaves the cluster
// gracefully before returning. A nil error means a clean stop.
func Run(ctx context.Context, opts Options) error {
	cfg, err := LoadConfig(opts.ConfigPath)
	if err != nil {
		answerActivatedStartFailure(err)
		return err
	}
	level := new(slog.LevelVar)
	level.Set(cfg.LogLevel)
	hub := newLogHub()
	log, closeLog := newLogger(opts.Stderr, level, hub)
	defer closeLog()
	for _, w := range cfg.Warnings {
		log.Warn(w)
	}
	return newDaemon(cfg, opts, log, level, hub).run(ctx, opts.Reload)
}

// newDaemon is Run's daemon before it starts; log writes through hub at level.
func newDaemon(cfg *Config, opts Options, log *slog.Logger, level *slog.LevelVar, hub *logHub) *daemon {
	d := &daemon{cfg: cfg, current: cfg, startTime: time.Now(), configPath: opts.ConfigPath, version: opts.Version,
		log: log, level: level, logs: hub, events: newEventHub(), started: make(chan struct{}),
		stop: make(chan struct{}), reloadReq: make(chan chan reloadResult), done: make(chan struct{}),
		probe: make(chan struct{}), statusPoke: make(chan struct{}, 1)}
	d.metrics = newMetrics(d, cfg.MetricsEventNames)
	return d
}

func (d *daemon) run(ctx context.Context, reload <-chan os.Signal) error {
	cfg := d.cfg
	listener, activated, err := controlListener(cfg.ControlSocket)
	if err != nil {
		return err
	}
	defer listener.Close()
	d.activated = activated

	unlock, err := lockStateDirs(cfg.SnapshotPath, cfg.HandlerSpool)
	if err != nil {
		return d.startFailed(listener, err)
	}
	defer unlock()

	d.pool, err = exec.New(exec.Options{
		Dir:         cfg.HandlersDir,
		Workers:     cfg.HandlerWorkers,
		Queue:       cfg.HandlerQueue,
		Timeout:     cfg.HandlerTimeout,
		Handlers:    cfg.HandlerSettings,
		CompileTags: compileHandlerTags,
		Spool:       cfg.HandlerSpool,
		// A query handler's stdout is its response, as large as an
		// answer may be.
		ResponseLimit: cfg.QueryResponseStreamSizeLimit,
		Logger:        d.log,
		OnRun:         d.metrics.onRun,
	})
	if err != nil {
		return d.startFailed(listener, fmt.Errorf("start handler pool: %w", err))
	}
	defer d.pool.Close()

	tags := cfg.Tags
	if cfg.TagsFile != "" {
		if tags, err = loadTags(cfg.TagsFile, cfg.Tags); err != nil {
			return d.startFailed(listener, fmt.Errorf("load tags: %w", err))
		}
	}
	d.cluster, err = gossip.Create(gossip.Config{
		NodeName:      cfg.NodeName,
		BindAddr:      cfg.BindAddr,
		BindPort:      cfg.BindPort,
		AdvertiseAddr: cfg.AdvertiseAddr,
		AdvertisePort: cfg.AdvertisePort,
		Profile:       cfg.Profile,
		Tags:          tags,

		EncryptKeys: cfg.EncryptKeys,
		KeyringFile: cfg.KeyringFile,

		DisableCoordinates: cfg.DisableCoordinates,

		SnapshotPath:     cfg.SnapshotPath,
		RejoinAfterLeave: cfg.RejoinAfterLeave,
		ReplayOnRejoin:   cfg.ReplayOnJoin,

		ReconnectInterval: cfg.ReconnectInterval,
		KeyHandoverGrace:  handoverGrace(cfg.KeyHandoverGrace),
		ReconnectTimeout:  cfg.ReconnectTimeout,
		TombstoneTimeout:  cfg.TombstoneTimeout,
		SnapshotRetention: cfg.SnapshotRetention,

		CoalescePeriod:      cfg.CoalescePeriod,
		QuiescentPeriod:     cfg.QuiescentPeriod,
		UserCoalescePeriod:  cfg.UserCoalescePeriod,
		UserQuiescentPeriod: cfg.UserQuiescentPeriod,

		UserEventSizeLimit:           cfg.UserEventSizeLimit,
		QuerySizeLimit:               cfg.QuerySizeLimit,
		QueryResponseSizeLimit:       cfg.QueryResponseSizeLimit,
		QueryResponseStreamSizeLimit: cfg.QueryResponseStreamSizeLimit,

		OnEvent:    d.onEvent,
		OnShutdown: d.onGossipShutdown,
		Logger:     d.log,
	})
	close(d.started)
	if err != nil {
		ifAddrs, _ := net.InterfaceAddrs()
		if p := advertiseProblem(err, ifAddrs); p != err {
			return d.startFailed(listener, p)
		}
		return d.startFailed(listener, fmt.Errorf("start gossip on %s: %w", net.JoinHostPort(cfg.BindAddr, strconv.Itoa(cfg.BindPort)), err))
	}
	defer d.cluster.Shutdown()
	d.persistTags(tags, cfg.Tags) // the configured tags it now stands on
	statusStop, statusDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(statusDone)
		d.statusLoop(statusStop)
	}()
	stopStatus := sync.OnceFunc(func() {
		close(statusStop)
		<-statusDone
	})
	defer stopStatus()

	// mDNS answers and looks up from before READY=1 and before anything
	// that may leave; what it finds is joined in the background.
	d.stopMDNS, err = d.startMDNS()
	if err != nil {
		return d.startFailed(listener, err)
	}
	defer d.stopMDNS()

	// Serf's RPC listens before the control socket is served, so that
	// whoever sees serfd answer (or READY=1) can use both.
	stopRPC, err := d.startRPC()
	if err != nil {
		return d.startFailed(listener, err)
	}
	defer stopRPC()
	stopMetrics, err := d.startMetrics()
	if err != nil {
		return d.startFailed(listener, err)
	}
	defer stopMetrics()
	d.ctl = newControlServer(d.log, d.routes(), cfg.AdminGroup, cfg.AdminGID, d.metrics.countRequests)
	serveErr := make(chan error, 1)
	go func() { serveErr <- d.ctl.serve(listener) }()

	local := d.cluster.LocalMember()
	d.log.Info(fmt.Sprintf("serfd started as node %s, gossiping on %s", cfg.NodeName, local.HostPort()),
		msgIDKey, msgIDStarted, "NODE", cfg.NodeName, "GOSSIP_ADDR", local.HostPort(),
		"CONTROL_SOCKET", cfg.ControlSocket, "SOCKET_ACTIVATED", activated,
		"CONFIG_FILES", fmt.Sprint(cfg.Files))
	d.notify("READY=1")
	stopWatchdog := d.startWatchdog()
	defer stopWatchdog()

	j := &joiner{ctx: ctx, run: d.retryJoin}
	if len(cfg.Join) > 0 {
		j.start(cfg.Join)
	}

	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-d.stop:
			break loop
		case <-reload:
			d.reload(j) // logs a failure
		case reply := <-d.reloadReq:
			reply <- d.reload(j)
		case err := <-serveErr:
			runErr = fmt.Errorf("control server: %w", err)
			break loop
		case <-d.probe: // the watchdog's check that this loop turns
		}
	}
	close(d.done)
	j.stop()

	d.notify("STOPPING=1")
	// Leave first, with the control server still up: requests in flight and
	// handler scripts that call serfctl while the node leaves are served.
	if err := d.leaveCluster(); err != nil {
		d.log.Warn("graceful leave failed", "ERROR", err)
	}
	shCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.ctl.shutdown(shCtx); err != nil {
		d.log.Warn("control server did not stop in time", "ERROR", err)
	}
	// Gossip, then the handler pool, end before "serfd stopped", so that it
	// is the last record.
	if err := d.cluster.Shutdown(); err != nil {
		d.log.Warn("gossip did not shut down cleanly", "ERROR", err)
	}
	d.pool.Close() // bounded by the pool's drain timeout
	stopWatchdog()
	stopStatus()
	d.log.Info("serfd stopped", msgIDKey, msgIDStopped)
	d.mu.Lock()
	defer d.mu.Unlock()
	if runErr == nil && d.fatal != nil {
		runErr = d.fatal
	}
	return runErr
}

// joiner owns the background join loop; a reload with a new join list
// replaces it. Used only by Run's goroutine.
type joiner struct {
	ctx    context.Context
	run    func(context.Context, []string)
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// start stops a running join loop and starts one for addrs.
func (j *joiner) start(addrs []string) {
	j.stop()
	ctx, cancel := context.WithCancel(j.ctx)
	j.cancel = cancel
	j.wg.Add(1)
	go func() {
		defer j.wg.Done()
		j.run(ctx, addrs)
	}()
}

// stop cancels the join loop and waits for it.
func (j *joiner) stop() {
	if j.cancel != nil {
		j.cancel()
	}
	j.wg.Wait()
}

// retryJoin tries the configured join addresses until one answers, with a
// capped backoff. The goroutine is owned by run; cancelling ctx ends it at
// once, even in the middle of an attempt (Cluster.Join returns on ctx).
func (d *daemon) retryJoin(ctx context.Context, addrs []string) {
	d.setJoinState("joining")
	defer d.setJoinState("") // joined, stopped, or replaced by a reload
	backoff := time.Second
	for attempt := 1; ; attempt++ {
		n, err := d.joinEntries(ctx, addrs, !d.cfg.ReplayOnJoin)
		if n > 0 {
			d.log.Info(fmt.Sprintf("joined the cluster through %s (%d contacted)", strings.Join(addrs, ", "), n),
				"JOIN_ADDRS", fmt.Sprint(addrs), "CONTACTED", n)
			return
		}
		if ctx.Err() != nil {
			return // stopped, or replaced by a reload
		}
		d.setJoinState(fmt.Sprintf("retrying join (attempt %d)", attempt))
		d.log.Warn("join failed; retrying", "JOIN_ADDRS", fmt.Sprint(addrs), "ATTEMPT", attempt,
			"RETRY_IN", backoff.String(), "ERROR", err)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

// leaveCluster leaves gracefully once; later calls return the first result.
func (d *daemon) leaveCluster() error {
	d.leaveOnce.Do(func() {
		if d.stopMDNS != nil {
			d.stopMDNS() // nothing it finds may join the node back
		}
		d.leaveErr = d.cluster.Leave()
	})
	return d.leaveErr
}

// onGossipShutdown is called when gossip stops on its own (a name conflict
// it lost): serfd then exits with the reason.
func (d *daemon) onGossipShutdown(reason error) {
	d.mu.Lock()
	d.fatal = reason
	if errors.Is(reason, gossip.ErrNameConflict) {
		// A restart cannot help: exit as for a bad configuration, which
		// the unit's RestartPreventExitStatus= keeps from a restart loop.
		d.fatal = &ConfigError{Problems: []string{reason.Error() + "; give this node a unique node_name"}}
	}
	d.mu.Unlock()
	d.log.Error("gossip stopped; serfd is exiting", "ERROR", reason)
	d.requestStop()
}

func (d *daemon) requestStop() {
	d.stopOnce.Do(func() { close(d.stop) })
}

func (d *daemon) setJoinState(s string) {
	d.mu.Lock()
	d.joinState = s
	d.mu.Unlock()
	d.notifyStatus()
}

// statusInterval is the least time between two STATUS= updates.
const statusInterval = time.Second

// notifyStatus asks for a STATUS= update without waiting: statusLoop sends
// it, at most once per statusInterval, and only when the line changed. It
// is cheap enough for every event.
func (d *daemon) notifyStatus() {
	select {
	case d.statusPoke <- struct{}{}:
	default: // an update is already pending
	}
}

// statusLoop sends STATUS= on request until stop closes. Owned by run.
func (d *daemon) statusLoop(stop <-chan struct{}) {
	var last string
	pause := time.NewTimer(0)
	defer pause.Stop()
	for {
		select {
		case <-stop:
			return
		case <-d.statusPoke:
		}
		if s := d.statusLine(); s != last {
			d.notify(s)
			last = s
		}
		pause.Reset(statusInterval)
		select {
		case <-stop:
			return
		case <-pause.C:
		}
	}
}

// statusLine is STATUS= with what a person wants to read: the members
// alive and failed now, "alone" when no other member is alive (whatever
// made this node a member: its own join, a peer joining it, the snapshot,
// mDNS), the configured join while it has not succeeded, and the last
// event and reload.
func (d *daemon) statusLine() string {
	st := d.cluster.Stats()
	d.mu.Lock()
	defer d.mu.Unlock()
	s := fmt.Sprintf("STATUS=%d alive, %d failed", st.Alive, st.Failed)
	if st.Alive <= 1 {
		s += "; alone"
	}
	if d.joinState != "" {
		s += "; " + d.joinState
	}
	if d.unhealthy != "" {
		s = "STATUS=unhealthy, watchdog pings withheld: " + d.unhealthy + "; " + s[len("STATUS="):]
	}
	if d.lastEvent != "" {
		s += "; last event " + d.lastEvent
	}
	if d.lastReload != "" {
		s += "; " + d.lastReload
	}
	return s
}

func (d *daemon) notify(state string) {
	if _, err := sd.SdNotify(false, state); err != nil {
		d.log.Debug("sd_notify failed", "STATE", state, "ERROR", err)
	}
}

// handoverGrace is gossip's KeyHandoverGrace for the configured grace: 0
// (no handover) is negative there, where 0 stands for the default.
func handoverGrace(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

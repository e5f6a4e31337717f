package exec

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

const (
	defaultWorkers      = 4
	defaultQueue        = 1024
	defaultTimeout      = 60 * time.Second
	defaultKillGrace    = 5 * time.Second
	defaultDrainTimeout = 10 * time.Second
	defaultOutputLimit  = 64 << 10
	defaultPath         = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// Pool runs handler scripts. Submit, SetHandlers, Stats and Summary are
// safe for concurrent use. Close is idempotent.
type Pool struct {
	dir          string
	path         string
	workers      int
	queueLimit   int
	timeout      time.Duration
	killGrace    time.Duration
	drainTimeout time.Duration
	outputLimit  int
	log          *slog.Logger
	onRun        func(RunOutcome) // Options.OnRun, or nil
	compileTags  TagCompiler      // Options.CompileTags, or nil

	// responseLimit: bytes of a query handler's stdout kept as its response
	responseLimit int

	// submitMu serialises directory scans (Submit, SetHandlers, the
	// watcher) and guards scan; it is taken before sp.mu and mu, never
	// after.
	submitMu sync.Mutex
	scan     *scanner

	sp *spool // nil without Options.Spool

	mu       sync.Mutex
	cond     sync.Cond // on mu: a handler became ready, or closed and drained
	configs  map[string]handlerConfig
	handlers map[string]*handler
	ready    []*handler // handlers with a pending run and a free slot, round robin
	queued   int        // pending runs across the pool
	closed   bool
	watching bool // the watcher has every path it wants under watch

	// list is what the last read of the directory accepted, and stamp the
	// directory's identity and ctime just before that read. stale says the
	// watcher saw a change since, or the read was too close to a change of
	// the directory for stamp to tell the next one apart.
	list  []found
	stamp fileStamp
	links []linkStamp // of the directory's symlinks, at that read
	stale bool
	read  bool // the directory was read once
	// shadowed: files not run because a command handler has their name
	// (logged once per name).
	shadowed map[string]bool
	commands map[string]string // command handlers of the last read, by name
	// refused and ignored are the scanner's maps of the last read (files
	// refused, with why; names ignored, with why, dotfiles left out), for
	// Stats. Each read replaces them; they are never changed.
	refused, ignored map[string]string
	// dirOK: the last read found the directory (not missing, refused or
	// unreadable). Runs are not read back from the spool while it is
	// not, lest a passing problem make them count as runs of handlers
	// that no longer exist.
	dirOK      bool
	dirProblem string // the scanner's, as of the last read

	stop chan struct{} // closed by Close: the watcher exits
	// drainOver is closed DrainTimeout after Close: running scripts are
	// stopped and nothing queued starts any more.
	drainOver  chan struct{}
	drainTimer *time.Timer    // set by Close, under mu
	wg         sync.WaitGroup // the workers and the watcher
}

// handlerConfig is a compiled HandlerConfig.
type handlerConfig struct {
	events      []string // HandlerConfig.Events, as configured
	filter      filter
	tagFilters  map[string]string // HandlerConfig.Tags, as configured
	tags        tagTest
	timeout     time.Duration // 0: the pool's
	concurrency int           // 0: 1
	env         []envVar      // sorted by key
	command     string        // a command handler's; "" for a file
}

// handler is one handler's queue and counters; guarded by Pool.mu.
type handler struct {
	name    string
	active  bool
	slots   int    // concurrency in effect
	pending []*job // FIFO
	running int
	inReady bool
	stats   HandlerStats // counters only; Queued/Running are filled by Stats
}

// job is one queued run.
type job struct {
	h       *handler
	seq     uint64 // its run record in the spool; 0 if not spooled
	attempt int    // 1 for a first run; more for a run cut short before (SERF_RUN_ATTEMPT)
	path    string
	command string // run as `/bin/sh -c command`; "" for a file
	ev      *prepared
	timeout time.Duration
	env     []envVar
}

// HandlerState says whether a name in the handlers directory (or of a
// command handler) is a handler now, and if not why.
type HandlerState string

// The states of HandlerStats.State.
const (
	StateActive  HandlerState = "active"  // runs for the events its filter matches
	StateRefused HandlerState = "refused" // a file the last read refused; Reason says why
	StateIgnored HandlerState = "ignored" // a file whose name is never a handler's; Reason says which
	StateGone    HandlerState = "gone"    // was a handler, is no longer in the directory (or its directory is unusable)
)

// HandlerStats is a snapshot of one handler's settings and counters, from
// Pool.Stats.
type HandlerStats struct {
	Name   string
	Active bool         // accepted by the last scan of the directory
	State  HandlerState // Active, or why not
	Reason string       // why a file is refused or ignored; "" otherwise
	// The settings runs take now: the event filter as configured ("*"
	// when there is none), the tag filters (tag name -> regular
	// expression; nil when there are none), how many runs may be in
	// flight at once, and the deadline of a run.
	Events         []string
	Tags           map[string]string
	Concurrency    int
	Timeout        time.Duration
	Runs           uint64        // runs finished (or that failed to start)
	Failures       uint64        // runs that did not exit 0, timeouts included
	Timeouts       uint64        // runs that reached their deadline
	Drops          uint64        // runs dropped because the queue was full
	Repeats        uint64        // runs started again after a crash or stop cut them short
	Queued         int           // runs waiting
	Running        int           // runs in flight
	LastDuration   time.Duration // of the last finished run
	LastExitStatus int           // of the last finished run; -1 if killed by a signal or not started
	LastFinished   time.Time     // zero until a run finishes
	LastOutcome    Outcome       // of the last finished run; "" until a run finishes
	LastSignal     string        // the signal that ended the last finished run, if one did
	LastEvent      string        // the event of the last finished run, as its record names it
}

// New validates opts, starts watching the handlers directory, reads it
// once and starts the workers. Zero values take the documented defaults;
// negative ones and invalid handler settings are errors. A directory that
// cannot be watched is logged, not an error.
func New(opts Options) (*Pool, error) {
	var errs []error
	if opts.Dir == "" {
		errs = append(errs, errors.New("handlers directory is not set"))
	}
	for _, c := range []struct {
		name string
		bad  bool
	}{
		{"workers", opts.Workers < 0},
		{"queue", opts.Queue < 0},
		{"timeout", opts.Timeout < 0},
		{"kill grace", opts.KillGrace < 0},
		{"drain timeout", opts.DrainTimeout < 0},
		{"output limit", opts.OutputLimit < 0},
		{"response limit", opts.ResponseLimit < 0},
	} {
		if c.bad {
			errs = append(errs, fmt.Errorf("%s is negative", c.name))
		}
	}
	configs, err := compileHandlers(opts.Handlers, opts.CompileTags)
	if err != nil {
		errs = append(errs, err)
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		errs = append(errs, fmt.Errorf("handlers directory %s: %w", opts.Dir, err))
	}
	spoolPath := opts.Spool
	if spoolPath != "" {
		if spoolPath, err = filepath.Abs(spoolPath); err != nil {
			errs = append(errs, fmt.Errorf("handler spool %s: %w", opts.Spool, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	p := &Pool{
		dir:           dir,
		path:          orDefault(opts.Path, defaultPath),
		workers:       orDefault(opts.Workers, defaultWorkers),
		queueLimit:    orDefault(opts.Queue, defaultQueue),
		timeout:       orDefault(opts.Timeout, defaultTimeout),
		killGrace:     orDefault(opts.KillGrace, defaultKillGrace),
		drainTimeout:  orDefault(opts.DrainTimeout, defaultDrainTimeout),
		drainOver:     make(chan struct{}),
		outputLimit:   orDefault(opts.OutputLimit, defaultOutputLimit),
		responseLimit: orDefault(opts.ResponseLimit, orDefault(opts.OutputLimit, defaultOutputLimit)),
		log:           opts.Logger,
		onRun:         opts.OnRun,
		compileTags:   opts.CompileTags,
		configs:       configs,
		handlers:      map[string]*handler{},
		stop:          make(chan struct{}),
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	p.cond.L = &p.mu
	p.scan = newScanner(dir, os.Geteuid(), p.log)

	var replay spoolReplay
	if spoolPath != "" {
		if p.sp, replay, err = openSpool(spoolPath, p.log); err != nil {
			return nil, err
		}
	}

	// Armed before the first read, so that no change falls between the two.
	w := newWatcher(dir, p.log)
	armed := w.arm()
	p.watching = armed
	p.submitMu.Lock()
	p.refresh()
	p.submitMu.Unlock()

	if p.sp != nil {
		p.resume(replay)
	}

	for range p.workers {
		p.wg.Go(p.worker)
	}
	p.wg.Go(func() { p.watch(w, armed) })
	return p, nil
}

// orDefault returns v, or def when v is the zero value.
func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// compileHandlers validates and compiles every handler's settings, tag
// filters with compileTags, reporting every problem at once.
func compileHandlers(in map[string]HandlerConfig, compileTags TagCompiler) (map[string]handlerConfig, error) {
	out := make(map[string]handlerConfig, len(in))
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(in)) {
		hc := in[name]
		c := handlerConfig{events: slices.Clone(hc.Events), timeout: hc.Timeout, concurrency: hc.Concurrency, command: hc.Command}
		if strings.ContainsRune(hc.Command, 0) {
			errs = append(errs, fmt.Errorf("handler %q: command holds a NUL byte", name))
		}
		f, err := compileFilter(hc.Events)
		if err != nil {
			errs = append(errs, fmt.Errorf("handler %q: %w", name, err))
		}
		c.filter = f
		if len(hc.Tags) > 0 {
			c.tagFilters = maps.Clone(hc.Tags)
			if compileTags == nil {
				errs = append(errs, fmt.Errorf("handler %q: has tags, but the pool has no Options.CompileTags", name))
			} else if test, err := compileTags(hc.Tags); err != nil {
				errs = append(errs, fmt.Errorf("handler %q: %w", name, err))
			} else {
				c.tags = test
			}
		}
		if hc.Timeout < 0 {
			errs = append(errs, fmt.Errorf("handler %q: timeout %s is negative", name, hc.Timeout))
		}
		if hc.Concurrency < 0 {
			errs = append(errs, fmt.Errorf("handler %q: concurrency %d is negative", name, hc.Concurrency))
		}
		for _, k := range slices.Sorted(maps.Keys(hc.Env)) {
			v := hc.Env[k]
			if k == "" || strings.ContainsAny(k, "=\x00") || strings.Contains(v, "\x00") {
				errs = append(errs, fmt.Errorf("handler %q: env %q is not a valid environment variable", name, k))
				continue
			}
			c.env = append(c.env, envVar{k, v})
		}
		out[name] = c
	}
	return out, errors.Join(errs...)
}

// SetHandlers replaces the per-handler settings, for a configuration
// reload. Runs submitted afterwards use the new settings; queued and running
// ones keep theirs. On error nothing changes.
func (p *Pool) SetHandlers(handlers map[string]HandlerConfig) error {
	configs, err := compileHandlers(handlers, p.compileTags)
	if err != nil {
		return err
	}
	p.submitMu.Lock()
	defer p.submitMu.Unlock()
	p.mu.Lock()
	p.configs = configs
	for _, h := range p.handlers {
		h.slots = max(configs[h.name].concurrency, 1)
		p.makeReady(h)
	}
	p.mu.Unlock()
	p.refresh()
	return nil
}

// handlerLocked returns the state of the named handler, creating it.
func (p *Pool) handlerLocked(name string) *handler {
	h := p.handlers[name]
	if h == nil {
		h = &handler{name: name, slots: max(p.configs[name].concurrency, 1), stats: HandlerStats{Name: name}}
		p.handlers[name] = h
	}
	return h
}

// Submit queues one run per matching handler and never waits on a script.
// A handler matches when its event filter does and its tag filters let
// the event through (tagTest.apply): a member event runs a handler with
// tags with only the members whose tags match. With a spool, the runs of
// a user event are written to it before Submit returns, and wait there
// when the queue is full; other runs are dropped with a warning when the
// queue is full. ev is copied; the caller may reuse it. After Close,
// Submit does nothing.
func (p *Pool) Submit(ev Event) {
	p.submitMu.Lock()
	defer p.submitMu.Unlock()
	if p.isClosed() {
		p.log.Debug("event not handled: handler pool closed", "SERF_EVENT", ev.Type)
		return
	}
	// matched run with ev as it is; each of partial with its own copy of
	// ev listing only the members its tags let through.
	var matched []found
	type partialRun struct {
		f  found
		ev *Event
	}
	var partial []partialRun
	for _, f := range p.handlerList() {
		cfg := p.configs[f.name] // configs change only under submitMu
		if !cfg.filter.match(&ev) {
			continue
		}
		members, run := cfg.tags.apply(&ev)
		switch {
		case !run:
		case len(members) == len(ev.Members): // every member, or not a member event
			matched = append(matched, f)
		default:
			part := ev
			part.Members = members
			partial = append(partial, partialRun{f, &part})
		}
	}
	if p.sp != nil && spooled(&ev) { // a user event: it has no members, so nothing is partial
		if len(matched) > 0 {
			p.submitSpooled(&ev, matched)
		}
		return
	}
	if len(matched) > 0 {
		p.queueRuns(&ev, matched, 0, nil)
	}
	for _, r := range partial {
		p.queueRuns(r.ev, []found{r.f}, 0, nil)
	}
}

// queueRuns queues a run of ev for each handler of matched. A run without
// a run record (seq 0) is dropped, logged and counted when the queue is
// full; one with a run record is queued anyway, its caller having checked
// the room. started counts, per handler, the runs of the record that
// started before and did not finish.
func (p *Pool) queueRuns(ev *Event, matched []found, seq uint64, started map[string]int) {
	var prep *prepared
	var dropped []string
	p.mu.Lock()
	if p.closed { // Close ran during the scan
		p.mu.Unlock()
		p.log.Debug("event not handled: handler pool closed", "SERF_EVENT", ev.Type)
		return
	}
	for _, f := range matched {
		cfg := p.configs[f.name]
		h := p.handlerLocked(f.name)
		if seq == 0 && p.queued >= p.queueLimit {
			h.stats.Drops++
			dropped = append(dropped, f.name)
			continue
		}
		if prep == nil {
			prep = prepare(ev)
		}
		h.slots = max(cfg.concurrency, 1)
		h.pending = append(h.pending, &job{
			h:       h,
			seq:     seq,
			attempt: started[f.name] + 1,
			path:    f.path,
			command: f.command,
			ev:      prep,
			timeout: orDefault(cfg.timeout, p.timeout),
			env:     cfg.env,
		})
		p.queued++
		p.makeReady(h)
	}
	p.mu.Unlock()

	if len(dropped) == 0 {
		return
	}
	desc := describeEvent(ev.Type, ev.UserEvent, ev.QueryName, ev.Members)
	for _, name := range dropped {
		p.dropped(name, ev.Type)
		p.log.Warn(fmt.Sprintf("handler %s run dropped: queue full, %d runs waiting (%s)", name, p.queueLimit, desc),
			"HANDLER", name, "SERF_EVENT", ev.Type, "QUEUE_LIMIT", p.queueLimit, msgIDKey, MsgHandlerDropped)
	}
}

// dropped tells OnRun of a run that will not start. Called without p.mu.
func (p *Pool) dropped(handler, event string) {
	if p.onRun != nil {
		p.onRun(RunOutcome{Handler: handler, Event: event, Outcome: OutcomeDropped})
	}
}

func (p *Pool) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// makeReady puts h on the ready list if it has a pending run and a free
// slot. Called with mu held.
func (p *Pool) makeReady(h *handler) {
	if h.inReady || len(h.pending) == 0 || h.running >= h.slots {
		return
	}
	h.inReady = true
	p.ready = append(p.ready, h)
	p.cond.Signal()
}

// worker runs jobs until the pool is closed and drained. Having taken a
// job, it reads runs waiting in the spool back into the queue if it is
// half empty.
func (p *Pool) worker() {
	for {
		j := p.next()
		if j == nil {
			return
		}
		p.refill()
		p.starting(j)
		res := p.run(j)
		p.finish(j, res)
	}
}

// next takes the oldest run of the next ready handler, waiting for one; it
// returns nil once the pool is closed and nothing is queued.
func (p *Pool) next() *job {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.ready) == 0 {
		if p.closed && p.queued == 0 {
			return nil
		}
		p.cond.Wait()
	}
	h := p.ready[0]
	p.ready[0] = nil
	p.ready = p.ready[1:]
	h.inReady = false

	j := h.pending[0]
	h.pending[0] = nil
	h.pending = h.pending[1:]
	h.running++
	p.queued--
	p.makeReady(h) // to the back of the line: round robin between handlers
	if p.closed && p.queued == 0 {
		p.cond.Broadcast() // idle workers may exit
	}
	return j
}

// starting writes the start record of a spooled run and, for one that was
// cut short before, says that it runs again.
func (p *Pool) starting(j *job) {
	if j.seq == 0 {
		return
	}
	p.sp.mu.Lock()
	j.attempt = p.sp.startLocked(j.seq, j.h.name)
	p.sp.mu.Unlock()
	if j.attempt > 1 {
		p.mu.Lock()
		j.h.stats.Repeats++
		p.mu.Unlock()
		p.log.Warn(fmt.Sprintf("handler %s started again: serfd stopped or crashed while it ran, so it may have done its work already%s",
			j.h.name, runEvent(j)),
			append([]any{"HANDLER", j.h.name, "SERF_RUN_ATTEMPT", j.attempt, msgIDKey, MsgHandlerRunRepeated}, j.ev.logAttrs()...)...)
	}
}

// finish records a run's result, marks it done in the spool unless it was
// stopped by the end of the drain (then it runs again after a restart),
// and frees its handler's slot.
func (p *Pool) finish(j *job, res runResult) {
	if j.seq != 0 && !res.interrupted {
		p.sp.mu.Lock()
		p.sp.doneLocked(j.seq, j.h.name)
		p.sp.mu.Unlock()
	}
	h := j.h
	p.mu.Lock()
	defer p.mu.Unlock()
	h.running--
	s := &h.stats
	s.Runs++
	if res.failed() {
		s.Failures++
	}
	if res.timedOut {
		s.Timeouts++
	}
	s.LastDuration = res.duration
	s.LastExitStatus = res.exitStatus
	s.LastFinished = time.Now()
	s.LastOutcome = res.outcome()
	s.LastSignal = res.signal
	s.LastEvent = j.ev.desc
	p.makeReady(h)
}

// Stats returns the settings and counters of every handler any read of
// the directory has accepted (State says whether the last one did, and if
// not why), and of every file the last read refused or ignored (dotfiles
// left out), sorted by name. Handlers removed from the directory keep
// their entry, with State gone.
func (p *Pool) Stats() []HandlerStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	names := map[string]bool{}
	for _, m := range []map[string]string{p.refused, p.ignored} {
		for name := range m {
			names[name] = true
		}
	}
	for name := range p.handlers {
		names[name] = true
	}
	out := make([]HandlerStats, 0, len(names))
	for _, name := range slices.Sorted(maps.Keys(names)) {
		s := HandlerStats{Name: name}
		if h := p.handlers[name]; h != nil {
			s = h.stats
			s.Active = h.active
			s.Queued = len(h.pending)
			s.Running = h.running
		}
		switch {
		case s.Active:
			s.State = StateActive
		case p.refused[name] != "":
			s.State, s.Reason = StateRefused, p.refused[name]
		case p.ignored[name] != "":
			s.State, s.Reason = StateIgnored, p.ignored[name]
		default:
			s.State = StateGone
		}
		cfg := p.configs[name]
		s.Events = slices.Clone(cfg.events)
		if len(s.Events) == 0 {
			s.Events = []string{"*"}
		}
		s.Tags = maps.Clone(cfg.tagFilters)
		s.Concurrency = max(cfg.concurrency, 1)
		s.Timeout = orDefault(cfg.timeout, p.timeout)
		out = append(out, s)
	}
	return out
}

// PoolStats is a snapshot of the whole pool, from Pool.Summary.
type PoolStats struct {
	Workers    int    // runs in flight allowed across all handlers
	Running    int    // runs in flight now
	Queued     int    // runs waiting in memory, across all handlers
	QueueLimit int    // runs that may wait in memory before new ones are dropped (or spooled)
	Spooled    int    // runs of user events waiting in the spool only, beyond the queue
	Handlers   int    // handlers accepted by the last read of the directory
	Refused    int    // files the last read of the directory refused
	Dropped    uint64 // runs dropped (queue full, or not started when a stop's drain ran out), across all handlers
	Watching   bool   // changes to the directory are noticed at once; if false, at the next event
	// DirProblem is why the last read found no handlers directory to
	// read ("missing", or why it was refused); "" when it read one.
	DirProblem string
}

// Summary returns the pool-wide counts; Stats has the per-handler ones.
func (p *Pool) Summary() PoolStats {
	spooled := 0
	if p.sp != nil {
		p.sp.mu.Lock()
		spooled = p.sp.spilledRuns
		p.sp.mu.Unlock()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	s := PoolStats{Spooled: spooled, Workers: p.workers, Queued: p.queued, QueueLimit: p.queueLimit, Watching: p.watching,
		Refused: len(p.refused), DirProblem: p.dirProblem}
	for _, h := range p.handlers {
		s.Running += h.running
		s.Dropped += h.stats.Drops
		if h.active {
			s.Handlers++
		}
	}
	return s
}

// Close stops accepting events and stops watching the directory, lets
// queued and running runs go on for up to DrainTimeout (then drops the
// runs not started, or leaves them in the spool, and stops the running
// scripts as at their deadline), and waits for every goroutine. Idempotent.
func (p *Pool) Close() {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		p.watching = false
		close(p.stop)
		p.drainTimer = time.AfterFunc(p.drainTimeout, p.endDrain)
	}
	p.cond.Broadcast()
	p.mu.Unlock()
	p.wg.Wait()
	p.mu.Lock()
	p.drainTimer.Stop()
	p.mu.Unlock()
	if p.sp != nil {
		p.closeSpool()
	}
}

// endDrain runs DrainTimeout after Close: the runs still queued are dropped
// (and counted) unless their run record is in the spool, where they wait
// for the next start, and the watchdogs of running scripts stop them.
func (p *Pool) endDrain() {
	var lost []*job
	defer func() {
		for _, j := range lost {
			p.dropped(j.h.name, j.ev.typ)
		}
	}()
	p.mu.Lock()
	defer p.mu.Unlock()
	dropped, left := 0, 0
	for _, h := range p.handlers {
		for _, j := range h.pending {
			if j.seq != 0 {
				left++
			} else {
				h.stats.Drops++
				dropped++
				lost = append(lost, j)
			}
		}
		h.pending = nil
	}
	p.queued -= dropped + left
	p.ready = nil
	for _, h := range p.handlers {
		h.inReady = false
	}
	if dropped > 0 {
		p.log.Warn(fmt.Sprintf("%d handler runs dropped at shutdown: not started %s after the stop began", dropped,
			humanDuration(p.drainTimeout)), "DROPPED", dropped, "DRAIN_TIMEOUT", p.drainTimeout.String())
	}
	close(p.drainOver)
	p.cond.Broadcast()
}

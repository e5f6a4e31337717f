package daemon

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/serfd/serfd/ctl"
	"github.com/serfd/serfd/exec"
	"github.com/serfd/serfd/gossip"
)

// metricsNamespace prefixes every metric serfd defines.
const metricsNamespace = "serfd"

// otherEvent is the event label of user events whose name is not in the
// metrics allow-list (metrics { event_names }), so that the label's values
// stay bounded.
const otherEvent = "_other"

// metrics is serfd's Prometheus registry. Counters that only grow in
// gossip and the handler pool are read from their Stats at each scrape
// (statsCollector); what has no such counter (handler outcomes and
// durations, control requests, events by name) is counted here as it
// happens. memberlist's own measurements come through the go-metrics
// bridge (metrics_bridge.go).
type metrics struct {
	reg        *prometheus.Registry
	http       http.Handler    // serves reg
	eventNames map[string]bool // allow-listed user event names

	handlerRuns     *prometheus.CounterVec
	handlerDuration *prometheus.HistogramVec
	requests        *prometheus.CounterVec
	delivered       *prometheus.CounterVec
	memberEvents    *prometheus.CounterVec
}

// newMetrics builds the registry of one daemon; d's cluster and pool are
// read at scrape time, once they exist.
func newMetrics(d *daemon, eventNames []string) *metrics {
	m := &metrics{reg: prometheus.NewRegistry(), eventNames: map[string]bool{}}
	for _, n := range eventNames {
		m.eventNames[n] = true
	}
	m.handlerRuns = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace, Name: "handler_runs_total",
		Help: "Handler runs by handler and outcome: ok, exit_nonzero, timeout, killed, start_failed, dropped (queue full or drain over).",
	}, []string{"handler", "outcome"})
	m.handlerDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: metricsNamespace, Name: "handler_run_duration_seconds",
		Help:    "Wall time of finished handler runs, by handler.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300},
	}, []string{"handler"})
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace, Name: "control_requests_total",
		Help: "Requests to the control socket (and the metrics listener), by path and HTTP status code.",
	}, []string{"path", "code"})
	m.delivered = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace, Name: "user_events_delivered_total",
		Help: "User events handed to this node's handlers, by name (names outside metrics.event_names count as " + otherEvent + ").",
	}, []string{"event"})
	m.memberEvents = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace, Name: "member_events_total",
		Help: "Members in member events handed to this node's handlers, by event type (member-join, member-leave, member-failed, member-update, member-reap).",
	}, []string{"type"})
	for _, n := range append(slices.Sorted(mapKeys(m.eventNames)), otherEvent) {
		m.delivered.WithLabelValues(n)
	}
	for _, t := range []gossip.EventType{gossip.EventMemberJoin, gossip.EventMemberLeave, gossip.EventMemberFailed,
		gossip.EventMemberUpdate, gossip.EventMemberReap} {
		m.memberEvents.WithLabelValues(t.String())
	}
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: metricsNamespace, Name: "build_info",
		Help:        "Always 1; the labels say which serfd runs.",
		ConstLabels: prometheus.Labels{"version": d.version, "goversion": runtime.Version()},
	})
	buildInfo.Set(1)
	m.reg.MustRegister(m.handlerRuns, m.handlerDuration, m.requests, m.delivered, m.memberEvents, buildInfo,
		&statsCollector{d: d, m: m}, gossipBridge(),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.http = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{EnableOpenMetrics: true, MaxRequestsInFlight: 4})
	return m
}

func mapKeys(m map[string]bool) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// onRun is the pool's exec.Options.OnRun.
func (m *metrics) onRun(r exec.RunOutcome) {
	m.handlerRuns.WithLabelValues(r.Handler, string(r.Outcome)).Inc()
	if r.Outcome != exec.OutcomeDropped && r.Outcome != exec.OutcomeStartFailed {
		m.handlerDuration.WithLabelValues(r.Handler).Observe(r.Duration.Seconds())
	}
}

// onEvent counts an event the pump hands to the handlers.
func (m *metrics) onEvent(ev gossip.Event) {
	switch ev.Type {
	case gossip.EventUser:
		name := ev.Name
		if !m.eventNames[name] {
			name = otherEvent
		}
		m.delivered.WithLabelValues(name).Inc()
	case gossip.EventQuery:
	default:
		m.memberEvents.WithLabelValues(ev.Type.String()).Add(float64(len(ev.Members)))
	}
}

// countRequests wraps the control server's mux: each request is counted by
// the pattern that served it (bounded: the route table) and its status.
func (m *metrics) countRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		path := "other"
		if _, p, ok := strings.Cut(r.Pattern, " "); ok {
			path = p
		}
		code := sw.status
		if code == 0 {
			code = http.StatusOK
		}
		m.requests.WithLabelValues(path, strconv.Itoa(code)).Inc()
	})
}

// statusWriter records the status a handler wrote. Unwrap keeps Flush and
// deadlines (http.ResponseController) working for streams.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// statsCollector presents gossip's and the handler pool's Stats at each
// scrape: their counters only grow while serfd runs, so they are
// Prometheus counters as they are, without counting anything twice.
type statsCollector struct {
	d *daemon
	m *metrics
}

// desc is one metric of statsCollector.
func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(metricsNamespace, "", name), help, labels, nil)
}

var (
	descMembers       = desc("members", "Members as this node sees them, by status (alive, leaving, left, failed).", "status")
	descFlaps         = desc("member_flaps_total", "Members seen failed that were alive again within 60 s.")
	descHealth        = desc("health_score", "memberlist's awareness score: 0 is healthy; higher means this node's probes are failing or slow and it waits longer before suspecting others.")
	descQueue         = desc("gossip_queue_messages", "Messages waiting to be gossiped, by queue (intent, event, query).", "queue")
	descClock         = desc("lamport_time", "Lamport clocks, by clock (member, event, query).", "clock")
	descEvents        = desc("user_events_total", "User events: sent from this node, received new from peers, received again (duplicate), relayed on to peers, refused (backlog full; the sender was told 503).", "result")
	descQueries       = desc("queries_total", "Queries: sent from this node, received new from peers, received again (duplicate), relayed on to peers, refused (backlog full; the sender was told 503).", "result")
	descDropped       = desc("events_dropped_total", "Events dropped, by reason: too_old (a user event behind the dedup window), delivery_queue_full (any event, the handler pump fell behind).", "reason")
	descAnswers       = desc("query_answers_received_total", "Acks and responses received to this node's queries.", "type")
	descTimedOut      = desc("queries_timed_out_total", "This node's queries that ran to their deadline (serfctl query ends earlier once every node it expects answered).")
	descResponses     = desc("query_responses_sent_total", "Responses to other nodes' queries, by result: sent, or failed (too large, past the deadline, or not sendable).", "result")
	descMalformed     = desc("gossip_malformed_messages_total", "Messages and push/pull states from the network dropped as malformed or implausible.")
	descCoordResets   = desc("coordinate_resets_total", "Times the network coordinate became invalid and was reset.")
	descSnapWrites    = desc("snapshot_writes_total", "Writes to the snapshot file, by kind: flush (appended lines) or compaction (rewrite).", "kind")
	descSnapSeconds   = desc("snapshot_write_seconds_total", "Seconds spent writing the snapshot file (flushes and compactions).")
	descSnapDropped   = desc("snapshot_dropped_records_total", "Snapshot records dropped because its queue was full.")
	descStreamLost    = desc("rpc_stream_events_lost_total", "Events that Serf RPC event streams (serf monitor/stream clients) fell behind on and lost.")
	descWorkers       = desc("handler_workers", "Handler runs allowed in flight at once.")
	descBusy          = desc("handler_workers_busy", "Handler runs in flight.")
	descQueued        = desc("handler_queue_runs", "Handler runs waiting in memory.")
	descQueueLimit    = desc("handler_queue_limit", "Handler runs that may wait in memory before new ones are dropped (or spooled).")
	descSpooled       = desc("handler_spooled_runs", "Runs of user events waiting in the spool beyond the queue.")
	descHandlerActive = desc("handler_active", "1 for a handler the last read of the handlers directory accepted, 0 for one it refused or that is gone.", "handler")
	descHandlerQueued = desc("handler_queued_runs", "Runs waiting, by handler.", "handler")
	descRepeats       = desc("handler_repeats_total", "Runs started again after a crash or stop cut them short (SERF_RUN_ATTEMPT > 1), by handler.", "handler")
)

func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descMembers, descFlaps, descHealth, descQueue, descClock, descEvents,
		descQueries, descDropped, descAnswers, descTimedOut, descResponses, descMalformed, descCoordResets,
		descSnapWrites, descSnapSeconds, descSnapDropped, descStreamLost, descWorkers, descBusy, descQueued,
		descQueueLimit, descSpooled, descHandlerActive, descHandlerQueued, descRepeats} {
		ch <- d
	}
}

func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	select {
	case <-c.d.started:
	default:
		return // gossip is not up yet
	}
	if cl := c.d.cluster; cl != nil {
		s := cl.Stats()
		t := s.Traffic
		gauge(descMembers, float64(s.Alive), "alive")
		gauge(descMembers, float64(s.Leaving), "leaving")
		gauge(descMembers, float64(s.Left), "left")
		gauge(descMembers, float64(s.Failed), "failed")
		counter(descFlaps, s.Flaps)
		gauge(descHealth, float64(s.HealthScore))
		gauge(descQueue, float64(s.IntentQueue), "intent")
		gauge(descQueue, float64(s.EventQueue), "event")
		gauge(descQueue, float64(s.QueryQueue), "query")
		gauge(descClock, float64(s.MemberTime), "member")
		gauge(descClock, float64(s.EventTime), "event")
		gauge(descClock, float64(s.QueryTime), "query")
		for _, r := range []struct {
			name          string
			events, query uint64
		}{
			{"sent", t.EventsSent, t.QueriesSent},
			{"received", t.EventsReceived, t.QueriesReceived},
			{"duplicate", t.EventsDuplicate, t.QueriesDuplicate},
			{"relayed", t.EventsRelayed, t.QueriesRelayed},
			{"refused", s.RefusedEvents, s.RefusedQueries},
		} {
			counter(descEvents, r.events, r.name)
			counter(descQueries, r.query, r.name)
		}
		counter(descDropped, s.TooOldEvents, "too_old")
		counter(descDropped, s.DroppedEvents, "delivery_queue_full")
		counter(descAnswers, t.AcksReceived, "ack")
		counter(descAnswers, t.ResponsesReceived, "response")
		counter(descTimedOut, t.QueriesTimedOut)
		counter(descResponses, t.ResponsesSent, "sent")
		counter(descResponses, t.ResponsesFailed, "failed")
		counter(descMalformed, t.MalformedMessages)
		counter(descCoordResets, s.CoordinateResets)
		counter(descSnapWrites, t.SnapshotFlushes, "flush")
		counter(descSnapWrites, t.SnapshotCompactions, "compaction")
		ch <- prometheus.MustNewConstMetric(descSnapSeconds, prometheus.CounterValue, t.SnapshotWriteSeconds)
		counter(descSnapDropped, t.SnapshotDropped)
	}
	counter(descStreamLost, c.d.streamLost.Load())
	if p := c.d.pool; p != nil {
		sum := p.Summary()
		gauge(descWorkers, float64(sum.Workers))
		gauge(descBusy, float64(sum.Running))
		gauge(descQueued, float64(sum.Queued))
		gauge(descQueueLimit, float64(sum.QueueLimit))
		gauge(descSpooled, float64(sum.Spooled))
		for _, h := range p.Stats() {
			active := 0.0
			if h.Active {
				active = 1
			}
			gauge(descHandlerActive, active, h.Name)
			gauge(descHandlerQueued, float64(h.Queued), h.Name)
			counter(descRepeats, h.Repeats, h.Name)
			// Every outcome of every known handler has a series from
			// zero, so that increase() sees its first failure.
			for _, o := range exec.Outcomes {
				c.m.handlerRuns.WithLabelValues(h.Name, string(o))
			}
			c.m.handlerDuration.WithLabelValues(h.Name)
		}
	}
}

// startMetrics serves the metrics over TCP when metrics.address is set:
// GET /metrics (Prometheus' default path) and /v1/metrics, nothing else.
// It returns the function that stops it.
func (d *daemon) startMetrics() (func(), error) {
	if d.cfg.MetricsAddr == "" {
		return func() {}, nil
	}
	l, err := net.Listen("tcp", d.cfg.MetricsAddr)
	if err != nil {
		return nil, fmt.Errorf("serve metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", d.metrics.http)
	mux.Handle("GET "+ctl.PathMetrics, d.metrics.http)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "serfd serves only GET /metrics here", http.StatusNotFound)
	})
	srv := &http.Server{
		Handler:           d.metrics.countRequests(mux),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(d.log.Handler(), slog.LevelDebug),
	}
	ll := newLimitListener(l)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ll)
	}()
	d.log.Info("serving Prometheus metrics", "METRICS_ADDR", l.Addr().String())
	return func() {
		_ = srv.Close()
		<-done
	}, nil
}

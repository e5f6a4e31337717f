package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"time"

	"github.com/serfd/serfd/ctl"
)

// monitorWriteTimeout bounds each write of a monitor stream: a client that
// stops reading for this long is cut off.
const monitorWriteTimeout = 30 * time.Second

func (d *daemon) monitor(w http.ResponseWriter, r *http.Request) (any, error) {
	name := r.URL.Query().Get("level")
	if name == "" {
		name = "info"
	}
	level, err := parseLevel(name)
	if err != nil {
		return nil, badRequest("monitor: log level %v", err)
	}
	sub, err := d.logs.subscribe(level)
	if err != nil {
		return nil, &apiError{status: http.StatusServiceUnavailable, err: fmt.Errorf("monitor: %w", err), retryAfter: busyRetryAfter}
	}
	defer d.logs.unsubscribe(sub)

	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Now().Add(monitorWriteTimeout))
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	if rc.Flush() != nil {
		return nil, nil
	}
	enc := json.NewEncoder(w)
	for {
		select {
		case rec := <-sub.ch:
			_ = rc.SetWriteDeadline(time.Now().Add(monitorWriteTimeout))
			if enc.Encode(rec) != nil || rc.Flush() != nil {
				return nil, nil
			}
		case <-r.Context().Done():
			return nil, nil
		case <-d.done:
			return nil, nil
		}
	}
}

// heapInuse is the Go heap in use, for info: a measure of what serfd holds
// that, unlike RSS, does not include memory the runtime kept after a peak.
func heapInuse() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// serveMetrics answers with the Prometheus metrics (metrics.go).
func (d *daemon) serveMetrics(w http.ResponseWriter, r *http.Request) (any, error) {
	d.metrics.http.ServeHTTP(w, r)
	return nil, nil
}

func (d *daemon) info(_ http.ResponseWriter, _ *http.Request) (any, error) {
	d.mu.Lock()
	cur := d.current
	d.mu.Unlock()
	st := d.cluster.Stats()
	local := d.cluster.LocalMember()
	out := ctl.InfoResponse{
		Node:            local.Name,
		Version:         d.version,
		GossipAddr:      net.JoinHostPort(local.Addr.String(), strconv.Itoa(int(local.Port))),
		Tags:            local.Tags,
		ConfigFiles:     cur.Files,
		ControlSocket:   d.cfg.ControlSocket,
		SocketActivated: d.activated,
		AdminGroup:      cur.AdminGroup,
		LogLevel:        d.level.Level().String(),
		EncryptionOn:    d.cluster.EncryptionEnabled(),
		Members: ctl.MemberCounts{Total: st.Members, Alive: st.Alive, Leaving: st.Leaving,
			Left: st.Left, Failed: st.Failed},
		Gossip: ctl.GossipStats{MemberTime: st.MemberTime, EventTime: st.EventTime, QueryTime: st.QueryTime,
			IntentQueue: st.IntentQueue, EventQueue: st.EventQueue, QueryQueue: st.QueryQueue,
			DroppedEvents: st.DroppedEvents, TooOldEvents: st.TooOldEvents,
			RefusedEvents: st.RefusedEvents, RefusedQueries: st.RefusedQueries, HealthScore: st.HealthScore,
			CoordinateResets: st.CoordinateResets, Flaps: st.Flaps},
		Handlers: []ctl.HandlerStats{},
		Runtime: ctl.RuntimeInfo{GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH,
			MaxProcs: runtime.GOMAXPROCS(0), CPUCount: runtime.NumCPU(), Goroutines: runtime.NumGoroutine(), HeapInuse: heapInuse(),
			Uptime: time.Since(d.startTime)},
		MonitorDrops: d.logs.dropped.Load(),
	}
	if out.Tags == nil {
		out.Tags = map[string]string{}
	}
	ps := d.pool.Summary()
	out.HandlerPool = ctl.HandlerPoolStats{Workers: ps.Workers, Running: ps.Running, Queued: ps.Queued,
		QueueLimit: ps.QueueLimit, Spooled: ps.Spooled, Spool: d.cfg.HandlerSpool, Watching: ps.Watching,
		Dir: d.cfg.HandlersDir, DirProblem: ps.DirProblem, Handlers: ps.Handlers, Refused: ps.Refused, Dropped: ps.Dropped}
	for _, h := range d.pool.Stats() {
		out.Handlers = append(out.Handlers, ctl.HandlerStats{Name: h.Name, Active: h.Active, State: string(h.State),
			Reason: h.Reason, Events: h.Events, Tags: h.Tags, Concurrency: h.Concurrency, Timeout: h.Timeout, Runs: h.Runs,
			Failures: h.Failures, Timeouts: h.Timeouts, Drops: h.Drops, Repeats: h.Repeats, Queued: h.Queued, Running: h.Running,
			LastDuration: h.LastDuration, LastExitStatus: h.LastExitStatus, LastFinished: h.LastFinished,
			LastOutcome: string(h.LastOutcome), LastSignal: h.LastSignal, LastEvent: h.LastEvent})
	}
	return out, nil
}

func (d *daemon) reloadRoute(_ http.ResponseWriter, r *http.Request) (any, error) {
	var req struct{}
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	res, err := d.requestReload(r)
	if err != nil {
		return nil, err
	}
	return res, nil
}

// requestReload hands a reload to Run's loop and waits for its result.
func (d *daemon) requestReload(r *http.Request) (ctl.ReloadResponse, error) {
	reply := make(chan reloadResult, 1)
	select {
	case d.reloadReq <- reply:
	case <-d.done:
		return ctl.ReloadResponse{}, &apiError{status: http.StatusServiceUnavailable, err: errors.New("reload: serfd is stopping")}
	case <-r.Context().Done():
		return ctl.ReloadResponse{}, r.Context().Err()
	}
	res := <-reply
	if res.err != nil {
		var ce *ConfigError
		if errors.As(res.err, &ce) {
			return ctl.ReloadResponse{}, &apiError{status: http.StatusBadRequest,
				err: fmt.Errorf("reload: the configuration does not load; keeping the running one:\n%w", res.err)}
		}
		return ctl.ReloadResponse{}, fmt.Errorf("reload: %w", res.err)
	}
	return res.resp, nil
}

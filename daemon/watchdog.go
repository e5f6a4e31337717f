package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"
)

// The service watchdog (WatchdogSec= in serfd.service): systemd expects
// WATCHDOG=1 at least once per WATCHDOG_USEC and otherwise kills serfd with
// SIGABRT, after which Restart=on-failure starts it again. serfd pings only
// while it is healthy, so that a wedged daemon, still holding its sockets
// but answering nothing, is restarted.

// watchdog checks health every interval/3, each check bounded by interval/3,
// and sends WATCHDOG=1 after each check that passes. A failing check
// withholds the ping: it logs one warning when the daemon becomes unhealthy
// and one notice when it recovers, and reports the reason to unhealthy on
// every failing check ("" once healthy again). Used by one goroutine.
type watchdog struct {
	interval  time.Duration               // systemd's WATCHDOG_USEC
	check     func(context.Context) error // nil when healthy; returns by ctx's deadline
	notify    func(state string)          // sd_notify
	unhealthy func(reason string)
	log       *slog.Logger
}

// run pings until ctx is cancelled; the first check is at once.
func (w *watchdog) run(ctx context.Context) {
	period := w.interval / 3
	tick := time.NewTicker(period)
	defer tick.Stop()
	var since time.Time // when pings were first withheld; zero while healthy
	for {
		cctx, cancel := context.WithTimeout(ctx, period)
		err := w.check(cctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		switch {
		case err == nil:
			w.notify("WATCHDOG=1")
			if !since.IsZero() {
				w.log.Info("healthy again; watchdog pings resumed",
					"WITHHELD_MS", time.Since(since).Milliseconds())
				since = time.Time{}
				w.unhealthy("")
			}
		default:
			if since.IsZero() {
				since = time.Now()
				w.log.Warn("watchdog ping withheld: "+err.Error(), msgIDKey, msgIDWatchdogWithheld,
					"ERROR", err.Error(), "WATCHDOG_USEC", w.interval.Microseconds())
			}
			w.unhealthy(err.Error())
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// startWatchdog starts pinging systemd's watchdog if the service has one
// (WATCHDOG_USEC, and WATCHDOG_PID naming this process if set). The
// returned function stops it and waits for its goroutine; it is idempotent.
// Called by run after READY=1; the pings go on through the graceful leave
// and stop only at the end of run.
func (d *daemon) startWatchdog() (stop func()) {
	interval, err := sd.SdWatchdogEnabled(false)
	if err != nil {
		d.log.Warn("systemd watchdog settings ignored", "ERROR", err)
		return func() {}
	}
	if interval <= 0 {
		return func() {}
	}
	d.log.Info("systemd watchdog enabled", "WATCHDOG_USEC", interval.Microseconds(),
		"CHECK_EVERY_MS", (interval / 3).Milliseconds())
	w := &watchdog{interval: interval, check: d.checkHealth, notify: d.notify,
		unhealthy: d.setUnhealthy, log: d.log}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { w.run(ctx) })
	return sync.OnceFunc(func() {
		cancel()
		wg.Wait()
	})
}

// checkHealth is the watchdog's check: Run's loop takes a probe, and gossip
// (memberlist and the event pump) is not stuck. The handler pool needs no
// check of its own: Submit, its only entry from the event path, is covered
// by the event pump's, and its runs are bounded by their deadlines.
//
// Once Run's loop has ended, the daemon is stopping: that path is bounded
// by its own timeouts (and systemd watches it with TimeoutStopSec=), so the
// check passes and the pings go on.
func (d *daemon) checkHealth(ctx context.Context) error {
	start := time.Now()
	select {
	case d.probe <- struct{}{}:
	case <-d.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("main loop has not answered for %s (a reload still running?)",
			time.Since(start).Round(time.Millisecond))
	}
	return d.cluster.CheckHealth(ctx)
}

// setUnhealthy records why watchdog pings are withheld ("" when they no
// longer are) and says so in STATUS=. While unhealthy it does not call
// notifyStatus, which takes the cluster's member lock: that may be what
// is stuck.
func (d *daemon) setUnhealthy(reason string) {
	d.mu.Lock()
	d.unhealthy = reason
	d.mu.Unlock()
	if reason == "" {
		d.notifyStatus()
		return
	}
	d.notify("STATUS=unhealthy, watchdog pings withheld: " + reason)
}

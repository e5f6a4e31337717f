// Package daemon is serfd's composition root. It owns the configuration
// schema (HCL), the control server on the Unix socket, the systemd
// integration (socket activation, sd_notify, journald logging) and the event
// pump that carries gossip events to the handler pool.
//
// Room: daemon translates and forwards. Cluster semantics live in gossip,
// script execution in exec, the control protocol's types in ctl; logic that
// grows here beyond gluing them belongs in one of those leaves. daemon is the
// only package that imports go-systemd, hcl and the metrics libraries.
//
// Metrics (metrics.go): the leaves count in their Stats and exec reports
// each run through Options.OnRun; daemon presents those to Prometheus at
// scrape time, and bridges memberlist's go-metrics measurements under
// serfd's own names (metrics_bridge.go). Nothing is counted twice.
//
// Lifecycle: Run blocks until its context is cancelled or a client asks the
// node to leave; before it returns it has left the cluster gracefully,
// stopped the control server and waited for every goroutine it started.
// Reloads (SIGHUP or POST /v1/reload) run on Run's own goroutine, one at a
// time; a configuration that does not load changes nothing. Under a
// systemd watchdog (WATCHDOG_USEC) a goroutine owned by Run sends
// WATCHDOG=1 only while Run's loop, gossip and the event pump pass a health
// check (watchdog.go); it pings through the graceful leave and stops last.
// A Run that fails before it serves (a bad configuration, an address it
// cannot bind) on a socket systemd passed first answers the clients waiting
// there with the reason (startfail.go), on Run's goroutine, so that none is
// left in the backlog to start serfd again at once.
//
// Journal records an operator may act on carry a MESSAGE_ID (msgid.go,
// exec.Msg*) explained by packaging/catalog/serfd.catalog; only the journald
// handler sends it.
//
// Access: the route table marks routes as mutating; those are served only to
// root and members of the configured admin group (SO_PEERCRED), and logged
// with the peer's uid and pid. Monitor subscribers never slow logging down:
// each has a bounded buffer, and what does not fit is dropped and counted.
package daemon

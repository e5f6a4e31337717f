// Package soak is the soak suite's load generator, membership watcher and
// checker (packaging/e2e/soak.sh drives them against booted systemd hosts).
//
// Its room is measuring serfd from the outside: it talks to each node only
// through the control API (package ctl) over the node's Unix socket, and
// reads the files the suite collects (the handlers' logs, the journals, the
// fault log). It must not know serfd's internals: no import of daemon,
// gossip or exec, and no process spawning.
//
// The delivery contract it checks: a user event the API accepted (2xx) runs
// exactly once per matching handler on every node that is a member during
// the event's lifetime, including a node that restarts, is partitioned and
// heals, or is upgraded meanwhile. The suite keeps every node a member from
// before the first event to the final check (a stopped or killed node comes
// back), so every accepted event must run once on every node. Lost: an
// accepted id missing from a node's handler log. Duplicated: an id run more
// than once by the same handler on the same node (accepted or not), not
// counting a repeat that serfd announced (SERF_RUN_ATTEMPT > 1, after a
// crash cut the first run short) and that the handler skipped because its
// first run had logged the id.
//
// Generator.Run and Watcher.Run own every goroutine they start and return
// only after all have exited; Check is a pure function of its Input.
package soak

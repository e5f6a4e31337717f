// Package testutil holds what the project's tests share: polling for a
// condition with a deadline, receiving from a channel with a timeout, a
// buffer safe for concurrent writes, free loopback ports, temporary
// directories short enough for a Unix socket path, finding stock Serf,
// starting, running and reaping processes, a DNS server answering from
// zone-file records, and telling whether the tests run under an emulator
// (`make test-arm64`), to scale their deadlines or skip what cannot run
// there.
//
// Only _test.go files import it (daemon's design test enforces this), and
// it imports none of the project's packages, so every package's tests may
// use it. Helpers that take a testing.TB call its Fatal, and so must be
// called from the test's own goroutine. A process started with Start is
// owned by the test: it is killed by PID and reaped at cleanup, and its
// output is logged if the test failed.
package testutil

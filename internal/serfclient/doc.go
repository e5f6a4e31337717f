// Package serfclient holds one test: Serf's own Go client library
// (github.com/hashicorp/serf/client) against a real serfd over Serf's RPC.
//
// It is a module of its own because the client cannot be built in serfd's:
// Serf 0.10.2's coordinate package imports go-metrics/compat, which the
// go-metrics that serfd's memberlist requires no longer has. For the same
// reason it cannot use internal/testutil, and keeps the two small helpers
// it needs (polling with a deadline, a process killed at cleanup). `make
// test` runs it; it builds serfd from the repository it sits in.
package serfclient

// Package ctl is serfd's control protocol: the HTTP paths, the JSON request
// and response types, the error shape, and a Go client that speaks them over
// the daemon's Unix socket. It also holds Serf's RPC protocol (IPC version
// 1): its wire types, which serfd's server uses too, and RPCClient, which
// speaks it to serfd's rpc listener or to a Serf agent, with go-msgpack, the
// codec Serf itself uses.
//
// Room: this is the one package of the project meant for outside importers
// (serfctl and any operator tooling). It uses the standard library and go-msgpack only, and
// knows nothing of gossip, handler scripts, systemd or the daemon's config:
// the daemon serves these types, clients send them.
//
// Concurrency: a Client is safe for concurrent use by multiple goroutines and
// holds no state besides an http.Client; it has nothing to close. An
// RPCClient holds one connection, makes one request at a time and is not
// safe for concurrent use; Close closes it.
package ctl

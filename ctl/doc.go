// Package ctl is serfd's control protocol: the HTTP paths, the JSON request
// and response types, the error shape, and a Go client that speaks them over
// the daemon's Unix socket.
//
// Room: this is the one package of the project meant for outside importers
// (serfctl and any operator tooling). It uses the standard library only and
// knows nothing of gossip, handler scripts, systemd or the daemon's config:
// the daemon serves these types, clients send them.
//
// Concurrency: a Client is safe for concurrent use by multiple goroutines and
// holds no state besides an http.Client; it has nothing to close.
package ctl

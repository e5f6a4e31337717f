package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Join entries name peers in three ways: an IP address (with or without a
// port), a DNS name (every address it resolves to, with the entry's port
// or the default one), or an SRV name, _service._proto.domain (every
// target of its SRV records, at each target's addresses and the record's
// port). Names are resolved at every join attempt, never cached, so a
// retrying join follows DNS as it changes (peers replaced, a fleet scaled).

// isSRVName reports whether host is an SRV name: its first two labels
// start with an underscore (_serf._udp.example.internal).
func isSRVName(host string) bool {
	labels := strings.SplitN(host, ".", 3)
	return len(labels) == 3 && strings.HasPrefix(labels[0], "_") && strings.HasPrefix(labels[1], "_")
}

// resolveTimeout bounds the resolution of all entries of one join attempt.
const resolveTimeout = 10 * time.Second

// newResolver is the resolver of join names: the system's (Go's own, from
// /etc/resolv.conf), or, with server set ("host:port"), one that asks only
// that DNS server, e.g. Consul's on 127.0.0.1:8600.
func newResolver(server string) *net.Resolver {
	if server == "" {
		return &net.Resolver{PreferGo: true}
	}
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, server)
	}}
}

// resolveJoin turns join entries into the ip:port addresses to contact,
// each once, in the order found. An entry that cannot be resolved is
// named in the error; the addresses of the others are still returned, so
// that one stale name does not keep a node out.
func resolveJoin(ctx context.Context, r *net.Resolver, entries []string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	var out []string
	var problems []error
	add := func(ip net.IP, port string) {
		if a := net.JoinHostPort(ip.String(), port); !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	lookup := func(entry, host, port string) {
		ips, err := r.LookupIPAddr(ctx, host)
		if err != nil {
			problems = append(problems, fmt.Errorf("join %q: %w", entry, err))
			return
		}
		for _, ip := range ips {
			add(ip.IP, port)
		}
	}
	for _, e := range entries {
		host, port, err := net.SplitHostPort(withPort(e))
		if err != nil {
			problems = append(problems, fmt.Errorf("join %q: %w", e, err))
			continue
		}
		switch {
		case net.ParseIP(host) != nil:
			add(net.ParseIP(host), port)
		case isSRVName(host):
			_, srvs, err := r.LookupSRV(ctx, "", "", host)
			if err != nil {
				problems = append(problems, fmt.Errorf("join %q (SRV): %w", e, err))
				continue
			}
			for _, s := range srvs {
				lookup(e, strings.TrimSuffix(s.Target, "."), strconv.Itoa(int(s.Port)))
			}
		default:
			lookup(e, host, port)
		}
	}
	return out, errors.Join(problems...)
}

// resolver is the resolver of the configuration in force.
func (d *daemon) resolver() *net.Resolver {
	d.mu.Lock()
	server := d.current.JoinResolver
	d.mu.Unlock()
	return newResolver(resolverAddr(server))
}

// joinEntries resolves entries and joins the addresses found; what cannot be
// resolved is logged, and is the error if nothing could be.
func (d *daemon) joinEntries(ctx context.Context, entries []string, ignoreOld bool) (int, error) {
	addrs, err := resolveJoin(ctx, d.resolver(), entries)
	if err != nil {
		if len(addrs) == 0 {
			return 0, err
		}
		d.log.Warn("some join names did not resolve; joining the others", "JOIN_ADDRS", fmt.Sprint(entries), "ERROR", err)
	}
	if !slices.Equal(addrs, entries) {
		d.log.Info(fmt.Sprintf("join %s resolved to %s", strings.Join(entries, ", "), strings.Join(addrs, ", ")),
			"JOIN_ADDRS", fmt.Sprint(entries), "RESOLVED", fmt.Sprint(addrs))
	}
	return d.cluster.Join(ctx, addrs, ignoreOld)
}

package daemon

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/serfd/serfd/gossip"
)

// mdnsJoinTimeout bounds one join of the addresses an mDNS lookup found:
// memberlist tries them one after another, and a batch of unreachable
// ones must not keep the next lookup's batch waiting for long.
const mdnsJoinTimeout = 30 * time.Second

// startMDNS starts mDNS discovery when discover is set: the node answers
// for its cluster name and joins the peers its lookups find. The returned
// function stops it.
func (d *daemon) startMDNS() (func(), error) {
	cfg := d.cfg
	if cfg.Discover == "" {
		return func() {}, nil
	}
	local := d.cluster.LocalMember()
	m, err := gossip.StartMDNS(gossip.MDNSConfig{
		Cluster:     cfg.Discover,
		NodeName:    cfg.NodeName,
		Addr:        local.Addr,
		Port:        int(local.Port),
		Interface:   cfg.MDNSInterface,
		DisableIPv4: cfg.MDNSDisableIPv4,
		DisableIPv6: cfg.MDNSDisableIPv6,
		Logger:      d.log,
		Join: func(ctx context.Context, addrs []string) {
			ctx, cancel := context.WithTimeout(ctx, mdnsJoinTimeout)
			defer cancel()
			n, err := d.cluster.Join(ctx, addrs, !cfg.ReplayOnJoin)
			if n > 0 {
				d.log.Info("joined members found by mDNS", "DISCOVER", cfg.Discover, "JOIN_ADDRS", fmt.Sprint(addrs), "CONTACTED", n)
				return
			}
			if ctx.Err() == nil || err != nil {
				d.log.Warn("could not join members found by mDNS", "DISCOVER", cfg.Discover, "JOIN_ADDRS", fmt.Sprint(addrs), "ERROR", fmt.Sprint(err))
			}
		},
		IsMember: func(addr string) bool {
			for _, m := range d.cluster.Members() {
				if m.Status == gossip.StatusAlive && net.JoinHostPort(m.Addr.String(), strconv.Itoa(int(m.Port))) == addr {
					return true
				}
			}
			return false
		},
	})
	if err != nil {
		return nil, fmt.Errorf("mDNS discovery (discover = %q): %w", cfg.Discover, err)
	}
	return m.Stop, nil
}

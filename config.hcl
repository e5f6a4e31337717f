# serfd configuration. Installed as /etc/serf/config.hcl; drop-ins in
# /etc/serf/config.d/*.hcl are read after it, in lexical order, and override
# it (tags merge, join lists append). Check a change with: serfd -check
# Reference: serfd.hcl(5) and the README.

# This node's name in the cluster; unique per cluster. Default: the hostname.
# node_name = "web-1"

# Address and port for gossip (UDP and TCP). Port defaults to 7946.
bind = "0.0.0.0:7946"

# Or bind to a network interface's address (its first that is not
# link-local, with bind at 0.0.0.0), as Serf's -iface.
# interface = "eth0"

# Address peers should use to reach this node when it differs from bind
# (NAT, or bind on 0.0.0.0 with several interfaces).
# advertise = "10.0.0.1:7946"

# Gossip timings: lan (default), wan or local.
profile = "lan"

# Tags other members see (and handlers get as SERF_TAG_*).
# tags = { role = "web", dc = "east" }
# Tags set at run time (serfctl tags, Serf's RPC) are kept here across
# restarts, in Serf's tags_file format (a JSON object); a Serf agent's file
# works as it is. Default under systemd: /var/lib/serfd/tags.json; "" = none.
# tags_file = "/var/lib/serfd/tags.json"

# Members to join at start; retried in the background until one answers.
# Each entry is an IP address, a DNS name (every address it resolves to)
# or an SRV name (_service._proto.domain: every target at its record's
# port); names are resolved again at every attempt.
# join = ["10.0.0.2:7946", "serf.internal", "_serf._udp.example.internal"]
# The DNS server join names are resolved through (ip[:port]); default: the
# system's resolver (/etc/resolv.conf).
# join_resolver = "127.0.0.1:8600"

# Or find the members on this link by mDNS, as Serf's -discover: nodes with
# the same name join each other with no join list (one L2 segment; the
# network must carry multicast).
# discover = "prod"
# mdns {
#   interface    = "eth0"   # default: the system's default multicast interface
#   disable_ipv6 = false
# }

# Gossip encryption (AES-GCM), the same on every node. Either one key
# (make one with: serfctl keygen) or a keyring file, a JSON array of base64
# keys with the primary first, which `serfctl keys` keeps up to date.
# encrypt_key  = ""
# keyring_file = "/var/lib/serfd/keyring.json"
# For this long after `serfctl keys remove`, a node that was down during the
# rotation and holds only the removed key is handed the current keyring by
# the peers it tries to join. "0s" turns that off: do so when rotating
# because a key leaked (README, Security model). Retired keys are kept in
# keyring_file + ".retired".
# key_handover_grace = "24h"

# Membership and clocks survive restarts here, so a restarted node rejoins
# its previous peers and never re-runs events it already handled. Default:
# $STATE_DIRECTORY/snapshot under systemd (/var/lib/serfd/snapshot), else none.
# snapshot_path = "/var/lib/serfd/snapshot"
# A stop (systemctl stop/restart, a package upgrade) is a graceful leave;
# with rejoin_after_leave the next start rejoins the previous peers from the
# snapshot anyway, so restarting serfd does not take the node out of its
# cluster. Serf's default is false: a node that left stays out until it is
# joined again.
rejoin_after_leave = true
# A node restarted with its snapshot gets the user events sent while it was
# down (those still in its peers' buffers) and never re-runs ones it handled.
# replay_on_join also replays recent user events on any other join.
# replay_on_join     = false

# Failed members are retried every reconnect_interval and forgotten after
# reconnect_timeout; left members are forgotten after tombstone_timeout.
# reconnect_interval = "30s"
# reconnect_timeout  = "24h"
# tombstone_timeout  = "24h"

# The snapshot also keeps the last address of each member that failed or
# left, for snapshot_retention after it went (1m to 8760h). At start a node
# tries to rejoin the peers its snapshot lists alive, then these, the latest
# gone first, and keeps retrying in the background (1s to 30s apart) until
# one answers, another member reaches it, or every address is past the
# retention (the alive peers count from the start). So a cluster whose nodes
# all went down one after another (a power cut, every host rebooted) forms
# again by itself when they come back within it; after a planned shutdown,
# where each node left, that needs rejoin_after_leave.
# snapshot_retention = "72h"

# Member events within coalesce_period (and user events sent with
# `serfctl event -coalesce`) reach handlers as one batch, after
# quiescent_period of quiet. "0s" turns coalescing off.
# coalesce_period       = "3s"
# quiescent_period      = "1s"
# user_coalesce_period  = "3s"
# user_quiescent_period = "1s"

# Message size limits in bytes (Serf's defaults; at most 9216). Larger
# messages cannot ride a UDP packet.
# user_event_size_limit     = 512
# query_size_limit          = 1024
# query_response_size_limit = 1024

# A larger query response (a query handler's stdout) travels between serfd
# nodes over a TCP stream, up to this many bytes (at most 16 MiB; equal to
# query_response_size_limit turns it off). A stock Serf agent's queries get
# no answer larger than query_response_size_limit; the journal says why.
# query_response_stream_size_limit = 1048576

# Network coordinates (Vivaldi) ride on failure-detector pings and give
# `serfctl rtt` its estimates.
# disable_coordinates = false

control {
  # Unix socket for serfctl. Under systemd, serfd.socket owns it.
  socket = "/run/serfd.sock"
  # Anyone who can connect may read (members, info, monitor); changes
  # (event, query, tags, join, leave, keys, reload) need root or this group.
  admin_group = "serf"
}

# Serf's RPC protocol (msgpack over TCP), for the stock `serf` command and
# Serf's client libraries: off unless this block is present. Anyone who can
# connect may do everything (as with Serf), so keep it on loopback and set a
# token: a file owned by serfd's user, mode 0600, holding one line.
# rpc {
#   address   = "127.0.0.1:7373"
#   auth_file = "/etc/serf/rpc.token"
# }

# Prometheus metrics over TCP (they are always on the control socket at
# /v1/metrics): off unless this block is present. event_names lists the
# user events counted by name; the others count together.
# metrics {
#   address     = "127.0.0.1:7374"
#   event_names = ["memresponse"]
# }

handlers {
  # Every executable file here is a handler; changes apply without restart.
  dir     = "/etc/serf/handlers.d"
  workers = 4      # runs in flight across all handlers
  queue   = 1024   # pending runs held in memory; beyond it runs of user events
                   # wait in the spool, other runs are dropped and counted
  timeout = "60s"  # a run is killed (its whole process group) at this deadline
  # Runs of user events are kept here until they finished, so that a stop,
  # a crash or a full queue loses none; "" turns it off. Default: "runs"
  # beside snapshot_path (/var/lib/serfd/runs under systemd).
  # spool = "/var/lib/serfd/runs"
}

# Per-handler settings, keyed by file name in handlers.d.
# handler "memresponse" {
#   events  = ["user:memresponse"]   # Serf filter syntax; default: every event
#   timeout = "10s"
# }
# tags runs a handler only for events whose tags match (Serf has no such
# setting: Serf #321). Each value is a regular expression that must match
# the whole tag value ("web" is not "web-2"; a missing tag is matched as
# ""), and every key must match. Which tags are matched:
#   member-join, member-leave, member-failed, member-update, member-reap:
#     each member's own tags; the handler gets only the matching members
#     on stdin, and does not run if none match.
#   user events and queries: this node's own tags; a node whose tags
#     don't match does not run the handler.
# handler "deploy" {
#   events = ["member-join", "query:deploy"]
#   tags   = { role = "web", dc = "eu-.*" }
# }
# A command handler, as a Serf agent's event_handlers entry: no file in
# handlers.d; the command runs with /bin/sh -c.
# handler "deploy" {
#   events  = ["user:deploy"]
#   command = "/usr/local/bin/deploy.sh"
# }

log {
  level = "info"   # debug, info, warn, error
}

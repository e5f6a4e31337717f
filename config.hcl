# serfd configuration. Installed as /etc/serf/config.hcl; drop-ins in
# /etc/serf/config.d/*.hcl are read after it, in lexical order, and override
# it (tags merge, join lists append). Check a change with: serfd -check
# Reference: serfd.hcl(5) and the README.

# This node's name in the cluster; unique per cluster. Default: the hostname.
# node_name = "web-1"

# Address and port for gossip (UDP and TCP). Port defaults to 7946.
bind = "0.0.0.0:7946"

# Address peers should use to reach this node when it differs from bind
# (NAT, or bind on 0.0.0.0 with several interfaces).
# advertise = "10.0.0.1:7946"

# Gossip timings: lan (default), wan or local.
profile = "lan"

# Tags other members see (and handlers get as SERF_TAG_*).
# tags = { role = "web", dc = "east" }

# Members to join at start; retried in the background until one answers.
# join = ["10.0.0.2:7946"]

control {
  # Unix socket for serfctl. Under systemd, serfd.socket owns it.
  socket = "/run/serfd.sock"
}

handlers {
  # Every executable file here is a handler; changes apply without restart.
  dir     = "/etc/serf/handlers.d"
  workers = 4      # runs in flight across all handlers
  queue   = 1024   # pending runs; beyond it new runs are dropped and counted
  timeout = "60s"  # a run is killed (its whole process group) at this deadline
}

# Per-handler settings, keyed by file name in handlers.d.
# handler "memresponse" {
#   events  = ["user:memresponse"]   # Serf filter syntax; default: every event
#   timeout = "10s"
# }

log {
  level = "info"   # debug, info, warn, error
}

# Shared by the end-to-end suite (run.sh) and the soak suite (soak.sh):
# booting real systemd hosts with systemd-nspawn on a private bridge, running
# commands in them, and tearing everything down from an EXIT trap. Sourced,
# not run.
#
# The sourcing script sets, before calling suite_init:
#   SUITE    name in log lines ("e2e", "soak")
#   PREFIX   prefix of every name this run creates (netns, bridge, cgroup,
#            work dir); a random suffix is added, so runs never collide
#   NET      the hosts' /24 (three octets, e.g. 10.231.0): host N is NET.N
#   HOSTS    array of host names; the Nth one (from 1) gets NET.N
#   NET6     optional: the hosts' IPv6 /64 (e.g. fd31:231::): host N also
#            gets NET6N
#   DEB DEB2 packages copied into each host's /root
#   TOOLS    array of COMMAND:PACKAGE pairs the suite needs besides the
#            boot recipe's own (installed with apt-get when missing)
# and defines serf_dropin HOST N, which prints the host's
# /etc/serf/config.d/10-e2e.hcl. It may define teardown_hook, called first
# thing by the EXIT trap (stop its own background processes there).
#
# Sourcing only defines functions. suite_init checks for root, installs the
# tools, sets ID NETNS BR WORK CG, arms the trap and creates the bridge;
# then bring_up boots the hosts.
#
# Nothing else is touched on the machine: everything lives in a private
# network namespace, per-host cgroups and a work directory under /var/tmp,
# all removed by the EXIT trap, also when a check or the bring-up fails.
# (The one-per-boot tmpfs on /run/systemd/nspawn that systemd-nspawn needs is
# mounted if missing and left in place.)
#
# Each host runs a real systemd as PID 1; its /usr is the machine's /usr
# under a per-host writable overlay, with a copy of the machine's dpkg
# database, so `dpkg -i` works as on a real host. The hosts sit on a bridge
# inside a network namespace with no uplink, at NET.1.. (systemd-networkd,
# no default route): no packet leaves the machine.

readonly BOOT_TIMEOUT=60
readonly T=30 # default timeout of one polled condition, seconds

log() { printf '%s %s: %s\n' "$(date +%T)" "$SUITE" "$*" >&2; }
die() { log "$*"; exit 2; }

# wait_for TIMEOUT CMD...: run CMD until it succeeds; fail after TIMEOUT s,
# or at once if CMD exits 125 (the condition can no longer become true).
wait_for() {
	local timeout=$1; shift
	local deadline=$((SECONDS + timeout)) rc
	until "$@"; do
		rc=$?
		((rc == 125)) && return 1
		if ((SECONDS >= deadline)); then
			log "timed out after ${timeout}s: $*"
			return 1
		fi
		sleep 0.2
	done
}

# --- tools -----------------------------------------------------------------
need_tools() {
	local pair missing=()
	for pair in "$@"; do
		command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
	done
	((${#missing[@]})) || return 0
	log "installing ${missing[*]}"
	if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } >&2; then
		die "apt-get install ${missing[*]} failed"
	fi
}

# --- names, state, teardown ------------------------------------------------
readonly CGROOTS=(/sys/fs/cgroup/systemd /sys/fs/cgroup/unified)
declare -A NSPAWN=() INIT=()            # host -> PID of systemd-nspawn / of its init

suite_init() {
	[[ $EUID -eq 0 ]] || die "must run as root (boots systemd-nspawn containers)"
	need_tools systemd-nspawn:systemd-container ip:iproute2 ping:iputils-ping "${TOOLS[@]}"
	ID=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
	NETNS=$PREFIX-$ID         # network namespace holding the bridge
	BR=$PREFIX$ID             # bridge (<= 15 chars)
	WORK=/var/tmp/$PREFIX.$ID # host root dirs and logs
	CG=$PREFIX-$ID            # cgroup, one child per host
	readonly ID NETNS BR WORK CG
	trap teardown EXIT
	trap 'exit 130' INT TERM
	mkdir -p /run/systemd/nspawn
	mountpoint -q /run/systemd/nspawn || mount -t tmpfs tmpfs /run/systemd/nspawn
	ip netns add "$NETNS"
	ip -n "$NETNS" link add "$BR" type bridge forward_delay 0 stp_state 0
	ip -n "$NETNS" link set "$BR" up
	mkdir -p "$WORK"
}

teardown() {
	local rc=$? h pid
	trap - EXIT INT TERM
	set +e
	if declare -F teardown_hook >/dev/null; then teardown_hook; fi
	for h in "${!NSPAWN[@]}"; do
		[[ -n ${INIT[$h]:-} ]] || INIT[$h]=$(init_of "$h")
		if [[ -n ${INIT[$h]} ]]; then
			nsenter -t "${INIT[$h]}" -a env -i PATH=/usr/sbin:/usr/bin systemctl poweroff --no-block \
				>/dev/null 2>&1
		else
			kill -TERM "${NSPAWN[$h]}" 2>/dev/null # nspawn powers the container off
		fi
	done
	for h in "${!NSPAWN[@]}"; do
		pid=${NSPAWN[$h]}
		if ! wait_for 15 exited "$pid" 2>/dev/null; then
			log "$h did not power off; killing its init (PID ${INIT[$h]:-?})"
			[[ -n ${INIT[$h]} ]] && kill -KILL "${INIT[$h]}" 2>/dev/null
			wait_for 5 exited "$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
		fi
		wait "$pid" 2>/dev/null
	done
	# Anything still in our cgroups was started by this run (by PID).
	local root p
	for root in "${CGROOTS[@]}"; do
		[[ -d $root/$CG ]] || continue
		while read -r p; do kill -KILL "$p" 2>/dev/null; done \
			< <(find "$root/$CG" -name cgroup.procs -exec cat {} + 2>/dev/null)
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			find "$root/$CG" -depth -type d -exec rmdir {} + 2>/dev/null
			[[ -d $root/$CG ]] || break
			sleep 0.2
		done
		[[ -d $root/$CG ]] && log "could not remove cgroup $root/$CG"
	done
	ip netns del "$NETNS" 2>/dev/null
	if [[ -d $WORK ]]; then
		rm -rf --one-file-system "$WORK" || log "could not remove $WORK"
	fi
	exit "$rc"
}

# exited PID: true once PID is gone or a zombie.
exited() {
	local state
	state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 0
	[[ $state == Z ]]
}

# in_host HOST CMD...: run CMD as root inside HOST with a clean environment;
# kill it after 60 s so a hung command cannot hang the suite.
in_host() {
	local h=$1; shift
	nsenter -t "${INIT[$h]}" -a env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin timeout -k 5 60 "$@"
}

# --- bring-up --------------------------------------------------------------
# make_root HOST N: a root directory sharing the machine's /usr.
make_root() {
	local h=$1 n=$2 r=$WORK/$1
	mkdir -p "$r"/{usr,etc,var/log/journal,var/lib,run,tmp,root,proc,sys,dev}
	ln -s usr/bin "$r/bin"; ln -s usr/lib "$r/lib"; ln -s usr/sbin "$r/sbin"
	if [[ -d /usr/lib64 ]]; then ln -s usr/lib64 "$r/lib64"; fi
	cp -a /etc/. "$r/etc/"
	rm -f "$r/etc/machine-id" "$r/etc/os-release" "$r/etc/hostname"
	cp /usr/lib/os-release "$r/etc/os-release"
	# An installed machine, not a first boot: a first boot would preset-all
	# (enabling and starting serfd.service among others).
	systemd-id128 new >"$r/etc/machine-id"
	echo "$h" >"$r/etc/hostname"
	# Only what the suite needs starts at boot: drop the machine's own
	# enablements (databases, timers, gettys, timesyncd), then enable networkd.
	local s=$r/etc/systemd/system
	find "$s" -maxdepth 1 -name '*.wants' -exec rm -rf {} +
	mkdir -p "$s/multi-user.target.wants" "$s/sockets.target.wants" "$s/network-online.target.wants"
	ln -s /usr/lib/systemd/system/systemd-networkd.service "$s/multi-user.target.wants/"
	ln -s /usr/lib/systemd/system/systemd-networkd.socket "$s/sockets.target.wants/"
	ln -s /usr/lib/systemd/system/systemd-networkd-wait-online.service "$s/network-online.target.wants/"
	ln -sf /usr/lib/systemd/system/systemd-networkd.service "$s/dbus-org.freedesktop.network1.service"
	mkdir -p "$r/etc/systemd/network"
	cat >"$r/etc/systemd/network/10-e2e.network" <<-EOF
		[Match]
		Name=host0
		[Network]
		Address=$NET.$n/24
		${NET6:+Address=$NET6$n/64}
		LinkLocalAddressing=no
		IPv6AcceptRA=no
		# Multicast (mDNS) has a route although nothing else leaves the bridge.
		[Route]
		Destination=224.0.0.0/4
	EOF
	# A dpkg database matching the machine's /usr (the host's /usr is the
	# machine's under a writable overlay), and the packages under test.
	cp -a /var/lib/dpkg "$r/var/lib/"
	mkdir -p "$r/var/cache/apt/archives" "$r/var/log/apt" "$WORK/$h.usr"
	cp "$DEB" "$DEB2" "$r/root/"
	if [[ -n ${SERF_BIN:-} ]]; then cp "$SERF_BIN" "$r/root/serf"; fi
	# The admin's per-host drop-in, there before the package: the package
	# must not touch it.
	mkdir -p "$r/etc/serf/config.d"
	serf_dropin "$h" "$n" >"$r/etc/serf/config.d/10-e2e.hcl"
}

# boot HOST: start systemd-nspawn for HOST in its own cgroup, inside $NETNS.
boot() {
	local h=$1 root
	for root in "${CGROOTS[@]}"; do mkdir -p "$root/$CG/$h"; done
	(
		for root in "${CGROOTS[@]}"; do echo "$BASHPID" >"$root/$CG/$h/cgroup.procs"; done
		exec nsenter --net="/run/netns/$NETNS" systemd-nspawn --quiet --console=read-only \
			--directory="$WORK/$h" --machine="$PREFIX-$ID-$h" --hostname="$h" \
			--register=no --keep-unit --boot \
			--overlay="/usr:$WORK/$h.usr:/usr" \
			--network-bridge="$BR"
	) </dev/null >"$WORK/$h.console" 2>&1 &
	NSPAWN[$h]=$!
}

# init_of HOST: print the PID of HOST's systemd (the child of nspawn).
init_of() {
	local c comm children
	# (no newline at the end of this file: read returns 1 but fills the array)
	read -ra children 2>/dev/null <"/proc/${NSPAWN[$1]}/task/${NSPAWN[$1]}/children" || true
	for c in "${children[@]}"; do
		comm=$(cat "/proc/$c/comm" 2>/dev/null) || continue
		[[ $comm == systemd ]] && { echo "$c"; return 0; }
	done
	return 1
}

booted() {
	local state
	exited "${NSPAWN[$1]}" && { log "$1: systemd-nspawn exited"; return 125; }
	state=$(in_host "$1" systemctl is-system-running 2>/dev/null) || true
	[[ $state == running || $state == degraded ]]
}

has_addr() { in_host "$1" ip -4 -o addr show dev host0 | grep -q " $2/"; }

# bring_up: make the root directories, boot every host in parallel, wait
# until each runs and has its address.
bring_up() {
	local h n=0
	for h in "${HOSTS[@]}"; do n=$((n + 1)); make_root "$h" "$n"; done
	for h in "${HOSTS[@]}"; do boot "$h"; done
	for h in "${HOSTS[@]}"; do
		wait_for "$BOOT_TIMEOUT" init_of "$h" >/dev/null || return 1
		INIT[$h]=$(init_of "$h")
	done
	n=0
	for h in "${HOSTS[@]}"; do
		n=$((n + 1))
		if ! wait_for "$BOOT_TIMEOUT" booted "$h"; then
			log "$h did not boot; console:"; tail -30 "$WORK/$h.console" >&2
			return 1
		fi
		if [[ $(in_host "$h" systemctl is-system-running) == degraded ]]; then
			log "$h booted degraded:"; in_host "$h" systemctl --failed --no-pager >&2
		fi
		wait_for "$T" has_addr "$h" "$NET.$n" || return 1
	done
}

# veth_of HOST: the bridge-side interface of HOST's host0.
veth_of() {
	local idx
	idx=$(in_host "$1" cat /sys/class/net/host0/iflink) || return 1
	ip -n "$NETNS" -o link show | awk -F': ' -v i="$idx" '$1 == i { sub(/@.*/, "", $2); print $2 }'
}

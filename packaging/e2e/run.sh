#!/bin/bash
# End-to-end suite for serfd: three real systemd hosts, the user's walkthrough.
#
# Usage: packaging/e2e/run.sh STAGE_DIR        (what `make e2e` runs)
#   STAGE_DIR is the result of `make install DESTDIR=STAGE_DIR PREFIX=/usr`:
#   usr/bin/{serfd,serfctl}, usr/lib/systemd/system/serfd.{socket,service},
#   usr/lib/{sysusers,tmpfiles}.d/serfd.conf, etc/serf/config.hcl,
#   etc/serf/handlers.d/, usr/share/serfd/contrib/handlers/memresponse.
#
# Needs: root with full capabilities, Linux with systemd installed (it need
# not be PID 1), and the packages systemd-container (systemd-nspawn),
# iproute2, iputils-ping and jq; missing ones are installed with apt-get.
# Nothing else is touched on the machine: everything lives in a private
# network namespace, per-host cgroups and a work directory under /var/tmp,
# all named with a random suffix and removed by the EXIT trap, also when a
# check or the bring-up fails. (The one-per-boot tmpfs on /run/systemd/nspawn
# that systemd-nspawn needs is mounted if missing and left in place.)
#
# How: boots hosts h1, h2, h3 with systemd-nspawn (real systemd as PID 1 in
# each; /usr is the machine's /usr with STAGE_DIR/usr overlaid on top,
# read-only; /etc is a copy of the machine's plus STAGE_DIR/etc/serf). The
# hosts sit on a bridge inside a network namespace with no uplink, at
# 10.231.0.1-3/24 (systemd-networkd, no default route): no packet leaves the
# machine. Then, inside the hosts, exactly what a user does:
#   install   systemd-sysusers/systemd-tmpfiles/daemon-reload as a package
#             postinst would; copy the memresponse handler into handlers.d
#   units     systemd-analyze verify of the installed units on h1
#   walkthrough  systemctl start serfd.socket everywhere; serfd.service is
#             not running until the first serfctl call; `serfctl members`
#             starts serfd on each host (socket activation), h2 and h3 join h1
#             from config; all three see 3 alive members; `serfctl event
#             memresponse xcxx` on h1 lands in /tmp/mem.txt on every host
#   active    systemctl is-active serfd on h1
#   journal   journalctl -u serfd on h2 has the user event record
#             (SERF_USER_EVENT=memresponse) and the handler run record
#             (HANDLER=memresponse)
#   leave     systemctl stop serfd on h3 ends with Result=success and h1 then
#             lists h3 as "left"
#   bad config  an unknown key in config.d/99-bad.hcl on h2: `serfd -check`
#             names 99-bad.hcl:1,1 and fails, `systemctl restart serfd` fails
#             and the journal has the same message; without the file serfd
#             starts again
# Prints one line per check, then exactly one line "N passed, M failed";
# exits non-zero if any check failed (2: could not run at all).
set -euo pipefail

readonly NET=10.231.0
readonly HOSTS=(h1 h2 h3)
readonly BOOT_TIMEOUT=60
readonly T=30 # default timeout of one polled condition, seconds

log() { printf '%s e2e: %s\n' "$(date +%T)" "$*" >&2; }
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

[[ $# -eq 1 ]] || die "usage: $0 STAGE_DIR"
[[ $EUID -eq 0 ]] || die "must run as root (boots systemd-nspawn containers)"
STAGE=$(realpath -e "$1") || die "no stage directory $1"
for f in usr/bin/serfd usr/bin/serfctl usr/lib/systemd/system/serfd.socket \
	usr/lib/systemd/system/serfd.service usr/lib/sysusers.d/serfd.conf \
	usr/lib/tmpfiles.d/serfd.conf etc/serf/config.hcl \
	usr/share/serfd/contrib/handlers/memresponse; do
	[[ -e $STAGE/$f ]] || die "stage is incomplete: no $STAGE/$f (make install DESTDIR=... PREFIX=/usr)"
done

# --- tools -----------------------------------------------------------------
missing=()
command -v systemd-nspawn >/dev/null || missing+=(systemd-container)
command -v ip >/dev/null || missing+=(iproute2)
command -v ping >/dev/null || missing+=(iputils-ping)
command -v jq >/dev/null || missing+=(jq)
if ((${#missing[@]})); then
	log "installing ${missing[*]}"
	if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } >&2; then
		die "apt-get install ${missing[*]} failed"
	fi
fi

# --- names, state, teardown ------------------------------------------------
ID=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
readonly ID
readonly NETNS=se2e-$ID              # network namespace holding the bridge
readonly BR=se2e$ID                  # bridge (<= 15 chars)
readonly WORK=/var/tmp/se2e.$ID      # host root dirs and logs
readonly CG=se2e-$ID                 # cgroup, one child per host
readonly CGROOTS=(/sys/fs/cgroup/systemd /sys/fs/cgroup/unified)
declare -A NSPAWN=() INIT=()         # host -> PID of systemd-nspawn / of its init
PASSED=0 FAILED=0 BLAME=

teardown() {
	local rc=$? h pid
	trap - EXIT INT TERM
	set +e
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
trap teardown EXIT
trap 'exit 130' INT TERM

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
# Recipe: /work/shared/E2E.md.
mkdir -p /run/systemd/nspawn
mountpoint -q /run/systemd/nspawn || mount -t tmpfs tmpfs /run/systemd/nspawn

ip netns add "$NETNS"
ip -n "$NETNS" link add "$BR" type bridge forward_delay 0 stp_state 0
ip -n "$NETNS" link set "$BR" up
mkdir -p "$WORK"

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
		LinkLocalAddressing=no
		IPv6AcceptRA=no
	EOF
	# The package's files in /etc, then the per-host config drop-in.
	cp -a "$STAGE/etc/serf" "$r/etc/"
	mkdir -p "$r/etc/serf/config.d"
	{
		echo "node_name = \"$h\""
		echo "bind      = \"$NET.$n:7946\""
		if [[ $n -ne 1 ]]; then echo "join      = [\"$NET.1:7946\"]"; fi
	} >"$r/etc/serf/config.d/10-e2e.hcl"
}

# boot HOST: start systemd-nspawn for HOST in its own cgroup, inside $NETNS.
boot() {
	local h=$1 root
	for root in "${CGROOTS[@]}"; do mkdir -p "$root/$CG/$h"; done
	(
		for root in "${CGROOTS[@]}"; do echo "$BASHPID" >"$root/$CG/$h/cgroup.procs"; done
		exec nsenter --net="/run/netns/$NETNS" systemd-nspawn --quiet --console=read-only \
			--directory="$WORK/$h" --machine="se2e-$ID-$h" --hostname="$h" \
			--register=no --keep-unit --boot \
			--overlay-ro="/usr:${STAGE//:/\\:}/usr:/usr" \
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

# --- checks ----------------------------------------------------------------
# check NAME HOST CMD...: run CMD; count it; on failure dump the serfd log of
# HOST, or of the host CMD named in BLAME.
check() {
	local name=$1 h=$2; shift 2
	BLAME=
	if "$@"; then
		PASSED=$((PASSED + 1)); log "PASS $name"
	else
		FAILED=$((FAILED + 1)); log "FAIL $name"
		h=${BLAME:-$h}
		if [[ -n $h ]]; then
			log "--- $h: journalctl -u serfd -u serfd.socket (last 50 lines)"
			in_host "$h" journalctl -u serfd -u serfd.socket --no-pager 2>&1 | tail -50 >&2 || true
		fi
	fi
}

network() {
	local h
	for h in h2 h3; do
		in_host "$h" ping -c1 -W2 -n "$NET.1" >/dev/null || { log "$h cannot ping $NET.1"; return 1; }
	done
	in_host h1 ip route show default | grep -q . && { log "h1 has a default route"; return 1; }
	return 0
}

install_pkg() {
	local h=$1
	in_host "$h" systemd-sysusers serfd.conf &&
		in_host "$h" systemd-tmpfiles --create serfd.conf &&
		in_host "$h" systemctl daemon-reload &&
		in_host "$h" getent group serf >/dev/null &&
		in_host "$h" cp /usr/share/serfd/contrib/handlers/memresponse /etc/serf/handlers.d/ &&
		in_host "$h" test -x /etc/serf/handlers.d/memresponse
}

# units_verify: the installed units pass systemd-analyze verify in a host
# (where /usr/bin/serfd exists) and the service is sandboxed as shipped.
units_verify() {
	local out
	out=$(in_host h1 systemd-analyze verify serfd.socket serfd.service 2>&1) ||
		{ printf '%s\n' "$out" >&2; return 1; }
	[[ -z $out ]] || { printf '%s\n' "$out" >&2; return 1; }
	in_host h1 systemd-analyze security --no-pager serfd.service | tail -1 >&2
}

serfctl_json() { in_host "$1" serfctl -format json members; }

# alive_count HOST WANT: HOST's serfctl lists WANT alive members.
alive_count() {
	local got
	got=$(serfctl_json "$1" | jq '[.members[] | select(.status == "alive")] | length') || return 1
	[[ $got == "$2" ]]
}

# member_status HOST NAME STATUS: HOST's serfctl shows NAME with STATUS.
member_status() {
	serfctl_json "$1" | jq -e --arg n "$2" --arg s "$3" \
		'any(.members[]; .name == $n and .status == $s)' >/dev/null
}

has_mem() { in_host "$1" grep -q xcxx /tmp/mem.txt 2>/dev/null; }

walkthrough() {
	local h state
	for h in "${HOSTS[@]}"; do BLAME=$h; in_host "$h" systemctl start serfd.socket || return 1; done
	BLAME=h1
	state=$(in_host h1 systemctl is-active serfd) || true
	[[ $state == inactive ]] || { log "h1: serfd.service is $state before any serfctl call"; return 1; }
	for h in "${HOSTS[@]}"; do
		BLAME=$h
		in_host "$h" serfctl members | sed "s/^/$h\$ serfctl members: /" >&2 ||
			{ log "$h: serfctl members failed"; return 1; }
	done
	for h in "${HOSTS[@]}"; do
		BLAME=$h
		wait_for "$T" alive_count "$h" 3 || { log "$h: not 3 alive members"; serfctl_json "$h" >&2; return 1; }
	done
	BLAME=h1
	in_host h1 serfctl members | sed 's/^/h1$ serfctl members: /' >&2
	in_host h1 serfctl event memresponse xcxx || return 1
	for h in "${HOSTS[@]}"; do
		BLAME=$h
		wait_for "$T" has_mem "$h" || { log "$h: no xcxx in /tmp/mem.txt"; return 1; }
	done
}

is_active() { [[ $(in_host "$1" systemctl is-active serfd) == active ]]; }

restarted() { [[ $(in_host "$1" systemctl show -p NRestarts --value serfd) -ge 1 ]] && is_active "$1"; }

# mem_count HOST WORD N: /tmp/mem.txt on HOST has WORD on exactly N lines.
mem_count() { [[ $(in_host "$1" grep -c -x -- "$2" /tmp/mem.txt 2>/dev/null) == "$3" ]]; }

# crash_restart: kill -9 of serfd; systemd restarts it; it rejoins from its
# snapshot (under StateDirectory) and re-runs none of the events it handled.
crash_restart() {
	BLAME=h1
	in_host h1 systemctl kill -s KILL serfd || return 1
	wait_for "$T" restarted h1 || { log "h1: serfd was not restarted after kill -9"; return 1; }
	in_host h1 test -s /var/lib/serfd/snapshot || { log "h1: no snapshot in /var/lib/serfd"; return 1; }
	wait_for "$T" alive_count h1 3 || { log "h1: not 3 alive after the restart"; serfctl_json h1 >&2; return 1; }
	in_host h2 serfctl event memresponse after-crash || return 1
	wait_for "$T" mem_count h1 after-crash 1 || { log "h1: the event sent after the restart did not arrive"; return 1; }
	mem_count h1 xcxx 1 || { log "h1: xcxx was handled again after the restart"; in_host h1 cat /tmp/mem.txt >&2; return 1; }
}

# journal_has HOST MATCH...: HOST's journal has a serfd entry matching all.
journal_has() {
	local h=$1; shift
	in_host "$h" journalctl -u serfd -q --no-pager -o json "$@" | grep -q .
}

# journal_show HOST MATCH...: print the fields of matching serfd entries.
journal_show() {
	local h=$1; shift
	in_host "$h" journalctl -u serfd -q --no-pager -o json "$@" |
		jq -c 'with_entries(select(.key | test("^(MESSAGE|SERF_.*|HANDLER|EXIT_STATUS|DURATION_MS)$")))' >&2 || true
}

journal_fields() {
	# The user event record, and the record of the handler's run (not merely
	# "handler added", which also carries HANDLER=).
	wait_for "$T" journal_has h2 SERF_EVENT=user SERF_USER_EVENT=memresponse ||
		{ log "h2: no journal entry with SERF_EVENT=user SERF_USER_EVENT=memresponse"; return 1; }
	wait_for "$T" journal_has h2 HANDLER=memresponse EXIT_STATUS=0 ||
		{ log "h2: no journal entry with HANDLER=memresponse EXIT_STATUS=0"; journal_show h2 HANDLER=memresponse; return 1; }
	journal_show h2 SERF_USER_EVENT=memresponse
	journal_show h2 HANDLER=memresponse
	in_host h2 journalctl -u serfd -q --no-pager -o json HANDLER=memresponse EXIT_STATUS=0 |
		jq -e -s 'any(.[]; has("DURATION_MS"))' >/dev/null || { log "h2: handler run record has no DURATION_MS"; return 1; }
}

leave() {
	local result
	in_host h3 systemctl stop serfd || return 1
	result=$(in_host h3 systemctl show -p Result serfd)
	[[ $result == Result=success ]] || { log "h3: $result after stop"; return 1; }
	wait_for "$T" member_status h1 h3 left ||
		{ log "h1 does not see h3 left"; serfctl_json h1 >&2; BLAME=h1; return 1; }
}

journal_grep() { in_host "$1" journalctl -u serfd -q --no-pager | grep -q -- "$2"; }

bad_config() {
	local out rc=0 ok=0
	in_host h2 sh -c 'echo "bogus_key = 1" >/etc/serf/config.d/99-bad.hcl' || return 1
	out=$(in_host h2 serfd -check -config /etc/serf/config.hcl 2>&1) || rc=$?
	printf '%s\n' "$out" >&2
	if [[ $rc -eq 0 ]]; then
		log "serfd -check exited 0 on a bad config"; ok=1
	fi
	if ! grep -q '99-bad\.hcl:1,1' <<<"$out"; then
		log "serfd -check does not name 99-bad.hcl:1,1"; ok=1
	fi
	if in_host h2 systemctl restart serfd; then
		log "systemctl restart serfd succeeded with a bad config"; ok=1
	fi
	if ! wait_for "$T" journal_grep h2 '99-bad\.hcl:1,1'; then
		log "journal of serfd has no 99-bad.hcl:1,1"; ok=1
	fi
	# EX_CONFIG: systemd must not restart a daemon whose config is bad.
	local st
	st=$(in_host h2 systemctl show -p ExecMainStatus serfd)
	if [[ $st != ExecMainStatus=78 ]]; then
		log "serfd exited with $st on a bad config; want 78 (EX_CONFIG)"; ok=1
	fi
	in_host h2 rm -f /etc/serf/config.d/99-bad.hcl
	return "$ok"
}

recovers() {
	log "h2 after the bad config: serfd.service" \
		"$(in_host h2 systemctl show -p ActiveState -p SubState -p Result -p NRestarts serfd | paste -sd' ');" \
		"serfd.socket $(in_host h2 systemctl show -p ActiveState -p Result serfd.socket | paste -sd' ')"
	in_host h2 systemctl reset-failed serfd serfd.socket 2>/dev/null || true
	in_host h2 systemctl start serfd.socket serfd && is_active h2 &&
		wait_for "$T" member_status h1 h2 alive
}

# --- run -------------------------------------------------------------------
START=$SECONDS
log "work dir $WORK, netns $NETNS, stage $STAGE"
check "boot: 3 hosts running" "" bring_up
if ((FAILED)); then
	echo "$PASSED passed, $FAILED failed"
	exit 1
fi
log "hosts up after $((SECONDS - START))s"
check "network: h2, h3 reach h1 over the bridge; no default route" "" network
for h in "${HOSTS[@]}"; do
	check "install on $h: sysusers, tmpfiles, handler in handlers.d" "$h" install_pkg "$h"
done
check "h1: systemd-analyze verify serfd.socket serfd.service" "" units_verify
check "walkthrough: socket activation, 3 alive members, memresponse event on all hosts" h1 walkthrough
check "h1: systemctl is-active serfd" h1 is_active h1
check "h2: journal has SERF_USER_EVENT=memresponse and HANDLER=memresponse" h2 journal_fields
check "h1: kill -9 -> restarted, rejoined from its snapshot, no old event re-run" h1 crash_restart
check "h3: systemctl stop serfd -> Result=success, h1 lists h3 as left" h3 leave
check "h2: bad config named 99-bad.hcl:1,1 by -check, restart and journal" h2 bad_config
check "h2: serfd starts again without the bad config and rejoins" h2 recovers
log "suite took $((SECONDS - START))s"
echo "$PASSED passed, $FAILED failed"
((FAILED == 0))

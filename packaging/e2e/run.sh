#!/bin/bash
# End-to-end suite for serfd: three real systemd hosts with the Debian
# package installed, put through what real fleets do to a daemon.
#
# Usage: SERF_BIN=serf packaging/e2e/run.sh DEB UPGRADE_DEB   (what `make e2e` runs)
#   SERF_BIN     the stock Serf 0.10.2 binary, for the swap check
#   DEB          the package under test (make deb)
#   UPGRADE_DEB  the same package with a higher version, for the upgrade check
#
# Needs: root with full capabilities, Linux with systemd installed (it need
# not be PID 1), and the packages systemd-container (systemd-nspawn),
# iproute2, iputils-ping, jq, curl, prometheus (Debian's, run on h1) and
# dnsmasq-base (the DNS join check);
# missing ones are installed with apt-get.
# Nothing else is touched on the machine, and the EXIT trap removes
# everything, also when a check or the bring-up fails (lib.sh).
#
# How: boots hosts h1, h2, h3 with systemd-nspawn (lib.sh: real systemd as
# PID 1 in each, `dpkg -i` works as on a real host) on a private bridge at
# 10.231.0.1-3/24: no packet leaves the machine. Each host has /etc/serf/config.d/10-e2e.hcl (its name and
# address; h2 and h3 join h1; reconnect_interval 2s, replay_on_join). Then,
# inside the hosts, what an operator does; each check is described above
# its function below.
#
# Prints one line per check, then exactly one line "N passed, M failed";
# exits non-zero if any check failed (2: could not run at all).
set -euo pipefail

SUITE=e2e
PREFIX=se2e
readonly NET=10.231.0
# The hosts' IPv6 /64 on the same bridge: host N is ${NET6}N.
readonly NET6=fd31:231::
readonly HOSTS=(h1 h2 h3)
TOOLS=(jq:jq curl:curl prometheus:prometheus dnsmasq:dnsmasq-base)

# serf_dropin HOST N: the admin's drop-in of host N: its name and address;
# h2 and h3 join h1.
serf_dropin() {
	echo "node_name = \"$1\""
	echo "bind      = \"$NET.$2:7946\""
	if [[ $2 -ne 1 ]]; then echo "join      = [\"$NET.1:7946\"]"; fi
	echo 'reconnect_interval = "2s"'
	echo 'replay_on_join     = true'
	echo "metrics { address = \"$NET.$2:7374\" }"
}

# Boot, teardown and the helpers: packaging/e2e/lib.sh.
# shellcheck source=packaging/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

[[ $# -eq 2 ]] || die "usage: $0 DEB UPGRADE_DEB"
SERF_BIN=$(realpath -e "${SERF_BIN:-}") || die "SERF_BIN must name the stock serf binary (make tools installs it)"
readonly SERF_BIN
DEB=$(realpath -e "$1") || die "no package $1"
DEB2=$(realpath -e "$2") || die "no package $2"
readonly DEB DEB2
V1=$(dpkg-deb -f "$DEB" Version) && V2=$(dpkg-deb -f "$DEB2" Version) || die "not Debian packages: $DEB $DEB2"
[[ $(dpkg-deb -f "$DEB" Package) == serfd ]] || die "$DEB is not the serfd package"
dpkg --compare-versions "$V2" gt "$V1" || die "upgrade package $V2 is not newer than $V1"
readonly V1 V2
suite_init
PASSED=0 FAILED=0 BLAME=

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

# install HOST: `dpkg -i` of the package, as an admin does it. The
# postinst creates user serf, enables serfd.service and serfd.socket and
# starts serfd, so the host joins from config.d with no other command. The
# machine's policy-rc.d (which makes deb-systemd-invoke skip starts in
# images) is hidden in the host.
install_pkg() {
	local h=$1 out st
	in_host "$h" rm -f /usr/sbin/policy-rc.d || return 1
	out=$(in_host "$h" dpkg -i "/root/${DEB##*/}" 2>&1) || { printf '%s\n' "$out" >&2; return 1; }
	[[ $(in_host "$h" dpkg-query -W -f='${Status} ${Version}' serfd) == "install ok installed $V1" ]] ||
		{ log "$h: dpkg-query does not show serfd $V1 installed"; return 1; }
	in_host "$h" getent group serf >/dev/null || { log "$h: no group serf after install"; return 1; }
	[[ $(in_host "$h" systemctl is-enabled serfd.socket) == enabled ]] ||
		{ log "$h: serfd.socket is not enabled after install"; return 1; }
	[[ $(in_host "$h" systemctl is-active serfd.socket) == active ]] ||
		{ log "$h: serfd.socket is not active after install"; return 1; }
	in_host "$h" test -S /run/serfd.sock || { log "$h: no /run/serfd.sock after install"; return 1; }
	in_host "$h" cp /usr/share/serfd/contrib/handlers/memresponse /etc/serf/handlers.d/ &&
		in_host "$h" test -x /etc/serf/handlers.d/memresponse || return 1
	st=$(in_host "$h" systemctl is-enabled serfd.service) || true
	[[ $st == enabled ]] || { log "$h: serfd.service is $st after install, not enabled (WantedBy=multi-user.target)"; return 1; }
	st=$(in_host "$h" systemctl is-active serfd.service) || true
	[[ $st == active ]] || { log "$h: serfd.service is $st after install, not active"; return 1; }
}

# units_verify: the installed units pass systemd-analyze verify in a host
# and the service's exposure score is at most 2.0.
units_verify() {
	local out score
	out=$(in_host h1 systemd-analyze verify serfd.socket serfd.service 2>&1) ||
		{ printf '%s\n' "$out" >&2; return 1; }
	[[ -z $out ]] || { printf '%s\n' "$out" >&2; return 1; }
	out=$(in_host h1 systemd-analyze security --no-pager serfd.service | tail -1)
	log "h1: $out"
	score=$(grep -oE '[0-9]+\.[0-9]+' <<<"$out" | head -1)
	[[ -n $score ]] && awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }' ||
		{ log "exposure $score is over 2.0"; return 1; }
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

# start_to_ready HOST: log how long serfd took from exec to READY=1.
start_to_ready() {
	local exit_us=0 ready_us=0 k v
	while IFS='=' read -r k v; do
		case $k in
		InactiveExitTimestampMonotonic) exit_us=$v ;;
		ActiveEnterTimestampMonotonic) ready_us=$v ;;
		esac
	done < <(in_host "$1" systemctl show -p InactiveExitTimestampMonotonic -p ActiveEnterTimestampMonotonic serfd)
	log "$1: serfd start -> READY=1 in $(((ready_us - exit_us) / 1000)) ms"
}

# walkthrough: after `dpkg -i` alone serfd runs on every host (before any
# serfctl call) and h2 and h3 have joined h1 from config.d; all three see
# 3 alive members; `serfctl event memresponse xcxx` on h1 lands in
# /tmp/mem.txt on every host.
walkthrough() {
	local h state
	for h in "${HOSTS[@]}"; do
		BLAME=$h
		state=$(in_host "$h" systemctl is-active serfd) || true
		[[ $state == active ]] || { log "$h: serfd.service is $state after dpkg -i, before any serfctl call"; return 1; }
	done
	BLAME=h1
	# Members from install alone: h1 (no join of its own) sees h2 and h3.
	wait_for "$T" h1_sees_all_unprompted ||
		{ log "h1: h2 and h3 did not join from config.d after dpkg -i"; return 1; }
	for h in "${HOSTS[@]}"; do
		BLAME=$h
		in_host "$h" serfctl members | sed "s/^/$h\$ serfctl members: /" >&2 ||
			{ log "$h: serfctl members failed"; return 1; }
	done
	start_to_ready h1
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

# h1_sees_all_unprompted: serfd's own STATUS= on h1 (no serfctl call,
# which would have socket-activated serfd before) shows 3 alive members.
h1_sees_all_unprompted() { [[ $(in_host h1 systemctl show -p StatusText --value serfd) == *"3 alive"* ]]; }

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
	# "handler added: memresponse", which also carries HANDLER=).
	wait_for "$T" journal_has h2 SERF_EVENT=user SERF_USER_EVENT=memresponse ||
		{ log "h2: no journal entry with SERF_EVENT=user SERF_USER_EVENT=memresponse"; return 1; }
	wait_for "$T" journal_has h2 HANDLER=memresponse EXIT_STATUS=0 ||
		{ log "h2: no journal entry with HANDLER=memresponse EXIT_STATUS=0"; journal_show h2 HANDLER=memresponse; return 1; }
	journal_show h2 SERF_USER_EVENT=memresponse
	journal_show h2 HANDLER=memresponse
	in_host h2 journalctl -u serfd -q --no-pager -o json HANDLER=memresponse EXIT_STATUS=0 |
		jq -e -s 'any(.[]; has("DURATION_MS"))' >/dev/null || { log "h2: handler run record has no DURATION_MS"; return 1; }
	# The plain view (MESSAGE only) says which handler ran for which event
	# and how it ended, in one line.
	journal_grep h2 'serfd\[[0-9]*\]: handler memresponse exited 0 after [0-9]* ms (user event memresponse)$' ||
		{ log "h2: plain journalctl has no line 'handler memresponse exited 0 after N ms (user event memresponse)'"; return 1; }
}

leave() {
	local result
	in_host h3 systemctl stop serfd || return 1
	result=$(in_host h3 systemctl show -p Result serfd)
	[[ $result == Result=success ]] || { log "h3: $result after stop"; return 1; }
	wait_for "$T" member_status h1 h3 left ||
		{ log "h1 does not see h3 left"; serfctl_json h1 >&2; BLAME=h1; return 1; }
}

# (grep reads it all: with -q it would quit at the first match, and
# pipefail would count journalctl's SIGPIPE as a failure.)
journal_grep() { in_host "$1" journalctl -u serfd -q --no-pager | grep -- "$2" >/dev/null; }

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

# status_text: systemctl status shows serfd's own STATUS= line (members
# alive/failed, last event), and does not call a node of a 3-node cluster
# alone.
status_text() {
	local st
	st=$(in_host h2 systemctl show -p StatusText --value serfd)
	log "h2: StatusText=$st"
	[[ $st == *"3 alive, 0 failed"* && $st != *alone* && $st == *"last event"* ]]
}

# catalog: serfd's own records of the walkthrough (member join, user
# event, handler run...) carry MESSAGE_IDs that the installed catalog
# explains under `journalctl -x`.
serfd_msgids() {
	in_host "$1" journalctl -q --no-pager -o json _SYSTEMD_UNIT=serfd.service SYSLOG_IDENTIFIER=serfd |
		jq -r 'select(.MESSAGE_ID) | .MESSAGE_ID' | sort -u
}

# has_msgids HOST N: serfd's records on HOST carry at least N distinct IDs
# (member events are logged once their coalescing window closes).
has_msgids() { (($(serfd_msgids "$1" | wc -l) >= $2)); }

catalog() {
	local ids id out n
	wait_for "$T" has_msgids h2 3 ||
		{ log "h2: serfd's records carry fewer than 3 distinct MESSAGE_IDs (start, member join, user event)"; return 1; }
	ids=$(serfd_msgids h2)
	n=$(wc -l <<<"$ids")
	for id in $ids; do
		out=$(in_host h2 journalctl -x -q --no-pager -n 1 _SYSTEMD_UNIT=serfd.service "MESSAGE_ID=$id")
		grep -q 'Defined-By: serfd' <<<"$out" ||
			{ log "h2: journalctl -x has no serfd catalog text for MESSAGE_ID=$id:"; printf '%s\n' "$out" >&2; return 1; }
	done
	log "h2: $n MESSAGE_IDs, each explained by journalctl -x"
	in_host h2 journalctl -x -q --no-pager -n 1 _SYSTEMD_UNIT=serfd.service "MESSAGE_ID=$(head -1 <<<"$ids")" |
		sed 's/^/h2$ journalctl -x: /' >&2
}

main_pid() { in_host "$1" systemctl show -p MainPID --value serfd; }

# restart_inflight: 40 clients call serfd on h1 while `systemctl restart
# serfd` runs; each is served (by the old instance or, from the socket's
# backlog, by the new one) and each event lands on h2.
restart_inflight() {
	local before after out
	BLAME=h1
	before=$(main_pid h1)
	out=$(in_host h1 sh -c '
		systemctl restart serfd & r=$!
		pids=""
		for i in $(seq 1 40); do
			serfctl event memresponse "inflight-$i" >/dev/null 2>"/tmp/inflight-$i.err" & pids="$pids $!"
			serfctl members >/dev/null 2>>/tmp/inflight-members.err & pids="$pids $!"
			sleep 0.02
		done
		fail=0
		for p in $pids; do wait "$p" || fail=$((fail + 1)); done
		wait "$r" || echo "systemctl restart failed"
		echo "failed=$fail"
		cat /tmp/inflight-*.err 2>/dev/null | sort | uniq -c | head -5') || true
	printf '%s\n' "$out" >&2
	after=$(main_pid h1)
	[[ $after != "$before" && $after != 0 ]] || { log "h1: MainPID $before -> $after: serfd was not restarted"; return 1; }
	[[ $out == *"failed=0"* && $out != *"restart failed"* ]] || { log "h1: requests failed across the restart"; return 1; }
	BLAME=h2
	wait_for "$T" inflight_all h2 || { log "h2: not every inflight-N event arrived"; in_host h2 grep -c inflight /tmp/mem.txt >&2; return 1; }
}

inflight_all() { [[ $(in_host "$1" grep -c -x 'inflight-[0-9]*' /tmp/mem.txt) == 40 ]]; }

has_tag() {
	serfctl_json "$1" | jq -e --arg n "$2" --arg v "$3" 'any(.members[]; .name == $n and .tags.role == $v)' >/dev/null
}

# reload_tags: a tag added in config.d on h2 applies with `systemctl reload
# serfd` (synchronous: h2 shows it when the command returns) and h1 sees it.
reload_tags() {
	local pid
	pid=$(main_pid h2)
	in_host h2 sh -c 'echo "tags = { role = \"web\" }" >/etc/serf/config.d/20-role.hcl' || return 1
	in_host h2 systemctl reload serfd || return 1
	has_tag h2 h2 web || { log "h2: tag role=web not applied when systemctl reload returned"; return 1; }
	[[ $(main_pid h2) == "$pid" ]] || { log "h2: reload restarted serfd"; return 1; }
	wait_for "$T" has_tag h1 h2 web || { log "h1 does not see h2 role=web"; BLAME=h1; return 1; }
}

# use_dropin NAME CONF WHAT: on every host, serfd stopped, the host's own
# drop-in set aside and its snapshot forgotten, /etc/serf/config.d/NAME.hcl
# written with what the function CONF prints for HOST N, serfd started;
# then every host lists 3 alive (WHAT says how, for the log).
use_dropin() {
	local name=$1 conf=$2 what=$3 h n=0
	for h in "${HOSTS[@]}"; do
		in_host "$h" systemctl stop serfd || return 1
	done
	for h in "${HOSTS[@]}"; do
		n=$((n + 1))
		"$conf" "$h" "$n" | in_host "$h" sh -c "mv /etc/serf/config.d/10-e2e.hcl /root/10-e2e.hcl &&
			rm -f /var/lib/serfd/snapshot /var/lib/serfd/snapshot.seen &&
			cat >/etc/serf/config.d/$name.hcl" || return 1
	done
	for h in "${HOSTS[@]}"; do
		in_host "$h" systemctl start serfd || return 1
	done
	for h in "${HOSTS[@]}"; do
		BLAME=$h
		wait_for 60 alive_count "$h" 3 || { log "$h: not 3 alive $what:"; serfctl_json "$h" >&2; return 1; }
	done
}

# restore_dropin NAME: every host's own drop-in back in place of NAME.hcl,
# its snapshot of that cluster forgotten, serfd restarted; then every host
# lists 3 alive.
restore_dropin() {
	local h
	for h in "${HOSTS[@]}"; do
		in_host "$h" sh -c "rm /etc/serf/config.d/$1.hcl && mv /root/10-e2e.hcl /etc/serf/config.d/ &&
			rm -f /var/lib/serfd/snapshot && systemctl restart serfd" || return 1
	done
	for h in "${HOSTS[@]}"; do
		BLAME=$h
		wait_for "$T" alive_count "$h" 3 || { log "$h: not 3 alive with its own drop-in back"; return 1; }
	done
}

# mdns_dropin HOST N: only a name, an address and discover.
mdns_dropin() {
	printf 'node_name = "%s"\nbind = "%s:7946"\ndiscover = "e2e"\n' "$1" "$NET.$2"
}

# mdns_discover: with the join lists gone and no snapshot to rejoin from,
# the three hosts set only `discover` (mDNS on their one bridge) and form
# one cluster again; then each gets its own drop-in back.
mdns_discover() {
	use_dropin 10-mdns mdns_dropin "by mDNS" || return 1
	journal_grep h2 "mDNS discovery started" || { log "h2: no 'mDNS discovery started' in the journal"; return 1; }
	journal_grep h1 "joined members found by mDNS" || journal_grep h2 "joined members found by mDNS" ||
		journal_grep h3 "joined members found by mDNS" || { log "no host says it joined members found by mDNS"; return 1; }
	restore_dropin 10-mdns
}

# ipv6_dropin HOST N: h1 and h2 bound to their IPv6 address, h3 dual-stack
# advertising its IPv6 address; h2 joins h1 by address and port, h3 by
# address alone.
ipv6_dropin() {
	echo "node_name = \"$1\""
	case $2 in
	1) echo "bind = \"[${NET6}1]:7946\"" ;;
	2) echo "bind = \"[${NET6}2]:7946\""; echo "join = [\"[${NET6}1]:7946\"]" ;;
	*) echo "bind = \"[::]:7946\""; echo "advertise = \"[$NET6$2]:7946\""; echo "join = [\"${NET6}1\"]" ;;
	esac
}

# ipv6: the three hosts on IPv6 (Serf #684: Serf binds no IPv6 address but
# [::1]): h1 and h2 bound to their address on the bridge, h3 dual-stack
# ([::], advertising its IPv6 address); h2 and h3 join h1 by its IPv6
# address, h3 without a port. They form one cluster whose members all have
# IPv6 addresses, and an event sent on h3 runs h1's handler. Then each host
# gets its own drop-in back.
ipv6() {
	local addrs
	use_dropin 10-ipv6 ipv6_dropin "over IPv6" || return 1
	addrs=$(serfctl_json h1 | jq -r '[.members[].addr] | sort | join(" ")') || return 1
	if [[ $addrs != "[${NET6}1]:7946 [${NET6}2]:7946 [${NET6}3]:7946" ]]; then
		log "h1 lists the members at $addrs; want their IPv6 addresses"
		return 1
	fi
	# A payload of its own: the event clocks start again with the
	# snapshots gone, and an event of an earlier check with the same name,
	# time and payload would count as handled already.
	in_host h3 serfctl event memresponse over-ipv6 || return 1
	BLAME=h1
	wait_for "$T" in_host h1 grep -q over-ipv6 /tmp/mem.txt ||
		{ log "h1's handler did not run for an event sent on h3 over IPv6"; return 1; }
	restore_dropin 10-ipv6
}

# dns_dropin HOST N: h1 joins nobody; h2 joins the name serf.e2e.internal,
# h3 the SRV name _serf._udp.e2e.internal, both looked up at h1's dnsmasq.
dns_dropin() {
	printf 'node_name = "%s"\nbind = "%s:7946"\n' "$1" "$NET.$2"
	case $2 in
	1) ;;
	2) echo 'join = ["serf.e2e.internal"]' ;;
	*) echo 'join = ["_serf._udp.e2e.internal"]' ;;
	esac
	if [[ $2 -ne 1 ]]; then echo "join_resolver = \"$NET.1:53\""; fi
}

# dns_join: a zone served by dnsmasq (Debian's dnsmasq-base) on h1: an
# address record serf.e2e.internal and an SRV record
# _serf._udp.e2e.internal naming h1.e2e.internal at port 7946 (Serf #305:
# Serf joins addresses only). h2 joins the name, h3 the SRV record, each
# asking h1's server (join_resolver); they form one cluster, and each
# journal names what its join resolved to. Then each host gets its own
# drop-in back and dnsmasq stops.
dns_join() {
	in_host h1 systemd-run --unit=e2e-dns --property=Type=simple \
		dnsmasq --keep-in-foreground --no-resolv --no-hosts --no-poll --port=53 --pid-file= --user=nobody --group=nogroup \
		--listen-address="$NET.1" --bind-interfaces \
		--host-record="serf.e2e.internal,$NET.1" --host-record="h1.e2e.internal,$NET.1" \
		--srv-host="_serf._udp.e2e.internal,h1.e2e.internal,7946" >/dev/null || return 1
	wait_for "$T" in_host h1 systemctl is-active -q e2e-dns || { log "h1: dnsmasq did not start"; return 1; }
	use_dropin 10-dns dns_dropin "joined by DNS" || { in_host h1 systemctl stop e2e-dns; return 1; }
	local ok=0
	BLAME=h2
	journal_grep h2 "join serf.e2e.internal resolved to $NET.1:7946" ||
		{ log "h2: the journal does not say serf.e2e.internal resolved to $NET.1:7946"; ok=1; }
	BLAME=h3
	journal_grep h3 "join _serf._udp.e2e.internal resolved to $NET.1:7946" ||
		{ log "h3: the journal does not say _serf._udp.e2e.internal resolved to $NET.1:7946"; ok=1; }
	in_host h1 systemctl stop e2e-dns || ok=1
	restore_dropin 10-dns || return 1
	return $ok
}

# serf_swap: h3 runs a stock Serf agent (the node as a Serf user has it: a
# JSON configuration in /etc/serf read with -config-dir, event_handlers, a
# tags file and a snapshot in /var/lib/serf, all root-only), in the cluster
# with h1 and h2 (serfd). While h1 sends 40 events, the agent is stopped
# and serfd started on the same files, untouched (only serfd's drop-in
# serf-agent-files.conf is added): h3 comes back with the tags file's tags,
# the stock `serf` CLI works through serfd's RPC, and every event reaches
# h3's handler (run by the Serf agent before the swap, by serfd after).
serf_swap() {
	local sender rc=0 missing
	BLAME=h3
	in_host h3 systemctl stop serfd || return 1
	wait_for "$T" member_status h1 h3 left || { log "h1 does not see h3 left"; return 1; }
	in_host h3 sh -c '
		set -e
		umask 077
		mkdir -p /var/lib/serf
		echo "{\"role\": \"from-serf\", \"rack\": \"r3\"}" >/var/lib/serf/tags.json
		cat >/etc/serf/serf.json <<-JSON
		{
		  "node_name": "h3",
		  "bind": "'"$NET"'.3:7946",
		  "start_join": ["'"$NET"'.1:7946"],
		  "tags_file": "/var/lib/serf/tags.json",
		  "snapshot_path": "/var/lib/serf/snapshot",
		  "event_handlers": ["user:swap=cat >> /var/tmp/swap.txt"],
		  "reconnect_interval": "2s"
		}
		JSON
		rm -f /var/tmp/swap.txt' || return 1
	in_host h3 systemd-run --quiet --unit=serf-agent -p KillSignal=SIGINT /root/serf agent -config-dir /etc/serf || return 1
	wait_for "$T" has_tag h1 h3 from-serf || { log "h1 does not see h3 (stock Serf) with role=from-serf"; in_host h3 journalctl -u serf-agent --no-pager | tail -20 >&2; return 1; }
	in_host h1 sh -c 'for i in $(seq 1 40); do serfctl event -wait 20s swap "swap-$i" >/dev/null || echo "send $i failed"; sleep 0.25; done' >"$WORK/swap-sender.out" 2>&1 &
	sender=$!
	wait_for "$T" swap_has h3 swap-5 || { log "h3's Serf agent ran no swap event"; kill "$sender"; return 1; }
	in_host h3 systemctl stop serf-agent || { kill "$sender"; return 1; }
	in_host h3 sh -c 'mkdir -p /etc/systemd/system/serfd.service.d &&
		cp /usr/share/serfd/contrib/dropins/serf-agent-files.conf /etc/systemd/system/serfd.service.d/ &&
		systemctl daemon-reload && systemctl start serfd' || { kill "$sender"; return 1; }
	wait "$sender" || rc=$?
	[[ $rc == 0 && ! -s $WORK/swap-sender.out ]] || { log "h1: sending failed (rc $rc):"; cat "$WORK/swap-sender.out" >&2; return 1; }
	wait_for "$T" has_tag h1 h3 from-serf || { log "h1 does not see h3 (serfd) with the tags file's role"; return 1; }
	wait_for "$T" serf_lists_h1 || { log "h3: stock serf members through serfd's RPC does not list h1 alive"; return 1; }
	wait_for "$T" swap_all h3 || {
		missing=$(in_host h3 sh -c 'for i in $(seq 1 40); do grep -qx "swap-$i" /var/tmp/swap.txt || printf "swap-%s " $i; done')
		log "h3: events not run across the swap: $missing"; return 1; }
	log "h3: $(in_host h3 sort /var/tmp/swap.txt | uniq -d | wc -l) of 40 events ran twice across the swap (run by Serf, then by serfd)"
	# Back to the suite's own setup.
	in_host h3 sh -c 'systemctl stop serfd && rm -rf /etc/serf/serf.json /var/lib/serf /etc/systemd/system/serfd.service.d &&
		systemctl daemon-reload && systemctl start serfd' || return 1
	wait_for "$T" member_status h1 h3 alive || { log "h1 does not see h3 alive after the swap back"; return 1; }
}

# serf_lists_h1: stock `serf members` on h3 (through serfd's RPC once serfd
# answers there) lists h1 alive.
serf_lists_h1() { in_host h3 /root/serf members -status alive 2>/dev/null | grep -q '^h1 '; }
swap_has() { in_host "$1" grep -qx -- "$2" /var/tmp/swap.txt 2>/dev/null; }
swap_all() { [[ $(in_host "$1" sh -c 'grep -x "swap-[0-9]*" /var/tmp/swap.txt | sort -u | wc -l') == 40 ]]; }

# handler_run_failed HOST HANDLER TEXT: a run of HANDLER failed with TEXT
# in its output.
handler_output_has() {
	in_host "$1" journalctl -q --no-pager -o cat _SYSTEMD_UNIT=serfd.service "HANDLER=$2" | grep -q -- "$3"
}

haproxy_reloaded() {
	in_host h1 grep -q 'server h2 10\.231\.0\.2:80 check' /etc/haproxy/haproxy.cfg 2>/dev/null &&
		in_host h1 test -s /run/haproxy-reloads
}

# haproxy: the contrib haproxy-backends handler on h1, with a stand-in
# haproxy.service. As shipped, the sandbox stops it writing /etc/haproxy;
# with the contrib drop-in and path unit it writes the backend list (h2 is
# role=web) and systemd reloads "HAProxy"; nothing else is granted.
haproxy() {
	local out
	BLAME=h1
	in_host h1 sh -c '
		set -e
		mkdir -p /etc/haproxy
		printf "global\n    maxconn 100\n" >/etc/haproxy/haproxy.cfg.head
		cp /etc/haproxy/haproxy.cfg.head /etc/haproxy/haproxy.cfg
		chgrp serf /etc/haproxy/haproxy.cfg && chmod g+w /etc/haproxy/haproxy.cfg
		printf "[Service]\nExecStart=/bin/sleep infinity\nExecReload=/bin/sh -c \"date >>/run/haproxy-reloads\"\n" \
			>/etc/systemd/system/haproxy.service
		systemctl daemon-reload && systemctl start haproxy.service
		cp /usr/share/serfd/contrib/handlers/haproxy-backends /etc/serf/handlers.d/
		systemctl restart serfd' || return 1
	wait_for "$T" handler_output_has h1 haproxy-backends 'Read-only file system' ||
		{ log "h1: haproxy-backends did not fail on the read-only /etc as shipped"; return 1; }
	in_host h1 test -e /run/haproxy-reloads && { log "h1: HAProxy reloaded without the drop-in"; return 1; }
	in_host h1 sh -c '
		set -e
		d=/usr/share/serfd/contrib/dropins
		mkdir -p /etc/systemd/system/serfd.service.d
		cp $d/handlers-write-etc-haproxy.conf /etc/systemd/system/serfd.service.d/
		cp $d/serfd-haproxy-reload.path $d/serfd-haproxy-reload.service /etc/systemd/system/
		systemctl daemon-reload
		systemctl enable --now serfd-haproxy-reload.path
		systemctl restart serfd' || return 1
	wait_for "$T" haproxy_reloaded || { log "h1: no backend line for h2 or no reload"; in_host h1 cat /etc/haproxy/haproxy.cfg >&2; return 1; }
	out=$(in_host h1 systemd-analyze security --no-pager serfd.service | tail -1)
	log "h1 with handlers-write-etc-haproxy.conf: $out"
	in_host h1 sh -c '
		rm -f /etc/serf/handlers.d/haproxy-backends /etc/systemd/system/serfd.service.d/handlers-write-etc-haproxy.conf
		systemctl disable --now serfd-haproxy-reload.path haproxy.service 2>/dev/null
		systemctl daemon-reload && systemctl restart serfd'
}

# veth_of HOST: the bridge-side interface of HOST's host0.
veth_of() {
	local idx
	idx=$(in_host "$1" cat /sys/class/net/host0/iflink) || return 1
	ip -n "$NETNS" -o link show | awk -F': ' -v i="$idx" '$1 == i { sub(/@.*/, "", $2); print $2 }'
}

# partition: h3's link leaves the bridge; h1 marks h3 failed; an event sent
# meanwhile reaches h3 once the link is back and h3 is alive again.
partition() {
	local v
	v=$(veth_of h3) && [[ -n $v ]] || { log "no bridge port for h3"; return 1; }
	ip -n "$NETNS" link set "$v" nomaster || return 1
	BLAME=h1
	if ! wait_for 60 member_status h1 h3 failed; then
		log "h1 does not see h3 failed"; ip -n "$NETNS" link set "$v" master "$BR"; return 1
	fi
	in_host h1 serfctl event memresponse during-partition || { ip -n "$NETNS" link set "$v" master "$BR"; return 1; }
	wait_for "$T" mem_count h2 during-partition 1 || { ip -n "$NETNS" link set "$v" master "$BR"; return 1; }
	mem_count h3 during-partition 0 || { log "h3 got the event while cut off"; ip -n "$NETNS" link set "$v" master "$BR"; return 1; }
	ip -n "$NETNS" link set "$v" master "$BR" || return 1
	wait_for 60 member_status h1 h3 alive || { log "h1 does not see h3 alive after healing"; return 1; }
	BLAME=h3
	wait_for "$T" member_status h3 h1 alive || { log "h3 does not see h1 alive after healing"; return 1; }
	wait_for "$T" mem_count h3 during-partition 1 || { log "h3: the event sent during the partition did not arrive"; return 1; }
}

watchdog_ts() { in_host "$1" systemctl show -p WatchdogTimestampMonotonic --value serfd; }

# pinged HOST SINCE: serfd on HOST sent WATCHDOG=1 after monotonic SINCE.
pinged() { (($(watchdog_ts "$1") > $2)); }

# watchdog: with WatchdogSec=2s (a drop-in), serfd keeps pinging; frozen
# with SIGSTOP it stops, and systemd kills and restarts it.
watchdog() {
	local rc=0
	watchdog_try || rc=1
	# Whatever happened: back to the shipped unit, serfd running on h3.
	in_host h3 sh -c 'rm -f /etc/systemd/system/serfd.service.d/50-e2e-watchdog.conf &&
		systemctl daemon-reload && systemctl reset-failed serfd; systemctl restart serfd' || rc=1
	wait_for "$T" member_status h1 h3 alive || { log "h1 does not see h3 alive after the watchdog check"; rc=1; }
	return "$rc"
}

watchdog_try() {
	local pid ts n0 out
	BLAME=h3
	in_host h3 sh -c 'mkdir -p /etc/systemd/system/serfd.service.d &&
		printf "[Service]\nWatchdogSec=2s\n" >/etc/systemd/system/serfd.service.d/50-e2e-watchdog.conf &&
		systemctl daemon-reload && systemctl restart serfd' || return 1
	pid=$(main_pid h3)
	n0=$(in_host h3 systemctl show -p NRestarts --value serfd)
	# Three pings in a row from the same process, with no restart between:
	# (WatchdogTimestamp also moves when systemd (re)starts the service).
	for _ in 1 2 3; do
		ts=$(watchdog_ts h3)
		wait_for 10 pinged h3 "$ts" || { log "h3: no WATCHDOG=1 within 10s"; return 1; }
	done
	[[ $(main_pid h3) == "$pid" && $(in_host h3 systemctl show -p NRestarts --value serfd) == "$n0" ]] ||
		{ log "h3: serfd was restarted while healthy (MainPID $pid -> $(main_pid h3))"; return 1; }
	in_host h3 kill -STOP "$pid" || return 1
	wait_for "$T" restarted_since h3 "$n0" "$pid" || { log "h3: frozen serfd was not restarted"; return 1; }
	out=$(in_host h3 journalctl -u serfd -q --no-pager -g 'Watchdog timeout')
	[[ -n $out ]] || { log "h3: no 'Watchdog timeout' in the journal"; return 1; }
	log "h3: $out"
}

restarted_since() {
	local n pid
	n=$(in_host "$1" systemctl show -p NRestarts --value serfd)
	pid=$(main_pid "$1")
	((n > $2)) && [[ $pid != "$3" && $pid != 0 ]] && is_active "$1"
}

# upgrade: `dpkg -i` of a newer package on h2 restarts serfd with the new
# binary, keeps the admin's config.hcl edit, drop-ins and handlers, and h2
# stays in the cluster (h1 sees it alive; events still reach it).
daemon_version() { in_host "$1" serfctl info -format json | jq -r .version; }

upgrade() {
	local pid out v_old v_new since
	BLAME=h2
	pid=$(main_pid h2)
	v_old=$(daemon_version h2)
	since=$(socket_since h2)
	in_host h2 sh -c 'echo "# edited by the admin" >>/etc/serf/config.hcl' || return 1
	out=$(in_host h2 dpkg -i "/root/${DEB2##*/}" 2>&1) || { printf '%s\n' "$out" >&2; return 1; }
	[[ $(in_host h2 dpkg-query -W -f='${Version}' serfd) == "$V2" ]] || { log "h2: serfd $V2 not installed"; return 1; }
	in_host h2 grep -q '^# edited by the admin' /etc/serf/config.hcl || { log "h2: the admin's config.hcl edit is gone"; return 1; }
	in_host h2 test -x /etc/serf/handlers.d/memresponse || { log "h2: handler memresponse is gone"; return 1; }
	in_host h2 test -e /etc/serf/config.d/20-role.hcl || { log "h2: drop-in 20-role.hcl is gone"; return 1; }
	if in_host h2 sh -c 'ls /etc/serf/*.dpkg-* 2>/dev/null' | grep -q .; then log "h2: dpkg left conffile copies"; return 1; fi
	is_active h2 || { log "h2: serfd is not running after the upgrade"; return 1; }
	[[ $(main_pid h2) != "$pid" ]] || { log "h2: serfd was not restarted by the upgrade"; return 1; }
	[[ $(socket_since h2) == "$since" ]] || { log "h2: the upgrade did not keep serfd.socket open"; return 1; }
	v_new=$(daemon_version h2)
	log "h2: serfd $v_old -> $v_new"
	[[ -n $v_new && $v_new != "$v_old" ]] || { log "h2: the running serfd is not the upgraded binary"; return 1; }
	[[ $v_new == "$V2" ]] || { log "h2: serfd reports version $v_new; want the package's, $V2"; return 1; }
	BLAME=h1
	wait_for "$T" member_status h1 h2 alive || { log "h1 does not see h2 alive after the upgrade"; return 1; }
	in_host h1 serfctl event memresponse after-upgrade || return 1
	BLAME=h2
	wait_for "$T" mem_count h2 after-upgrade 1 || { log "h2: event after the upgrade did not arrive"; return 1; }
}

# purge: `dpkg -r` stops serfd (h1 sees h3 left) and its socket;
# `dpkg -P` removes config.hcl and the state in /var/lib/serfd.
purge() {
	local out
	BLAME=h3
	in_host h3 systemctl start serfd || return 1
	wait_for "$T" member_status h1 h3 alive || { log "h1 does not see h3 alive before dpkg -r"; return 1; }
	out=$(in_host h3 dpkg -r serfd 2>&1) || { printf '%s\n' "$out" >&2; return 1; }
	[[ $(in_host h3 systemctl is-active serfd.socket serfd | paste -sd,) == inactive,inactive ]] ||
		{ log "h3: serfd or its socket still active after dpkg -r"; return 1; }
	wait_for "$T" member_status h1 h3 left || { log "h1 does not see h3 left after dpkg -r"; BLAME=h1; return 1; }
	out=$(in_host h3 dpkg -P serfd 2>&1) || { printf '%s\n' "$out" >&2; return 1; }
	if in_host h3 test -e /var/lib/serfd; then log "h3: /var/lib/serfd survived the purge"; return 1; fi
	if in_host h3 test -e /etc/serf/config.hcl; then log "h3: config.hcl survived the purge"; return 1; fi
	[[ $(in_host h3 dpkg-query -W -f='${Status}' serfd 2>/dev/null) != *installed* ]] || { log "h3: still installed"; return 1; }
}

# --- taken out stays out; a bad config never fails the socket; reboot ------

unit_state() { in_host "$1" systemctl is-active "$2" 2>/dev/null || true; }

both_inactive() { [[ $(unit_state "$1" serfd.service) == inactive && $(unit_state "$1" serfd.socket) == inactive ]]; }

# out_and_stays_out HOST: serfd and serfd.socket are stopped, the socket
# file is gone, and three read-only `serfctl members` calls (a cron job, a
# monitoring check) fail with how to start serfd instead of bringing the
# node back; h1 still lists HOST as left afterwards.
out_and_stays_out() {
	local h=$1 out rc st
	wait_for "$T" both_inactive "$h" ||
		{ log "$h: serfd.service $(unit_state "$h" serfd.service), serfd.socket $(unit_state "$h" serfd.socket); want both inactive"; return 1; }
	if in_host "$h" test -e /run/serfd.sock; then log "$h: /run/serfd.sock is still there"; return 1; fi
	for _ in 1 2 3; do
		rc=0; out=$(in_host "$h" serfctl members 2>&1) || rc=$?
		[[ $rc == 1 && $out == *'serfd is not running (no socket at /run/serfd.sock): start it with `systemctl start serfd`'* ]] ||
			{ log "$h: serfctl members on a stopped node: exit $rc, $out"; return 1; }
	done
	log "$h\$ serfctl members: $out"
	st=$(unit_state "$h" serfd.service)
	[[ $st == inactive ]] || { log "$h: serfd.service is $st after read-only serfctl calls; the node came back"; return 1; }
	member_status h1 "$h" left || { log "h1 does not list $h as left"; serfctl_json h1 >&2; BLAME=h1; return 1; }
}

socket_since() { in_host "$1" systemctl show -p ActiveEnterTimestampMonotonic --value serfd.socket; }

# stays_out: on h3 (stopped by the check before): `systemctl stop serfd`
# and `serfctl leave` keep the node out (out_and_stays_out);
# `systemctl start serfd` and `systemctl restart serfd` bring it back;
# a restart of a running serfd keeps the same socket open.
stays_out() {
	local out since
	BLAME=h3
	out_and_stays_out h3 || return 1
	in_host h3 systemctl start serfd || { log "h3: systemctl start serfd failed"; return 1; }
	[[ $(unit_state h3 serfd.socket) == active ]] || { log "h3: serfd.socket not active after systemctl start serfd"; return 1; }
	wait_for "$T" member_status h1 h3 alive || {
		log "h1 does not see h3 alive after systemctl start serfd; h3's journal:"
		in_host h3 journalctl -u serfd --no-pager -n 40 >&2
		BLAME=h1; return 1; }
	out=$(in_host h3 serfctl leave 2>&1) || { log "h3: serfctl leave failed: $out"; return 1; }
	out_and_stays_out h3 || return 1
	in_host h3 systemctl restart serfd || { log "h3: systemctl restart serfd (from stopped) failed"; return 1; }
	wait_for "$T" member_status h1 h3 alive || { log "h1 does not see h3 alive after systemctl restart serfd"; BLAME=h1; return 1; }
	since=$(socket_since h3)
	in_host h3 systemctl restart serfd || return 1
	[[ $(unit_state h3 serfd.socket) == active && $(socket_since h3) == "$since" ]] ||
		{ log "h3: systemctl restart serfd did not keep serfd.socket open"; return 1; }
	wait_for "$T" member_status h1 h3 alive || { log "h1 does not see h3 alive after a restart"; BLAME=h1; return 1; }
}

# bad_config_socket: with a bad config.d file on h2, 5 serfctl calls in a
# row and 10 at once each start serfd (socket activation), which answers
# with the problem and exits 78; serfd.socket is never failed and every
# call says what is wrong and how to go on. Config fixed, `systemctl
# start serfd` and h2 is a member again.
bad_config_socket() {
	local out rc st i
	BLAME=h2
	in_host h2 sh -c 'echo "bogus_key = 1" >/etc/serf/config.d/99-bad.hcl' || return 1
	in_host h2 systemctl restart serfd 2>/dev/null && { log "h2: restart with a bad config succeeded"; return 1; }
	for i in 1 2 3 4 5; do
		rc=0; out=$(in_host h2 serfctl members 2>&1) || rc=$?
		[[ $rc == 1 && $out == *"serfd could not start: its configuration is invalid"* && $out == *'`serfd -check`'* &&
			$out == *"99-bad.hcl:1,1"* ]] || { log "h2: serfctl members $i with a bad config: exit $rc, $out"; return 1; }
	done
	printf '%s\n' "$out" | sed 's/^/h2$ serfctl members: /' >&2
	out=$(in_host h2 sh -c '
		for i in $(seq 1 10); do serfctl members >/tmp/bad-$i.out 2>&1 & done; wait
		grep -L "serfd could not start: its configuration is invalid" /tmp/bad-*.out | while read -r f; do cat "$f"; done
		rm -f /tmp/bad-*.out') || true
	[[ -z $out ]] || { log "h2: concurrent serfctl calls with a bad config got: $out"; return 1; }
	st=$(in_host h2 systemctl is-failed serfd.socket) || true
	[[ $st != failed && $(unit_state h2 serfd.socket) == active ]] ||
		{ log "h2: serfd.socket is $st: $(in_host h2 systemctl show -p Result --value serfd.socket)"; return 1; }
	log "h2: serfd.socket $(unit_state h2 serfd.socket) after $(in_host h2 systemctl show -p NRestarts -p ExecMainStatus serfd | paste -sd' ')"
	in_host h2 rm -f /etc/serf/config.d/99-bad.hcl || return 1
	# A socket-triggered start that was still failing on the bad config can
	# fail this start job too; the admin's next start must succeed.
	wait_for "$T" in_host h2 systemctl start serfd ||
		{ log "h2: systemctl start serfd failed with the config fixed: $(in_host h2 systemctl status --no-pager serfd | tail -5)"; return 1; }
	wait_for "$T" member_status h1 h2 alive || { log "h1 does not see h2 alive after the fix"; BLAME=h1; return 1; }
}

n_restarts() { in_host "$1" systemctl show -p NRestarts --value serfd; }

restarts_reach() { (($(n_restarts "$1") >= $2)); }

# crash_loop: serfd on h2 cannot bind its gossip address (not on the host;
# nothing is sent) and exits 1 at every start. Restart=on-failure retries
# it, paced by RestartSec=2s (3 restarts take 4s or more), with no start
# limit to fail serfd.socket; a serfctl call is answered with the reason.
# Once the cause is gone the next attempt starts serfd with no admin
# action, and h2 is a member again.
crash_loop() {
	local rc=0
	crash_loop_try || rc=1
	in_host h2 rm -f /etc/serf/config.d/99-addr.hcl
	wait_for 60 is_active h2 || { log "h2: serfd did not come back by itself once the address was fixed"; rc=1; }
	wait_for "$T" member_status h1 h2 alive || { log "h1 does not see h2 alive after the crash loop"; BLAME=h1; rc=1; }
	return "$rc"
}

crash_loop_try() {
	local n0 t0 out rc st
	BLAME=h2
	in_host h2 sh -c "echo 'bind = \"$NET.250:7946\"' >/etc/serf/config.d/99-addr.hcl" || return 1
	in_host h2 systemctl restart serfd 2>/dev/null && { log "h2: serfd started on an address it cannot bind"; return 1; }
	n0=$(n_restarts h2)
	wait_for "$T" restarts_reach h2 $((n0 + 1)) || { log "h2: serfd was not restarted after exit 1"; return 1; }
	t0=$SECONDS
	wait_for "$T" restarts_reach h2 $((n0 + 4)) || { log "h2: the crash loop stopped (NRestarts $(n_restarts h2))"; return 1; }
	log "h2: 3 restarts in a crash loop took $((SECONDS - t0))s (RestartSec=2s)"
	((SECONDS - t0 >= 4)) || { log "h2: the crash loop is not paced"; return 1; }
	rc=0; out=$(in_host h2 serfctl members 2>&1) || rc=$?
	[[ $rc == 1 && $out == *"serfd could not start: start gossip on $NET.250:7946"* ]] ||
		{ log "h2: serfctl members during the crash loop: exit $rc, $out"; return 1; }
	log "h2\$ serfctl members: $out"
	st=$(in_host h2 systemctl is-failed serfd.socket) || true
	[[ $st != failed ]] || { log "h2: serfd.socket failed in the crash loop"; return 1; }
}

# reboot: `systemctl reboot` inside h2 (nspawn then exits with 133, the
# way it asks its supervisor for a restart); h2's root is booted again.
# serfd starts at boot, h1 and h3 list h2 alive, and an event sent from h1
# runs h2's handler.
reboot() {
	local rc=0 root
	BLAME=h2
	in_host h2 systemctl reboot --no-block || return 1
	wait_for 60 exited "${NSPAWN[h2]}" || { log "h2 did not go down"; return 1; }
	wait "${NSPAWN[h2]}" || rc=$?
	[[ $rc == 133 ]] || log "h2: systemd-nspawn exited $rc after reboot (133 expected)"
	for root in "${CGROOTS[@]}"; do
		find "$root/$CG/h2" -mindepth 1 -depth -type d -exec rmdir {} + 2>/dev/null || true
	done
	INIT[h2]=
	boot h2
	wait_for "$BOOT_TIMEOUT" init_of h2 >/dev/null || { log "h2: no init after the reboot"; return 1; }
	INIT[h2]=$(init_of h2)
	wait_for "$BOOT_TIMEOUT" booted h2 || { log "h2 did not boot again"; tail -30 "$WORK/h2.console" >&2; return 1; }
	wait_for "$T" has_addr h2 "$NET.2" || return 1
	in_host h2 journalctl -b -1 -q --no-pager -u serfd -u serfd.socket | tail -4 | sed 's/^/h2 before the reboot: /' >&2
	[[ $(unit_state h2 serfd.service) == active ]] || { log "h2: serfd.service is $(unit_state h2 serfd.service) after boot"; return 1; }
	BLAME=h1
	wait_for "$T" member_status h1 h2 alive || { log "h1 does not see h2 alive after its reboot"; return 1; }
	wait_for "$T" member_status h3 h2 alive || { log "h3 does not see h2 alive after its reboot"; BLAME=h3; return 1; }
	in_host h1 serfctl event memresponse after-reboot >/dev/null || return 1
	BLAME=h2
	wait_for "$T" mem_count h2 after-reboot 1 || { log "h2: its handler did not run after the reboot"; return 1; }
}

# --- Prometheus --------------------------------------------------------------
# Debian's prometheus on h1 (the machine's package: hosts share its /usr and
# a copy of its /etc and dpkg database) scrapes the serfd of all three hosts.
readonly PROM=http://127.0.0.1:9090
readonly CONTRIB=/usr/share/serfd/contrib

# prom GET_PATH [CURL ARGS...]: GET from h1's Prometheus HTTP API.
prom() { local p=$1; shift; in_host h1 curl -sf --max-time 10 "$@" "$PROM$p"; }

# prom_query EXPR: the result vector of an instant query, as compact JSON.
prom_query() { prom /api/v1/query -G --data-urlencode "query=$1" | jq -c '.data.result'; }

# prom_is EXPR WANT: EXPR gives exactly one series, of value WANT.
prom_is() {
	local got
	got=$(prom_query "$1" | jq -r 'if length == 1 then .[0].value[1] else "\(length) series" end') || return 1
	PROM_LAST=$got
	[[ $got == "$2" ]]
}

# firing ALERT: Prometheus reports ALERT firing.
firing() {
	prom /api/v1/alerts | jq -e --arg a "$1" 'any(.data.alerts[]; .labels.alertname == $a and .state == "firing")' >/dev/null
}

prom_ready() { prom /-/ready >/dev/null 2>&1; }

# prom_exprs: every PromQL expression of the shipped dashboard (Grafana's
# $__rate_interval as 1m) and of the alert rules Prometheus loaded, the
# latter without their final threshold (the comparison filters series out
# until the fault is there; what is checked is that the metrics exist).
prom_exprs() {
	in_host h1 jq -r '.panels[].targets[]?.expr' "$CONTRIB/grafana/serfd-dashboard.json" | sed 's/\$__rate_interval/1m/g'
	prom /api/v1/rules | jq -r '.data.groups[].rules[].query' |
		sed -E 's/[[:space:]]*(>|>=|==|<|<=|!=)[[:space:]]*[0-9.]+$//'
}

# prom_exprs_all_have_series: each expression returns at least one series.
prom_exprs_all_have_series() {
	local q n=0 bad=0
	while IFS= read -r q; do
		[[ -n $q ]] || continue
		n=$((n + 1))
		if [[ $(prom_query "$q" | jq length) == 0 ]]; then
			log "no series: $q"; bad=1
		fi
	done < <(prom_exprs)
	((n >= 20)) || { log "only $n expressions found in the dashboard and rules"; return 1; }
	((bad == 0)) && log "h1: all $n dashboard and alert expressions return series"
	((bad == 0))
}

# prometheus_check: the contrib scrape config, alert rules and file_sd handler on
# h1, each host's metrics listener on its address. Prometheus finds all three
# targets from the handler's file and sees 3 alive members on each; a handler
# exiting 3 on h2 is counted and SerfdHandlerFailing fires; h3 cut off the
# bridge shows as failed on h1 and h2 (timed from the cut) and
# SerfdMemberFailed fires; healed, all three are alive and scraped again.
# Every dashboard and alert expression returns series. With E2E_SCREENSHOT
# set (and chromium installed) the graph of members by status across the
# fault is saved there as a PNG.
prometheus_check() {
	local rc=0 v
	prometheus_try || rc=1
	v=$(veth_of h3) && ip -n "$NETNS" link set "$v" master "$BR" 2>/dev/null
	in_host h2 rm -f /etc/serf/handlers.d/e2e-fail || rc=1
	in_host h1 systemctl stop prometheus.service || rc=1
	wait_for 60 member_status h1 h3 alive || { log "h1 does not see h3 alive after the Prometheus check"; rc=1; }
	return "$rc"
}

prometheus_try() {
	local v t0 q
	BLAME=h1
	in_host h1 sh -c '
		set -e
		c='"$CONTRIB"'/prometheus
		cp $c/serfd.rules.yml /etc/prometheus/serfd.rules.yml
		{ printf "global:\n  scrape_interval: 2s\n  evaluation_interval: 2s\n"
		  sed "s/scrape_interval: 15s/scrape_interval: 2s/" $c/prometheus.yml; } >/etc/prometheus/prometheus.yml
		install -d -o prometheus -g prometheus /var/lib/prometheus
		install -m 0755 $c/serfd-file-sd /etc/serf/handlers.d/prometheus-file-sd
		echo "handler \"prometheus-file-sd\" { events = [\"member-join\", \"member-leave\", \"member-failed\", \"member-reap\"] }" \
			>/etc/serf/config.d/50-prometheus.hcl
		promtool check config /etc/prometheus/prometheus.yml >/dev/null
		systemctl start prometheus.service
		systemctl restart serfd' || return 1
	wait_for "$T" prom_ready || { log "h1: prometheus is not ready"; in_host h1 journalctl -u prometheus --no-pager | tail -20 >&2; return 1; }
	in_host h1 cat /var/lib/serfd/prometheus-targets.json | sed 's/^/h1: file_sd targets: /' >&2 || true
	wait_for 60 prom_is 'count(up{job="serfd"} == 1)' 3 ||
		{ log "Prometheus does not scrape 3 serfd targets (got $PROM_LAST)"; prom /api/v1/targets | jq -c '.data.activeTargets[] | [.scrapeUrl, .health, .lastError]' >&2; return 1; }
	wait_for "$T" prom_is 'count(serfd_members{job="serfd",status="alive"} == 3)' 3 ||
		{ log "not every serfd reports 3 alive members to Prometheus (got $PROM_LAST)"; return 1; }
	log "h1: Prometheus scrapes 3 serfd, each reports 3 alive members"

	# Handler failures: a handler on h2 that exits 3 on user event e2e-fail.
	BLAME=h2
	in_host h2 sh -c 'printf "#!/bin/sh\n[ \"\$SERF_USER_EVENT\" = e2e-fail ] || exit 0\nexit 3\n" >/etc/serf/handlers.d/e2e-fail &&
		chmod 0755 /etc/serf/handlers.d/e2e-fail' || return 1
	q='sum(serfd_handler_runs_total{job="serfd",instance="'$NET.2':7374",handler="e2e-fail",outcome="exit_nonzero"})'
	wait_for "$T" prom_is "$q" 0 || { log "Prometheus has no handler series for e2e-fail on h2 (got $PROM_LAST)"; return 1; }
	for v in 1 2 3; do in_host h1 serfctl event e2e-fail "$v" >/dev/null || return 1; done
	wait_for "$T" prom_is "$q" 3 || { log "h2's 3 failed runs of e2e-fail are not counted (got $PROM_LAST)"; return 1; }
	wait_for "$T" firing SerfdHandlerFailing || { log "SerfdHandlerFailing does not fire"; return 1; }
	log "h2: 3 runs exiting 3 counted; SerfdHandlerFailing firing"

	# A member failure: h3 off the bridge.
	BLAME=h1
	v=$(veth_of h3) && [[ -n $v ]] || { log "no bridge port for h3"; return 1; }
	t0=$SECONDS
	ip -n "$NETNS" link set "$v" nomaster || return 1
	wait_for 60 prom_is 'count(serfd_members{job="serfd",status="failed"} == 1)' 2 ||
		{ log "Prometheus does not see h3 failed on h1 and h2 (got $PROM_LAST)"; return 1; }
	log "h1, h2 report h3 failed to Prometheus $((SECONDS - t0))s after the cut (scrape interval 2s)"
	prom_exprs_all_have_series || return 1
	wait_for 120 firing SerfdMemberFailed || { log "SerfdMemberFailed does not fire"; return 1; }
	log "SerfdMemberFailed firing $((SECONDS - t0))s after the cut (for: 1m)"
	ip -n "$NETNS" link set "$v" master "$BR" || return 1
	wait_for 60 prom_is 'count(serfd_members{job="serfd",status="alive"} == 3)' 3 ||
		{ log "after healing, not every serfd reports 3 alive (got $PROM_LAST)"; return 1; }
	wait_for "$T" prom_is 'count(up{job="serfd"} == 1)' 3 ||
		{ log "after healing, Prometheus does not scrape h3 again (got $PROM_LAST)"; return 1; }
	if [[ -n ${E2E_SCREENSHOT:-} ]]; then
		# The graph shows some time after the recovery: all three have
		# reported 3 alive for 10 s.
		wait_for "$T" prom_is 'count(min_over_time(serfd_members{job="serfd",status="alive"}[10s]) == 3)' 3 || return 1
		screenshot "$E2E_SCREENSHOT" || return 1
	fi
}

# screenshot FILE: Prometheus' graph page of members by status over the last
# 3 minutes (the check takes about 2), rendered by headless Chromium inside h1, saved to FILE.
screenshot() {
	local url out=$1
	in_host h1 test -x /usr/bin/chromium || { log "E2E_SCREENSHOT: chromium is not installed"; return 1; }
	url="$PROM/graph?g0.expr=max%20by%20(status)%20(serfd_members%7Bjob%3D%22serfd%22%7D)&g0.tab=0&g0.range_input=3m"
	in_host h1 env HOME=/root chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
		--disable-background-networking --disable-component-update --disable-sync \
		--user-data-dir=/root/chromium --hide-scrollbars --window-size=1280,900 \
		--virtual-time-budget=10000 --screenshot=/root/graph.png "$url" >/dev/null 2>&1 ||
		{ log "chromium could not render $url"; return 1; }
	cp "$WORK/h1/root/graph.png" "$out" && log "graph saved to $out"
}

# --- run -------------------------------------------------------------------
START=$SECONDS
log "work dir $WORK, netns $NETNS, packages $V1 (upgrade to $V2)"
check "boot: 3 hosts running" "" bring_up
if ((FAILED)); then
	echo "$PASSED passed, $FAILED failed"
	exit 1
fi
log "hosts up after $((SECONDS - START))s"
check "network: h2, h3 reach h1 over the bridge; no default route" "" network
for h in "${HOSTS[@]}"; do
	check "install on $h: dpkg -i $V1 -> user serf, serfd.service and .socket enabled, serfd running" "$h" install_pkg "$h"
done
check "h1: systemd-analyze verify; exposure at most 2.0" "" units_verify
check "walkthrough: members from dpkg -i alone, 3 alive, memresponse event on all hosts" h1 walkthrough
check "h1: systemctl is-active serfd" h1 is_active h1
check "h2: journal has SERF_USER_EVENT=memresponse and HANDLER=memresponse" h2 journal_fields
check "h2: STATUS= shows members (not alone) and last event" h2 status_text
check "h2: every MESSAGE_ID is explained by journalctl -x" h2 catalog
check "h1: systemctl restart with 80 requests in flight: none lost" h1 restart_inflight
check "h2: systemctl reload applies a tag change seen by h1" h2 reload_tags
check "h1: contrib haproxy drop-in + path unit: handler writes /etc/haproxy, systemd reloads" h1 haproxy
check "h1: Prometheus scrapes all 3 (file_sd from a handler); handler failures and a failed member counted; alerts fire" h1 prometheus_check
check "h1: kill -9 -> restarted, rejoined from its snapshot, no old event re-run" h1 crash_restart
check "h3: partition -> failed; healed -> alive; event sent meanwhile arrives" h3 partition
check "h3: watchdog: pings while healthy; SIGSTOP -> killed and restarted" h3 watchdog
check "mDNS: h1, h2, h3 with only discover = \"e2e\" (no join, no snapshot) form one cluster" h1 mdns_discover
check "IPv6: h1, h2 bound to their IPv6 address, h3 dual-stack, joined by IPv6 address: one cluster, event delivered" h1 ipv6
check "DNS: h2 joins a name, h3 an SRV record, both served by dnsmasq on h1: one cluster" h1 dns_join
check "h3: a stock Serf agent swapped for serfd on its own JSON config and tags file, no event lost" h3 serf_swap
check "h2: dpkg -i $V2 -> restarted, config and handlers kept, still in the cluster" h2 upgrade
check "h3: systemctl stop serfd -> Result=success, h1 lists h3 as left" h3 leave
check "h2: bad config named 99-bad.hcl:1,1 by -check, restart and journal" h2 bad_config
check "h2: serfd starts again without the bad config and rejoins" h2 recovers
check "h3: stop / serfctl leave keep it out of read-only serfctl calls; start, restart bring it back" h3 stays_out
check "h2: bad config + 15 serfctl calls: each told why, serfd.socket not failed; fixed, started, back" h2 bad_config_socket
check "h2: crash loop (gossip address not on the host): paced, socket not failed, told why, heals" h2 crash_loop
check "h2: reboot -> serfd up at boot, alive on h1 and h3, handler runs" h2 reboot
check "h3: dpkg -r stops serfd; dpkg -P removes config and state" h3 purge
log "suite took $((SECONDS - START))s"
echo "$PASSED passed, $FAILED failed"
((FAILED == 0))

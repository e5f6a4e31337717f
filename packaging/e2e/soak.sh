#!/bin/bash
# Soak suite for serfd: five real systemd hosts with the Debian package
# installed, a steady stream of user events and queries, and random faults,
# then a check that every accepted event ran exactly once on every node.
#
# Usage: packaging/e2e/soak.sh DEB UPGRADE_DEB SOAK_BIN DURATION OUT
#   DEB          the package under test (make deb)
#   UPGRADE_DEB  the same package with a higher version (upgrade faults
#                alternate between the two with dpkg -i)
#   SOAK_BIN     the soak program (internal/soak/cmd/soak)
#   DURATION     seconds of load and faults
#   OUT          results directory (created; kept after the run)
#
# Needs what run.sh needs (lib.sh boots the hosts), plus nftables for the
# packet faults; missing packages are installed with apt-get. The hosts
# h1..h5 sit on a private bridge at 10.232.0.1-5 (run.sh uses 10.231.0.0/24:
# both suites can run at once). Each host joins all the others
# (reconnect_interval 2s) and runs two handlers:
#   soak-log     (user:soak) appends "NODE ID LTIME UNIXTIME ATTEMPT" to
#                /var/lib/serfd/soak-events.log with one write; a run
#                started again after a crash (SERF_RUN_ATTEMPT > 1) whose id
#                is in the log already appends the line with " skipped"
#   soak-answer  (query:soakq) answers "ok NODE"
#
# Then, for DURATION seconds, from this machine:
#   - `soak gen` POSTs /v1/event soak <unique id> to a random host 5 times a
#     second and a query every 3 s, logging accepted / refused / unknown;
#   - `soak watch` asks every host for its members twice a second;
#   - the fault loop below injects a random fault every 2-6 s, at most three
#     at a time and one per host, each healed after 5-30 s.
# At the end: every fault healed, every host started, wait until every host
# sees every host alive and the handlers' logs stop growing; collect the
# logs and journals into OUT; `soak check` prints the report and decides
# the exit status (0 pass, 1 lost/duplicated/stuck/watchdog, 2 could not run).
#
# Faults (kind: what is done; how it is healed):
#   kill9      systemctl kill --kill-who=main -s KILL serfd; healed when
#              systemd runs serfd again (PARAM: the seconds that took)
#   restart    systemctl restart serfd
#   stopstart  systemctl stop serfd.socket serfd; after the hold, start both
#   reload     a config.d file with a new tag value, systemctl reload serfd
#   upgrade    dpkg -i of the other package (up or down a version)
#   partition  the host's veth leaves the bridge; after the hold it is back
#   oneway     nft in host A drops input from host B (B -> A lost, A -> B
#              delivered); the table is deleted after the hold
#   loss       nft in the host drops 10-30 % of its packets in and out
#              (numgen random); deleted after the hold
#   hang       a handler soak-hang that logs its run, then sleeps for ever on
#              soak events; removed after the hold (its runs are counted apart)
#   journald   systemctl restart systemd-journald
# Delay is not injected: the kernel here has no sch_netem (tc qdisc netem
# fails), nftables can drop but not delay, and a userspace relay would
# change the path the gossip takes (addresses, ports) rather than slow the
# real one.
set -euo pipefail

SUITE=soak
PREFIX=ssoak
readonly NET=10.232.0
readonly HOSTS=(h1 h2 h3 h4 h5)
TOOLS=(nft:nftables)

# serf_dropin HOST N: host N's name and address; it joins every other host.
serf_dropin() {
	local i join=()
	for i in "${!HOSTS[@]}"; do
		(( i + 1 != $2 )) && join+=("\"$NET.$((i + 1)):7946\"")
	done
	echo "node_name = \"$1\""
	echo "bind      = \"$NET.$2:7946\""
	echo "join      = [$(IFS=,; echo "${join[*]}")]"
	echo 'reconnect_interval = "2s"'
}

# shellcheck source=packaging/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

[[ $# -eq 5 ]] || die "usage: $0 DEB UPGRADE_DEB SOAK_BIN DURATION OUT"
DEB=$(realpath -e "$1") || die "no package $1"
DEB2=$(realpath -e "$2") || die "no package $2"
SOAK=$(realpath -e "$3") || die "no soak program $3"
DURATION=$4
OUT=$5
[[ $DURATION =~ ^[0-9]+$ ]] && ((DURATION > 0)) || die "DURATION $DURATION is not a number of seconds"
V1=$(dpkg-deb -f "$DEB" Version) && V2=$(dpkg-deb -f "$DEB2" Version) || die "not Debian packages: $DEB $DEB2"
readonly DEB DEB2 SOAK DURATION V1 V2
mkdir -p "$OUT"/{runs,hang,journal}
OUT=$(realpath "$OUT")
readonly OUT
for f in events.jsonl queries.jsonl members.jsonl faults.tsv; do
	[[ ! -s $OUT/$f ]] || die "$OUT/$f exists: give an empty results directory"
done
readonly FAULTS=$OUT/faults.tsv

declare -A BG=() # name -> PID of the generator, the watcher, fault jobs

teardown_hook() {
	local n
	for n in "${!BG[@]}"; do kill -TERM "${BG[$n]}" 2>/dev/null; done
	for n in "${!BG[@]}"; do wait "${BG[$n]}" 2>/dev/null; done
}

suite_init

# --- hosts -------------------------------------------------------------------
HANDLER_LOG='#!/bin/sh
# Soak suite: log each run of a soak user event with one write. A run that
# serfd started again after a crash cut it short (SERF_RUN_ATTEMPT > 1)
# first looks for its id, as a handler that must act once does.
[ "$SERF_EVENT" = user ] && [ "$SERF_USER_EVENT" = soak ] || exit 0
read -r id || [ -n "$id" ] || exit 0
log=/var/lib/serfd/soak-events.log
skip=
if [ "${SERF_RUN_ATTEMPT:-1}" -gt 1 ] && grep -q "^$SERF_SELF_NAME $id " "$log" 2>/dev/null; then
	skip=" skipped"
fi
printf "%s %s %s %s %s%s\n" "$SERF_SELF_NAME" "$id" "$SERF_USER_LTIME" "$(date +%s.%N)" "${SERF_RUN_ATTEMPT:-1}" "$skip" >>"$log"
'
HANDLER_ANSWER='#!/bin/sh
# Soak suite: answer soakq queries.
echo "ok $SERF_SELF_NAME"
'
HANDLER_HANG='#!/bin/sh
# Soak suite fault: a handler that hangs on soak events.
[ "$SERF_EVENT" = user ] && [ "$SERF_USER_EVENT" = soak ] || exit 0
read -r id || [ -n "$id" ] || exit 0
printf "%s %s %s\n" "$SERF_SELF_NAME" "$id" "$(date +%s.%N)" >>/var/lib/serfd/soak-hang.log
exec sleep 3600
'

# put_handler HOST NAME TEXT: install a handler atomically (temp file, mv).
put_handler() {
	in_host "$1" sh -c 'cat >"/etc/serf/handlers.d/.$1.tmp" && chmod 0755 "/etc/serf/handlers.d/.$1.tmp" &&
		mv "/etc/serf/handlers.d/.$1.tmp" "/etc/serf/handlers.d/$1"' sh "$2" <<<"$3"
}

setup_host() {
	local h=$1 out
	in_host "$h" rm -f /usr/sbin/policy-rc.d
	out=$(in_host "$h" dpkg -i "/root/${DEB##*/}" 2>&1) || { printf '%s\n' "$out" >&2; return 1; }
	in_host "$h" sh -c 'cat >/etc/serf/config.d/20-soak.hcl' <<-'EOF'
		handler "soak-log" { events = ["user:soak"] }
		handler "soak-answer" { events = ["query:soakq"] }
	EOF
	put_handler "$h" soak-log "$HANDLER_LOG"
	put_handler "$h" soak-answer "$HANDLER_ANSWER"
	in_host "$h" systemctl start serfd
}

# hosts_arg: NAME=SOCKET,... for the soak program.
hosts_arg() {
	local h args=()
	for h in "${HOSTS[@]}"; do args+=("$h=/proc/${INIT[$h]}/root/run/serfd.sock"); done
	(IFS=,; echo "${args[*]}")
}

# --- faults --------------------------------------------------------------------
# Weights of the fault kinds.
readonly KINDS=(kill9 kill9 restart restart stopstart stopstart reload reload upgrade
	partition partition oneway oneway loss loss hang journald)
readonly BUSY=$WORK/busy # a file per host under a fault
readonly MAX_FAULTS=3    # faults at once (a 20-minute run injects 100+)

# hold: seconds a fault lasts before it is healed (shuf: $RANDOM repeats in
# subshells).
hold() { shuf -i 5-30 -n 1; }

net_in() { local h=$1; shift; nsenter -t "${INIT[$h]}" -n "$@"; }

ip_of() { local i; for i in "${!HOSTS[@]}"; do [[ ${HOSTS[$i]} == "$1" ]] && echo "$NET.$((i + 1))"; done; }

# restarted HOST OLDPID: wait until systemd runs serfd on HOST again, under
# a main PID other than OLDPID, and print how many seconds that took. The
# heal of a kill -9 is that moment, not the kill: systemd first kills what
# is left in the unit's cgroup (a hung handler, a child between fork and
# exec) and waits for the cgroup to empty, which on these cgroup v1 hosts
# it only learns at TimeoutStopSec (30 s), inside a container.
restarted() {
	local t0=$EPOCHREALTIME
	wait_for 120 new_main "$1" "$2" || { echo -; return 1; }
	awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'
}

# new_main HOST OLDPID: serfd on HOST is active under a main PID other than
# OLDPID.
new_main() {
	local pid
	pid=$(in_host "$1" systemctl show -p MainPID --value serfd 2>/dev/null) || return 1
	[[ $pid != 0 && $pid != "$2" ]] && in_host "$1" systemctl is-active -q serfd
}

# fault KIND HOST PEER: inject, hold, heal; one line in the fault log.
fault() {
	local kind=$1 h=$2 peer=$3 param=- note=- t0 t1 v out rc=0
	set +e # a fault job runs to its heal whatever fails; failures go in NOTE
	t0=$EPOCHREALTIME
	case $kind in
	kill9)
		v=$(in_host "$h" systemctl show -p MainPID --value serfd)
		if in_host "$h" systemctl kill --kill-who=main -s KILL serfd; then
			param=$(restarted "$h" "$v") || rc=$?
		else
			rc=$?
		fi
		;;
	restart) in_host "$h" systemctl restart serfd || rc=$? ;;
	stopstart)
		in_host "$h" systemctl stop serfd.socket serfd || rc=$?
		param=$(hold); sleep "$param"
		in_host "$h" systemctl start serfd.socket serfd || rc=$?
		;;
	reload)
		param=$(shuf -i 1-99999 -n 1)
		in_host "$h" sh -c "echo 'tags = { soak = \"$param\" }' >/etc/serf/config.d/30-soak-tag.hcl" &&
			in_host "$h" systemctl reload serfd || rc=$?
		;;
	upgrade)
		v=$(in_host "$h" dpkg-query -W -f='${Version}' serfd)
		if [[ $v == "$V1" ]]; then param=$V2; out=${DEB2##*/}; else param=$V1; out=${DEB##*/}; fi
		in_host "$h" dpkg -i "/root/$out" >"$WORK/dpkg-$h.out" 2>&1 || { rc=$?; cat "$WORK/dpkg-$h.out" >&2; }
		;;
	partition)
		v=$(veth_of "$h")
		ip -n "$NETNS" link set "$v" nomaster || rc=$?
		param=$(hold); sleep "$param"
		ip -n "$NETNS" link set "$v" master "$BR" || rc=$?
		;;
	oneway)
		net_in "$h" nft -f - <<-EOF || rc=$?
			table inet soak_oneway {
				chain in { type filter hook input priority 0; ip saddr $(ip_of "$peer") drop; }
			}
		EOF
		param=$(hold); sleep "$param"
		net_in "$h" nft delete table inet soak_oneway || rc=$?
		;;
	loss)
		v=$(shuf -i 10-30 -n 1)
		net_in "$h" nft -f - <<-EOF || rc=$?
			table inet soak_loss {
				chain in { type filter hook input priority 0; numgen random mod 100 < $v drop; }
				chain out { type filter hook output priority 0; numgen random mod 100 < $v drop; }
			}
		EOF
		note="${v}%"
		param=$(hold); sleep "$param"
		net_in "$h" nft delete table inet soak_loss || rc=$?
		;;
	hang)
		put_handler "$h" soak-hang "$HANDLER_HANG" || rc=$?
		param=$(hold); sleep "$param"
		in_host "$h" rm -f /etc/serf/handlers.d/soak-hang || rc=$?
		;;
	journald) in_host "$h" systemctl restart systemd-journald || rc=$? ;;
	esac
	t1=$EPOCHREALTIME
	((rc == 0)) || note="${note#-},exit-$rc"
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$kind" "$h" "${peer:--}" "$param" "$t0" "$t1" "${note:--}" >>"$FAULTS"
	log "fault $kind $h${peer:+ -> $peer} ($param) $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')s ${note#-}"
	rm -f "$BUSY/$h" "$BUSY/${peer:-none}"
}

# free_hosts: hosts not under a fault, one a line.
free_hosts() { local h; for h in "${HOSTS[@]}"; do [[ -e $BUSY/$h ]] || echo "$h"; done; }

# active_faults: how many fault jobs still run (and forget the finished).
active_faults() {
	local n k=0
	for n in "${!BG[@]}"; do
		[[ $n == fault-* ]] || continue
		if exited "${BG[$n]}"; then wait "${BG[$n]}" 2>/dev/null || true; unset "BG[$n]"; else k=$((k + 1)); fi
	done
	echo "$k"
}

fault_loop() {
	local end=$1 i=0 kind h peer free
	mkdir -p "$BUSY"
	while ((SECONDS < end)); do
		sleep $((2 + RANDOM % 5))
		((SECONDS < end)) || break
		(($(active_faults) < MAX_FAULTS)) || continue
		mapfile -t free < <(free_hosts | shuf)
		kind=${KINDS[RANDOM % ${#KINDS[@]}]}
		((${#free[@]} >= 2)) || continue
		h=${free[0]} peer=
		[[ $kind == oneway ]] && peer=${free[1]}
		touch "$BUSY/$h"; [[ -n $peer ]] && touch "$BUSY/$peer"
		i=$((i + 1))
		fault "$kind" "$h" "$peer" &
		BG[fault-$i]=$!
	done
	while (($(active_faults) > 0)); do sleep 1; done
}

# heal_all: undo whatever a fault may have left; start everything.
heal_all() {
	local h v
	for h in "${HOSTS[@]}"; do
		net_in "$h" nft delete table inet soak_oneway 2>/dev/null || true
		net_in "$h" nft delete table inet soak_loss 2>/dev/null || true
		v=$(veth_of "$h") && ip -n "$NETNS" link set "$v" master "$BR" 2>/dev/null || true
		in_host "$h" rm -f /etc/serf/handlers.d/soak-hang
		in_host "$h" systemctl start serfd.socket serfd || log "$h: could not start serfd"
	done
}

collect() {
	local h
	for h in "${HOSTS[@]}"; do
		cp "$WORK/$h/var/lib/serfd/soak-events.log" "$OUT/runs/$h.log" 2>/dev/null || : >"$OUT/runs/$h.log"
		[[ -e $WORK/$h/var/lib/serfd/soak-hang.log ]] && cp "$WORK/$h/var/lib/serfd/soak-hang.log" "$OUT/hang/$h.log"
		in_host "$h" journalctl -q --no-pager -o json \
			--output-fields=MESSAGE,MESSAGE_ID,UNIT,_SYSTEMD_UNIT,_TRANSPORT,SERF_EVENT,SERF_USER_EVENT,SERF_LTIME,HANDLER,EXIT_STATUS,SIGNAL,TIMED_OUT,DURATION_MS,N_DROPPED \
			_SYSTEMD_UNIT=serfd.service + UNIT=serfd.service + _TRANSPORT=driver >"$OUT/journal/$h.json" ||
			log "$h: could not export the journal"
	done
}

# --- run -----------------------------------------------------------------------
START=$SECONDS
log "work dir $WORK, netns $NETNS, results $OUT, packages $V1 and $V2, ${DURATION}s of load"
bring_up || die "the hosts did not come up"
log "hosts up after $((SECONDS - START))s"
for h in "${HOSTS[@]}"; do setup_host "$h" || die "$h: could not install and start serfd"; done
HOSTS_ARG=$(hosts_arg)
"$SOAK" converged -hosts "$HOSTS_ARG" -timeout 60s >&2 || die "the cluster did not form"

"$SOAK" watch -hosts "$HOSTS_ARG" -out "$OUT/members.jsonl" &
BG[watch]=$!
"$SOAK" gen -hosts "$HOSTS_ARG" -events "$OUT/events.jsonl" -queries "$OUT/queries.jsonl" &
BG[gen]=$!
LOAD_START=$SECONDS
fault_loop $((SECONDS + DURATION))
kill -TERM "${BG[gen]}"
wait "${BG[gen]}" || log "the generator failed"
unset 'BG[gen]'
log "load and faults stopped after $((SECONDS - LOAD_START))s; healing everything"
heal_all
printf '%s\t-\t-\t-\t%s\t%s\t-\n' final-heal "$EPOCHREALTIME" "$EPOCHREALTIME" >>"$FAULTS"
HEALED=$SECONDS
"$SOAK" converged -hosts "$HOSTS_ARG" -timeout 60s >&2 || log "not converged 60s after the final heal"
LOGS=()
for h in "${HOSTS[@]}"; do LOGS+=("$h=$WORK/$h/var/lib/serfd/soak-events.log"); done
"$SOAK" drain -events "$OUT/events.jsonl" -logs "$(IFS=,; echo "${LOGS[*]}")" -timeout 120s -quiet 20s >&2 ||
	log "could not wait for the handlers' logs to drain"
# The watcher sees at least StuckAfter (30 s) past the final heal.
while ((SECONDS < HEALED + 35)); do sleep 1; done
kill -TERM "${BG[watch]}"
wait "${BG[watch]}" || log "the watcher failed"
unset 'BG[watch]'
collect
log "soak took $((SECONDS - START))s; results in $OUT"
rc=0
"$SOAK" check -dir "$OUT" -hosts "$(IFS=,; echo "${HOSTS[*]}")" | tee "$OUT/report.txt" || rc=${PIPESTATUS[0]}
exit "$rc"

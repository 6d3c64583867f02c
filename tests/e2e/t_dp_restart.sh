#!/bin/bash
# t_dp_restart.sh — a data-plane crash, restart or upgrade breaks no session.
# rcptgate-dp inline (net_af_packet; net_af_xdp with the XDP program when
# RESTART_DRIVER=af_xdp, as t_dp_restart_xdp.sh runs it) in front of a real
# Postfix; many
# concurrent sessions (tests/e2e/smtp_sessions.py in the client namespace),
# each sending several pipelined transactions with pauses, every one with an
# invalid recipient the engine answers itself (edits in force), so every
# session spans the disruption.  Three cases, each with fresh sessions:
#   kill9     kill -9 rcptgate-dp once every session has done a transaction,
#             start it again within a second;
#   upgrade   a second build started beside it with --takeover, then SIGTERM
#             to the running one: the new one takes ports and flows over
#             (the gap is measured and logged);
#   delay5    kill -9, start again after 5 s (TCP rides it out).
# Each case: every session completes (no reset, no failed reply), every
# message is delivered exactly once to each valid recipient, byte-identical,
# no invalid recipient reaches the destination, the data plane reset no flow
# (flows_reset, flows_adopt_reset) and took the flows over (flows_adopted).
# With XDP, the program stays attached after kill -9 and bypasses SMTP frames
# to the peer port (fail-open) while no data plane runs: frames of the flows
# with offsets must be held back instead (smtp_held, at least one in delay5),
# then the program is detached (rg-xdp detach --keep-pins) for the restarted
# data plane's own, as t_xdp_dp.sh does.
# Environment: RG_RESTART_SESSIONS (default 300), RG_RESTART_TXNS (3),
# RG_DP_BIN2 (the second build for "upgrade"; default: a copy of the
# binary), RG_RESTART_CASES ("kill9 upgrade delay5").  Against a build
# without the feature (no --takeover) the upgrade case is a plain restart,
# and the test reports what broke (the baseline).  Bounded: ~40 s with the defaults (300 sessions), ~3 min against a build without the feature (every session times out).
source "$(dirname "$0")/lib.sh"
e2e_init dpr
source "$(dirname "$0")/dp_lib.sh"
DRIVER=${RESTART_DRIVER:-af_packet}
if [[ $DRIVER == af_xdp ]]; then
	source "$(dirname "$0")/xdp_lib.sh"
	xdp_init
fi

N=${RG_RESTART_SESSIONS:-300}
K=${RG_RESTART_TXNS:-3}
CASES=${RG_RESTART_CASES:-kill9 upgrade delay5}
VALID="alice bob carol dave erin"
INVALID="nosuch1 nosuch2 ghost dictionary spam1"
SESS=$RG_SRC/tests/e2e/smtp_sessions.py
# sessions start spread over one pause: whenever the data plane goes, some
# are in the middle of a transaction and others between two
RAMP=$(awk -v n="$N" 'BEGIN { printf "%.4f", 2.0 / n }')
D=$DP_DOMAIN

dp_hugepages
e2e_testbed_up
if [[ $DRIVER == af_xdp ]]; then
	xdp_gro_on
	xdp_detach_at_exit "$TB_C_ROOT"
	xdp_detach_at_exit "$TB_S_ROOT"
fi
e2e_defer rm -f "$DP_SHM" "$DP_SHM.dp-state" "$DP_SHM.dp-state.new"
"$DP_SHMTOOL" create "$DP_SHM" 4 >/dev/null
"$DP_SHMTOOL" domain "$DP_SHM" "$D" callout pass >/dev/null
users=()
for a in $VALID; do
	"$DP_SHMTOOL" put "$DP_SHM" "$a@$D" valid >/dev/null
	users+=("$a@$D")
done
for a in $INVALID; do "$DP_SHMTOOL" put "$DP_SHM" "$a@$D" invalid >/dev/null; done
e2e_users "$E2E_TMP/users" "${users[@]}"
# the destination takes every session at once from the one client address
e2e_postfix dest dest-reject --users "$E2E_TMP/users" \
	--set smtpd_client_connection_count_limit=0 --set default_process_limit=$((2 * N + 50)) \
	--set smtpd_timeout=30s \
	--set smtpd_client_connection_rate_limit=0 --set smtpd_client_message_rate_limit=0

BIN2=${RG_DP_BIN2:-}
if [[ -z $BIN2 ]]; then
	BIN2=$E2E_TMP/rcptgate-dp-copy
	cp "$DP_BIN" "$BIN2"
	e2e_log "second build for the upgrade: a copy of $DP_BIN (set RG_DP_BIN2 for another build)"
fi
TAKEOVER=0
grep -aq -- "--takeover: waiting" "$DP_BIN" && TAKEOVER=1
((TAKEOVER)) || e2e_log "BASELINE: $DP_BIN has no --takeover (no state file): restarts are plain"

# dp_run LABEL BIN PREFIX [options]: rcptgate-dp over net_af_packet, in the
# background; sets RUN_PID.  Waits for "running" only.
RUN_PID=
dp_run() {
	local label=$1 bin=$2 prefix=$3
	shift 3
	local vdevs=(--vdev "net_af_packet0,iface=$TB_C_ROOT" --vdev "net_af_packet1,iface=$TB_S_ROOT")
	[[ $DRIVER == af_xdp ]] && vdevs=(--vdev "net_af_xdp0,iface=$TB_C_ROOT,xdp_prog=$XDP_OBJ"
		--vdev "net_af_xdp1,iface=$TB_S_ROOT,xdp_prog=$XDP_OBJ")
	rm -rf "/var/run/dpdk/$prefix"
	e2e_bg "$label" "$bin" -l 0-1 --no-pci --file-prefix "$prefix" -m 256 \
		--log-level lib.eal:warning "${vdevs[@]}" -- --shm "$DP_SHM" --pair 0:1 "$@"
	RUN_PID=$E2E_BG_PID
	e2e_defer bash -c "rm -rf /var/run/dpdk/$prefix /dev/hugepages/${prefix}map_*"
}

wait_running() {
	e2e_wait_for 20 "rcptgate-dp running ($1)" grep -q 'rcptgate-dp: running' "$E2E_TMP/$1.log"
	if [[ $DRIVER == af_xdp ]]; then
		# the program DPDK attached: peers (fail-open bypass) and pins
		xdp_rgx adopt "$TB_C_ROOT" --peer "$TB_S_ROOT" >/dev/null
		xdp_rgx adopt "$TB_S_ROOT" --peer "$TB_C_ROOT" >/dev/null
	fi
}

# held: frames the XDP programs held back (0 without XDP)
xdp_sum() { # COUNTER over both ports (0 where the program has no such counter)
	local a b
	a=$(xdp_ctr "$TB_C_ROOT" "$1") b=$(xdp_ctr "$TB_S_ROOT" "$1")
	echo $((${a:-0} + ${b:-0}))
}
held() { if [[ $DRIVER == af_xdp ]]; then xdp_sum smtp_held; else echo 0; fi; }
bypassed() { if [[ $DRIVER == af_xdp ]]; then xdp_sum smtp_bypass; else echo 0; fi; }

# ctr NAME: a data-plane counter (the file's counters carry over restarts).
ctr() { "$DP_SHMTOOL" stats "$DP_SHM" "$1"; }

# wait_progress DIR N: until all N sessions have done their first
# transaction (the first ones are in their second by then).
wait_progress() {
	e2e_wait_for 60 "$2 sessions through their first transaction" \
		bash -c "[[ \$(grep -c ' 0\$' '$1/progress') -ge $2 ]]"
}

FAILS=()
fail_case() { FAILS+=("$1: $2"); e2e_log "CASE FAILED: $1: $2"; }

dp_run dp-0 "$DP_BIN" "$E2E_NAME"
wait_running dp-0
e2e_wait_for 10 "a TCP connection through rcptgate-dp" e2e_tcp_connects "$TB_S_ADDR" 25 2
CUR=$RUN_PID
gen=0
for c in $CASES; do
	gen=$((gen + 1))
	out=$E2E_TMP/sess-$c
	reset0=$(ctr flows_reset)
	areset0=$(ctr flows_adopt_reset 2>/dev/null || echo 0)
	adopted0=$(ctr flows_adopted 2>/dev/null || echo 0)
	rej0=$(ctr rcpt_rejected)
	e2e_log "---- case $c: $N sessions x $K transactions"
	# (in an if: a failing client is a finding of this case, not an error)
	if e2e_in_client /usr/bin/python3 "$SESS" run --server "$TB_S_ADDR" --sessions "$N" \
		--txns "$K" --pause 2 --ramp "$RAMP" --timeout 30 --domain "$D" --valid "${VALID// /,}" \
		--invalid "${INVALID// /,}" --out "$out" >"$E2E_TMP/client-$c.log" 2>&1; then
		:
	fi &
	cpid=$!
	wait_progress "$out" "$N"
	case $c in
	kill9 | delay5)
		kill -KILL "$CUR"
		wait "$CUR" 2>/dev/null || true
		t0=${EPOCHREALTIME/./}
		if [[ $c == delay5 ]]; then sleep 5; else sleep 0.3; fi
		if [[ $DRIVER == af_xdp ]]; then
			h=$(held) b=$(bypassed)
			e2e_log "$c: while away, the XDP programs held back $h SMTP frames, bypassed $b"
			[[ $c == delay5 ]] && ((h == 0)) && fail_case "$c" "no frame held back in 5 s"
			echo "$c held=$h bypassed=$b" >>"$E2E_TMP/xdp-held"
			xdp_rgx detach "$TB_C_ROOT" --keep-pins >/dev/null
			xdp_rgx detach "$TB_S_ROOT" --keep-pins >/dev/null
		fi
		dp_run "dp-$gen" "$DP_BIN" "$E2E_NAME"
		CUR=$RUN_PID
		wait_running "dp-$gen"
		e2e_log "$c: killed, running again after $(((${EPOCHREALTIME/./} - t0) / 1000)) ms"
		;;
	upgrade)
		if ((TAKEOVER)); then
			dp_run "dp-$gen" "$BIN2" "${E2E_NAME}u$gen" --takeover
			e2e_wait_for 20 "the second build waiting" grep -q -- '--takeover: waiting' \
				"$E2E_TMP/dp-$gen.log"
			t0=${EPOCHREALTIME/./}
			kill -TERM "$CUR"
			while ! grep -q 'rcptgate-dp: running' "$E2E_TMP/dp-$gen.log"; do
				(((${EPOCHREALTIME/./} - t0) < 20000000)) || break
				sleep 0.01
			done
			gap=$(((${EPOCHREALTIME/./} - t0) / 1000))
			wait "$CUR" 2>/dev/null || true
			e2e_log "upgrade: SIGTERM to the running one -> the new build running in $gap ms"
			echo "$gap" >"$E2E_TMP/upgrade-gap-ms"
		else
			kill -TERM "$CUR"
			wait "$CUR" 2>/dev/null || true
			dp_run "dp-$gen" "$BIN2" "$E2E_NAME"
		fi
		CUR=$RUN_PID
		wait_running "dp-$gen"
		grep -h 'build\|took over\|state' "$E2E_TMP/dp-$gen.log" >&2 || true
		;;
	esac
	wait "$cpid" || true
	res=$(grep -m1 '^RESULT' "$E2E_TMP/client-$c.log" || echo "no RESULT")
	e2e_log "$c: client $res"
	if [[ $res != "RESULT ok=$N failed=0 "* ]]; then
		grep -v '^RESULT' "$E2E_TMP/client-$c.log" | sed 's/^s[0-9]*: //' | sort | uniq -c |
			sort -rn | head -5 >&2
		fail_case "$c" "sessions broken: $res"
	fi
	# deliveries: exactly once each, byte-identical
	e2e_wait_queue_empty dest 60
	sleep 1
	if ! /usr/bin/python3 "$SESS" check --out "$out" --maildir-root "$(e2e_pf_dir dest)/mail" \
		--domain "$D" >"$E2E_TMP/check-$c.log" 2>&1; then
		fail_case "$c" "deliveries: $(tail -1 "$E2E_TMP/check-$c.log")"
	fi
	e2e_log "$c: $(tail -1 "$E2E_TMP/check-$c.log")"
	# clear the mailboxes for the next case
	rm -f "$(e2e_pf_dir dest)"/mail/"$D"/*/new/*
	r=$(($(ctr flows_reset) - reset0))
	((r == 0)) || fail_case "$c" "$r flows reset by the data plane"
	if ((TAKEOVER)); then
		ar=$(($(ctr flows_adopt_reset) - areset0))
		ad=$(($(ctr flows_adopted) - adopted0))
		((ar == 0)) || fail_case "$c" "$ar flows reset at the take-over"
		((ad >= N)) || fail_case "$c" "only $ad flows taken over (expected >= $N)"
		e2e_log "$c: flows_adopted +$ad, flows_adopt_reset +$ar, flows_reset +$r"
	fi
	e2e_log "$c: rcpt_rejected +$(($(ctr rcpt_rejected) - rej0))"
done

# the destination never saw an invalid recipient (its own 550 text absent)
if grep -qE "nosuch|ghost|dictionary|spam1" "$(e2e_pf_log dest)"; then
	fail_case all "an invalid recipient reached the destination"
fi
# nor lost a session (the start-up probes connect and close: "after CONNECT")
lost=$(grep 'lost connection' "$(e2e_pf_log dest)" | grep -vc 'after CONNECT' || true)
((lost == 0)) || fail_case all "the destination lost $lost sessions"
((${#FAILS[@]} == 0)) || e2e_fail "$(printf '%s; ' "${FAILS[@]}")"
e2e_pass

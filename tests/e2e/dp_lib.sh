# dp_lib.sh — helpers of the rcptgate-dp end-to-end tests (t_dp_*.sh), on top
# of lib.sh (sourced after it; not a test itself): the table preloaded with
# rg-shmtool as rcptgated would have it, a Postfix destination that rejects
# unknown users itself (so its text, "... in virtual mailbox table", tells a
# leak from the filter's answer), rcptgate-dp between the two root-side veth
# ends over net_af_packet or net_af_xdp, its counters.

DP_DOMAIN=example.test
DP_FILTER_TEXT="Recipient address rejected: User unknown"
DP_POSTFIX_TEXT="User unknown in virtual mailbox table"
DP_SHMTOOL=$(e2e_bin dataplane/rg-shmtool)
DP_BIN=$(e2e_bin dataplane/rcptgate-dp)
DP_SHM=/dev/shm/$E2E_NAME
DP_PID=
DP_LABEL=

dp_hugepages() {
	if [[ $(</proc/sys/vm/nr_hugepages) -lt 512 ]]; then
		echo 512 >/proc/sys/vm/nr_hugepages
	fi
	grep -q ' /dev/hugepages hugetlbfs ' /proc/mounts ||
		{ mkdir -p /dev/hugepages && mount -t hugetlbfs nodev /dev/hugepages; }
	e2e_assert_ge "free hugepages" 128 "$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)"
}

# dp_world "VALID..." "INVALID...": testbed, table, destination Postfix "dest"
# whose users are the valid local parts.
dp_world() {
	local valid=$1 invalid=$2 a users=()
	dp_hugepages
	e2e_testbed_up
	e2e_defer rm -f "$DP_SHM"
	"$DP_SHMTOOL" create "$DP_SHM" 4 >/dev/null
	"$DP_SHMTOOL" domain "$DP_SHM" "$DP_DOMAIN" callout pass >/dev/null
	for a in $valid; do
		"$DP_SHMTOOL" put "$DP_SHM" "$a@$DP_DOMAIN" valid >/dev/null
		users+=("$a@$DP_DOMAIN")
	done
	for a in $invalid; do
		"$DP_SHMTOOL" put "$DP_SHM" "$a@$DP_DOMAIN" invalid >/dev/null
	done
	e2e_users "$E2E_TMP/users" "${users[@]}"
	e2e_postfix dest dest-reject --users "$E2E_TMP/users"
}

# dp_start LABEL DRIVER [rcptgate-dp options]: af_packet or af_xdp (DPDK's
# default XDP program); waits until a TCP connection passes through it.
# RG_DP_ARGS adds options (e.g. --no-engine, to see the tests fail);
# RG_DP_LCORES replaces "-l 0-1" (e.g. "--lcores 0@0,1@0,2@1": two workers,
# software dispatch between them).
dp_start() {
	local label=$1 driver=$2 vdevs=()
	shift 2
	case $driver in
	af_packet) vdevs=(--vdev "net_af_packet0,iface=$TB_C_ROOT" --vdev "net_af_packet1,iface=$TB_S_ROOT") ;;
	af_xdp) vdevs=(--vdev "net_af_xdp0,iface=$TB_C_ROOT" --vdev "net_af_xdp1,iface=$TB_S_ROOT") ;;
	*) e2e_fail "dp_start: unknown driver '$driver'" ;;
	esac
	rm -rf "/var/run/dpdk/$E2E_NAME"
	e2e_bg "$label" "$DP_BIN" ${RG_DP_LCORES:--l 0-1} --no-pci --file-prefix "$E2E_NAME" -m 256 \
		--log-level lib.eal:warning "${vdevs[@]}" -- --shm "$DP_SHM" --pair 0:1 "$@" ${RG_DP_ARGS:-}
	DP_PID=$E2E_BG_PID
	DP_LABEL=$label
	e2e_defer bash -c "rm -rf /var/run/dpdk/$E2E_NAME /dev/hugepages/${E2E_NAME}map_*"
	e2e_wait_for 15 "rcptgate-dp running ($label)" grep -q 'rcptgate-dp: running' "$E2E_TMP/$label.log"
	e2e_wait_for 10 "a TCP connection through rcptgate-dp ($label)" e2e_tcp_connects "$TB_S_ADDR" 25 2
}

# dp_stop: SIGTERM; it must exit 0 within 5 s with ports closed.
dp_stop() {
	local i rc=0
	kill -TERM "$DP_PID"
	for i in $(seq 1 50); do
		kill -0 "$DP_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$DP_PID" 2>/dev/null && e2e_fail "rcptgate-dp ($DP_LABEL) still running 5 s after SIGTERM"
	wait "$DP_PID" || rc=$?
	e2e_assert_eq "rcptgate-dp ($DP_LABEL) exit status on SIGTERM" 0 "$rc"
	e2e_assert_grep "clean shutdown ($DP_LABEL)" 'ports stopped and closed' "$E2E_TMP/$DP_LABEL.log"
	DP_PID=
}

# dp_stat COUNTER: summed over the data plane's lcores.
dp_stat() { "$DP_SHMTOOL" stats "$DP_SHM" "$1"; }

# dp_assert_filtered TRANSCRIPT ADDR: the filter (not the destination) refused ADDR.
dp_assert_filtered() {
	e2e_assert_grep "filter's 550 for $2" "550 5.1.1 <$2>: $DP_FILTER_TEXT\r?$" "$1"
	e2e_assert_no_grep "destination's own 550 for $2" "<$2>: .*$DP_POSTFIX_TEXT" "$1"
}

# ---------------------------------------------------------------- hostile clients
# The t_dp_hostile_*.sh tests run many cases against one data plane; each case
# is checked in full and its failures are collected, so that one run names
# every case that fails and what was seen (dp_case_fail), then dp_cases_end
# fails the test listing them all. Clients: tests/e2e/craft.py (see its header).

DP_CRAFT=$RG_SRC/tests/e2e/craft.py
DP_CASE_FAILS=()
DP_CASE_NAMES=()
DP_STEP_MS=150	# bound on any step of a kernel-TCP session (see docs/TESTBED.md)
DP_CRAFT_PORTS=61000-61999	# source ports of crafted flows (the kernel's frames dropped)

# dp_case_fail CASE WHAT: record a failure of CASE (the test goes on). The
# dp_case_* checks return 0 either way (the tests run under set -e).
dp_case_fail() {
	DP_CASE_FAILS+=("$1: $2")
	e2e_log "CASE FAILED: $1: $2"
}

# dp_case_begin CASE: a case starts (for the summary).
dp_case_begin() {
	DP_CASE_NAMES+=("$1")
	e2e_log "---- case $1"
}

# dp_cases_end: one line per case, then FAIL listing every failed check.
dp_cases_end() {
	local c f bad n=0
	{
		echo "---- cases of $E2E_NAME"
		for c in "${DP_CASE_NAMES[@]}"; do
			bad=0
			for f in "${DP_CASE_FAILS[@]}"; do
				[[ $f == "$c: "* ]] && bad=1
			done
			if ((bad)); then echo "  FAIL  $c"; n=$((n + 1)); else echo "  ok    $c"; fi
		done
	} >&2
	[[ ${#DP_CASE_FAILS[@]} -eq 0 ]] && return 0
	printf '  - %s\n' "${DP_CASE_FAILS[@]}" >&2
	e2e_fail "$n of ${#DP_CASE_NAMES[@]} cases failed: $(printf '%s; ' "${DP_CASE_FAILS[@]}")"
}

# dp_craft OUT ARGS...: craft.py in the client namespace, transcript in
# $E2E_TMP/OUT; returns its exit code (0: "RESULT ok").
dp_craft() {
	local out=$E2E_TMP/$1; shift
	e2e_in_client /usr/bin/python3 "$DP_CRAFT" "$@" >"$out" 2>&1
}

# dp_craft_result OUT: the transcript's RESULT line (or why there is none).
dp_craft_result() {
	grep -m1 '^RESULT' "$E2E_TMP/$1" 2>/dev/null || echo "no RESULT line (craft.py died: $(tail -1 "$E2E_TMP/$1" 2>/dev/null))"
}

# dp_craft_setup: scapy present; the client namespace's kernel leaves the
# crafted flows' ports alone (it would answer their frames with RSTs).
dp_craft_setup() {
	/usr/bin/python3 -c 'import scapy.all' 2>/dev/null ||
		e2e_skip "python3-scapy is not installed for /usr/bin/python3 (scripts/setup installs it)"
	ip netns exec "$TB_C_NS" sysctl -qw net.ipv4.ip_local_reserved_ports="$DP_CRAFT_PORTS"
	ip netns exec "$TB_C_NS" nft -f - <<-EOT
		table inet rgcraft {
			chain out { type filter hook output priority 0; policy accept;
				tcp sport $DP_CRAFT_PORTS counter drop
			}
		}
	EOT
}

# dp_case_session CASE OUT: the kernel-TCP session of OUT ended with "RESULT ok"
# (completed, every step under DP_STEP_MS).
dp_case_session() {
	e2e_log "$1: $(dp_craft_result "$2")"
	grep -q '^RESULT ok' "$E2E_TMP/$2" && return 0
	dp_case_fail "$1" "session: $(dp_craft_result "$2") (load average $(cut -d' ' -f1-3 /proc/loadavg))"
	return 0
}

# dp_case_filtered CASE OUT ADDR: the client got the filter's 550 for ADDR.
dp_case_filtered() {
	grep -qE "^<- 550 5.1.1 <$3>: $DP_FILTER_TEXT\r?$" "$E2E_TMP/$2" && return 0
	local seen
	seen=$(grep -m1 -E "^<- [0-9]{3} .*<$3>" "$E2E_TMP/$2" | cut -c1-120 || true)
	dp_case_fail "$1" "no filter 550 for $3 (client saw: ${seen:-no reply naming it})"
}

# dp_case_no_leak CASE INST LOCALPART...: INST's log never names LOCALPART@domain.
dp_case_no_leak() {
	local c=$1 inst=$2 lp hit; shift 2
	for lp in "$@"; do
		hit=$(grep -m1 -F "<$lp@$DP_DOMAIN>" "$(e2e_pf_log "$inst")" 2>/dev/null | cut -c1-200 || true)
		[[ -z $hit ]] || dp_case_fail "$c" "invalid recipient $lp@$DP_DOMAIN reached the destination ($inst's log: $hit)"
	done
}

# dp_case_delivered CASE INST ADDR TOKEN EML [TIMEOUT]: exactly one message
# carrying TOKEN reached ADDR, its body byte-identical to EML.
dp_case_delivered() {
	local c=$1 inst=$2 addr=$3 tok=$4 eml=$5 t=${6:-20} d files end
	d=$(e2e_maildir "$inst" "$addr")
	end=$((SECONDS + t))
	while :; do
		mapfile -t files < <(grep -lF -- "$tok" "$d"/* 2>/dev/null || true)
		((${#files[@]} > 0 || SECONDS >= end)) && break
		sleep 0.2
	done
	if [[ ${#files[@]} -ne 1 ]]; then
		dp_case_fail "$c" "message $tok: ${#files[@]} copies delivered to $addr (expected 1)"
		return 0
	fi
	if ! cmp -s <(e2e_body "$eml") <(e2e_body "${files[0]}"); then
		dp_case_fail "$c" "message $tok delivered to $addr differs from what was sent ($({ cmp <(e2e_body "$eml") <(e2e_body "${files[0]}") 2>&1 || true; } | head -1))"
		return 0
	fi
}

# dp_case_alive CASE: rcptgate-dp still runs and still passes a connection;
# if it died, no later case can say anything: fail now.
dp_case_alive() {
	local st=0
	if ! kill -0 "$DP_PID" 2>/dev/null; then
		wait "$DP_PID" 2>/dev/null || st=$?
		((st > 128)) && st="$st (signal $((st - 128)): $(kill -l $((st - 128)) 2>/dev/null))"
		dp_case_fail "$1" "rcptgate-dp ($DP_LABEL) died during the case, exit status $st; see $E2E_TMP/$DP_LABEL.log"
		dp_cases_end
	fi
	e2e_tcp_connects "$TB_S_ADDR" 25 3 || dp_case_fail "$1" "no TCP connection through rcptgate-dp after the case"
}

# dp_case_counters: the data plane's counters that tell how a hostile case was
# handled (logged: a failing case's reader wants them)
dp_case_counters() {
	local n out=
	for n in rcpt_rejected retrans ooo_segs ooo_limit bad_csum seg_unacceptable pin_rewrite \
		pin_overrun held_acked own_retx injected inject_retx inject_giveup rst_ignored \
		flows_reused flows_reset failopen out_full tx_drop dispatch_drop mbuf_alloc_fail; do
		out+=" $n $(dp_stat "$n" 2>/dev/null || echo '?')"
	done
	e2e_log "counters ($DP_LABEL):$out"
}

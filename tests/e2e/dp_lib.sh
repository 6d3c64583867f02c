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

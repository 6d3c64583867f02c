# xdp_lib.sh — what the XDP end-to-end tests (t_xdp_*.sh) share on top of
# lib.sh (sourced, bash; not a test itself): bpffs, a pin directory of the
# run, rg-xdp with its teardown, the program's counters and blocklist, and
# rcptgate-dp over net_af_xdp with the program loaded by DPDK (xdp_prog=).
#
# Needs lib.sh sourced and e2e_init called first.

XDP_RGX=$(e2e_bin bpf/rg-xdp)
XDP_OBJ=$RG_BUILD/bpf/rg_xdp.bpf.o
[[ -f $XDP_OBJ ]] || e2e_fail "$XDP_OBJ is missing: build it first (ninja -C $RG_BUILD)"
XDP_PIN=/sys/fs/bpf/rgx-e2e-$E2E_NAME
XDP_DP_PID=

# bpffs where the maps are pinned; the directory of this run goes at exit.
xdp_init() {
	grep -q ' /sys/fs/bpf bpf ' /proc/mounts || mount -t bpf bpf /sys/fs/bpf
	e2e_defer rmdir "$XDP_PIN"
}

# xdp_gro_on: a frame redirected to a veth is taken in by its peer through
# NAPI, which veth runs only with GRO (or an XDP program) on that peer: here
# the namespace ends, where the peer-port redirects arrive.
xdp_gro_on() {
	e2e_in_client ethtool -K "$TB_NS_DEV" gro on >/dev/null
	e2e_in_server ethtool -K "$TB_NS_DEV" gro on >/dev/null
}

# xdp_rgx VERB ARGS...: rg-xdp on this run's pins.
xdp_rgx() { "$XDP_RGX" "$@" --pin-root "$XDP_PIN"; }

# xdp_detach_at_exit IFACE: detach and unpin at exit, whatever happened.
xdp_detach_at_exit() { e2e_defer "$XDP_RGX" detach "$1" --pin-root "$XDP_PIN"; }

# xdp_ctr IFACE NAME: one counter of the program on IFACE.
xdp_ctr() { xdp_rgx stats "$1" | awk -v n="$2" '$1 == n {print $2}'; }

# xdp_hits IFACE PREFIX: hits of a blocklist entry ("" when absent).
xdp_hits() { xdp_rgx blocks | awk -v d="$1" -v p="$2" '$1 == d && $2 == p {print $4}'; }

# xdp_dp_start LABEL SHM [rcptgate-dp options]: rcptgate-dp over net_af_xdp on
# both root ends with the XDP program loaded by DPDK; waits for "running".
# Sets XDP_DP_PID; its output goes to $E2E_TMP/LABEL.log.
xdp_dp_start() {
	local label=$1 shm=$2
	shift 2
	rm -rf "/var/run/dpdk/$E2E_NAME"
	e2e_bg "$label" "$(e2e_bin dataplane/rcptgate-dp)" -l 0-1 --no-pci \
		--file-prefix "$E2E_NAME" -m 256 --log-level lib.eal:warning \
		--vdev "net_af_xdp0,iface=$TB_C_ROOT,xdp_prog=$XDP_OBJ" \
		--vdev "net_af_xdp1,iface=$TB_S_ROOT,xdp_prog=$XDP_OBJ" \
		-- --shm "$shm" --pair 0:1 "$@"
	XDP_DP_PID=$E2E_BG_PID
	e2e_defer bash -c "rm -rf /var/run/dpdk/$E2E_NAME /dev/hugepages/${E2E_NAME}map_*"
	e2e_wait_for 15 "rcptgate-dp running ($label)" grep -q 'rcptgate-dp: running' \
		"$E2E_TMP/$label.log"
}

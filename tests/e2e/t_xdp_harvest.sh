#!/bin/bash
# t_xdp_harvest.sh — directory-harvest protection end to end: rcptgated owns
# the shared memory (a closed-list domain, harvest_threshold 20) and follows
# the XDP ports pinned under its xdp_pin_dir; rcptgate-dp runs over
# net_af_xdp with the program loaded by DPDK (xdp_prog=) and adopted with
# rg-xdp.  A harvesting client (200 random recipients) is answered
# "421 4.7.0 Too many invalid recipients" by the data plane; rcptgated blocks
# its /32 in the XDP maps and logs it; its next connection attempt is dropped
# at XDP (the entry's hits rise), while a legitimate client on another address
# of the same /24 still delivers.  Bounded: ~60 s.
source "$(dirname "$0")/lib.sh"
e2e_init xh
source "$(dirname "$0")/xdp_lib.sh"
xdp_init
DOMAIN=example.test
THRESHOLD=20
SHM=/dev/shm/$E2E_NAME

if [[ $(</proc/sys/vm/nr_hugepages) -lt 512 ]]; then
	echo 512 >/proc/sys/vm/nr_hugepages
fi
grep -q ' /dev/hugepages hugetlbfs ' /proc/mounts ||
	{ mkdir -p /dev/hugepages && mount -t hugetlbfs nodev /dev/hugepages; }

e2e_testbed_up
xdp_gro_on
LEGIT=${TB_C_ADDR%.*}.5		# the legitimate client: same /24 as the harvester
e2e_in_client ip addr add "$LEGIT/24" dev "$TB_NS_DEV"
e2e_users "$E2E_TMP/users" "alice@$DOMAIN"
e2e_postfix dest dest-reject --users "$E2E_TMP/users"

mkdir -p "$E2E_TMP/store"
cat >"$E2E_TMP/rcptgated.conf" <<EOF
[global]
shm_path = $SHM
store_path = $E2E_TMP/store
control_socket = $E2E_TMP/ctl.sock
xdp_pin_dir = $XDP_PIN
block_ttl = 300
block_ttl_max = 600

[domain $DOMAIN]
mode = list
list = $E2E_TMP/users
destination = $TB_S_ADDR:25
harvest_threshold = $THRESHOLD
accept_all_probe = no
EOF
e2e_defer rm -f "$SHM"
e2e_bg rcptgated "$(e2e_bin control/rcptgated)" -c "$E2E_TMP/rcptgated.conf" -e
GD_PID=$E2E_BG_PID
e2e_wait_for 10 "rcptgated started" grep -q 'started' "$E2E_TMP/rcptgated.log"

xdp_detach_at_exit "$TB_C_ROOT"
xdp_detach_at_exit "$TB_S_ROOT"
xdp_dp_start dp "$SHM"
xdp_rgx adopt "$TB_C_ROOT" --peer "$TB_S_ROOT" >/dev/null
xdp_rgx adopt "$TB_S_ROOT" --peer "$TB_C_ROOT" >/dev/null
e2e_wait_for 10 "a TCP connection through rcptgate-dp" e2e_tcp_connects "$TB_S_ADDR" 25 2
e2e_wait_for 5 "rcptgated managing $TB_C_ROOT" \
	grep -q "xdp: managing $TB_C_ROOT" "$E2E_TMP/rcptgated.log"
e2e_alive "$GD_PID" rcptgated

send_from() { # ID SOURCE RCPT-LIST [swaks options]: swaks' status
	local id=$1 src=$2 to=$3
	shift 3
	e2e_swaks "$id.txt" --local-interface "$src" --helo client.test \
		--from sender@client.test --to "$to" --header "X-RG-Test: $id" "$@"
}

# 1. the harvester: 200 random recipients in one session
rcpts=$(for i in $(seq 1 200); do printf 'h%03d%05d@%s,' "$i" "$RANDOM" "$DOMAIN"; done)
send_from harvest "$TB_C_ADDR" "${rcpts%,}" || true
e2e_assert_grep "harvester's transcript" '421 4.7.0 Too many invalid recipients' \
	"$E2E_TMP/harvest.txt"
e2e_log "harvester answered 421 after $(grep -c '<\*\* *550 5.1.1' "$E2E_TMP/harvest.txt" || true) rejections"

# 2. rcptgated blocks its /32 in the XDP maps, and says so
e2e_wait_for 5 "$TB_C_ADDR/32 in the blocklist" \
	bash -c "'$XDP_RGX' blocks --pin-root '$XDP_PIN' | grep -q '^$TB_C_ROOT $TB_C_ADDR/32 '"
e2e_assert_grep "rcptgated's log" "harvest from $TB_C_ADDR .*blocked $TB_C_ADDR/32 for 300s" \
	"$E2E_TMP/rcptgated.log"
e2e_log "rcptgated: $(grep -m1 -o "harvest from $TB_C_ADDR .*" "$E2E_TMP/rcptgated.log")"

# 3. its next attempt is dropped at XDP
if send_from again "$TB_C_ADDR" "alice@$DOMAIN" --timeout 5; then
	e2e_fail "the blocked harvester reached the server (see $E2E_TMP/again.txt)"
fi
hits=$(xdp_hits "$TB_C_ROOT" "$TB_C_ADDR/32")
e2e_log "harvester's SYNs dropped at XDP: hits ${hits:-none}"
e2e_assert_ge "hits on $TB_C_ADDR/32" 1 "${hits:-0}"

# 4. a legitimate client next to it delivers
send_from legit "$LEGIT" "alice@$DOMAIN" || e2e_fail "legitimate client failed"
e2e_wait_delivered dest "alice@$DOMAIN" 1
e2e_log "legitimate client $LEGIT delivered"
e2e_alive "$GD_PID" rcptgated
e2e_pass

#!/bin/bash
# t_xdp_dp.sh — rcptgate-dp over net_af_xdp with the XDP program loaded by
# DPDK itself (xdp_prog=), in front of a real Postfix, the recipient table
# preloaded with rg-shmtool: SMTP reaches the data plane through the AF_XDP
# sockets and an invalid recipient gets the filter's 550; `kill -9` of
# rcptgate-dp leaves the program attached with no socket bound, and new
# sessions still reach the destination through the fail-open bypass
# (unfiltered: Postfix answers the invalid recipient itself); after `rg-xdp
# detach --keep-pins`, a restarted rcptgate-dp and `rg-xdp adopt`, filtering
# resumes with the peers and the blocklist carried over; a clean stop of
# rcptgate-dp detaches the program.  Bounded: ~90 s.
source "$(dirname "$0")/lib.sh"
e2e_init xd
source "$(dirname "$0")/xdp_lib.sh"
xdp_init
DOMAIN=example.test
FILTER_TEXT="Recipient address rejected: User unknown"
POSTFIX_TEXT="User unknown in virtual mailbox table"
SHMTOOL=$(e2e_bin dataplane/rg-shmtool)
SHM=/dev/shm/$E2E_NAME

if [[ $(</proc/sys/vm/nr_hugepages) -lt 512 ]]; then
	echo 512 >/proc/sys/vm/nr_hugepages
fi
grep -q ' /dev/hugepages hugetlbfs ' /proc/mounts ||
	{ mkdir -p /dev/hugepages && mount -t hugetlbfs nodev /dev/hugepages; }

e2e_testbed_up
xdp_gro_on
e2e_users "$E2E_TMP/users" "alice@$DOMAIN"
e2e_postfix dest dest-reject --users "$E2E_TMP/users"

e2e_defer rm -f "$SHM"
"$SHMTOOL" create "$SHM" 4 >/dev/null
"$SHMTOOL" domain "$SHM" "$DOMAIN" callout pass >/dev/null
"$SHMTOOL" put "$SHM" "alice@$DOMAIN" valid >/dev/null
for a in nosuch1 nosuch2 nosuch3; do
	"$SHMTOOL" put "$SHM" "$a@$DOMAIN" invalid >/dev/null
done

xdp_detach_at_exit "$TB_C_ROOT"
xdp_detach_at_exit "$TB_S_ROOT"

send() { # ID RCPT-LIST
	e2e_swaks "$1.txt" --helo client.test --from sender@client.test --to "$2" \
		--header "X-RG-Test: $1" --timeout 10 || true
}
connects() { e2e_tcp_connects "$TB_S_ADDR" 25 2; }

# 1. filtering through the AF_XDP sockets
xdp_dp_start dp1 "$SHM"
xdp_rgx adopt "$TB_C_ROOT" --peer "$TB_S_ROOT" >/dev/null
xdp_rgx adopt "$TB_S_ROOT" --peer "$TB_C_ROOT" >/dev/null
e2e_assert_grep "rg-xdp status" "^$TB_C_ROOT: attached, peer $TB_S_ROOT" <(xdp_rgx status)
e2e_wait_for 10 "a TCP connection through rcptgate-dp" connects
send f1 "alice@$DOMAIN,nosuch1@$DOMAIN"
e2e_assert_grep "f1: filter's 550" "550 5.1.1 <nosuch1@$DOMAIN>: $FILTER_TEXT" "$E2E_TMP/f1.txt"
e2e_wait_delivered dest "alice@$DOMAIN" 1
xsk1=$(xdp_ctr "$TB_C_ROOT" smtp_xsk)
e2e_log "filtering: smtp_xsk=$xsk1 smtp_bypass=$(xdp_ctr "$TB_C_ROOT" smtp_bypass) other_peer=$(xdp_ctr "$TB_C_ROOT" other_peer) (client port)"
e2e_assert_ge "smtp_xsk (client port)" 1 "$xsk1"
e2e_assert_eq "smtp_bypass while the data plane runs" 0 "$(xdp_ctr "$TB_C_ROOT" smtp_bypass)"

# 2. kill -9: the program stays, no socket is bound, mail flows unfiltered
xdp_rgx block 198.18.255.0/24
kill -KILL "$XDP_DP_PID"
e2e_wait_for 5 "rcptgate-dp gone" bash -c "! kill -0 $XDP_DP_PID"
ip -d link show dev "$TB_C_ROOT" | grep -q 'prog/xdp id' || e2e_fail "program gone after kill -9"
send b1 "alice@$DOMAIN,nosuch2@$DOMAIN"
e2e_assert_grep "b1: the destination answers nosuch2 itself" "$POSTFIX_TEXT" "$E2E_TMP/b1.txt"
e2e_wait_delivered dest "alice@$DOMAIN" 2
byp=$(xdp_ctr "$TB_C_ROOT" smtp_bypass)
e2e_log "after kill -9: delivered through the bypass, smtp_bypass=$byp (client port)"
e2e_assert_ge "smtp_bypass after kill -9" 1 "$byp"

# 3. restart: detach keeping the pins, start, adopt carrying the state over
xdp_rgx detach "$TB_C_ROOT" --keep-pins >/dev/null
xdp_rgx detach "$TB_S_ROOT" --keep-pins >/dev/null
xdp_dp_start dp2 "$SHM"
xdp_rgx adopt "$TB_C_ROOT" >/dev/null
xdp_rgx adopt "$TB_S_ROOT" >/dev/null
e2e_assert_grep "peer carried over" "^$TB_C_ROOT: attached, peer $TB_S_ROOT" <(xdp_rgx status)
e2e_assert_grep "blocklist carried over" "^$TB_C_ROOT 198\.18\.255\.0/24 " <(xdp_rgx blocks)
e2e_assert_eq "smtp_bypass of the new program" 0 "$(xdp_ctr "$TB_C_ROOT" smtp_bypass)"
e2e_wait_for 10 "a TCP connection through the restarted rcptgate-dp" connects
send f2 "alice@$DOMAIN,nosuch3@$DOMAIN"
e2e_assert_grep "f2: filter's 550" "550 5.1.1 <nosuch3@$DOMAIN>: $FILTER_TEXT" "$E2E_TMP/f2.txt"
e2e_wait_delivered dest "alice@$DOMAIN" 3
e2e_log "restarted: filtering again, smtp_xsk=$(xdp_ctr "$TB_C_ROOT" smtp_xsk) (client port)"

# 4. a clean stop: DPDK's af_xdp detaches the program on close
kill -TERM "$XDP_DP_PID"
e2e_wait_for 10 "rcptgate-dp stopped" bash -c "! kill -0 $XDP_DP_PID"
e2e_assert_grep "clean shutdown" 'ports stopped and closed' "$E2E_TMP/dp2.log"
if ip -d link show dev "$TB_C_ROOT" | grep -q 'prog/xdp'; then
	e2e_fail "program left after a clean stop"
fi
e2e_assert_grep "stale pins reported" "^$TB_C_ROOT: NOT attached" <(xdp_rgx status)
e2e_log "clean stop: program detached by rcptgate-dp; pins left for rg-xdp detach"
e2e_pass

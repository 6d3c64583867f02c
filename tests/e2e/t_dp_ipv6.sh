#!/bin/bash
# t_dp_ipv6.sh — rcptgate-dp filters SMTP over IPv6 as over IPv4 (net_af_packet):
# a pipelined swaks session to the destination's IPv6 address gets the
# filter's 550 for the invalid recipient, the valid one is delivered
# byte-identical, the destination never sees the invalid one; neighbour
# discovery is bridged.  Bounded: ~30 s.
source "$(dirname "$0")/lib.sh"
e2e_init dp6
source "$(dirname "$0")/dp_lib.sh"

dp_hugepages
e2e_testbed_up --v6
e2e_defer rm -f "$DP_SHM"
D=$DP_DOMAIN
"$DP_SHMTOOL" create "$DP_SHM" 4 >/dev/null
"$DP_SHMTOOL" domain "$DP_SHM" "$D" callout pass >/dev/null
"$DP_SHMTOOL" put "$DP_SHM" "alice@$D" valid >/dev/null
"$DP_SHMTOOL" put "$DP_SHM" "nosuch6@$D" invalid >/dev/null
e2e_users "$E2E_TMP/users" "alice@$D"
e2e_postfix dest dest-reject --users "$E2E_TMP/users" --addr "$TB_S_ADDR" --addr "$TB_S_ADDR6"

dp_start dp af_packet
e2e_wait_for 10 "a TCP connection over IPv6" e2e_tcp_connects "$TB_S_ADDR6" 25 2
e2e_make_message "$E2E_TMP/v6.eml" "ipv6-session" 4
e2e_swaks v6.txt --server "[$TB_S_ADDR6]:25" --pipeline --helo client.test \
	--from sender@client.test --to "nosuch6@$D,alice@$D" --data "@$E2E_TMP/v6.eml" || true
e2e_assert_grep "session over IPv6" "Connected to $TB_S_ADDR6" "$E2E_TMP/v6.txt"
dp_assert_filtered "$E2E_TMP/v6.txt" "nosuch6@$D"
e2e_assert_grep "IPv6: queued" '250 2.0.0 Ok: queued' "$E2E_TMP/v6.txt"
e2e_wait_delivered dest "alice@$D" 1
e2e_assert_same_body "$E2E_TMP/v6.eml" "$(e2e_find_mail dest "alice@$D" "ipv6-session")"
e2e_assert_no_log dest "nosuch6"
e2e_assert_eq "rcpt_rejected" 1 "$(dp_stat rcpt_rejected)"
dp_stop
e2e_pass

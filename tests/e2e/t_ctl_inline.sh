#!/bin/bash
# The whole system inline, with rcptgated (not a preloaded table) deciding:
# rcptgated owns the shared memory (it runs on the inside, in the server
# namespace, and verifies by callout against a Plesk-like Postfix);
# rcptgate-dp bridges client and server over net_af_packet. Domain in callout
# mode with the "defer" miss policy:
#   1. an unknown recipient is first deferred by the data plane (450 4.7.1) while
#      rcptgated verifies it, then refused by the data plane itself (550 5.1.1)
#      without reaching Postfix; rcptgated logs the refusal in Postfix's shape;
#   2. a valid recipient is deferred once, then delivered;
#   3. rcptgated is killed with -9: the data plane keeps refusing from the table;
#      rcptgated restarts, re-attaches the same file and answers again.
source "$(dirname "$0")/lib.sh"
e2e_init ctli
source "$(dirname "$0")/dp_lib.sh"
RCPTGATED=$(e2e_bin control/rcptgated)
D=$DP_DOMAIN

dp_hugepages
e2e_testbed_up
e2e_users "$E2E_TMP/users" "alice@$D" "bob@$D"
e2e_postfix dest dest-reject --users "$E2E_TMP/users"
e2e_defer rm -f "$DP_SHM"

cat >"$E2E_TMP/rcptgated.conf" <<CONF
[global]
shm_path = $DP_SHM
store_path = $E2E_TMP/store
control_socket = $E2E_TMP/ctl.sock
shm_max_lcores = 4
table_init_log2 = 10
table_max_log2 = 16
log_stderr = yes

[domain $D]
destination = $TB_S_ADDR:25
miss_policy = defer
CONF

start_gated() {
	e2e_bg "rcptgated$1" ip netns exec "$TB_S_NS" "$RCPTGATED" -c "$E2E_TMP/rcptgated.conf"
	GATED_PID=$E2E_BG_PID
	e2e_wait_for 10 "rcptgated$1 started" grep -q 'rcptgated .* started' "$E2E_TMP/rcptgated$1.log"
}
start_gated 1
dp_start dp af_packet

# 1. an unknown recipient
rc=0
e2e_swaks u1.txt --helo client.test --from sender@client.test --to "nosuch@$D" || rc=$?
e2e_assert_grep "first answer: deferred by the filter" "^<\*\* +450 4\.7\.1 <nosuch@$D>" "$E2E_TMP/u1.txt"
e2e_wait_for 10 "rcptgated's verdict for nosuch" \
	grep -q "callout: <nosuch@$D>: invalid" "$E2E_TMP/rcptgated1.log"
rc=0
e2e_swaks u2.txt --helo client.test --from sender@client.test --to "nosuch@$D" || rc=$?
dp_assert_filtered "$E2E_TMP/u2.txt" "nosuch@$D"
e2e_assert_eq "Postfix never saw a client RCPT for nosuch (only rcptgated's probe, from <>)" 0 \
	"$(e2e_log_count dest "reject: RCPT from unknown\[$TB_C_ADDR\].*<nosuch@$D>")"
e2e_wait_for 5 "the refusal logged by rcptgated" grep -q \
	"NOQUEUE: reject: RCPT from unknown\[$TB_C_ADDR\]: 550 5\.1\.1 <nosuch@$D>: Recipient address rejected: User unknown; from=<sender@client.test> to=<nosuch@$D> proto=ESMTP helo=<client.test>" \
	"$E2E_TMP/rcptgated1.log"

# 2. a valid recipient: deferred while verified, then delivered
e2e_make_message "$E2E_TMP/m1.eml" "tok-$E2E_NAME-alice" 4
rc=0
e2e_swaks a1.txt --helo client.test --from sender@client.test --to "alice@$D" --data "@$E2E_TMP/m1.eml" || rc=$?
e2e_assert_grep "first answer for alice: deferred" "^<\*\* +450 4\.7\.1 <alice@$D>" "$E2E_TMP/a1.txt"
e2e_wait_for 10 "rcptgated's verdict for alice" grep -q "callout: <alice@$D>: valid" "$E2E_TMP/rcptgated1.log"
e2e_swaks a2.txt --helo client.test --from sender@client.test --to "alice@$D" --data "@$E2E_TMP/m1.eml" ||
	e2e_fail "second attempt to alice failed (see $E2E_TMP/a2.txt)"
e2e_wait_delivered dest "alice@$D" 1 30
e2e_assert_same_body "$E2E_TMP/m1.eml" "$(e2e_find_mail dest "alice@$D" "tok-$E2E_NAME-alice")"

# 3. rcptgated dies; the data plane keeps serving the table
kill -9 "$GATED_PID"
rc=0
e2e_swaks u3.txt --helo client.test --from sender@client.test --to "nosuch@$D" || rc=$?
dp_assert_filtered "$E2E_TMP/u3.txt" "nosuch@$D"
start_gated 2
e2e_assert_grep "restart re-attaches the data plane's file" "shared memory $DP_SHM re-attached" \
	"$E2E_TMP/rcptgated2.log"
rc=0
e2e_swaks u4.txt --helo client.test --from sender@client.test --to "nosuch@$D" || rc=$?
dp_assert_filtered "$E2E_TMP/u4.txt" "nosuch@$D"
e2e_wait_for 5 "refusals logged after the restart" grep -q "NOQUEUE: reject: .*<nosuch@$D>" \
	"$E2E_TMP/rcptgated2.log"
e2e_alive "$DP_PID" dp
e2e_pass

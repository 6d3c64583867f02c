#!/bin/bash
# Soft and dry-run modes inline: rcptgated owns the shared memory, rcptgate-dp
# bridges client and server over net_af_packet, the destination is a
# Plesk-like Postfix that knows alice and bob.
#   1. reject_code = 450: an address known invalid is refused by the data
#      plane with 450 4.1.1 (the sender will retry), never reaching Postfix;
#      rcptgated logs the 450 in Postfix's shape;
#   2. action = warn (after a reload): an address known invalid is forwarded
#      (here alice, set invalid by hand: Postfix accepts her, the client sees
#      250 and the mail is delivered); rcptgated logs the refusal it did not
#      make as Postfix's warn_if_reject does ("reject_warning") and counts it
#      apart (warnings), while the data plane refused nothing.
source "$(dirname "$0")/lib.sh"
e2e_init ctlm
source "$(dirname "$0")/dp_lib.sh"
RCPTGATED=$(e2e_bin control/rcptgated)
RCPTCTL=$(e2e_bin control/rcptctl)
D=$DP_DOMAIN

dp_hugepages
e2e_testbed_up
e2e_users "$E2E_TMP/users" "alice@$D" "bob@$D"
e2e_postfix dest dest-reject --users "$E2E_TMP/users"
e2e_defer rm -f "$DP_SHM"

write_conf() {
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
miss_policy = pass
$1
CONF
}
ctl() { "$RCPTCTL" --socket "$E2E_TMP/ctl.sock" "$@"; }

write_conf "reject_code = 450"
e2e_bg rcptgated ip netns exec "$TB_S_NS" "$RCPTGATED" -c "$E2E_TMP/rcptgated.conf"
e2e_wait_for 10 "rcptgated started" grep -q 'rcptgated .* started' "$E2E_TMP/rcptgated.log"
dp_start dp af_packet

# 1. reject_code = 450
ctl set "ghost@$D" invalid --ttl 1h >/dev/null
rc=0
e2e_swaks g1.txt --helo client.test --from sender@client.test --to "ghost@$D" || rc=$?
e2e_assert_grep "the filter's 450 4.1.1" "^<\*\* +450 4\.1\.1 <ghost@$D>: Recipient address rejected: User unknown" "$E2E_TMP/g1.txt"
e2e_assert_eq "Postfix never saw ghost" 0 "$(e2e_log_count dest "<ghost@$D>")"
e2e_wait_for 5 "the 450 logged by rcptgated" grep -q \
	"NOQUEUE: reject: RCPT from unknown\[$TB_C_ADDR\]: 450 4\.1\.1 <ghost@$D>: Recipient address rejected: User unknown; from=<sender@client.test>" \
	"$E2E_TMP/rcptgated.log"

# 2. action = warn
write_conf "action = warn"
ctl reload >/dev/null || e2e_fail "reload with action = warn refused"
ctl set "alice@$D" invalid --ttl 1h >/dev/null
e2e_make_message "$E2E_TMP/m1.eml" "tok-$E2E_NAME-alice" 2
rc=0
e2e_swaks a1.txt --helo client.test --from sender@client.test --to "alice@$D" --data "@$E2E_TMP/m1.eml" || rc=$?
e2e_assert_eq "swaks exit for alice in warn mode (delivered)" 0 "$rc"
e2e_assert_grep "the client sees Postfix's 250 for alice" "^<\*\* +250 |^<- +250 .*Ok" "$E2E_TMP/a1.txt"
e2e_wait_delivered dest "alice@$D" 1 30
e2e_wait_for 5 "the refusal not made logged by rcptgated" grep -q \
	"NOQUEUE: reject_warning: RCPT from unknown\[$TB_C_ADDR\]: 550 5\.1\.1 <alice@$D>: Recipient address rejected: User unknown; from=<sender@client.test>" \
	"$E2E_TMP/rcptgated.log"
e2e_assert_eq "warnings counted apart" 1 "$(ctl stats | awk '$1 == "daemon.warnings" {print $2}')"
e2e_assert_eq "no refusal logged for alice" 0 \
	"$(grep -c "NOQUEUE: reject: .*<alice@$D>" "$E2E_TMP/rcptgated.log" || true)"
e2e_alive "$DP_PID" dp
e2e_pass

#!/bin/bash
# Callouts against real Postfix instances in the server namespace:
#   - a destination that requires STARTTLS (smtpd_tls_security_level =
#     encrypt, a self-signed certificate): before STARTTLS it answers MAIL
#     with "530 5.7.0 Must issue a STARTTLS command first"; rcptgated goes
#     through STARTTLS (opportunistic by default) and gets real verdicts;
#   - listed first, a destination whose banner fails (smtpd_delay_reject = no
#     with smtpd_client_restrictions = reject: a 554 instead of the 220): the
#     session moves on to the next destination in the same round.
#   - tls = off: the 530 leaves the domain unverifiable (what happened to
#     every such destination before STARTTLS).
. "$(dirname "$0")/lib.sh"

e2e_init ctlt
e2e_testbed_up
RCPTGATED=$(e2e_bin control/rcptgated)
RCPTCTL=$(e2e_bin control/rcptctl)
D=tls.test

openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=mx.$D" \
	-keyout "$E2E_TMP/dest.key" -out "$E2E_TMP/dest.crt" 2>/dev/null ||
	e2e_fail "openssl req failed"
e2e_users "$E2E_TMP/users" "alice@$D" "bob@$D"
e2e_postfix tls dest-reject --users "$E2E_TMP/users" --port 2525 \
	--set "smtpd_tls_security_level=encrypt" \
	--set "smtpd_tls_cert_file=$E2E_TMP/dest.crt" \
	--set "smtpd_tls_key_file=$E2E_TMP/dest.key" \
	--set "smtpd_tls_loglevel=1"
# smtpd's TLS needs the tlsmgr service (entropy, session cache)
echo "tlsmgr    unix  -       -       n       1000?   1       tlsmgr" >>"$(e2e_pf_conf tls)/master.cf"
ip netns exec "$TB_S_NS" postfix -c "$(e2e_pf_conf tls)" reload >/dev/null 2>&1 ||
	e2e_fail "postfix reload (tlsmgr) failed"
e2e_postfix nobanner dest-reject --users "$E2E_TMP/users" --port 2526 \
	--set "smtpd_delay_reject=no" --set "smtpd_client_restrictions=reject"

write_conf() {
	cat >"$E2E_TMP/rcptgated.conf" <<CONF
[global]
shm_path = $E2E_TMP/shm
store_path = $E2E_TMP/store
control_socket = $E2E_TMP/ctl.sock
shm_max_lcores = 2
table_init_log2 = 10
table_max_log2 = 14
log_stderr = yes
accept_all_probe = no

[domain $D]
destination = $TB_S_ADDR:2526, $TB_S_ADDR:2525
$1
CONF
}
ctl() { "$RCPTCTL" --socket "$E2E_TMP/ctl.sock" "$@"; }
stat_of() { ctl stats | awk -v k="$1" '$1 == k {print $2}'; }

write_conf ""
e2e_defer rm -f "$E2E_TMP/shm"
e2e_bg rcptgated timeout -k 5 300 ip netns exec "$TB_S_NS" "$RCPTGATED" -c "$E2E_TMP/rcptgated.conf"
GATED=$E2E_BG_PID
e2e_wait_for 10 "rcptgated's control socket" test -S "$E2E_TMP/ctl.sock"

# 1. nosuch: the 554 banner, then STARTTLS at the second destination, then 550
rc=0; ctl verify "nosuch@$D" >"$E2E_TMP/v-nosuch.txt" || rc=$?
e2e_assert_eq "rcptctl verify exit for nosuch (1 = invalid)" 1 "$rc"
e2e_assert_grep "the failed banner in the transcript" "^S: 554 " "$E2E_TMP/v-nosuch.txt"
e2e_assert_grep "STARTTLS in the transcript" "^C: STARTTLS" "$E2E_TMP/v-nosuch.txt"
e2e_assert_grep "TLS established" "^-- TLS TLSv1" "$E2E_TMP/v-nosuch.txt"
e2e_assert_grep "the verdict over TLS" "^S: 550 5\.1\.1 <nosuch@$D>" "$E2E_TMP/v-nosuch.txt"
e2e_assert_grep "Postfix saw TLS" "TLS connection established from" "$(e2e_pf_log tls)"

# 2. alice, by the miss path (the policy check API through rcptctl lookup is
# cache-only: verify again, stored as valid)
rc=0; ctl verify "alice@$D" >"$E2E_TMP/v-alice.txt" || rc=$?
e2e_assert_eq "rcptctl verify exit for alice (0 = valid)" 0 "$rc"
e2e_assert_grep "alice over TLS" "^-- TLS TLSv1" "$E2E_TMP/v-alice.txt"
e2e_assert_eq "TLS sessions counted" 2 "$(stat_of daemon.callout_tls)"
e2e_assert_eq "greeting failures moved on" 2 "$(stat_of daemon.callout_greeting_next)"
ctl --json domains >"$E2E_TMP/domains.json"
e2e_assert_no_grep "domain not unverifiable" '"health":"unverifiable"' "$E2E_TMP/domains.json"

# 3. tls = off: the destination's 530 makes it unverifiable
write_conf "tls = off"
ctl reload >/dev/null || e2e_fail "reload refused"
rc=0; ctl verify "bob@$D" >"$E2E_TMP/v-bob.txt" || rc=$?
e2e_assert_eq "rcptctl verify exit for bob with tls = off (6 = undetermined)" 6 "$rc"
e2e_assert_grep "the 530" "^S: 530 5\.7\.0 Must issue a STARTTLS command first" "$E2E_TMP/v-bob.txt"
e2e_assert_no_grep "no STARTTLS with tls = off" "^C: STARTTLS" "$E2E_TMP/v-bob.txt"
e2e_alive "$GATED" rcptgated
e2e_pass

#!/bin/bash
# The testbed itself, with a plain kernel bridge between the root-side veth ends
# and no rcptgate: swaks in the client namespace reaches a Plesk-like Postfix
# (dest-reject) in the server namespace, over IPv4 and IPv6; a valid user's
# message arrives byte-identical; an unknown user gets Postfix's own 550 5.1.1.
. "$(dirname "$0")/lib.sh"

e2e_init tbbr
e2e_testbed_up --v6
e2e_bridge

e2e_users "$E2E_TMP/users" alice@example.test bob@example.test
e2e_postfix dest dest-reject --users "$E2E_TMP/users" --addr "$TB_S_ADDR" --addr "$TB_S_ADDR6"

# a valid recipient, IPv4
e2e_make_message "$E2E_TMP/m1.eml" "tok-$E2E_NAME-v4" 16
e2e_swaks v4.txt --to alice@example.test --from sender@client.test --data "@$E2E_TMP/m1.eml" ||
	e2e_fail "swaks to alice over IPv4 failed (see $E2E_TMP/v4.txt)"
e2e_assert_grep "swaks v4" '^<-  250 .*queued as' "$E2E_TMP/v4.txt"
e2e_wait_delivered dest alice@example.test 1 30
e2e_assert_same_body "$E2E_TMP/m1.eml" "$(e2e_find_mail dest alice@example.test "tok-$E2E_NAME-v4")"

# a valid recipient, IPv6
e2e_make_message "$E2E_TMP/m2.eml" "tok-$E2E_NAME-v6" 4
e2e_swaks v6.txt --server "$TB_S_ADDR6" --to bob@example.test --from sender@client.test \
	--data "@$E2E_TMP/m2.eml" || e2e_fail "swaks to bob over IPv6 failed (see $E2E_TMP/v6.txt)"
e2e_wait_delivered dest bob@example.test 1 30
e2e_assert_same_body "$E2E_TMP/m2.eml" "$(e2e_find_mail dest bob@example.test "tok-$E2E_NAME-v6")"
e2e_assert_log dest "client=unknown\[$TB_C_ADDR6\]"

# an unknown recipient: Postfix itself answers 550 5.1.1 at RCPT
rc=0
e2e_swaks unknown.txt --to nosuchuser@example.test --from sender@client.test || rc=$?
e2e_assert_eq "swaks exit code for an unknown user (24 = RCPT rejected)" 24 "$rc"
e2e_assert_grep "swaks unknown" '^<\*\* +550 5\.1\.1 <nosuchuser@example\.test>' "$E2E_TMP/unknown.txt"
e2e_assert_log dest 'NOQUEUE: reject: RCPT from unknown\[[0-9.]+\]: 550 5\.1\.1 <nosuchuser@example\.test>'

# a mix in one transaction: the valid one is delivered, the unknown one refused
e2e_make_message "$E2E_TMP/m3.eml" "tok-$E2E_NAME-mix" 2
rc=0
e2e_swaks mix.txt --to alice@example.test,ghost@example.test --from sender@client.test \
	--data "@$E2E_TMP/m3.eml" || rc=$?
e2e_assert_grep "swaks mix" '^<\*\* +550 5\.1\.1 <ghost@example\.test>' "$E2E_TMP/mix.txt"
e2e_assert_grep "swaks mix" '^<-  250 .*queued as' "$E2E_TMP/mix.txt"
e2e_wait_delivered dest alice@example.test 2 30
e2e_assert_same_body "$E2E_TMP/m3.eml" "$(e2e_find_mail dest alice@example.test "tok-$E2E_NAME-mix")"
e2e_assert_eq "messages delivered to ghost" 0 "$(e2e_mail_count dest ghost@example.test)"

e2e_pass

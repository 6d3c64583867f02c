#!/bin/bash
# The testbed with dpdk-testpmd io-forwarding (net_af_packet on both root-side veth
# ends) as the middle, the baseline rcptgate-dp is compared with: no path before
# testpmd runs; through it, a valid user's message arrives byte-identical and an
# unknown user gets Postfix's own 550 5.1.1; testpmd counted the frames.
. "$(dirname "$0")/lib.sh"

e2e_init tbpmd
e2e_require_cmd dpdk-testpmd
[[ -w /proc/sys/vm/nr_hugepages ]] || e2e_skip "cannot reserve hugepages (/proc/sys/vm/nr_hugepages read-only)"
e2e_testbed_up

e2e_users "$E2E_TMP/users" alice@example.test bob@example.test
e2e_postfix dest dest-reject --users "$E2E_TMP/users"

# nothing joins the two root ends yet: the server must be unreachable
if e2e_tcp_connects "$TB_S_ADDR" 25 3; then
	e2e_fail "server reachable with no middle: the testbed leaks"
fi

e2e_testpmd
e2e_wait_for 10 "a TCP path through testpmd" e2e_tcp_connects "$TB_S_ADDR" 25 2

e2e_make_message "$E2E_TMP/m1.eml" "tok-$E2E_NAME-1" 64
e2e_swaks ok.txt --to alice@example.test --from sender@client.test --data "@$E2E_TMP/m1.eml" ||
	e2e_fail "swaks to alice through testpmd failed (see $E2E_TMP/ok.txt)"
e2e_wait_delivered dest alice@example.test 1 30
e2e_assert_same_body "$E2E_TMP/m1.eml" "$(e2e_find_mail dest alice@example.test "tok-$E2E_NAME-1")"

rc=0
e2e_swaks unknown.txt --to nosuchuser@example.test --from sender@client.test || rc=$?
e2e_assert_eq "swaks exit code for an unknown user (24 = RCPT rejected)" 24 "$rc"
e2e_assert_grep "swaks unknown" '^<\*\* +550 5\.1\.1 <nosuchuser@example\.test>' "$E2E_TMP/unknown.txt"
e2e_assert_log dest 'NOQUEUE: reject: RCPT from unknown\[[0-9.]+\]: 550 5\.1\.1 <nosuchuser@example\.test>'

# testpmd prints its forwarding statistics when it stops
"$E2E_TESTBED" stop-testpmd "$E2E_NAME"
log=/run/rcptgate-testbed/$E2E_NAME/testpmd.log
fwd=$(awk '/Accumulated forward statistics/ { on = 1 } on && /TX-packets:/ { print $2; exit }' "$log")
e2e_assert_ge "frames testpmd forwarded" 20 "${fwd:-0}"
e2e_log "testpmd forwarded $fwd frames"
if e2e_tcp_connects "$TB_S_ADDR" 25 3; then
	e2e_fail "server still reachable after testpmd stopped"
fi

e2e_pass

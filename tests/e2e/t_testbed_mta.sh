#!/bin/bash
# The Postfix kinds the peer benchmark and the data-plane tests build on, through
# the kernel bridge: a sending MTA (client namespace) relays one message with
# valid and unknown recipients, pipelined, to a Postfix front line (server
# namespace, TB_S_ADDR) that refuses the unknown ones itself and relays the valid
# ones to a Plesk-like destination (TB_S_ADDR2); an accept-all destination takes
# any address of its domain.
. "$(dirname "$0")/lib.sh"

e2e_init tbmta
e2e_testbed_up
e2e_bridge
e2e_users "$E2E_TMP/users" alice@example.test bob@example.test
e2e_postfix dest dest-reject --users "$E2E_TMP/users" --addr "$TB_S_ADDR2"
e2e_postfix front frontline --users "$E2E_TMP/users"
e2e_postfix snd sender
e2e_postfix acc dest-acceptall --users "$E2E_TMP/users" --port 2525

e2e_make_message "$E2E_TMP/m.eml" "tok-$E2E_NAME" 8
e2e_sendmail snd sender@client.test alice@example.test ghost1@example.test bob@example.test \
	ghost2@example.test <"$E2E_TMP/m.eml"
e2e_wait_delivered dest alice@example.test 1 30
e2e_wait_delivered dest bob@example.test 1 30
e2e_assert_same_body "$E2E_TMP/m.eml" "$(e2e_find_mail dest alice@example.test "tok-$E2E_NAME")"
e2e_assert_same_body "$E2E_TMP/m.eml" "$(e2e_find_mail dest bob@example.test "tok-$E2E_NAME")"

# the sender saw the front line's 550 5.1.1 for each unknown recipient, and pipelined
snd_log=$(e2e_pf_log snd)
e2e_wait_for 20 "the sender's verdicts" grep -q 'to=<ghost2@example.test>.*status=bounced' "$snd_log"
for g in ghost1 ghost2; do
	e2e_assert_log snd "to=<$g@example\.test>, relay=$TB_S_ADDR\[$TB_S_ADDR\]:25, .*dsn=5\.1\.1, status=bounced .*550 5\.1\.1 <$g@example\.test>: Recipient address rejected: User unknown in relay recipient table"
	e2e_assert_log front "NOQUEUE: reject: RCPT from unknown\[$TB_C_ADDR\]: 550 5\.1\.1 <$g@example\.test>|reject: RCPT from unknown\[$TB_C_ADDR\]: 550 5\.1\.1 <$g@example\.test>"
	e2e_assert_no_log dest "$g@example\.test"
done
e2e_assert_log front "disconnect from unknown\[$TB_C_ADDR\] ehlo=1 mail=1 rcpt=2/4 data=1 quit=1"
e2e_assert_log snd "to=<alice@example\.test>, relay=$TB_S_ADDR\[$TB_S_ADDR\]:25, .*status=sent"

# accept-all: an address nobody created is accepted and lands in the catch-all
e2e_swaks acc.txt --server "$TB_S_ADDR:2525" --to "random-$RANDOM@example.test" --from sender@client.test ||
	e2e_fail "the accept-all destination refused a random address (see $E2E_TMP/acc.txt)"
e2e_wait_delivered acc _catchall@example.test 1 30
e2e_pass

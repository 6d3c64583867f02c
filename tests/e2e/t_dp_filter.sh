#!/bin/bash
# t_dp_filter.sh — rcptgate-dp inline in front of a real Postfix, the table
# preloaded, over net_af_packet and then net_af_xdp: invalid recipients get
# the filter's 550 5.1.1 (pipelined, not pipelined, and a transaction whose
# every recipient is invalid), never reach the destination (absent from its
# log); valid recipients are delivered once, bodies byte-identical; a Postfix
# sending MTA (it pipelines) sees the same; non-SMTP TCP is bridged; the
# counters agree; telemetry shows them; SIGTERM stops it cleanly.
# Bounded: ~90 s.
source "$(dirname "$0")/lib.sh"
e2e_init dpf
source "$(dirname "$0")/dp_lib.sh"

VALID="alice bob carol dave"
INVALID="nosuch1 nosuch2 nosuch3 ghost dictionary spam1 spam2"
dp_world "$VALID" "$INVALID"
e2e_postfix mta sender
D=$DP_DOMAIN

n=0
for driver in af_packet af_xdp; do
	n=$((n + 1))
	dp_start "dp-$driver" "$driver"
	rej0=$(dp_stat rcpt_rejected)

	# 1. pipelined: two valid, two invalid in one RCPT group
	e2e_make_message "$E2E_TMP/p$n.eml" "pipe-$driver" 8
	e2e_swaks "p$n.txt" --pipeline --helo client.test --from sender@client.test \
		--to "alice@$D,nosuch1@$D,bob@$D,nosuch2@$D" --data "@$E2E_TMP/p$n.eml" || true
	dp_assert_filtered "$E2E_TMP/p$n.txt" "nosuch1@$D"
	dp_assert_filtered "$E2E_TMP/p$n.txt" "nosuch2@$D"
	e2e_assert_grep "pipelined ($driver): queued" '250 2.0.0 Ok: queued' "$E2E_TMP/p$n.txt"

	# 2. not pipelined: one valid, one invalid
	e2e_make_message "$E2E_TMP/n$n.eml" "nopipe-$driver" 2
	e2e_swaks "n$n.txt" --helo client.test --from sender@client.test \
		--to "carol@$D,ghost@$D" --data "@$E2E_TMP/n$n.eml" || true
	dp_assert_filtered "$E2E_TMP/n$n.txt" "ghost@$D"
	e2e_assert_grep "non-pipelined ($driver): queued" '250 2.0.0 Ok: queued' "$E2E_TMP/n$n.txt"

	# 3. every recipient invalid: refused, no message, the session ends with 221
	e2e_swaks "a$n.txt" --pipeline --helo client.test --from sender@client.test \
		--to "nosuch3@$D,dictionary@$D" --header "X-RG-Test: allbad-$driver" || true
	dp_assert_filtered "$E2E_TMP/a$n.txt" "nosuch3@$D"
	dp_assert_filtered "$E2E_TMP/a$n.txt" "dictionary@$D"
	e2e_assert_no_grep "all-invalid ($driver): nothing queued" 'Ok: queued' "$E2E_TMP/a$n.txt"
	e2e_assert_grep "all-invalid ($driver): session closed" '<- +221' "$E2E_TMP/a$n.txt"

	# 4. a Postfix sending MTA: pipelines MAIL, RCPTs and DATA
	e2e_make_message "$E2E_TMP/m$n.eml" "mta-$driver" 4
	e2e_sendmail mta sender@client.test "dave@$D" "spam1@$D" "spam2@$D" <"$E2E_TMP/m$n.eml"
	e2e_wait_for 40 "sender MTA ($driver): a status for every recipient" bash -c \
		"[[ \$(grep -cE 'to=<(dave|spam1|spam2)@$D>.*status=(sent|bounced)' '$(e2e_pf_log mta)') -ge $((3 * n)) ]]"
	e2e_assert_grep "sender MTA ($driver): spam1 bounced by the filter" \
		"to=<spam1@$D>.*status=bounced.*550 5.1.1 <spam1@$D>: $DP_FILTER_TEXT \\(in reply to RCPT TO" "$(e2e_pf_log mta)"
	e2e_assert_grep "sender MTA ($driver): spam2 bounced by the filter" \
		"to=<spam2@$D>.*status=bounced.*550 5.1.1 <spam2@$D>: $DP_FILTER_TEXT \\(in reply to RCPT TO" "$(e2e_pf_log mta)"
	e2e_assert_grep "sender MTA ($driver): dave delivered" "to=<dave@$D>.*status=sent" "$(e2e_pf_log mta)"

	# 5. delivered once each, byte-identical
	e2e_wait_delivered dest "alice@$D" "$n"
	e2e_wait_delivered dest "bob@$D" "$n"
	e2e_wait_delivered dest "carol@$D" "$n"
	e2e_wait_delivered dest "dave@$D" "$n"
	e2e_assert_same_body "$E2E_TMP/p$n.eml" "$(e2e_find_mail dest "alice@$D" "pipe-$driver")"
	e2e_assert_same_body "$E2E_TMP/p$n.eml" "$(e2e_find_mail dest "bob@$D" "pipe-$driver")"
	e2e_assert_same_body "$E2E_TMP/n$n.eml" "$(e2e_find_mail dest "carol@$D" "nopipe-$driver")"
	e2e_assert_same_body "$E2E_TMP/m$n.eml" "$(e2e_find_mail dest "dave@$D" "mta-$driver")"

	# 6. the destination never saw an invalid recipient
	e2e_assert_no_log dest "nosuch|ghost|dictionary|spam1|spam2"

	# 7. non-SMTP TCP is bridged: a refused connection to another port comes back
	#    as a RST at once (no path would time out instead)
	b0=$(dp_stat bridged)
	rc=0
	e2e_in_client bash -c "exec 3<>/dev/tcp/$TB_S_ADDR/9" 2>/dev/null || rc=$?
	e2e_assert_eq "connection to port 9 refused at once ($driver)" 1 "$rc"
	e2e_assert_ge "frames bridged ($driver)" $((b0 + 2)) "$(dp_stat bridged)"

	# 8. counters and telemetry
	rej=$(($(dp_stat rcpt_rejected) - rej0))
	e2e_assert_eq "rcpt_rejected ($driver)" 7 "$rej"
	echo /rcptgate/stats | timeout 10 dpdk-telemetry.py -f "$E2E_NAME" >"$E2E_TMP/tel$n.txt" 2>&1 || true
	e2e_assert_grep "telemetry /rcptgate/stats ($driver)" '"rcpt_rejected": [0-9]+' "$E2E_TMP/tel$n.txt"
	e2e_log "$driver: rcpt_rejected +$rej, smtp_pkts $(dp_stat smtp_pkts), bridged $(dp_stat bridged), failopen $(dp_stat failopen)"
	dp_stop
done
e2e_pass

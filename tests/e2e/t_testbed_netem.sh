#!/bin/bash
# The testbed's impairment: with nftables dropping 3% and duplicating 1% of TCP
# packets at random in both namespaces, 50 smtp-source sessions through the
# kernel bridge all deliver exactly once, with the body of a reference message
# sent before the impairment; the impairment really happened.
. "$(dirname "$0")/lib.sh"

SESSIONS=50
PARALLEL=10

e2e_init tbnet
e2e_testbed_up
e2e_bridge
e2e_users "$E2E_TMP/users" alice@example.test
e2e_postfix dest dest-reject --users "$E2E_TMP/users"
src=(-l 8192 -M client.test -f sender@client.test -t alice@example.test "$TB_S_ADDR:25")

# the reference: one message on a clean path (smtp-source sends the same body
# every time; one message per session unless -d)
e2e_smtp_source -s 1 -m 1 "${src[@]}" || e2e_fail "smtp-source failed on a clean path"
e2e_wait_delivered dest alice@example.test 1 30
d=$(e2e_maildir dest alice@example.test)
ref=$(ls "$d"/*)
reflen=$(e2e_body "$ref" | wc -c)
e2e_assert_ge "reference body length" 7000 "$reflen"

e2e_netem 3 1
e2e_smtp_source -s "$PARALLEL" -m "$SESSIONS" "${src[@]}" ||
	e2e_fail "smtp-source reported an error under loss/duplication"
total=$((SESSIONS + 1))
e2e_wait_delivered dest alice@example.test "$total" 60
sleep 2	# a late duplicate delivery would show up now
e2e_assert_eq "messages delivered" "$total" "$(e2e_mail_count dest alice@example.test)"
e2e_assert_eq "sessions that sent a message" "$total" \
	"$(e2e_log_count dest 'disconnect from .* mail=1 rcpt=1 data=1 quit=1 commands=5')"
e2e_assert_eq "queue ids accepted" "$total" \
	"$(grep -E 'smtpd\[[0-9]+\]: [0-9A-F]+: client=' "$(e2e_pf_log dest)" | awk '{print $6}' | sort -u | wc -l)"
e2e_assert_eq "deliveries logged" "$total" "$(e2e_log_count dest 'status=sent \(delivered to maildir\)')"

# every body identical to the reference
bad=0
for f in "$d"/*; do
	cmp -s <(e2e_body "$ref") <(e2e_body "$f") || { bad=$((bad + 1)); echo "differs: $f" >&2; }
done
e2e_assert_eq "bodies differing from the reference ($reflen bytes)" 0 "$bad"

read -r dropped duplicated < <(e2e_netem_counts)
e2e_log "netem: $dropped packets dropped, $duplicated duplicated"
e2e_assert_ge "packets dropped by netem" 1 "$dropped"
e2e_assert_ge "packets duplicated by netem" 1 "$duplicated"

e2e_pass

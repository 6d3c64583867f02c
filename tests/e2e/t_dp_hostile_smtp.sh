#!/bin/bash
# t_dp_hostile_smtp.sh — SMTP the server accepts but a naive filter reads
# otherwise, through rcptgate-dp (net_af_packet) in front of real servers:
#  - AUTH to a Postfix without SASL, with MAIL, RCPTs and DATA pipelined behind
#    it: the server answers 503 and executes them, so the filter must parse them
#    and keep the replies in order (503, 250, the filter's 550, 250, 354);
#  - BDAT to servers that did not advertise CHUNKING: Postfix with CHUNKING
#    discarded (it answers 521 and hangs up) and smtp-sink (no CHUNKING at all:
#    500, then it reads the "chunk" as commands);
#  - each whitespace spelling Postfix's smtpd accepts: a leading space,
#    RCPT<TAB>TO:, TO:<TAB><addr>, a trailing TAB, two spaces, lower case; and a
#    valid recipient spelt with TABs, which must still be accepted.
# Each case: the filter answered the invalid recipient, the destination never
# saw it (Postfix's log, smtp-sink's dump), the valid message arrived
# byte-identical, no step waited for a TCP timer, the data plane is alive.
# Bounded: ~30 s.
source "$(dirname "$0")/lib.sh"
e2e_init dphm
source "$(dirname "$0")/dp_lib.sh"
e2e_require_cmd /usr/bin/python3 smtp-sink

D=$DP_DOMAIN
WS="xws01 xws02 xws03 xws04 xws05 xws06"
dp_world "alice bob" "xauth xbdat xsink $WS"
# a second Postfix with CHUNKING off, on the server's second address
e2e_postfix nochunk dest-reject --users "$E2E_TMP/users" --addr "$TB_S_ADDR2" \
	--set smtpd_discard_ehlo_keywords=chunking
# smtp-sink: no CHUNKING, BDAT is an unknown command; it dumps each message
# with an X-Rcpt-Args line per accepted recipient
SINK_DIR=$(mktemp -d "/tmp/rg-sink-$E2E_NAME.XXXXXX")
chmod 0777 "$SINK_DIR"
e2e_defer rm -rf "$SINK_DIR"
e2e_bg sink ip netns exec "$TB_S_NS" smtp-sink -u postfix -d "$SINK_DIR/%M%S." "$TB_S_ADDR2:2525" 10
e2e_wait_tcp "$TB_S_NS" "$TB_S_ADDR2" 2525
dp_start dp af_packet --smtp-ports 25,2525

smtp() { # OUT SERVER PORT STEP...
	local out=$1 srv=$2 port=$3
	shift 3
	dp_craft "$out" smtp --server "$srv" --port "$port" --max-step-ms "$DP_STEP_MS" \
		--step-timeout 4 "$@" || true
}

# ---- AUTH refused, commands pipelined behind it
c=auth-refused-pipelined
dp_case_begin "$c"
e2e_make_message "$E2E_TMP/$c.eml" "hm-$c-$E2E_NAME" 2
smtp "$c.txt" "$TB_S_ADDR" 25 'C:EHLO client.test' \
	"C:AUTH PLAIN AGFsaWNlAHdyb25n\r\nMAIL FROM:<sender@client.test>\r\nRCPT TO:<xauth@$D>\r\nRCPT TO:<alice@$D>\r\nDATA" \
	"B:$E2E_TMP/$c.eml" 'C:QUIT'
dp_case_session "$c" "$c.txt"
dp_case_filtered "$c" "$c.txt" "xauth@$D"
dp_case_no_leak "$c" dest xauth
# the five replies after AUTH, in order
codes=$(awk '/^-> AUTH/ { on = 1; next } on && /^<- [0-9][0-9][0-9] / { printf "%s ", $2; if (++n == 5) exit }' \
	"$E2E_TMP/$c.txt")
[[ $codes == "503 250 550 250 354 " ]] ||
	dp_case_fail "$c" "replies after AUTH in the order '${codes% }', expected '503 250 550 250 354'"
grep -q '^<- 250 2.0.0 Ok: queued' "$E2E_TMP/$c.txt" &&
	dp_case_delivered "$c" dest "alice@$D" "hm-$c-$E2E_NAME" "$E2E_TMP/$c.eml"
dp_case_alive "$c"

# ---- BDAT to Postfix with CHUNKING discarded: 521, the connection closes, and
#      nothing of the would-be chunk is executed
c=bdat-postfix-chunking-off
dp_case_begin "$c"
chunk="RCPT TO:<xbdat@$D>\r\n"
n=$(printf "$chunk" | wc -c)
smtp "$c.txt" "$TB_S_ADDR2" 25 'C:EHLO client.test' 'C:MAIL FROM:<sender@client.test>' \
	"C:RCPT TO:<alice@$D>" "R:1:BDAT $n LAST\r\n$chunk"
dp_case_session "$c" "$c.txt"
grep -q '^<- 250[ -]CHUNKING' "$E2E_TMP/$c.txt" && dp_case_fail "$c" "Postfix advertised CHUNKING"
grep -qE '^<- 521 ' "$E2E_TMP/$c.txt" ||
	dp_case_fail "$c" "no 521 from Postfix for BDAT (saw: $({ grep -A1 -m1 '^-> (raw)' "$E2E_TMP/$c.txt" || true; } | tail -1))"
dp_case_no_leak "$c" nochunk xbdat
dp_case_alive "$c"

# ---- BDAT to smtp-sink, which has no CHUNKING: "500 unknown command", then
#      it reads the "chunk" as a command
c=bdat-no-chunking-server
dp_case_begin "$c"
chunk="RCPT TO:<xsink@$D>\r\n"
n=$(printf "$chunk" | wc -c)
e2e_make_message "$E2E_TMP/$c.eml" "hm-$c-$E2E_NAME" 2
smtp "$c.txt" "$TB_S_ADDR2" 2525 'C:EHLO client.test' 'C:MAIL FROM:<sender@client.test>' \
	"C:RCPT TO:<alice@$D>" "R:2:BDAT $n LAST\r\n$chunk" 'C:DATA' "B:$E2E_TMP/$c.eml" 'C:QUIT'
dp_case_session "$c" "$c.txt"
grep -q '^<- 250[ -]CHUNKING' "$E2E_TMP/$c.txt" && dp_case_fail "$c" "smtp-sink advertised CHUNKING"
dp_case_filtered "$c" "$c.txt" "xsink@$D"
mapfile -t dumps < <(grep -lF "hm-$c-$E2E_NAME" "$SINK_DIR"/* 2>/dev/null || true)
if [[ ${#dumps[@]} -ne 1 ]]; then
	dp_case_fail "$c" "${#dumps[@]} copies of the message in smtp-sink's dump (expected 1)"
else
	hit=$(grep -m1 -F "<xsink@$D>" "${dumps[0]}" || true)
	[[ -z $hit ]] || dp_case_fail "$c" "invalid recipient xsink@$D reached smtp-sink (its dump: $hit)"
	grep -qF "X-Rcpt-Args: <alice@$D>" "${dumps[0]}" ||
		dp_case_fail "$c" "alice@$D missing from smtp-sink's dump"
	# smtp-sink ends each dump with an empty line of its own
	cmp -s <(e2e_body "$E2E_TMP/$c.eml") <(e2e_body "${dumps[0]}" | sed '$ { /^$/d }') ||
		dp_case_fail "$c" "the message smtp-sink received differs from what was sent"
fi
dp_case_alive "$c"

# ---- whitespace spellings (each accepted by Postfix's smtpd)
i=0
for sp in 'lead-space: RCPT TO:<%s>' 'RCPT-TAB-TO:RCPT\tTO:<%s>' 'TO-TAB-addr:RCPT TO:\t<%s>' \
	'trailing-TAB:RCPT TO:<%s>\t' 'two-spaces:RCPT  TO:<%s>' 'lower-case:rcpt to:<%s>'; do
	i=$((i + 1))
	c=ws-${sp%%:*}
	evil=xws0$i
	line=$(printf "${sp#*:}" "$evil@$D" | sed 's/\t/\\t/g')
	dp_case_begin "$c"
	e2e_make_message "$E2E_TMP/$c.eml" "hm-$c-$E2E_NAME" 1
	smtp "$c.txt" "$TB_S_ADDR" 25 'C:EHLO client.test' 'C:MAIL FROM:<sender@client.test>' \
		"C:$line" "C:RCPT TO:<alice@$D>" 'C:DATA' "B:$E2E_TMP/$c.eml" 'C:QUIT'
	dp_case_session "$c" "$c.txt"
	dp_case_filtered "$c" "$c.txt" "$evil@$D"
	dp_case_no_leak "$c" dest "$evil"
	grep -q '^<- 250 2.0.0 Ok: queued' "$E2E_TMP/$c.txt" &&
		dp_case_delivered "$c" dest "alice@$D" "hm-$c-$E2E_NAME" "$E2E_TMP/$c.eml"
	dp_case_alive "$c"
done

# a valid recipient spelt with TABs is accepted (not refused, not lost)
c=ws-valid-with-tabs
dp_case_begin "$c"
e2e_make_message "$E2E_TMP/$c.eml" "hm-$c-$E2E_NAME" 1
smtp "$c.txt" "$TB_S_ADDR" 25 'C:EHLO client.test' 'C:MAIL FROM:<sender@client.test>' \
	"C:RCPT\tTO:\t<bob@$D>\t" 'C:DATA' "B:$E2E_TMP/$c.eml" 'C:QUIT'
dp_case_session "$c" "$c.txt"
grep -q '^<- 250 2.1.5 Ok' "$E2E_TMP/$c.txt" ||
	dp_case_fail "$c" "RCPT<TAB>TO:<TAB><bob> not accepted: $({ grep -m1 -A1 '^-> RCPT' "$E2E_TMP/$c.txt" || true; } | tail -1)"
grep -q '^<- 250 2.0.0 Ok: queued' "$E2E_TMP/$c.txt" &&
	dp_case_delivered "$c" dest "bob@$D" "hm-$c-$E2E_NAME" "$E2E_TMP/$c.eml"
dp_case_alive "$c"
dp_case_counters
dp_stop
dp_cases_end
e2e_pass

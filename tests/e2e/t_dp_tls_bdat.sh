#!/bin/bash
# t_dp_tls_bdat.sh — sessions rcptgate-dp must pass intact, over net_af_packet
# and then net_af_xdp: a Postfix sending MTA that insists on STARTTLS (the
# flow turns opaque: the message is delivered byte-identical, the destination
# answers the recipients itself, nothing is filtered or broken), and a BDAT
# (CHUNKING, RFC 3030) session whose chunks carry lines that look like SMTP
# commands: the invalid recipient before them is refused by the filter, the
# chunks pass unparsed and the message arrives byte-identical.
# Bounded: ~60 s.
source "$(dirname "$0")/lib.sh"
e2e_init dpt
source "$(dirname "$0")/dp_lib.sh"
e2e_require_cmd openssl python3

openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=dest.rcptgate.test" \
	-keyout "$E2E_TMP/key.pem" -out "$E2E_TMP/cert.pem" >/dev/null 2>&1 ||
	e2e_fail "openssl could not make a test certificate"
dp_hugepages
e2e_testbed_up
e2e_defer rm -f "$DP_SHM"
D=$DP_DOMAIN
"$DP_SHMTOOL" create "$DP_SHM" 4 >/dev/null
"$DP_SHMTOOL" domain "$DP_SHM" "$D" callout pass >/dev/null
for a in alice bob; do "$DP_SHMTOOL" put "$DP_SHM" "$a@$D" valid >/dev/null; done
for a in nosuch1 nosuch2; do "$DP_SHMTOOL" put "$DP_SHM" "$a@$D" invalid >/dev/null; done
e2e_users "$E2E_TMP/users" "alice@$D" "bob@$D"
e2e_postfix dest dest-reject --users "$E2E_TMP/users" \
	--set smtpd_tls_security_level=may --set "smtpd_tls_cert_file=$E2E_TMP/cert.pem" \
	--set "smtpd_tls_key_file=$E2E_TMP/key.pem"
e2e_postfix mta sender --set smtp_tls_security_level=encrypt --set smtp_tls_loglevel=1
# TLS needs the tlsmgr service (session cache, entropy) in both instances
for inst in dest mta; do
	postconf -c "$(e2e_pf_conf $inst)" -M tlsmgr/unix='tlsmgr unix - - n 1000? 1 tlsmgr'
	"$E2E_POSTFIX" stop "$E2E_NAME-$inst" >/dev/null
	"$E2E_POSTFIX" start "$E2E_NAME-$inst" >/dev/null
done

# BDAT client: EHLO, pipelined MAIL/RCPT/RCPT, the message in two BDAT chunks
cat >"$E2E_TMP/bdat.py" <<'EOP'
import socket, sys
server, rcpt_ok, rcpt_bad, msgfile = sys.argv[1:5]
s = socket.create_connection((server, 25), timeout=20)
f = s.makefile('rb')
def reply():
    lines = []
    while True:
        l = f.readline().decode()
        if not l:
            raise SystemExit('connection closed')
        print('<- ' + l.rstrip('\r\n'))
        lines.append(l)
        if l[3:4] != '-':
            return lines
def send(b):
    for l in b.decode(errors='replace').split('\r\n')[:3]:
        if l:
            print('-> ' + l[:100])
    s.sendall(b)
reply()
send(b'EHLO client.test\r\n')
if not any('CHUNKING' in l for l in reply()):
    raise SystemExit('no CHUNKING')
send(b'MAIL FROM:<sender@client.test>\r\nRCPT TO:<%s>\r\nRCPT TO:<%s>\r\n' %
     (rcpt_bad.encode(), rcpt_ok.encode()))
for _ in range(3):
    reply()
msg = open(msgfile, 'rb').read().replace(b'\r\n', b'\n').replace(b'\n', b'\r\n')
if not msg.endswith(b'\r\n'):
    msg += b'\r\n'
cut = msg.index(b'RCPT TO:') + 4   # a chunk ends inside a command-like line
send(b'BDAT %d\r\n' % cut + msg[:cut])
reply()
send(b'BDAT %d LAST\r\n' % (len(msg) - cut) + msg[cut:])
reply()
send(b'QUIT\r\n')
reply()
EOP

round=0
for driver in af_packet af_xdp; do
	round=$((round + 1))
	dp_start "dp-$driver" "$driver"
	tls0=$(dp_stat starttls)
	rej0=$(dp_stat rcpt_rejected)

	# 1. STARTTLS through the data plane
	e2e_make_message "$E2E_TMP/tls$round.eml" "tls-$driver" 6
	e2e_sendmail mta sender@client.test "alice@$D" "nosuch2@$D" <"$E2E_TMP/tls$round.eml"
	e2e_wait_delivered dest "alice@$D" "$round" 30
	e2e_assert_same_body "$E2E_TMP/tls$round.eml" "$(e2e_find_mail dest "alice@$D" "tls-$driver")"
	e2e_wait_for 30 "a status for nosuch2 in the MTA's log ($driver)" bash -c \
		"[[ \$(grep -c 'to=<nosuch2@$D>.*status=bounced' '$(e2e_pf_log mta)') -ge $round ]]"
	e2e_assert_ge "TLS sessions in the MTA's log ($driver)" "$round" \
		"$(e2e_log_count mta "TLS connection established to .*$TB_S_ADDR")"
	# inside TLS the filter sees nothing: the destination refused nosuch2 itself
	e2e_assert_ge "nosuch2 refused by the destination ($driver)" "$round" \
		"$(e2e_log_count mta "to=<nosuch2@$D>.*$DP_POSTFIX_TEXT")"
	e2e_assert_ge "starttls counter ($driver)" $((tls0 + 1)) "$(dp_stat starttls)"

	# 2. BDAT
	e2e_make_message "$E2E_TMP/bdat$round.eml" "bdat-$driver" 6
	printf '\nRCPT TO:<nosuch1@%s>\nQUIT\nDATA\n' "$D" >>"$E2E_TMP/bdat$round.eml"
	e2e_in_client python3 "$E2E_TMP/bdat.py" "$TB_S_ADDR" "bob@$D" "nosuch1@$D" \
		"$E2E_TMP/bdat$round.eml" >"$E2E_TMP/bdat$round.txt" 2>&1 ||
		{ cat "$E2E_TMP/bdat$round.txt" >&2; e2e_fail "BDAT session failed ($driver)"; }
	dp_assert_filtered "$E2E_TMP/bdat$round.txt" "nosuch1@$D"
	e2e_assert_grep "BDAT LAST accepted ($driver)" '^<- 250 2.0.0 Ok: [0-9]+ bytes queued' "$E2E_TMP/bdat$round.txt"
	e2e_assert_grep "BDAT session closed ($driver)" '^<- 221' "$E2E_TMP/bdat$round.txt"
	e2e_wait_delivered dest "bob@$D" "$round" 30
	e2e_assert_same_body "$E2E_TMP/bdat$round.eml" "$(e2e_find_mail dest "bob@$D" "bdat-$driver")"
	e2e_assert_no_log dest "nosuch1"
	e2e_assert_eq "rcpt_rejected ($driver)" 1 $(($(dp_stat rcpt_rejected) - rej0))
	e2e_log "$driver: starttls $(dp_stat starttls) rcpt_rejected $(dp_stat rcpt_rejected) failopen $(dp_stat failopen)"
	dp_stop
done
e2e_pass

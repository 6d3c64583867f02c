#!/bin/bash
# t_dp_hostile_tcp.sh — TCP a hostile or unlucky client sends, through
# rcptgate-dp (net_af_packet) in front of a real Postfix. Crafted flows
# (tests/e2e/craft.py seg, scapy) put "RCPT TO:<valid>" in a segment the
# server's TCP throws away — no ACK flag, bad checksum, a stale timestamp
# (PAWS), an acknowledgement of bytes the server never sent, or lost after the
# filter (nftables in the server's namespace) — then resend the same sequence
# range as "RCPT TO:<invalid>"; send a corrupted out-of-order copy of a
# segment before its real bytes; and claim the filter's lost 550 with a
# corrupted ACK. Real kernel clients get an RST injected far outside and
# inside the window (RFC 5961: the server ignores both), and a client that
# vanished without a FIN has its port reused by a new connection (new ISN).
# A flow with offsets outliving the idle timeout stays translated or is reset
# on both sides, never desynchronised. Last, a
# bare FIN far below a held partial line (it crashed the data plane).
# Each case: no invalid recipient reached the destination (its log), the
# valid message arrived byte-identical, the session completed (kernel
# clients: no step waited for a TCP timer), the data plane is alive.
# Bounded: ~35 s, ~55 s on a data plane that fails every case (a failing case
# costs its 4 s step timeout).
source "$(dirname "$0")/lib.sh"
e2e_init dpht
source "$(dirname "$0")/dp_lib.sh"
e2e_require_cmd /usr/bin/python3

D=$DP_DOMAIN
dp_world "alice carol" "xnack xcsum xpaws xback xlost xcack xrst1 xrst2 xreu1 xreu2 xidle"
dp_craft_setup
# "lost after the filter": the server's namespace drops frames with IP ID 0x7e57
ip netns exec "$TB_S_NS" nft -f - <<EOT
table ip rglost {
	chain in { type filter hook prerouting priority -300; policy accept;
		ip id 0x7e57 counter drop
	}
}
EOT
dp_start dp af_packet

# ---- crafted flows
sport=61000
crafted() { # CASE EVIL [craft.py seg options]
	local c=$1 evil=$2
	shift 2
	sport=$((sport + 1))
	dp_case_begin "$c"
	e2e_make_message "$E2E_TMP/$c.eml" "ht-$c-$E2E_NAME" 1
	dp_craft "$c.txt" seg --server "$TB_S_ADDR" --client "$TB_C_ADDR" --sport "$sport" \
		--valid "alice@$D" --invalid "$evil@$D" --data "$E2E_TMP/$c.eml" --step-timeout 4 "$@" ||
		true
	e2e_log "$c: $({ grep -m2 -E '^== (reply to the resent|replies:|the answer came again)' "$E2E_TMP/$c.txt" || true; } | tr '\n' ' ')$(dp_craft_result "$c.txt")"
	grep -q '^RESULT ok' "$E2E_TMP/$c.txt" ||
		dp_case_fail "$c" "crafted session: $(dp_craft_result "$c.txt")"
	[[ -n $evil ]] && dp_case_no_leak "$c" dest "$evil"
	grep -q '^<- 250 2.0.0 Ok: queued' "$E2E_TMP/$c.txt" &&
		dp_case_delivered "$c" dest "alice@$D" "ht-$c-$E2E_NAME" "$E2E_TMP/$c.eml"
	dp_case_alive "$c"
}

# discarded by the server's TCP, then resent with other bytes: the resent
# range is a new command to the server, so the filter must refuse it
for x in no-ack:xnack bad-csum:xcsum paws:xpaws bad-ack:xback; do
	c=resend-after-${x%%:*}
	opt=
	[[ ${x%%:*} == paws ]] && opt=--ts
	crafted "$c" "${x#*:}" --case "${x%%:*}" $opt
	dp_case_filtered "$c" "$c.txt" "${x#*:}@$D"
done

# lost after the filter, resent with other bytes: the filter decided on the
# first copy (and forwarded it), so every later copy must carry those bytes
c=resend-after-loss
crafted "$c" xlost --case lost
lost=$(ip netns exec "$TB_S_NS" nft list table ip rglost | awk '/counter/ { for (i = 1; i < NF; i++) if ($i == "packets") print $(i + 1) }')
[[ ${lost:-0} -ge 1 ]] || dp_case_fail "$c" "nothing was dropped after the filter (nft counter ${lost:-?}): the case tested nothing"

# a corrupted out-of-order copy: the server gets what the client really sent
c=ooo-corrupted-copy
crafted "$c" "" --case ooo-bad-csum --other "carol@$D"
hit=$(grep -m1 -E "to=<carol@$D>|<carol@$D>" "$(e2e_pf_log dest)" | cut -c1-200 || true)
[[ -z $hit ]] || dp_case_fail "$c" "the corrupted copy (RCPT TO:<carol@$D>) reached the destination ($hit)"

# the filter's lone 550 is lost on its way to the client and a corrupted ACK
# claims it: the filter must resend it
c=corrupted-ack-of-answer
crafted "$c" xcack --case bad-csum-ack
dp_case_filtered "$c" "$c.txt" "xcack@$D"

# ---- real kernel clients
kernel() { # CASE EVIL [craft.py smtp options] STEP... (after MAIL)
	local c=$1 evil=$2
	shift 2
	e2e_make_message "$E2E_TMP/$c.eml" "ht-$c-$E2E_NAME" 1
	dp_craft "$c.txt" smtp --server "$TB_S_ADDR" --max-step-ms "$DP_STEP_MS" --step-timeout 4 \
		"$@" || true
}

# an RST far outside the window, and one inside it but not at the next
# sequence number: the server ignores both (RFC 5961), the flow goes on
for x in 0x40000000:out-of-window:xrst1 0x1000:in-window-inexact:xrst2; do
	IFS=: read -r off name evil <<<"$x"
	c=rst-$name
	dp_case_begin "$c"
	kernel "$c" "$evil" 'C:EHLO client.test' 'C:MAIL FROM:<sender@client.test>' \
		"C:RCPT TO:<$evil@$D>" "rst:$off" sleep:2.6 "C:RCPT TO:<alice@$D>" 'C:DATA' \
		"B:$E2E_TMP/$c.eml" 'C:QUIT'
	dp_case_session "$c" "$c.txt"
	dp_case_filtered "$c" "$c.txt" "$evil@$D"
	dp_case_no_leak "$c" dest "$evil"
	grep -q '^<- 250 2.0.0 Ok: queued' "$E2E_TMP/$c.txt" &&
		dp_case_delivered "$c" dest "alice@$D" "ht-$c-$E2E_NAME" "$E2E_TMP/$c.eml"
	dp_case_alive "$c"
done

# port reuse: a client ends its session (QUIT, 221, the server's FIN
# acknowledged) and vanishes without a FIN; the server forgets the connection
# (tcp_fin_timeout 1 s); a new connection from the same port (a new ISN) must
# work and be filtered
c=port-reuse-new-isn
dp_case_begin "$c"
ip netns exec "$TB_S_NS" sysctl -qw net.ipv4.tcp_fin_timeout=1
ip netns exec "$TB_C_NS" nft -f - <<EOT
table inet rgvanish {
	chain out { type filter hook output priority 0; policy accept; }
}
EOT
kernel "$c-old" xreu1 --bind-port 62001 'C:EHLO client.test' 'C:MAIL FROM:<sender@client.test>' \
	"C:RCPT TO:<xreu1@$D>" 'C:QUIT' eof sleep:0.3 \
	'vanish:nft add rule inet rgvanish out tcp sport 62001 counter drop'
dp_case_session "$c" "$c-old.txt"
dp_case_filtered "$c" "$c-old.txt" "xreu1@$D"
e2e_wait_for 10 "the server to forget the vanished connection" bash -c \
	"! ip netns exec '$TB_S_NS' ss -Htan 'dport = :62001' | grep -q ."
ip netns exec "$TB_C_NS" nft flush chain inet rgvanish out
kernel "$c" xreu2 --bind-port 62001 'C:EHLO client.test' 'C:MAIL FROM:<sender@client.test>' \
	"C:RCPT TO:<xreu2@$D>" "C:RCPT TO:<alice@$D>" 'C:DATA' "B:$E2E_TMP/$c.eml" 'C:QUIT'
dp_case_session "$c" "$c.txt"
dp_case_filtered "$c" "$c.txt" "xreu2@$D"
dp_case_no_leak "$c" dest xreu1 xreu2
grep -q '^<- 250 2.0.0 Ok: queued' "$E2E_TMP/$c.txt" &&
	dp_case_delivered "$c" dest "alice@$D" "ht-$c-$E2E_NAME" "$E2E_TMP/$c.eml"
dp_case_alive "$c"
# a flow with offsets outliving the data plane's idle timeout is either still
# translated (NOOP answered, the session completes) or reset on both sides;
# never left to pass untranslated (data plane restarted with --idle-timeout 2
# and a table of 64 flows, which its expiry scan covers in one pass;
# a refused RCPT makes the offsets; 4.5 s of silence)
dp_case_counters
dp_stop
dp_start dp-idle af_packet --idle-timeout 2 --max-flows 64
c=idle-expiry-offsets
dp_case_begin "$c"
kernel "$c" xidle 'C:EHLO client.test' 'C:MAIL FROM:<sender@client.test>' "C:RCPT TO:<xidle@$D>" \
	sleep:4.5 probe "C:RCPT TO:<alice@$D>" 'C:DATA' "B:$E2E_TMP/$c.eml" 'C:QUIT'
dp_case_session "$c" "$c.txt"
dp_case_filtered "$c" "$c.txt" "xidle@$D"
dp_case_no_leak "$c" dest xidle
if grep -q '^== the connection was reset' "$E2E_TMP/$c.txt"; then
	# reset: the server's side too
	lport=$(sed -n 's/^== local port //p' "$E2E_TMP/$c.txt")
	for _ in $(seq 15); do
		held=$(ip netns exec "$TB_S_NS" ss -Htan "dport = :$lport" | grep -v TIME-WAIT || true)
		[[ -z $held ]] && break
		sleep 0.2
	done
	[[ -z $held ]] || dp_case_fail "$c" "the client was reset but the server still holds the connection ($held)"
	e2e_log "$c: reset on both sides"
elif grep -q '^<- 250 2.0.0 Ok: queued' "$E2E_TMP/$c.txt"; then
	dp_case_delivered "$c" dest "alice@$D" "ht-$c-$E2E_NAME" "$E2E_TMP/$c.eml"
	e2e_log "$c: still translated after the idle timeout; the session completed"
fi
dp_case_alive "$c"

# last, as it may take the data plane down: a partial line held by the filter,
# then a bare FIN 2^31 - 64 kB below it (outside any window), then the rest of
# the line: the data plane survives and the session completes
c=held-line-fin-far-below
crafted "$c" "" --case held-fin-below
grep -q '^== reply: 250 ' "$E2E_TMP/$c.txt" ||
	dp_case_fail "$c" "the completed RCPT was not accepted: $(grep -m1 '^== reply' "$E2E_TMP/$c.txt" || echo 'no reply')"

dp_case_counters
dp_stop
dp_cases_end
e2e_pass

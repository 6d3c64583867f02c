#!/bin/bash
# t_dp_hostile_segments.sh — real Linux clients that cut their command lines
# finely, through rcptgate-dp in front of a real Postfix: one byte per write
# with TCP_NODELAY, one byte per write with Nagle, each line in two writes
# with Nagle (over net_af_packet and net_af_xdp); and a client on a jumbo-frame
# LAN (MTU 9000: it announces MSS 8960) behind a 1500-byte link, whose
# pipelined RCPTs make the filter's answers ride in a full server segment and
# make a long answer of their own. Each case: no step of the session waited
# for a TCP retransmission or loss-probe timer (every step under DP_STEP_MS),
# the filter answered the invalid recipient, the destination's log never
# names it, the message arrived byte-identical, the data plane is alive.
# Bounded: ~40 s (a failing case costs its 4 s step timeout).
source "$(dirname "$0")/lib.sh"
e2e_init dphs
source "$(dirname "$0")/dp_lib.sh"
e2e_require_cmd /usr/bin/python3

D=$DP_DOMAIN
INVALID="pbyte pnagl psplt xbyte xnagl xsplt mssg1 mssg2 mssg3 mssg4 mssg5 mssg6 mssg7 mssg8 mssl1"
dp_world "alice" "$INVALID"

# session CASE MODE EVIL [extra craft.py smtp options]: EHLO, MAIL, the invalid
# and the valid recipient, DATA, a message, QUIT.
session() {
	local c=$1 mode=$2 evil=$3
	shift 3
	dp_case_begin "$c"
	e2e_make_message "$E2E_TMP/$c.eml" "hs-$c-$E2E_NAME" 2
	dp_craft "$c.txt" smtp --server "$TB_S_ADDR" --mode "$mode" --max-step-ms "$DP_STEP_MS" \
		--step-timeout 4 "$@" 'C:EHLO client.test' 'C:MAIL FROM:<sender@client.test>' \
		"C:RCPT TO:<$evil@$D>" "C:RCPT TO:<alice@$D>" 'C:DATA' "B:$E2E_TMP/$c.eml" 'C:QUIT' || true
	check "$c" "$evil"
}

# check CASE EVIL...: the common checks of a session case.
check() {
	local c=$1 e
	shift
	dp_case_session "$c" "$c.txt"
	for e in "$@"; do
		dp_case_filtered "$c" "$c.txt" "$e@$D"
	done
	dp_case_no_leak "$c" dest "$@"
	if grep -q '^<- 250 2.0.0 Ok: queued' "$E2E_TMP/$c.txt"; then
		dp_case_delivered "$c" dest "alice@$D" "hs-$c-$E2E_NAME" "$E2E_TMP/$c.eml"
	fi
	dp_case_alive "$c"
}

for driver in af_packet af_xdp; do
	p=${driver:3:1}	# p / x: the invalid local parts of this round
	dp_start "dp-$driver" "$driver"
	session "$driver-1byte-nodelay" bytes "${p}byte"
	session "$driver-1byte-nagle" bytes-nagle "${p}nagl"
	session "$driver-nagle-2writes" split "${p}splt"

	if [[ $driver == af_packet ]]; then
		# MSS 8960: the client's side of the link takes jumbo frames, the
		# data plane's port does not (MTU 1500)
		ip netns exec "$TB_C_NS" ip link set "$TB_NS_DEV" mtu 9000
		e2e_defer ip netns exec "$TB_C_NS" ip link set "$TB_NS_DEV" mtu 1500

		# (a) 200 valid RCPTs with 8 invalid ones among them, pipelined in one
		#     write: the server answers in full-sized segments (Postfix reads
		#     4 kB of commands, then writes ~2 kB of replies) and the filter's
		#     550s ride in them (frames must still fit 1500 bytes)
		c=mss8960-answers-in-server-segment
		dp_case_begin "$c"
		grp=
		for k in 1 2 3 4 5 6 7 8 9; do
			for _ in $(seq 22); do grp+="RCPT TO:<alice@$D>\r\n"; done
			[[ $k -lt 9 ]] && grp+="RCPT TO:<mssg$k@$D>\r\n"
		done
		e2e_make_message "$E2E_TMP/$c.eml" "hs-$c-$E2E_NAME" 2
		dp_craft "$c.txt" smtp --server "$TB_S_ADDR" --max-step-ms "$DP_STEP_MS" --step-timeout 4 \
			'C:EHLO client.test' 'C:MAIL FROM:<sender@client.test>' "C:$grp" 'C:DATA' \
			"B:$E2E_TMP/$c.eml" 'C:QUIT' || true
		check "$c" mssg1 mssg2 mssg3 mssg4 mssg5 mssg6 mssg7 mssg8

		# (b) 40 invalid RCPTs pipelined after the valid one: the filter's
		#     answer to them (3 kB) goes out on its own, in frames that fit
		c=mss8960-long-lone-answer
		dp_case_begin "$c"
		grp=
		for _ in $(seq 40); do grp+="RCPT TO:<mssl1@$D>\r\n"; done
		e2e_make_message "$E2E_TMP/$c.eml" "hs-$c-$E2E_NAME" 2
		dp_craft "$c.txt" smtp --server "$TB_S_ADDR" --max-step-ms "$DP_STEP_MS" --step-timeout 4 \
			'C:EHLO client.test' 'C:MAIL FROM:<sender@client.test>' "C:RCPT TO:<alice@$D>" \
			"C:$grp" 'C:DATA' "B:$E2E_TMP/$c.eml" 'C:QUIT' || true
		check "$c" mssl1
		ip netns exec "$TB_C_NS" ip link set "$TB_NS_DEV" mtu 1500
	fi
	dp_case_counters
	dp_stop
done
dp_cases_end
e2e_pass

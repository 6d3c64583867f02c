#!/bin/bash
# t_dp_netem.sh — rcptgate-dp under loss and duplication: with nftables
# dropping 3% and duplicating 1% of TCP packets at random in both namespaces,
# 500 pipelined sessions (one valid and one invalid recipient each, 8 at a
# time), over net_af_packet and then net_af_xdp, all end correctly: every
# message delivered exactly once with its body intact, every invalid
# recipient refused by the filter and absent from the destination's log.
# Bounded: ~4 min (DP_NETEM_SESSIONS overrides the session count).
source "$(dirname "$0")/lib.sh"
e2e_init dpn
source "$(dirname "$0")/dp_lib.sh"

N=${DP_NETEM_SESSIONS:-500}
P=8
VALID="u0 u1 u2 u3 u4 u5 u6 u7 u8 u9"
INVALID="bad0 bad1 bad2 bad3 bad4 bad5 bad6 bad7 bad8 bad9"
dp_world "$VALID" "$INVALID"
e2e_netem 3 1
D=$DP_DOMAIN

# one session: swaks from the client namespace, transcript s-DRIVER-I.txt
cat >"$E2E_TMP/one.sh" <<EOS
#!/bin/bash
i=\$1 drv=\$2
timeout -k 5 90 ip netns exec "$TB_C_NS" swaks --server "$TB_S_ADDR" --timeout 60 --pipeline \\
	--helo client.test --from sender@client.test \\
	--to "u\$((i % 10))@$D,bad\$((i % 10))@$D" --data "@$E2E_TMP/msg/\$drv-\$i.eml" \\
	>"$E2E_TMP/s/\$drv-\$i.txt" 2>&1 || true
EOS
chmod +x "$E2E_TMP/one.sh"
mkdir -p "$E2E_TMP/msg" "$E2E_TMP/s"

round=0
for driver in af_packet af_xdp; do
	round=$((round + 1))
	for i in $(seq 1 "$N"); do
		e2e_make_message "$E2E_TMP/msg/$driver-$i.eml" "nt-$driver-${i}z" 2
	done
	dp_start "dp-$driver" "$driver"
	rej0=$(dp_stat rcpt_rejected)
	read -r drop0 dup0 < <(e2e_netem_counts)
	t0=$SECONDS
	seq 1 "$N" | xargs -P "$P" -I{} "$E2E_TMP/one.sh" {} "$driver"
	e2e_alive "$DP_PID" "dp-$driver"
	read -r drop1 dup1 < <(e2e_netem_counts)
	e2e_log "$driver: $N sessions in $((SECONDS - t0)) s; netem dropped $((drop1 - drop0)), duplicated $((dup1 - dup0)) packets"
	e2e_assert_ge "packets dropped by netem ($driver)" 1 $((drop1 - drop0))
	e2e_assert_ge "packets duplicated by netem ($driver)" 1 $((dup1 - dup0))

	# every session: the filter's 550, the message queued, a clean end
	bad=0
	for i in $(seq 1 "$N"); do
		f=$E2E_TMP/s/$driver-$i.txt
		if ! grep -qE "550 5.1.1 <bad$((i % 10))@$D>: $DP_FILTER_TEXT\r?$" "$f" ||
			! grep -q '250 2.0.0 Ok: queued' "$f" || ! grep -qE '<- +221' "$f"; then
			bad=$((bad + 1))
			[[ $bad -le 3 ]] && { echo "---- $f" >&2; tail -15 "$f" >&2; }
		fi
	done
	e2e_assert_eq "sessions that did not end correctly ($driver)" 0 "$bad"

	# every message delivered once, intact
	for u in $VALID; do
		e2e_wait_delivered dest "$u@$D" $((round * N / 10)) 60
	done
	bad=0
	for i in $(seq 1 "$N"); do
		m=$(e2e_find_mail dest "u$((i % 10))@$D" "nt-$driver-${i}z")
		cmp -s <(e2e_body "$E2E_TMP/msg/$driver-$i.eml") <(e2e_body "$m") || bad=$((bad + 1))
	done
	e2e_assert_eq "messages whose body differs ($driver)" 0 "$bad"
	e2e_assert_no_log dest "bad[0-9]@"
	rej=$(($(dp_stat rcpt_rejected) - rej0))
	e2e_assert_ge "rcpt_rejected ($driver)" "$N" "$rej"
	e2e_log "$driver: rcpt_rejected +$rej retrans $(dp_stat retrans) ooo_segs $(dp_stat ooo_segs) injected $(dp_stat injected) inject_retx $(dp_stat inject_retx) failopen $(dp_stat failopen)"
	dp_stop
done
e2e_pass

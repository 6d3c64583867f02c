#!/bin/bash
# t_fleet.sh — three rcptgated nodes in one fleet (one redis-server on a Unix
# socket, one shared hash secret), each with its own store and shared memory,
# in front of one Plesk-like Postfix destination. Nodes a and b each feed an
# inline rcptgate-dp over net_af_xdp (the XDP program loaded by DPDK, its maps
# managed by the node): a on the testbed's client path, b on a second client
# namespace bridged into the same server namespace. Node c is asked through
# its policy service (Postfix's check_policy_service protocol), as a
# front-line MTA would ask it.
#   1. a dictionary attack spread round-robin over the nodes: each unique
#      address is verified once for the fleet (the destination's log shows one
#      probe per address), and afterwards every node answers every address
#      itself (the data planes refuse them without a deferral, c answers 550);
#   2. redis-server killed mid-attack: filtering goes on (c answers all the
#      while; a new address is verified by node b alone, counted
#      uncoordinated); restarted: the nodes catch up (the verdict b learned
#      during the outage reaches a and c);
#   3. a harvester in one /24 rotating over the nodes (two addresses, one
#      behind each data plane, and node c's policy clients) stays under each
#      node's own threshold but not under the fleet's: its /24 is blocked on
#      every node, and its next connections through a and b are dropped at XDP.
# Every other client (policy requests' client_address) is a /24 of its own in
# 198.19.0.0/16, so that only the harvester's counts add up. Nodes a and b run
# in the root namespace (their XDP ports are there) and reach the destination
# by a network of their own (a veth pair into the server namespace), as edge
# boxes do; node c runs in the server namespace. Bounded: ~120 s.
source "$(dirname "$0")/lib.sh"
e2e_init flt
e2e_require_cmd redis-server
source "$(dirname "$0")/xdp_lib.sh"
xdp_init
RCPTGATED=$(e2e_bin control/rcptgated)
RCPTCTL=$(e2e_bin control/rcptctl)
DPBIN=$(e2e_bin dataplane/rcptgate-dp)
D=example.test
LIMIT=50	# the fleet's harvest_limit (invalid RCPTs per minute per source prefix)

if [[ $(</proc/sys/vm/nr_hugepages) -lt 512 ]]; then
	echo 512 >/proc/sys/vm/nr_hugepages
fi
grep -q ' /dev/hugepages hugetlbfs ' /proc/mounts ||
	{ mkdir -p /dev/hugepages && mount -t hugetlbfs nodev /dev/hugepages; }

e2e_testbed_up
xdp_gro_on
e2e_users "$E2E_TMP/users" "alice@$D" "bob@$D"
e2e_postfix dest dest-reject --users "$E2E_TMP/users"

# ---------------------------------------------------------------- networks
# the nodes' own way to the destination
MG_R=${E2E_NAME}m0
MG_S=${E2E_NAME}m1
ip link add "$MG_R" type veth peer name "$MG_S"
e2e_defer ip link del "$MG_R"
ip link set "$MG_S" netns "$TB_S_NS"
ip addr add 198.19.255.1/30 dev "$MG_R"
ip link set "$MG_R" up
e2e_in_server ip addr add 198.19.255.2/30 dev "$MG_S"
e2e_in_server ip link set "$MG_S" up
ip route add "$TB_S_ADDR/32" via 198.19.255.2

# the second client path: namespace C2 (address HV2, in the client's /24),
# root ends B_C and B_S bridged by node b's data plane, B_S's peer in the
# server namespace (replies to HV2 routed back through it)
C2_NS=${E2E_NAME}-c2
B_C=${E2E_NAME}x0
B_S=${E2E_NAME}y0
HV1=$TB_C_ADDR
HV2=${TB_C_ADDR%.*}.9
ip netns add "$C2_NS"
e2e_defer ip netns del "$C2_NS"
ip link add "$B_C" type veth peer name "${E2E_NAME}x1"
e2e_defer ip link del "$B_C"
ip link add "$B_S" type veth peer name "${E2E_NAME}y1"
e2e_defer ip link del "$B_S"
ip link set "${E2E_NAME}x1" netns "$C2_NS"
ip link set "${E2E_NAME}y1" netns "$TB_S_NS"
for dev in "$B_C" "$B_S"; do
	sysctl -qw "net.ipv6.conf.$dev.disable_ipv6=1"
	ethtool -K "$dev" tx off rx off tso off gso off gro off >/dev/null
	ip link set "$dev" up
done
ip netns exec "$C2_NS" ip link set lo up
ip netns exec "$C2_NS" sysctl -qw "net.ipv6.conf.${E2E_NAME}x1.disable_ipv6=1"
ip netns exec "$C2_NS" ethtool -K "${E2E_NAME}x1" tx off rx off tso off gso off >/dev/null
ip netns exec "$C2_NS" ip addr add "$HV2/24" dev "${E2E_NAME}x1"
ip netns exec "$C2_NS" ip link set "${E2E_NAME}x1" up
e2e_in_server sysctl -qw "net.ipv6.conf.${E2E_NAME}y1.disable_ipv6=1"
e2e_in_server ethtool -K "${E2E_NAME}y1" tx off rx off tso off gso off >/dev/null
e2e_in_server ip link set "${E2E_NAME}y1" up
# frames redirected by XDP into a veth need NAPI on its peer: GRO, once up
ip netns exec "$C2_NS" ethtool -K "${E2E_NAME}x1" gro on >/dev/null
e2e_in_server ethtool -K "${E2E_NAME}y1" gro on >/dev/null
e2e_in_server ip route add "$HV2/32" dev "${E2E_NAME}y1"

# ---------------------------------------------------------------- redis, nodes
REDIS_SOCK=$E2E_TMP/redis.sock
start_redis() {
	e2e_bg "redis$1" redis-server --port 0 --unixsocket "$REDIS_SOCK" --unixsocketperm 700 \
		--save '' --appendonly no --dir "$E2E_TMP"
	REDIS_PID=$E2E_BG_PID
	e2e_wait_for 10 "redis-server listening" test -S "$REDIS_SOCK"
}
start_redis 1
od -An -tx1 -N16 /dev/urandom | tr -d ' \n' >"$E2E_TMP/fleet.key"

PIN_B=/sys/fs/bpf/rgx-e2e-$E2E_NAME-b
e2e_defer rmdir "$PIN_B"
declare -A PIN=([a]=$XDP_PIN [b]=$PIN_B [c]=$E2E_TMP/pins-c) GPID=()
declare -A PORT=([a]=10041 [b]=10042 [c]=10043)
mkdir -p "${PIN[c]}"
node_conf() { # NODE
	cat <<CONF
[global]
shm_path = /dev/shm/$E2E_NAME-$1
store_path = $E2E_TMP/store-$1
control_socket = $E2E_TMP/ctl-$1.sock
shm_max_lcores = 4
table_init_log2 = 10
table_max_log2 = 16
log_stderr = yes
policy_listen = 127.0.0.1:${PORT[$1]}
policy_timeout = 10s
xdp_pin_dir = ${PIN[$1]}
block_ttl = 300

[fleet]
redis = $REDIS_SOCK
secret_file = $E2E_TMP/fleet.key
node_name = $1
harvest_limit = $LIMIT
harvest_window = 60s

[domain $D]
destination = $TB_S_ADDR:25
miss_policy = defer
harvest_threshold = 1000
CONF
}
for n in a b c; do
	node_conf $n >"$E2E_TMP/$n.conf"
	e2e_defer rm -f "/dev/shm/$E2E_NAME-$n"
	if [[ $n == c ]]; then
		e2e_bg "node-$n" ip netns exec "$TB_S_NS" "$RCPTGATED" -c "$E2E_TMP/$n.conf"
	else
		e2e_bg "node-$n" "$RCPTGATED" -c "$E2E_TMP/$n.conf"
	fi
	GPID[$n]=$E2E_BG_PID
done
for n in a b c; do
	e2e_wait_for 10 "node $n started" grep -q 'rcptgated .* started' "$E2E_TMP/node-$n.log"
	e2e_wait_for 10 "node $n in the fleet" grep -q "fleet: node $n connected to Redis" \
		"$E2E_TMP/node-$n.log"
done

# data planes: a's on the testbed's path, b's on the second one
xdp_detach_at_exit "$TB_C_ROOT"
xdp_detach_at_exit "$TB_S_ROOT"
xdp_dp_start dp-a "/dev/shm/$E2E_NAME-a"
DP_A=$XDP_DP_PID
xdp_rgx adopt "$TB_C_ROOT" --peer "$TB_S_ROOT" >/dev/null
xdp_rgx adopt "$TB_S_ROOT" --peer "$TB_C_ROOT" >/dev/null
e2e_defer "$XDP_RGX" detach "$B_C" --pin-root "$PIN_B"
e2e_defer "$XDP_RGX" detach "$B_S" --pin-root "$PIN_B"
rm -rf "/var/run/dpdk/${E2E_NAME}b"
e2e_bg dp-b "$DPBIN" -l 0-1 --no-pci --file-prefix "${E2E_NAME}b" -m 256 \
	--log-level lib.eal:warning \
	--vdev "net_af_xdp0,iface=$B_C,xdp_prog=$XDP_OBJ" \
	--vdev "net_af_xdp1,iface=$B_S,xdp_prog=$XDP_OBJ" \
	-- --shm "/dev/shm/$E2E_NAME-b" --pair 0:1
DP_B=$E2E_BG_PID
e2e_defer bash -c "rm -rf /var/run/dpdk/${E2E_NAME}b /dev/hugepages/${E2E_NAME}bmap_*"
e2e_wait_for 15 "rcptgate-dp running (dp-b)" grep -q 'rcptgate-dp: running' "$E2E_TMP/dp-b.log"
"$XDP_RGX" adopt "$B_C" --peer "$B_S" --pin-root "$PIN_B" >/dev/null
"$XDP_RGX" adopt "$B_S" --peer "$B_C" --pin-root "$PIN_B" >/dev/null
e2e_wait_for 10 "a TCP connection through node a's data plane" e2e_tcp_connects "$TB_S_ADDR" 25 2
c2_connects() { ip netns exec "$C2_NS" timeout 2 bash -c "exec 3<>/dev/tcp/$TB_S_ADDR/25" 2>/dev/null; }
e2e_wait_for 10 "a TCP connection through node b's data plane" c2_connects
e2e_wait_for 5 "node a managing $TB_C_ROOT" grep -q "xdp: managing $TB_C_ROOT" "$E2E_TMP/node-a.log"
e2e_wait_for 5 "node b managing $B_C" grep -q "xdp: managing $B_C" "$E2E_TMP/node-b.log"

# ---------------------------------------------------------------- helpers
# policy RCPT CLIENT: node c's policy answer for one recipient
policy() {
	ip netns exec "$TB_S_NS" timeout 30 bash -c '
		exec 3<>/dev/tcp/127.0.0.1/10043
		printf "request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\nclient_address=%s\nsender=s@client.test\nrecipient=%s\n\n" "$2" "$1" >&3
		IFS= read -r line <&3
		echo "${line%$'\''\r'\''}"' _ "$1" "$2"
}
# via NODE ID RCPT...: one SMTP session through node a's or b's data plane
via() {
	local node=$1 id=$2 to
	shift 2
	to=$(IFS=,; echo "$*")
	if [[ $node == a ]]; then
		e2e_swaks "$id.txt" --helo client.test --from sender@client.test --to "$to" \
			--timeout 10 || true
	else
		timeout -k 5 60 ip netns exec "$C2_NS" swaks --server "$TB_S_ADDR" --helo client.test \
			--from sender@client.test --to "$to" --timeout 10 >"$E2E_TMP/$id.txt" 2>&1 || true
	fi
}
ctl() { local n=$1; shift; "$RCPTCTL" --socket "$E2E_TMP/ctl-$n.sock" "$@"; }
# (outputs captured whole: a reader quitting early would fail the pipe)
knows_invalid() { [[ $(ctl "$1" --json lookup "$2") =~ \"verdict\":\ *\"invalid\" ]]; }
probes() { e2e_log_count dest "reject: RCPT from [^ ]*: 550 5\.1\.1 <$1>"; }
stat_of() { ctl "$1" stats | awk -v k="$2" '$1 == k {print $2}'; }
refused_by_filter() { # TRANSCRIPT: RCPTs the data plane refused itself
	grep -c '^<\*\* *550 5\.1\.1 <[^>]*>: Recipient address rejected: User unknown' "$1" || true
}

# ---------------------------------------------------------------- 1. dictionary attack
WORDS=()
for i in $(seq -w 1 24); do WORDS+=("dict$i@$D"); done
A_SET=() B_SET=() C_SET=()
for i in "${!WORDS[@]}"; do
	case $((i % 3)) in
	0) A_SET+=("${WORDS[$i]}") ;;
	1) B_SET+=("${WORDS[$i]}") ;;
	2) C_SET+=("${WORDS[$i]}") ;;
	esac
done
via a r1a "${A_SET[@]}"
via b r1b "${B_SET[@]}"
for n in a b; do
	e2e_assert_eq "node $n's first answers: deferred while verified" 8 \
		"$(grep -c '^<\*\* *450 4\.7\.1' "$E2E_TMP/r1$n.txt" || true)"
done
k=0
for a in "${C_SET[@]}"; do
	k=$((k + 1))
	r=$(policy "$a" "198.19.$k.1")
	[[ $r =~ ^action=550\ 5\.1\.1 ]] || e2e_fail "node c for $a: '$r'"
done
for n in a b c; do
	for a in "${WORDS[@]}"; do
		e2e_wait_for 10 "node $n knows $a" knows_invalid $n "$a"
	done
done
e2e_log "round 1: every node knows all ${#WORDS[@]} addresses"
# round 2: every address at every node, answered there
via a r2a "${WORDS[@]}"
via b r2b "${WORDS[@]}"
for n in a b; do
	e2e_assert_eq "node $n's data plane refuses all ${#WORDS[@]} itself" "${#WORDS[@]}" \
		"$(refused_by_filter "$E2E_TMP/r2$n.txt")"
	e2e_assert_no_grep "a deferral in round 2 at node $n" '^<\*\* *450' "$E2E_TMP/r2$n.txt"
done
for a in "${WORDS[@]}"; do
	k=$((k + 1))
	r=$(policy "$a" "198.19.$((k % 250)).1")
	[[ $r =~ ^action=550\ 5\.1\.1 ]] || e2e_fail "round 2, node c for $a: '$r'"
done
sleep 1
for a in "${WORDS[@]}"; do
	e2e_assert_eq "destination probes for $a (the fleet's callouts)" 1 "$(probes "$a")"
done
total=$(e2e_log_count dest 'reject: RCPT from [^ ]*: 550 5\.1\.1 <dict')
e2e_log "dictionary: ${#WORDS[@]} unique addresses, $total probes at the destination (3 nodes, 2 rounds)"
for n in a b c; do
	e2e_log "node $n: $(ctl $n status | grep -A2 '^fleet:' | tr -s ' ' | tr '\n' ' ')"
done

# ---------------------------------------------------------------- 2. Redis down, back
# the attack goes on at node c (known addresses, 0.05 s apart) across the outage
( for i in $(seq 1 60); do
	policy "${WORDS[$((i % ${#WORDS[@]}))]}" "198.19.252.1"
	sleep 0.05
  done ) >"$E2E_TMP/during.txt" 2>&1 &
ATTACK=$!
sleep 0.5
kill -9 "$REDIS_PID"
wait "$REDIS_PID" 2>/dev/null || true
rm -f "$REDIS_SOCK"
down() { [[ $(ctl b status) == *DISCONNECTED* ]]; }
e2e_wait_for 5 "node b sees Redis gone" down
via b r3 "outage1@$D"
e2e_assert_grep "node b defers outage1 while verifying it alone" \
	"^<\*\* *450 4\.7\.1 <outage1@$D>" "$E2E_TMP/r3.txt"
e2e_wait_for 10 "node b verifies outage1 alone" knows_invalid b "outage1@$D"
via a r3a "${WORDS[0]}"
e2e_assert_eq "node a filters during the outage" 1 "$(refused_by_filter "$E2E_TMP/r3a.txt")"
e2e_assert_ge "node b's uncoordinated callouts" 1 "$(stat_of b fleet.uncoordinated)"
e2e_assert_eq "Redis outages logged by node b (once)" 1 \
	"$(grep -c 'fleet: Redis .* unreachable' "$E2E_TMP/node-b.log")"
start_redis 2
for n in a c; do
	e2e_wait_for 15 "node $n learns outage1 (learned by b while Redis was down)" \
		knows_invalid $n "outage1@$D"
done
wait "$ATTACK" || e2e_fail "the attack loop at node c failed"
e2e_assert_eq "node c's answers across the outage: all refusals" 60 \
	"$(grep -c '^action=550 5\.1\.1' "$E2E_TMP/during.txt" || true)"
e2e_assert_eq "destination probes for outage1" 1 "$(probes "outage1@$D")"
via a r4 "outage1@$D"
e2e_assert_eq "node a's data plane refuses outage1 itself" 1 "$(refused_by_filter "$E2E_TMP/r4.txt")"
e2e_log "outage: node c answered 60 of 60, node b verified alone; after the restart a and c caught up"

# ---------------------------------------------------------------- 3. harvester
# Its /24 had 48 refusals before the outage (round 2: 24 at a from HV1, 24 at b
# from HV2: under the limit), but the restarted Redis is empty (refusals during
# the outage are not counted): 1 now (r4). Each rotation adds 6 at a (from HV1),
# 6 at b (from HV2) and 6 at c (client HV2): the fleet's limit falls in
# rotation 3 (55); each node alone (threshold 1000 in the data planes) and each
# /32 (19 and 36) stay under it.
NET=${HV1%.*}.0/24
blocked_everywhere() {
	local xa xb c
	xa=$(xdp_rgx blocks) xb=$("$XDP_RGX" blocks --pin-root "$PIN_B") c=$(ctl c blocks)
	grep -q "^$TB_C_ROOT $NET " <<<"$xa" && grep -q "^$B_C $NET " <<<"$xb" &&
		grep -q "$NET" <<<"$c"
}
six() { for i in $(seq 1 6); do echo "dict$(printf %02d "$i")@$D"; done; }
for rot in 1 2 3 4; do
	via a "h${rot}a" $(six)
	via b "h${rot}b" $(six)
	for a in $(six); do policy "$a" "$HV2" >/dev/null; done
	sleep 0.5
	blocked_everywhere && break
done
e2e_wait_for 5 "$NET blocked on every node" blocked_everywhere
e2e_log "harvester $NET blocked on a and b (XDP maps) and c after $rot rotation(s)"
cat "$E2E_TMP"/node-?.log >"$E2E_TMP/nodes.log"
e2e_assert_grep "the fleet's block, announced by one node" \
	"fleet: harvest from ${NET//./\\.}: [0-9]+ invalid recipients over the fleet" "$E2E_TMP/nodes.log"
e2e_assert_no_grep "a /32 blocked (each stayed under the limit)" \
	"fleet: harvest from ${HV1%.*}\.[0-9]+/32" "$E2E_TMP/nodes.log"
e2e_assert_no_grep "a data plane's own harvest answer (its threshold is 1000)" \
	'421 4\.7\.0' "$E2E_TMP/h1a.txt"
if e2e_swaks again-a.txt --helo client.test --from sender@client.test --to "alice@$D" --timeout 5; then
	e2e_fail "the blocked harvester reached the server through node a (see $E2E_TMP/again-a.txt)"
fi
if timeout -k 5 30 ip netns exec "$C2_NS" swaks --server "$TB_S_ADDR" --helo client.test \
	--from sender@client.test --to "alice@$D" --timeout 5 >"$E2E_TMP/again-b.txt" 2>&1; then
	e2e_fail "the blocked harvester reached the server through node b (see $E2E_TMP/again-b.txt)"
fi
hits_a=$(xdp_hits "$TB_C_ROOT" "$NET")
hits_b=$("$XDP_RGX" blocks --pin-root "$PIN_B" | awk -v d="$B_C" -v p="$NET" '$1 == d && $2 == p {print $4}')
e2e_log "SYNs dropped at XDP: node a ${hits_a:-none}, node b ${hits_b:-none}"
e2e_assert_ge "hits on $NET at node a's XDP" 1 "${hits_a:-0}"
e2e_assert_ge "hits on $NET at node b's XDP" 1 "${hits_b:-0}"
for n in a b c; do e2e_alive "${GPID[$n]}" "node-$n"; done
e2e_alive "$DP_A" dp-a
e2e_alive "$DP_B" dp-b
e2e_pass

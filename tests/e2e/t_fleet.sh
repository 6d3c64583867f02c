#!/bin/bash
# t_fleet.sh — three rcptgated nodes in one fleet (one redis-server on a Unix
# socket, one shared hash secret), each with its own store and shared memory,
# in front of one Plesk-like Postfix destination. Node a has an inline
# rcptgate-dp over net_af_xdp (the XDP program loaded by DPDK, its maps
# managed by node a); nodes b and c are asked through their policy services
# (Postfix's check_policy_service protocol), as front-line MTAs would ask them.
#   1. a dictionary attack spread round-robin over the nodes: each unique
#      address is verified once for the fleet (the destination's log shows one
#      probe per address), and afterwards every node answers every address
#      itself (node a's data plane refuses them without a deferral, b and c
#      answer 550 at once);
#   2. redis-server killed mid-attack: filtering goes on (a new address is
#      verified by node b alone, counted uncoordinated); restarted: the nodes
#      catch up (the verdict node b learned during the outage reaches a and c);
#   3. a harvester rotating over the nodes stays under each node's own limit
#      but not under the fleet's: its /32 is blocked on every node and its next
#      connection through node a is dropped at XDP.
# Every other client (policy requests' client_address) is a /24 of its own in
# 198.19.0.0/16, so that only the harvester's counts add up.  Bounded: ~90 s.
source "$(dirname "$0")/lib.sh"
e2e_init flt
e2e_require_cmd redis-server
source "$(dirname "$0")/xdp_lib.sh"
xdp_init
RCPTGATED=$(e2e_bin control/rcptgated)
RCPTCTL=$(e2e_bin control/rcptctl)
D=example.test
LIMIT=60	# the fleet's harvest_limit (invalid RCPTs per minute per source)

if [[ $(</proc/sys/vm/nr_hugepages) -lt 512 ]]; then
	echo 512 >/proc/sys/vm/nr_hugepages
fi
grep -q ' /dev/hugepages hugetlbfs ' /proc/mounts ||
	{ mkdir -p /dev/hugepages && mount -t hugetlbfs nodev /dev/hugepages; }

e2e_testbed_up
xdp_gro_on
e2e_users "$E2E_TMP/users" "alice@$D" "bob@$D"
e2e_postfix dest dest-reject --users "$E2E_TMP/users"

# Node a runs in the root namespace, where its XDP ports are (the maps it
# manages are the interfaces'); it reaches the destination as an edge box
# does, by its own network: a veth pair to the server namespace, not through
# the data plane it feeds.  Nodes b and c run in the server namespace.
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

declare -A PORT=([a]=10041 [b]=10042 [c]=10043) GPID=()
node_conf() { # NODE PIN_DIR
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
xdp_pin_dir = $2
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
	pin=$XDP_PIN
	[[ $n == a ]] || { pin=$E2E_TMP/pins-$n; mkdir -p "$pin"; }
	node_conf $n "$pin" >"$E2E_TMP/$n.conf"
	e2e_defer rm -f "/dev/shm/$E2E_NAME-$n"
	if [[ $n == a ]]; then
		e2e_bg "node-$n" "$RCPTGATED" -c "$E2E_TMP/$n.conf"
	else
		e2e_bg "node-$n" ip netns exec "$TB_S_NS" "$RCPTGATED" -c "$E2E_TMP/$n.conf"
	fi
	GPID[$n]=$E2E_BG_PID
done
for n in a b c; do
	e2e_wait_for 10 "node $n started" grep -q 'rcptgated .* started' "$E2E_TMP/node-$n.log"
	e2e_wait_for 10 "node $n in the fleet" grep -q "fleet: node $n connected to Redis" \
		"$E2E_TMP/node-$n.log"
done

xdp_detach_at_exit "$TB_C_ROOT"
xdp_detach_at_exit "$TB_S_ROOT"
xdp_dp_start dp "/dev/shm/$E2E_NAME-a"
xdp_rgx adopt "$TB_C_ROOT" --peer "$TB_S_ROOT" >/dev/null
xdp_rgx adopt "$TB_S_ROOT" --peer "$TB_C_ROOT" >/dev/null
e2e_wait_for 10 "a TCP connection through rcptgate-dp" e2e_tcp_connects "$TB_S_ADDR" 25 2
e2e_wait_for 5 "node a managing $TB_C_ROOT" grep -q "xdp: managing $TB_C_ROOT" "$E2E_TMP/node-a.log"

# policy NODE RCPT CLIENT: node's policy answer for one recipient
policy() {
	ip netns exec "$TB_S_NS" timeout 30 bash -c '
		exec 3<>/dev/tcp/127.0.0.1/$1
		printf "request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\nclient_address=%s\nsender=s@client.test\nrecipient=%s\n\n" "$3" "$2" >&3
		IFS= read -r line <&3
		echo "${line%$'\''\r'\''}"' _ "${PORT[$1]}" "$2" "$3"
}
# via_a ID RCPT...: one SMTP session through node a's data plane
via_a() {
	local id=$1 to
	shift
	to=$(IFS=,; echo "$*")
	e2e_swaks "$id.txt" --helo client.test --from sender@client.test --to "$to" --timeout 10 || true
}
ctl() { local n=$1; shift; "$RCPTCTL" --socket "$E2E_TMP/ctl-$n.sock" "$@"; }
# (outputs captured whole: a reader quitting early would fail the pipe)
knows_invalid() { [[ $(ctl "$1" --json lookup "$2") =~ \"verdict\":\ *\"invalid\" ]]; }
probes() { e2e_log_count dest "reject: RCPT from [^ ]*: 550 5\.1\.1 <$1>"; }
stat_of() { ctl "$1" stats | awk -v k="$2" '$1 == k {print $2}'; }

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
via_a r1 "${A_SET[@]}"
e2e_assert_eq "node a's first answers: deferred while verified" "${#A_SET[@]}" \
	"$(grep -c '^<\*\* *450 4\.7\.1' "$E2E_TMP/r1.txt" || true)"
k=0
for a in "${B_SET[@]}"; do
	k=$((k + 1))
	r=$(policy b "$a" "198.19.$k.1")
	[[ $r =~ ^action=550\ 5\.1\.1 ]] || e2e_fail "node b for $a: '$r'"
done
for a in "${C_SET[@]}"; do
	k=$((k + 1))
	r=$(policy c "$a" "198.19.$k.1")
	[[ $r =~ ^action=550\ 5\.1\.1 ]] || e2e_fail "node c for $a: '$r'"
done
for n in a b c; do
	for a in "${WORDS[@]}"; do
		e2e_wait_for 10 "node $n knows $a" knows_invalid $n "$a"
	done
done
e2e_log "round 1: every node knows all ${#WORDS[@]} addresses"
# round 2: every address at every node, answered there
via_a r2 "${WORDS[@]}"
e2e_assert_eq "node a's data plane refuses all ${#WORDS[@]} itself" "${#WORDS[@]}" \
	"$(grep -c '^<\*\* *550 5\.1\.1 <dict[0-9]*@example\.test>: Recipient address rejected: User unknown' \
		"$E2E_TMP/r2.txt" || true)"
e2e_assert_no_grep "a deferral in round 2" '^<\*\* *450' "$E2E_TMP/r2.txt"
for n in b c; do
	for a in "${WORDS[@]}"; do
		k=$((k + 1))
		r=$(policy $n "$a" "198.19.$((k % 250)).1")
		[[ $r =~ ^action=550\ 5\.1\.1 ]] || e2e_fail "round 2, node $n for $a: '$r'"
	done
done
sleep 1
for a in "${WORDS[@]}"; do
	e2e_assert_eq "destination probes for $a (the fleet's callouts)" 1 "$(probes "$a")"
done
total=$(e2e_log_count dest 'reject: RCPT from [^ ]*: 550 5\.1\.1 <dict')
e2e_log "dictionary: ${#WORDS[@]} unique addresses, $total probes at the destination, 3 nodes x 2 rounds asked"
for n in a b c; do
	e2e_log "node $n: $(ctl $n status | grep -A2 '^fleet:' | tr -s ' ' | tr '\n' ' ')"
done

# ---------------------------------------------------------------- 2. Redis down, back
# the attack goes on at node c (known addresses, 0.05 s apart) across the outage
( for i in $(seq 1 60); do
	policy c "${WORDS[$((i % ${#WORDS[@]}))]}" "198.19.252.1"
	sleep 0.05
  done ) >"$E2E_TMP/during.txt" 2>&1 &
ATTACK=$!
sleep 0.5
kill -9 "$REDIS_PID"
wait "$REDIS_PID" 2>/dev/null || true
rm -f "$REDIS_SOCK"
down() { [[ $(ctl b status) == *DISCONNECTED* ]]; }
e2e_wait_for 5 "node b sees Redis gone" down
r=$(policy b "outage1@$D" 198.19.251.1)
[[ $r =~ ^action=550\ 5\.1\.1 ]] || e2e_fail "node b during the outage: '$r'"
via_a r3 "${WORDS[0]}"
e2e_assert_grep "node a filters during the outage" \
	"^<\*\* *550 5\.1\.1 <${WORDS[0]}>: Recipient address rejected" "$E2E_TMP/r3.txt"
e2e_assert_ge "node b's uncoordinated callouts" 1 "$(stat_of b fleet.uncoordinated)"
e2e_assert_eq "Redis outages logged by node b (once)" 1 \
	"$(grep -c 'fleet: Redis .* unreachable' "$E2E_TMP/node-b.log")"
start_redis 2
for n in a c; do
	e2e_wait_for 15 "node $n learns outage1 (learned by b while Redis was down)" \
		knows_invalid $n "outage1@$D"
done
e2e_assert_eq "destination probes for outage1" 1 "$(probes "outage1@$D")"
via_a r4 "outage1@$D"
e2e_assert_grep "node a's data plane refuses outage1 itself" \
	"^<\*\* *550 5\.1\.1 <outage1@$D>: Recipient address rejected" "$E2E_TMP/r4.txt"
wait "$ATTACK" || e2e_fail "the attack loop at node c failed"
e2e_assert_eq "node c's answers across the outage: all refusals" 60 \
	"$(grep -c '^action=550 5\.1\.1' "$E2E_TMP/during.txt" || true)"
e2e_log "outage: node b verified alone; node c answered 60 of 60; after the restart a and c caught up"

# ---------------------------------------------------------------- 3. harvester
# TB_C_ADDR already has 24 + 1 + 1 refusals at node a (rounds 2 to 4, the /32's
# count); each rotation adds 10 per node: the fleet's limit falls in round 2.
HV=$TB_C_ADDR
rot=0
blocked_everywhere() {
	local x b c
	x=$(xdp_rgx blocks) b=$(ctl b blocks) c=$(ctl c blocks)
	grep -q "^$TB_C_ROOT $HV/32 " <<<"$x" && grep -q "$HV/32" <<<"$b" && grep -q "$HV/32" <<<"$c"
}
for rot in 1 2 3; do
	via_a "h$rot" $(for i in $(seq 1 10); do echo "dict$(printf %02d $i)@$D"; done)
	for n in b c; do
		for i in $(seq 1 10); do policy $n "dict$(printf %02d $i)@$D" "$HV" >/dev/null; done
	done
	sleep 0.5
	blocked_everywhere && break
done
e2e_wait_for 5 "$HV/32 blocked on every node" blocked_everywhere
e2e_log "harvester $HV blocked on a (XDP map), b and c after $rot rotations"
cat "$E2E_TMP"/node-?.log >"$E2E_TMP/nodes.log"
e2e_assert_grep "the fleet's block, announced by one node" \
	"fleet: harvest from $HV/32: [0-9]+ invalid recipients over the fleet" "$E2E_TMP/nodes.log"
e2e_assert_no_grep "a data plane's own harvest report (its threshold is 1000)" \
	'MSG_EV_HARVEST|421 4\.7\.0' "$E2E_TMP/h1.txt"
if e2e_swaks again.txt --helo client.test --from sender@client.test --to "alice@$D" --timeout 5; then
	e2e_fail "the blocked harvester reached the server (see $E2E_TMP/again.txt)"
fi
hits=$(xdp_hits "$TB_C_ROOT" "$HV/32")
e2e_assert_ge "hits on $HV/32 at node a's XDP" 1 "${hits:-0}"
for n in a b c; do e2e_alive "${GPID[$n]}" "node-$n"; done
e2e_alive "$XDP_DP_PID" dp
e2e_pass

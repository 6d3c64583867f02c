#!/bin/bash
# t_policy_postfix.sh — a real Postfix asks rcptgated's policy service about each
# recipient (check_policy_service over a Unix socket and over TCP) and gets the
# verdicts of the same table and callouts the data plane uses.
#
#   client netns: swaks ──► server netns: Postfix "front" (port 25)
#                                 │ check_policy_service unix:POLICY_SOCK, inet:127.0.0.1:PORT
#                                 ▼
#                           rcptgated (in the server netns) ── callout ──► Postfix "dest"
#                                                                          (port 2525, Plesk-like
#                                                                           "Reject": 550 5.1.1)
#
# Checks: a recipient set invalid by hand is refused by the front with the
# policy service's 550 5.1.1; an unknown recipient is verified by callout, refused,
# and then cached (rcptctl lookup says invalid, source callout); a valid
# recipient passes and is delivered through the front to the destination's Maildir;
# a recipient of a domain rcptgated does not manage is left to Postfix (DUNNO);
# both listeners answered; the control socket refuses a uid not in control_uids;
# rcptctl's exit codes.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init pol
RCPTGATED=$(e2e_bin control/rcptgated)
RCPTCTL=$(e2e_bin control/rcptctl)
e2e_testbed_up
e2e_bridge

DOM=example.test
POLICY_PORT=10040
# Postfix's smtpd runs as postfix: the Unix socket lives where it may reach
# (E2E_TMP is private to root)
SOCK_DIR=/run/rg-e2e-$E2E_NAME
mkdir -m 0755 "$SOCK_DIR"
e2e_defer rm -rf "$SOCK_DIR"
POLICY_SOCK=$SOCK_DIR/policy.sock
CTL_SOCK=$SOCK_DIR/ctl.sock
SHM=/dev/shm/rg-e2e-$E2E_NAME

e2e_users "$E2E_TMP/users" "alice@$DOM" "bob@$DOM"

# the destination: knows alice and bob, refuses everyone else with 550 5.1.1
e2e_postfix dest dest-reject --port 2525 --users "$E2E_TMP/users"

# the front: relays example.test to the destination, knows nothing of its users,
# asks rcptgated about every recipient
e2e_postfix front frontline --port 25 --domain "$DOM" --domain slow.test --domain other.test \
	--relay "$TB_S_ADDR:2525" \
	--set "relay_recipient_maps=" \
	--set "smtpd_recipient_restrictions=check_policy_service unix:$POLICY_SOCK, check_policy_service inet:127.0.0.1:$POLICY_PORT, reject_unauth_destination" \
	--set "smtpd_policy_service_timeout=30s"

cat >"$E2E_TMP/rcptgated.conf" <<EOF
[global]
shm_path = $SHM
shm_max_lcores = 2
table_init_log2 = 10
table_max_log2 = 14
store_path = $E2E_TMP/store
store_map_mb = 32
control_socket = $CTL_SOCK
control_uids = 0
xdp_pin_dir = $E2E_TMP/bpf
policy_listen = $POLICY_SOCK, 127.0.0.1:$POLICY_PORT
policy_socket_group = postfix
policy_timeout = 3s
log_stderr = yes
accept_all_probe = no

[domain $DOM]
destination = $TB_S_ADDR:2525
miss_policy = pass
helo_name = rcptgate.test

# a destination that takes 20 s to answer RCPT; misses wait for it
[domain slow.test]
destination = $TB_S_ADDR:2526
miss_policy = defer
command_timeout = 30s
EOF
mkdir -p "$E2E_TMP/store"
e2e_bg slowsink ip netns exec "$TB_S_NS" smtp-sink -u nobody -W RCPT:20 "$TB_S_ADDR:2526" 10
e2e_wait_tcp "$TB_S_NS" "$TB_S_ADDR" 2526
e2e_defer rm -f "$SHM"
e2e_bg rcptgated timeout -k 5 300 ip netns exec "$TB_S_NS" "$RCPTGATED" -c "$E2E_TMP/rcptgated.conf"
e2e_wait_for 10 "rcptgated's control socket" test -S "$CTL_SOCK"
e2e_wait_tcp "$TB_S_NS" 127.0.0.1 "$POLICY_PORT"
ctl() { "$RCPTCTL" --socket "$CTL_SOCK" "$@"; }

# 1. set by hand: the front refuses with the policy service's reply
ctl set "ghost@$DOM" invalid --ttl 1h >/dev/null
rc=0; e2e_swaks ghost.txt --to "ghost@$DOM" --from "sender@client.test" || rc=$?
e2e_assert_eq "swaks exit for ghost (24 = RCPT refused)" 24 "$rc"
e2e_assert_grep "swaks transcript" '<\*\* 550 5\.1\.1 <ghost@'"$DOM"'>: Recipient address rejected: User unknown' "$E2E_TMP/ghost.txt"
e2e_assert_log front "NOQUEUE: reject: RCPT from .*: 550 5.1.1 <ghost@$DOM>: Recipient address rejected: User unknown"

# 2. never seen: a callout to the destination decides, within policy_timeout
rc=0; e2e_swaks nosuch.txt --to "nosuch@$DOM" --from "sender@client.test" || rc=$?
e2e_assert_eq "swaks exit for nosuch" 24 "$rc"
e2e_assert_grep "swaks transcript" '<\*\* 550 5\.1\.1 <nosuch@'"$DOM"'>: Recipient address rejected: User unknown' "$E2E_TMP/nosuch.txt"
ctl --json lookup "nosuch@$DOM" >"$E2E_TMP/lookup-nosuch.json" && rc=0 || rc=$?
e2e_assert_eq "rcptctl lookup exit for nosuch (1 = invalid)" 1 "$rc"
e2e_assert_grep "lookup nosuch" '"verdict":"invalid"' "$E2E_TMP/lookup-nosuch.json"
e2e_assert_grep "lookup nosuch" '"source":"callout"' "$E2E_TMP/lookup-nosuch.json"
# the destination saw the probe, not the client's mail
e2e_assert_log dest "NOQUEUE: reject: RCPT from .*<nosuch@$DOM>"

# 3. a valid recipient: verified, passed, delivered through the front
e2e_make_message "$E2E_TMP/msg" tokalice 2
rc=0; e2e_swaks alice.txt --to "alice@$DOM" --from "sender@client.test" --data "$E2E_TMP/msg" || rc=$?
e2e_assert_eq "swaks exit for alice" 0 "$rc"
e2e_wait_delivered dest "alice@$DOM" 1 60
ctl lookup "alice@$DOM" >/dev/null && rc=0 || rc=$?
e2e_assert_eq "rcptctl lookup exit for alice (0 = valid)" 0 "$rc"

# 4. a domain rcptgated does not manage: DUNNO, Postfix decides (relays it)
rc=0; e2e_swaks other.txt --to "someone@other.test" --from "sender@client.test" --quit-after RCPT || rc=$?
e2e_assert_eq "swaks exit for an unmanaged domain" 0 "$rc"

# 5. a second message to the cached invalid recipient: answered from the table
rc=0; e2e_swaks nosuch2.txt --to "nosuch@$DOM" --from "sender@client.test" || rc=$?
e2e_assert_eq "swaks exit for nosuch again" 24 "$rc"

# 6. a miss of a defer domain whose destination is slow: 450 after policy_timeout
t0=$SECONDS
rc=0; e2e_swaks slow.txt --to "someone@slow.test" --from "sender@client.test" || rc=$?
e2e_assert_eq "swaks exit for the slow domain" 24 "$rc"
e2e_assert_grep "swaks transcript" '<\*\* 450 4\.7\.1 <someone@slow\.test>: Recipient address rejected: verification in progress' "$E2E_TMP/slow.txt"
e2e_assert_ge "seconds the policy answer waited (policy_timeout 3s)" 3 $((SECONDS - t0 + 1))

# both listeners were used: smtpd keeps its policy connections open (max_idle),
# and valid/unmanaged recipients reach the TCP one after the Unix one said DUNNO
n=$(ip netns exec "$TB_S_NS" ss -Htn state established "( sport = :$POLICY_PORT )" | wc -l)
e2e_assert_ge "policy TCP connections open" 1 "$n"
# (Unix sockets belong to the network namespace of the process that made them)
n=$(ip netns exec "$TB_S_NS" ss -Hx state established | grep -cF "$POLICY_SOCK" || true)
e2e_assert_ge "policy Unix connections open" 1 "$n"
ctl --json stats >"$E2E_TMP/stats.json"
e2e_assert_grep "rcptctl stats" '"policy":\{' "$E2E_TMP/stats.json"
rej=$(sed -n 's/.*"policy":{[^}]*"reject":\([0-9]*\).*/\1/p' "$E2E_TMP/stats.json")
e2e_assert_ge "policy 550 answers" 3 "${rej:-0}"

# 7. the control socket: nobody is refused by uid even when the file mode lets it in
chmod 0666 "$CTL_SOCK"
rc=0; setpriv --reuid=65534 --regid=65534 --clear-groups "$RCPTCTL" --socket "$CTL_SOCK" status \
	>"$E2E_TMP/nobody.txt" 2>&1 || rc=$?
e2e_assert_eq "rcptctl as nobody: exit 4 (refused)" 4 "$rc"
e2e_assert_grep "rcptctl as nobody" "denied" "$E2E_TMP/nobody.txt"

# 8. exit codes scripts rely on
rc=0; ctl lookup nobody >/dev/null 2>&1 || rc=$?
e2e_assert_eq "rcptctl lookup of a malformed address: exit 2" 2 "$rc"
rc=0; ctl block 198.18.0.1/15 >/dev/null 2>&1 || rc=$?
e2e_assert_eq "rcptctl block with host bits set: exit 2" 2 "$rc"
rc=0; ctl del "never@$DOM" >/dev/null 2>&1 || rc=$?
e2e_assert_eq "rcptctl del of an unknown address: exit 1" 1 "$rc"
rc=0; "$RCPTCTL" --socket "$SOCK_DIR/none.sock" status >/dev/null 2>&1 || rc=$?
e2e_assert_eq "rcptctl without a daemon: exit 3" 3 "$rc"

e2e_alive "$E2E_BG_PID" rcptgated
e2e_pass

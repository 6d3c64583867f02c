#!/bin/bash
# t_dp_midstream.sh — a session rcptgate-dp did not see open is forwarded
# unedited, fail-open: the destination answers its recipients itself and the
# frames are counted as mid-stream; a session opened after the restart is
# filtered as usual.  Such a session is one that opened while no data plane
# with its state ran: here a data plane started without a state file
# (--state none) restarted in the middle of it.  With the state file (the
# default) the same restart takes the session over instead: the restarted
# data plane answers its recipient itself (flows_adopted).
# Also: SIGTERM and a restart on the same file prefix and shared memory work.
# Bounded: ~50 s.
source "$(dirname "$0")/lib.sh"
e2e_init dpm
source "$(dirname "$0")/dp_lib.sh"
e2e_require_cmd python3

dp_world "alice" "nosuch1 nosuch2"
D=$DP_DOMAIN

# a client that opens a session, waits for a go, then sends MAIL and RCPT
cat >"$E2E_TMP/slow.py" <<'EOP'
import os, socket, sys, time
server, bad, tmp = sys.argv[1:4]
s = socket.create_connection((server, 25), timeout=30)
f = s.makefile('rb')
def reply():
    while True:
        l = f.readline().decode()
        if not l:
            raise SystemExit('connection closed')
        print('<- ' + l.rstrip('\r\n'), flush=True)
        if l[3:4] != '-':
            return
reply()
s.sendall(b'EHLO client.test\r\n'); reply()
open(tmp + '/ready', 'w').close()
for _ in range(300):
    if os.path.exists(tmp + '/go'):
        break
    time.sleep(0.1)
else:
    raise SystemExit('no go')
s.sendall(b'MAIL FROM:<sender@client.test>\r\nRCPT TO:<%s>\r\n' % bad.encode())
reply(); reply()
s.sendall(b'QUIT\r\n'); reply()
EOP

# slow_session TAG: start the slow client, wait until its session is open
slow_session() {
	rm -f "$E2E_TMP/ready" "$E2E_TMP/go"
	e2e_bg "$1" ip netns exec "$TB_C_NS" python3 "$E2E_TMP/slow.py" "$TB_S_ADDR" "nosuch1@$D" "$E2E_TMP"
	e2e_wait_for 15 "the session to open ($1)" test -e "$E2E_TMP/ready"
}

# 1. no state file: the restarted data plane never saw the session open
dp_start dp1 af_packet --state none
slow_session slow
dp_stop
dp_start dp2 af_packet --state none
mid0=$(dp_stat flows_midstream)
touch "$E2E_TMP/go"
e2e_wait_for 30 "the mid-stream session to end" grep -q '^<- 221' "$E2E_TMP/slow.log"
# not filtered: the destination itself refused nosuch1
e2e_assert_grep "mid-stream session answered by the destination" \
	"550 5.1.1 <nosuch1@$D>: .*$DP_POSTFIX_TEXT" "$E2E_TMP/slow.log"
e2e_assert_ge "flows_midstream" $((mid0 + 1)) "$(dp_stat flows_midstream)"
e2e_assert_eq "flows_adopted without a state file" 0 "$(dp_stat flows_adopted)"
dp_stop

# 2. the state file: the same restart takes the session over and filters it
e2e_defer rm -f "$DP_SHM.dp-state"
dp_start dp3 af_packet
slow_session slow2
dp_stop
dp_start dp4 af_packet
e2e_assert_ge "flows_adopted" 1 "$(dp_stat flows_adopted)"
touch "$E2E_TMP/go"
e2e_wait_for 30 "the taken-over session to end" grep -q '^<- 221' "$E2E_TMP/slow2.log"
dp_assert_filtered "$E2E_TMP/slow2.log" "nosuch1@$D"

# a new session is filtered
e2e_swaks new.txt --pipeline --helo client.test --from sender@client.test \
	--to "alice@$D,nosuch2@$D" --header "X-RG-Test: after-restart" || true
dp_assert_filtered "$E2E_TMP/new.txt" "nosuch2@$D"
e2e_wait_delivered dest "alice@$D" 1
e2e_assert_no_log dest "nosuch2"
e2e_log "flows_midstream $(dp_stat flows_midstream) failopen $(dp_stat failopen) rcpt_rejected $(dp_stat rcpt_rejected)"
dp_stop
e2e_pass

#!/bin/bash
# rcptgated's callouts against real servers in the testbed: a Postfix set up like
# Plesk set to "Reject" (unknown users get 550 5.1.1), a Postfix like Plesk's
# default (catch-all: must be detected as accept-all), and smtp-sink answering RCPT
# with 4xx (-r), with 421 and a hang-up (-Q), by dropping the connection (-q) and
# slowly (-W) inside and outside the command timeout. Recipients are asked through
# the policy service (Postfix's check_policy_service protocol); the verdicts, the
# destination states and the store are checked, then rcptgated is killed with -9
# and restarted: the cached verdicts answer again without any new callout.
. "$(dirname "$0")/lib.sh"

e2e_init ctlc
e2e_require_cmd smtp-sink
e2e_testbed_up
e2e_bridge
RCPTGATED=$(e2e_bin control/rcptgated)

e2e_users "$E2E_TMP/users" alice@reject.test bob@reject.test
e2e_postfix rej dest-reject --users "$E2E_TMP/users"
e2e_users "$E2E_TMP/users2" carol@accept.test
e2e_postfix all dest-acceptall --users "$E2E_TMP/users2" --port 2525

# smtp-sink variants in the server namespace
sink() { # PORT OPTIONS...
	local port=$1; shift
	e2e_bg "sink$port" ip netns exec "$TB_S_NS" smtp-sink -u nobody "$@" "$TB_S_ADDR:$port" 64
	e2e_wait_tcp "$TB_S_NS" "$TB_S_ADDR" "$port"
}
sink 2601 -r RCPT
sink 2602 -Q RCPT
sink 2603 -q RCPT
sink 2604 -W RCPT:2
sink 2605 -W RCPT:5

cat >"$E2E_TMP/rcptgated.conf" <<CONF
[global]
shm_path = $E2E_TMP/shm
store_path = $E2E_TMP/store
control_socket = $E2E_TMP/ctl.sock
shm_max_lcores = 2
table_init_log2 = 10
log_stderr = yes
policy_listen = 127.0.0.1:10040
policy_timeout = 15s
command_timeout = 3s
ttl_tempfail = 1s

[domain reject.test]
destination = $TB_S_ADDR:25

[domain accept.test]
destination = $TB_S_ADDR:2525

[domain temp.test]
destination = $TB_S_ADDR:2601
accept_all_probe = no
miss_policy = defer

[domain q421.test]
destination = $TB_S_ADDR:2602
accept_all_probe = no

[domain drop.test]
destination = $TB_S_ADDR:2603
accept_all_probe = no

[domain slow.test]
destination = $TB_S_ADDR:2604
accept_all_probe = no

[domain tooslow.test]
destination = $TB_S_ADDR:2605
accept_all_probe = no
CONF

start_gated() {
	e2e_bg rcptgated$1 ip netns exec "$TB_C_NS" "$RCPTGATED" -c "$E2E_TMP/rcptgated.conf"
	GATED_PID=$E2E_BG_PID
	e2e_wait_tcp "$TB_C_NS" 127.0.0.1 10040
}

# policy RCPT: the policy service's action for one recipient
policy() {
	ip netns exec "$TB_C_NS" timeout 30 bash -c '
		exec 3<>/dev/tcp/127.0.0.1/10040
		printf "request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\nclient_address=198.18.0.1\nsender=s@client.test\nrecipient=%s\n\n" "$1" >&3
		IFS= read -r line <&3
		echo "${line%$'\''\r'\''}"' _ "$1"
}

expect_action() { # RCPT ERE
	local got
	got=$(policy "$1")
	[[ $got =~ $2 ]] || e2e_fail "policy answer for $1: '$got', expected /$2/"
	e2e_log "$1 -> $got"
}

start_gated 1
expect_action alice@reject.test '^action=DUNNO$'
expect_action nosuchuser@reject.test '^action=550 5\.1\.1( |$)'
expect_action anything@accept.test '^action=DUNNO$'
expect_action carol@accept.test '^action=DUNNO$'
expect_action x@temp.test '^action=450 4\.7\.1( |$)'
expect_action x@q421.test '^action=DUNNO$'
expect_action x@drop.test '^action=DUNNO$'
expect_action x@slow.test '^action=DUNNO$'
expect_action x@tooslow.test '^action=DUNNO$'

LOG=$E2E_TMP/rcptgated1.log
e2e_assert_grep rcptgated 'callout: <alice@reject\.test>: valid via .*250 2\.1\.5' "$LOG"
e2e_assert_grep rcptgated 'callout: <nosuchuser@reject\.test>: invalid via .*550 5\.1\.1 .*User unknown in virtual mailbox table' "$LOG"
e2e_assert_grep rcptgated 'callout: accept\.test: destination accepts any local part' "$LOG"
e2e_assert_grep rcptgated 'callout: <anything@accept\.test>: accept_all' "$LOG"
e2e_assert_grep rcptgated 'callout: <x@temp\.test>: tempfail via .*: 45[0-9] ' "$LOG"
e2e_assert_grep rcptgated 'callout: <x@q421\.test>: tempfail via .*421' "$LOG"
e2e_assert_grep rcptgated 'callout: <x@drop\.test>: tempfail via .*connection closed by server' "$LOG"
e2e_assert_grep rcptgated 'callout: <x@slow\.test>: valid via .*250' "$LOG"
e2e_assert_grep rcptgated 'callout: <x@tooslow\.test>: tempfail via .*timeout waiting for reply' "$LOG"
# the destination saw the probes from the client side, with the null sender
e2e_assert_log rej 'NOQUEUE: reject: RCPT from unknown\[[0-9.]+\]: 550 5\.1\.1 <nosuchuser@reject\.test>.*from=<>'

# kill -9 and restart: the verdicts come from the store, no new callout
sessions_before=$(e2e_log_count rej 'connect from')
kill -9 "$GATED_PID"
sleep 0.5
start_gated 2
e2e_assert_grep rcptgated 'table rebuilt from the store: [1-9][0-9]* verdicts published' "$E2E_TMP/rcptgated2.log"
expect_action nosuchuser@reject.test '^action=550 5\.1\.1( |$)'
expect_action alice@reject.test '^action=DUNNO$'
sleep 1
e2e_assert_eq "callout sessions to the Plesk-like Postfix after the restart" \
	"$sessions_before" "$(e2e_log_count rej 'connect from')"
e2e_assert_no_grep rcptgated 'callout: <nosuchuser@reject\.test>' "$E2E_TMP/rcptgated2.log"

# a new unknown user after the restart is verified again
expect_action newcomer@reject.test '^action=550 5\.1\.1'
e2e_pass

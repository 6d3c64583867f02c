#!/bin/bash
# rcptctl top, driven through tmux (send-keys, capture-pane) while the
# inline testbed refuses recipients of a closed list:
#   1. before traffic the screen shows the refused rate at 0.0;
#   2. during traffic (swaks sessions of 10 unlisted recipients, bounded
#      to 40 sessions or 15 s) the refused and answered rates move above 0,
#      and the list of most refused domains and client prefixes names the
#      test's domain and the client's /24;
#   3. typing q ends it (the pane's process exits, the terminal is restored);
#   4. with stdout not a terminal it prints plain lines, one per second.
source "$(dirname "$0")/lib.sh"
e2e_init rtop
source "$(dirname "$0")/dp_lib.sh"
e2e_require_cmd tmux
RCPTGATED=$(e2e_bin control/rcptgated)
CTL=$(e2e_bin control/rcptctl)
D=$DP_DOMAIN

dp_hugepages
e2e_testbed_up
e2e_users "$E2E_TMP/users" "alice@$D"
e2e_postfix dest dest-reject --users "$E2E_TMP/users"
e2e_defer rm -f "$DP_SHM"
printf 'alice@%s\n' "$D" >"$E2E_TMP/list"
cat >"$E2E_TMP/rcptgated.conf" <<CONF
[global]
shm_path = $DP_SHM
store_path = $E2E_TMP/store
control_socket = $E2E_TMP/ctl.sock
shm_max_lcores = 4
table_init_log2 = 10
table_max_log2 = 16
log_stderr = yes

[domain $D]
mode = list
list = $E2E_TMP/list
CONF
e2e_bg rcptgated ip netns exec "$TB_S_NS" "$RCPTGATED" -c "$E2E_TMP/rcptgated.conf"
GATED_PID=$E2E_BG_PID
e2e_wait_for 10 "rcptgated started" grep -q 'rcptgated .* started' "$E2E_TMP/rcptgated.log"
dp_start dp af_packet

TM=(tmux -L "rg-$E2E_NAME")
export TERM=${TERM:-xterm}
e2e_defer "${TM[@]}" kill-server
"${TM[@]}" new-session -d -s top -x 140 -y 50 \
	"$CTL --socket $E2E_TMP/ctl.sock top; echo rcptctl-top-exit=\$?; sleep 30"
screen() { "${TM[@]}" capture-pane -p -t top; }
rate_of() { screen | awk -v l="$1" 'index($0, l) == 1 {print $NF; exit}'; }
e2e_wait_for 10 "top's first screen with rates" bash -c "$(declare -f screen rate_of); TM=(${TM[*]}); rate_of refused | grep -q '^[0-9]'"
screen >"$E2E_TMP/screen0.txt"
e2e_assert_grep "the title" "^rcptctl top" "$E2E_TMP/screen0.txt"
e2e_assert_eq "refused rate before traffic" 0.0 "$(rate_of refused)"

# 2. traffic in the background, bounded
rcpts=$(printf "alice@$D"; for j in $(seq 1 10); do printf ",n$j@$D"; done)
(
	end=$((SECONDS + 15))
	for i in $(seq 1 40); do
		((SECONDS < end)) || break
		e2e_swaks "s$i.txt" --helo client.test --from sender@client.test --to "$rcpts" || true
	done
) &
TRAFFIC=$!
moved=0
for i in $(seq 1 20); do
	sleep 0.5
	r=$(rate_of refused)
	if awk -v r="$r" 'BEGIN {exit !(r + 0 > 0)}'; then
		moved=1
		break
	fi
done
screen >"$E2E_TMP/screen1.txt"
e2e_log "screen during traffic:"; sed 's/^/    /' "$E2E_TMP/screen1.txt" >&2
e2e_assert_eq "the refused rate moved above 0 during traffic" 1 "$moved"
a=$(awk 'index($0, "answered") == 1 {print $NF}' "$E2E_TMP/screen1.txt")
awk -v r="$a" 'BEGIN {exit !(r + 0 > 0)}' || e2e_fail "answered rate '$a' did not move"
e2e_assert_grep "most refused domain" "^$D +[1-9][0-9]*\$" "$E2E_TMP/screen1.txt"
cprefix=$(echo "$TB_C_ADDR" | awk -F. '{print $1"."$2"."$3".0/24"}')
e2e_assert_grep "most refused client prefix" "^${cprefix//./\\.} +[1-9][0-9]*\$" "$E2E_TMP/screen1.txt"
e2e_assert_grep "the domain's breaker" "^$D +[a-z]+ +closed " "$E2E_TMP/screen1.txt"
wait "$TRAFFIC" || true

# 3. q quits
"${TM[@]}" send-keys -t top q
e2e_wait_for 5 "rcptctl top exits on q" bash -c "$(declare -f screen); TM=(${TM[*]}); screen | grep -q 'rcptctl-top-exit=0'"

# 4. not a terminal: plain lines
"$CTL" --socket "$E2E_TMP/ctl.sock" top --count 3 >"$E2E_TMP/plain.txt"
e2e_assert_eq "plain lines, one per refresh" 3 "$(wc -l <"$E2E_TMP/plain.txt")"
e2e_assert_no_grep "no terminal escapes in plain lines" $'\033' "$E2E_TMP/plain.txt"
e2e_assert_grep "plain line's rates and top domain" \
	"^20[0-9-]+T[0-9:]+Z RCPTs_seen=[0-9.]+/s .*refused=[0-9.]+/s .*top_domain=$D\([1-9][0-9]*\)" "$E2E_TMP/plain.txt"
e2e_alive "$GATED_PID" rcptgated
e2e_alive "$DP_PID" dp
e2e_pass

#!/bin/bash
# t_dp_shm.sh — rcptgate-dp and the shared-memory file's life cycle: started
# before the file exists it says so and waits, then attaches and filters once
# the file appears; a file of another ABI version is refused with what
# differs (exit 1); when the file is re-created (the old one marked RETIRED)
# it switches to the new one while running: the new verdicts apply and the
# counters carry over.  Bounded: ~40 s.
source "$(dirname "$0")/lib.sh"
e2e_init dps
source "$(dirname "$0")/dp_lib.sh"

dp_hugepages
e2e_testbed_up
e2e_defer rm -f "$DP_SHM" "$DP_SHM.bad"
D=$DP_DOMAIN
e2e_users "$E2E_TMP/users" "alice@$D"
e2e_postfix dest dest-reject --users "$E2E_TMP/users"
fill() { # invalid local part
	"$DP_SHMTOOL" create "$DP_SHM" 4 >/dev/null
	"$DP_SHMTOOL" domain "$DP_SHM" "$D" callout pass >/dev/null
	"$DP_SHMTOOL" put "$DP_SHM" "alice@$D" valid >/dev/null
	"$DP_SHMTOOL" put "$DP_SHM" "$1@$D" invalid >/dev/null
}

# 1. ABI mismatch: refused, with the versions named
"$DP_SHMTOOL" create "$DP_SHM.bad" 4 >/dev/null
printf '\x63' | dd of="$DP_SHM.bad" bs=1 seek=8 conv=notrunc 2>/dev/null
rc=0
timeout 30 "$DP_BIN" -l 0-1 --no-pci --file-prefix "$E2E_NAME" -m 256 --log-level lib.eal:warning \
	--vdev "net_af_packet0,iface=$TB_C_ROOT" --vdev "net_af_packet1,iface=$TB_S_ROOT" \
	-- --shm "$DP_SHM.bad" --pair 0:1 >"$E2E_TMP/abi.log" 2>&1 || rc=$?
e2e_assert_eq "exit status on an ABI mismatch" 1 "$rc"
e2e_assert_grep "ABI mismatch message" "cannot attach: .*abi version 99, expected 1" "$E2E_TMP/abi.log"

# 2. started before the file exists: waits, then attaches
rm -f "$DP_SHM"
rm -rf "/var/run/dpdk/$E2E_NAME"
e2e_bg dp "$DP_BIN" -l 0-1 --no-pci --file-prefix "$E2E_NAME" -m 256 --log-level lib.eal:warning \
	--vdev "net_af_packet0,iface=$TB_C_ROOT" --vdev "net_af_packet1,iface=$TB_S_ROOT" \
	-- --shm "$DP_SHM" --pair 0:1
DP_PID=$E2E_BG_PID DP_LABEL=dp
e2e_defer bash -c "rm -rf /var/run/dpdk/$E2E_NAME"
e2e_wait_for 15 "the waiting message" grep -q "waiting for rcptgated: $DP_SHM: No such file" "$E2E_TMP/dp.log"
fill gen1bad
e2e_wait_for 15 "rcptgate-dp running" grep -q 'rcptgate-dp: running' "$E2E_TMP/dp.log"
e2e_wait_for 10 "a TCP connection through rcptgate-dp" e2e_tcp_connects "$TB_S_ADDR" 25 2
e2e_swaks g1.txt --pipeline --from sender@client.test --to "alice@$D,gen1bad@$D" \
	--header "X-RG-Test: gen1" || true
dp_assert_filtered "$E2E_TMP/g1.txt" "gen1bad@$D"

# 3. the file re-created while running: re-attach, new verdicts, counters kept
fill gen2bad
e2e_wait_for 10 "the re-attach" grep -q "was retired; re-attaching" "$E2E_TMP/dp.log"
e2e_wait_for 10 "the second attach" bash -c "[[ \$(grep -c 'rcptgate-dp: attached' '$E2E_TMP/dp.log') -ge 2 ]]"
sleep 0.5
e2e_assert_ge "rcpt_rejected carried over to the new file" 1 "$(dp_stat rcpt_rejected)"
e2e_swaks g2.txt --pipeline --from sender@client.test --to "alice@$D,gen2bad@$D,gen1bad@$D" \
	--header "X-RG-Test: gen2" || true
dp_assert_filtered "$E2E_TMP/g2.txt" "gen2bad@$D"
# gen1bad is not in the new table: a miss, forwarded (pass), refused by the destination
e2e_assert_grep "gen1bad now answered by the destination" "<gen1bad@$D>: .*$DP_POSTFIX_TEXT" "$E2E_TMP/g2.txt"
e2e_assert_eq "rcpt_rejected after the switch" 2 "$(dp_stat rcpt_rejected)"
e2e_assert_ge "rcpt_miss after the switch" 1 "$(dp_stat rcpt_miss)"
e2e_wait_delivered dest "alice@$D" 2
dp_stop
e2e_pass

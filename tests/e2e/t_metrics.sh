#!/bin/bash
# /metrics during real traffic, read by Prometheus's own tools: rcptgated
# (inside, in the server namespace) serves metrics_listen on that
# namespace's loopback while rcptgate-dp (net_af_packet) refuses recipients
# of a closed list in front of a Plesk-like Postfix:
#   1. swaks sends sessions of a listed and ten unlisted recipients through
#      the data plane, which refuses each unlisted one;
#   2. the exposition passes `promtool check metrics` (Debian's prometheus)
#      and has the families the issue names (per-lcore counters, per-domain
#      gauges, the callout histogram);
#   3. a real Prometheus server (same namespace, loopback) scrapes it every
#      second and answers the query sum(rcptgate_dataplane_rcpt_rejected_total)
#      with the value `rcptctl stats` reports for dataplane.rcpt_rejected.
source "$(dirname "$0")/lib.sh"
e2e_init metr
source "$(dirname "$0")/dp_lib.sh"
e2e_require_cmd promtool prometheus curl
RCPTGATED=$(e2e_bin control/rcptgated)
CTL=$(e2e_bin control/rcptctl)
D=$DP_DOMAIN
MPORT=9489
PPORT=9490

dp_hugepages
e2e_testbed_up
e2e_users "$E2E_TMP/users" "alice@$D" "bob@$D"
e2e_postfix dest dest-reject --users "$E2E_TMP/users"
e2e_defer rm -f "$DP_SHM"
printf 'alice@%s\nbob@%s\n' "$D" "$D" >"$E2E_TMP/list"

cat >"$E2E_TMP/rcptgated.conf" <<CONF
[global]
shm_path = $DP_SHM
store_path = $E2E_TMP/store
control_socket = $E2E_TMP/ctl.sock
shm_max_lcores = 4
table_init_log2 = 10
table_max_log2 = 16
log_stderr = yes
metrics_listen = 127.0.0.1:$MPORT

[domain $D]
mode = list
list = $E2E_TMP/list

[domain callout.test]
destination = $TB_S_ADDR:25
CONF
e2e_bg rcptgated ip netns exec "$TB_S_NS" "$RCPTGATED" -c "$E2E_TMP/rcptgated.conf"
GATED_PID=$E2E_BG_PID
e2e_wait_for 10 "rcptgated started" grep -q 'rcptgated .* started' "$E2E_TMP/rcptgated.log"
e2e_assert_grep "metrics listener" "metrics: serving /metrics on 127.0.0.1:$MPORT" "$E2E_TMP/rcptgated.log"
dp_start dp af_packet
ctl() { "$CTL" --socket "$E2E_TMP/ctl.sock" "$@"; }
scrape() { e2e_in_server curl -sf "http://127.0.0.1:$MPORT/metrics"; }
stat_of() { ctl stats | awk -v k="$1" '$1 == k {print $2}'; }

# 1. traffic: 12 sessions of alice and 10 unlisted recipients each; a
# callout so that the histogram has an entry
rcpts=$(printf "alice@$D"; for j in $(seq 1 10); do printf ",n$j@$D"; done)
for i in $(seq 1 12); do
	e2e_swaks "s$i.txt" --helo client.test --from sender@client.test --to "$rcpts" || true
done
dp_assert_filtered "$E2E_TMP/s12.txt" "n10@$D"
rc=0
e2e_swaks u.txt --helo client.test --from sender@client.test --to "nosuch@$D" || rc=$?
dp_assert_filtered "$E2E_TMP/u.txt" "nosuch@$D"
ctl verify "someone@callout.test" >"$E2E_TMP/verify.txt" 2>&1 || true
rejected=$(stat_of dataplane.rcpt_rejected)
e2e_log "rcptctl stats: dataplane.rcpt_rejected = $rejected"
e2e_assert_ge "RCPTs refused by the data plane" 100 "$rejected"

# 2. the exposition
scrape >"$E2E_TMP/metrics.txt" || e2e_fail "GET /metrics failed"
e2e_log "/metrics: $(wc -l <"$E2E_TMP/metrics.txt") lines, $(grep -c '^# TYPE' "$E2E_TMP/metrics.txt") families"
promtool check metrics <"$E2E_TMP/metrics.txt" >"$E2E_TMP/promtool.txt" 2>&1 ||
	{ cat "$E2E_TMP/promtool.txt"; e2e_fail "promtool check metrics failed"; }
e2e_assert_eq "promtool check metrics: no complaint" "" "$(cat "$E2E_TMP/promtool.txt")"
sum=$(awk '/^rcptgate_dataplane_rcpt_rejected_total\{lcore="[0-9]+"\}/ {s += $2} END {print s + 0}' \
	"$E2E_TMP/metrics.txt")
e2e_assert_eq "per-lcore rcpt_rejected summed = rcptctl's" "$rejected" "$sum"
for fam in 'rcptgate_daemon_misses_total counter' 'rcptgate_table_entries gauge' \
	'rcptgate_rings_miss_depth gauge' 'rcptgate_callout_duration_seconds histogram' \
	'rcptgate_domain_breaker_open gauge' 'rcptgate_domain_accept_all gauge' \
	'rcptgate_domain_queue_depth gauge' 'rcptgate_domain_list_entries gauge' \
	'rcptgate_policy_requests_total counter' 'rcptgate_ctl_requests_total counter'; do
	e2e_assert_grep "family $fam" "^# TYPE $fam\$" "$E2E_TMP/metrics.txt"
done
e2e_assert_grep "list domain's entries" "^rcptgate_domain_list_entries\{domain=\"$D\"\} 2\$" "$E2E_TMP/metrics.txt"
e2e_assert_grep "a callout in the histogram" '^rcptgate_callout_duration_seconds_count [1-9]' "$E2E_TMP/metrics.txt"
# every counter rcptctl stats prints is there (dataplane.X as its per-lcore family)
missing=$(ctl stats | awk '{print $1}' | while read -r k; do
	g=${k%%.*} n=${k#*.}
	grep -qE "^rcptgate_${g}_${n}(_total)?[ {]" "$E2E_TMP/metrics.txt" || echo "$k"
done)
e2e_assert_eq "rcptctl stats counters missing from /metrics" "" "$missing"
# the Grafana dashboard asks only for names /metrics has
dash=$RG_SRC/contrib/grafana/rcptgate.json
python3 -m json.tool "$dash" >/dev/null || e2e_fail "$dash is not JSON"
unknown=$(grep -o 'rcptgate_[a-z0-9_]*' "$dash" | sed 's/_bucket$//' | sort -u | while read -r m; do
	grep -q "^# TYPE $m " "$E2E_TMP/metrics.txt" || echo "$m"
done)
e2e_assert_eq "names in the Grafana dashboard missing from /metrics" "" "$unknown"
code=$(e2e_in_server curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$MPORT/other")
e2e_assert_eq "anything but /metrics" 404 "$code"

# 3. a Prometheus server scraping it
cat >"$E2E_TMP/prometheus.yml" <<YML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: rcptgated
    static_configs:
      - targets: ['127.0.0.1:$MPORT']
YML
promtool check config "$E2E_TMP/prometheus.yml" >/dev/null || e2e_fail "promtool check config"
e2e_bg prometheus ip netns exec "$TB_S_NS" prometheus --config.file="$E2E_TMP/prometheus.yml" \
	--storage.tsdb.path="$E2E_TMP/tsdb" --web.listen-address="127.0.0.1:$PPORT" \
	--log.level=warn
query() {
	e2e_in_server curl -sf --get "http://127.0.0.1:$PPORT/api/v1/query" --data-urlencode "query=$1" |
		python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "")'
}
e2e_wait_for 30 "Prometheus ready" e2e_in_server curl -sf "http://127.0.0.1:$PPORT/-/ready"
rejected=$(stat_of dataplane.rcpt_rejected) # traffic is over: it stays put
q='sum(rcptgate_dataplane_rcpt_rejected_total{job="rcptgated"})'
got=
for i in $(seq 1 60); do
	got=$(query "$q" || true)
	[ "$got" = "$rejected" ] && break
	sleep 0.5
done
e2e_log "Prometheus: $q = '$got'; rcptctl stats: dataplane.rcpt_rejected = $rejected"
e2e_assert_eq "Prometheus's answer = rcptctl stats" "$rejected" "$got"
up=$(query 'up{job="rcptgated"}')
e2e_assert_eq "Prometheus sees the target up" 1 "$up"
e2e_alive "$GATED_PID" rcptgated
e2e_alive "$DP_PID" dp
e2e_pass

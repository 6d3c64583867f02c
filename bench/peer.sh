#!/bin/bash
# bench/peer.sh — `rcptgate-bench peer`: the same SMTP workload against
#   (a) a real Postfix that rejects unknown recipients itself (the front line an
#       operator would otherwise run), reached through a kernel bridge, and
#   (b) rcptgate-dp inline in front of that same Postfix (a domain in list mode:
#       the data plane answers every unlisted recipient itself),
# Postfix's tarpit (smtpd_error_sleep_time after smtpd_soft_error_limit errors)
# is turned off so it is measured at its full speed, not its deliberate slowness.
# Plus the I/O ceiling: dpdk-testpmd io-forwarding over the same veth pair to an
# smtp-sink that accepts everything as fast as it can.
#
# The workload: N sessions of one pipelined transaction each; dictionary-attack
# sessions send M random local parts (Postfix accepts up to 1000 recipients per
# transaction by default), legitimate ones a message to --legit-rcpts valid
# recipients (default M as well), mixed in the proportion that makes the given
# share of all recipients invalid, as an MX sees it under attack.
# For each invalid share it reports RCPT answers per second, sessions per second,
# and the destination Postfix's CPU seconds (its master's own and reaped
# children's times plus its live children's, from /proc), as the median of --reps
# runs with min and max. Ends with one JSON line. Root; bounded in time.
#
# Called by `rcptgate-bench peer` with RG_BENCH (the rcptgate-bench binary),
# RG_BUILD and RG_SRC set; runnable by hand the same way.
set -euo pipefail

SRC=${RG_SRC:-$(cd "$(dirname "$0")/.." && pwd)}
BUILD=${RG_BUILD:-$SRC/build}
BENCH=${RG_BENCH:-$BUILD/bench/rcptgate-bench}
TB=$SRC/scripts/testbed
PFI=$SRC/scripts/postfix-inst

NAME=rgpeer
INDEX=201
DOMAIN=peer.test
VALID_USERS=100
SESSIONS=600
RCPTS=100
LEGIT_RCPTS=
CONC=40
REPS=3
SHARES="0 0.5 0.9 0.99"
HEADLINE=0.9
DP=af_packet
JSON=0
KEEP=0
PHASES="postfix rcptgate ceiling"

usage() {
	cat <<EOF
usage: rcptgate-bench peer [--json] [--sessions N] [--rcpts M] [--legit-rcpts L] [--concurrency C]
                           [--reps R] [--shares "0 0.5 0.9 0.99"] [--dp af_packet|af_xdp]
                           [--phases "postfix rcptgate ceiling"] [--keep]
Defaults: $SESSIONS sessions x $RCPTS RCPTs (legitimate: --legit-rcpts, default the same), $CONC concurrent, $REPS reps, shares "$SHARES",
headline figures at invalid share $HEADLINE.
EOF
	exit 2
}

while [ $# -gt 0 ]; do
	case $1 in
	--json) JSON=1 ;;
	--sessions) SESSIONS=$2; shift ;;
	--rcpts) RCPTS=$2; shift ;;
	--legit-rcpts) LEGIT_RCPTS=$2; shift ;;
	--concurrency) CONC=$2; shift ;;
	--reps) REPS=$2; shift ;;
	--shares) SHARES=$2; shift ;;
	--dp) DP=$2; shift ;;
	--phases) PHASES=$2; shift ;;
	--keep) KEEP=1 ;;
	*) usage ;;
	esac
	shift
done
[ "$(id -u)" -eq 0 ] || { echo "peer: must run as root" >&2; exit 1; }
LEGIT_RCPTS=${LEGIT_RCPTS:-$RCPTS}
case " $SHARES " in *" $HEADLINE "*) ;; *) SHARES="$SHARES $HEADLINE" ;; esac

WORK=/run/rgpeer
RESULTS=$WORK/results.tsv	# phase share rep rcpt_per_s sessions_per_s cpu_s ok
DP_PID=
GATED_PID=
SINK_PID=

log() { echo "peer: $*" >&2; }

cleanup() {
	set +e
	[ -n "$DP_PID" ] && kill -INT "$DP_PID" 2>/dev/null && wait "$DP_PID" 2>/dev/null
	[ -n "$GATED_PID" ] && kill "$GATED_PID" 2>/dev/null && wait "$GATED_PID" 2>/dev/null
	[ -n "$SINK_PID" ] && kill "$SINK_PID" 2>/dev/null
	if [ "$KEEP" = 0 ]; then
		"$PFI" destroy rgpeer-dest >/dev/null 2>&1
		"$TB" down "$NAME" >/dev/null 2>&1
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$WORK"
: >"$RESULTS"
"$TB" up "$NAME" --index "$INDEX" >/dev/null
eval "$("$TB" env "$NAME")"

for i in $(seq 0 $((VALID_USERS - 1))); do echo "user$i@$DOMAIN"; done >"$WORK/valid.txt"
"$PFI" destroy rgpeer-dest >/dev/null 2>&1 || true
"$PFI" create rgpeer-dest --kind dest-reject --netns "$TB_S_NS" --addr "$TB_S_ADDR" \
	--users "$WORK/valid.txt" \
	--set smtpd_error_sleep_time=0s --set smtpd_soft_error_limit=100000 \
	--set smtpd_hard_error_limit=100000 >/dev/null
"$PFI" start rgpeer-dest >/dev/null
eval "$("$PFI" env rgpeer-dest)"

# CPU seconds of the destination Postfix so far: the master's own and reaped
# children's times, plus every live child's (smtpd, cleanup, virtual, ...).
postfix_cpu() {
	local master
	master=$(ip netns pids "$PF_NETNS" | while read -r p; do
		[ "$(cat /proc/"$p"/comm 2>/dev/null)" = master ] && echo "$p"; done | head -1)
	python3 - "$master" <<'PY'
import os, sys
master = sys.argv[1]
hz = os.sysconf("SC_CLK_TCK")
def fields(pid):
    s = open(f"/proc/{pid}/stat").read()
    return s[s.rindex(")") + 2:].split()
tot = 0
f = fields(master)
tot += sum(int(x) for x in f[11:15])          # utime stime cutime cstime
for p in os.listdir("/proc"):
    if not p.isdigit():
        continue
    try:
        g = fields(p)
    except OSError:
        continue
    if g[1] == master:
        tot += int(g[11]) + int(g[12])          # live child: utime stime
print(f"{tot / hz:.3f}")
PY
}

# run_load PHASE SHARE REP [PORT]: one smtpload run from the client namespace.
run_load() {
	local phase=$1 share=$2 rep=$3 port=${4:-25} c0 c1 out
	c0=$(postfix_cpu)
	out=$(ip netns exec "$TB_C_NS" "$BENCH" smtpload --json --server "$TB_S_ADDR" \
		--port "$port" --sessions "$SESSIONS" --rcpts "$RCPTS" --concurrency "$CONC" \
		--invalid-share "$share" --invalid-by-session --legit-rcpts "$LEGIT_RCPTS" --valid-users "$VALID_USERS" --domain "$DOMAIN" \
		--timeout-ms 20000 2>&1) || true
	c1=$(postfix_cpu)
	echo "$out" | sed -n 1p | sed "s/^/peer: $phase share=$share rep=$rep: /" >&2
	# delivered mail piles up (100k files a run): clear it outside the timing
	find "$PF_MAIL" -type f -path '*/new/*' -delete 2>/dev/null || true
	python3 - "$phase" "$share" "$rep" "$c0" "$c1" "$SESSIONS" "$(echo "$out" | tail -1)" \
		<<'PY' >>"$RESULTS"
import json, sys
phase, share, rep, c0, c1, sessions, line = sys.argv[1:]
try:
    j = json.loads(line)
except ValueError:
    j = {"rcpt_per_s": 0, "seconds": 1, "sessions_ok": 0, "sessions_failed": int(sessions)}
ok = 1 if j["sessions_failed"] == 0 else 0
print(phase, share, rep, j["rcpt_per_s"], j["sessions_ok"] / j["seconds"],
      round(float(c1) - float(c0), 3), ok, sep="\t")
PY
}

phase_postfix() {
	log "phase postfix: Postfix rejects unknown recipients itself (kernel bridge)"
	"$TB" bridge "$NAME" >/dev/null
	for share in $SHARES; do
		for rep in $(seq 1 "$REPS"); do run_load postfix "$share" "$rep"; done
	done
	"$TB" unbridge "$NAME" >/dev/null
}

phase_rcptgate() {
	log "phase rcptgate: rcptgate-dp ($DP) inline, domain $DOMAIN in list mode"
	local conf=$WORK/rcptgated.conf shm=/dev/shm/rgpeer
	cat >"$conf" <<EOF
[global]
shm_path = $shm
store_path = $WORK/store
control_socket = $WORK/rcptgated.sock
syslog_ident = rcptgated-peer

[domain $DOMAIN]
destination = $TB_S_ADDR:25
mode = list
list = $WORK/valid.txt
EOF
	rm -rf "$WORK/store" "$shm"
	mkdir -p "$WORK/store"
	"$BUILD/control/rcptgated" -c "$conf" -e >"$WORK/rcptgated.log" 2>&1 &
	GATED_PID=$!
	for _ in $(seq 50); do [ -e "$shm" ] && break; sleep 0.1; done
	[ -e "$shm" ] || { log "rcptgated did not create $shm"; cat "$WORK/rcptgated.log" >&2; return 1; }
	local vdev0 vdev1
	if [ "$DP" = af_xdp ]; then
		vdev0="net_af_xdp0,iface=$TB_C_ROOT"; vdev1="net_af_xdp1,iface=$TB_S_ROOT"
	else
		vdev0="net_af_packet0,iface=$TB_C_ROOT"; vdev1="net_af_packet1,iface=$TB_S_ROOT"
	fi
	"$BUILD/dataplane/rcptgate-dp" -l 0-1 --no-pci --file-prefix rgpeer -m 256 \
		--vdev "$vdev0" --vdev "$vdev1" -- --shm "$shm" --pair 0:1 \
		>"$WORK/rcptgate-dp.log" 2>&1 &
	DP_PID=$!
	# ready when a session gets through
	local ready=0
	for _ in $(seq 30); do
		if ip netns exec "$TB_C_NS" "$BENCH" smtpload --server "$TB_S_ADDR" --sessions 1 \
			--concurrency 1 --rcpts 1 --invalid-share 0 --valid-users 1 --domain "$DOMAIN" \
			--timeout-ms 2000 >/dev/null 2>&1; then ready=1; break; fi
		sleep 0.5
	done
	[ $ready = 1 ] || { log "no session through rcptgate-dp"; cat "$WORK/rcptgate-dp.log" >&2; return 1; }
	for share in $SHARES; do
		for rep in $(seq 1 "$REPS"); do run_load rcptgate "$share" "$rep"; done
	done
	kill -INT "$DP_PID"; wait "$DP_PID" || true; DP_PID=
	kill "$GATED_PID"; wait "$GATED_PID" || true; GATED_PID=
}

phase_ceiling() {
	log "phase ceiling: dpdk-testpmd io-forward to smtp-sink (accepts everything)"
	ip netns exec "$TB_S_NS" smtp-sink -u nobody "$TB_S_ADDR:2525" 1000 >/dev/null 2>&1 &
	SINK_PID=$!
	"$TB" testpmd "$NAME" >/dev/null
	sleep 1
	for rep in $(seq 1 "$REPS"); do run_load ceiling "$HEADLINE" "$rep" 2525; done
	"$TB" stop-testpmd "$NAME" >/dev/null
	kill "$SINK_PID"; SINK_PID=
}

for p in $PHASES; do "phase_$p"; done

python3 - "$RESULTS" "$HEADLINE" "$JSON" "$SESSIONS" "$RCPTS" "$CONC" "$REPS" "$DP" "$LEGIT_RCPTS" <<'PY'
import sys, statistics, json
path, headline, want_json, sessions, rcpts, conc, reps, dp, legit = sys.argv[1:]
rows = [l.rstrip("\n").split("\t") for l in open(path) if l.strip()]
by = {}
for phase, share, rep, rps, sps, cpu, ok in rows:
    by.setdefault((phase, float(share)), []).append((float(rps), float(sps), float(cpu), int(ok)))
def fig(vals):
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals)}
print(f"workload: {sessions} sessions x {rcpts} RCPTs (legitimate sessions: {legit}), "
      f"{conc} concurrent, {reps} reps, data plane {dp}")
print(f"{'phase':10} {'invalid':>7} {'RCPT/s median':>14} {'(min..max)':>20} "
      f"{'sessions/s':>11} {'dest CPU s':>11} {'all ok':>7}")
out = {"bench": "peer", "sessions": int(sessions), "rcpts_per_session": int(rcpts),
       "concurrency": int(conc), "reps": int(reps), "legit_rcpts": int(legit), "invalid_share": float(headline),
       "sweep": []}
for (phase, share), v in sorted(by.items()):
    r, s, c = fig([x[0] for x in v]), fig([x[1] for x in v]), fig([x[2] for x in v])
    ok = all(x[3] for x in v)
    print(f"{phase:10} {share:7.2f} {r['median']:14.0f} {r['min']:9.0f}..{r['max']:<10.0f} "
          f"{s['median']:11.1f} {c['median']:11.2f} {'yes' if ok else 'NO':>7}")
    out["sweep"].append({"phase": phase, "invalid_share": share, "rcpt_per_s": r,
                         "sessions_per_s": s, "backend_cpu_s": c, "all_sessions_ok": ok})
    if share == float(headline):
        if phase == "postfix":
            out["postfix_rcpt_per_s"] = r["median"]
            out["postfix_sessions_per_s"] = s["median"]
            out["backend_cpu_s_without"] = c["median"]
        elif phase == "rcptgate":
            out["rcptgate_rcpt_per_s"] = r["median"]
            out["rcptgate_sessions_per_s"] = s["median"]
            out["backend_cpu_s_with"] = c["median"]
        elif phase == "ceiling":
            out["iofwd_ceiling_rcpt_per_s"] = r["median"]
if "postfix_rcpt_per_s" in out and "rcptgate_rcpt_per_s" in out:
    out["rcpt_ratio"] = out["rcptgate_rcpt_per_s"] / out["postfix_rcpt_per_s"]
    print(f"\nat {headline} invalid: rcptgate / Postfix RCPT answers = {out['rcpt_ratio']:.2f}x; "
          f"destination CPU {out['backend_cpu_s_with']:.2f}s with vs "
          f"{out['backend_cpu_s_without']:.2f}s without")
if want_json == "1":
    print(json.dumps(out, separators=(",", ":")))
PY

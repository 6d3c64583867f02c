#!/bin/bash
# t_demo.sh — the README's first command, short: `scripts/demo --short` builds
# the whole inline system (testbed, Plesk-like Postfix, rcptgated, rcptgate-dp
# with the XDP program) and fails unless rcptgate refused recipients itself,
# closed and blocked the harvester, and legitimate mail was delivered.
set -euo pipefail
src=${RG_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
out=$(mktemp /tmp/rg-demo-test.XXXXXX)
trap 'rm -f "$out"' EXIT
rc=0
timeout -k 10 240 "$src/scripts/demo" --short >"$out" 2>&1 || rc=$?
cat "$out"
[ $rc -eq 0 ] || { echo "FAIL: scripts/demo --short exited $rc"; exit 1; }
grep -q 'Too many invalid recipients' "$out" || { echo "FAIL: no harvester was closed"; exit 1; }
grep -q 'never got a greeting' "$out" || { echo "FAIL: no summary of the blocked harvester"; exit 1; }
grep -qE 'alice@callout.test +[1-9]' "$out" || { echo "FAIL: legitimate mail not delivered"; exit 1; }
echo "PASS: demo"

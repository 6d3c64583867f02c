#!/bin/bash
# run.sh — one test of the fuzz suite (tests/fuzz/meson.build), also used by
# scripts/fuzz:
#   run.sh HARNESS SRCDIR BUILDDIR NAME SECONDS
# 1. replays every committed input of NAME: SRCDIR/corpus/NAME/* (the seeds)
#    and SRCDIR/crashes/NAME/* (reproducers of crashes found earlier: each
#    must now pass);
# 2. fuzzes for SECONDS from the committed corpus, new inputs into a scratch
#    corpus BUILDDIR/work/NAME (emptied first), crash artifacts into
#    BUILDDIR/artifacts/NAME/.
# Exit status: 0 when nothing crashed, failed a check or stalled; else 1.
# Environment (scripts/fuzz sets them; the fuzz suite does not):
#   RG_FUZZ_REPLAY=0  skip step 1 (look for new findings past known ones)
#   RG_FUZZ_ARGS      more libFuzzer options for step 2 (e.g. -fork=2)
set -uo pipefail
[ $# -eq 5 ] || { echo "usage: $0 HARNESS SRCDIR BUILDDIR NAME SECONDS" >&2; exit 2; }
harness=$1 src=$2 build=$3 name=$4 secs=$5
corpus=$src/corpus/$name
crashes=$src/crashes/$name
work=$build/work/$name
art=$build/artifacts/$name
dict=$src/$name.dict
opts=(-timeout=10 -rss_limit_mb=2048 -print_final_stats=1)
[ -f "$dict" ] && opts+=("-dict=$dict")

[ -d "$corpus" ] || { echo "fuzz $name: no seed corpus at $corpus" >&2; exit 1; }
rm -rf "$work" "$art"
mkdir -p "$work" "$art"

fail=0
mapfile -t known < <(find "$corpus" "$crashes" -type f 2>/dev/null | sort)
if [ "${RG_FUZZ_REPLAY:-1}" != 0 ] && [ ${#known[@]} -gt 0 ]; then
	echo "fuzz $name: replaying ${#known[@]} committed inputs"
	for f in "${known[@]}"; do
		if ! "$harness" "${opts[@]}" -artifact_prefix="$art/" "$f" >"$art/replay.log" 2>&1; then
			echo "fuzz $name: FAILED on committed input $f:"
			grep -E 'ERROR|runtime error|CHECK|SUMMARY|READ|WRITE|#[0-9]+ 0x' \
				"$art/replay.log" | grep -v 'in fuzzer::' | head -12
			fail=1
		fi
	done
	rm -f "$art/replay.log"
fi
[ $fail -eq 0 ] || { echo "fuzz $name: committed inputs fail (see above)"; exit 1; }

echo "fuzz $name: fuzzing for ${secs}s"
# shellcheck disable=SC2086 # RG_FUZZ_ARGS is a list of options
"$harness" "${opts[@]}" -max_total_time="$secs" -artifact_prefix="$art/" \
	${RG_FUZZ_ARGS:-} "$work" "$corpus" >"$art/fuzz.log" 2>&1
rc=$?
# the findings and the final statistics, not every progress line
grep -vE '^#[0-9]+\s+(NEW|REDUCE|pulse|INITED)|^\s+NEW_FUNC|# Uses:' "$art/fuzz.log" | tail -n 60
if [ "$rc" -ne 0 ]; then
	echo "fuzz $name: FAILED (exit $rc); reproducer(s):"
	ls -l "$art"
	exit 1
fi
echo "fuzz $name: ok, $(find "$work" -type f | wc -l) new inputs in $work"
exit 0

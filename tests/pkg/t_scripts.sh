#!/bin/bash
# t_scripts.sh — the README's quick-start commands work as written on a
# machine where sudo is missing (as root) and for a user with sudo: each
# command README's "Quick start" names is a script of the tree (no "sudo"
# in front: root may have no sudo), and each script, started by a user who
# is not root, runs itself again through sudo with the same arguments, or,
# with no sudo installed, says it needs root (not "command not found").
# Needs root (to become another user).  Exit 77 = skipped.
set -euo pipefail
src=${RG_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
[ "$(id -u)" -eq 0 ] || { echo "skip: needs root"; exit 77; }
command -v setpriv >/dev/null || { echo "skip: no setpriv"; exit 77; }
fail=0
bad() { echo "FAIL: $*"; fail=1; }

# 1. The quick start's commands: the indented lines between "## Quick start"
#    and the next "## ".
mapfile -t cmds < <(awk '/^## /{q = /^## Quick start/; next} q && /^    [^ ]/{sub(/^    /, ""); print}' "$src/README.md")
[ ${#cmds[@]} -ge 2 ] || bad "README's quick start names ${#cmds[@]} commands, expected 2"
for c in "${cmds[@]}"; do
	first=${c%% *}
	if [ -x "$src/$first" ] && [ -f "$src/$first" ]; then
		echo "ok: README's \"$c\" runs a script of the tree"
	else
		bad "README's \"$c\": '$first' is not a script of the tree (with no sudo installed: command not found)"
	fi
done

# 2. Each root script, run by an unprivileged user.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"
# A PATH without sudo: the system's directories minus any holding sudo.
nosudo=$tmp/nosudo
mkdir -p "$nosudo"
for d in /usr/local/bin /usr/bin /bin; do
	for f in "$d"/*; do
		[ "${f##*/}" = sudo ] && continue
		[ -e "$nosudo/${f##*/}" ] || ln -s "$f" "$nosudo/${f##*/}" 2>/dev/null || true
	done
done
# A sudo that records how it was called (the user has sudo rights).
withsudo=$tmp/withsudo
mkdir -p "$withsudo"
cat >"$withsudo/sudo" <<'SH'
#!/bin/sh
printf '%s\n' "$@" >"$SUDO_LOG"
SH
chmod 755 "$withsudo/sudo"
asuser() { setpriv --reuid=nobody --regid=nogroup --clear-groups -- env -i HOME=/ "$@"; }
for s in demo test setup; do
	out=$(cd "$src" && asuser PATH="$nosudo" scripts/$s --short arg 2>&1) && rc=0 || rc=$?
	if [ $rc -ne 0 ] && grep -q "needs root" <<<"$out" && grep -q "sudo is not installed" <<<"$out"; then
		echo "ok: scripts/$s without root nor sudo: exit $rc, \"$out\""
	else
		bad "scripts/$s without root nor sudo: exit $rc, \"$out\""
	fi
	log=$tmp/sudo.$s.log
	touch "$log"
	chmod 666 "$log"
	out=$(cd "$src" && asuser PATH="$withsudo:$nosudo" SUDO_LOG="$log" scripts/$s --short arg 2>&1) && rc=0 || rc=$?
	got=$(tr '\n' ' ' <"$log")
	if [ $rc -eq 0 ] && [ "$got" = "-E -- scripts/$s --short arg " ]; then
		echo "ok: scripts/$s as a user with sudo runs: sudo $got"
	else
		bad "scripts/$s as a user with sudo: exit $rc, sudo called with \"$got\", output \"$out\""
	fi
done
exit $fail

#!/bin/bash
# t_install.sh — `meson install` lays the tree out as an operator expects
# (sbin: rcptgated rcptgate-dp rg-xdp; bin: rcptctl rcptgate-bench; the XDP
# object under lib/rcptgate; the example config under etc/rcptgate; the
# units, man pages, bash completion), every man page passes mandoc's lint,
# and rcptgated.conf(5) lists exactly the keys of the parser's table
# (rcptgated --defaults), no more, no fewer.
set -euo pipefail
build=${RG_BUILD:?}
src=${RG_SRC:?}
fail=0
bad() { echo "FAIL: $*"; fail=1; }
command -v mandoc >/dev/null || { echo "skip: mandoc not installed (scripts/setup)"; exit 77; }
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT
meson install -C "$build" --no-rebuild --destdir "$dest" >"$dest.log" 2>&1 ||
	{ cat "$dest.log"; rm -f "$dest.log"; bad "meson install failed"; exit 1; }
rm -f "$dest.log"
prefix=$(meson introspect --buildoptions "$build" |
	python3 -c 'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"]=="prefix"][0])')
root=$dest$prefix
want=(sbin/rcptgated bin/rcptctl bin/rcptgate-bench
	share/man/man8/rcptgated.8 share/man/man5/rcptgated.conf.5 share/man/man8/rcptctl.8
	share/man/man8/rcptgate-dp.8 share/man/man1/rcptgate-bench.1 share/man/man8/rg-xdp.8
	share/rcptgate/grafana/rcptgate.json
	share/bash-completion/completions/rcptctl)
[ -x "$build/dataplane/rcptgate-dp" ] && want+=(sbin/rcptgate-dp)
[ -x "$build/bpf/rg-xdp" ] && want+=(sbin/rg-xdp lib/rcptgate/rg_xdp.bpf.o)
for f in "${want[@]}"; do
	[ -e "$root/$f" ] && echo "ok: $prefix/$f" || bad "not installed: $prefix/$f"
done
for f in etc/rcptgate/rcptgated.conf; do
	found=$(find "$dest" -path "*/$f" | head -1)
	[ -n "$found" ] && echo "ok: ${found#$dest}" || bad "not installed: .../$f"
done
for u in rcptgated.service rcptgate-dp@.service rcptgate-hugepages.service; do
	found=$(find "$dest" -path "*/systemd/system/$u" | head -1)
	[ -n "$found" ] && echo "ok: ${found#$dest}" || bad "unit not installed: $u"
done

# the installed example configuration is good
conf=$(find "$dest" -path "*/etc/rcptgate/rcptgated.conf" | head -1)
if out=$("$build/control/rcptgated" -t -c "$conf" 2>&1); then
	echo "ok: rcptgated -t: $out"
else
	# its control_readers names the group the package creates
	grep -q "rcptgate" <<<"$out" && ! getent group rcptgate >/dev/null &&
		echo "ok: example config needs the rcptgate group (made by the package): $out" ||
		bad "rcptgated -t on the example config: $out"
fi

# a metrics_listen that is not address:port is refused by rcptgated -t
for v in "localhost:9489" "127.0.0.1" "127.0.0.1:0" "[::1]9489" "::1:9489"; do
	printf '[global]\nmetrics_listen = %s\n' "$v" >"$dest/m.conf"
	out=$("$build/control/rcptgated" -t -c "$dest/m.conf" 2>&1) && bad "metrics_listen = $v accepted" ||
		{ grep -qF "metrics_listen '$v'" <<<"$out" && ok_="$out" || bad "metrics_listen = $v: $out"; }
done
for v in "127.0.0.1:9489" "[::1]:9489" ""; do
	printf '[global]\nmetrics_listen = %s\n' "$v" >"$dest/m.conf"
	"$build/control/rcptgated" -t -c "$dest/m.conf" >/dev/null 2>&1 || bad "metrics_listen = '$v' refused"
done
echo "ok: rcptgated -t checks metrics_listen ($ok_)"

# every page passes mandoc -T lint (warnings and style included)
for p in $(find "$root/share/man" -type f); do
	if out=$(mandoc -T lint -W all "$p" 2>&1); then
		echo "ok: mandoc -T lint ${p#$root/}"
	else
		bad "mandoc -T lint ${p#$root/}: $out"
	fi
done

# rcptgated.conf(5) and the key table name the same keys
"$build/control/rcptgated" --defaults | awk '{print $1}' | sort >"$dest/table.keys"
awk 'prev == ".TP" && $1 == ".B" {print $2} {prev = $0}' \
	"$root/share/man/man5/rcptgated.conf.5" | sort >"$dest/page.keys"
n=$(wc -l <"$dest/table.keys")
if [ "$n" -gt 0 ] && diff -u "$dest/table.keys" "$dest/page.keys"; then
	echo "ok: rcptgated.conf(5) lists the key table's $n keys"
else
	bad "rcptgated.conf(5) and the key table differ (above; - table, + page)"
fi
exit $fail

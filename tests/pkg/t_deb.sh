#!/bin/bash
# t_deb.sh — the Debian packages, as an operator gets them: built with
# dpkg-buildpackage -b -us -uc from a clean copy of the tree (its tracked
# files, no build directory) in a temporary directory, installed with
# dpkg -i, then checked: rcptgated -t on the installed example
# configuration, systemd-analyze verify on the units, mandoc -T lint on
# every page, lintian without errors, rcptgated.conf(5) listing the keys of
# the parser's table, the system user and directories made, no unit enabled
# or started, the installed rcptgated serving as the rcptgate user.  Then
# purged, and the machine checked to be as it was.
# Needs root; refuses to touch a machine where rcptgate is already installed
# or a rcptgate user exists (exit 77 = skipped).
set -euo pipefail
src=${RG_SRC:?}
[ "$(id -u)" -eq 0 ] || { echo "skip: needs root (dpkg -i)"; exit 77; }
for p in rcptgate rcptgate-bench; do
	if dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
		echo "skip: $p is installed on this machine; this test installs and purges its own"
		exit 77
	fi
done
if getent passwd rcptgate >/dev/null || getent group rcptgate >/dev/null; then
	echo "skip: a rcptgate user or group exists on this machine; purging would remove it"
	exit 77
fi
for c in dpkg-buildpackage lintian mandoc systemd-analyze; do
	command -v $c >/dev/null || { echo "FAIL: $c missing (scripts/setup installs it)"; exit 1; }
done
fail=0
bad() { echo "FAIL: $*"; fail=1; }
ok() { echo "ok: $*"; }

tmp=$(mktemp -d /tmp/rg-deb.XXXXXX)
installed=0
cleanup() {
	[ $installed = 1 ] && dpkg --purge rcptgate rcptgate-bench >/dev/null 2>&1 || true
	rm -rf "$tmp"
}
trap cleanup EXIT

# 1. a clean copy: the tracked files as they are in the work tree
t0=$(date +%s)
mkdir "$tmp/rcptgate"
(cd "$src" && git ls-files -z | xargs -0 cp --parents -t "$tmp/rcptgate" 2>/dev/null) ||
	(cd "$src" && git ls-files -z | while IFS= read -r -d '' f; do
		[ -e "$f" ] && cp --parents -a "$f" "$tmp/rcptgate"; done)
[ -f "$tmp/rcptgate/debian/control" ] || { bad "no debian/ in the copy"; exit 1; }
ok "clean copy: $(cd "$tmp/rcptgate" && find . -type f | wc -l) files"

# 2. build
cd "$tmp/rcptgate"
if ! dpkg-checkbuilddeps >"$tmp/deps.log" 2>&1; then
	bad "build dependencies missing: $(cat "$tmp/deps.log")"
	exit 1
fi
if DEB_BUILD_OPTIONS="parallel=2 nocheck" dpkg-buildpackage -b -us -uc >"$tmp/build.log" 2>&1; then
	ok "dpkg-buildpackage -b -us -uc: $(( $(date +%s) - t0 )) s"
else
	tail -40 "$tmp/build.log"
	bad "dpkg-buildpackage failed"
	exit 1
fi
cd "$tmp"
debs=("$tmp"/rcptgate_*.deb "$tmp"/rcptgate-bench_*.deb)
for d in "${debs[@]}"; do [ -f "$d" ] || { bad "not built: $d"; exit 1; }; done
ok "built: $(cd "$tmp" && ls -- *.deb | tr '\n' ' ')"
ok "rcptgate Depends: $(dpkg-deb -f "${debs[0]}" Depends)"

# 3. lintian: no error (warnings are printed)
lint=$(lintian --fail-on error --tag-display-limit 0 "$tmp"/*.changes 2>&1) && rc=0 || rc=$?
[ -n "$lint" ] && echo "$lint" | sed 's/^/    lintian: /'
[ $rc -eq 0 ] && ok "lintian: no error ($(grep -c '^W:' <<<"$lint" || true) warnings)" ||
	bad "lintian reports errors (exit $rc)"

# 4. install
if dpkg -i "${debs[@]}" >"$tmp/install.log" 2>&1; then
	installed=1
	ok "dpkg -i: installed"
else
	installed=1
	cat "$tmp/install.log"
	bad "dpkg -i failed"
	exit 1
fi

# 5. what the installation holds
for f in /usr/sbin/rcptgated /usr/sbin/rcptgate-dp /usr/sbin/rg-xdp /usr/bin/rcptctl \
	/usr/bin/rcptgate-bench /usr/lib/rcptgate/rg_xdp.bpf.o /etc/rcptgate/rcptgated.conf \
	/lib/systemd/system/rcptgated.service /lib/systemd/system/rcptgate-dp@.service \
	/lib/systemd/system/rcptgate-hugepages.service; do
	[ -e "$f" ] || bad "not installed: $f"
done
grep -qx /etc/rcptgate/rcptgated.conf /var/lib/dpkg/info/rcptgate.conffiles &&
	ok "/etc/rcptgate/rcptgated.conf is a conffile" || bad "rcptgated.conf is not a conffile"
if out=$(/usr/sbin/rcptgated -t -c /etc/rcptgate/rcptgated.conf 2>&1); then
	ok "rcptgated -t on the installed example: $out"
else
	bad "rcptgated -t on the installed example: $out"
fi
getent passwd rcptgate >/dev/null && ok "user rcptgate: $(getent passwd rcptgate)" ||
	bad "no rcptgate user"
st=$(stat -c '%U:%G %a' /var/lib/rcptgate 2>/dev/null || echo missing)
[ "$st" = "rcptgate:rcptgate 750" ] && ok "/var/lib/rcptgate: $st" || bad "/var/lib/rcptgate: $st"
st=$(stat -c '%U:%G %a' /run/rcptgate 2>/dev/null || echo missing)
[ "$st" = "rcptgate:rcptgate 755" ] && ok "/run/rcptgate: $st" || bad "/run/rcptgate: $st"
for u in rcptgated.service rcptgate-hugepages.service; do
	e=$(systemctl is-enabled "$u" 2>/dev/null || true)
	[ "$e" = disabled ] && ok "$u: $e (installing enables nothing)" || bad "$u: is-enabled says '$e'"
	a=$(systemctl is-active "$u" 2>/dev/null || true)
	[ "$a" != active ] && ok "$u: not started ($a)" || bad "$u: started by the installation"
done

# 6. the units
va=$(cd / && systemd-analyze verify /lib/systemd/system/rcptgated.service \
	/lib/systemd/system/rcptgate-hugepages.service \
	/lib/systemd/system/rcptgate-dp@.service 2>&1) && rc=0 || rc=$?
[ $rc -eq 0 ] && [ -z "$va" ] && ok "systemd-analyze verify: the three units, no message" ||
	bad "systemd-analyze verify (exit $rc): $va"

# the hugepages unit's helper (asked for 1 page: it never lowers the count)
hp=$(sed -n 's/^ExecStart=\([^ ]*\) .*/\1/p' /lib/systemd/system/rcptgate-hugepages.service)
if out=$("$hp" 1 2>&1) && [ "$(cat /proc/sys/vm/nr_hugepages)" -ge 1 ]; then
	ok "rcptgate-hugepages.service's $hp: $out"
else
	bad "rcptgate-hugepages.service's ExecStart '$hp': $out"
fi

# systemd's own rating of the daemon's sandbox (0 = locked down, 10 = none)
exp=$(cd / && systemd-analyze security --offline=yes /lib/systemd/system/rcptgated.service 2>/dev/null |
	sed -n 's/.*Overall exposure level for rcptgated.service: \([0-9.]*\).*/\1/p')
if [ -n "$exp" ] && awk -v e="$exp" 'BEGIN {exit !(e <= 3.0)}'; then
	ok "systemd-analyze security: rcptgated.service exposure $exp (at most 3.0)"
else
	bad "systemd-analyze security: rcptgated.service exposure '$exp' (more than 3.0)"
fi

# 7. the pages
pages=$(dpkg -L rcptgate rcptgate-bench | grep '^/usr/share/man/.*\.[0-9]\(\.gz\)\?$')
[ "$(wc -l <<<"$pages")" -eq 6 ] || bad "expected 6 man pages, got: $pages"
for p in $pages; do
	out=$(mandoc -T lint -W all "$p" 2>&1) && ok "mandoc -T lint $p" || bad "mandoc -T lint $p: $out"
done
man_conf=$(grep 'man5/rcptgated.conf.5' <<<"$pages")
/usr/sbin/rcptgated --defaults | awk '{print $1}' | sort >"$tmp/table.keys"
zcat -f "$man_conf" | awk 'prev == ".TP" && $1 == ".B" {print $2} {prev = $0}' | sort >"$tmp/page.keys"
n=$(wc -l <"$tmp/table.keys")
if [ "$n" -gt 0 ] && diff -u "$tmp/table.keys" "$tmp/page.keys"; then
	ok "installed rcptgated.conf(5) lists the key table's $n keys"
else
	bad "rcptgated.conf(5) and rcptgated --defaults differ (above)"
fi

# 8. the installed daemon runs as the rcptgate user, not root, on the
#    installed example (as the unit would start it, without systemd's
#    sandbox: this machine's PID 1 may not be systemd)
setpriv --reuid=rcptgate --regid=rcptgate --init-groups -- \
	/usr/sbin/rcptgated -e -c /etc/rcptgate/rcptgated.conf >"$tmp/gated.log" 2>&1 &
gpid=$!
for i in $(seq 1 50); do
	[ -S /run/rcptgate/rcptgated.sock ] && break
	sleep 0.1
done
if out=$(/usr/bin/rcptctl status 2>&1); then
	ok "rcptgated as user rcptgate answers rcptctl status: $(head -1 <<<"$out")"
	owner=$(stat -c %U /dev/shm/rcptgate /var/lib/rcptgate/data.mdb 2>/dev/null | sort -u | tr '\n' ' ')
	[ "$owner" = "rcptgate " ] && ok "its shared memory and store belong to rcptgate" ||
		bad "shared memory / store owners: '$owner'"
else
	bad "rcptgated as user rcptgate: $out; log: $(cat "$tmp/gated.log")"
fi
kill -TERM $gpid 2>/dev/null || true
grc=0
wait $gpid || grc=$?
[ $grc -eq 0 ] && ok "it stops cleanly on SIGTERM" || bad "rcptgated exit status $grc: $(tail -3 "$tmp/gated.log")"

# 9. and it drives the XDP maps with CAP_BPF alone: in a network namespace
#    of this test (its own bpffs), rg-xdp attaches the program to a veth
#    and pins the maps for root; the unit's own ExecStartPre=+ line gives
#    them to the rcptgate group; rcptgated, as rcptgate with only CAP_BPF
#    (bounding and ambient sets; CapEff 1 << 39), blocks a prefix through
#    rcptctl, and rg-xdp sees it in the map.
ns=rgdeb$$
pre=$(sed -n 's/^ExecStartPre=+//p' /lib/systemd/system/rcptgated.service)
[ -n "$pre" ] || bad "no ExecStartPre=+ in rcptgated.service"
ip netns add "$ns"
ip -n "$ns" link add rgdeb0 type veth peer name rgdeb1
ip -n "$ns" link set rgdeb0 up
ip -n "$ns" link set rgdeb1 up
printf '[global]\nshm_path = /dev/shm/rcptgate\ncontrol_socket = /run/rcptgate/rcptgated.sock\n' >"$tmp/xdp.conf"
chmod 644 "$tmp/xdp.conf"
chmod 755 "$tmp"
xout=$(ip netns exec "$ns" sh -c '
	set -e
	mount -t bpf bpf /sys/fs/bpf
	/usr/sbin/rg-xdp attach rgdeb0 --peer rgdeb1 --skb >/dev/null
	echo "pins: $(stat -c "%U:%G %a" /sys/fs/bpf/rcptgate/rgdeb0)"
	'"$pre"'
	echo "after ExecStartPre: $(stat -c "%U:%G %a" /sys/fs/bpf/rcptgate/rgdeb0)"
	setpriv --reuid=rcptgate --regid=rcptgate --init-groups --bounding-set -all,+bpf \
		--inh-caps -all,+bpf --ambient-caps -all,+bpf -- \
		/usr/sbin/rcptgated -e -c '"$tmp/xdp.conf"' >'"$tmp/xdp.log"' 2>&1 &
	pid=$!
	for i in $(seq 1 50); do [ -S /run/rcptgate/rcptgated.sock ] && break; sleep 0.1; done
	grep CapEff /proc/$pid/status | sed "s/^/rcptgated /"
	/usr/bin/rcptctl block 198.18.251.0/24
	/usr/sbin/rg-xdp blocks
	kill -TERM $pid; wait $pid
	/usr/sbin/rg-xdp detach rgdeb0 >/dev/null
' 2>&1) && xrc=0 || xrc=$?
ip netns del "$ns"
echo "$xout" | sed 's/^/    /'
cap=$(awk '/^rcptgated CapEff/ {print $3}' <<<"$xout")
if [ $xrc -eq 0 ] && grep -q '^rgdeb0 198.18.251.0/24 ' <<<"$xout" && [ "$cap" = 0000008000000000 ]; then
	ok "rcptgated as rcptgate with CAP_BPF only (CapEff $cap) blocked a prefix in the XDP map"
else
	bad "XDP maps as rcptgate with CAP_BPF (exit $xrc, CapEff '$cap'); log: $(tail -5 "$tmp/xdp.log")"
fi

# 10. purge; the machine as it was
dpkg --purge rcptgate rcptgate-bench >"$tmp/purge.log" 2>&1 || { cat "$tmp/purge.log"; bad "dpkg --purge failed"; }
installed=0
for f in /usr/sbin/rcptgated /etc/rcptgate /var/lib/rcptgate /run/rcptgate /dev/shm/rcptgate \
	/lib/systemd/system/rcptgated.service; do
	[ -e "$f" ] && bad "left after purge: $f"
done
getent passwd rcptgate >/dev/null && bad "user rcptgate left after purge"
getent group rcptgate >/dev/null && bad "group rcptgate left after purge"
dpkg-query -W rcptgate >/dev/null 2>&1 && bad "dpkg still knows rcptgate" || true
[ $fail = 0 ] && ok "purged: nothing left; whole test $(( $(date +%s) - t0 )) s"
exit $fail

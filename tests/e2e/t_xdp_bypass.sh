#!/bin/bash
# t_xdp_bypass.sh — the XDP program alone between two namespaces (no data
# plane running, so no AF_XDP socket is bound): rg-xdp attaches it natively
# to both root-side veth ends with each other as peer; SMTP is bridged by the
# fail-open bypass and non-SMTP (ARP, neighbour discovery) by the peer
# redirect, so swaks delivers to a real Postfix through it over IPv4 and IPv6;
# a blocklisted client's SYNs are dropped (its session never opens, the
# entry's hit count rises), for an IPv4 /32 and an IPv6 /64, and unblocking
# lets it through again; detach removes the program and the pins.
# Bounded: ~90 s.
source "$(dirname "$0")/lib.sh"
e2e_init xb
source "$(dirname "$0")/xdp_lib.sh"
xdp_init
DOMAIN=example.test

e2e_testbed_up --v6
xdp_gro_on
e2e_users "$E2E_TMP/users" "alice@$DOMAIN"
e2e_postfix dest dest-reject --users "$E2E_TMP/users" --addr "$TB_S_ADDR" --addr "$TB_S_ADDR6"

xdp_detach_at_exit "$TB_C_ROOT"
xdp_detach_at_exit "$TB_S_ROOT"
xdp_rgx attach "$TB_C_ROOT" --peer "$TB_S_ROOT" >/dev/null
xdp_rgx attach "$TB_S_ROOT" --peer "$TB_C_ROOT" >/dev/null
ip -d link show dev "$TB_C_ROOT" | grep -q 'prog/xdp id' || e2e_fail "no program on $TB_C_ROOT"
e2e_log "rg_xdp on $TB_C_ROOT and $TB_S_ROOT (native; bypass: no AF_XDP socket)"

send() { # ID [SERVER] [swaks options]: a message to alice; swaks' status
	local id=$1 server=${2:-$TB_S_ADDR}
	shift $(($# < 2 ? $# : 2))
	e2e_swaks "$id.txt" --server "$server" --helo client.test --from sender@client.test \
		--to "alice@$DOMAIN" --header "X-RG-Test: $id" "$@"
}

# 1. delivery through the bypass, IPv4 then IPv6
send bypass4 || e2e_fail "swaks through the bypass failed (see $E2E_TMP/bypass4.txt)"
e2e_assert_grep "bypass4 transcript" '250 2.0.0 Ok: queued' "$E2E_TMP/bypass4.txt"
e2e_wait_delivered dest "alice@$DOMAIN" 1
send bypass6 "$TB_S_ADDR6" || e2e_fail "swaks over IPv6 through the bypass failed"
e2e_wait_delivered dest "alice@$DOMAIN" 2
c_bypass=$(xdp_ctr "$TB_C_ROOT" smtp_bypass)
s_bypass=$(xdp_ctr "$TB_S_ROOT" smtp_bypass)
c_peer=$(xdp_ctr "$TB_C_ROOT" other_peer)
e2e_log "delivered; smtp_bypass client side $c_bypass, server side $s_bypass; other_peer client side $c_peer"
e2e_assert_ge "smtp_bypass (client port)" 1 "$c_bypass"
e2e_assert_ge "smtp_bypass (server port)" 1 "$s_bypass"
e2e_assert_ge "other_peer (client port: ARP, ND)" 1 "$c_peer"
e2e_assert_eq "smtp_xsk (no socket bound)" 0 "$(xdp_ctr "$TB_C_ROOT" smtp_xsk)"

# 2. the client's IPv4 address blocked: SYNs dropped, the session never opens
xdp_rgx block "$TB_C_ADDR/32"
b0=$(xdp_ctr "$TB_C_ROOT" blocked)
if send blocked4 "$TB_S_ADDR" --timeout 5; then
	e2e_fail "a blocked client reached the server (see $E2E_TMP/blocked4.txt)"
fi
b1=$(xdp_ctr "$TB_C_ROOT" blocked)
hits4=$(xdp_hits "$TB_C_ROOT" "$TB_C_ADDR/32")
e2e_log "blocked $TB_C_ADDR/32: swaks failed; blocked counter $b0 -> $b1, entry hits $hits4"
e2e_assert_ge "SYNs counted as blocked" $((b0 + 1)) "$b1"
e2e_assert_ge "hits on $TB_C_ADDR/32" 1 "${hits4:-0}"

# 3. the client's IPv6 /64 blocked
v6net=${TB_C_ADDR6%::*}::/64
xdp_rgx block "$v6net"
if send blocked6 "$TB_S_ADDR6" --timeout 5; then
	e2e_fail "a blocked IPv6 client reached the server (see $E2E_TMP/blocked6.txt)"
fi
hits6=$(xdp_hits "$TB_C_ROOT" "$v6net")
e2e_log "blocked $v6net: swaks failed, entry hits $hits6"
e2e_assert_ge "hits on $v6net" 1 "${hits6:-0}"

# 4. unblocked: delivery again
xdp_rgx unblock "$TB_C_ADDR/32"
xdp_rgx unblock "$v6net"
send unblocked4 || e2e_fail "swaks after unblock failed"
send unblocked6 "$TB_S_ADDR6" || e2e_fail "IPv6 swaks after unblock failed"
e2e_wait_delivered dest "alice@$DOMAIN" 4
e2e_assert_eq "messages from the blocked attempts" 0 \
	"$({ grep -lE 'X-RG-Test: blocked' "$(e2e_maildir dest "alice@$DOMAIN")"/* || true; } | wc -l)"

# 5. detach: program and pins gone
xdp_rgx detach "$TB_C_ROOT" >/dev/null
xdp_rgx detach "$TB_S_ROOT" >/dev/null
if ip -d link show dev "$TB_C_ROOT" | grep -q 'prog/xdp'; then
	e2e_fail "program still attached after detach"
fi
[[ -e $XDP_PIN/$TB_C_ROOT ]] && e2e_fail "pins left after detach"
e2e_log "detached; pins removed"
e2e_pass

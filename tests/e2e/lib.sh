# lib.sh — shared functions of rcptgate's end-to-end tests (sourced, bash).
#
# A test sources this file, calls e2e_init with a short prefix, builds its world
# (testbed, Postfix instances, programs in the background) through the functions
# below — each registers its own teardown — and checks results with the e2e_assert_*
# functions, which print what differed and exit 1. Everything is torn down on any
# exit (success, failure, signal, meson's timeout). Exit codes: 0 pass, 1 fail,
# 77 skip (meson's skip: only for a capability the machine lacks, never for a
# missing or broken part of rcptgate). docs/TESTBED.md documents every function.
#
# Run as root. Environment: RG_SRC (source tree), RG_BUILD (build tree),
# E2E_KEEP=1 keeps the world up on exit for inspection (prints how to tear it down).

set -eEuo pipefail

RG_SRC=${RG_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
RG_BUILD=${RG_BUILD:-$RG_SRC/build}
E2E_TESTBED=$RG_SRC/scripts/testbed
E2E_POSTFIX=$RG_SRC/scripts/postfix-inst
E2E_CMD_TIMEOUT=${E2E_CMD_TIMEOUT:-120}	# seconds any single client command may take
E2E_CLEANUP=()
E2E_INSTANCES=()
E2E_NAME=
E2E_TMP=
E2E_T0=${EPOCHREALTIME/./}

# ---------------------------------------------------------------- reporting

e2e_log() {
	local ds=$(((${EPOCHREALTIME/./} - E2E_T0) / 100000))
	printf '[e2e %4d.%ds] %s\n' $((ds / 10)) $((ds % 10)) "$*" >&2
}

e2e_fail() {
	trap - ERR
	{
		echo
		echo "########################################################################"
		echo "FAIL: $*"
		echo "########################################################################"
	} >&2
	exit 1
}

e2e_skip() {
	trap - ERR
	{
		echo
		echo "************************************************************************"
		echo "SKIP (exit 77): $*"
		echo "This machine lacks a capability the test needs; nothing of rcptgate was tested."
		echo "************************************************************************"
	} >&2
	exit 77
}

e2e_pass() {
	e2e_log "PASS: ${*:-$E2E_NAME}"
	exit 0
}

e2e__on_err() {
	local rc=$? line=$1 cmd=$2
	trap - ERR
	e2e_fail "command failed (exit $rc) at ${BASH_SOURCE[1]:-?}:$line: $cmd"
}

# ---------------------------------------------------------------- requirements

e2e_require_root() {
	[[ $(id -u) -eq 0 ]] || e2e_skip "needs root (network namespaces, Postfix instances)"
}

# e2e_require_cmd CMD...: skip when a program of the machine (not of rcptgate) is absent.
e2e_require_cmd() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || e2e_skip "'$c' is not installed"
	done
}

e2e_require_netns() {
	local probe=rgprobe$$
	ip netns add "$probe" 2>/dev/null || e2e_skip "cannot create network namespaces"
	ip netns del "$probe"
}

# e2e_bin PATH: a program built by rcptgate, relative to RG_BUILD. Missing = FAIL
# (a part of rcptgate that does not build is not a reason to skip).
e2e_bin() {
	local p=$RG_BUILD/$1
	[[ -x $p ]] || e2e_fail "$p is missing: build it first (ninja -C $RG_BUILD)"
	echo "$p"
}

# ---------------------------------------------------------------- lifecycle

# e2e_defer CMD...: run CMD at exit (last registered runs first).
e2e_defer() {
	E2E_CLEANUP+=("$(printf '%q ' "$@")")
}

e2e__cleanup() {
	local rc=$? i
	trap - EXIT INT TERM ERR
	set +e
	if [[ ${E2E_KEEP:-0} == 1 ]]; then
		e2e_log "E2E_KEEP=1: leaving $E2E_NAME up; tear down with:"
		for ((i = ${#E2E_CLEANUP[@]} - 1; i >= 0; i--)); do echo "  ${E2E_CLEANUP[i]}" >&2; done
		exit $rc
	fi
	if [[ $rc -ne 0 && $rc -ne 77 && -n $E2E_TMP ]]; then
		e2e__dump_state
	fi
	for ((i = ${#E2E_CLEANUP[@]} - 1; i >= 0; i--)); do
		eval "${E2E_CLEANUP[i]}" >/dev/null 2>&1
	done
	[[ -n $E2E_TMP && -d $E2E_TMP ]] && : >"$E2E_TMP/.done"
	if [[ -n $E2E_TMP && -d $E2E_TMP ]]; then
		if [[ $rc -eq 0 || $rc -eq 77 ]]; then
			rm -rf "$E2E_TMP"
		else
			echo "e2e: logs and transcripts kept in $E2E_TMP" >&2
		fi
	fi
	exit $rc
}

# What a failed test leaves for its reader: the testbed, the tail of every log.
e2e__dump_state() {
	local inst f
	echo "---- state of $E2E_NAME at failure ----" >&2
	"$E2E_TESTBED" status "$E2E_NAME" >&2 2>&1 || true
	for inst in "${E2E_INSTANCES[@]}"; do
		f=$(e2e_pf_log "$inst")
		[[ -f $f ]] || continue
		cp "$f" "$E2E_TMP/maillog.$inst"
		echo "---- last lines of $inst's maillog ($E2E_TMP/maillog.$inst) ----" >&2
		tail -15 "$f" >&2
	done
	for f in "$E2E_TMP"/*.log; do
		[[ -f $f ]] || continue
		echo "---- last lines of $f ----" >&2
		tail -15 "$f" >&2
	done
}

# e2e_init PREFIX: name this run PREFIX + 4 hex digits of the pid (unique among
# concurrent runs, short enough for interface names), make E2E_TMP, install traps,
# check the machine. PREFIX: 1-8 characters [A-Za-z0-9].
e2e_init() {
	local prefix=${1:?e2e_init PREFIX}
	[[ $prefix =~ ^[A-Za-z0-9]{1,8}$ ]] || e2e_fail "e2e_init: prefix '$prefix' must be 1-8 characters [A-Za-z0-9]"
	E2E_NAME=$prefix$(printf '%04x' $(($$ % 65536)))
	trap 'e2e__on_err $LINENO "$BASH_COMMAND"' ERR
	trap e2e__cleanup EXIT
	trap 'exit 143' TERM
	trap 'exit 130' INT
	e2e_require_root
	e2e_require_cmd ip ethtool nft postfix postconf swaks smtp-source flock timeout
	e2e_require_netns
	E2E_TMP=$(mktemp -d "/tmp/rg-e2e-$E2E_NAME.XXXXXX")
	e2e__reaper
	e2e_log "test $E2E_NAME (tmp $E2E_TMP, source $RG_SRC, build $RG_BUILD)"
}

# A watcher in its own session: when the test's shell is gone without having torn
# its world down (SIGKILL, e.g. meson's timeout escalating), it stops the background
# processes, destroys the Postfix instances and takes the testbed down. After a
# normal exit it finds nothing left to do.
e2e__reaper() {
	local me=$$
	: >"$E2E_TMP/.bgpids"
	setsid bash -c '
		me=$1 name=$2 tmp=$3 tb=$4 pf=$5
		while kill -0 "$me" 2>/dev/null; do sleep 1; done
		[[ -f $tmp/.done ]] && exit 0
		while read -r p; do
			kill -KILL -- "-$p" 2>/dev/null || kill -KILL "$p" 2>/dev/null
		done <"$tmp/.bgpids"
		for i in $("$pf" list | grep "^$name-"); do "$pf" destroy "$i"; done
		"$tb" down "$name"
		echo "reaper: cleaned up after $name" >>"$tmp/reaper.log"
	' e2e-reaper "$me" "$E2E_NAME" "$E2E_TMP" "$E2E_TESTBED" "$E2E_POSTFIX" \
		</dev/null >/dev/null 2>&1 &
}

# ---------------------------------------------------------------- testbed

# e2e_testbed_up [--v6]: namespaces and veths of scripts/testbed for this run;
# sets TB_NAME TB_C_NS TB_S_NS TB_C_ROOT TB_S_ROOT TB_NS_DEV TB_BRIDGE TB_C_ADDR
# TB_S_ADDR TB_C_ADDR6 TB_S_ADDR6 TB_V6 (see `scripts/testbed env`).
e2e_testbed_up() {
	e2e_defer "$E2E_TESTBED" down "$E2E_NAME"
	"$E2E_TESTBED" up "$E2E_NAME" "$@" || e2e_fail "scripts/testbed up $E2E_NAME $* failed"
	eval "$("$E2E_TESTBED" env "$E2E_NAME")"
	e2e_log "testbed $TB_NAME: client $TB_C_NS $TB_C_ADDR, server $TB_S_NS $TB_S_ADDR, root ends $TB_C_ROOT $TB_S_ROOT"
}

e2e_bridge() {
	"$E2E_TESTBED" bridge "$E2E_NAME" || e2e_fail "scripts/testbed bridge failed"
}

# e2e_testpmd [--cores L]: dpdk-testpmd as the middle; its log (with the forwarding
# statistics it prints when stopped) ends up in $E2E_TMP/testpmd.out.
e2e_testpmd() {
	e2e_defer cp "/run/rcptgate-testbed/$E2E_NAME/testpmd.log" "$E2E_TMP/testpmd.out"
	e2e_defer "$E2E_TESTBED" stop-testpmd "$E2E_NAME"
	"$E2E_TESTBED" testpmd "$E2E_NAME" "$@" || e2e_fail "scripts/testbed testpmd failed"
}

# e2e_netem DROP_PCT DUP_PCT: random loss on arrival and duplication on departure,
# TCP, in both namespaces.
e2e_netem() {
	"$E2E_TESTBED" netem "$E2E_NAME" --drop "${1:?drop %}" --dup "${2:?dup %}" ||
		e2e_fail "scripts/testbed netem failed"
}

# e2e_in_client CMD... / e2e_in_server CMD...: run CMD in a namespace, bounded by
# E2E_CMD_TIMEOUT; returns CMD's exit code (124 on timeout).
e2e_in_client() { timeout -k 5 "$E2E_CMD_TIMEOUT" ip netns exec "$TB_C_NS" "$@"; }
e2e_in_server() { timeout -k 5 "$E2E_CMD_TIMEOUT" ip netns exec "$TB_S_NS" "$@"; }

# e2e_wait_tcp NS ADDR PORT [TIMEOUT]: until something listens on ADDR:PORT in NS.
e2e_wait_tcp() {
	local ns=$1 addr=$2 port=$3 t=${4:-10}
	[[ $addr == *:* ]] && addr="[$addr]"
	e2e_wait_for "$t" "listener on $addr:$port in $ns" \
		bash -c "ip netns exec '$ns' ss -Hltn 'sport = :$port' | grep -qF '$addr:$port'"
}

# e2e_tcp_connects ADDR PORT [SECONDS]: whether a TCP connection from the client
# namespace to ADDR:PORT opens within SECONDS (default 3). For "no path" checks.
e2e_tcp_connects() {
	local a=$1 p=$2 t=${3:-3}
	timeout -k 1 "$t" ip netns exec "$TB_C_NS" bash -c "exec 3<>/dev/tcp/$a/$p" 2>/dev/null
}

# e2e_netem_counts: "DROPPED DUPLICATED" packets so far, both namespaces.
e2e_netem_counts() {
	"$E2E_TESTBED" netem-stats "$E2E_NAME" | awk '
		/drop$/ { for (i = 1; i < NF; i++) if ($i == "packets") d += $(i + 1) }
		/dup to/ { for (i = 1; i < NF; i++) if ($i == "packets") u += $(i + 1) }
		END { print d + 0, u + 0 }'
}

# ---------------------------------------------------------------- processes

# e2e_bg LABEL CMD...: run CMD in the background, output in $E2E_TMP/LABEL.log,
# killed (TERM, then KILL after 5 s) at exit. Sets E2E_BG_PID.
e2e_bg() {
	local label=$1; shift
	setsid "$@" </dev/null >"$E2E_TMP/$label.log" 2>&1 &
	E2E_BG_PID=$!
	echo "$E2E_BG_PID" >>"$E2E_TMP/.bgpids"
	e2e_defer e2e__kill_bg "$E2E_BG_PID"
	e2e_log "started $label (pid $E2E_BG_PID): $*"
}

e2e__kill_bg() {
	local pid=$1 i
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
	for i in $(seq 1 50); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
}

# e2e_alive PID LABEL: fail if a background process has died.
e2e_alive() {
	kill -0 "$1" 2>/dev/null || e2e_fail "$2 (pid $1) is not running; see $E2E_TMP/$2.log"
}

# e2e_wait_for TIMEOUT DESC CMD...: poll CMD every 0.2 s until it succeeds; fail
# with DESC after TIMEOUT seconds.
e2e_wait_for() {
	local t=$1 desc=$2; shift 2
	local end=$((SECONDS + t))
	while ! "$@" >/dev/null 2>&1; do
		((SECONDS < end)) || e2e_fail "timed out after ${t}s waiting for $desc"
		sleep 0.2
	done
}

# ---------------------------------------------------------------- Postfix

# e2e_users FILE ADDR...: write a valid-users file (one address per line).
e2e_users() {
	local f=$1; shift
	printf '%s\n' "$@" >"$f"
}

# e2e_postfix INST KIND [postfix-inst create options]: create and start Postfix
# instance $E2E_NAME-INST. Defaults: dest-* and frontline in the server namespace
# on TB_S_ADDR (frontline with --relay TB_S_ADDR2, where its back-end listens),
# sender in the client namespace on TB_C_ADDR with --relay TB_S_ADDR.
# Options given override (--netns, --addr, --port, --users, --domain, --relay, --set).
e2e_postfix() {
	local inst=$1 kind=$2; shift 2
	local full=$E2E_NAME-$inst args=()
	case " $* " in *" --netns "*) ;; *)
		if [[ $kind == sender ]]; then args+=(--netns "$TB_C_NS"); else args+=(--netns "$TB_S_NS"); fi ;;
	esac
	case " $* " in *" --addr "*) ;; *)
		if [[ $kind == sender ]]; then args+=(--addr "$TB_C_ADDR"); else args+=(--addr "$TB_S_ADDR"); fi ;;
	esac
	case " $* " in *" --relay "*) ;; *)
		case $kind in
		sender) args+=(--relay "$TB_S_ADDR") ;;
		frontline) args+=(--relay "$TB_S_ADDR2") ;;
		esac ;;
	esac
	E2E_INSTANCES+=("$inst")
	e2e_defer "$E2E_POSTFIX" destroy "$full"
	"$E2E_POSTFIX" create "$full" --kind "$kind" "${args[@]}" "$@" ||
		e2e_fail "postfix-inst create $full failed"
	"$E2E_POSTFIX" start "$full" || e2e_fail "postfix-inst start $full failed"
	e2e_log "postfix $full ($kind) up: $("$E2E_POSTFIX" status "$full")"
}

e2e_pf_dir() { echo "${RG_POSTFIX_BASE:-/run/rcptgate-postfix}/$E2E_NAME-$1"; }
e2e_pf_log() { echo "$(e2e_pf_dir "$1")/log/maillog"; }
e2e_pf_conf() { echo "$(e2e_pf_dir "$1")/etc"; }

# e2e_maildir INST ADDR: the Maildir 'new' directory of a virtual mailbox.
e2e_maildir() {
	local a=${2,,}
	echo "$(e2e_pf_dir "$1")/mail/${a#*@}/${a%@*}/new"
}

# e2e_mail_count INST ADDR: messages delivered to ADDR.
e2e_mail_count() {
	local d
	d=$(e2e_maildir "$1" "$2")
	[[ -d $d ]] || { echo 0; return 0; }
	find "$d" -type f | wc -l
}

# e2e_wait_delivered INST ADDR N [TIMEOUT]: until ADDR's Maildir holds N messages;
# fails on timeout and when more than N arrive.
e2e_wait_delivered() {
	local inst=$1 addr=$2 n=$3 t=${4:-30} c end
	end=$((SECONDS + t))
	while :; do
		c=$(e2e_mail_count "$inst" "$addr")
		((c > n)) && e2e_fail "$addr at $inst has $c messages, expected $n"
		((c == n)) && break
		((SECONDS < end)) || e2e_fail "timed out after ${t}s: $addr at $inst has $c of $n messages"
		sleep 0.2
	done
	e2e_log "$addr at $inst: $c message(s)"
}

# e2e_find_mail INST ADDR TOKEN: path of the delivered message containing TOKEN
# (fails unless exactly one does).
e2e_find_mail() {
	local d files
	d=$(e2e_maildir "$1" "$2")
	mapfile -t files < <(grep -lF -- "$3" "$d"/* 2>/dev/null || true)
	[[ ${#files[@]} -eq 1 ]] || e2e_fail "expected 1 message with '$3' for $2 at $1, found ${#files[@]}"
	echo "${files[0]}"
}

# e2e_queue_count INST: messages still in INST's queue.
e2e_queue_count() { "$E2E_POSTFIX" queue-count "$E2E_NAME-$1"; }

# e2e_wait_queue_empty INST [TIMEOUT]
e2e_wait_queue_empty() {
	local t=${2:-30}
	e2e_wait_for "$t" "empty queue of $1" bash -c "[[ \$('$E2E_POSTFIX' queue-count '$E2E_NAME-$1') -eq 0 ]]"
}

# e2e_sendmail INST FROM RCPT... < MESSAGE: queue a message into a sender instance
# (sendmail -i: a line with a lone dot is message text, not its end).
e2e_sendmail() {
	local inst=$1 from=$2; shift 2
	"$E2E_POSTFIX" sendmail "$E2E_NAME-$inst" -i -f "$from" -- "$@" || e2e_fail "sendmail into $inst failed"
	"$E2E_POSTFIX" flush "$E2E_NAME-$inst" >/dev/null 2>&1 || true
}

# e2e_log_count INST ERE: lines of INST's maillog matching ERE.
e2e_log_count() {
	local f
	f=$(e2e_pf_log "$1")
	grep -cE -- "$2" "$f" 2>/dev/null || true
}

# ---------------------------------------------------------------- clients

# e2e_swaks OUT [swaks options]: swaks from the client namespace, transcript in OUT
# (relative names go to E2E_TMP). Default --server TB_S_ADDR, --timeout 30.
# Returns swaks' exit code (0 ok, 23-29 a reply was an error; see swaks(1)):
#   rc=0; e2e_swaks t1 --to x@example.test || rc=$?
e2e_swaks() {
	local out=$1; shift
	[[ $out == /* ]] || out=$E2E_TMP/$out
	local args=(--timeout 30)
	case " $* " in *" --server "*|*" -s "*) ;; *) args+=(--server "$TB_S_ADDR") ;; esac
	local rc=0
	e2e_in_client swaks "${args[@]}" "$@" >"$out" 2>&1 || rc=$?
	return $rc
}

# e2e_smtp_source [smtp-source options] HOST[:PORT]: smtp-source in the client
# namespace, output in $E2E_TMP/smtp-source.N.log; returns its exit code.
e2e_smtp_source() {
	local n=${E2E_SS_N:-0} rc=0
	E2E_SS_N=$((n + 1))
	e2e_in_client smtp-source "$@" >"$E2E_TMP/smtp-source.$n.log" 2>&1 || rc=$?
	[[ $rc -eq 0 ]] || { e2e_log "smtp-source exit $rc:"; tail -5 "$E2E_TMP/smtp-source.$n.log" >&2; }
	return $rc
}

# e2e_make_message FILE TOKEN [KB]: an RFC 5322 message whose Subject and
# Message-ID carry TOKEN, with a body that exercises transparency: lines starting
# with '.', a lone '.', 'From ' lines, a 998-octet line, trailing spaces, and KB
# (default 4) kilobytes of base64 text. No '%' (swaks expands %TOKENS%). The last
# line has no line ending: swaks ends DATA with CRLF.CRLF itself, so a file that
# ended in a newline would arrive with one more empty line.
e2e_make_message() {
	local f=$1 tok=$2 kb=${3:-4}
	{
		printf 'From: <sender@client.test>\n'
		printf 'To: <rcpt@example.test>\n'
		printf 'Subject: rcptgate e2e %s\n' "$tok"
		printf 'Message-ID: <%s@client.test>\n' "$tok"
		printf 'Date: %s\n' "$(date -R)"
		printf '\n'
		printf 'token %s\n' "$tok"
		printf '.leading dot\n..two leading dots\n.\n'
		printf 'From the start of a line\n'
		printf 'trailing spaces   \n'
		head -c 998 /dev/zero | tr '\0' 'L'
		printf '\n'
		head -c $((kb * 768)) /dev/urandom | base64 -w 76
		printf 'end %s' "$tok"
	} >"$f"
}

# e2e_body FILE: the body of a message (after the first empty line), CRLF -> LF,
# ending in a line ending (a message carried by SMTP always does).
e2e_body() {
	tr -d '\r' <"$1" | sed '1,/^$/d'
	[[ $(tail -c 1 "$1" | od -An -c | tr -d ' ') == '\n' ]] || echo
}

# ---------------------------------------------------------------- assertions

e2e_assert_eq() { # WHAT EXPECTED ACTUAL
	[[ "$2" == "$3" ]] || e2e_fail "$1: expected '$2', got '$3'"
}

e2e_assert_ge() { # WHAT MIN ACTUAL
	(($3 >= $2)) || e2e_fail "$1: expected at least $2, got $3"
}

# e2e_assert_grep WHAT ERE FILE / e2e_assert_no_grep WHAT ERE FILE
e2e_assert_grep() {
	grep -qE -- "$2" "$3" 2>/dev/null && return 0
	echo "---- $3 (last 20 lines) ----" >&2
	tail -20 "$3" >&2 2>/dev/null || echo "(missing)" >&2
	e2e_fail "$1: /$2/ not found in $3"
}

e2e_assert_no_grep() {
	local hits
	hits=$(grep -nE -- "$2" "$3" 2>/dev/null | head -5 || true)
	[[ -z $hits ]] && return 0
	echo "$hits" >&2
	e2e_fail "$1: /$2/ found in $3"
}

# e2e_assert_log INST ERE / e2e_assert_no_log INST ERE: on INST's maillog.
e2e_assert_log() { e2e_assert_grep "maillog of $1" "$2" "$(e2e_pf_log "$1")"; }
e2e_assert_no_log() { e2e_assert_no_grep "maillog of $1" "$2" "$(e2e_pf_log "$1")"; }

# e2e_assert_same_body ORIGINAL DELIVERED: message bodies byte-identical (after
# CRLF -> LF, the only change SMTP allows); prints the first differing lines.
e2e_assert_same_body() {
	local a=$E2E_TMP/body.expected b=$E2E_TMP/body.delivered
	[[ -f $1 ]] || e2e_fail "e2e_assert_same_body: original '$1' does not exist"
	[[ -f $2 ]] || e2e_fail "e2e_assert_same_body: delivered message '$2' does not exist"
	e2e_body "$1" >"$a"
	e2e_body "$2" >"$b"
	if ! cmp -s "$a" "$b"; then
		cmp "$a" "$b" >&2 || true
		diff "$a" "$b" | head -20 >&2 || true
		e2e_fail "body of $2 differs from $1"
	fi
	e2e_log "body identical ($(wc -c <"$a") bytes): $2"
}

#!/bin/bash
# t_notify.sh — rcptgated speaks systemd's notify protocol as
# rcptgated.service (Type=notify, WatchdogSec) expects: READY=1 once it
# serves, WATCHDOG=1 pings from its loop at half of WATCHDOG_USEC, and
# none when the loop is stopped (SIGSTOP), RELOADING=1 then READY=1 on
# SIGHUP, STOPPING=1 on SIGTERM.  The test plays the service manager: a
# datagram socket named by NOTIFY_SOCKET.
set -euo pipefail
build=${RG_BUILD:?}
grep -q "RG_HAVE_SYSTEMD" "$build/compile_commands.json" ||
	{ echo "skip: built without libsystemd"; exit 77; }
exec python3 - "$build/control/rcptgated" <<'PY'
import os, signal, socket, subprocess, sys, tempfile, time

rcptgated = sys.argv[1]
tmp = tempfile.mkdtemp()
conf = os.path.join(tmp, "rcptgated.conf")
with open(conf, "w") as f:
    f.write(f"""[global]
shm_path = {tmp}/shm
store_path = {tmp}/store
control_socket = {tmp}/ctl.sock
shm_max_lcores = 2
table_init_log2 = 10
store_map_mb = 16
xdp_pin_dir = {tmp}/nobpf
log_stderr = yes
""")
os.mkdir(f"{tmp}/store")
sock_path = os.path.join(tmp, "notify")
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sock_path)
env = dict(os.environ, NOTIFY_SOCKET=sock_path, WATCHDOG_USEC="400000")
env.pop("WATCHDOG_PID", None)
p = subprocess.Popen([rcptgated, "-c", conf], env=env,
                     stdout=subprocess.DEVNULL, stderr=open(f"{tmp}/log", "w"))
fail = 0

def msgs(seconds):
    out, end = [], time.time() + seconds
    while time.time() < end:
        s.settimeout(max(0.01, end - time.time()))
        try:
            out.append((time.time(), s.recv(4096).decode()))
        except socket.timeout:
            pass
    return out

def check(ok, what):
    global fail
    print(("ok: " if ok else "FAIL: ") + what)
    if not ok:
        fail = 1

def has(ms, key):
    return [t for t, m in ms if key in m.split("\n")]

m = msgs(3.0)
check(bool(has(m, "READY=1")), f"READY=1 within 3 s (got {[x for _, x in m][:3]})")
pings = has(m, "WATCHDOG=1")
# 400 ms watchdog: a ping every 200 ms, some 10 to 15 in 3 s after READY
check(len(pings) >= 8, f"{len(pings)} WATCHDOG=1 pings in 3 s at WATCHDOG_USEC=400000")
gaps = [b - a for a, b in zip(pings, pings[1:])]
check(bool(gaps) and max(gaps) < 0.4, f"largest gap between pings {max(gaps or [9]):.3f} s < 0.4 s")
os.kill(p.pid, signal.SIGSTOP)   # a loop that does not turn does not ping
m = msgs(1.0)
check(not has(m, "WATCHDOG=1"), f"no ping while the process is stopped ({len(m)} messages)")
os.kill(p.pid, signal.SIGCONT)
m = msgs(1.0)
check(bool(has(m, "WATCHDOG=1")), "pings again once it runs")
os.kill(p.pid, signal.SIGHUP)
m = msgs(1.5)
rl, rd = has(m, "RELOADING=1"), has(m, "READY=1")
check(bool(rl) and bool(rd) and rl[0] <= rd[-1], "SIGHUP: RELOADING=1 then READY=1")
os.kill(p.pid, signal.SIGTERM)
m = msgs(1.5)
check(bool(has(m, "STOPPING=1")), "SIGTERM: STOPPING=1")
try:
    rc = p.wait(10)
except subprocess.TimeoutExpired:
    p.kill()
    rc = -9
check(rc == 0, f"rcptgated exited with {rc}")
if fail:
    print(open(f"{tmp}/log").read())
subprocess.run(["rm", "-rf", tmp])
sys.exit(fail)
PY

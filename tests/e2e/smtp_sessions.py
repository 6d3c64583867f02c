#!/usr/bin/python3
# smtp_sessions.py — many concurrent SMTP sessions that last (for the
# data-plane restart tests, t_dp_restart*.sh), and the check of what the
# destination received.  Plain Python 3 (asyncio), no third-party module.
#
#   smtp_sessions.py run --server ADDR [--port 25] --sessions N --txns K
#       --pause S --domain D --valid a,b,.. --invalid x,y,.. --out DIR
#   Each session: EHLO (PIPELINING must be offered), then K transactions,
#   each in one write: MAIL, RCPT valid, RCPT invalid, RCPT valid, DATA; the
#   replies must be 250, 250, the filter's 550 5.1.1, 250, 354; then a body
#   (a unique X-RG-Id header, dot-stuffed lines) and 250; S seconds between
#   transactions; QUIT, 221.  Every message sent is kept as DIR/ID.eml.
#   DIR/progress holds the transactions completed so far (a line each).
#   Output: a line per failed session, then
#   "RESULT ok=.. failed=.. resets=.. txns=.." (exit 0 only when every
#   session completed).
#
#   smtp_sessions.py check --out DIR --maildir-root ROOT --domain D
#   Every message of DIR was delivered exactly once to each of its two valid
#   recipients (ROOT/DOMAIN/USER/new), byte-identical body; nothing else is
#   there.  Prints "CHECK ok=.. missing=.. dup=.. differ=.. stray=.." (exit 0
#   only when all are ok).
import argparse
import asyncio
import glob
import os
import sys
import time

FILTER_TEXT = b"Recipient address rejected: User unknown"


class Fail(Exception):
    pass


async def reply(r, timeout):
    """One complete SMTP reply: (code, text)."""
    lines = []
    while True:
        line = await asyncio.wait_for(r.readline(), timeout)
        if not line:
            raise Fail("connection closed by the peer")
        lines.append(line)
        if len(line) < 4 or line[3:4] != b"-":
            break
    return int(lines[0][:3]), b"".join(lines)


def body_of(sid, t):
    # lines that exercise the end-of-body matcher and dot-stuffing
    lines = [
        "Subject: restart test %s" % sid,
        "X-RG-Id: %s-t%d" % (sid, t),
        "",
        "first line of %s transaction %d" % (sid, t),
        ".a line that starts with a dot",
        "RCPT TO:<not-a-command@example.test>",
        "x" * 200,
        "last line",
    ]
    return "\r\n".join(lines) + "\r\n"


async def session(a, i, stats):
    sid = "s%04d" % i
    d = a.domain
    v1 = a.valid[i % len(a.valid)]
    v2 = a.valid[(i + 1) % len(a.valid)]
    bad = a.invalid[i % len(a.invalid)]
    w = None
    try:
        r, w = await asyncio.wait_for(asyncio.open_connection(a.server, a.port), a.timeout)
        code, _ = await reply(r, a.timeout)
        if code != 220:
            raise Fail("banner %d" % code)
        w.write(b"EHLO client%d.test\r\n" % i)
        code, text = await reply(r, a.timeout)
        if code != 250 or b"PIPELINING" not in text:
            raise Fail("EHLO: %r" % text[:80])
        for t in range(a.txns):
            if t:
                await asyncio.sleep(a.pause)
            cmds = ("MAIL FROM:<%s@client.test>\r\nRCPT TO:<%s@%s>\r\nRCPT TO:<%s@%s>\r\n"
                    "RCPT TO:<%s@%s>\r\nDATA\r\n" % (sid, v1, d, bad, d, v2, d))
            w.write(cmds.encode())
            want = [250, 250, 550, 250, 354]
            for k, exp in enumerate(want):
                code, text = await reply(r, a.timeout)
                if code != exp:
                    raise Fail("txn %d reply %d: %r (expected %d)" % (t, k, text[:90], exp))
                if exp == 550 and (FILTER_TEXT not in text or b"5.1.1" not in text):
                    raise Fail("txn %d: 550 not the filter's: %r" % (t, text[:90]))
            body = body_of(sid, t)
            with open(os.path.join(a.out, "%s-t%d.eml" % (sid, t)), "w") as f:
                f.write("X-RG-To: %s %s\n" % (v1, v2))
                f.write(body)
            stuffed = "".join(("." + ln if ln.startswith(".") else ln)
                              for ln in body.splitlines(keepends=True))
            w.write(stuffed.encode() + b".\r\n")
            code, text = await reply(r, a.timeout)
            if code != 250:
                raise Fail("txn %d end of data: %r" % (t, text[:90]))
            stats["txns"] += 1
            with open(os.path.join(a.out, "progress"), "a") as f:
                f.write("%s %d\n" % (sid, t))
        w.write(b"QUIT\r\n")
        code, _ = await reply(r, a.timeout)
        if code != 221:
            raise Fail("QUIT %d" % code)
        stats["ok"] += 1
    except (ConnectionResetError, BrokenPipeError) as e:
        stats["failed"] += 1
        stats["resets"] += 1
        print("%s: RESET (%s)" % (sid, e), flush=True)
    except (Fail, asyncio.TimeoutError, OSError) as e:
        stats["failed"] += 1
        print("%s: FAILED: %s" % (sid, str(e) or type(e).__name__), flush=True)
    except Exception as e:  # noqa: BLE001 - a garbled reply is a broken session too
        stats["failed"] += 1
        print("%s: FAILED: garbled: %s" % (sid, type(e).__name__), flush=True)
    finally:
        if w is not None:
            w.close()


async def run(a):
    stats = {"ok": 0, "failed": 0, "resets": 0, "txns": 0}
    tasks = []
    for i in range(a.sessions):
        tasks.append(asyncio.create_task(session(a, i, stats)))
        if a.ramp:
            await asyncio.sleep(a.ramp)
    await asyncio.gather(*tasks)
    return stats


def cmd_run(a):
    a.valid = a.valid.split(",")
    a.invalid = a.invalid.split(",")
    os.makedirs(a.out, exist_ok=True)
    open(os.path.join(a.out, "progress"), "w").close()
    t0 = time.time()
    s = asyncio.run(run(a))
    print("RESULT ok=%d failed=%d resets=%d txns=%d seconds=%.1f" %
          (s["ok"], s["failed"], s["resets"], s["txns"], time.time() - t0), flush=True)
    return 0 if s["failed"] == 0 and s["ok"] == a.sessions else 1


def norm_body(data):
    data = data.replace(b"\r\n", b"\n")
    i = data.find(b"\n\n")
    return data[i + 2:] if i >= 0 else b""


def cmd_check(a):
    sent = {}
    for p in glob.glob(os.path.join(a.out, "*.eml")):
        with open(p, "rb") as f:
            first = f.readline().split()
            msg = f.read()
        mid = os.path.basename(p)[:-4]
        sent[mid] = ([u.decode() for u in first[1:]], norm_body(msg))
    got = {}
    for p in glob.glob(os.path.join(a.maildir_root, a.domain, "*", "new", "*")):
        user = p.split(os.sep)[-3]
        with open(p, "rb") as f:
            data = f.read()
        mid = None
        for line in data.split(b"\n"):
            if line.startswith(b"X-RG-Id: "):
                mid = line[9:].strip().decode()
                break
            if line in (b"", b"\r"):
                break
        got.setdefault((mid, user), []).append(norm_body(data))
    ok = missing = dup = differ = 0
    for mid, (users, body) in sent.items():
        for u in users:
            copies = got.pop((mid, u), [])
            if not copies:
                missing += 1
                print("missing: %s for %s" % (mid, u))
            elif len(copies) > 1:
                dup += 1
                print("duplicated: %s for %s (%d copies)" % (mid, u, len(copies)))
            elif copies[0] != body:
                differ += 1
                print("body differs: %s for %s" % (mid, u))
            else:
                ok += 1
    stray = sum(len(v) for v in got.values())
    for (mid, u) in got:
        print("stray: %s for %s" % (mid, u))
    print("CHECK ok=%d missing=%d dup=%d differ=%d stray=%d" % (ok, missing, dup, differ, stray))
    return 0 if ok and not (missing or dup or differ or stray) else 1


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--server", required=True)
    r.add_argument("--port", type=int, default=25)
    r.add_argument("--sessions", type=int, default=100)
    r.add_argument("--txns", type=int, default=3)
    r.add_argument("--pause", type=float, default=2.0)
    r.add_argument("--ramp", type=float, default=0.005)
    r.add_argument("--timeout", type=float, default=60.0)
    r.add_argument("--domain", required=True)
    r.add_argument("--valid", required=True)
    r.add_argument("--invalid", required=True)
    r.add_argument("--out", required=True)
    c = sub.add_parser("check")
    c.add_argument("--out", required=True)
    c.add_argument("--maildir-root", required=True)
    c.add_argument("--domain", required=True)
    a = ap.parse_args()
    sys.exit(cmd_run(a) if a.cmd == "run" else cmd_check(a))


if __name__ == "__main__":
    main()

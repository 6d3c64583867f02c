#!/usr/bin/env python3
"""mkseeds.py — write the hand-made seed inputs of tests/fuzz/corpus/NAME/.

Each harness decodes its input its own way (see the harness's header); the
seeds here are written in that encoding so that fuzzing starts from complete
sessions, not from noise: a whole SMTP session through engine_segments, a few
session shapes for engine_diff, RFC 5321 paths for fuzz_addr, command and
reply streams for fuzz_smtp.  Run it after changing an encoding:
    python3 tests/fuzz/mkseeds.py
Inputs libFuzzer found and that are worth keeping are added with
scripts/fuzz --merge (they are not written by this script).
"""
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))

# engine_segments.c's dict[], in order
DICT = [
    "EHLO c.test\r\n", "HELO c.test\r\n", "MAIL FROM:<s@x.test>\r\n",
    "RCPT TO:<good@example.com>\r\n", "RCPT TO:<bad1@example.com>\r\n",
    "RCPT TO:<bad2@example.com>\r\n", "RCPT TO:<nobody@closed.test>\r\n",
    "RCPT TO:<ok@closed.test>\r\n", "RCPT TO:<h1@harvest.test>\r\n",
    "RCPT TO:<x@defer.test>\r\n", "RCPT TO:<new@elsewhere.test>\r\n", "DATA\r\n",
    "BDAT 7\r\n", "BDAT 0 LAST\r\n", "BDAT 3 LAST\r\n", "RSET\r\n", "QUIT\r\n",
    "STARTTLS\r\n", "AUTH PLAIN\r\n", "AUTH LOGIN dXNlcg==\r\n", "NOOP\r\n", ".\r\n",
    "..\r\n", "\r\n", "\r", "\n", "RCPT", " TO:", "<bad1@example.com>", " ", "\t",
    "rcpt to:<BAD2@EXAMPLE.COM> SIZE=10\r\n",
    "220 mx.test ESMTP\r\n", "250-mx.test\r\n", "250-PIPELINING\r\n", "250-CHUNKING\r\n",
    "250-STARTTLS\r\n", "250 8BITMIME\r\n", "250 2.1.5 Ok\r\n", "250 2.1.0 Ok\r\n",
    "354 go ahead\r\n", "334 VXNlcm5hbWU6\r\n", "235 2.7.0 ok\r\n", "503 5.5.1 no\r\n",
    "550 5.1.1 no\r\n", "450 4.7.1 later\r\n", "221 2.0.0 Bye\r\n", "421 4.7.0 bye\r\n",
    "220 2.0.0 Ready to start TLS\r\n", "250 2.0.0 Ok: queued\r\n",
    "a body line ...",
]


def d(s):
    return DICT.index(s)


class Seg:
    """engine_segments' operation encoding."""

    def __init__(self, h0, h1):
        self.b = bytearray([h0, h1])

    def op(self, kind, flow, to_server, extra=(), seq=0, x_more=0):
        # x: bit0 direction (0 = client->server), bit3 tailroom 0, bit5 PSH
        x = (0 if to_server else 1) | 0x08 | 0x20 | x_more
        self.b += bytes([(flow << 4) | kind, x, seq & 0xff])
        self.b += bytes(extra)

    def syn(self, flow, mss_idx):
        self.op(0, flow, True, [mss_idx], seq=0xff)  # seq = isn (nxt - 1)

    def synack(self, flow, mss_idx):
        self.op(0, flow, False, [mss_idx], seq=0xff)

    def data(self, flow, to_server, words):
        assert 1 <= len(words) <= 8
        self.op(3, flow, to_server, [len(words) - 1] + [d(w) for w in words])

    def ack(self, flow, to_server):
        self.op(2, flow, to_server)

    def fin(self, flow, to_server):
        self.op(9, flow, to_server)

    def tick(self, flow, ten_ms):
        self.op(11, flow, True, [ten_ms])


def session(h0, h1, flow=0, mss=4):
    s = Seg(h0, h1)
    s.syn(flow, mss)
    s.synack(flow, mss)
    s.ack(flow, True)
    s.data(flow, False, ["220 mx.test ESMTP\r\n"])
    s.data(flow, True, ["EHLO c.test\r\n"])
    s.data(flow, False, ["250-mx.test\r\n", "250-PIPELINING\r\n", "250-CHUNKING\r\n",
                         "250 8BITMIME\r\n"])
    s.data(flow, True, ["MAIL FROM:<s@x.test>\r\n", "RCPT TO:<good@example.com>\r\n",
                        "RCPT TO:<bad1@example.com>\r\n", "RCPT TO:<ok@closed.test>\r\n",
                        "DATA\r\n"])
    s.data(flow, False, ["250 2.1.0 Ok\r\n", "250 2.1.5 Ok\r\n", "250 2.1.5 Ok\r\n"])
    s.data(flow, False, ["354 go ahead\r\n"])
    s.ack(flow, True)
    s.data(flow, True, ["..\r\n", "RCPT TO:<bad1@example.com>\r\n", ".\r\n"])
    s.data(flow, False, ["250 2.0.0 Ok: queued\r\n"])
    s.data(flow, True, ["RCPT", " TO:", "<bad1@example.com>", "\r\n"])
    s.data(flow, True, ["QUIT\r\n"])
    s.data(flow, False, ["221 2.0.0 Bye\r\n"])
    s.fin(flow, False)
    s.fin(flow, True)
    s.ack(flow, False)
    s.tick(flow, 200)
    return bytes(s.b)


def write(name, files):
    out = os.path.join(HERE, "corpus", name)
    os.makedirs(out, exist_ok=True)
    for fn, data in files.items():
        with open(os.path.join(out, "seed-" + fn), "wb") as f:
            f.write(data)


def main():
    seg = {
        # h0: max_flows 3 (bits 0-1 = 2), roomy limits; h1: IPv4, no VLAN, no TS
        "session-v4": session(0x02, 0x00),
        # IPv6, one VLAN tag, timestamps, tiny limits, checksum offload
        "session-v6-vlan-ts-tiny": session(0x02 | 0x04 | 0x08 | 0x10 | 0x20 | 0x40,
                                           0x01 | 0x02 | 0x08),
        # client MSS 8960, server MSS 88
        "session-mss": session(0x02, 0x08, mss=6),
    }
    # a partial line held, then more, in three flows
    s = Seg(0x02, 0x08)
    for f in range(3):
        s.syn(f, 4)
        s.synack(f, 4)
        s.data(f, False, ["220 mx.test ESMTP\r\n"])
    for f in range(3):
        s.data(f, True, ["RCPT", " TO:"])
        s.data(f, True, ["<bad1@example.com>", "\r\n"])
    s.tick(0, 50)
    seg["three-flows-partial-lines"] = bytes(s.b)
    write("engine_segments", seg)

    rnd = random.Random(9)
    diff = {}
    for h in (0x00, 0x01, 0x02 | 0x04, 0x10 | 0x20, 0x40 | 0x80, 0x60 | 0x03):
        body = bytes(rnd.randrange(0, 0xe0) for _ in range(400))
        diff["h%02x" % h] = bytes([h]) + body
    # some loss and duplication (bytes >= 0xe0 on the wire decisions)
    diff["lossy"] = bytes([0x00]) + bytes(rnd.randrange(0, 256) for _ in range(600))
    write("engine_diff", diff)

    paths = [
        "<a@b.example>", " <User.Name+tag@Example.COM> SIZE=100 NOTIFY=NEVER",
        "<\"quoted local\"@x.test>", "<\"a\\\"b\"@x.test>", "<@r1.test,@r2.test:u@d.test>",
        "<postmaster>", "<PostMaster>", "<>", "<u@[198.18.0.1]>", "<u@[IPv6:2001:2::1]>",
        "<\xc3\xbc@b\xc3\xbccher.example>", "<a..b@x.test>", "<a@-x.test>", "<a@x>",
        "<" + "l" * 64 + "@" + "d" * 63 + ".test>", "a@b.example", "<a@b.example",
        "<a@b.example>x", "<\"\"@x.test>",
    ]
    addr = {}
    for i, p in enumerate(paths):
        raw = p.encode("latin-1")
        addr["path%02d" % i] = bytes([0]) + raw
        addr["norm%02d" % i] = bytes([2]) + raw
    addr["cs"] = bytes([1]) + b"<Mixed.Case@Example.COM>"
    write("fuzz_addr", addr)

    smtp = {
        "ehlo": b"\x01\x02220 mx.test ESMTP\r\n250-mx.test\r\n250-PIPELINING\r\n"
                b"250-CHUNKING\r\n250-STARTTLS\r\n250-SMTPUTF8\r\n250 8BITMIME\r\n",
        "pipeline": b"\x03\x04MAIL FROM:<s@x.test> SIZE=10\r\nRCPT TO:<a@b.test>\r\n"
                    b"rcpt  to:<c@d.test>\r\nDATA\r\nBDAT 100 LAST\r\nBDAT x\r\n"
                    b"AUTH PLAIN\r\nSTARTTLS\r\nQUIT\r\n",
        "replies": b"\x05\x06250 ok\r\n550-5.1.1 no\r\n550 5.1.1 no\r\n354\r\n"
                   b"2x0 bad\r\n\r\n421 4.7.0 bye\n",
    }
    write("fuzz_smtp", smtp)


if __name__ == "__main__":
    main()

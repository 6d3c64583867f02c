#!/usr/bin/python3
# craft.py — SMTP clients for rcptgate's hostile end-to-end tests
# (t_dp_hostile_*.sh), run inside the testbed's client namespace.
#
#   craft.py smtp [options] STEP...   a real kernel TCP client (socket API) that
#       writes each command line whole, one byte per write (with or without
#       TCP_NODELAY) or in two writes (Nagle on), times every step and reports
#       any step that took longer than a bound (a TCP retransmission timeout is
#       at least 200 ms on Linux, so a step that waited for one cannot be
#       faster).  It can also inject a TCP RST into its own connection with a
#       chosen sequence number (scapy) and vanish without a FIN (port reuse).
#   craft.py seg --case CASE [options]   a whole SMTP session over a TCP of its
#       own built from raw frames (scapy), with one hostile segment in it: a
#       command the server's TCP throws away (no ACK flag, bad checksum, stale
#       timestamp, acknowledgement of unsent data, lost after the filter) and
#       then the same sequence range resent with other bytes, a corrupted
#       out-of-order segment, a corrupted ACK, a bare FIN far below a held
#       partial line.
#
# Output: a transcript ("-> " sent, "<- " received, "== " notes) and a last
# line "RESULT ok ..." or "RESULT <what> ..." saying what went wrong; exit 0
# on "ok", 1 otherwise.  The tests grep the transcript for the replies.
#
# Scapy is imported only by the cases that need it: it must be Debian's
# (python3-scapy), so this file runs under /usr/bin/python3.

import argparse
import random
import socket
import struct
import subprocess
import sys
import threading
import time

RESULT_OK = 0
RESULT_BAD = 1


def now_ms():
    return time.monotonic() * 1000.0


def say(*a):
    print(*a, flush=True)


def unescape(s):
    """'RCPT\\tTO:<a>' -> bytes with a real TAB; \\r \\n \\t \\\\ understood."""
    return s.encode('latin1').decode('unicode_escape').encode('latin1')


def message_bytes(path):
    """A message file (LF or CRLF) as the DATA payload: CRLF lines,
    dot-stuffed, ending in CRLF . CRLF."""
    raw = open(path, 'rb').read().replace(b'\r\n', b'\n')
    if not raw.endswith(b'\n'):
        raw += b'\n'
    out = []
    for line in raw.split(b'\n')[:-1]:
        if line.startswith(b'.'):
            line = b'.' + line
        out.append(line + b'\r\n')
    return b''.join(out) + b'.\r\n'


class Replies:
    """Collects SMTP replies from a byte stream: a reply ends with a line
    whose fourth character is a space (or that is only the code)."""

    def __init__(self):
        self.buf = b''
        self.done = []      # complete replies, each a list of lines (str)
        self.cur = []

    def feed(self, data):
        self.buf += data
        while b'\n' in self.buf:
            line, self.buf = self.buf.split(b'\n', 1)
            text = line.rstrip(b'\r').decode('latin1')
            say('<- ' + text)
            self.cur.append(text)
            if len(text) < 4 or text[3] != '-':
                self.done.append(self.cur)
                self.cur = []

    def take(self, n):
        r, self.done = self.done[:n], self.done[n:]
        return r


# ---------------------------------------------------------------- smtp: kernel TCP

TCP_INFO_TOTAL_RETRANS = 100    # offset of tcpi_total_retrans in struct tcp_info


class KernelClient:
    def __init__(self, a):
        self.a = a
        self.rep = Replies()
        self.steps = []       # (label, ms)
        self.sniff = None
        self.last_out = None  # (seq_after, ack) of the latest frame we sent, from the sniffer
        fam = socket.AF_INET6 if ':' in a.server else socket.AF_INET
        self.s = socket.socket(fam, socket.SOCK_STREAM)
        if a.bind_port:
            self.s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.s.bind(('', a.bind_port))
        nodelay = 1 if a.mode == 'bytes' else 0
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, nodelay)

    def retrans(self):
        try:
            info = self.s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
            return struct.unpack_from('<I', info, TCP_INFO_TOTAL_RETRANS)[0]
        except OSError:
            return -1

    def write_line(self, line):
        """One command line, written as the mode says."""
        m = self.a.mode
        if m == 'whole':
            self.s.sendall(line)
        elif m in ('bytes', 'bytes-nagle'):
            for i in range(len(line)):
                self.s.sendall(line[i:i + 1])
        elif m == 'split':
            cut = max(1, len(line) // 2)
            self.s.sendall(line[:cut])
            self.s.sendall(line[cut:])

    def wait_replies(self, n, label):
        """Read until n replies are complete; the step's deadline is
        --step-timeout seconds."""
        end = time.monotonic() + self.a.step_timeout
        while len(self.rep.done) < n:
            left = end - time.monotonic()
            if left <= 0:
                return 'stall', ('no complete reply to step %r within %.1f s '
                                 '(%d of %d replies; client TCP retransmissions so far: %d)'
                                 % (label, self.a.step_timeout, len(self.rep.done), n,
                                    self.retrans()))
            self.s.settimeout(left)
            try:
                d = self.s.recv(65536)
            except socket.timeout:
                continue
            except OSError as e:
                return 'reset', 'step %r: %s (client TCP retransmissions %d)' % (
                    label, e, self.retrans())
            if not d:
                return 'closed', ('step %r: the server closed the connection after %d of %d '
                                  'replies' % (label, len(self.rep.done), n))
            self.rep.feed(d)
        self.rep.take(n)
        return None, None

    def timed(self, label, send, nrep):
        t0 = now_ms()
        r0 = self.retrans()
        if send:
            try:
                send()
            except OSError as e:
                return 'reset', 'step %r: %s' % (label, e)
        err, why = self.wait_replies(nrep, label)
        ms = now_ms() - t0
        if err:
            return err, why
        self.steps.append((label, ms))
        say('== step %r: %.1f ms, client TCP retransmissions %d' % (label, ms,
                                                                    self.retrans() - r0))
        return None, None

    # -- RST injection: the client's own frames, seen by a sniffer, give the
    #    numbers; scapy sends the RST from the client's address and port
    def start_sniffer(self):
        from scapy.all import AsyncSniffer, TCP
        lport = self.s.getsockname()[1]

        def note(p):
            if TCP in p and p[TCP].sport == lport:
                t = p[TCP]
                plen = len(bytes(t.payload))
                syn_fin = 1 if t.flags & 0x03 else 0
                self.last_out = ((t.seq + plen + syn_fin) & 0xffffffff, t.ack)

        self.sniff = AsyncSniffer(iface=self.a.iface, filter='tcp and src port %d' % lport,
                                  prn=note, store=False)
        self.sniff.start()
        time.sleep(0.3)   # the sniffer is attached before the first frame

    def inject_rst(self, offset):
        from scapy.all import IP, TCP, send
        if not self.last_out:
            return 'internal', 'no frame of ours seen by the sniffer'
        seq, ack = self.last_out
        lport = self.s.getsockname()[1]
        rseq = (seq + offset) & 0xffffffff
        send(IP(src=self.s.getsockname()[0], dst=self.a.server) /
             TCP(sport=lport, dport=self.a.port, flags='R', seq=rseq),
             iface=self.a.iface, verbose=False)
        say('== injected RST: seq %u = next sequence %u + %d' % (rseq, seq, offset))
        return None, None

    def probe(self):
        """NOOP after a silence: either answered (the connection is intact:
        the session goes on) or reset (the session ends here); no answer at
        all is a connection left desynchronised."""
        t0 = now_ms()
        self.s.settimeout(self.a.step_timeout)
        say('-> NOOP   (probe)')
        try:
            self.s.sendall(b'NOOP\r\n')
            err, why = self.wait_replies(1, 'NOOP (probe)')
        except OSError as e:
            err, why = 'reset', str(e)
        if err == 'reset':
            say('== the connection was reset (%s), %.0f ms after NOOP' % (why, now_ms() - t0))
            self.s.close()
            self.s = None
            return 'was-reset', None
        if err == 'stall':
            return 'stall', ('NOOP after the silence got neither a reply nor a reset within '
                             '%.1f s: the connection is desynchronised' % self.a.step_timeout)
        if err:
            return err, why
        say('== the connection is intact: NOOP answered in %.0f ms' % (now_ms() - t0))
        return None, None

    def run(self, steps):
        a = self.a
        if any(s.startswith('rst:') for s in steps):
            # the sniffer needs the local port: bind one now
            if not a.bind_port:
                self.s.bind(('', 0))
            self.start_sniffer()
        t_start = now_ms()

        def connect():
            self.s.settimeout(a.step_timeout)
            self.s.connect((a.server, a.port))
        try:
            err, why = self.timed('connect and greeting', connect, 1)
        except OSError as e:
            err, why = 'connect', 'connect to %s:%d: %s' % (a.server, a.port, e)
        if err:
            return err, why
        say('== local port %d' % self.s.getsockname()[1])
        for st in steps:
            kind, _, arg = st.partition(':')
            if kind == 'C':         # command lines, one reply each (pipelined if several)
                data = unescape(arg)
                lines = [l.rstrip(b'\r') + b'\r\n' for l in data.split(b'\n') if l.strip(b'\r')]
                for l in lines:
                    say('-> ' + l.rstrip(b'\r\n').decode('latin1').replace('\t', '<TAB>'))
                label = lines[0].rstrip(b'\r\n').decode('latin1').replace('\t', '<TAB>')
                if len(lines) > 1:
                    label += ' (+%d pipelined)' % (len(lines) - 1)
                if a.mode == 'whole':   # a pipelined group goes in one write, as clients do
                    send = lambda: self.s.sendall(b''.join(lines))
                else:
                    send = lambda: [self.write_line(l) for l in lines]
                err, why = self.timed(label, send, len(lines))
            elif kind == 'B':       # a message after 354: body, then "." (one reply)
                body = message_bytes(arg)
                say('-> (message %s: %d bytes with the final dot)' % (arg, len(body)))
                if a.mode == 'bytes':
                    # the body whole, its last 100 bytes (with the final dot)
                    # one per write: thousands of 1-byte frames would measure
                    # the machine's load more than the filter
                    def send():
                        self.s.sendall(body[:-100])
                        self.write_line(body[-100:])
                else:
                    send = lambda: self.s.sendall(body)
                err, why = self.timed('message body and final dot', send, 1)
            elif kind == 'R':       # raw bytes (escaped) and the number of replies
                n, _, raw = arg.partition(':')
                data = unescape(raw)
                say('-> (raw) ' + repr(data))
                err, why = self.timed('raw %r' % data[:40], lambda: self.s.sendall(data),
                                      int(n))
            elif kind == 'rst':     # inject an RST at next sequence + offset
                err, why = self.inject_rst(int(arg, 0))
            elif kind == 'sleep':
                time.sleep(float(arg))
                err = None
            elif kind == 'probe':   # NOOP: answered, or reset (the session ends)
                err, why = self.probe()
                if err == 'was-reset':
                    break
            elif kind == 'eof':     # the server's FIN after 221
                self.s.settimeout(a.step_timeout)
                try:
                    d = self.s.recv(65536)
                except OSError as e:
                    return 'eof', 'waiting for the server to close: %s' % e
                if d:
                    return 'eof', 'unexpected bytes after 221: %r' % d[:80]
                say('== the server closed its side')
                err = None
            elif kind == 'vanish':  # run a command (drops our frames), then abort
                say('== vanish: %s' % arg)
                subprocess.run(arg, shell=True, check=True)
                self.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                  struct.pack('ii', 1, 0))
                self.s.close()
                self.s = None
                say('== closed without FIN (RST dropped)')
                err = None
            else:
                return 'usage', 'unknown step %r' % st
            if err:
                return err, why
        if self.s:
            self.s.close()
        total = now_ms() - t_start
        worst = max(self.steps, key=lambda x: x[1]) if self.steps else ('-', 0.0)
        say('== %d timed steps, slowest %r %.1f ms, session %.1f ms' % (
            len(self.steps), worst[0], worst[1], total))
        if a.max_step_ms and worst[1] > a.max_step_ms:
            over = sum(1 for x in self.steps if x[1] > a.max_step_ms)
            return 'slow', ('step %r took %.1f ms; %d of %d steps over the %d ms bound '
                            '(a TCP retransmission or loss-probe timer, >= 200 ms, was '
                            'waited for)' % (worst[0], worst[1], over, len(self.steps),
                                             a.max_step_ms))
        return None, 'slowest step %r %.1f ms, session %.1f ms' % (worst[0], worst[1], total)


def cmd_smtp(a):
    c = KernelClient(a)
    try:
        err, why = c.run(a.steps)
    finally:
        if c.sniff:
            try:
                c.sniff.stop(join=False)   # its thread ends with the process
            except Exception:
                pass
    if err:
        say('RESULT %s: %s' % (err, why))
        return RESULT_BAD
    say('RESULT ok: %s' % why)
    return RESULT_OK


# ---------------------------------------------------------------- seg: a TCP of our own

class Crafted:
    """A client TCP built from raw frames: enough of RFC 9293 for one SMTP
    session over a clean link (in-order delivery, cumulative ACKs,
    retransmission of our own data), and every field under our control.
    The namespace's kernel must not answer for our port (the test drops its
    frames for the reserved port range with nftables)."""

    RTO = 0.3

    def __init__(self, a):
        from scapy.all import conf, get_if_hwaddr, getmacbyip
        self.a = a
        self.iface = a.iface
        self.src = a.client
        self.dst = a.server
        self.sport = a.sport
        self.dport = a.port
        self.mac = get_if_hwaddr(self.iface)
        self.dmac = None
        for _ in range(5):
            self.dmac = getmacbyip(self.dst)
            if self.dmac:
                break
        if not self.dmac:
            raise SystemExit('RESULT internal: no ARP answer from %s' % self.dst)
        self.tx = conf.L2socket(iface=self.iface)
        self.rx = conf.L2listen(iface=self.iface,
                                filter='tcp and src host %s and src port %d and dst port %d' %
                                (self.dst, self.dport, self.sport))
        self.iss = random.randrange(1 << 32)
        self.snd_nxt = self.iss
        self.snd_una = self.iss
        self.rcv_nxt = None
        self.use_ts = a.ts
        self.ts0 = random.randrange(1 << 30)
        self.t0 = time.monotonic()
        self.ts_recent = 0
        self.rep = Replies()
        self.lock = threading.Condition()
        self.drop_data = 0        # ignore this many server data segments (pretend lost)
        self.dropped = []         # (seq, len) of those
        self.fin_seen = False
        self.rst_seen = False
        self.retx = 0             # our own retransmissions (no ACK within RTO)
        self.ip_id = random.randrange(1, 0x7000)
        self.stop = False
        self.thr = threading.Thread(target=self.reader, daemon=True)
        self.thr.start()

    def tsval(self):
        return (self.ts0 + int((time.monotonic() - self.t0) * 1000)) & 0xffffffff

    def frame(self, flags, seq, ack, payload=b'', opts=None, chksum=None, ip_id=None, tsval=None):
        from scapy.all import Ether, IP, TCP, Raw
        o = list(opts or [])
        if self.use_ts and 'S' not in flags:
            o.append(('Timestamp', (self.tsval() if tsval is None else tsval, self.ts_recent)))
        if ip_id is None:
            self.ip_id = (self.ip_id + 1) & 0x6fff or 1
            ip_id = self.ip_id
        t = TCP(sport=self.sport, dport=self.dport, flags=flags, seq=seq & 0xffffffff,
                ack=(ack or 0) & 0xffffffff, window=65535, options=o)
        if chksum is not None:
            t.chksum = chksum
        p = Ether(src=self.mac, dst=self.dmac) / IP(src=self.src, dst=self.dst, id=ip_id,
                                                    flags='DF') / t
        if payload:
            p = p / Raw(payload)
        return p

    def send(self, p):
        self.tx.send(p)

    def reader(self):
        from scapy.all import TCP, IP
        while not self.stop:
            try:
                p = self.rx.recv()
            except Exception:
                continue
            if p is None or TCP not in p or IP not in p or p[IP].src != self.dst:
                continue
            t = p[TCP]
            data = bytes(t.payload)
            if len(data) and p[IP].len:
                data = data[:p[IP].len - p[IP].ihl * 4 - t.dataofs * 4]
            with self.lock:
                for o in t.options:
                    if o[0] == 'Timestamp':
                        self.ts_recent = o[1][0]
                if t.flags & 0x04:          # RST
                    self.rst_seen = True
                    self.lock.notify_all()
                    continue
                if t.flags & 0x10 and ((t.ack - self.snd_una) & 0xffffffff) < (1 << 31):
                    self.snd_una = t.ack
                if t.flags & 0x02:          # SYN-ACK
                    self.rcv_nxt = (t.seq + 1) & 0xffffffff
                    self.lock.notify_all()
                    continue
                if self.rcv_nxt is None:
                    continue
                if data and self.drop_data > 0 and t.seq == self.rcv_nxt:
                    self.drop_data -= 1
                    self.dropped.append((t.seq, len(data)))
                    say('== pretending the server segment seq %u (%d bytes) was lost' % (
                        t.seq, len(data)))
                    self.lock.notify_all()
                    continue
                if data and t.seq == self.rcv_nxt:
                    self.rcv_nxt = (self.rcv_nxt + len(data)) & 0xffffffff
                    self.rep.feed(data)
                if t.flags & 0x01 and ((t.seq + len(data)) & 0xffffffff) == self.rcv_nxt:
                    self.rcv_nxt = (self.rcv_nxt + 1) & 0xffffffff
                    self.fin_seen = True
                if data or t.flags & 0x01:
                    self.send(self.frame('A', self.snd_nxt, self.rcv_nxt))
                self.lock.notify_all()

    def wait(self, cond, timeout):
        end = time.monotonic() + timeout
        with self.lock:
            while not cond():
                left = end - time.monotonic()
                if left <= 0 or self.rst_seen:
                    return cond()
                self.lock.wait(min(left, 0.05))
            return True

    def connect(self):
        opts = [('MSS', 1460)]
        if self.use_ts:
            opts.append(('Timestamp', (self.tsval(), 0)))
        syn = self.frame('S', self.iss, 0, opts=opts)
        for _ in range(5):
            self.send(syn)
            if self.wait(lambda: self.rcv_nxt is not None, 1.0):
                break
        else:
            raise Failure('connect', 'no SYN-ACK from %s:%d' % (self.dst, self.dport))
        self.snd_nxt = self.snd_una = (self.iss + 1) & 0xffffffff
        self.send(self.frame('A', self.snd_nxt, self.rcv_nxt))
        say('== connected: our ISN %u, the server\'s %u' % (self.iss, (self.rcv_nxt - 1) & 0xffffffff))

    def acked(self, end):
        return ((self.snd_una - end) & 0xffffffff) < (1 << 31)

    def put(self, data, seq=None, advance=True, reliable=True, **kw):
        """Send data at seq (default snd_nxt); reliable: retransmit the same
        frame until the server acknowledges it."""
        if seq is None:
            seq = self.snd_nxt
        end = (seq + len(data)) & 0xffffffff
        if advance and ((end - self.snd_nxt) & 0xffffffff) < (1 << 31):
            self.snd_nxt = end
        flags = kw.pop('flags', 'PA')
        p = self.frame(flags, seq, self.rcv_nxt, data, **kw)
        self.send(p)
        if not reliable:
            return
        for _ in range(int(self.a.step_timeout / self.RTO)):
            if self.wait(lambda: self.acked(end), self.RTO):
                return
            p = self.frame(flags, seq, self.rcv_nxt, data, **kw)
            self.send(p)
            self.retx += 1
            say('== no ACK for [%u, %u) within %d ms: resent' % (seq, end, self.RTO * 1000))
        raise Failure('stall', 'bytes [%u, %u) never acknowledged' % (seq, end))

    def replies(self, n, label):
        if not self.wait(lambda: len(self.rep.done) >= n, self.a.step_timeout):
            if self.rst_seen:
                raise Failure('reset', 'step %r: the connection was reset' % label)
            raise Failure('stall', 'step %r: %d of %d replies within %.1f s' % (
                label, len(self.rep.done), n, self.a.step_timeout))
        with self.lock:
            return self.rep.take(n)

    def command(self, line, nrep=1):
        say('-> ' + line.rstrip('\r\n'))
        self.put(line.encode('latin1'))
        return self.replies(nrep, line.strip())

    def close(self):
        """QUIT, 221, FIN both ways."""
        r = self.command('QUIT\r\n')
        self.wait(lambda: self.fin_seen, 3)
        self.send(self.frame('FA', self.snd_nxt, self.rcv_nxt))
        self.snd_nxt = (self.snd_nxt + 1) & 0xffffffff
        self.wait(lambda: self.acked(self.snd_nxt), 2)
        self.stop = True
        return r


class Failure(Exception):
    def __init__(self, what, why):
        super().__init__(why)
        self.what = what
        self.why = why


def code_of(rep):
    return rep[0][:3] if rep else '---'


def seg_session(a, c):
    """Greeting, EHLO, MAIL: the common start."""
    c.connect()
    c.replies(1, 'greeting')
    c.command('EHLO client.test\r\n')
    r = c.command('MAIL FROM:<%s>\r\n' % a.sender)
    if code_of(r[0]) != '250':
        raise Failure('protocol', 'MAIL refused: %s' % r[0])


def seg_finish(a, c):
    """A valid recipient, the message, QUIT."""
    r = c.command('RCPT TO:<%s>\r\n' % a.valid)
    r = c.command('DATA\r\n')
    if code_of(r[0]) != '354':
        raise Failure('protocol', 'DATA answered %s' % r[0])
    body = message_bytes(a.data)
    say('-> (message %s: %d bytes with the final dot)' % (a.data, len(body)))
    mss = 1400
    for i in range(0, len(body), mss):
        c.put(body[i:i + mss])
    r = c.replies(1, 'message')
    if code_of(r[0]) != '250':
        raise Failure('protocol', 'message refused: %s' % r[0])
    c.close()


def same_len(x, y):
    if len(x) != len(y):
        raise Failure('usage', 'the two addresses must have the same length: %r %r' % (x, y))


def case_resend(a, c, how):
    """A RCPT for a valid address in a segment the server's TCP discards,
    then the same sequence range again with an invalid address."""
    same_len(a.valid, a.invalid)
    good = 'RCPT TO:<%s>\r\n' % a.valid
    bad = 'RCPT TO:<%s>\r\n' % a.invalid
    seq = c.snd_nxt
    kw = {}
    if how == 'no-ack':
        kw = {'flags': 'P'}
    elif how == 'bad-csum':
        kw = {'chksum': 0xdead}
    elif how == 'paws':
        kw = {'tsval': (c.tsval() - 100000) & 0xffffffff}  # older than the server's ts_recent
    elif how == 'bad-ack':
        pass  # below: the ACK field acknowledges bytes the server never sent
    elif how == 'lost':
        kw = {'ip_id': a.lost_ip_id}
    say('-> %s   (%s: the server\'s TCP must not take it)' % (good.rstrip(), how))
    if how == 'bad-ack':
        p = c.frame('PA', seq, (c.rcv_nxt + 100000) & 0xffffffff, good.encode())
        c.send(p)
    else:
        p = c.frame(kw.pop('flags', 'PA'), seq, c.rcv_nxt, good.encode(), **kw)
        c.send(p)
    time.sleep(0.15)
    if how != 'lost' and c.acked((seq + len(good)) & 0xffffffff):
        say('== the server acknowledged the %s segment (its TCP took it)' % how)
    say('-> %s   (the same sequence range resent with other bytes)' % bad.rstrip())
    c.put(bad.encode(), seq=seq)
    r = c.replies(1, 'RCPT (resent)')
    say('== reply to the resent range: %s' % r[0][0])


def case_ooo_bad_csum(a, c):
    """An out-of-order segment with a bad checksum (a corrupted copy), the
    gap before it filled, then the segment as the client really sent it."""
    same_len(a.valid, a.other)
    gap = b'NOOP\r\n'
    real = ('RCPT TO:<%s>\r\n' % a.valid).encode()
    corrupt = ('RCPT TO:<%s>\r\n' % a.other).encode()
    seq = c.snd_nxt
    say('-> %s   (out of order, bad checksum)' % corrupt.decode().rstrip())
    c.send(c.frame('PA', seq + len(gap), c.rcv_nxt, corrupt, chksum=0xbeef))
    time.sleep(0.1)
    say('-> NOOP   (fills the gap before it)')
    c.put(gap, reliable=False)
    time.sleep(0.1)
    say('-> %s   (the real bytes of that range)' % real.decode().rstrip())
    c.put(real, seq=seq + len(gap))
    r = c.replies(2, 'NOOP and RCPT')
    say('== replies: %s / %s' % (r[0][0], r[1][0]))


def case_bad_csum_ack(a, c):
    """The filter's lone 550 for an invalid RCPT is 'lost' on its way to the
    client; a corrupted ACK claims it; the filter must still resend it."""
    with c.lock:
        c.drop_data = 1
    line = 'RCPT TO:<%s>\r\n' % a.invalid
    say('-> ' + line.rstrip())
    c.put(line.encode())
    if not c.wait(lambda: c.dropped, a.step_timeout):
        raise Failure('stall', 'no answer to %r' % line.strip())
    seq, n = c.dropped[0]
    ack = (seq + n) & 0xffffffff
    say('== corrupted ACK %u (bad checksum) for the lost answer' % ack)
    c.send(c.frame('A', c.snd_nxt, ack, chksum=0xbad1))
    t0 = now_ms()
    r = c.replies(1, 'the answer to RCPT, resent')
    say('== the answer came again after %.0f ms: %s' % (now_ms() - t0, r[0][0]))


def case_held_fin_below(a, c):
    """A partial command line (held by the filter), then a bare FIN whose
    sequence number lies 2^31 - 64 kB below it (outside any window: the
    server's TCP ignores it), then the rest of the line."""
    part = ('RCPT TO:<%s' % a.valid).encode()
    rest = b'>\r\n'
    seq = c.snd_nxt
    say('-> %s   (a partial line, no CRLF)' % part.decode())
    c.put(part, reliable=False)
    time.sleep(0.2)
    fseq = (seq - 0x7fff0000) & 0xffffffff
    say('== bare FIN at seq %u (2^31 - 64 kB below the partial line)' % fseq)
    c.send(c.frame('FA', fseq, c.rcv_nxt))
    time.sleep(0.3)
    say('-> %s   (the rest of the line)' % rest.decode().rstrip())
    c.put(rest, seq=(seq + len(part)) & 0xffffffff)
    r = c.replies(1, 'RCPT completed after the FIN')
    say('== reply: %s' % r[0][0])


def cmd_seg(a):
    c = None
    try:
        c = Crafted(a)
        seg_session(a, c)
        if a.case in ('no-ack', 'bad-csum', 'paws', 'bad-ack', 'lost'):
            case_resend(a, c, a.case)
        elif a.case == 'ooo-bad-csum':
            case_ooo_bad_csum(a, c)
        elif a.case == 'bad-csum-ack':
            case_bad_csum_ack(a, c)
        elif a.case == 'held-fin-below':
            case_held_fin_below(a, c)
        else:
            raise Failure('usage', 'unknown case %r' % a.case)
        seg_finish(a, c)
    except Failure as f:
        say('RESULT %s: %s (our TCP resent %d segments)' % (f.what, f.why, c.retx if c else 0))
        return RESULT_BAD
    finally:
        if c:
            c.stop = True
    if c.retx:
        # every segment of ours is acknowledged at once (a reply, the
        # server's delayed ACK, the filter's ACK of held bytes) or never
        say('RESULT slow: case %s completed, but our TCP had to resend %d segment(s): '
            'no ACK within %d ms' % (a.case, c.retx, c.RTO * 1000))
        return RESULT_BAD
    say('RESULT ok: case %s, session complete, no segment resent' % a.case)
    return RESULT_OK


def main():
    ap = argparse.ArgumentParser(description='SMTP clients for the hostile e2e tests')
    sub = ap.add_subparsers(dest='cmd', required=True)

    s = sub.add_parser('smtp', help='kernel TCP client, steps timed')
    s.add_argument('--server', required=True)
    s.add_argument('--port', type=int, default=25)
    s.add_argument('--iface', default='eth0')
    s.add_argument('--mode', choices=['whole', 'bytes', 'bytes-nagle', 'split'], default='whole',
                   help='how command lines are written: whole; one byte per write with '
                   'TCP_NODELAY (bytes) or without (bytes-nagle); in two writes, Nagle on (split)')
    s.add_argument('--bind-port', type=int, default=0)
    s.add_argument('--step-timeout', type=float, default=5.0)
    s.add_argument('--max-step-ms', type=int, default=0,
                   help='fail when a step (first byte written to last reply byte read) '
                   'takes longer')
    s.add_argument('steps', nargs='+', help='C:LINES (\\r\\n-separated, one reply each), '
                   'B:FILE (message after 354), R:N:BYTES, rst:OFFSET, sleep:S, eof, probe, '
                   'vanish:CMD')

    g = sub.add_parser('seg', help='crafted TCP session with one hostile segment')
    g.add_argument('--case', required=True,
                   choices=['no-ack', 'bad-csum', 'paws', 'bad-ack', 'lost', 'ooo-bad-csum',
                            'bad-csum-ack', 'held-fin-below'])
    g.add_argument('--server', required=True)
    g.add_argument('--client', required=True)
    g.add_argument('--port', type=int, default=25)
    g.add_argument('--sport', type=int, required=True)
    g.add_argument('--iface', default='eth0')
    g.add_argument('--ts', action='store_true', help='TCP timestamps on the crafted flow')
    g.add_argument('--sender', default='sender@client.test')
    g.add_argument('--valid', required=True)
    g.add_argument('--invalid', default='')
    g.add_argument('--other', default='', help='ooo-bad-csum: the corrupted copy\'s address')
    g.add_argument('--data', required=True)
    g.add_argument('--lost-ip-id', type=int, default=0x7e57)
    g.add_argument('--step-timeout', type=float, default=5.0)

    a = ap.parse_args()
    if a.cmd == 'smtp':
        return cmd_smtp(a)
    return cmd_seg(a)


if __name__ == '__main__':
    sys.exit(main())

# SPDX-License-Identifier: Apache-2.0
"""LMTP loads that smtp-source cannot make, for bench/lmtp-throughput: one very large message
timed from its first octet to the final reply, closed-loop sessions timed per message from
the final dot to the reply, and a burst of many connections at once. Plus a discard sink, an
LMTP server that reads and drops everything (`python3 lmtpload.py discard-sink ...`), to show
what the client alone reaches.

Every message is built before the clock starts (make_message), so the clients only move bytes:
sendall() of large buffers on a blocking socket, or asyncio streams for the burst. A reply
that is not the one LMTP prescribes (220, 250, 354, 221) is an error; nothing is retried.
"""

import argparse
import asyncio
import base64
import dataclasses
import hashlib
import os
import random
import socket
import sys
import threading
import time

TERMINATOR = b"\r\n.\r\n"
CHUNK = 1 << 20  # octets per sendall(); large enough that the client is never the limit
B64_LINE = 76    # characters per base64 line (RFC 2045 §6.8)


class LmtpError(Exception):
    """A reply that is not the expected one, or a connection that failed."""


def parse_endpoint(endpoint):
    """('unix', path) or ('inet', (host, port)) from "unix:PATH" or "inet:HOST:PORT"."""
    kind, _, rest = endpoint.partition(":")
    if kind == "unix":
        return socket.AF_UNIX, rest
    host, _, port = rest.rpartition(":")
    return socket.AF_INET, (host, int(port))


def connect(endpoint, timeout):
    family, address = parse_endpoint(endpoint)
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(address)
    except OSError:
        sock.close()
        raise
    if family == socket.AF_INET:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


# --- messages ------------------------------------------------------------------------------------


@dataclasses.dataclass
class Message:
    """One message as DATA carries it (CRLF lines, no line starting with a dot, so no dot
    stuffing; the terminating ".\\r\\n" is not included), and the SHA-256 of the MIME entity a
    sealer encrypts: the Content-* and MIME-Version fields, an empty line and the body."""

    wire: bytes
    entity_sha256: str
    entity_octets: int
    _stored: tuple = dataclasses.field(default=None, repr=False)

    def __len__(self):
        return len(self.wire)

    def stored_form(self):
        """(octets, SHA-256) of the message with LF line ends, as a Maildir file holds it."""
        if self._stored is None:
            lf = self.wire.replace(b"\r\n", b"\n")
            self._stored = (len(lf), hashlib.sha256(lf).hexdigest())
        return self._stored


def make_message(size, sender, recipient, seed=0):
    """A message of exactly `size` octets: a plain header section, then multipart/mixed with a
    short text part and an attachment of pseudo-random octets in base64 (76-character lines),
    the layout of most large mail. Lines stay far below the 1000-octet limit."""
    rng = random.Random(seed)
    boundary = f"=_bench_{rng.getrandbits(64):016x}"
    head = (f"From: <{sender}>\r\nTo: <{recipient}>\r\n"
            f"Subject: mailseal benchmark, {size} octets\r\n"
            f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S +0000', time.gmtime())}\r\n"
            f"Message-ID: <{rng.getrandbits(96):024x}@bench.test>\r\n").encode("ascii")
    entity_head = (f'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; '
                   f'boundary="{boundary}"\r\n').encode("ascii")
    text_part = (f"--{boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
                 "The attachment holds pseudo-random octets.\r\n").encode("ascii")
    attachment_head = (f"--{boundary}\r\nContent-Type: application/octet-stream\r\n"
                       "Content-Transfer-Encoding: base64\r\n"
                       'Content-Disposition: attachment; filename="random.bin"\r\n\r\n'
                       ).encode("ascii")
    closing = f"--{boundary}--\r\n".encode("ascii")
    fixed = len(head) + len(entity_head) + 2 + len(text_part) + len(attachment_head) + len(closing)
    room = size - fixed
    if room < 2:
        raise ValueError(f"a message needs at least {fixed + 2} octets, not {size}")
    # Whole base64 lines fill the attachment; one line of filler in the text part (2 to 79
    # octets with its CRLF) makes the size exact.
    lines = room // (B64_LINE + 2)
    if room - lines * (B64_LINE + 2) < 2:
        lines -= 1
    filler = b"x" * (room - lines * (B64_LINE + 2) - 2) + b"\r\n"
    encoded = base64.b64encode(rng.randbytes(lines * B64_LINE // 4 * 3))
    attachment = b"\r\n".join(encoded[i:i + B64_LINE]
                              for i in range(0, len(encoded), B64_LINE)) + b"\r\n"
    if not lines:
        attachment = b""
    body = text_part + filler + attachment_head + attachment + closing
    wire = head + entity_head + b"\r\n" + body
    assert len(wire) == size, (len(wire), size)
    assert not wire.startswith(b".") and b"\n." not in wire
    entity = hashlib.sha256(entity_head + b"\r\n")
    entity.update(body)
    return Message(wire, entity.hexdigest(), len(entity_head) + 2 + len(body))


# --- a blocking client ---------------------------------------------------------------------------


class Session:
    """One LMTP session on a blocking socket."""

    def __init__(self, endpoint, timeout):
        self.sock = connect(endpoint, timeout)
        self.buffer = b""
        self.reply_of("greeting", 220)

    def close(self):
        self.sock.close()

    def reply(self):
        """(code, text of the last line) of the next reply, multi-line replies joined."""
        while True:
            end = self.buffer.find(b"\r\n")
            if end < 0:
                data = self.sock.recv(65536)
                if not data:
                    raise LmtpError("connection closed by the server")
                self.buffer += data
                continue
            line, self.buffer = self.buffer[:end], self.buffer[end + 2:]
            if len(line) < 3 or not line[:3].isdigit():
                raise LmtpError(f"malformed reply line {line!r}")
            if len(line) == 3 or line[3:4] == b" ":
                return int(line[:3]), line.decode("utf-8", "replace")

    def reply_of(self, what, want):
        code, text = self.reply()
        if code != want:
            raise LmtpError(f"{what}: {text!r}, want {want}")
        return text

    def lhlo(self):
        self.sock.sendall(b"LHLO bench.test\r\n")
        self.reply_of("LHLO", 250)

    def begin(self, sender, recipient):
        """MAIL, RCPT and DATA in one write (PIPELINING), up to the 354."""
        self.sock.sendall(f"MAIL FROM:<{sender}>\r\nRCPT TO:<{recipient}>\r\nDATA\r\n"
                          .encode("ascii"))
        self.reply_of("MAIL", 250)
        self.reply_of("RCPT", 250)
        self.reply_of("DATA", 354)

    def send(self, data):
        view = memoryview(data)
        for i in range(0, len(view), CHUNK):
            self.sock.sendall(view[i:i + CHUNK])

    def quit(self):
        try:
            self.sock.sendall(b"QUIT\r\n")
            self.reply()
        except (OSError, LmtpError):
            pass
        self.close()


def send_one(endpoint, sender, recipient, message, timeout):
    """Delivers one message over a new session. Returns the seconds from the first octet of
    the payload to the final reply (one recipient, so one reply: RFC 2033 §4.2)."""
    session = Session(endpoint, timeout)
    try:
        session.lhlo()
        session.begin(sender, recipient)
        start = time.perf_counter()
        session.send(message.wire)
        session.sock.sendall(b".\r\n")
        text = session.reply_of("final reply", 250)
        elapsed = time.perf_counter() - start
    finally:
        session.quit()
    return elapsed, text


def closed_loop(endpoint, sessions, count, sender, recipient, message, timeout):
    """`count` messages over `sessions` sessions, each sending its next message as soon as the
    previous one's reply came. Returns (latencies in seconds, wall seconds): a message's latency
    runs from just before its final CRLF.CRLF is written to the reply after it."""
    latencies = []
    errors = []
    lock = threading.Lock()
    remaining = [count]
    ready = threading.Barrier(sessions + 1)
    # The body without its last CRLF: the final "\r\n.\r\n" is written on its own, timed.
    body, end = message.wire[:-2], TERMINATOR

    def run():
        session = None
        mine = []
        try:
            session = Session(endpoint, timeout)
            session.lhlo()
        except (OSError, LmtpError) as e:
            errors.append(f"session setup: {e}")
        try:
            ready.wait()
        except threading.BrokenBarrierError:
            return
        try:
            while session is not None and not errors:
                with lock:
                    if remaining[0] == 0:
                        break
                    remaining[0] -= 1
                session.begin(sender, recipient)
                session.send(body)
                start = time.perf_counter()
                session.sock.sendall(end)
                session.reply_of("final reply", 250)
                mine.append(time.perf_counter() - start)
        except (OSError, LmtpError) as e:
            errors.append(str(e))
        finally:
            with lock:
                latencies.extend(mine)
            if session is not None:
                session.quit()

    # A thread woken by its reply waits for the GIL at most this long (5 ms by default), which
    # would show in the tail of the latencies.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.0002)
    threads = [threading.Thread(target=run, daemon=True) for _ in range(sessions)]
    try:
        for t in threads:
            t.start()
        ready.wait(timeout)
        start = time.perf_counter()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start
    except threading.BrokenBarrierError:
        raise LmtpError("the sessions did not all open in time: " + "; ".join(errors[:3]))
    finally:
        sys.setswitchinterval(interval)
    if errors:
        raise LmtpError(f"{len(errors)} of {sessions} sessions failed: " + "; ".join(errors[:3]))
    if len(latencies) != count:
        raise LmtpError(f"{len(latencies)} replies, want {count}")
    return latencies, elapsed


# --- the burst -----------------------------------------------------------------------------------


@dataclasses.dataclass
class BurstResult:
    connections: int
    delivered: int
    errors: dict         # {what failed: count}
    examples: list       # the text of the first few errors
    seconds: float       # from the start of the burst to the last reply

    @property
    def error_count(self):
        return sum(self.errors.values())


def burst(endpoint, connections, sender, recipient, message, timeout):
    """Opens `connections` sessions (each greeted and past LHLO) and, once all are open, sends
    one message on every one at the same moment, then QUIT. Failures are counted by step, not
    raised: the figure is how many there were."""
    errors = {}
    examples = []

    def fail(what, detail):
        errors[what] = errors.get(what, 0) + 1
        if len(examples) < 5:
            examples.append(f"{what}: {detail}")

    async def reply(reader):
        while True:
            line = await reader.readline()
            if not line.endswith(b"\r\n"):
                raise LmtpError("connection closed by the server")
            if len(line) < 5 or line[3:4] != b"-":
                return int(line[:3]), line.decode("utf-8", "replace").strip()

    async def expect(reader, what, want):
        code, text = await reply(reader)
        if code != want:
            raise LmtpError(f"{what}: {text!r}")

    async def open_one(sock):
        step = "connect"
        try:
            if sock.family == socket.AF_UNIX:
                reader, writer = await asyncio.open_unix_connection(sock=sock)
            else:
                reader, writer = await asyncio.open_connection(sock=sock)
        except OSError as e:
            fail(step, e)
            sock.close()
            return None
        try:
            step = "greeting"
            await expect(reader, step, 220)
            step = "LHLO"
            writer.write(b"LHLO bench.test\r\n")
            await expect(reader, step, 250)
            return reader, writer
        except (OSError, LmtpError, ValueError) as e:
            fail(step, e)
            writer.close()
            return None

    envelope = f"MAIL FROM:<{sender}>\r\nRCPT TO:<{recipient}>\r\nDATA\r\n".encode("ascii")
    payload = message.wire + b".\r\n"

    async def deliver(stream):
        reader, writer = stream
        step = "MAIL"
        delivered = False
        try:
            writer.write(envelope)
            await expect(reader, step, 250)
            step = "RCPT"
            await expect(reader, step, 250)
            step = "DATA"
            await expect(reader, step, 354)
            step = "final reply"
            writer.write(payload)
            await expect(reader, step, 250)
            delivered = True
            step = "QUIT"
            writer.write(b"QUIT\r\n")
            await expect(reader, step, 221)
        except (OSError, LmtpError, ValueError) as e:
            fail(step, e)
        finally:
            writer.close()
        return delivered

    async def run():
        socks = []
        for _ in range(connections):
            try:
                sock = connect(endpoint, timeout)
                sock.setblocking(False)
                socks.append(sock)
            except OSError as e:
                fail("connect", e)
        streams = await asyncio.wait_for(asyncio.gather(*(open_one(s) for s in socks)),
                                         timeout)
        streams = [s for s in streams if s is not None]
        start = time.perf_counter()
        done = await asyncio.wait_for(asyncio.gather(*(deliver(s) for s in streams)), timeout)
        return sum(done), time.perf_counter() - start

    try:
        delivered, seconds = asyncio.run(run())
    except asyncio.TimeoutError:
        raise LmtpError(f"the burst took longer than {timeout}s") from None
    return BurstResult(connections, delivered, errors, examples, seconds)


# --- the discard sink ----------------------------------------------------------------------------


def discard_sink(listener):
    """Serves one LMTP connection at a time, forever: every command gets a positive reply, and
    DATA is read in 1 MiB blocks and dropped (only the terminator is looked for); one 250 per
    recipient after it. What the client reaches against it is the client's own ceiling."""
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    while True:
        conn, _ = listener.accept()
        with conn:
            try:
                serve_discard(conn, buf, view)
            except OSError:
                pass


def serve_discard(conn, buf, view):
    conn.sendall(b"220 discard-sink LMTP\r\n")
    pending = b""
    recipients = 0
    while True:
        while b"\r\n" in pending:
            line, pending = pending.split(b"\r\n", 1)
            verb = line[:4].upper()
            if verb == b"LHLO":
                conn.sendall(b"250-discard-sink\r\n250 PIPELINING\r\n")
            elif verb == b"RCPT":
                recipients += 1
                conn.sendall(b"250 2.1.5 ok\r\n")
            elif verb == b"QUIT":
                conn.sendall(b"221 2.0.0 bye\r\n")
                return
            elif verb == b"DATA":
                conn.sendall(b"354 go ahead\r\n")
                pending = skip_data(conn, buf, view, pending)
                if pending is None:
                    return
                conn.sendall(b"250 2.0.0 discarded\r\n" * max(recipients, 1))
                recipients = 0
            else:
                conn.sendall(b"250 2.0.0 ok\r\n")
        n = conn.recv_into(buf)
        if not n:
            return
        pending += bytes(view[:n])


def skip_data(conn, buf, view, pending):
    """Reads up to the end of the message text; returns what came after it, or None at EOF."""
    # The CRLF of the DATA line counts as the first one of the terminator (an empty message).
    first = b"\r\n" + pending
    k = first.find(TERMINATOR)
    if k >= 0:
        return first[k + len(TERMINATOR):]
    tail = first[-4:]
    while True:
        n = conn.recv_into(buf)
        if not n:
            return None
        # The terminator may straddle two reads: look at the seam first, then inside.
        seam = tail + bytes(view[:min(n, 4)])
        k = seam.find(TERMINATOR)
        if k >= 0:
            return bytes(view[k + len(TERMINATOR) - len(tail):n])
        k = buf.find(TERMINATOR, 0, n)
        if k >= 0:
            return bytes(view[k + len(TERMINATOR):n])
        tail = (tail + bytes(view[max(0, n - 4):n]))[-4:]


def main():
    p = argparse.ArgumentParser(description="an LMTP server that discards what it gets")
    p.add_argument("mode", choices=["discard-sink"])
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--unix", metavar="PATH")
    where.add_argument("--tcp", metavar="HOST:PORT")
    args = p.parse_args()
    if args.unix:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(args.unix)
        os.chmod(args.unix, 0o666)
    else:
        host, _, port = args.tcp.rpartition(":")
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, int(port)))
    listener.listen(64)
    discard_sink(listener)


if __name__ == "__main__":
    main()

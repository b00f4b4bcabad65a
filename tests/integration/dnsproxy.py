# SPDX-License-Identifier: Apache-2.0
"""A DNS proxy that damages chosen answers in flight, between libunbound and the test bed's NSD.

`DnsProxy(upstream_port)` listens on 127.0.0.1 and a free port, UDP and TCP, and forwards each
query to NSD over the transport it came by. `damage(labels, fault)` makes it misbehave for
queries whose first QNAME label is one of `labels` (an owner label of dnsbed.owner_label: a
user's SMIMEA and OPENPGPKEY names both start with it); every other query passes through, so
the DNSKEY, DS and NSEC3 lookups of the same zones keep working. The faults:

  SERVFAIL   a SERVFAIL reply (the question copied, no records)
  TRUNCATED  NSD's answer cut in half: its header still counts the records that are cut off
  GARBAGE    the query's ID followed by random bytes, so the resolver takes it for the answer
             and cannot parse it
  DELAY      NSD's answer, sent `delay` seconds late (past mailseal's dns.timeout)
  TAMPERED   NSD's answer with one octet of the queried record's RDATA flipped: well formed,
             but its RRSIG no longer verifies (a bogus answer, as from an on-path attacker)

`clear()` passes everything again. The proxy counts what it did per fault and transport
(`counts()`), so a test can tell "the resolver asked and got the damage" from "it answered from
its cache", and see that a damaged answer went over TCP.
"""

import os
import secrets
import select
import socket
import struct
import threading

import harness

SERVFAIL = "servfail"
TRUNCATED = "truncated"
GARBAGE = "garbage"
DELAY = "delay"
TAMPERED = "tampered"
PASSED = "passed"
FAULTS = (SERVFAIL, TRUNCATED, GARBAGE, DELAY, TAMPERED)
UPSTREAM_TIMEOUT = 2.0


def first_label(query):
    """The first label of a query's QNAME, lowercase, or None for a message too short."""
    if len(query) < 13:
        return None
    length = query[12]
    label = query[13:13 + length]
    if length == 0 or len(label) != length:
        return None
    return label.decode("ascii", "replace").lower()


def question_end(query):
    """The offset just past the question section (QNAME, QTYPE, QCLASS)."""
    pos = 12
    while pos < len(query) and query[pos] != 0:
        pos += 1 + query[pos]
    return pos + 5


def name_end(message, pos):
    """The offset just past the (possibly compressed) domain name at `pos`."""
    while message[pos] != 0:
        if message[pos] >= 0xC0:
            return pos + 2
        pos += 1 + message[pos]
    return pos + 1


def tampered(answer):
    """`answer` with the middle octet of the first answer RDATA of the question's type
    flipped; unchanged when it holds no such record (a NODATA, a referral)."""
    pos = question_end(answer)
    qtype = struct.unpack("!H", answer[pos - 4:pos - 2])[0]
    for _ in range(struct.unpack("!H", answer[6:8])[0]):
        pos = name_end(answer, pos)
        rtype, _, _, rdlength = struct.unpack("!HHIH", answer[pos:pos + 10])
        pos += 10
        if rtype == qtype and rdlength > 0:
            middle = pos + rdlength // 2
            return answer[:middle] + bytes([answer[middle] ^ 0x01]) + answer[middle + 1:]
        pos += rdlength
    return answer


def servfail_reply(query):
    """SERVFAIL for `query`: its ID and RD bit, QR set, RCODE 2, its question and nothing else."""
    qid, flags = struct.unpack("!HH", query[:4])
    reply_flags = 0x8000 | (flags & 0x7900) | 2  # QR, opcode and RD kept, RCODE SERVFAIL
    return struct.pack("!HHHHHH", qid, reply_flags, 1, 0, 0, 0) + query[12:question_end(query)]


class DnsProxy:
    """See the module docstring. start() before use, stop() always (a class cleanup)."""

    def __init__(self, upstream_port):
        self.upstream = ("127.0.0.1", upstream_port)
        self._lock = threading.Lock()
        self._faults = {}      # first label -> (fault, delay)
        self._counts = {}      # (fault, transport) -> queries
        self._stopping = threading.Event()
        self._thread = None
        self._udp = self._tcp = None
        self.port = None

    @property
    def address(self):
        """The proxy's address as libunbound and mailseal's stub_zone write it."""
        return f"127.0.0.1@{self.port}"

    def start(self):
        tcp, udp, port = harness.bind_dns_sockets("no port free for the DNS proxy on 127.0.0.1")
        tcp.listen(64)
        self._tcp, self._udp, self.port = tcp, udp, port
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._serve, name="dns-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._thread is None:
            return
        self._stopping.set()
        os.write(self._wake_w, b"x")
        self._thread.join(timeout=5)
        self._thread = None
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)
        self._udp.close()
        self._tcp.close()

    def damage(self, labels, fault, delay=0.0):
        """From now on, queries whose QNAME starts with one of `labels` get `fault`."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}")
        with self._lock:
            for label in labels:
                self._faults[label.lower()] = (fault, delay)

    def clear(self):
        """Every query passes through again."""
        with self._lock:
            self._faults.clear()

    def counts(self, transport=None):
        """{fault or PASSED: queries so handled} since start, over `transport` ("udp" or "tcp")
        or both."""
        totals = {}
        with self._lock:
            for (fault, over), n in self._counts.items():
                if transport in (None, over):
                    totals[fault] = totals.get(fault, 0) + n
        return totals

    # The proxy's own threads

    def _fault_for(self, query, transport):
        with self._lock:
            fault, delay = self._faults.get(first_label(query), (PASSED, 0.0))
            self._counts[fault, transport] = self._counts.get((fault, transport), 0) + 1
        return fault, delay

    def _answer(self, query, transport, ask_upstream):
        """The bytes to send back for `query`, or None to send nothing."""
        fault, delay = self._fault_for(query, transport)
        if fault == SERVFAIL:
            return servfail_reply(query)
        if fault == GARBAGE:
            return query[:2] + secrets.token_bytes(40 + secrets.randbelow(200))
        try:
            answer = ask_upstream(query)
        except OSError:
            return None
        if fault == TRUNCATED:
            return answer[: max(13, len(answer) // 2)]
        if fault == TAMPERED:
            return tampered(answer)
        if fault == DELAY and self._stopping.wait(delay):
            return None
        return answer

    def _ask_udp(self, query):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(UPSTREAM_TIMEOUT)
            s.connect(self.upstream)
            s.send(query)
            return s.recv(65535)

    def _ask_tcp(self, query):
        with socket.create_connection(self.upstream, timeout=UPSTREAM_TIMEOUT) as s:
            s.sendall(struct.pack("!H", len(query)) + query)
            data = b""
            while len(data) < 2 or len(data) < 2 + struct.unpack("!H", data[:2])[0]:
                chunk = s.recv(65535)
                if not chunk:
                    raise OSError("NSD closed the TCP connection early")
                data += chunk
            return data[2:2 + struct.unpack("!H", data[:2])[0]]

    def _udp_query(self, query, client):
        answer = self._answer(query, "udp", self._ask_udp)
        if answer is not None and not self._stopping.is_set():
            try:
                self._udp.sendto(answer, client)
            except OSError:
                pass

    def _tcp_query(self, query, conn, conn_lock):
        answer = self._answer(query, "tcp", self._ask_tcp)
        if answer is None or self._stopping.is_set():
            return
        with conn_lock:
            try:
                conn.sendall(struct.pack("!H", len(answer)) + answer)
            except OSError:
                pass

    def _spawn(self, target, *args):
        # One thread per query: a delayed answer must not hold up the others.
        threading.Thread(target=target, args=args, name="dns-proxy-query", daemon=True).start()

    def _serve(self):
        buffers = {}  # TCP connection -> (bytes received, its send lock)
        try:
            while not self._stopping.is_set():
                readable, _, _ = select.select([self._wake_r, self._udp, self._tcp, *buffers],
                                               [], [])
                if self._wake_r in readable:
                    return
                if self._udp in readable:
                    try:
                        query, client = self._udp.recvfrom(65535)
                    except OSError:
                        query = None
                    if query and len(query) >= 12:
                        self._spawn(self._udp_query, query, client)
                if self._tcp in readable:
                    try:
                        conn, _ = self._tcp.accept()
                        buffers[conn] = (b"", threading.Lock())
                    except OSError:
                        pass
                for conn in [c for c in buffers if c in readable]:
                    try:
                        chunk = conn.recv(65535)
                    except OSError:
                        chunk = b""
                    if not chunk:
                        del buffers[conn]
                        conn.close()
                        continue
                    data, conn_lock = buffers[conn]
                    data += chunk
                    while len(data) >= 2 and len(data) >= 2 + struct.unpack("!H", data[:2])[0]:
                        size = struct.unpack("!H", data[:2])[0]
                        self._spawn(self._tcp_query, data[2:2 + size], conn, conn_lock)
                        data = data[2 + size:]
                    buffers[conn] = (data, conn_lock)
        finally:
            for conn in buffers:
                conn.close()

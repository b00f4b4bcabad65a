# SPDX-License-Identifier: Apache-2.0
"""A real DNSSEC test bed for mailseal's SMIMEA (RFC 8162) and OPENPGPKEY (RFC 7929) lookups,
built at test time.

`DnsTestBed(workdir).start()` puts under workdir/dnsbed (the keys and certificates are made
once per process, by KeyMaterial, and each bed gets a copy of the files):
- certificates with the `openssl` CLI, issued by a throwaway test CA (EC P-256): each with its
  PEM and DER certificate, PEM private key, PKCS#12 bundle (password P12_PASSWORD) and DER
  SubjectPublicKeyInfo, so that later tests can decrypt what mailseal seals;
- OpenPGP keys with GnuPG (pgpkeys.py), published in their minimal form;
- a parent zone `test.` signed with its own KSK and ZSK, and child zones delegated from it by
  NS (+ DS where the child is signed). Every signed zone uses NSEC3 with 0 extra iterations and
  an empty salt (RFC 9276 §3.1) and ECDSA P-256 keys (ldns-keygen, ldns-signzone):

  zone            user   published                         expected outcome
  signed.test.    alice  3 0 0 (RSA-2048, keyEncipherment)  secure, 1 usable key
                  bob    3 1 0 (bare SPKI)                  secure, 1 usable key (SKI recipient)
                  carol  3 0 1 (SHA-256 of her cert)        secure, no key from DNS alone: the
                                                            hash confirms a local-store cert
                  dave   two 3 0 0 records                  secure, 2 keys; the answer exceeds
                                                            1232 octets: TC=1 over UDP, TCP retry
                  erin   nothing                            secure NXDOMAIN (absence); has a
                                                            cert for local-store fallback tests
                  frank  3 0 0, keyUsage digitalSignature   secure, unusable (cannot encrypt)
                  gina   3 0 0, RSA-1024                    secure, unusable (key too small)
                  hugo   3 0 0, EC P-256 keyAgreement only  secure, 1 usable key (EC)
                  ivan   3 0 0 with random bytes, and     secure, both unusable (parse errors
                         3 0 0 with half a certificate      are ignored and logged)
                  judy   3 0 0 with no data (3 octets)      secure, unusable; BIND's dig/delv
                                                            call the answer malformed
  OPENPGPKEY records (each user's record is GnuPG's minimal export of their key):
  signed.test.    paul   RSA-3072, RSA-3072 subkey          secure, 1 usable key
                  quinn  Ed25519, Cv25519 subkey            secure, 1 usable key
                  rita   Ed25519 signing only               secure, unusable (cannot encrypt)
                  sam    expired in 2020                    secure, unusable
                  tina   its only subkey revoked            secure, unusable
                  uma    two records, two keys              secure, 2 keys (rollover)
                  vic    user ID names victor@other.test    secure, unusable (RFC 7929 §5)
                  walt   random bytes                       secure, unusable (does not parse)
                  xena   SMIMEA 3 0 0 and OPENPGPKEY        secure, keys of both formats
  bogus.test.     alice  3 0 0, replaced after signing by   bogus (signature does not verify);
                         an attacker's valid certificate    the attacker's cert must not be used
                  olga   OPENPGPKEY replaced after signing  bogus; mallory's key not used
  expired.test.   alice  3 0 0, every RRSIG expired         bogus
                  olga   OPENPGPKEY, every RRSIG expired    bogus
  unsigned.test.  alice  3 0 0, delegated without DS        insecure (→ local store)
                  olga   OPENPGPKEY, delegated without DS   insecure (→ local store)
  dead.test.      alice  (a server that never answers)      failure (timeout)

- ONE NSD instance serving all zones on 127.0.0.1 and a free port, UDP and TCP, with its own
  config, pid, zone list and xfrd state under the bed's directory;
- a "dead" server for the `dead.test.` stub zone: a UDP socket and a TCP listener bound on
  127.0.0.1 that read everything and never answer. A port with nothing listening would draw an
  ICMP port unreachable (UDP) or RST (TCP), which resolvers treat as an immediate failure; a
  silent server makes the resolver wait for its timeout, which is the case to test.

The trust anchor is the DS of `test.` (`bed.ds_line`, in `bed.anchor_file`), as production has
the root's: with only a child's anchor a tampered sibling would come back insecure, not bogus.
`bed.mailseal_overrides()` / `bed.dns_toml()` give mailseal's `[dns]` configuration.
"""

import atexit
import base64
import concurrent.futures
import dataclasses
import hashlib
import os
import secrets
import select
import shutil
import socket
import struct
import subprocess
import threading
import unittest

import harness
import pgpkeys

PARENT = "test."
P12_PASSWORD = "mailseal-test"
TTL = 300
LOOKUP_TIMEOUT = "3s"
# The EDNS buffer size NSD advertises and dig/unbound offer by default (DNS flag day 2020).
EDNS_BUFFER = 1232
# Signature window for expired.test.: long past, so every RRSIG there has expired.
EXPIRED_INCEPTION = "20200101000000"
EXPIRED_EXPIRATION = "20200201000000"
COMMAND_TIMEOUT = 60

# Lookup outcomes, as mailseal lookup names them.
SECURE = "secure"            # secure answer with records
ABSENT = "absent"            # secure NXDOMAIN / NODATA
INSECURE = "insecure"
BOGUS = "bogus"
FAILURE = "failure"          # SERVFAIL, timeout, network

SMIMEA = 53
OPENPGPKEY = 61
LABELS = {SMIMEA: "_smimecert", OPENPGPKEY: "_openpgpkey"}


def owner_label(local):
    """RFC 8162 §3 (and RFC 7929 §3): SHA2-256 of the local-part's UTF-8 octets, first 28
    octets as hex."""
    return hashlib.sha256(local.encode("utf-8")).hexdigest()[:56]


def owner_name(address, rrtype=SMIMEA):
    """The SMIMEA (or OPENPGPKEY) owner name of address, absolute (trailing dot)."""
    local, domain = address.rsplit("@", 1)
    return f"{owner_label(local)}.{LABELS[rrtype]}.{domain.rstrip('.')}."


def run(args, cwd=None, stdin=None):
    """Runs a tool to completion; raises HarnessError with its output when it fails."""
    proc = subprocess.run(list(args), cwd=cwd, input=stdin, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=COMMAND_TIMEOUT,
                          stdin=None if stdin is not None else subprocess.DEVNULL)
    if proc.returncode != 0:
        raise harness.HarnessError(
            f"{' '.join(args)} exited {proc.returncode}:\n"
            f"{proc.stdout.decode('utf-8', 'replace')}{proc.stderr.decode('utf-8', 'replace')}")
    return proc.stdout.decode("utf-8", "replace")


# --- certificates -------------------------------------------------------------------------------


@dataclasses.dataclass
class Cert:
    """One certificate with its private key, all as files in the bed's directory."""

    name: str          # file stem
    address: str       # the rfc822Name in subjectAltName
    key_type: str      # "rsa" or "ec"
    key_bits: int      # RSA modulus size, or 256 for P-256
    key_usage: str     # the keyUsage extension's value
    pem: str           # certificate, PEM
    der: str           # certificate, DER
    key: str           # private key, PEM (PKCS#8, unencrypted)
    p12: str           # certificate + key (+ CA), PKCS#12 with password P12_PASSWORD
    spki_der: str      # SubjectPublicKeyInfo, DER

    def der_bytes(self):
        return harness.read_bytes(self.der)

    def spki_bytes(self):
        return harness.read_bytes(self.spki_der)

    def sha256(self):
        """Hex SHA-256 of the DER certificate (what a `x 0 1` record holds)."""
        return hashlib.sha256(self.der_bytes()).hexdigest()


CA_CONFIG = """\
[req]
distinguished_name = dn
prompt = no
[dn]
O = mailseal test bed
CN = mailseal test CA
[ext]
basicConstraints = critical,CA:true
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
"""

# S/MIME end-entity profile (RFC 8550 §4.4): email in subjectAltName, emailProtection.
EE_CONFIG = """\
[req]
distinguished_name = dn
prompt = no
[dn]
O = mailseal test bed
CN = {address}
[ext]
basicConstraints = critical,CA:false
keyUsage = critical,{key_usage}
extendedKeyUsage = emailProtection
subjectAltName = email:{address}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


class CertFactory:
    def __init__(self, directory):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.ca_cert = os.path.join(directory, "ca.pem")
        self.ca_key = os.path.join(directory, "ca.key")
        config = os.path.join(directory, "ca.cnf")
        with open(config, "w") as f:
            f.write(CA_CONFIG)
        run(["openssl", "req", "-x509", "-new", "-config", config, "-extensions", "ext",
             "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", self.ca_key, "-out", self.ca_cert, "-days", "3650"])

    def make(self, name, address, key_type="rsa", key_bits=2048,
             key_usage="keyEncipherment"):
        base = os.path.join(self.dir, name)
        cert = Cert(name=name, address=address, key_type=key_type, key_bits=key_bits,
                    key_usage=key_usage, pem=base + ".pem", der=base + ".der",
                    key=base + ".key", p12=base + ".p12", spki_der=base + ".spki.der")
        config = base + ".cnf"
        with open(config, "w") as f:
            f.write(EE_CONFIG.format(address=address, key_usage=key_usage))
        if key_type == "rsa":
            newkey = ["-newkey", f"rsa:{key_bits}"]
        elif key_type == "ec" and key_bits == 256:
            newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
        else:
            raise ValueError(f"unsupported key {key_type}/{key_bits}")
        run(["openssl", "req", "-x509", "-new", "-config", config, "-extensions", "ext",
             *newkey, "-nodes", "-keyout", cert.key, "-out", cert.pem, "-days", "3650",
             "-CA", self.ca_cert, "-CAkey", self.ca_key])
        run(["openssl", "x509", "-in", cert.pem, "-outform", "DER", "-out", cert.der])
        run(["openssl", "pkey", "-in", cert.key, "-pubout", "-outform", "DER",
             "-out", cert.spki_der])
        run(["openssl", "pkcs12", "-export", "-in", cert.pem, "-inkey", cert.key,
             "-certfile", self.ca_cert, "-name", address, "-out", cert.p12,
             "-passout", f"pass:{P12_PASSWORD}"])
        return cert


# --- key material ---------------------------------------------------------------------------------


def _rebased_path(path, old, new):
    """`path`, which lies under the directory `old`, under `new` instead."""
    return new + path[len(old):]


def _rebased(record, old, new):
    """`record` (a Cert or PgpKey) with every path under `old` moved under `new`."""
    changes = {}
    for field in dataclasses.fields(record):
        value = getattr(record, field.name)
        if isinstance(value, str) and value.startswith(old + os.sep):
            changes[field.name] = _rebased_path(value, old, new)
    return dataclasses.replace(record, **changes)


class KeyMaterial:
    """The certificates and OpenPGP keys of the bed, the same for every bed: making them (RSA
    keys with openssl, GnuPG keys one gpg call at a time) is most of a bed's start-up, so a
    process makes them once, in a directory of its own removed when it exits, and every bed
    takes a copy of the files, which it may change as it likes."""

    _made = None

    @classmethod
    def of_this_process(cls):
        if cls._made is None:
            cls._made = cls()
        return cls._made

    def __init__(self):
        self.dir = harness.make_test_dir()
        atexit.register(harness.remove_test_dir, self.dir)
        self.cert_dir = os.path.join(self.dir, "certs")
        self.pgp_dir = os.path.join(self.dir, "pgp")
        self.ca_cert, self.certs = self._make_certs()
        self.pgp_keys = self._make_pgp_keys()

    def copy_certs(self, cert_dir):
        """The CA certificate's path and {name: Cert}, as files under `cert_dir`."""
        shutil.copytree(self.cert_dir, cert_dir)
        return (_rebased_path(self.ca_cert, self.cert_dir, cert_dir),
                {name: _rebased(cert, self.cert_dir, cert_dir)
                 for name, cert in self.certs.items()})

    def copy_pgp(self, pgp_dir):
        """A PgpFactory whose GNUPGHOME holds every secret key, and {name: PgpKey}, as files
        under `pgp_dir`. gpg-agent's sockets stay behind: each home starts an agent of its own."""
        shutil.copytree(self.pgp_dir, pgp_dir, ignore=shutil.ignore_patterns("S.*"))
        return (pgpkeys.PgpFactory(pgp_dir),
                {name: _rebased(key, self.pgp_dir, pgp_dir)
                 for name, key in self.pgp_keys.items()})

    def _make_certs(self):
        factory = CertFactory(self.cert_dir)
        specs = [
            ("alice@signed.test", "alice@signed.test", "rsa", 2048, "keyEncipherment"),
            ("bob@signed.test", "bob@signed.test", "rsa", 2048, "keyEncipherment"),
            ("carol@signed.test", "carol@signed.test", "rsa", 2048, "keyEncipherment"),
            ("dave@signed.test-1", "dave@signed.test", "rsa", 2048, "keyEncipherment"),
            ("dave@signed.test-2", "dave@signed.test", "rsa", 2048, "keyEncipherment"),
            ("erin@signed.test", "erin@signed.test", "rsa", 2048, "keyEncipherment"),
            ("frank@signed.test", "frank@signed.test", "rsa", 2048, "digitalSignature"),
            ("gina@signed.test", "gina@signed.test", "rsa", 1024, "keyEncipherment"),
            ("hugo@signed.test", "hugo@signed.test", "ec", 256, "keyAgreement"),
            ("alice@bogus.test", "alice@bogus.test", "rsa", 2048, "keyEncipherment"),
            ("mallory@bogus.test", "alice@bogus.test", "rsa", 2048, "keyEncipherment"),
            ("alice@expired.test", "alice@expired.test", "rsa", 2048, "keyEncipherment"),
            ("alice@unsigned.test", "alice@unsigned.test", "rsa", 2048, "keyEncipherment"),
            ("xena@signed.test", "xena@signed.test", "rsa", 2048, "keyEncipherment"),
        ]
        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            futures = {spec[0]: pool.submit(factory.make, *spec) for spec in specs}
            return factory.ca_cert, {name: future.result() for name, future in futures.items()}

    def _make_pgp_keys(self):
        factory = pgpkeys.PgpFactory(self.pgp_dir)
        specs = [
            ("paul@signed.test", "Paul <paul@signed.test>", {"primary": "rsa3072",
                                                             "subkeys": ("rsa3072",)}),
            ("quinn@signed.test", "Quinn <quinn@signed.test>", {}),
            ("rita@signed.test", "Rita <rita@signed.test>", {"subkeys": ()}),
            ("sam@signed.test", "Sam <sam@signed.test>", {"expires": "1d",
                                                         "faked_time": "20200101T000000"}),
            ("tina@signed.test", "Tina <tina@signed.test>", {"revoke_subkey": 1}),
            ("uma@signed.test-1", "Uma <uma@signed.test>", {}),
            ("uma@signed.test-2", "Uma <uma@signed.test>", {"subkeys": ("nistp256",)}),
            ("vic@signed.test", "Victor <victor@other.test>", {}),
            ("xena@signed.test", "Xena <xena@signed.test>", {}),
            ("olga@bogus.test", "Olga <olga@bogus.test>", {}),
            ("mallory@bogus.test", "Olga <olga@bogus.test>", {}),
            ("olga@expired.test", "Olga <olga@expired.test>", {}),
            ("olga@unsigned.test", "Olga <olga@unsigned.test>", {}),
            # The sender of signed messages.
            ("sender@remote.example", f"Sender <{harness.SENDER}>", {"subkeys": ()}),
        ]
        try:
            # One GNUPGHOME: key by key (gpg serialises on its keyring lock anyway).
            return {name: factory.make(name, uid, **options) for name, uid, options in specs}
        finally:
            factory.stop()


# --- records, zones -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Record:
    """One SMIMEA or OPENPGPKEY RDATA in wire form (it may be malformed on purpose)."""

    wire: bytes
    rrtype: int = SMIMEA

    @classmethod
    def smimea(cls, usage, selector, matching_type, data):
        return cls(bytes([usage, selector, matching_type]) + data)

    @classmethod
    def openpgpkey(cls, data):
        return cls(data, OPENPGPKEY)

    @property
    def has_fields(self):
        return len(self.wire) >= 3

    def fields(self):
        """(usage, selector, matching type, data), or None for a record shorter than 3 octets."""
        if not self.has_fields:
            return None
        return self.wire[0], self.wire[1], self.wire[2], self.wire[3:]

    def generic(self):
        """RFC 3597 generic RDATA, as zone files for servers without type 53 need."""
        return f"\\# {len(self.wire)} {self.wire.hex()}".rstrip()

    def presentation(self):
        """RFC 6698 §2.2 presentation (upper-case hex as dig prints it); generic if short. An
        OPENPGPKEY's is its base64 (RFC 7929 §2.3), without spaces."""
        if self.rrtype == OPENPGPKEY:
            return base64.b64encode(self.wire).decode()
        if not self.has_fields:
            return self.generic()
        u, s, m, data = self.fields()
        return f"{u} {s} {m} {data.hex().upper()}".rstrip()


@dataclasses.dataclass
class Case:
    """One address to look up, and what mailseal must make of it."""

    address: str
    zone: str                # the zone holding the owner name, absolute
    owner: str               # RFC 8162 owner name, absolute
    outcome: str             # SECURE, ABSENT, INSECURE, BOGUS or FAILURE
    certs: list              # the user's own certificates (with keys): published or not
    records: list            # the SMIMEA RDATA served (after tampering, for bogus.test.)
    signed_records: list     # the SMIMEA RDATA that were signed
    usable: list             # Certs (and PgpKeys) whose keys a lookup from DNS alone returns
    purpose: str
    pgp_keys: list = dataclasses.field(default_factory=list)  # the user's own OpenPGP keys

    @property
    def pgp_owner(self):
        return owner_name(self.address, OPENPGPKEY)

    def has(self, rrtype):
        return any(r.rrtype == rrtype for r in self.records)

    def lookups(self):
        """[(rrtype, owner name, records of that type)] to check: one per record type the case
        publishes, or SMIMEA alone for a case with none."""
        types = sorted({r.rrtype for r in self.records}) or [SMIMEA]
        return [(t, owner_name(self.address, t), [r for r in self.records if r.rrtype == t])
                for t in types]

    @property
    def local(self):
        return self.address.rsplit("@", 1)[0]

    @property
    def domain(self):
        return self.address.rsplit("@", 1)[1]


def zone_text(origin, owners, extra="", ttl=TTL):
    """A zone file: SOA, NS, the name server's address, `extra` lines (delegations), and the
    owners' SMIMEA and OPENPGPKEY records in RFC 3597 form (ldns and NSD both read it)."""
    lines = [f"$ORIGIN {origin}", f"$TTL {ttl}",
             f"@ IN SOA ns.{origin} hostmaster.{origin} 1 3600 600 86400 {ttl}",
             f"@ IN NS ns.{origin}", "ns IN A 127.0.0.1"]
    for owner, records in owners.items():
        for record in records:
            lines.append(f"{owner} IN TYPE{record.rrtype} {record.generic()}")
    return "\n".join(lines) + "\n" + extra


def replace_key_records(signed_text, owners, ttl=TTL):
    """The signed zone text with every SMIMEA and OPENPGPKEY RR replaced by owners' records in
    generic form.

    ldns-signzone prints a short RDATA as an unparseable `SMIMEA 3 0`, so records are put back
    in RFC 3597 form (the wire data, and so the signature, stay the same); a record that
    differs from what was signed makes the RRset bogus (bogus.test.)."""
    out = []
    for line in signed_text.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[3] in ("SMIMEA", "OPENPGPKEY", "TYPE53", "TYPE61"):
            continue
        out.append(line)
    for owner, records in owners.items():
        for record in records:
            out.append(f"{owner}\t{ttl}\tIN\tTYPE{record.rrtype}\t{record.generic()}")
    return "\n".join(out) + "\n"


# --- a DNS query without any library, to see that a server is up ---------------------------------


def encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            raw = label.encode("ascii")
            out += bytes([len(raw)]) + raw
    return out + b"\x00"


def query_header(port, name, qtype, tcp=False, timeout=1.0):
    """Sends one query with EDNS (DO=1, EDNS_BUFFER) to 127.0.0.1:port and returns
    (flags, rcode, answer count) from the reply's header, or None if none came in time."""
    qid = secrets.randbelow(65536)
    message = (struct.pack("!HHHHHH", qid, 0, 1, 0, 0, 1) + encode_name(name)
               + struct.pack("!HH", qtype, 1)
               + b"\x00" + struct.pack("!HHIH", 41, EDNS_BUFFER, 0x8000, 0))
    family_type = socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, family_type) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(("127.0.0.1", port))
            if tcp:
                sock.sendall(struct.pack("!H", len(message)) + message)
                reply = b""
                while len(reply) < 2 or len(reply) < 2 + struct.unpack("!H", reply[:2])[0]:
                    chunk = sock.recv(65536)
                    if not chunk:
                        return None
                    reply += chunk
                reply = reply[2:]
            else:
                sock.send(message)
                reply = sock.recv(65536)
        except OSError:
            return None
    if len(reply) < 12:
        return None
    rid, flags, _, ancount, _, _ = struct.unpack("!HHHHHH", reply[:12])
    if rid != qid:
        return None
    return flags, flags & 0xF, ancount


def free_port():
    """A port free on 127.0.0.1 for both TCP and UDP at the time of asking."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise harness.HarnessError("no port free for both TCP and UDP on 127.0.0.1")


# --- the server that never answers ---------------------------------------------------------------


class DeadServer:
    """UDP and TCP on one 127.0.0.1 port: reads queries, accepts connections, never answers.

    A thread drains what arrives (so buffers never fill and nothing is refused) and counts it,
    so a test can tell "timed out against the dead server" from "never asked it"."""

    def __init__(self):
        self.udp_queries = 0
        self.tcp_connections = 0
        self._lock = threading.Lock()
        tcp, udp, port = harness.bind_dns_sockets("no port free for the dead server")
        tcp.listen(64)
        self.port = port
        self._tcp = tcp
        self._udp = udp
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._serve, name="dead-dns", daemon=True)
        self._thread.start()

    @property
    def address(self):
        return f"127.0.0.1@{self.port}"

    def counts(self):
        with self._lock:
            return self.udp_queries, self.tcp_connections

    def _serve(self):
        connections = []
        try:
            while True:
                readable, _, _ = select.select(
                    [self._wake_r, self._udp, self._tcp, *connections], [], [])
                if self._wake_r in readable:
                    return
                if self._udp in readable:
                    self._udp.recvfrom(65536)
                    with self._lock:
                        self.udp_queries += 1
                if self._tcp in readable:
                    try:
                        conn, _ = self._tcp.accept()
                    except OSError:
                        conn = None
                    if conn is not None:
                        connections.append(conn)
                        with self._lock:
                            self.tcp_connections += 1
                for conn in [c for c in connections if c in readable]:
                    try:
                        data = conn.recv(65536)
                    except OSError:
                        data = b""
                    if not data:
                        connections.remove(conn)
                        conn.close()
        finally:
            for conn in connections:
                conn.close()

    def stop(self):
        if self._thread is None:
            return
        os.write(self._wake_w, b"x")
        self._thread.join(timeout=5)
        self._thread = None
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)
        self._udp.close()
        self._tcp.close()


# --- the bed ------------------------------------------------------------------------------------


NSD_CONFIG = """\
server:
    ip-address: 127.0.0.1@{port}
    port: {port}
    do-ip4: yes
    do-ip6: no
    server-count: 1
    username: ""
    chroot: ""
    database: ""
    zonesdir: "{zones}"
    zonelistfile: "{state}/zone.list"
    xfrdfile: "{state}/xfrd.state"
    xfrdir: "{state}/xfr"
    pidfile: "{state}/nsd.pid"
    logfile: "{state}/nsd.log"
    ipv4-edns-size: {edns}
    hide-version: yes
    refuse-any: yes
    reuseport: no
    verbosity: 1
    zonefiles-write: 0

remote-control:
    control-enable: no
"""


# --- signing zones, serving them -----------------------------------------------------------------


def sign_zone(zone, text, zone_dir, key_dir, dates=()):
    """Writes zone's text to zone_dir and signs it with a KSK and a ZSK of its own (ECDSA P-256,
    made in key_dir), NSEC3 with 0 extra iterations and an empty salt (RFC 9276 §3.1); `dates`
    are extra ldns-signzone options (-i/-e). Returns (signed text, DS line of the KSK)."""

    def keygen(ksk):
        args = ["ldns-keygen", "-r", "/dev/urandom", "-a", "ECDSAP256SHA256"]
        if ksk:
            args.append("-k")
        return os.path.join(key_dir, run([*args, zone], cwd=key_dir).strip())

    unsigned = os.path.join(zone_dir, zone + "zone")
    signed = unsigned + ".signed"
    with open(unsigned, "w") as f:
        f.write(text)
    ksk = keygen(ksk=True)
    zsk = keygen(ksk=False)
    run(["ldns-signzone", "-n", "-t", "0", "-s", "", *dates, "-o", zone, "-f", signed,
         unsigned, ksk, zsk])
    ds = run(["ldns-key2ds", "-n", "-2", ksk + ".key"]).strip()
    return harness.read_text(signed), ds


class Nsd:
    """One NSD instance serving zones, [(name, zone file)], on 127.0.0.1 and a free port, UDP
    and TCP, with its own config, pid, zone list, xfrd state and log under `directory`.
    start() returns once every zone answers SOA authoritatively; stop() also ends the children
    NSD forked."""

    def __init__(self, directory):
        self.dir = directory
        self.config = os.path.join(directory, "nsd.conf")
        self.log = os.path.join(directory, "nsd.log")
        self.output = os.path.join(directory, "nsd.out")
        self.zones = []
        self.port = None
        self.proc = None

    @property
    def server(self):
        """The address as libunbound and mailseal's config write it."""
        return f"127.0.0.1@{self.port}"

    def start(self, zones):
        self.zones = list(zones)
        os.makedirs(os.path.join(self.dir, "xfr"), exist_ok=True)
        first = self.zones[0][0]
        # The port is free when chosen but could be taken before NSD binds it: retry then.
        for attempt in range(3):
            self.port = free_port()
            self._write_config()
            with open(self.output, "ab") as out:
                self.proc = subprocess.Popen(
                    ["nsd", "-d", "-c", self.config], stdin=subprocess.DEVNULL,
                    stdout=out, stderr=out, start_new_session=True)

            def ready():
                if self.proc.poll() is not None:
                    return "exited"
                udp = query_header(self.port, first, 6, timeout=0.2)
                tcp = query_header(self.port, first, 6, tcp=True, timeout=0.2)
                if udp and tcp and udp[1] == 0 and tcp[1] == 0:
                    return "ready"
                return None

            state = harness.wait_until(ready, harness.START_TIMEOUT, "NSD to answer",
                                       diagnostics=self.diagnostics)
            if state == "ready":
                self._check_zones_loaded()
                return self
            log = harness.read_text(self.log) + harness.read_text(self.output)
            self.proc = None
            if "bind" not in log or attempt == 2:
                raise harness.HarnessError(f"nsd exited before answering\n"
                                           + self.diagnostics())
        return self

    def stop(self):
        if self.proc is None:
            return
        harness.stop_process(self.proc)
        self.proc = None
        # NSD's server and xfrd children are forks with the same command line; they exit
        # with the parent, and anything left would still name our config.
        try:
            harness.wait_until(lambda: not self.leftover_processes(), 5,
                               "NSD's children to exit")
        except harness.HarnessError:
            for pid in self.leftover_processes():
                harness.stop_pid(pid, self.config)

    def leftover_processes(self):
        """Pids of live processes started with this instance's config."""
        pids = []
        for entry in os.listdir("/proc"):
            if entry.isdigit() and harness.process_is(int(entry), self.config):
                pids.append(int(entry))
        return pids

    def diagnostics(self):
        return (f"nsd log:\n{harness.tail(harness.read_text(self.log))}\n"
                f"nsd output:\n{harness.tail(harness.read_text(self.output))}")

    def _write_config(self):
        # Every zone file is named by its absolute path: zonesdir (where NSD changes to) is
        # only a working directory.
        text = NSD_CONFIG.format(port=self.port, zones=self.dir, state=self.dir,
                                 edns=EDNS_BUFFER)
        for zone, path in self.zones:
            text += f"\nzone:\n    name: {zone}\n    zonefile: \"{path}\"\n"
        with open(self.config, "w") as f:
            f.write(text)
        run(["nsd-checkconf", self.config])

    def _check_zones_loaded(self):
        """NSD answers even when a zone file has errors, but leaves that zone out (SERVFAIL):
        fail here, with NSD's log, rather than in a confusing lookup later."""
        def all_loaded():
            log = harness.read_text(self.log)
            if " error: " in log:
                raise harness.HarnessError("nsd could not load a zone\n" + self.diagnostics())
            return all(f"zone {zone} read with success" in log for zone, _ in self.zones)

        harness.wait_until(all_loaded, harness.START_TIMEOUT, "NSD to load every zone",
                           diagnostics=self.diagnostics)
        for zone, _ in self.zones:
            answer = query_header(self.port, zone, 6)
            if answer is None or answer[1] != 0 or not answer[0] & 0x0400:
                raise harness.HarnessError(f"nsd does not answer SOA {zone} authoritatively: "
                                           f"{answer}\n" + self.diagnostics())


def start_for_class(test_class):
    """Starts one bed for a unittest test class (in setUpClass) under a fresh work directory
    (`test_class.workdir`); both are removed by class cleanups. Skips without MAILSEAL_BIN."""
    if not harness.MAILSEAL_BIN:
        raise unittest.SkipTest("MAILSEAL_BIN is not set (run the tests through ctest)")
    test_class.workdir = harness.make_test_dir()
    test_class.addClassCleanup(harness.remove_test_dir, test_class.workdir)
    bed = DnsTestBed(test_class.workdir)
    test_class.addClassCleanup(bed.stop)
    bed.start()
    return bed


class DnsTestBed:
    """See the module docstring. Use as a context manager, or call start() and stop()."""

    def __init__(self, workdir):
        self.dir = os.path.join(workdir, "dnsbed")
        self.cert_dir = os.path.join(self.dir, "certs")
        self.pgp_dir = os.path.join(self.dir, "pgp")
        self.key_dir = os.path.join(self.dir, "keys")
        self.zone_dir = os.path.join(self.dir, "zones")
        self.nsd = Nsd(os.path.join(self.dir, "nsd"))
        self.anchor_file = os.path.join(self.dir, "test.ds")
        self.bind_anchor_file = os.path.join(self.dir, "test.anchors.conf")
        self.cases = {}
        self.certs = {}
        self.pgp = None
        self.pgp_keys = {}
        self.ca_cert = None
        self.ds_line = None
        self.dead = None
        self.zones = []

    # Lifecycle

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        for d in (self.dir, self.key_dir, self.zone_dir, self.nsd.dir):
            os.makedirs(d, exist_ok=True)
        try:
            material = KeyMaterial.of_this_process()
            self.ca_cert, self.certs = material.copy_certs(self.cert_dir)
            self.pgp, self.pgp_keys = material.copy_pgp(self.pgp_dir)
            self._make_cases()
            self._make_zones()
            self.dead = DeadServer()
            self.nsd.start(self.zones)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        self.nsd.stop()
        if self.dead is not None:
            self.dead.stop()
            self.dead = None
        if self.pgp is not None:
            self.pgp.stop()

    def leftover_processes(self):
        """Pids of live processes started with this bed's NSD config."""
        return self.nsd.leftover_processes()

    # What tests use

    @property
    def server(self):
        """The NSD address as libunbound and mailseal's config write it."""
        return self.nsd.server

    @property
    def port(self):
        return self.nsd.port

    @property
    def dead_server(self):
        return self.dead.address

    @property
    def dead_port(self):
        return self.dead.port

    def case(self, address):
        return self.cases[address]

    def stub_zones(self):
        return [{"zone": PARENT, "servers": [self.server]},
                {"zone": "dead." + PARENT, "servers": [self.dead_server]}]

    def dns_settings(self, **extra):
        return {"trust_anchor_file": self.anchor_file, "timeout": LOOKUP_TIMEOUT, **extra}

    def mailseal_overrides(self, **dns_extra):
        """Sections for harness.Mailseal(overrides=...): `dns` and the `dns.stub_zone` array."""
        return {"dns": self.dns_settings(**dns_extra), "dns.stub_zone": self.stub_zones()}

    def dns_toml(self, **dns_extra):
        return harness.to_toml(self.mailseal_overrides(**dns_extra))

    def write_dns_toml(self, path, **dns_extra):
        with open(path, "w") as f:
            f.write(self.dns_toml(**dns_extra))
        return path

    def diagnostics(self):
        return self.nsd.diagnostics()

    # Building

    def _make_cases(self):
        c = self.certs
        k = self.pgp_keys

        def pgp(*names):
            return [Record.openpgpkey(k[n].public_bytes()) for n in names]

        def full(cert):
            return Record.smimea(3, 0, 0, cert.der_bytes())

        def add(address, outcome, certs, records, usable, purpose, signed=None, pgp_keys=()):
            self.cases[address] = Case(
                address=address, zone=address.split("@", 1)[1] + ".",
                owner=owner_name(address), outcome=outcome, certs=certs, records=records,
                signed_records=records if signed is None else signed, usable=usable,
                purpose=purpose, pgp_keys=list(pgp_keys))

        add("alice@signed.test", SECURE, [c["alice@signed.test"]],
            [full(c["alice@signed.test"])], [c["alice@signed.test"]],
            "3 0 0 full certificate: the best case")
        add("bob@signed.test", SECURE, [c["bob@signed.test"]],
            [Record.smimea(3, 1, 0, c["bob@signed.test"].spki_bytes())],
            [c["bob@signed.test"]], "3 1 0 bare SPKI: subjectKeyIdentifier recipient")
        add("carol@signed.test", SECURE, [c["carol@signed.test"]],
            [Record.smimea(3, 0, 1, bytes.fromhex(c["carol@signed.test"].sha256()))], [],
            "3 0 1 hash only: confirms her certificate from the local store")
        add("dave@signed.test", SECURE, [c["dave@signed.test-1"], c["dave@signed.test-2"]],
            [full(c["dave@signed.test-1"]), full(c["dave@signed.test-2"])],
            [c["dave@signed.test-1"], c["dave@signed.test-2"]],
            "two 3 0 0 records (rollover): both keys; answer > 1232 octets, TC=1, TCP")
        add("erin@signed.test", ABSENT, [c["erin@signed.test"]], [], [],
            "no record: secure NXDOMAIN; local-store fallback")
        add("frank@signed.test", SECURE, [c["frank@signed.test"]],
            [full(c["frank@signed.test"])], [],
            "keyUsage digitalSignature only: unusable for encryption")
        add("gina@signed.test", SECURE, [c["gina@signed.test"]],
            [full(c["gina@signed.test"])], [], "RSA-1024: unusable (below 2048 bits)")
        add("hugo@signed.test", SECURE, [c["hugo@signed.test"]],
            [full(c["hugo@signed.test"])], [c["hugo@signed.test"]],
            "EC P-256 with keyAgreement only: usable (OpenSSL's smimeencrypt would refuse)")
        truncated = c["alice@signed.test"].der_bytes()
        add("ivan@signed.test", SECURE, [],
            [Record.smimea(3, 0, 0, secrets.token_bytes(64)),
             Record.smimea(3, 0, 0, truncated[: len(truncated) // 2])], [],
            "3 0 0 with random bytes and with a truncated certificate: both unusable")
        # The shortest SMIMEA NSD 4.6 serves: it refuses RDATA under the three fixed octets even
        # in RFC 3597 form ("bad unknown RDATA"). libunbound passes it on; BIND's dig and delv
        # reject the whole answer as malformed, so only libunbound can check this case.
        add("judy@signed.test", SECURE, [], [Record.smimea(3, 0, 0, b"")], [],
            "3 0 0 with no association data (short RDATA): unusable, no crash")
        add("alice@bogus.test", BOGUS, [c["alice@bogus.test"]],
            [full(c["mallory@bogus.test"])], [],
            "RDATA replaced after signing by an attacker's valid certificate: bogus",
            signed=[full(c["alice@bogus.test"])])
        add("alice@expired.test", BOGUS, [c["alice@expired.test"]],
            [full(c["alice@expired.test"])], [], "every RRSIG expired in 2020: bogus")
        add("alice@unsigned.test", INSECURE, [c["alice@unsigned.test"]],
            [full(c["alice@unsigned.test"])], [],
            "delegated without DS: insecure, the record must not be used")
        add("alice@dead.test", FAILURE, [], [], [],
            "stub zone served by a server that never answers: timeout")

        def add_pgp(address, outcome, keys, usable, purpose, records=None, signed=None):
            keys = [k[n] for n in keys]
            add(address, outcome, [], pgp(*[key.name for key in keys]) if records is None
                else records, [k[n] for n in usable], purpose, signed=signed, pgp_keys=keys)

        add_pgp("paul@signed.test", SECURE, ["paul@signed.test"], ["paul@signed.test"],
                "RSA-3072 with an RSA-3072 encryption subkey")
        add_pgp("quinn@signed.test", SECURE, ["quinn@signed.test"], ["quinn@signed.test"],
                "Ed25519 with a Cv25519 encryption subkey")
        add_pgp("rita@signed.test", SECURE, ["rita@signed.test"], [],
                "a signing-only key: nothing to encrypt to")
        add_pgp("sam@signed.test", SECURE, ["sam@signed.test"], [], "expired in 2020")
        add_pgp("tina@signed.test", SECURE, ["tina@signed.test"], [],
                "its only encryption subkey is revoked")
        add_pgp("uma@signed.test", SECURE, ["uma@signed.test-1", "uma@signed.test-2"],
                ["uma@signed.test-1", "uma@signed.test-2"],
                "two records (rollover): both keys")
        add_pgp("vic@signed.test", SECURE, ["vic@signed.test"], [],
                "the key's user ID names victor@other.test (RFC 7929 §5)")
        add_pgp("walt@signed.test", SECURE, [], [], "random bytes: does not parse",
                records=[Record.openpgpkey(b"\x99\x01\x0d" + secrets.token_bytes(64))])
        # `usable` is what sealing uses by default: S/MIME, the first of seal.formats.
        add("xena@signed.test", SECURE, [c["xena@signed.test"]],
            [full(c["xena@signed.test"])] + pgp("xena@signed.test"), [c["xena@signed.test"]],
            "SMIMEA and OPENPGPKEY: one copy, in the preferred format",
            pgp_keys=[k["xena@signed.test"]])
        add_pgp("olga@bogus.test", BOGUS, ["olga@bogus.test"], [],
                "OPENPGPKEY replaced after signing by an attacker's key with the same user ID",
                records=pgp("mallory@bogus.test"), signed=pgp("olga@bogus.test"))
        add_pgp("olga@expired.test", BOGUS, ["olga@expired.test"], [],
                "every RRSIG expired in 2020: bogus")
        add_pgp("olga@unsigned.test", INSECURE, ["olga@unsigned.test"], [],
                "delegated without DS: insecure, the record must not be used")

    def _owners(self, zone, which):
        """{owner name: records} of a zone's cases, SMIMEA and OPENPGPKEY each at its own."""
        owners = {}
        for case in self.cases.values():
            if case.zone != zone:
                continue
            for record in getattr(case, which):
                owners.setdefault(owner_name(case.address, record.rrtype), []).append(record)
        return owners

    def _make_zones(self):
        delegations = []
        served = []
        for zone, dates in (("signed.test.", ()), ("bogus.test.", ()),
                            ("expired.test.", ("-i", EXPIRED_INCEPTION,
                                               "-e", EXPIRED_EXPIRATION))):
            signed_text, ds = sign_zone(zone, zone_text(zone, self._owners(zone,
                                                                          "signed_records")),
                                        self.zone_dir, self.key_dir, dates)
            path = os.path.join(self.zone_dir, zone + "served")
            with open(path, "w") as f:
                f.write(replace_key_records(signed_text, self._owners(zone, "records")))
            served.append((zone, path))
            delegations += [f"{zone} IN NS ns.{zone}", f"ns.{zone} IN A 127.0.0.1", ds]
        zone = "unsigned.test."
        path = os.path.join(self.zone_dir, zone + "served")
        with open(path, "w") as f:
            f.write(zone_text(zone, self._owners(zone, "records")))
        served.append((zone, path))
        # Delegated without DS (insecure); dead.test. is only delegated, its stub server is
        # the dead one.
        for zone in ("unsigned.test.", "dead.test."):
            delegations += [f"{zone} IN NS ns.{zone}", f"ns.{zone} IN A 127.0.0.1"]
        signed_text, self.ds_line = sign_zone(PARENT, zone_text(PARENT, {},
                                                                "\n".join(delegations) + "\n"),
                                              self.zone_dir, self.key_dir)
        path = os.path.join(self.zone_dir, PARENT + "served")
        with open(path, "w") as f:
            f.write(signed_text)
        served.insert(0, (PARENT, path))
        self.zones = served
        with open(self.anchor_file, "w") as f:
            f.write(self.ds_line + "\n")
        name, _, _, _, tag, alg, digest_type, digest = self.ds_line.split()
        with open(self.bind_anchor_file, "w") as f:
            f.write(f'trust-anchors {{\n  "{name}" static-ds {tag} {alg} {digest_type} '
                    f'"{digest}";\n}};\n')

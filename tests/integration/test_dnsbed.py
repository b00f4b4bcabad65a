# SPDX-License-Identifier: Apache-2.0
"""The DNSSEC test bed (dnsbed.py) checked with independent tools, before mailseal relies on it.

What each test is for:
- owner names: the bed's Python hashing agrees with `printf '%s' LOCAL | sha256sum` and with the
  RFC 8162 §3 example, so a wrong name cannot hide a lookup bug (or fake a pass);
- delv outcomes: with only the DS of `test.` as trust anchor, BIND's validator sees every case as
  the table in dnsbed.py says: secure for the signed users, secure NXDOMAIN for erin, bogus for
  the tampered and the expired zone, insecure for the zone delegated without DS;
- libunbound outcomes: the same through libunbound (the library mailseal uses, called with
  ctypes) configured as mailseal must configure it, including judy's 3-octet record that BIND's
  tools cannot parse;
- dig RDATA: what NSD serves is the certificates' DER / SPKI / SHA-256, two records for dave,
  and the attacker's certificate (not alice's) in bogus.test.;
- truncation: dave's answer is truncated over UDP with a 1232-octet buffer (TC=1) and complete
  over TCP, while alice's single record still fits in UDP;
- delegations and NSEC3: DS present for the signed children only; NSEC3 with 0 iterations and
  an empty salt (RFC 9276);
- dead server: UDP and TCP queries time out (no ICMP refusal, no RST) and the server saw them;
- files: every certificate chains to the test CA, has the key type, size and keyUsage the case
  needs, and its PKCS#12 and private key belong to it;
- the `[dns]` TOML for mailseal parses and points at the bed;
- lifecycle: stop() leaves no NSD process and frees both ports.
"""

import concurrent.futures
import ctypes
import ctypes.util
import os
import re
import socket
import subprocess
import time
import tomllib
import unittest

import dnsbed
import harness

TOOL_TIMEOUT = 20


def tool(*args):
    """(exit status, stdout, stderr) of a DNS client run."""
    proc = subprocess.run(list(args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=TOOL_TIMEOUT)
    return (proc.returncode, proc.stdout.decode("utf-8", "replace"),
            proc.stderr.decode("utf-8", "replace"))


def normalize_rdata(text, rrtype="SMIMEA"):
    """dig/delv print SMIMEA data as hex and OPENPGPKEY data as base64, split into
    space-separated chunks; join them."""
    fields = text.split()
    if fields[:1] == ["\\#"]:
        return " ".join(fields[:2] + ["".join(fields[2:]).upper()]).rstrip()
    if rrtype == "OPENPGPKEY":
        return "".join(fields)
    return " ".join(fields[:3] + ["".join(fields[3:]).upper()]).rstrip()


def delv_outcome(stdout, stderr):
    """delv always exits 0; its verdict is in comment lines."""
    if "; negative response, fully validated" in stdout:
        return dnsbed.ABSENT
    if "; fully validated" in stdout:
        return dnsbed.SECURE
    if "; unsigned answer" in stdout:
        return dnsbed.INSECURE
    if "resolution failed: timed out" in stderr:
        return dnsbed.FAILURE
    if re.search(r"RRSIG failed to verify|broken trust chain|no valid signature|RRSIG has "
                 r"expired|insecurity proof failed", stderr):
        return dnsbed.BOGUS
    return "unknown"


def answer_rdata(stdout, rrtype="SMIMEA"):
    """RDATA of the answer lines of type rrtype in dig/delv output (not comments)."""
    out = []
    for line in stdout.splitlines():
        if line.startswith(";"):
            continue
        fields = line.split(None, 4)
        if len(fields) == 5 and fields[3] == rrtype:
            out.append(normalize_rdata(fields[4], rrtype))
    return sorted(out)


# --- libunbound through ctypes --------------------------------------------------------------------


class UbResult(ctypes.Structure):
    """struct ub_result of unbound.h (1.17)."""

    _fields_ = [("qname", ctypes.c_char_p), ("qtype", ctypes.c_int), ("qclass", ctypes.c_int),
                ("data", ctypes.POINTER(ctypes.POINTER(ctypes.c_char))),
                ("len", ctypes.POINTER(ctypes.c_int)), ("canonname", ctypes.c_char_p),
                ("rcode", ctypes.c_int), ("answer_packet", ctypes.c_void_p),
                ("answer_len", ctypes.c_int), ("havedata", ctypes.c_int),
                ("nxdomain", ctypes.c_int), ("secure", ctypes.c_int), ("bogus", ctypes.c_int),
                ("why_bogus", ctypes.c_char_p), ("was_ratelimited", ctypes.c_int),
                ("ttl", ctypes.c_int)]


def load_libunbound():
    name = ctypes.util.find_library("unbound") or "libunbound.so.8"
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    lib.ub_ctx_create.restype = ctypes.c_void_p
    lib.ub_ctx_delete.argtypes = [ctypes.c_void_p]
    lib.ub_ctx_set_option.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p]
    lib.ub_ctx_set_stub.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p,
                                    ctypes.c_int]
    lib.ub_ctx_add_ta_file.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.ub_resolve.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_int,
                               ctypes.POINTER(ctypes.POINTER(UbResult))]
    lib.ub_resolve_free.argtypes = [ctypes.POINTER(UbResult)]
    lib.ub_strerror.restype = ctypes.c_char_p
    return lib


def unbound_lookups(lib, bed, owners):
    """{owner: (outcome, sorted RDATA wire, why_bogus)} for [(owner, rrtype)], resolved with one
    libunbound context
    set up as mailseal sets it up: `test.` made transparent (it is one of unbound's built-in
    local zones), a stub zone to NSD, the parent's DS as anchor."""
    ctx = lib.ub_ctx_create()
    if not ctx:
        raise AssertionError("ub_ctx_create failed")
    try:
        for call, args in (("ub_ctx_set_option", (b"local-zone:", b"test. transparent")),
                           ("ub_ctx_set_stub", (b"test.", bed.server.encode(), 0)),
                           ("ub_ctx_add_ta_file", (bed.anchor_file.encode(),))):
            rc = getattr(lib, call)(ctx, *args)
            if rc != 0:
                raise AssertionError(f"{call}: {lib.ub_strerror(rc).decode()}")
        found = {}
        for owner, rrtype in owners:
            result = ctypes.POINTER(UbResult)()
            rc = lib.ub_resolve(ctx, owner.encode(), rrtype, 1, ctypes.byref(result))
            if rc != 0:
                raise AssertionError(f"ub_resolve {owner}: {lib.ub_strerror(rc).decode()}")
            r = result.contents
            data = []
            i = 0
            while r.data[i]:
                data.append(ctypes.string_at(r.data[i], r.len[i]))
                i += 1
            if r.bogus:
                outcome = dnsbed.BOGUS
            elif r.secure and r.nxdomain:
                outcome = dnsbed.ABSENT
            elif r.secure and r.havedata:
                outcome = dnsbed.SECURE
            elif not r.secure and r.rcode == 0 and r.havedata:
                outcome = dnsbed.INSECURE
            else:
                outcome = f"rcode={r.rcode} secure={r.secure}"
            found[owner] = (outcome, sorted(data),
                            (r.why_bogus or b"").decode("utf-8", "replace"))
            lib.ub_resolve_free(result)
        return found
    finally:
        lib.ub_ctx_delete(ctx)


# --- tests --------------------------------------------------------------------------------------


class DnsTestBedTest(harness.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.workdir = harness.make_test_dir()
        cls.addClassCleanup(harness.remove_test_dir, cls.workdir)
        cls.bed = dnsbed.DnsTestBed(cls.workdir)
        cls.addClassCleanup(cls.bed.stop)
        cls.bed.start()

    def served_cases(self):
        """Cases NSD answers for (all but dead.test.)."""
        return [c for c in self.bed.cases.values() if c.outcome != dnsbed.FAILURE]

    def dig(self, *args, port=None):
        return tool("dig", "@127.0.0.1", "-p", str(port or self.bed.port), "+norec", *args)

    def delv(self, name, rrtype=dnsbed.SMIMEA):
        return tool("delv", "@127.0.0.1", "-p", str(self.bed.port), "-a",
                    self.bed.bind_anchor_file, "+root=test.", "-t", f"TYPE{rrtype}", name)

    def served_lookups(self):
        """[(case, rrtype, owner, records)] for every record type each served case has."""
        return [(case, *lookup) for case in self.served_cases() for lookup in case.lookups()]

    def test_owner_names_match_sha256sum(self):
        self.assertEqual(dnsbed.owner_name("hugh@example.com"),
                         "c93f1e400f26708f98cb19d936620da35eec8f72e57f9eec01c1afd6"
                         "._smimecert.example.com.", "RFC 8162 §3 example")
        self.assertEqual(dnsbed.owner_name("hugh@example.com", dnsbed.OPENPGPKEY),
                         "c93f1e400f26708f98cb19d936620da35eec8f72e57f9eec01c1afd6"
                         "._openpgpkey.example.com.", "RFC 7929 §3 example")
        for case in self.bed.cases.values():
            shell = subprocess.run(["sh", "-c", 'printf "%s" "$1" | sha256sum', "sh", case.local],
                                   stdout=subprocess.PIPE, check=True).stdout.decode()
            want = shell.split()[0][:56] + "._smimecert." + case.domain + "."
            self.assertEqual(case.owner, want, f"owner of {case.address}")
            self.assertEqual(case.pgp_owner, want.replace("._smimecert.", "._openpgpkey."))

    def test_delv_validates_every_case_as_expected(self):
        # judy's 3-octet RDATA makes BIND reject the whole message (checked below).
        lookups = [l for l in self.served_lookups() if l[0].address != "judy@signed.test"]
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(lambda l: self.delv(l[2], l[1]), lookups))
        for (case, rrtype, owner, records), (_, out, err) in zip(lookups, results):
            with self.subTest(f"{case.address} TYPE{rrtype}"):
                got = delv_outcome(out, err)
                self.assertEqual(got, case.outcome,
                                 f"{case.address} ({case.purpose}): got {got}, want "
                                 f"{case.outcome}\nstdout:\n{out}\nstderr:\n{err}")
                if case.outcome in (dnsbed.SECURE, dnsbed.INSECURE):
                    name = "SMIMEA" if rrtype == dnsbed.SMIMEA else "OPENPGPKEY"
                    self.assertEqual(answer_rdata(out, name),
                                     sorted(r.presentation() for r in records),
                                     f"{case.address}: validated RDATA")

    def test_bind_tools_reject_a_3_octet_smimea(self):
        _, out, err = self.dig("+tcp", "-t", "TYPE53", self.bed.case("judy@signed.test").owner)
        self.assertIn("malformed", out + err, "dig on judy's record: got\n" + out + err)

    def test_libunbound_agrees(self):
        lib = load_libunbound()
        if lib is None:
            self.skipTest("libunbound is not installed")
        lookups = self.served_lookups()
        found = unbound_lookups(lib, self.bed, [(owner, rrtype) for _, rrtype, owner, _ in lookups])
        for case, rrtype, owner, records in lookups:
            with self.subTest(f"{case.address} TYPE{rrtype}"):
                outcome, data, why = found[owner]
                self.assertEqual(outcome, case.outcome,
                                 f"{case.address} ({case.purpose}): got {outcome}, want "
                                 f"{case.outcome} (why_bogus: {why})")
                if case.outcome == dnsbed.BOGUS:
                    self.assertTrue(why, f"{case.address}: why_bogus is empty")
                if case.outcome in (dnsbed.SECURE, dnsbed.INSECURE):
                    self.assertEqual(data, sorted(r.wire for r in records),
                                     f"{case.address}: RDATA")

    def test_dig_rdata_is_the_certificates(self):
        c = self.bed.certs
        want = {
            "alice@signed.test": [b"\x03\x00\x00" + c["alice@signed.test"].der_bytes()],
            "bob@signed.test": [b"\x03\x01\x00" + c["bob@signed.test"].spki_bytes()],
            "carol@signed.test": [b"\x03\x00\x01"
                                  + bytes.fromhex(c["carol@signed.test"].sha256())],
            "dave@signed.test": [b"\x03\x00\x00" + c["dave@signed.test-1"].der_bytes(),
                                 b"\x03\x00\x00" + c["dave@signed.test-2"].der_bytes()],
            "frank@signed.test": [b"\x03\x00\x00" + c["frank@signed.test"].der_bytes()],
            "gina@signed.test": [b"\x03\x00\x00" + c["gina@signed.test"].der_bytes()],
            "hugo@signed.test": [b"\x03\x00\x00" + c["hugo@signed.test"].der_bytes()],
            # The tampered zone serves the attacker's certificate under alice's name.
            "alice@bogus.test": [b"\x03\x00\x00" + c["mallory@bogus.test"].der_bytes()],
            "alice@expired.test": [b"\x03\x00\x00" + c["alice@expired.test"].der_bytes()],
            "alice@unsigned.test": [b"\x03\x00\x00" + c["alice@unsigned.test"].der_bytes()],
        }
        k = self.bed.pgp_keys
        want_pgp = {
            "paul@signed.test": [k["paul@signed.test"].public_bytes()],
            "uma@signed.test": [k["uma@signed.test-1"].public_bytes(),
                                k["uma@signed.test-2"].public_bytes()],
            # The tampered zone serves the attacker's key under olga's name.
            "olga@bogus.test": [k["mallory@bogus.test"].public_bytes()],
        }
        for case, rrtype, owner, records in self.served_lookups():
            if case.address == "judy@signed.test":
                continue
            with self.subTest(f"{case.address} TYPE{rrtype}"):
                name = "SMIMEA" if rrtype == dnsbed.SMIMEA else "OPENPGPKEY"
                code, out, err = self.dig("+tcp", "+dnssec", "-t", f"TYPE{rrtype}", owner)
                self.assertEqual(code, 0, err)
                got = answer_rdata(out, name)
                served = sorted(r.presentation() for r in records)
                self.assertEqual(got, served, f"{case.address}: dig RDATA vs bed records")
                if rrtype == dnsbed.OPENPGPKEY:
                    if case.address in want_pgp:
                        self.assertEqual(got, sorted(dnsbed.Record.openpgpkey(w).presentation()
                                                     for w in want_pgp[case.address]),
                                         f"{case.address}: dig RDATA vs GnuPG's export")
                    continue
                if case.address in want:
                    self.assertEqual(got, sorted(dnsbed.Record(w).presentation()
                                                 for w in want[case.address]),
                                     f"{case.address}: dig RDATA vs certificate files")
                if case.outcome == dnsbed.ABSENT:
                    self.assertIn("status: NXDOMAIN", out, case.address)
        self.assertEqual(len(answer_rdata(self.dig("+tcp", "-t", "TYPE53",
                                                   self.bed.case("dave@signed.test").owner)[1])),
                         2, "dave has two records")

    def test_large_answer_truncated_over_udp_complete_over_tcp(self):
        dave = self.bed.case("dave@signed.test").owner
        _, udp, _ = self.dig("+ignore", "+dnssec", "+bufsize=1232", "-t", "TYPE53", dave)
        self.assertRegex(udp, r"flags: qr aa tc;", "dave over UDP: want TC=1\n" + udp)
        self.assertIn("ANSWER: 0,", udp, "a truncated answer carries no records here")
        _, tcp, _ = self.dig("+tcp", "+dnssec", "-t", "TYPE53", dave)
        self.assertIn("ANSWER: 3,", tcp, "dave over TCP: 2 SMIMEA + RRSIG\n" + tcp)
        size = int(re.search(r"MSG SIZE\s+rcvd: (\d+)", tcp).group(1))
        self.assertGreater(size, dnsbed.EDNS_BUFFER, "dave's answer size")
        _, retried, _ = self.dig("+dnssec", "+bufsize=1232", "-t", "TYPE53", dave)
        self.assertIn("Truncated, retrying in TCP mode", retried)
        self.assertEqual(len(answer_rdata(retried)), 2, "dig's own TCP retry")
        _, alice, _ = self.dig("+ignore", "+dnssec", "+bufsize=1232", "-t", "TYPE53",
                               self.bed.case("alice@signed.test").owner)
        self.assertRegex(alice, r"flags: qr aa;", "one certificate fits in UDP\n" + alice)
        self.assertIn("ANSWER: 2,", alice)

    def test_delegations_and_nsec3_parameters(self):
        for zone, signed in (("signed.test.", True), ("bogus.test.", True),
                             ("expired.test.", True), ("unsigned.test.", False),
                             ("dead.test.", False)):
            with self.subTest(zone):
                _, out, _ = self.dig("+short", "DS", zone)
                self.assertEqual(bool(out.strip()), signed, f"DS {zone}: got {out!r}")
        for zone in ("test.", "signed.test.", "bogus.test.", "expired.test."):
            _, out, _ = self.dig("+short", "NSEC3PARAM", zone)
            # RFC 9276 §3.1: SHA-1, no opt-out, 0 additional iterations, empty salt.
            self.assertEqual(out.strip(), "1 0 0 -", f"NSEC3PARAM {zone}")
        self.assertEqual(harness.read_text(self.bed.anchor_file).strip(), self.bed.ds_line)
        _, out, _ = self.dig("+short", "DNSKEY", "test.")
        self.assertEqual(len(out.strip().splitlines()), 2, "test. has a KSK and a ZSK")

    def test_dead_server_never_answers(self):
        udp_before, tcp_before = self.bed.dead.counts()
        name = dnsbed.owner_name("alice@dead.test")
        for transport in ("+notcp", "+tcp"):
            with self.subTest(transport):
                started = time.monotonic()
                code, out, err = self.dig(transport, "+time=1", "+tries=1", "-t", "TYPE53",
                                          name, port=self.bed.dead_port)
                self.assertEqual(code, 9, f"dig exit (9 = no reply)\n{out}{err}")
                self.assertIn("timed out", out + err)
                self.assertGreaterEqual(time.monotonic() - started, 0.9,
                                        "a refusal would come at once")
        harness.wait_until(lambda: self.bed.dead.counts()[0] > udp_before
                           and self.bed.dead.counts()[1] > tcp_before, 2,
                           "the dead server to count the UDP query and the TCP connection")

    def test_certificate_files(self):
        ca = self.bed.ca_cert
        for name, cert in self.bed.certs.items():
            with self.subTest(name):
                code, out, err = tool("openssl", "verify", "-CAfile", ca, cert.pem)
                self.assertEqual(code, 0, f"{name} chains to the test CA: {out}{err}")
                _, text, _ = tool("openssl", "x509", "-in", cert.pem, "-noout", "-text")
                self.assertIn(f"email:{cert.address}", text, name)
                usage = {"keyEncipherment": "Key Encipherment", "keyAgreement": "Key Agreement",
                         "digitalSignature": "Digital Signature"}[cert.key_usage]
                self.assertRegex(text, rf"Key Usage: critical\n\s+{usage}\n", name)
                self.assertIn(f"Public-Key: ({cert.key_bits} bit)", text, name)
                self.assertIn("rsaEncryption" if cert.key_type == "rsa" else "id-ecPublicKey",
                              text, name)
                _, spki, _ = tool("openssl", "x509", "-in", cert.pem, "-noout", "-pubkey")
                proc = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"],
                                      input=spki.encode(), stdout=subprocess.PIPE, check=True)
                self.assertEqual(proc.stdout, cert.spki_bytes(), f"{name}: SPKI file")
                _, der_pem, _ = tool("openssl", "x509", "-in", cert.der, "-inform", "DER")
                self.assertEqual(der_pem, harness.read_text(cert.pem), f"{name}: DER file")
                code, bundle, err = tool("openssl", "pkcs12", "-in", cert.p12, "-nodes",
                                         "-passin", f"pass:{dnsbed.P12_PASSWORD}")
                self.assertEqual(code, 0, err)
                _, key_pub, _ = tool("openssl", "pkey", "-in", cert.key, "-pubout")
                self.assertEqual(key_pub, spki, f"{name}: private key belongs to the cert")
                self.assertIn("PRIVATE KEY", bundle, f"{name}: PKCS#12 holds the key")

    def test_dns_toml_for_mailseal(self):
        config = tomllib.loads(self.bed.dns_toml())
        dns = config["dns"]
        self.assertEqual(dns["trust_anchor_file"], self.bed.anchor_file)
        self.assertEqual(dns["timeout"], "3s")
        self.assertEqual(dns["stub_zone"], [
            {"zone": "test.", "servers": [f"127.0.0.1@{self.bed.port}"]},
            {"zone": "dead.test.", "servers": [f"127.0.0.1@{self.bed.dead_port}"]}])
        path = self.bed.write_dns_toml(os.path.join(self.dir, "dns.toml"))
        self.assertEqual(tomllib.loads(harness.read_text(path)), config)


class LifecycleTest(harness.TestCase):
    def test_stop_leaves_nothing_running(self):
        bed = dnsbed.DnsTestBed(self.dir)
        self.addCleanup(bed.stop)
        bed.start()
        self.assertGreaterEqual(len(bed.leftover_processes()), 1, "NSD runs while started")
        port, dead_port = bed.port, bed.dead_port
        bed.stop()
        self.assertEqual(bed.leftover_processes(), [], "NSD processes after stop()")
        for p in (port, dead_port):
            with self.subTest(port=p):
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                    self.assertNotEqual(tcp.connect_ex(("127.0.0.1", p)), 0,
                                        f"TCP {p} still accepts after stop()")
                self.assertIsNone(dnsbed.query_header(p, "test.", 6, timeout=0.2),
                                  f"UDP {p} still answers after stop()")


if __name__ == "__main__":
    unittest.main()

# SPDX-License-Identifier: Apache-2.0
"""`mailseal lookup` and `mailseal record` against the real DNSSEC test bed (dnsbed.py).

What each test is for:
- every bed case: `lookup --json` gives the outcome the bed's table names (secure, secure
  absence, insecure, bogus, failure), the exit status that tells them apart, the owner name
  the resolver queried, and exactly the keys of the certificates the case publishes as usable
  (compared by SHA-256 of the SubjectPublicKeyInfo DER, so a wrong key cannot pass);
- the cases one by one: 3 0 0 and 3 1 0 give a key; a hash-only record gives none alone but
  confirms the local-store certificate; two records give two keys (an answer that only TCP
  carries); secure absence falls back to the local store; signing-only and RSA-1024
  certificates are refused with the reason; EC key agreement is usable; garbage RDATA never
  gives a key; bogus and expired signatures give nothing, never the local store; an unsigned
  zone's records are ignored and the local store is used; a silent server is a timeout;
- owner names: RFC 8162 §3 hashing agrees with `printf '%s' LOCAL | sha256sum`, the recipient
  delimiter's extension is dropped, the local part's case matters unless dns.lowercase_retry;
- no trust anchor: check-config, lookup and serve refuse to start (exit 78, EX_CONFIG);
- `record`: the presentation and RFC 3597 generic lines carry what NSD serves (checked with
  dig), for full certificates, bare keys and SHA-256 digests; bad values exit 64 (EX_USAGE),
  a missing or certificate-less file 66 (EX_NOINPUT).
"""

import concurrent.futures
import hashlib
import json
import os
import re
import subprocess
import time
import unittest

import dnsbed
import pgpkeys
import harness

EX_USAGE = 64
EX_NOINPUT = 66
EX_CONFIG = 78

# `lookup` exit statuses and the JSON "status" words that go with them.
STATUS_EXIT = {"found": 0, "absent": 1, "insecure": 2, "bogus": 3, "failure": 4}
# The bed's outcome names -> the JSON "dnssec" words.
DNSSEC_WORD = {dnsbed.SECURE: "secure", dnsbed.ABSENT: "secure-absent",
               dnsbed.INSECURE: "insecure", dnsbed.BOGUS: "bogus",
               dnsbed.FAILURE: "failure"}
BED_DOMAINS = ["signed.test", "bogus.test", "expired.test", "unsigned.test", "dead.test"]
# A generous bound for one lookup process (a bogus answer alone can take ~1.5 s).
RUN_TIMEOUT = 30
DEAD_TIMEOUT_SECONDS = 2


def run_mailseal(*args, timeout=RUN_TIMEOUT):
    """(exit status, stdout, stderr) of one mailseal run; the status is None when it was
    still running after `timeout` seconds (it is killed then)."""
    try:
        proc = subprocess.run([harness.MAILSEAL_BIN, *args], stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        return (None, (e.stdout or b"").decode("utf-8", "replace"),
                (e.stderr or b"").decode("utf-8", "replace"))
    return (proc.returncode, proc.stdout.decode("utf-8", "replace"),
            proc.stderr.decode("utf-8", "replace"))


def spki_sha256(cert):
    return hashlib.sha256(cert.spki_bytes()).hexdigest()


def key_fingerprints(key):
    """What `lookup` lists for a certificate (its SPKI's SHA-256) or an OpenPGP key (its
    unrevoked encryption subkeys' fingerprints)."""
    if isinstance(key, pgpkeys.PgpKey):
        return [fpr.lower() for fpr, usage, revoked in key.subkeys if "e" in usage and not revoked]
    return [spki_sha256(key)]


def bare(name):
    """An owner name without its trailing dot, for lenient comparison."""
    return name.rstrip(".").lower()


def shell_owner(local, domain):
    """The owner name computed the way an operator would: `printf '%s' LOCAL | sha256sum`."""
    out = subprocess.run(["sh", "-c", 'printf "%s" "$1" | sha256sum', "sh", local],
                         stdout=subprocess.PIPE, check=True).stdout.decode()
    return f"{out.split()[0][:56]}._smimecert.{domain}"


def expected_status(case):
    """What a lookup from DNS alone (no local store) must conclude for a bed case."""
    if case.usable:
        return "found"
    return {dnsbed.SECURE: "absent", dnsbed.ABSENT: "absent", dnsbed.INSECURE: "insecure",
            dnsbed.BOGUS: "bogus", dnsbed.FAILURE: "failure"}[case.outcome]


class Lookup:
    """One `mailseal lookup --json` run, parsed."""

    def __init__(self, address, code, stdout, stderr):
        self.address = address
        self.code = code
        self.stdout = stdout
        self.stderr = stderr
        try:
            self.json = json.loads(stdout)
        except ValueError:
            self.json = None

    def __getitem__(self, key):
        return self.json[key]

    @property
    def smime(self):
        """The SMIMEA lookup's part of the result."""
        return next(l for l in self.json["lookups"] if l["format"] == "smime")

    def context(self):
        return (f"lookup {self.address}: exit {self.code}\nstdout:\n{self.stdout}\n"
                f"stderr:\n{self.stderr}")

    def key_hashes(self):
        return sorted(k["fingerprint"] for k in self.json["keys"])


class BedTestCase(harness.TestCase):
    """One DNSSEC test bed per test class; each test writes its own configuration."""

    @classmethod
    def setUpClass(cls):
        cls.bed = dnsbed.start_for_class(cls)

    def write_config(self, local_store=None, name="mailseal.toml", **dns_extra):
        config = {
            "listen": [{"tcp": "127.0.0.1:0"}],
            "mailbox": {"domains": BED_DOMAINS,
                        "maildir": os.path.join(self.dir, "vmail", "%d", "%n", "Maildir"),
                        "recipient_delimiter": "+"},
            **self.bed.mailseal_overrides(**dns_extra),
        }
        if local_store is not None:
            config["keys"] = {"local_store": local_store}
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(harness.to_toml(config))
        return path

    def make_store(self, *certs):
        """A local certificate store (docs/keys.md: <store>/<domain>/<user>/*.pem) holding
        certs, each filed under the address in its subjectAltName."""
        store = os.path.join(self.dir, "local-store")
        os.makedirs(store, exist_ok=True)
        for cert in certs:
            harness.add_to_local_store(store, cert.address, cert.pem, cert.name)
        return store


class LookupTest(BedTestCase):
    def lookup(self, address, config=None, timeout=RUN_TIMEOUT):
        config = config or self.write_config()
        code, out, err = run_mailseal("lookup", "--config", config, "--json", address,
                                      timeout=timeout)
        result = Lookup(address, code, out, err)
        self.assertIsNotNone(result.json, "stdout is not one JSON object\n" + result.context())
        return result

    def assertLookup(self, result, status, dnssec, keys=(), owner=None):
        """result ended with `status` (and its exit code), the DNSSEC word `dnssec`, exactly
        the keys of the certificates `keys`, and (if given) the owner name."""
        ctx = result.context()
        self.assertEqual(result["status"], status, f"status: {ctx}")
        self.assertEqual(result.code, STATUS_EXIT[status], f"exit status: {ctx}")
        self.assertEqual(result["dnssec"], dnssec, f"dnssec: {ctx}")
        want = sorted(f for k in keys for f in key_fingerprints(k))
        self.assertEqual(result.key_hashes(), want, f"keys (SPKI SHA-256, fingerprints): {ctx}")
        self.assertEqual(len(result["keys"]), len(want), f"number of keys: {ctx}")
        if owner is not None:
            self.assertEqual(bare(result.smime["owner"]), bare(owner), f"owner: {ctx}")

    def candidate(self, result, source_part):
        found = [c for c in result.smime["candidates"] if source_part in c["source"]]
        self.assertEqual(len(found), 1,
                         f"one candidate with source containing {source_part!r}: "
                         f"{result.context()}")
        return found[0]

    # Every case of the bed

    def test_every_bed_case_from_dns_alone(self):
        config = self.write_config()
        cases = [c for c in self.bed.cases.values() if c.outcome != dnsbed.FAILURE]
        with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
            results = dict(zip([c.address for c in cases],
                               pool.map(lambda c: self.lookup(c.address, config), cases)))
        for case in cases:
            with self.subTest(case.address):
                result = results[case.address]
                self.assertLookup(result, expected_status(case), DNSSEC_WORD[case.outcome],
                                  case.usable, owner=case.owner)
                self.assertEqual(result["address"], case.address, result.context())
                for key in result["keys"]:
                    self.assertTrue(key["source"].startswith(("smimea", "openpgpkey")),
                                    f"no local store, yet key from {key['source']!r}: "
                                    f"{result.context()}")
                    self.assertRegex(key["fingerprint"], r"^([0-9a-f]{64}|[0-9a-f]{40})$",
                                     result.context())
                if case.outcome in (dnsbed.BOGUS, dnsbed.FAILURE):
                    self.assertTrue(any(l["detail"] for l in result["lookups"]),
                                    f"detail empty: {result.context()}")

    def test_owner_names_agree_with_sha256sum(self):
        config = self.write_config()
        for address in ("alice@signed.test", "erin@signed.test", "alice@unsigned.test"):
            with self.subTest(address):
                local, domain = address.rsplit("@", 1)
                result = self.lookup(address, config)
                want = shell_owner(local, domain)
                self.assertEqual(bare(result.smime["owner"]), want, result.context())
                self.assertEqual(bare(dnsbed.owner_name(address)), want)

    def test_text_report(self):
        config = self.write_config()
        case = self.bed.case("alice@signed.test")
        code, out, err = run_mailseal("lookup", "--config", config, case.address)
        self.assertEqual(code, 0, f"stdout:\n{out}\nstderr:\n{err}")
        self.assertIn(bare(case.owner), out.lower(), "the owner name in the report")
        self.assertRegex(out, r"\bsecure\b", "the DNSSEC outcome in the report")
        code, out, err = run_mailseal("lookup", "--config", config, "erin@signed.test")
        self.assertEqual(code, 1, f"stdout:\n{out}\nstderr:\n{err}")
        self.assertIn("secure-absent", out, "the DNSSEC outcome in the report")

    # The cases one by one

    def test_alice_full_certificate(self):
        case = self.bed.case("alice@signed.test")
        cert = self.bed.certs["alice@signed.test"]
        result = self.lookup(case.address)
        self.assertLookup(result, "found", "secure", [cert], owner=case.owner)
        self.assertFalse(result.smime["nxdomain"], result.context())
        self.assertEqual(result.smime["unparsable"], 0, result.context())
        self.assertFalse(result.smime["lowercase_retry"], result.context())
        key = result["keys"][0]
        self.assertEqual((key["type"], key["bits"]), ("rsa", 2048), result.context())
        self.assertIn("3 0 0", key["source"], result.context())
        candidate = self.candidate(result, "3 0 0")
        self.assertTrue(candidate["usable"] and candidate["selected"], result.context())
        self.assertEqual(candidate["fingerprint"], cert.sha256(), "certificate fingerprint")
        self.assertIn("alice@signed.test", candidate["names"], result.context())
        self.assertIn("alice@signed.test", candidate["subject"], result.context())
        self.assertTrue(candidate["not_before"] and candidate["not_after"], result.context())
        self.assertEqual(result.smime["local_problems"], [], result.context())

    def test_bob_bare_public_key(self):
        case = self.bed.case("bob@signed.test")
        result = self.lookup(case.address)
        self.assertLookup(result, "found", "secure", [self.bed.certs["bob@signed.test"]],
                          owner=case.owner)
        self.assertIn("3 1 0", result["keys"][0]["source"], result.context())
        self.assertEqual(result["keys"][0]["type"], "rsa", result.context())
        self.assertTrue(self.candidate(result, "3 1 0")["usable"], result.context())

    def test_carol_hash_only_needs_the_local_store(self):
        case = self.bed.case("carol@signed.test")
        cert = self.bed.certs["carol@signed.test"]
        result = self.lookup(case.address)
        self.assertLookup(result, "absent", "secure", [], owner=case.owner)
        self.assertFalse(self.candidate(result, "3 0 1")["selected"], result.context())

        store = self.make_store(cert)
        result = self.lookup(case.address, self.write_config(local_store=store))
        self.assertLookup(result, "found", "secure", [cert], owner=case.owner)
        self.assertTrue(result["keys"][0]["source"].startswith("local"),
                        f"key source: {result.context()}")
        self.assertTrue(self.candidate(result, "3 0 1")["usable"],
                        f"the hash record confirms the local certificate: {result.context()}")

    def test_dave_two_records_over_tcp(self):
        case = self.bed.case("dave@signed.test")
        certs = [self.bed.certs["dave@signed.test-1"], self.bed.certs["dave@signed.test-2"]]
        # The answer does not fit the 1232-octet UDP buffer (test_dnsbed checks the TC bit):
        # both keys arrive only if the resolver retried over TCP.
        result = self.lookup(case.address)
        self.assertLookup(result, "found", "secure", certs, owner=case.owner)
        self.assertEqual(len(result.smime["candidates"]), 2, result.context())
        self.assertTrue(all(c["usable"] and c["selected"] for c in result.smime["candidates"]),
                        result.context())

    def test_dave_same_key_twice_is_one_key(self):
        case = self.bed.case("dave@signed.test")
        first = self.bed.certs["dave@signed.test-1"]
        # The same certificate in DNS and in the store (confirmed or not) is one key.
        store = self.make_store(first)
        result = self.lookup(case.address, self.write_config(local_store=store))
        self.assertLookup(result, "found", "secure",
                          [first, self.bed.certs["dave@signed.test-2"]], owner=case.owner)

    def test_erin_secure_absence_and_local_store(self):
        case = self.bed.case("erin@signed.test")
        cert = self.bed.certs["erin@signed.test"]
        result = self.lookup(case.address)
        self.assertLookup(result, "absent", "secure-absent", [], owner=case.owner)
        self.assertTrue(result.smime["nxdomain"], result.context())
        self.assertEqual(result.smime["candidates"], [], result.context())

        store = self.make_store(cert)
        result = self.lookup(case.address, self.write_config(local_store=store))
        self.assertLookup(result, "found", "secure-absent", [cert], owner=case.owner)
        key = result["keys"][0]
        self.assertTrue(key["source"].startswith("local"), result.context())
        self.assertIn(os.path.join(store, "signed.test", "erin"), key["source"],
                      result.context())

    def test_frank_signing_only_certificate(self):
        case = self.bed.case("frank@signed.test")
        result = self.lookup(case.address)
        self.assertLookup(result, "absent", "secure", [], owner=case.owner)
        candidate = self.candidate(result, "3 0 0")
        self.assertFalse(candidate["usable"], result.context())
        self.assertRegex(candidate["why"].lower(), r"keyusage|keyencipherment",
                         f"reason: {result.context()}")

    def test_gina_rsa_1024(self):
        case = self.bed.case("gina@signed.test")
        result = self.lookup(case.address)
        self.assertLookup(result, "absent", "secure", [], owner=case.owner)
        candidate = self.candidate(result, "3 0 0")
        self.assertFalse(candidate["usable"], result.context())
        self.assertIn("2048", candidate["why"], f"reason: {result.context()}")

    def test_hugo_ec_key_agreement(self):
        case = self.bed.case("hugo@signed.test")
        result = self.lookup(case.address)
        self.assertLookup(result, "found", "secure", [self.bed.certs["hugo@signed.test"]],
                          owner=case.owner)
        self.assertEqual(result["keys"][0]["type"], "ec-p256", result.context())
        self.assertEqual(result["keys"][0]["bits"], 256, result.context())

    def test_garbage_records_never_give_a_key(self):
        config = self.write_config()
        for address in ("ivan@signed.test", "judy@signed.test"):
            with self.subTest(address):
                case = self.bed.case(address)
                result = self.lookup(address, config)
                self.assertLookup(result, "absent", "secure", [], owner=case.owner)
                self.assertEqual(len(result.smime["candidates"]) + result.smime["unparsable"],
                                 len(case.records),
                                 f"every record is a candidate or counted unparsable: "
                                 f"{result.context()}")
                for candidate in result.smime["candidates"]:
                    self.assertFalse(candidate["usable"] or candidate["selected"],
                                     result.context())
                    self.assertTrue(candidate["why"], result.context())

    def test_bogus_never_uses_the_local_store(self):
        case = self.bed.case("alice@bogus.test")
        own = self.bed.certs["alice@bogus.test"]
        attacker = self.bed.certs["mallory@bogus.test"]
        self.assertEqual(own.address, attacker.address)
        store = self.make_store(own)
        result = self.lookup(case.address, self.write_config(local_store=store))
        self.assertLookup(result, "bogus", "bogus", [], owner=case.owner)
        self.assertTrue(result.smime["detail"].strip(), f"why_bogus: {result.context()}")
        self.assertNotIn(spki_sha256(attacker), result.stdout, "the attacker's key")
        self.assertNotIn(spki_sha256(own), result.stdout, "the local certificate's key")
        self.assertFalse([c for c in result.smime["candidates"] if c["selected"]], result.context())

    def test_unbound_conf_cannot_weaken_validation(self):
        # An unbound.conf passthrough must not turn a bogus answer into an insecure one, which
        # would send the recipient to the local store.
        case = self.bed.case("alice@bogus.test")
        store = self.make_store(self.bed.certs["alice@bogus.test"])
        permissive = os.path.join(self.dir, "permissive.conf")
        with open(permissive, "w") as f:
            f.write("server:\n  val-permissive-mode: yes\n  harden-dnssec-stripped: no\n")
        result = self.lookup(case.address,
                             self.write_config(local_store=store, unbound_conf=permissive))
        self.assertLookup(result, "bogus", "bogus", [], owner=case.owner)

        insecure = os.path.join(self.dir, "insecure.conf")
        with open(insecure, "w") as f:
            f.write('server:\n  domain-insecure: "bogus.test"\n')
        code, _, err = run_mailseal("lookup", "--config",
                                    self.write_config(local_store=store, unbound_conf=insecure),
                                    case.address)
        self.assertEqual(code, 78, err)
        self.assertIn("domain-insecure", err)

    def test_expired_signatures_are_bogus(self):
        case = self.bed.case("alice@expired.test")
        store = self.make_store(self.bed.certs["alice@expired.test"])
        result = self.lookup(case.address, self.write_config(local_store=store))
        self.assertLookup(result, "bogus", "bogus", [], owner=case.owner)
        self.assertTrue(result.smime["detail"].strip(), result.context())

    def test_unsigned_zone_uses_only_the_local_store(self):
        case = self.bed.case("alice@unsigned.test")
        cert = self.bed.certs["alice@unsigned.test"]
        result = self.lookup(case.address)
        self.assertLookup(result, "insecure", "insecure", [], owner=case.owner)
        self.assertFalse([c for c in result.smime["candidates"] if c["usable"] or c["selected"]],
                         f"an insecure record is no answer: {result.context()}")

        store = self.make_store(cert)
        result = self.lookup(case.address, self.write_config(local_store=store))
        self.assertLookup(result, "found", "insecure", [cert], owner=case.owner)
        # The zone publishes the same certificate: the key must come from the store.
        self.assertTrue(result["keys"][0]["source"].startswith("local"), result.context())
        self.assertFalse([c for c in result.smime["candidates"]
                          if c["source"].startswith("smimea") and c["selected"]],
                         result.context())

    def test_dead_server_times_out(self):
        case = self.bed.case("alice@dead.test")
        config = self.write_config(timeout=f"{DEAD_TIMEOUT_SECONDS}s")
        started = time.monotonic()
        result = self.lookup(case.address, config)
        elapsed = time.monotonic() - started
        self.assertLookup(result, "failure", "failure", [], owner=case.owner)
        self.assertIn("timeout", result.smime["detail"].lower(), result.context())
        self.assertGreaterEqual(elapsed, DEAD_TIMEOUT_SECONDS * 0.9,
                                "a failure before the deadline did not wait for the server")
        self.assertLess(elapsed, DEAD_TIMEOUT_SECONDS + 10, "the deadline was not kept")

    def test_dead_server_never_uses_the_local_store(self):
        case = self.bed.case("alice@dead.test")
        # The bed has no certificate for this address: one that the store would accept.
        cert = dnsbed.CertFactory(os.path.join(self.dir, "certs")).make(
            "alice@dead.test", "alice@dead.test")
        store = self.make_store(cert)
        config = self.write_config(local_store=store, timeout=f"{DEAD_TIMEOUT_SECONDS}s")
        result = self.lookup(case.address, config)
        self.assertLookup(result, "failure", "failure", [], owner=case.owner)

    def test_address_extension_is_dropped(self):
        alice = self.bed.case("alice@signed.test")
        result = self.lookup("alice+tag@signed.test")
        self.assertLookup(result, "found", "secure", [self.bed.certs["alice@signed.test"]],
                          owner=alice.owner)

    def test_local_part_case_and_lowercase_retry(self):
        alice = self.bed.case("alice@signed.test")
        result = self.lookup("Alice@signed.test")
        # RFC 8162 §3 hashes the exact octets: "Alice" has no record.
        self.assertLookup(result, "absent", "secure-absent", [],
                          owner=shell_owner("Alice", "signed.test"))
        self.assertTrue(result.smime["nxdomain"], result.context())
        self.assertFalse(result.smime["lowercase_retry"], result.context())

        result = self.lookup("Alice@signed.test", self.write_config(lowercase_retry=True))
        self.assertLookup(result, "found", "secure", [self.bed.certs["alice@signed.test"]],
                          owner=alice.owner)
        self.assertTrue(result.smime["lowercase_retry"], result.context())

    def test_bad_addresses(self):
        config = self.write_config()
        for address in ("no-at-sign", "alice@", "@signed.test"):
            with self.subTest(address):
                code, out, err = run_mailseal("lookup", "--config", config, "--json", address)
                self.assertEqual(code, EX_USAGE, f"{address}: stdout {out!r} stderr {err!r}")
                self.assertTrue(err.strip(), f"{address}: a message on stderr")


class TrustAnchorTest(harness.TestCase):
    """Without a DNSSEC trust anchor every answer is insecure and nothing would be sealed:
    mailseal refuses to start."""

    def setUp(self):
        super().setUp()
        if not harness.MAILSEAL_BIN:
            self.skipTest("MAILSEAL_BIN is not set (run the tests through ctest)")

    def config(self, anchor_file):
        path = os.path.join(self.dir, "mailseal.toml")
        with open(path, "w") as f:
            f.write(harness.to_toml({
                "listen": [{"tcp": "127.0.0.1:0"}],
                "mailbox": {"domains": ["signed.test"],
                            "maildir": os.path.join(self.dir, "vmail", "%d", "%n", "Maildir")},
                "dns": {"trust_anchor_file": anchor_file},
                "dns.stub_zone": [{"zone": "test.", "servers": ["127.0.0.1@53"]}],
            }))
        return path

    def test_refuses_to_start_without_an_anchor(self):
        empty = os.path.join(self.dir, "empty.key")
        open(empty, "w").close()
        comment_only = os.path.join(self.dir, "comment.key")
        with open(comment_only, "w") as f:
            f.write("; no anchor here\n")
        for name, anchor in (("empty file", empty), ("comments only", comment_only),
                             ("missing file", os.path.join(self.dir, "missing.key"))):
            path = self.config(anchor)
            for command in (["check-config", "--config", path],
                            ["lookup", "--config", path, "alice@signed.test"],
                            ["serve", "--config", path]):
                with self.subTest(anchor=name, command=command[0]):
                    code, out, err = run_mailseal(*command, timeout=15)
                    self.assertEqual(code, EX_CONFIG, f"stdout {out!r} stderr {err!r}")
                    self.assertIn("anchor", err.lower(), "the message names the anchor")
                    self.assertNotIn("event=listening", err)


class RecordTest(BedTestCase):
    def record(self, cert_file, address, *options):
        return run_mailseal("record", "--cert", cert_file, *options, address)

    def dig_rdata(self, owner):
        """What NSD serves at owner, as `dig +short` prints it, spaces removed, upper case."""
        proc = subprocess.run(["dig", "@127.0.0.1", "-p", str(self.bed.port), "+tcp", "+short",
                               "-t", "TYPE53", owner], stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
        self.assertEqual(proc.returncode, 0, proc.stderr.decode())
        return sorted(re.sub(r"\s+", "", line).upper()
                      for line in proc.stdout.decode().splitlines() if line.strip())

    def parse(self, code, out, err, want_certs=1):
        """(presentation lines, generic lines) of a successful run, checked for form: one
        comment and two record lines per certificate."""
        ctx = f"exit {code}\nstdout:\n{out}\nstderr:\n{err}"
        self.assertEqual(code, 0, ctx)
        lines = [l for l in out.splitlines() if l.strip()]
        comments = [l for l in lines if l.startswith(";")]
        records = [l.split() for l in lines if not l.startswith(";")]
        presentation = [r for r in records if len(r) >= 4 and r[3] == "SMIMEA"]
        generic = [r for r in records if len(r) >= 4 and r[3] == "TYPE53"]
        self.assertEqual(len(presentation), want_certs, f"SMIMEA lines: {ctx}")
        self.assertEqual(len(generic), want_certs, f"TYPE53 lines: {ctx}")
        self.assertEqual(len(records), 2 * want_certs, f"only record lines: {ctx}")
        self.assertGreaterEqual(len(comments), want_certs, f"comment lines: {ctx}")
        for r in presentation:
            self.assertEqual(len(r), 8, f"<owner> <ttl> IN SMIMEA u s m HEX: {r}")
            self.assertRegex(r[7], r"^[0-9A-F]+$", f"upper-case hex without spaces: {r}")
        for r in generic:
            self.assertEqual(r[4], "\\#", f"RFC 3597 form: {r}")
            self.assertRegex(r[6], r"^[0-9A-Fa-f]+$", f"hex without spaces: {r}")
            self.assertEqual(len(r), 7, f"<owner> <ttl> IN TYPE53 \\# len hex: {r}")
            self.assertEqual(int(r[5]), len(r[6]) // 2, f"length of the generic RDATA: {r}")
        for r in presentation + generic:
            self.assertEqual(r[2], "IN", r)
        return presentation, generic

    def assertRecord(self, presentation, generic, owner, record, ttl="3600"):
        """The two lines publish `record` (a dnsbed.Record) at owner."""
        for r in (presentation, generic):
            self.assertEqual(r[0], owner, "owner, absolute with the trailing dot")
            self.assertEqual(r[1], ttl, "TTL")
        self.assertEqual(" ".join(presentation[4:]), record.presentation(),
                         "presentation RDATA")
        self.assertEqual(" ".join(generic[4:]).lower(), record.generic().lower(),
                         "generic RDATA")

    def test_alice_matches_what_dns_serves(self):
        case = self.bed.case("alice@signed.test")
        cert = self.bed.certs["alice@signed.test"]
        (p,), (g,) = self.parse(*self.record(cert.pem, case.address))
        self.assertRecord(p, g, case.owner, case.records[0])
        self.assertEqual(self.dig_rdata(case.owner), ["".join(p[4:]).upper()],
                         "dig +short against the presentation line")
        self.assertEqual(bare(p[0]), shell_owner("alice", "signed.test"))

    def test_ttl(self):
        case = self.bed.case("alice@signed.test")
        cert = self.bed.certs["alice@signed.test"]
        (p,), (g,) = self.parse(*self.record(cert.pem, case.address, "--ttl", "300"))
        self.assertRecord(p, g, case.owner, case.records[0], ttl="300")

    def test_der_certificate_file(self):
        # `mailseal record --help` says "--cert: PEM or DER certificate file".
        case = self.bed.case("alice@signed.test")
        cert = self.bed.certs["alice@signed.test"]
        (p,), (g,) = self.parse(*self.record(cert.der, case.address))
        self.assertRecord(p, g, case.owner, case.records[0])

    def test_dave_each_certificate_and_a_bundle(self):
        case = self.bed.case("dave@signed.test")
        certs = [self.bed.certs["dave@signed.test-1"], self.bed.certs["dave@signed.test-2"]]
        lines = []
        for cert, record in zip(certs, case.records):
            (p,), (g,) = self.parse(*self.record(cert.pem, case.address))
            self.assertRecord(p, g, case.owner, record)
            lines.append("".join(p[4:]).upper())
        self.assertEqual(self.dig_rdata(case.owner), sorted(lines), "dig +short")

        bundle = os.path.join(self.dir, "dave-bundle.pem")
        with open(bundle, "w") as f:
            f.write("".join(harness.read_text(c.pem) for c in certs))
        presentation, generic = self.parse(*self.record(bundle, case.address), want_certs=2)
        self.assertEqual(sorted("".join(p[4:]).upper() for p in presentation), sorted(lines),
                         "one record per certificate of the file")
        self.assertEqual(sorted(" ".join(g[4:]).lower() for g in generic),
                         sorted(r.generic().lower() for r in case.records))

    def test_bare_key_and_digests(self):
        c = self.bed.certs
        # (name, cert, address, options, want RDATA, served at the owner too?)
        cases = [
            ("bob 3 1 0", c["bob@signed.test"], "bob@signed.test", ["--selector", "1"],
             dnsbed.Record.smimea(3, 1, 0, c["bob@signed.test"].spki_bytes()), True),
            ("carol 3 0 1", c["carol@signed.test"], "carol@signed.test", ["--matching", "1"],
             dnsbed.Record.smimea(3, 0, 1, bytes.fromhex(c["carol@signed.test"].sha256())),
             True),
            ("alice 3 1 1", c["alice@signed.test"], "alice@signed.test",
             ["--selector", "1", "--matching", "1"],
             dnsbed.Record.smimea(3, 1, 1,
                                  hashlib.sha256(c["alice@signed.test"].spki_bytes()).digest()),
             False),
            ("alice 3 0 2", c["alice@signed.test"], "alice@signed.test", ["--matching", "2"],
             dnsbed.Record.smimea(3, 0, 2,
                                  hashlib.sha512(c["alice@signed.test"].der_bytes()).digest()),
             False),
            ("alice 1 0 0", c["alice@signed.test"], "alice@signed.test", ["--usage", "1"],
             dnsbed.Record.smimea(1, 0, 0, c["alice@signed.test"].der_bytes()), False),
        ]
        for name, cert, address, options, want, served in cases:
            with self.subTest(name):
                owner = dnsbed.owner_name(address)
                (p,), (g,) = self.parse(*self.record(cert.pem, address, *options))
                self.assertRecord(p, g, owner, want)
                if served:
                    self.assertEqual(self.dig_rdata(owner), ["".join(p[4:]).upper()],
                                     "dig +short")
        (p,), _ = self.parse(*self.record(c["alice@signed.test"].pem, "alice@signed.test",
                                          "--selector", "1", "--matching", "1"))
        self.assertEqual(len(bytes.fromhex(p[7])), 32, "a SHA-256 digest")

    def test_address_extension_is_dropped(self):
        cert = self.bed.certs["alice@signed.test"]
        (p,), (g,) = self.parse(*self.record(cert.pem, "alice+tag@signed.test"))
        self.assertEqual(p[0], dnsbed.owner_name("alice@signed.test"))
        config = self.write_config()
        (p,), _ = self.parse(*run_mailseal("record", "--cert", cert.pem, "--config", config,
                                           "alice+tag@signed.test"))
        self.assertEqual(p[0], dnsbed.owner_name("alice@signed.test"), "with --config")

    def test_bad_values_and_files(self):
        cert = self.bed.certs["alice@signed.test"]
        address = "alice@signed.test"
        for name, options in (("usage 7", ["--usage", "7"]), ("selector 2", ["--selector", "2"]),
                              ("matching 3", ["--matching", "3"])):
            with self.subTest(name):
                code, out, err = self.record(cert.pem, address, *options)
                self.assertEqual(code, EX_USAGE, f"{name}: stdout {out!r} stderr {err!r}")
                self.assertNotIn("SMIMEA", out, name)
        with self.subTest("bad address"):
            code, out, err = self.record(cert.pem, "no-at-sign")
            self.assertEqual(code, EX_USAGE, f"stdout {out!r} stderr {err!r}")
        not_a_cert = os.path.join(self.dir, "notes.txt")
        with open(not_a_cert, "w") as f:
            f.write("not a certificate\n")
        for name, path in (("missing file", os.path.join(self.dir, "missing.pem")),
                           ("no certificate", not_a_cert),
                           ("private key only", cert.key),
                           ("a directory", self.dir)):
            with self.subTest(name):
                code, out, err = self.record(path, address)
                self.assertEqual(code, EX_NOINPUT, f"{name}: stdout {out!r} stderr {err!r}")
                self.assertTrue(err.strip(), f"{name}: a message on stderr")
                self.assertNotIn("SMIMEA", out, name)


if __name__ == "__main__":
    unittest.main()


class TlsaRecordTest(harness.TestCase):
    """`record --tlsa`: the mail server's 3 1 1 records for its current and next certificate,
    checked against OpenSSL's own SHA-256 of each SubjectPublicKeyInfo."""

    def certificate(self, name, key_args):
        key = os.path.join(self.dir, name + ".key")
        cert = os.path.join(self.dir, name + ".pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", *key_args, "-nodes", "-keyout", key,
                        "-out", cert, "-subj", "/CN=mx.example.org", "-days", "30"],
                       check=True, capture_output=True, timeout=RUN_TIMEOUT)
        return cert

    def spki_sha256(self, cert):
        pubkey = subprocess.run(["openssl", "x509", "-in", cert, "-noout", "-pubkey"],
                                check=True, capture_output=True, timeout=RUN_TIMEOUT).stdout
        der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pubkey,
                             check=True, capture_output=True, timeout=RUN_TIMEOUT).stdout
        return hashlib.sha256(der).hexdigest().upper()

    def records(self, out):
        return [line.split() for line in out.splitlines() if line and not line.startswith(";")]

    def test_current_and_next_keys(self):
        current = self.certificate("current", ["rsa:2048"])
        following = self.certificate("next", ["ec", "-pkeyopt", "ec_paramgen_curve:P-256"])
        code, out, err = run_mailseal("record", "--tlsa", "--cert", current, "--next", following,
                                      "--host", "MX.Example.ORG")
        self.assertEqual(code, 0, err)
        self.assertEqual(self.records(out), [
            ["_25._tcp.mx.example.org.", "3600", "IN", "TLSA", "3", "1", "1",
             self.spki_sha256(current)],
            ["_25._tcp.mx.example.org.", "3600", "IN", "TLSA", "3", "1", "1",
             self.spki_sha256(following)]])
        self.assertIn("; current: CN=mx.example.org, RSA 2048, expires ", out)
        self.assertIn("; next: CN=mx.example.org, EC P-256, expires ", out)

    def test_a_renewal_that_keeps_the_key_needs_one_record(self):
        current = self.certificate("current", ["rsa:2048"])
        code, out, err = run_mailseal("record", "--tlsa", "--cert", current, "--next", current,
                                      "--host", "bücher.example", "--port", "465",
                                      "--ttl", "300")
        self.assertEqual(code, 0, err)
        self.assertEqual(self.records(out), [
            ["_465._tcp.xn--bcher-kva.example.", "300", "IN", "TLSA", "3", "1", "1",
             self.spki_sha256(current)]])
        self.assertIn("keeps the current key", out)

    def test_bad_hosts_files_and_arguments(self):
        current = self.certificate("current", ["rsa:2048"])
        code, out, err = run_mailseal("record", "--tlsa", "--cert", current, "--host", "a..b")
        self.assertEqual(code, EX_USAGE, (out, err))
        notes = os.path.join(self.dir, "notes.txt")
        with open(notes, "w") as f:
            f.write("not a certificate\n")
        code, out, err = run_mailseal("record", "--tlsa", "--cert", notes, "--host",
                                      "mx.example.org")
        self.assertEqual(code, EX_NOINPUT, (out, err))
        self.assertNotIn("TLSA", out)
        code, out, err = run_mailseal("record", "--tlsa", "--cert", current, "alice@example.org")
        self.assertNotEqual(code, 0, (out, err))
        self.assertIn("--tlsa takes no address", err)

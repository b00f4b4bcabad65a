# SPDX-License-Identifier: Apache-2.0
"""Sealing at delivery, end to end against the real DNSSEC test bed (dnsbed.py).

What each test is for:
- the policy table, every row over LMTP in one daemon: keyed recipients get a sealed copy
  (250), secure absence and insecure zones follow on_no_key (plain 250 by default, 451 4.7.1
  under "defer", 550 5.7.1 under "reject", set per address), a bogus answer 451 4.7.5, a
  failed lookup 451 4.4.3 with nothing stored, and already-encrypted mail is stored as
  received whatever DNS said;
- three independent decryptors (OpenSSL, gpgsm, NSS cmsutil) open the sealed copy and get the
  original MIME entity back byte for byte (CRLF-canonical); two published keys give one CMS
  that each key opens; a bare SPKI key and an EC key open with the implementations that can;
- each copy of a multi-recipient transaction names only its own recipient's keys;
- verdicts on keys are kept between messages (keys.cache_entries): later copies for the same
  records come from the cache, as the metrics show, and still open with each recipient's own
  key and no other's;
- a signed message (openssl smime -sign) still verifies after decryption;
- already-encrypted forms (PGP/MIME, S/MIME enveloped and authEnveloped, an armoured single
  part), with real ciphertext from tests/seal/fixtures/encrypted, are stored byte-identical; a
  message that only quotes an armour block is sealed (test_passthrough.py has the rest);
- a real-world corpus (libmime-explode-perl, malformed messages included) is sealed and every
  line of every original comes back (outer fields + decrypted entity);
- a 100 MB message to a keyed recipient leaves its canary in no file under the test's root,
  and another session delivers while it is being sealed;
- `mailseal seal` produces what delivery produces and tells its outcomes apart by exit status;
- through Postfix: sendmail -> Postfix -> mailseal -> Maildir, read back by Dovecot.
"""

import collections
import concurrent.futures
import os
import re
import secrets
import socket
import subprocess
import unittest

import corpus
import decryptors
import dnsbed
import harness
from messages import (SEALED_MIME_FIELDS, SealedCopies, base64_lines, crlf, entity_message,
                      fixture, inner_entity, reference_split, split_header)

SENDER = harness.SENDER
BED_DOMAINS = ["signed.test", "bogus.test", "expired.test", "unsigned.test", "dead.test"]
RUN_TIMEOUT = 60
EX_TEMPFAIL = 75
# Real ciphertext (tests/seal/fixtures/encrypted): the check for "already encrypted" looks at
# the structure, and seals anything that only looks like ciphertext.
ARMOUR = crlf(fixture("gpg.asc"))
ENVELOPED = base64_lines(fixture("openssl-enveloped.der"))
AUTH_ENVELOPED = base64_lines(fixture("openssl-authenveloped.der"))


def identity(bed, name, key_type="rsa"):
    cert = bed.certs[name]
    return decryptors.Identity.from_files(cert.address, cert.pem, cert.key, key_type)


class SealingCase(harness.ClassDaemonCopies, SealedCopies, harness.TestCase):
    """One test bed and one daemon per class, with keys for the bed's users."""

    policies = [
        {"match": "frank@signed.test", "on_no_key": "defer"},
        {"match": "gina@signed.test", "on_no_key": "reject"},
    ]

    @classmethod
    def setUpClass(cls):
        cls.bed = dnsbed.start_for_class(cls)
        # As the package runs it: as a user of its own (here `mail`, whom Dovecot reads as).
        cls.server = harness.Mailseal(cls.workdir, cls.overrides(), user="mail")
        cls.addClassCleanup(cls.server.stop)
        cls.server.start()

    @classmethod
    def overrides(cls):
        return {
            "mailbox": {"domains": BED_DOMAINS,
                        "maildir": os.path.join(cls.workdir, "vmail", "%d", "%n", "Maildir")},
            "limits": {"message_size": "200M"},
            "seal.policy": cls.policies,
            **cls.bed.mailseal_overrides(),
        }

    def inner_entity(self, original):
        return inner_entity(original)


class PolicyTableTest(SealingCase):
    def test_every_row_in_one_transaction(self):
        rows = [
            ("alice@signed.test", 250, "2.0.0", "sealed"),
            ("erin@signed.test", 250, "2.0.0", "plain"),        # secure absence
            ("alice@unsigned.test", 250, "2.0.0", "plain"),     # insecure zone
            ("frank@signed.test", 451, "4.7.1", None),          # no usable key, defer
            ("gina@signed.test", 550, "5.7.1", None),           # no usable key, reject
            ("alice@bogus.test", 451, "4.7.5", None),           # bogus
            ("alice@expired.test", 451, "4.7.5", None),         # bogus (expired RRSIGs)
            ("alice@dead.test", 451, "4.4.3", None),            # lookup timeout
        ]
        data = entity_message("policy table", b"Secret body.\r\n")
        self.assertPolicyTable(rows, data, self.assertSealed)
        # The latest delivery line per recipient: this transaction's.
        events = {e["rcpt"]: e for e in self.server.delivery_events()}
        self.assertEqual(events["<alice@signed.test>"]["decision"], "sealed")
        self.assertEqual(events["<alice@bogus.test>"]["keys_outcome"], "bogus")
        self.assertEqual(events["<alice@dead.test>"]["keys_outcome"], "failure")
        self.assertEqual(events["<erin@signed.test>"]["keys_outcome"], "secure-absent")

    def test_already_encrypted_is_stored_as_received_whatever_dns_says(self):
        pgp = entity_message(
            "pgp/mime", b"--b\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n"
            b"--b\r\nContent-Type: application/octet-stream\r\n\r\n" + ARMOUR + b"--b--\r\n",
            b'multipart/encrypted; protocol="application/pgp-encrypted"; boundary="b"')
        recipients = ["alice@signed.test", "alice@bogus.test", "alice@dead.test"]
        txn = self.deliver(recipients, pgp)
        for address, reply in zip(recipients, txn.finals):
            self.assertReply(reply, 250, "2.0.0", rcpt=address, context=address)
            headers = harness.split_trace_headers(self.stored(address), pgp)
            self.assertEqual(headers[3], b"Mailseal: passthrough; form=pgp-mime")


class DecryptorsTest(SealingCase):
    def decrypt_all(self, cms, ident, tools=("openssl", "gpgsm", "nss")):
        results = decryptors.decrypt_all(cms, ident, tools=tools)
        self.assertEqual(sorted(results), sorted(tools))
        return results

    def assertEveryDecryptorGivesBack(self, data):
        """Delivers `data` to alice; OpenSSL, gpgsm and NSS each open her copy to its entity."""
        txn = self.deliver(["alice@signed.test"], data)
        self.assertReply(txn.finals[0], 250, "2.0.0")
        cms = self.assertSealed(self.stored("alice@signed.test"), data)
        ident = identity(self.bed, "alice@signed.test")
        self.addCleanup(ident.close)
        want = self.inner_entity(data)
        for tool, plain in self.decrypt_all(cms, ident).items():
            self.assertEqual(plain, want, f"{tool} decrypts to the original entity")

    def test_three_decryptors_agree_byte_for_byte(self):
        body = ("Grüße\r\n.leading dot\r\n\r\ntrailing spaces   \r\nbare\nlf\r\n").encode()
        self.assertEveryDecryptorGivesBack(entity_message(
            "three decryptors", body, extra=b"Content-Transfer-Encoding: 8bit\r\n"))

    def test_three_decryptors_open_many_segments(self):
        # The ciphertext comes as one OCTET STRING per 64 KiB chunk, most of them longer than
        # the 4 KiB segments OpenSSL's own streaming writes.
        body = b"".join(b"line %06d of a long body\r\n" % i for i in range(12000))
        data = entity_message("long body", body, b"text/plain")
        self.assertGreater(len(data), 4 * 65536)
        self.assertEveryDecryptorGivesBack(data)

    def test_two_published_keys_one_cms(self):
        data = entity_message("rollover", b"Either key opens this.\r\n")
        txn = self.deliver(["dave@signed.test"], data)
        self.assertReply(txn.finals[0], 250, "2.0.0")
        cms = self.assertSealed(self.stored("dave@signed.test"), data, keys=2)
        infos = decryptors.recipient_infos(cms)
        self.assertEqual(len(infos), 2, infos)
        for name in ("dave@signed.test-1", "dave@signed.test-2"):
            ident = identity(self.bed, name)
            self.addCleanup(ident.close)
            self.assertEqual(sum(1 for i in infos if i.serial == ident.serial), 1, name)
            for tool, plain in self.decrypt_all(cms, ident).items():
                self.assertEqual(plain, self.inner_entity(data), f"{tool} with {name}")

    def test_bare_key_and_ec_key(self):
        data = entity_message("bare and ec", b"Body.\r\n")
        txn = self.deliver(["bob@signed.test", "hugo@signed.test"], data)
        for reply in txn.finals:
            self.assertReply(reply, 250, "2.0.0")
        bob = self.assertSealed(self.stored("bob@signed.test"), data)
        [info] = decryptors.recipient_infos(bob)
        self.assertEqual(info.version, 2, "bare key: RecipientInfo by subjectKeyIdentifier")
        ident = identity(self.bed, "bob@signed.test")
        self.addCleanup(ident.close)
        # gpgsm 2.2.40 cannot find its key by subjectKeyIdentifier (docs/sealing.md).
        for tool, plain in self.decrypt_all(bob, ident, ("openssl", "nss")).items():
            self.assertEqual(plain, self.inner_entity(data), tool)
        hugo = self.assertSealed(self.stored("hugo@signed.test"), data)
        [info] = decryptors.recipient_infos(hugo)
        self.assertEqual((info.kind, info.key_encryption),
                         ("kari", "dhSinglePass-stdDH-sha256kdf-scheme"))
        ident = identity(self.bed, "hugo@signed.test", "ec")
        self.addCleanup(ident.close)
        self.assertEqual(decryptors.decrypt_openssl(hugo, ident), self.inner_entity(data))

    def test_each_copy_names_only_its_recipient(self):
        data = entity_message("bcc", b"Nobody learns who else got this.\r\n")
        txn = self.deliver(["alice@signed.test", "dave@signed.test"], data)
        for reply in txn.finals:
            self.assertReply(reply, 250, "2.0.0")
        serials = {name: identity(self.bed, name).serial
                   for name in ("alice@signed.test", "dave@signed.test-1", "dave@signed.test-2")}
        alice = decryptors.recipient_infos(decryptors.extract_cms(self.stored("alice@signed.test")))
        dave = decryptors.recipient_infos(decryptors.extract_cms(self.stored("dave@signed.test")))
        self.assertEqual([i.serial for i in alice], [serials["alice@signed.test"]])
        self.assertEqual(sorted(i.serial for i in dave),
                         sorted([serials["dave@signed.test-1"], serials["dave@signed.test-2"]]))

    def test_signed_message_still_verifies(self):
        signer = self.bed.certs["erin@signed.test"]
        content = b"Content-Type: text/plain; charset=us-ascii\r\n\r\nSigned words.\r\n"
        signed = subprocess.run(
            ["openssl", "smime", "-sign", "-signer", signer.pem, "-inkey", signer.key,
             "-from", signer.address, "-to", "alice@signed.test", "-subject", "signed"],
            input=content, stdout=subprocess.PIPE, check=True).stdout
        signed = decryptors.canonicalize(signed)
        txn = self.deliver(["alice@signed.test"], signed)
        self.assertReply(txn.finals[0], 250, "2.0.0")
        cms = self.assertSealed(self.stored("alice@signed.test"), signed)
        ident = identity(self.bed, "alice@signed.test")
        self.addCleanup(ident.close)
        inner = decryptors.decrypt_openssl(cms, ident)
        self.assertEqual(inner, self.inner_entity(signed))
        verified = subprocess.run(
            ["openssl", "smime", "-verify", "-CAfile", self.bed.ca_cert, "-purpose", "any"],
            input=inner, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.assertEqual(verified.returncode, 0, verified.stderr.decode())
        self.assertIn(b"Signed words.", verified.stdout)


class KeptVerdictsTest(SealingCase):
    @classmethod
    def overrides(cls):
        return {**super().overrides(), "metrics": {"listen": "127.0.0.1:0"}}

    def evaluations(self):
        m = re.search(r"event=metrics-listening listener=tcp:127\.0\.0\.1:(\d+)",
                      self.server.log())
        self.assertIsNotNone(m, self.server.log())
        with socket.create_connection(("127.0.0.1", int(m.group(1))), timeout=10) as s:
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
            page = b""
            while chunk := s.recv(65536):
                page += chunk
        return {source: int(float(count)) for source, count in re.findall(
            r'^mailseal_key_evaluations_total\{source="(\w+)"\} (\S+)$', page.decode(), re.M)}

    def test_later_copies_use_the_kept_verdict_and_the_right_key(self):
        before = self.evaluations()
        # Recipient, the identity that opens its copy, how many keys the copy names. One
        # record each: the resolver rotates a larger RRset, and each order is an input of its
        # own (the reports number the records in answer order).
        users = [("alice@signed.test", "alice@signed.test", 1),
                 ("bob@signed.test", "bob@signed.test", 1)]
        idents = {}
        for _, name, _ in users:
            idents[name] = identity(self.bed, name)
            self.addCleanup(idents[name].close)
        for round_number in range(3):
            for address, name, keys in users:
                data = entity_message(f"kept {round_number}", f"For {address}.\r\n".encode())
                txn = self.deliver([address], data)
                self.assertReply(txn.finals[0], 250, "2.0.0")
                cms = self.assertSealed(self.stored(address), data, keys=keys)
                self.assertEqual(decryptors.decrypt_openssl(cms, idents[name]),
                                 self.inner_entity(data), address)
                other = next(i for n, i in idents.items() if n != name)
                with self.assertRaises(decryptors.ToolError, msg=f"{address}'s copy, other key"):
                    decryptors.decrypt_openssl(cms, other)
        after = self.evaluations()
        # Two users, two record types each: evaluated for the first message, kept for the
        # other two.
        self.assertEqual(after["evaluated"] - before.get("evaluated", 0), 4, after)
        self.assertEqual(after["cache"] - before.get("cache", 0), 8, after)


class DetectionTest(SealingCase):
    def test_encrypted_forms_are_stored_byte_identical(self):
        cases = [
            ("pgp-mime", entity_message(
                "pgp", b"--q\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n"
                b"--q\r\nContent-Type: application/octet-stream\r\n\r\n" + ARMOUR + b"--q--\r\n",
                b'multipart/encrypted; boundary=q; protocol="application/pgp-encrypted"')),
            ("smime-enveloped", entity_message(
                "smime", ENVELOPED,
                b'application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"',
                b"Content-Transfer-Encoding: base64\r\n")),
            ("smime-authenveloped", entity_message(
                "auth", AUTH_ENVELOPED,
                b"application/pkcs7-mime; smime-type=authenveloped-data",
                b"Content-Transfer-Encoding: base64\r\n")),
            ("pgp-inline", entity_message("inline", ARMOUR,
                                          b"text/plain; charset=us-ascii")),
        ]
        for form, data in cases:
            with self.subTest(form=form):
                txn = self.deliver(["alice@signed.test"], data)
                self.assertReply(txn.finals[0], 250, "2.0.0")
                headers = harness.split_trace_headers(self.stored("alice@signed.test"), data)
                self.assertEqual(headers[3], f"Mailseal: passthrough; form={form}".encode())

    def test_quoted_armour_and_signed_only_are_sealed(self):
        for data in (entity_message("quoted", b"He sent me this:\r\n" + ARMOUR),
                     entity_message("signed", b"--s\r\nx\r\n--s--\r\n",
                                    b'multipart/signed; protocol="application/pkcs7-signature"; '
                                    b"boundary=s")):
            txn = self.deliver(["alice@signed.test"], data)
            self.assertReply(txn.finals[0], 250, "2.0.0")
            self.assertSealed(self.stored("alice@signed.test"), data)


class CorpusTest(SealingCase):
    def test_real_world_messages_lose_no_line(self):
        if not corpus.available():
            self.skipTest(corpus.install_hint())
        ident = identity(self.bed, "alice@signed.test")
        self.addCleanup(ident.close)
        messages = corpus.messages()
        self.assertEqual(len(messages), corpus.EXPECTED_COUNT)
        with self.server.raw() as client:
            client.lhlo()
            for name, data in messages:
                txn = client.transaction(SENDER, ["alice@signed.test"], data)
                self.assertReply(txn.finals[0], 250, "2.0.0", context=name)
                stored = self.stored("alice@signed.test")
                plain = decryptors.decrypt_openssl(decryptors.extract_cms(stored), ident)
                self.assertNoLineLost(name, data, stored, plain)
            client.command("QUIT")

    def assertNoLineLost(self, name, original, stored, inner):
        """The decrypted entity is exactly the original's content fields, an empty line and
        its body; the outer section holds exactly its other fields: so every line of the
        original is kept, and the only one added is the inner empty line the original may
        lack (a header section ended by a line that is not a field)."""
        content, other, body = reference_split(original)
        self.assertEqual(inner, b"".join(content) + b"\r\n" + body, f"{name}: inner entity")
        fields, _ = split_header(stored)
        # The delivery's trace fields and Mailseal come first, the S/MIME fields last.
        outer = [f.replace(b"\n", b"\r\n") + b"\r\n" for f in fields[4:-len(SEALED_MIME_FIELDS)]]
        self.assertEqual(outer, other, f"{name}: outer fields")
        lost = collections.Counter(original.split(b"\r\n")) - collections.Counter(
            b"".join(other + [inner]).split(b"\r\n"))
        self.assertEqual(lost, collections.Counter(), f"{name}: lines lost")


class CanaryTest(SealingCase):
    def test_no_plaintext_anywhere_after_100_mb(self):
        canary = ("CANARY-" + secrets.token_hex(16)).encode()
        line = b"filler " * 10 + b"\r\n"
        chunk = line * (1024 * 1024 // len(line))
        body = canary + b"\r\n" + chunk * 50 + canary + b"\r\n" + chunk * 51 + canary + b"\r\n"
        data = entity_message("canary", body, b"text/plain")
        self.assertGreater(len(data), 100 * 1024 * 1024)
        # Half the message is in (and being sealed on the worker pool) when another session
        # delivers a message of its own: the event loop is not held up by the big one.
        stuffed = harness.dot_stuff(data)
        del data, body
        half = len(stuffed) // 2
        with self.server.raw() as big:
            big.lhlo()
            big.send("MAIL FROM:<{}>\r\nRCPT TO:<alice@signed.test>\r\nDATA\r\n".format(SENDER))
            self.assertEqual([r.code for r in big.replies(3)], [250, 250, 354])
            big.send(stuffed[:half])
            other = self.deliver(["erin@signed.test"], entity_message("meanwhile", b"Hi.\r\n"))
            self.assertReply(other.finals[0], 250, "2.0.0", context="second session")
            big.send(stuffed[half:])
            del stuffed
            self.assertReply(big.reply(), 250, "2.0.0", context="100 MB message")
            big.command("QUIT")
        self.stored("erin@signed.test")
        found = harness.files_containing([self.workdir, self.dir], canary)
        self.assertEqual(found, [], "the canary is in these files")
        stored = self.stored("alice@signed.test")
        self.assertIn(b"\nMailseal: sealed; format=smime; keys=1;", stored)


class SealToolTest(SealingCase):
    def run_seal(self, data, *args):
        proc = subprocess.run([harness.MAILSEAL_BIN, "seal", *args], input=data,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=RUN_TIMEOUT)
        return proc.returncode, proc.stdout, proc.stderr.decode()

    def test_seal_matches_delivery_and_reports_outcomes(self):
        data = entity_message("tool", b"Offline sealing.\r\n")
        ident = identity(self.bed, "alice@signed.test")
        self.addCleanup(ident.close)
        config = self.server.config_path
        status, out, err = self.run_seal(data, "--config", config, "--to", "alice@signed.test")
        self.assertEqual(status, 0, err)
        self.assertIn("sealed to 1 smime key(s)", err)
        self.assertEqual(decryptors.decrypt_openssl(decryptors.extract_cms(out, strict=True),
                                                    ident), self.inner_entity(data))
        # The same header section as a delivered copy, minus the delivery's trace fields.
        txn = self.deliver(["alice@signed.test"], data)
        self.assertReply(txn.finals[0], 250, "2.0.0")
        delivered, _ = split_header(self.stored("alice@signed.test"))
        tool, _ = split_header(out)
        self.assertEqual(tool, delivered[3:])
        # --cert: the given certificate, judged as a local-store one.
        cert = self.bed.certs["alice@signed.test"].pem
        status, out, err = self.run_seal(data, "--to", "alice@signed.test", "--cert", cert)
        self.assertEqual(status, 0, err)
        self.assertEqual(decryptors.decrypt_openssl(decryptors.extract_cms(out), ident),
                         self.inner_entity(data))
        for address, message, want in [
            ("alice@signed.test", entity_message("x", ARMOUR), 1),
            ("erin@signed.test", data, 2),
            ("alice@bogus.test", data, EX_TEMPFAIL),
        ]:
            status, out, err = self.run_seal(message, "--config", config, "--to", address)
            self.assertEqual(status, want, f"{address}: {err}")
            self.assertEqual(len(err.strip().splitlines()), 1, err)
            if want == 1:
                self.assertTrue(out.endswith(message.replace(b"\r\n", b"\n")), out[:300])
            if want == EX_TEMPFAIL:
                self.assertEqual(out, b"")


class PostfixDovecotTest(SealingCase):
    def test_sendmail_postfix_mailseal_dovecot(self):
        postfix = harness.Postfix(self.dir, f"lmtp:unix:{self.server.unix_path}",
                                  {"virtual_mailbox_domains": "signed.test"})
        self.addCleanup(postfix.stop)
        postfix.start()
        subject = "through postfix " + secrets.token_hex(4)
        data = (f"From: <{SENDER}>\r\nTo: <alice@signed.test>\r\nSubject: {subject}\r\n"
                "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
                "\r\nSealed on the way in: ünïcödé\r\n").encode()
        postfix.sendmail(SENDER, ["alice@signed.test"], data)
        entry = postfix.wait_status("alice@signed.test")
        self.assertEqual((entry["status"], entry["dsn"]), ("sent", "2.0.0"),
                         entry["line"] + "\n" + postfix.diagnostics())
        local_dir = os.path.join(self.workdir, "vmail", "signed.test", "alice", "Maildir")
        files = harness.maildir_files(local_dir, "new")
        self.assertEqual(len(files), 1, files)
        stored = harness.read_bytes(files[0])
        self.assertIn(b"\nMailseal: sealed; format=smime; keys=1; cipher=aes-256-cbc\n", stored)
        self.assertNotIn("Sealed on the way in".encode(), stored)
        ident = identity(self.bed, "alice@signed.test")
        self.addCleanup(ident.close)
        inner = decryptors.decrypt_openssl(decryptors.extract_cms(stored), ident)
        self.assertTrue(inner.endswith("Sealed on the way in: ünïcödé\r\n".encode()), inner)

        dovecot = self.start_dovecot(os.path.join(self.workdir, "vmail"))
        records = dovecot.fetch("alice@signed.test", ("guid", "hdr.subject", "text"))
        self.assertEqual(len(records), 1, records)
        self.assertEqual(records[0]["guid"], os.path.basename(files[0]).split(":")[0])
        self.assertIn(subject, records[0]["hdr.subject"])
        self.assertIn(b"application/pkcs7-mime", records[0]["text"])
        os.unlink(files[0])


if __name__ == "__main__":
    unittest.main()

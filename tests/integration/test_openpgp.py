# SPDX-License-Identifier: Apache-2.0
"""OpenPGP sealing end to end: OPENPGPKEY records under DNSSEC (dnsbed.py), PGP/MIME copies,
and four independent OpenPGP implementations that open them.

What each test is for:
- every OpenPGP case of the bed through `mailseal lookup`: the keys used and, for the refused
  ones, the reason (signing-only, expired, revoked subkey, user ID for another address, RDATA
  that does not parse), and that a bogus answer never yields the attacker's key;
- the policy table over LMTP in one transaction: a keyed user gets a PGP/MIME copy (250), users
  without a usable key follow on_no_key (plain 250, 451 4.7.1, 550 5.7.1), a bogus OPENPGPKEY
  answer 451 4.7.5 even though SMIMEA is securely absent, an insecure zone is plain; nothing of
  the body reaches a keyed user's file;
- the decryptor matrix: GnuPG, Sequoia (sqop), PGPainless and go-crypto (gosop) each decrypt
  RSA-3072, Cv25519 and two-key (rollover) copies to the original MIME entity byte for byte;
  the message is PKESK v3 + SEIPD v1 as RFC 3156 readers expect;
- a PGP/MIME-signed message still verifies after decryption;
- each copy of a multi-recipient transaction names only its own recipient's keys (Bcc);
- a user with keys of both formats gets one copy, in the preferred format (seal.formats);
- `mailseal seal --key`, `record --key` and the local store's .asc files;
- a 20 MB message to an OpenPGP user leaves its canary in no file under the test's root;
- through Postfix: sendmail -> Postfix -> mailseal -> Maildir read by doveadm, and
  Postfix -> mailseal -> Dovecot's LMTP server.
"""

import base64
import json
import os
import shutil
import secrets
import subprocess
import unittest

import dnsbed
import harness
import pgpkeys
from messages import SealedCopies, entity_message, inner_entity

SENDER = harness.SENDER
BED_DOMAINS = ["signed.test", "bogus.test", "expired.test", "unsigned.test", "dead.test"]
RUN_TIMEOUT = 120


class OpenPgpCase(harness.ClassDaemonCopies, SealedCopies, harness.TestCase):
    """One test bed and one daemon per class."""

    policies = [
        {"match": "sam@signed.test", "on_no_key": "defer"},
        {"match": "vic@signed.test", "on_no_key": "reject"},
    ]

    @classmethod
    def setUpClass(cls):
        cls.bed = dnsbed.start_for_class(cls)
        cls.pgp = cls.bed.pgp
        # As the package runs it: as a user of its own (here `mail`, whom Dovecot reads as).
        cls.server = harness.Mailseal(cls.workdir, cls.overrides(), user="mail")
        cls.addClassCleanup(cls.server.stop)
        cls.server.start()

    @classmethod
    def overrides(cls, **seal):
        return {
            "mailbox": {"domains": BED_DOMAINS,
                        "maildir": os.path.join(cls.workdir, "vmail", "%d", "%n", "Maildir")},
            "limits": {"message_size": "100M"},
            "seal": seal,
            "seal.policy": cls.policies,
            **cls.bed.mailseal_overrides(),
        }

    def key(self, name):
        return self.bed.pgp_keys[name]

    def decrypt_all(self, armour, key):
        results = pgpkeys.decrypt_all(self.pgp, key, armour)
        self.assertEqual(sorted(results), sorted(pgpkeys.DECRYPTORS))
        return results


class LookupTest(OpenPgpCase):
    def lookup(self, address, config=None):
        proc = subprocess.run([harness.MAILSEAL_BIN, "lookup", "--config",
                               config or self.server.config_path, "--json", address],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=RUN_TIMEOUT)
        result = json.loads(proc.stdout)
        result["exit"] = proc.returncode
        result["openpgp"] = next(l for l in result["lookups"] if l["format"] == "openpgp")
        return result

    def test_every_openpgp_case_with_its_reason(self):
        # (address, status, keys, a part of the first candidate's reason)
        cases = [
            ("paul@signed.test", "found", 1, "encrypts to subkey"),
            ("quinn@signed.test", "found", 1, "(ECDH Curve25519)"),
            ("rita@signed.test", "absent", 0, "no encryption-capable key"),
            ("sam@signed.test", "absent", 0, "key expired 2020-01-02"),
            ("tina@signed.test", "absent", 0, "revoked"),
            ("uma@signed.test", "found", 2, "encrypts to subkey"),
            ("vic@signed.test", "absent", 0,
             "no valid user ID names vic@signed.test (RFC 7929 §5); it names Victor "
             "<victor@other.test>"),
            ("walt@signed.test", "absent", 0, "does not parse as an OpenPGP public key"),
        ]
        for address, status, keys, why in cases:
            with self.subTest(address):
                result = self.lookup(address)
                context = json.dumps(result, indent=1)
                self.assertEqual(result["status"], status, context)
                self.assertEqual(len(result["keys"]), keys, context)
                part = result["openpgp"]
                self.assertEqual(part["dnssec"], "secure", context)
                self.assertEqual(part["record"], "OPENPGPKEY")
                self.assertEqual(part["owner"].rstrip("."),
                                 self.bed.case(address).pgp_owner.rstrip("."))
                self.assertIn(why, part["candidates"][0]["why"], context)
                if keys:
                    self.assertEqual(result["format"], "openpgp")
                    want = sorted(fpr.lower() for name in
                                  [k.name for k in self.bed.case(address).pgp_keys]
                                  for fpr, usage, revoked in self.key(name).subkeys
                                  if "e" in usage and not revoked)
                    self.assertEqual(sorted(k["fingerprint"] for k in result["keys"]), want)
                    self.assertTrue(all(k["format"] == "openpgp" for k in result["keys"]))

    def test_bogus_expired_insecure(self):
        bogus = self.lookup("olga@bogus.test")
        self.assertEqual((bogus["status"], bogus["exit"]), ("bogus", 3))
        self.assertEqual(bogus["openpgp"]["dnssec"], "bogus")
        self.assertEqual(bogus["openpgp"]["candidates"], [], "mallory's key is never judged")
        self.assertNotIn(self.key("mallory@bogus.test").fingerprint.lower(), json.dumps(bogus))
        smime = next(l for l in bogus["lookups"] if l["format"] == "smime")
        self.assertEqual(smime["dnssec"], "secure-absent",
                         "SMIMEA is securely absent; the recipient is bogus all the same")
        expired = self.lookup("olga@expired.test")
        self.assertEqual(expired["status"], "bogus")
        insecure = self.lookup("olga@unsigned.test")
        self.assertEqual((insecure["status"], insecure["openpgp"]["dnssec"]),
                         ("insecure", "insecure"))
        self.assertEqual(insecure["keys"], [], "an insecure record is never a key")

    def test_local_store_asc_for_an_insecure_zone(self):
        store = os.path.join(self.dir, "store")
        olga = self.key("olga@unsigned.test")
        harness.add_to_local_store(store, olga.name, olga.public_asc, "olga", ".asc")
        config = os.path.join(self.dir, "store.toml")
        with open(config, "w") as f:
            f.write(harness.to_toml({**self.overrides(), "keys": {"local_store": store},
                                     "listen": [{"tcp": "127.0.0.1:0"}]}))
        result = self.lookup("olga@unsigned.test", config)
        self.assertEqual((result["status"], result["format"]), ("found", "openpgp"),
                         json.dumps(result, indent=1))
        self.assertTrue(result["keys"][0]["source"].startswith("local " + store))

    def test_text_report_names_both_records(self):
        proc = subprocess.run([harness.MAILSEAL_BIN, "lookup", "--config",
                               self.server.config_path, "xena@signed.test"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=RUN_TIMEOUT)
        out = proc.stdout.decode()
        self.assertEqual(proc.returncode, 0, out)
        self.assertIn("\nSMIMEA\n", out)
        self.assertIn("\nOPENPGPKEY\n", out)
        self.assertIn(self.bed.case("xena@signed.test").pgp_owner.rstrip("."), out)
        self.assertIn("sealing would use 1 key (smime): found", out)


class PolicyTableTest(OpenPgpCase):
    def test_every_row_in_one_transaction(self):
        rows = [
            ("paul@signed.test", 250, "2.0.0", "sealed"),
            ("rita@signed.test", 250, "2.0.0", "plain"),      # signing-only key: no key
            ("walt@signed.test", 250, "2.0.0", "plain"),      # record does not parse
            ("olga@unsigned.test", 250, "2.0.0", "plain"),    # insecure zone
            ("sam@signed.test", 451, "4.7.1", None),          # expired key, defer
            ("vic@signed.test", 550, "5.7.1", None),          # wrong user ID, reject
            ("olga@bogus.test", 451, "4.7.5", None),          # bogus OPENPGPKEY
            ("olga@expired.test", 451, "4.7.5", None),        # expired RRSIGs
        ]
        data = entity_message("policy table", b"Secret body.\r\n", to="paul@signed.test")
        self.assertPolicyTable(rows, data, self.assertPgpSealed)
        events = {e["rcpt"]: e for e in self.server.delivery_events()}
        self.assertEqual(events["<paul@signed.test>"]["format"], "openpgp")
        self.assertEqual(events["<paul@signed.test>"]["cipher"], "aes-256")
        self.assertEqual(events["<olga@bogus.test>"]["keys_outcome"], "bogus")


class DecryptorsTest(OpenPgpCase):
    def test_four_decryptors_agree_byte_for_byte(self):
        body = ("Grüße\r\n.leading dot\r\n\r\ntrailing spaces   \r\nbare\nlf\r\n"
                "From the start of a line\r\n").encode()
        data = entity_message("four decryptors", body, extra=b"Content-Transfer-Encoding: 8bit\r\n",
                              to="quinn@signed.test")
        recipients = ["paul@signed.test", "quinn@signed.test", "uma@signed.test"]
        txn = self.deliver(recipients, data)
        for reply in txn.finals:
            self.assertReply(reply, 250, "2.0.0")
        want = inner_entity(data)
        matrix = {}
        for address in recipients:
            keys = self.bed.case(address).pgp_keys
            armour = self.assertPgpSealed(self.stored(address), data, keys=len(keys))
            packets = pgpkeys.packets(self.pgp, armour)
            pkesk = [p for p in packets if p.startswith(":pubkey enc packet: version 3,")]
            self.assertEqual(len(pkesk), len(keys), packets)
            # SEIPD v1 (tag 18, with the modification detection code), never the unprotected
            # tag 9 that gpg lists under the same name.
            listing = pgpkeys.packet_listing(self.pgp, armour)
            self.assertRegex(listing, r"tag=18 [^\n]*\n:encrypted data packet:\n\tlength: \d+\n"
                                      r"\tmdc_method: 2\n", listing)
            self.assertNotIn(" tag=9 ", listing)
            for key in keys:
                for tool, plain in self.decrypt_all(armour, key).items():
                    ok = plain == pgpkeys.as_tool_writes(tool, want)
                    matrix[(key.name, tool)] = ok
                    self.assertTrue(ok, f"{tool} with {key.name}: got {plain!r}")
                # gosop's output cannot show CRLFs; the session key it recovers can show it
                # decrypted what GnuPG did.
                self.assertEqual(pgpkeys.session_key("gosop", self.pgp, key, armour),
                                 pgpkeys.session_key("gpg", self.pgp, key, armour), key.name)
        print("\ndecryptor matrix (key x tool): "
              + ", ".join(f"{name}/{tool}={'ok' if ok else 'FAIL'}"
                          for (name, tool), ok in sorted(matrix.items())))

    def test_signed_message_still_verifies(self):
        # A PGP/MIME signed message (RFC 3156 §5): the signed part, canonical, and a detached
        # signature by the sender's key.
        signed_part = (b"Content-Type: text/plain; charset=us-ascii\r\n\r\n"
                       b"Signed, then sealed.\r\n-- \r\nSender\r\n")
        sender = self.key("sender@remote.example")
        signature = self.pgp.gpg("--armor", "--detach-sign", "--local-user", sender.fingerprint,
                                 stdin=signed_part).stdout
        boundary = b"sig-" + secrets.token_hex(6).encode()
        body = (b"--" + boundary + b"\r\n" + signed_part + b"\r\n--" + boundary + b"\r\n"
                b"Content-Type: application/pgp-signature; name=\"signature.asc\"\r\n\r\n"
                + signature.replace(b"\n", b"\r\n") + b"\r\n--" + boundary + b"--\r\n")
        data = entity_message("signed", body, b'multipart/signed; micalg=pgp-sha256; '
                              b'protocol="application/pgp-signature"; boundary="' + boundary
                              + b'"', to="quinn@signed.test")
        txn = self.deliver(["quinn@signed.test"], data)
        self.assertReply(txn.finals[0], 250, "2.0.0")
        armour = self.assertPgpSealed(self.stored("quinn@signed.test"), data)
        inner = pgpkeys.decrypt("sqop", self.pgp, self.key("quinn@signed.test"), armour)
        self.assertEqual(inner, inner_entity(data))
        # Take the signed part and the signature back out of the decrypted entity, and verify.
        _, inner_body = inner.split(b"\r\n\r\n", 1)
        pieces = inner_body.split(b"--" + boundary)
        got_part = pieces[1][2:-2]
        self.assertEqual(got_part, signed_part)
        sig_file = os.path.join(self.dir, "signature.asc")
        part_file = os.path.join(self.dir, "part")
        with open(sig_file, "wb") as f:
            f.write(pieces[2].split(b"\r\n\r\n", 1)[1])
        with open(part_file, "wb") as f:
            f.write(got_part)
        verified = self.pgp.gpg("--verify", sig_file, part_file, check=False)
        self.assertEqual(verified.returncode, 0, verified.stderr.decode())
        self.assertIn(b"Good signature", verified.stderr)

    def test_each_copy_names_only_its_recipient(self):
        data = entity_message("bcc", b"Nobody learns who else got this.\r\n")
        txn = self.deliver(["paul@signed.test", "quinn@signed.test"], data)
        for reply in txn.finals:
            self.assertReply(reply, 250, "2.0.0")
        for address in ("paul@signed.test", "quinn@signed.test"):
            armour = pgpkeys.armour_of(self.stored(address))
            self.assertEqual(pgpkeys.recipient_key_ids(self.pgp, armour),
                             self.key(address).encryption_key_ids(), address)


class FormatChoiceTest(OpenPgpCase):
    def test_preferred_format_wins(self):
        data = entity_message("both formats", b"One copy only.\r\n", to="xena@signed.test")
        txn = self.deliver(["xena@signed.test"], data)
        self.assertReply(txn.finals[0], 250, "2.0.0")
        copy = self.stored("xena@signed.test")
        self.assertIn(b"\nMailseal: sealed; format=smime; keys=1;", copy,
                      "S/MIME first by default")
        self.assertNotIn(b"multipart/encrypted", copy)

        openpgp_first = harness.Mailseal(os.path.join(self.dir, "openpgp-first"),
                                         self.overrides(formats=["openpgp", "smime"]))
        self.addCleanup(openpgp_first.stop)
        # The same Maildirs: the second daemon stores where stored() looks.
        openpgp_first.start()
        txn = self.deliver(["xena@signed.test", "alice@signed.test"], data,
                           server=openpgp_first)
        for reply in txn.finals:
            self.assertReply(reply, 250, "2.0.0")
        armour = self.assertPgpSealed(self.stored("xena@signed.test"), data)
        self.assertEqual(pgpkeys.decrypt("gpg", self.pgp, self.key("xena@signed.test"), armour),
                         inner_entity(data))
        self.assertIn(b"format=smime", self.stored("alice@signed.test"),
                      "a user with S/MIME keys only still gets S/MIME")

        smime_only = harness.Mailseal(os.path.join(self.dir, "smime-only"),
                                      self.overrides(formats=["smime"]))
        self.addCleanup(smime_only.stop)
        smime_only.start()
        txn = self.deliver(["quinn@signed.test", "olga@bogus.test"], data, server=smime_only)
        self.assertReply(txn.finals[0], 250, "2.0.0")
        self.assertIn(b"\nMailseal: plain; reason=no-key\n", self.stored("quinn@signed.test"),
                      "OPENPGPKEY is not looked up when the policy leaves OpenPGP out")
        self.assertReply(txn.finals[1], 250, "2.0.0",
                         context="a bogus OPENPGPKEY does not matter when it is not looked up")
        self.stored("olga@bogus.test")


class ToolsTest(OpenPgpCase):
    def run_mailseal(self, *args, data=None):
        proc = subprocess.run([harness.MAILSEAL_BIN, *args], input=data,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=RUN_TIMEOUT)
        return proc.returncode, proc.stdout, proc.stderr.decode()

    def test_seal_with_a_key_file(self):
        data = entity_message("seal --key", b"Sealed offline.\r\n", to="quinn@signed.test")
        quinn = self.key("quinn@signed.test")
        for path in (quinn.public_asc, quinn.public):
            with self.subTest(os.path.basename(path)):
                status, out, err = self.run_mailseal("seal", "--to", "quinn@signed.test",
                                                     "--key", path, data=data)
                self.assertEqual(status, 0, err)
                self.assertIn("sealed to 1 openpgp key(s), aes-256", err)
                armour = pgpkeys.armour_of(out)
                self.assertEqual(pgpkeys.decrypt("sqop", self.pgp, quinn, armour),
                                 inner_entity(data))
        # The key names another address: judged as the local store would, so not used.
        status, _, err = self.run_mailseal("seal", "--to", "vic@signed.test", "--key",
                                           self.key("vic@signed.test").public_asc, data=data)
        self.assertEqual(status, 2, err)
        self.assertIn("no valid user ID names vic@signed.test", err)
        # A key of a format the policy does not list would be ignored: a usage error, not a
        # message written as it came.
        smime_only = os.path.join(self.dir, "smime-only.toml")
        with open(self.server.config_path) as f, open(smime_only, "w") as out_file:
            out_file.write(f.read().replace("[seal]\n", '[seal]\nformats = ["smime"]\n', 1))
        status, out, err = self.run_mailseal("seal", "--config", smime_only, "--to",
                                             "quinn@signed.test", "--key", quinn.public_asc,
                                             data=data)
        self.assertEqual((status, out), (64, b""), err)
        self.assertIn("holds openpgp keys, but seal.formats for quinn@signed.test does not list "
                      "openpgp", err)
        # Through key discovery: what delivery makes.
        status, out, err = self.run_mailseal("seal", "--config", self.server.config_path,
                                             "--to", "paul@signed.test", data=data)
        self.assertEqual(status, 0, err)
        self.assertTrue(out.startswith(b"Mailseal: sealed; format=openpgp; keys=1; "
                                       b"cipher=aes-256\n"), out[:200])

    def test_record_publishes_what_gnupg_reads(self):
        quinn = self.key("quinn@signed.test")
        status, out, err = self.run_mailseal("record", "--key", quinn.public_asc,
                                             "quinn@signed.test")
        self.assertEqual(status, 0, err)
        lines = [l.split() for l in out.decode().splitlines() if not l.startswith(";")]
        self.assertEqual(len(lines), 2, out)
        presentation, generic = lines
        owner = self.bed.case("quinn@signed.test").pgp_owner
        self.assertEqual(presentation[:4], [owner, "3600", "IN", "OPENPGPKEY"])
        self.assertEqual(generic[:5], [owner, "3600", "IN", "TYPE61", "\\#"])
        rdata = base64.b64decode(presentation[4])
        self.assertEqual(rdata.hex().upper(), generic[6])
        self.assertEqual(int(generic[5]), len(rdata))
        # What the record holds is the key itself, as GnuPG reads it.
        listed = self.pgp.gpg("--show-keys", "--with-colons", stdin=rdata).stdout.decode()
        self.assertIn(f"fpr:::::::::{quinn.fingerprint}:", listed)
        self.assertIn("quinn@signed.test", listed)
        # The same key as the bed publishes (GnuPG's minimal export), packet for packet but
        # for the packet header format (librnp writes new-format headers).
        published = self.pgp.gpg("--show-keys", "--with-colons",
                                 stdin=self.bed.case("quinn@signed.test").records[0].wire)
        self.assertEqual(listed, published.stdout.decode())
        status, _, err = self.run_mailseal("record", "--key", quinn.public_asc, "--usage", "3",
                                           "quinn@signed.test")
        self.assertEqual(status, 64, err)
        self.assertIn("S/MIME", err)


class CanaryTest(OpenPgpCase):
    def test_no_plaintext_anywhere_after_20_mb(self):
        canary = ("CANARY-" + secrets.token_hex(16)).encode()
        line = b"filler " + canary + b" " + secrets.token_hex(24).encode() + b"\r\n"
        body = line * (20 * 1024 * 1024 // len(line))
        data = entity_message("canary", body, to="quinn@signed.test")
        txn = self.deliver(["quinn@signed.test"], data)
        self.assertReply(txn.finals[0], 250, "2.0.0")
        found = harness.files_containing([self.workdir, self.dir], canary)
        self.assertEqual(found, [], "the canary is in these files")
        armour = pgpkeys.armour_of(self.stored("quinn@signed.test"))
        self.assertEqual(pgpkeys.decrypt("sqop", self.pgp, self.key("quinn@signed.test"), armour),
                         inner_entity(data))


class PostfixDovecotTest(OpenPgpCase):
    def test_postfix_mailseal_maildir_doveadm(self):
        postfix = harness.Postfix(self.dir, f"lmtp:unix:{self.server.unix_path}",
                                  {"virtual_mailbox_domains": "signed.test"})
        self.addCleanup(postfix.stop)
        postfix.start()
        subject = "through postfix " + secrets.token_hex(4)
        data = (f"From: <{SENDER}>\r\nTo: <paul@signed.test>\r\nSubject: {subject}\r\n"
                "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
                "\r\nSealed on the way in: ünïcödé\r\n").encode()
        postfix.sendmail(SENDER, ["paul@signed.test"], data)
        entry = postfix.wait_status("paul@signed.test")
        self.assertEqual((entry["status"], entry["dsn"]), ("sent", "2.0.0"),
                         entry["line"] + "\n" + postfix.diagnostics())
        maildir = os.path.join(self.workdir, "vmail", "signed.test", "paul", "Maildir")
        [path] = harness.maildir_files(maildir, "new")
        stored = harness.read_bytes(path)
        self.assertIn(b"\nMailseal: sealed; format=openpgp; keys=1; cipher=aes-256\n", stored)
        self.assertNotIn("Sealed on the way in".encode(), stored)
        inner = pgpkeys.decrypt("pgpainless", self.pgp, self.key("paul@signed.test"),
                                pgpkeys.armour_of(stored))
        self.assertTrue(inner.endswith("Sealed on the way in: ünïcödé\r\n".encode()), inner)

        dovecot = self.start_dovecot(os.path.join(self.workdir, "vmail"))
        records = dovecot.fetch("paul@signed.test", ("guid", "hdr.subject", "text"))
        self.assertEqual(len(records), 1, records)
        self.assertEqual(records[0]["guid"], os.path.basename(path).split(":")[0])
        self.assertIn(subject, records[0]["hdr.subject"])
        self.assertIn(b"multipart/encrypted", records[0]["text"])
        os.unlink(path)

    def test_postfix_mailseal_dovecot_lmtp(self):
        # Dovecot's own mail root, for the user it stores as.
        vmail = os.path.join(self.dir, "dovecot-vmail")
        os.makedirs(vmail)
        shutil.chown(vmail, "mail", "mail")
        dovecot = self.start_dovecot(vmail)
        relay = harness.Mailseal(os.path.join(self.dir, "relay"), {
            **self.overrides(),
            "store": {"kind": "lmtp", "next_hop": dovecot.lmtp_socket},
        })
        self.addCleanup(relay.stop)
        relay.start()
        postfix = harness.Postfix(self.dir, f"lmtp:unix:{relay.unix_path}",
                                  {"virtual_mailbox_domains": "signed.test"})
        self.addCleanup(postfix.stop)
        postfix.start()
        data = entity_message("relayed", b"Through Dovecot's LMTP.\r\n", to="quinn@signed.test")
        postfix.sendmail(SENDER, ["quinn@signed.test"], data)
        entry = postfix.wait_status("quinn@signed.test")
        self.assertEqual((entry["status"], entry["dsn"]), ("sent", "2.0.0"),
                         entry["line"] + "\n" + postfix.diagnostics() + dovecot.diagnostics())
        records = dovecot.fetch("quinn@signed.test", ("guid", "hdr.subject", "text"))
        self.assertEqual(len(records), 1, records)
        stored = records[0]["text"]
        self.assertIn(b"Mailseal: sealed; format=openpgp; keys=1; cipher=aes-256", stored)
        self.assertNotIn(b"Through Dovecot's LMTP", stored)
        inner = pgpkeys.decrypt("gpg", self.pgp, self.key("quinn@signed.test"),
                                pgpkeys.armour_of(stored))
        self.assertTrue(inner.endswith(b"Through Dovecot's LMTP.\r\n"), inner)


if __name__ == "__main__":
    unittest.main()

# SPDX-License-Identifier: Apache-2.0
"""Real Thunderbird opens the S/MIME and PGP/MIME copies mailseal stores (thunderbird.py drives
it under Xvfb through Marionette).

What each test is for:
- copies sealed at delivery (LMTP, keys from the DNSSEC test bed) to a Cv25519 key and to an
  RSA-3072 key show their body in Thunderbird, which marks them "OpenPGP" with the
  encrypted-OK padlock: a UTF-8 text message and a multipart/alternative one with an
  attachment;
- with headers = "protect" (RFC 9788, plus the protected-headers="v1" marker Thunderbird acts
  on), the message list shows the outer "[...]" until the message is opened, and the header
  pane then shows the real Subject;
- S/MIME copies in the default form (RSA key in the profile's NSS database) show their body,
  a UTF-8 text, an attachment and a signed message inside whose signature still verifies,
  with the S/MIME padlock; an AES-GCM copy shows a blank body with no indicator, and an
  S/MIME copy under headers = "protect" keeps the outer "[...]" Subject (what the docs and
  check-config's warnings say).
"""

import datetime
import email.utils
import os
import secrets
import shutil
import subprocess
import unittest

import dnsbed
import harness
import thunderbird
from messages import entity_message

SENDER = harness.SENDER


@unittest.skipUnless(shutil.which("thunderbird") and shutil.which("Xvfb"),
                     "thunderbird and xvfb are not installed")
class ThunderbirdTest(harness.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.bed = dnsbed.start_for_class(cls)

    def start_mailseal(self, headers, **seal):
        name = "-".join([headers, *seal.values()])
        return harness.Mailseal(os.path.join(self.dir, name), {
            "mailbox": {"domains": ["signed.test"],
                        "maildir": os.path.join(self.dir, "vmail", "%d", "%n", "Maildir")},
            "seal": {"headers": headers, **seal},
            **self.bed.mailseal_overrides(),
        }).start()

    def deliver(self, server, recipient, data, form=b"openpgp"):
        with server.raw() as client:
            client.lhlo()
            txn = client.transaction(SENDER, [recipient], data)
            client.command("QUIT")
        self.assertReply(txn.finals[0], 250, "2.0.0", context=recipient)
        local, domain = recipient.split("@")
        [path] = harness.maildir_files(os.path.join(self.dir, "vmail", domain, local, "Maildir"))
        stored = harness.read_bytes(path)
        os.unlink(path)
        self.assertIn(b"\nMailseal: sealed; format=" + form + b";", stored)
        return stored

    def test_thunderbird_opens_sealed_copies(self):
        keep = self.start_mailseal("keep")
        self.addCleanup(keep.stop)
        protect = self.start_mailseal("protect")
        self.addCleanup(protect.stop)
        text = entity_message("Grüße aus dem Tresor", "Klartext nur für Quinn: ünïcödé\r\n"
                              .encode(), extra=b"Content-Transfer-Encoding: 8bit\r\n",
                              to="quinn@signed.test")
        alternative = entity_message(
            "Quarterly figures",
            b"--alt\r\nContent-Type: multipart/alternative; boundary=\"inner\"\r\n\r\n"
            b"--inner\r\nContent-Type: text/plain\r\n\r\nFigures attached.\r\n"
            b"--inner\r\nContent-Type: text/html\r\n\r\n<p>Figures <b>attached</b>.</p>\r\n"
            b"--inner--\r\n--alt\r\nContent-Type: text/csv; name=\"figures.csv\"\r\n"
            b"Content-Disposition: attachment; filename=\"figures.csv\"\r\n\r\n"
            b"quarter,revenue\r\nQ3,42\r\n--alt--\r\n",
            b'multipart/mixed; boundary="alt"', to="paul@signed.test")
        hidden = entity_message("The real subject", b"Protected headers.\r\n",
                                to="quinn@signed.test")
        messages = [self.deliver(keep, "quinn@signed.test", text),
                    self.deliver(keep, "paul@signed.test", alternative),
                    self.deliver(protect, "quinn@signed.test", hidden)]

        quinn = self.bed.pgp_keys["quinn@signed.test"]
        paul = self.bed.pgp_keys["paul@signed.test"]
        tb = thunderbird.Thunderbird(self.dir, "quinn@signed.test", quinn.fingerprint[-16:])
        self.addCleanup(tb.stop)
        folder = tb.add_folder("Sealed", messages)
        tb.start()
        for key in (quinn, paul):
            secret = self.bed.pgp.gpg("--armor", "--export-secret-keys", key.fingerprint)
            tb.import_secret_key(secret.stdout.decode())

        # Before the protected copy is opened, the list shows the outer Subject only.
        self.assertEqual(tb.list_subject(folder, 2), "[...]")
        shown = [tb.read(folder, i) for i in range(len(messages))]
        tb.screenshot(os.path.join(self.dir, "thunderbird.png"))
        for i, view in enumerate(shown):
            with self.subTest(message=i):
                self.assertEqual(view["tech"], "OpenPGP", view)
                self.assertTrue(view["encrypted_ok"], view)
        self.assertIn("Klartext nur für Quinn: ünïcödé", shown[0]["body"])
        self.assertIn("Grüße aus dem Tresor", shown[0]["header_subject"])
        self.assertIn("Figures attached", shown[1]["body"])
        self.assertIn("figures.csv", shown[1]["attachments"])
        self.assertIn("Protected headers.", shown[2]["body"])
        self.assertIn("The real subject", shown[2]["header_subject"])
        self.assertNotIn("[...]", shown[2]["header_subject"])

    def signed_message(self, subject, text):
        """A message signed with S/MIME by the sender (a certificate from the bed's CA), dated
        now: Thunderbird judges a signature by the Date field too."""
        signer = dnsbed.CertFactory(os.path.join(self.dir, "signer")).make(
            "sender", SENDER, key_usage="digitalSignature")
        # The signer's CA is a fresh one of its own: Thunderbird is told to trust it below.
        signer_ca = os.path.join(self.dir, "signer", "ca.pem")
        body = os.path.join(self.dir, "signed-body.txt")
        with open(body, "wb") as f:
            f.write(b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + text)
        signed = subprocess.run(
            ["openssl", "cms", "-sign", "-in", body, "-signer", signer.pem, "-inkey", signer.key,
             "-certfile", signer_ca, "-from", SENDER, "-to", "alice@signed.test",
             "-subject", subject, "-binary"], capture_output=True, check=True).stdout
        date = email.utils.format_datetime(datetime.datetime.now(datetime.timezone.utc))
        head = f"Date: {date}\r\nMessage-ID: <{secrets.token_hex(8)}@remote.example>\r\n"
        return head.encode() + signed.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"), signer_ca

    def test_thunderbird_opens_smime_copies(self):
        # The default form (AES-256-CBC, RSA PKCS#1 v1.5, headers kept) opens, with a UTF-8
        # text, an attachment, and a signed message inside whose signature still verifies.
        # What Thunderbird does not open is recorded too, as the docs and check-config say:
        # AES-GCM shows a blank body with no indicator, and headers = "protect" keeps "[...]".
        keep = self.start_mailseal("keep")
        self.addCleanup(keep.stop)
        gcm = self.start_mailseal("keep", cipher="aes-256-gcm")
        self.addCleanup(gcm.stop)
        protect = self.start_mailseal("protect")
        self.addCleanup(protect.stop)
        alice = "alice@signed.test"
        text = entity_message("Grüße, versiegelt", "Nur für Alice: ünïcödé ✓\r\n".encode(),
                              extra=b"Content-Transfer-Encoding: 8bit\r\n", to=alice)
        attached = entity_message(
            "Report attached",
            b"--b\r\nContent-Type: text/plain\r\n\r\nThe report is attached.\r\n"
            b"--b\r\nContent-Type: application/pdf; name=\"report.pdf\"\r\n"
            b"Content-Disposition: attachment; filename=\"report.pdf\"\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQKJcTl8uXrCg==\r\n--b--\r\n",
            b'multipart/mixed; boundary="b"', to=alice)
        signed, signer_ca = self.signed_message("Signed, then sealed",
                                                b"This text carries a signature.\r\n")
        hidden = entity_message("The real subject", b"Under protected headers.\r\n", to=alice)
        blank = entity_message("Sealed with GCM", b"Invisible in Thunderbird.\r\n", to=alice)
        messages = [self.deliver(keep, alice, text, b"smime"),
                    self.deliver(keep, alice, attached, b"smime"),
                    self.deliver(keep, alice, signed, b"smime"),
                    self.deliver(protect, alice, hidden, b"smime"),
                    self.deliver(gcm, alice, blank, b"smime")]
        cert = self.bed.certs[alice]
        tb = thunderbird.Thunderbird(self.dir, alice)
        self.addCleanup(tb.stop)
        tb.import_pkcs12(cert.p12, dnsbed.P12_PASSWORD, ca=signer_ca)
        folder = tb.add_folder("Sealed", messages)
        tb.start()
        views = [tb.read(folder, i) for i in range(len(messages))]
        tb.screenshot(os.path.join(self.dir, "thunderbird-smime.png"))

        # The list is sorted by date (the signed message has a Date field): find each by body.
        def shown(marker):
            found = [v for v in views if marker in v["body"]]
            self.assertEqual(len(found), 1, f"{marker!r} in {views}")
            return found[0]

        text_view = shown("Nur für Alice: ünïcödé ✓")
        attached_view = shown("The report is attached.")
        signed_view = shown("This text carries a signature.")
        protected_view = shown("Under protected headers.")
        for view in (text_view, attached_view, signed_view, protected_view):
            with self.subTest(body=view["body"][:40]):
                self.assertEqual(view["tech"], "S/MIME", view)
                self.assertTrue(view["encrypted_ok"], view)
        self.assertIn("Grüße, versiegelt", text_view["header_subject"])
        self.assertIn("report.pdf", attached_view["attachments"])
        self.assertTrue(signed_view["signed_ok"], signed_view)
        self.assertIn("[...]", protected_view["header_subject"], protected_view)
        self.assertNotIn("The real subject", protected_view["header_subject"])
        self.assertEqual(protected_view["list_subject"], "[...]", protected_view)
        # The GCM copy: the one view left, with neither its text nor the padlock.
        [gcm_view] = [v for v in views if v not in (text_view, attached_view, signed_view,
                                                     protected_view)]
        self.assertNotIn("Invisible in Thunderbird.", gcm_view["body"])
        self.assertFalse(gcm_view["encrypted_ok"], gcm_view)

if __name__ == "__main__":
    unittest.main()

# SPDX-License-Identifier: Apache-2.0
"""Real Thunderbird opens the PGP/MIME copies mailseal stores (thunderbird.py drives it under
Xvfb through Marionette).

What each test is for:
- copies sealed at delivery (LMTP, keys from the DNSSEC test bed) to a Cv25519 key and to an
  RSA-3072 key show their body in Thunderbird, which marks them "OpenPGP" with the
  encrypted-OK padlock: a UTF-8 text message and a multipart/alternative one with an
  attachment;
- with headers = "protect" (RFC 9788, plus the protected-headers="v1" marker Thunderbird acts
  on), the message list shows the outer "[...]" until the message is opened, and the header
  pane then shows the real Subject.
"""

import os
import shutil
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

    def start_mailseal(self, headers):
        return harness.Mailseal(os.path.join(self.dir, headers), {
            "mailbox": {"domains": ["signed.test"],
                        "maildir": os.path.join(self.dir, "vmail", "%d", "%n", "Maildir")},
            "seal": {"headers": headers},
            **self.bed.mailseal_overrides(),
        }).start()

    def deliver(self, server, recipient, data):
        with server.raw() as client:
            client.lhlo()
            txn = client.transaction(SENDER, [recipient], data)
            client.command("QUIT")
        self.assertReply(txn.finals[0], 250, "2.0.0", context=recipient)
        local, domain = recipient.split("@")
        [path] = harness.maildir_files(os.path.join(self.dir, "vmail", domain, local, "Maildir"))
        stored = harness.read_bytes(path)
        os.unlink(path)
        self.assertIn(b"\nMailseal: sealed; format=openpgp;", stored)
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


if __name__ == "__main__":
    unittest.main()

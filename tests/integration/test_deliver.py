# SPDX-License-Identifier: Apache-2.0
"""`mailseal deliver`: LDA mode for Postfix's pipe(8) and mailbox_command, and scripts.

What each test is for:
- a plain delivery writes the same durable Maildir copy as the daemon, with a local Received:
  line (no "from" clause) and exit 0;
- a recipient with a certificate in the local store (an unsigned zone: insecure, so the store
  is used) gets a sealed copy that OpenSSL opens;
- each sysexits code Postfix reads: 67 unknown user, 75 temporary (a key lookup that fails),
  77 policy refuses a plaintext copy, 65 message too big, 64 bad arguments, 78 configuration;
  with several recipients, the one-line diagnostic names each one not delivered and a
  temporary failure wins;
- end to end through Postfix: pipe(8) runs `mailseal deliver` and Postfix logs status=sent;
- `mailseal test-message` stores a sealed test message the key holder opens, in the format of
  the holder's key (S/MIME or OpenPGP), and nothing for an address without a usable key.
"""

import os
import shutil
import subprocess
import unittest

import decryptors
import harness
import pgpkeys

EX_OK, EX_USAGE, EX_DATAERR, EX_NOUSER, EX_TEMPFAIL, EX_NOPERM, EX_CONFIG = 0, 64, 65, 67, 75, 77, 78
DOMAIN = harness.DOMAIN
RUN_TIMEOUT = 60


class DeliverTest(harness.TestCase):
    def setUp(self):
        super().setUp()
        if not harness.MAILSEAL_BIN:
            raise unittest.SkipTest("MAILSEAL_BIN is not set (run the tests through ctest)")
        self.vmail = os.path.join(self.dir, "vmail")
        self.store = os.path.join(self.dir, "certs")
        for user in ("alice", "bob", "carol", "quinn"):
            for sub in ("new", "cur", "tmp"):
                os.makedirs(os.path.join(self.vmail, DOMAIN, user, "Maildir", sub))
        self.alice = decryptors.Identity(f"bob@{DOMAIN}", directory=self.dir)
        self.addCleanup(self.alice.close)
        self.bob_pem = harness.add_to_local_store(self.store, f"bob@{DOMAIN}",
                                                  self.alice.cert_path)
        self.unbound = harness.insecure_unbound_conf(self.dir, [DOMAIN])
        self.dns = {"unbound_conf": self.unbound}

    def config(self, **sections):
        config = {
            "listen": [{"tcp": "127.0.0.1:0"}],
            "mailbox": {"domains": [DOMAIN], "on_missing": "refuse",
                        "maildir": os.path.join(self.vmail, "%d", "%n", "Maildir")},
            "limits": {"message_size": "64K"},
            "dns": self.dns,
            "keys": {"local_store": self.store},
            "seal.policy": [{"match": f"carol@{DOMAIN}", "on_no_key": "reject"}],
        }
        config.update(sections)
        path = os.path.join(self.dir, "mailseal.toml")
        with open(path, "w") as f:
            f.write(harness.to_toml(config))
        return path

    def deliver(self, data, *recipients, sender=harness.SENDER, config=None):
        args = [harness.MAILSEAL_BIN, "deliver", "-c", config or self.config(), "-f", sender]
        for r in recipients:
            args += ["-t", r]
        proc = subprocess.run(args, input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=RUN_TIMEOUT)
        return proc.returncode, proc.stderr.decode()

    def new_files(self, user):
        return harness.maildir_files(os.path.join(self.vmail, DOMAIN, user, "Maildir"))

    def test_plain_delivery_is_durable_and_traced(self):
        data = harness.message("lda", b"Body line.\r\n").replace(b"\r\n", b"\n")
        status, err = self.deliver(data, f"alice@{DOMAIN}")
        self.assertEqual((status, err), (EX_OK, ""))
        [path] = self.new_files("alice")
        stored = harness.read_bytes(path)
        headers = harness.split_trace_headers(stored, data)
        self.assertEqual(headers[0], f"Return-Path: <{harness.SENDER}>".encode())
        self.assertEqual(headers[1], f"Delivered-To: alice@{DOMAIN}".encode())
        self.assertRegex(headers[2], rb"^Received: by \S+ \(mailseal\) with local id deliver-")
        self.assertEqual(headers[3], b"Mailseal: plain; reason=no-key")
        s, w = harness.size_fields(path)
        self.assertEqual((s, w), (len(stored), harness.crlf_size(stored)))

    def test_local_store_key_seals(self):
        data = harness.message("sealed by the LDA", b"Secret.\r\n")
        status, err = self.deliver(data, f"bob@{DOMAIN}", sender="")
        self.assertEqual((status, err), (EX_OK, ""))
        [path] = self.new_files("bob")
        stored = harness.read_bytes(path)
        self.assertTrue(stored.startswith(b"Return-Path: <>\n"), stored[:80])
        self.assertIn(b"\nMailseal: sealed; format=smime; keys=1; cipher=aes-256-cbc\n", stored)
        self.assertNotIn(b"Secret.", stored)
        inner = decryptors.decrypt_openssl(decryptors.extract_cms(stored), self.alice)
        self.assertEqual(inner, b"\r\nSecret.\r\n")

    def test_openpgp_key_in_the_store_seals_pgp_mime(self):
        # quinn's OpenPGP key is the only key in his directory of the local store: deliver and
        # test-message both seal to it, as PGP/MIME that GnuPG opens with his secret key.
        factory = pgpkeys.PgpFactory(os.path.join(self.dir, "pgp"))
        quinn = factory.make(f"quinn@{DOMAIN}", f"Quinn <quinn@{DOMAIN}>")
        harness.add_to_local_store(self.store, f"quinn@{DOMAIN}", quinn.public_asc,
                                   extension=".asc")
        data = harness.message("sealed by the LDA", b"Secret.\r\n")
        status, err = self.deliver(data, f"quinn@{DOMAIN}")
        self.assertEqual((status, err), (EX_OK, ""))
        proc = subprocess.run([harness.MAILSEAL_BIN, "test-message", "-c", self.config(),
                               f"quinn@{DOMAIN}"], capture_output=True, timeout=RUN_TIMEOUT)
        self.assertEqual(proc.returncode, EX_OK, proc.stderr.decode())
        delivered, test_message = sorted(self.new_files("quinn"),
                                         key=lambda p: b"mailseal test message"
                                         in harness.read_bytes(p))
        stored = harness.read_bytes(delivered)
        self.assertIn(b"\nMailseal: sealed; format=openpgp; keys=1; cipher=aes-256\n", stored)
        self.assertNotIn(b"Secret.", stored)
        inner = pgpkeys.decrypt("gpg", factory, quinn, pgpkeys.armour_of(stored))
        self.assertEqual(inner, b"\r\nSecret.\r\n")
        stored = harness.read_bytes(test_message)
        self.assertIn(b"\nSubject: mailseal test message\n", stored)
        self.assertIn(b"\nContent-Type: multipart/encrypted;", stored)
        inner = pgpkeys.decrypt("gpg", factory, quinn, pgpkeys.armour_of(stored))
        self.assertIn(b"If you can read this, your mail client opens", inner)

    def test_exit_statuses(self):
        data = harness.message("codes")
        cases = [
            ("unknown user", [f"nobody@{DOMAIN}"], None, EX_NOUSER, "550 5.1.1"),
            ("policy reject", [f"carol@{DOMAIN}"], None, EX_NOPERM, "550 5.7.1"),
            ("too big", [f"alice@{DOMAIN}"], b"x" * (70 * 1024), EX_DATAERR, "552 5.3.4"),
            # A resolver with nothing behind it: the lookup fails, the MTA must retry.
            ("lookup failure", [f"alice@{DOMAIN}"], None, EX_TEMPFAIL, "451 4.4.3"),
            ("temporary wins", [f"nobody@{DOMAIN}", f"alice@{DOMAIN}"], None, EX_TEMPFAIL,
             "550 5.1.1"),
        ]
        for name, recipients, body, want, text in cases:
            with self.subTest(name):
                config = None
                if name in ("lookup failure", "temporary wins"):
                    config = self.config(dns={"forwarders": ["127.0.0.1@1"], "timeout": "2s"})
                status, err = self.deliver(body or data, *recipients, config=config)
                self.assertEqual(status, want, err)
                self.assertEqual(len(err.splitlines()), 1, err)
                self.assertIn(text, err)
        self.assertEqual(self.new_files("alice"), [], "nothing stored by a failed delivery")
        self.assertEqual(self.new_files("carol"), [])

    def test_test_message_is_sealed_or_nothing(self):
        config = self.config()
        proc = subprocess.run([harness.MAILSEAL_BIN, "test-message", "-c", config, f"bob@{DOMAIN}"],
                              capture_output=True, timeout=RUN_TIMEOUT)
        self.assertEqual(proc.returncode, EX_OK, proc.stderr.decode())
        self.assertIn(b"sealed test message delivered to <bob@", proc.stdout)
        [path] = self.new_files("bob")
        stored = harness.read_bytes(path)
        self.assertIn(b"\nSubject: mailseal test message\n", stored)
        self.assertIn(b"\nMailseal: sealed; format=smime; keys=1;", stored)
        inner = decryptors.decrypt_openssl(decryptors.extract_cms(stored), self.alice)
        self.assertIn(b"If you can read this, your mail client opens", inner)
        # No key: nothing is stored, not even under on_no_key = "plain".
        proc = subprocess.run([harness.MAILSEAL_BIN, "test-message", "-c", config,
                               f"alice@{DOMAIN}"], capture_output=True, timeout=RUN_TIMEOUT)
        self.assertEqual(proc.returncode, EX_NOPERM, proc.stderr.decode())
        self.assertIn(b"550 5.7.1", proc.stderr)
        self.assertEqual(self.new_files("alice"), [])

    def test_bad_arguments_and_configuration(self):
        status, _ = self.deliver(b"x\n", "not an address")
        self.assertEqual(status, EX_USAGE)
        bad = os.path.join(self.dir, "bad.toml")
        with open(bad, "w") as f:
            f.write("[mailbox]\nunknown = 1\n")
        status, err = self.deliver(b"x\n", f"alice@{DOMAIN}", config=bad)
        self.assertEqual(status, EX_CONFIG, err)

    def test_postfix_pipe(self):
        """master.cf: mailseal unix - n n - - pipe flags=q user=root argv=mailseal deliver
        -c CONFIG -f ${sender} -t ${recipient}, one recipient per delivery."""
        # null_sender= passes the null sender of a bounce as -f "" (not MAILER-DAEMON).
        pipe = ("mailseal unix - n n - - pipe flags=Xq null_sender= user=nobody:nogroup argv="
                f"{harness.MAILSEAL_BIN} deliver -c {self.config()} -f ${{sender}} "
                "-t ${recipient}")
        postfix = harness.Postfix(self.dir, "mailseal:",
                                  {"mailseal_destination_recipient_limit": "1"}, [pipe])
        self.addCleanup(postfix.stop)
        for user in ("alice", "bob"):
            shutil.chown(os.path.join(self.vmail, DOMAIN, user, "Maildir"), "nobody", "nogroup")
            for sub in ("new", "cur", "tmp"):
                shutil.chown(os.path.join(self.vmail, DOMAIN, user, "Maildir", sub), "nobody",
                             "nogroup")
        os.chmod(self.dir, 0o755)
        for d in (self.vmail, os.path.join(self.vmail, DOMAIN), self.store,
                  os.path.join(self.store, DOMAIN), os.path.join(self.store, DOMAIN, "bob")):
            os.chmod(d, 0o755)
        for f in (os.path.join(self.dir, "mailseal.toml"), self.unbound, self.bob_pem):
            os.chmod(f, 0o644)
        postfix.start()
        recipients = [f"alice@{DOMAIN}", f"bob@{DOMAIN}"]
        postfix.sendmail(harness.SENDER, recipients, harness.message("via pipe"))
        for r in recipients:
            entry = postfix.wait_status(r)
            self.assertEqual((entry["status"], entry["dsn"]), ("sent", "2.0.0"),
                             entry["line"] + "\n" + postfix.diagnostics())
        [bob] = self.new_files("bob")
        self.assertIn(b"\nMailseal: sealed; format=smime; keys=1;", harness.read_bytes(bob))
        # A bounce: the null sender.
        postfix.sendmail("", [f"alice@{DOMAIN}"], harness.message("bounce"))
        harness.wait_until(lambda: len(self.new_files("alice")) == 2, 30,
                           "the null-sender message", diagnostics=postfix.diagnostics)
        stored = [harness.read_bytes(p) for p in self.new_files("alice")]
        self.assertEqual(sum(s.startswith(b"Return-Path: <>\n") for s in stored), 1)


if __name__ == "__main__":
    unittest.main()

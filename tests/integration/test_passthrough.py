# SPDX-License-Identifier: Apache-2.0
"""Already-encrypted mail: stored as received only when it really is ciphertext.

Every message goes over LMTP to two recipients with keys on the DNSSEC test bed (dnsbed.py):
alice@signed.test (S/MIME) and quinn@signed.test (OpenPGP). What each test is for:
- real ciphertext, made at test time by each real tool and wrapped the way its clients send it
  (K-9 Mail's quoted-printable version part, emailjs's base64 armour included),
  is stored byte-identical after the trace fields with `Mailseal: passthrough; form=...`:
  OpenSSL's own S/MIME output (EnvelopedData definite and `-stream` indefinite-length,
  AuthEnvelopedData with AES-GCM, two recipients, an EC recipient), gpgsm's and NSS cmsutil's
  CMS as Thunderbird and KMail label it (application/pkcs7-mime, name=smime.p7m, base64 in
  76-column lines), and GnuPG, Sequoia (sqop), PGPainless and go-crypto (gosop) as PGP/MIME in
  Thunderbird's layout (preamble, Content-Description fields, encrypted.asc inline) and as
  inline PGP in text/plain;
- mail that only claims to be encrypted is sealed for both recipients (an S/MIME and a PGP/MIME
  copy, each decrypting to the original entity) and its secret is in no file under the test's
  root, in clear or in base64: a label over plaintext in three forms (a PGP/MIME label over a
  text/plain part; over an armoured literal-data-only message; an enveloped-data label over 13
  bytes of an EnvelopedData header followed by plaintext), and forged variants of real
  ciphertext (bytes after the CMS, a third part, text after the armour, a secret preamble or
  epilogue, SignedData under an enveloped-data label, a literal-data packet after the encrypted
  one);
- `seal.passthrough = "never"`, for everyone or in one [[seal.policy]] rule, seals real
  ciphertext too (a second layer).
"""

import base64
import os
import quopri
import secrets
import shutil
import subprocess
import tempfile
import unittest

import decryptors
import harness
import pgpkeys
from messages import (crlf, entity_message, inner_entity, pgp_inline_message, pgp_mime_message,
                      smime_message)
from test_sealing import SealingCase, identity

SENDER = harness.SENDER
ALICE = "alice@signed.test"    # an S/MIME key (SMIMEA)
QUINN = "quinn@signed.test"    # an OpenPGP key (OPENPGPKEY, Cv25519)
PAUL = "paul@signed.test"      # an OpenPGP key (RSA-3072)
KEYED = [ALICE, QUINN]
TOOL_TIMEOUT = 60
# The first 13 bytes of an indefinite-length ContentInfo naming EnvelopedData: what a prefix
# check takes for ciphertext.
ENVELOPED_DATA_PREFIX = bytes.fromhex("3080 0609 2a86 4886 f70d 0107 03")


def run(args, stdin=b"", env=None):
    """stdout of a tool that must succeed."""
    proc = subprocess.run([str(a) for a in args], input=stdin, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=TOOL_TIMEOUT, env=env)
    if proc.returncode != 0:
        raise harness.HarnessError(f"{' '.join(map(str, args))} exited {proc.returncode}:\n"
                                   + proc.stderr.decode("utf-8", "replace"))
    return proc.stdout


def need(command):
    if shutil.which(command) is None:
        raise unittest.SkipTest(f"{command} is not installed")


def entity(text):
    """A small MIME entity, what a client encrypts for PGP/MIME or S/MIME."""
    return b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + text + b"\r\n"


def base64_forms(secret):
    """`secret` itself and the base64 characters that stand for it whatever its offset in a
    base64 stream (three alignments; the characters it shares with its neighbours dropped)."""
    forms = [secret]
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + secret)
        first = -(-8 * shift // 6)                 # the first character of secret bits only
        last = 8 * (shift + len(secret)) // 6      # after the last one
        forms.append(encoded[first:last])
    return forms


class PassthroughCase(SealingCase):
    """The bed, one daemon, and the tools' throwaway key stores (under /tmp, not the test root
    that is searched for secrets)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tools_dir = tempfile.mkdtemp(prefix="mailseal-pt-", dir="/tmp")
        cls.addClassCleanup(shutil.rmtree, cls.tools_dir, True)
        cls.alice = identity(cls.bed, ALICE)
        cls.addClassCleanup(cls.alice.close)

    # Making ciphertext

    def openssl_smime(self, plaintext, *options, command="smime", certs=(ALICE,)):
        """A whole message as `openssl smime|cms -encrypt` writes it (its own header fields,
        base64 in 64-column lines), with CRLF line ends."""
        pems = [self.bed.certs[name].pem for name in certs]
        return crlf(run(["openssl", command, "-encrypt", *options, "-from", SENDER, "-to", ALICE,
                         "-subject", f"openssl {command} {' '.join(options)}", *pems],
                        plaintext))

    def gpgsm_encrypt(self, plaintext, name=ALICE):
        """DER (BER) from gpgsm --encrypt in a throwaway home that trusts the bed's CA."""
        cert = self.bed.certs[name]
        home = tempfile.mkdtemp(prefix="gpgsm-", dir=self.tools_dir)
        os.chmod(home, 0o700)
        gpgsm = ["gpgsm", "--homedir", home, "--batch", "--no-tty", "--disable-dirmngr",
                 "--disable-crl-checks", "--disable-policy-checks"]
        try:
            with open(os.path.join(home, "gpg-agent.conf"), "w") as f:
                f.write("disable-scdaemon\n")
            fingerprint = run(["openssl", "x509", "-in", self.bed.ca_cert, "-noout",
                               "-fingerprint", "-sha1"]).decode().strip().split("=", 1)[1]
            with open(os.path.join(home, "trustlist.txt"), "w") as f:
                f.write(f"{fingerprint} S relax\n")
            run([*gpgsm, "--import", self.bed.ca_cert, cert.pem])
            return run([*gpgsm, "--recipient", cert.address, "--encrypt"], plaintext)
        finally:
            subprocess.run(["gpgconf", "--homedir", home, "--kill", "all"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=TOOL_TIMEOUT, check=False)
            shutil.rmtree(home, ignore_errors=True)

    def nss_encrypt(self, plaintext, name=ALICE):
        """DER (BER) from NSS `cmsutil -E` with a throwaway database holding the certificate."""
        cert = self.bed.certs[name]
        work = tempfile.mkdtemp(prefix="nss-", dir=self.tools_dir)
        try:
            db = f"sql:{work}"
            run(["certutil", "-N", "-d", db, "--empty-password"])
            run(["certutil", "-A", "-d", db, "-n", "ca", "-t", "C,C,C", "-i", self.bed.ca_cert])
            run(["certutil", "-A", "-d", db, "-n", cert.address, "-t", ",,", "-i", cert.pem])
            return run(["cmsutil", "-E", "-d", db, "-r", cert.address], plaintext)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def gpg(self, *args, stdin=b""):
        return self.bed.pgp.gpg("--trust-model", "always", *args, stdin=stdin).stdout

    def gpg_encrypt(self, plaintext, *names, armor=True):
        recipients = [a for n in names for a in ("-r", self.bed.pgp_keys[n].fingerprint)]
        return self.gpg(*(["--armor"] if armor else []), *recipients, "--encrypt",
                        stdin=plaintext)

    def sop_encrypt(self, tool, plaintext, name=QUINN):
        """Armoured ciphertext from a Stateless OpenPGP tool (sqop, pgpainless, gosop)."""
        need(pgpkeys.SOP_TOOLS[tool][0])
        return run([*pgpkeys.SOP_TOOLS[tool], "encrypt", self.bed.pgp_keys[name].public_asc],
                   plaintext)

    def sign_cms(self, plaintext):
        """SignedData (opaque, the plaintext inside) by openssl cms -sign."""
        signer = self.bed.certs["erin@signed.test"]
        return run(["openssl", "cms", "-sign", "-binary", "-nodetach", "-outform", "DER",
                    "-signer", signer.pem, "-inkey", signer.key], plaintext)

    # Delivering

    def copies(self, data):
        """Delivers data to KEYED in one transaction; {address: (final reply, stored copy)}."""
        txn = self.deliver(KEYED, data)
        self.assertEqual(len(txn.finals), len(KEYED), repr(txn))
        return {address: (reply, self.stored(address))
                for address, reply in zip(KEYED, txn.finals)}

    def assertPassedThrough(self, data, form):
        """Each keyed recipient's copy is `data` as received, after the three trace fields and
        `Mailseal: passthrough; form=<form>`."""
        for address, (reply, stored) in self.copies(data).items():
            self.assertReply(reply, 250, "2.0.0", rcpt=address, context=address)
            headers = harness.split_trace_headers(stored, data)
            self.assertEqual(headers[1], f"Delivered-To: {address}".encode())
            self.assertEqual(headers[3:], [f"Mailseal: passthrough; form={form}".encode()],
                             f"{address}: trace fields {headers!r}")

    def assertSealedForBoth(self, data, secret=None):
        """Each keyed recipient got a sealed copy in their format that decrypts to the message's
        entity; `secret`, if given, is in no file under the test's root (in clear or base64)."""
        txn = self.deliver(KEYED, data)
        leaked = []
        if secret is not None:
            leaked = harness.files_containing([self.workdir, self.dir], base64_forms(secret),
                                              unfold=True)
        stored = {address: self.stored(address) for address in KEYED}
        for address, reply in zip(KEYED, txn.finals):
            self.assertReply(reply, 250, "2.0.0", rcpt=address, context=address)
        self.assertEqual(leaked, [], "the secret is in these files")
        cms = self.assertSealed(stored[ALICE], data)
        self.assertEqual(decryptors.decrypt_openssl(cms, self.alice), inner_entity(data))
        armour = self.assertPgpSealed(stored[QUINN], data)
        self.assertEqual(pgpkeys.decrypt("gpg", self.bed.pgp, self.bed.pgp_keys[QUINN], armour),
                         inner_entity(data))


class RealCiphertextTest(PassthroughCase):
    def test_openssl_smime(self):
        plain = entity(b"Sealed by OpenSSL.")
        cases = [
            ("enveloped", self.openssl_smime(plain, "-aes-256-cbc"), "smime-enveloped"),
            ("enveloped, -stream (indefinite lengths)",
             self.openssl_smime(plain, "-aes-256-cbc", "-stream"), "smime-enveloped"),
            ("authEnveloped, AES-256-GCM",
             self.openssl_smime(plain, "-aes-256-gcm", command="cms"), "smime-authenveloped"),
            ("two recipients",
             self.openssl_smime(plain, "-aes-256-cbc", certs=(ALICE, "dave@signed.test-1")),
             "smime-enveloped"),
            ("EC recipient (key agreement)",
             self.openssl_smime(plain, "-aes-256-cbc", command="cms",
                                certs=("hugo@signed.test",)), "smime-enveloped"),
        ]
        for name, data, form in cases:
            with self.subTest(name):
                self.assertPassedThrough(data, form)

    def test_gpgsm(self):
        cms = self.gpgsm_encrypt(entity(b"Sealed by gpgsm."))
        self.assertEqual(decryptors.cms_content_type(cms), decryptors.ENVELOPED_DATA_OID)
        self.assertPassedThrough(smime_message("gpgsm", cms), "smime-enveloped")

    def test_nss_cmsutil(self):
        cms = self.nss_encrypt(entity(b"Sealed by NSS."))
        self.assertEqual(decryptors.cms_content_type(cms), decryptors.ENVELOPED_DATA_OID)
        self.assertPassedThrough(smime_message("nss", cms), "smime-enveloped")

    def test_gnupg(self):
        plain = entity(b"Sealed by GnuPG.")
        binary = self.gpg_encrypt(plain, QUINN, armor=False)
        cases = [
            ("PGP/MIME, Cv25519", pgp_mime_message("gpg", self.gpg_encrypt(plain, QUINN)),
             "pgp-mime"),
            ("PGP/MIME, RSA and Cv25519",
             pgp_mime_message("gpg", self.gpg_encrypt(plain, PAUL, QUINN)), "pgp-mime"),
            ("PGP/MIME, symmetric only (SKESK)",
             pgp_mime_message("gpg", self.gpg("--armor", "--passphrase", "test-passphrase",
                                              "--symmetric", stdin=plain)), "pgp-mime"),
            ("PGP/MIME, binary in base64",
             pgp_mime_message("gpg", b"", part2_fields=(
                 b'Content-Disposition: inline; filename="encrypted.asc"\r\n'
                 b"Content-Transfer-Encoding: base64\r\n"),
                 part2_body=base64.encodebytes(binary).replace(b"\n", b"\r\n").rstrip()),
             "pgp-mime"),
            ("inline, RSA",
             pgp_inline_message("gpg", self.gpg_encrypt(b"Sealed by GnuPG.\r\n", PAUL)),
             "pgp-inline"),
            # K-9 Mail (Thunderbird for Android) writes the version part in quoted-printable.
            ("PGP/MIME, quoted-printable version part",
             pgp_mime_message("gpg", self.gpg_encrypt(plain, QUINN)).replace(
                 b"Content-Description: PGP/MIME version identification\r\n",
                 b"Content-Transfer-Encoding: quoted-printable\r\n"), "pgp-mime"),
            # emailjs (older Mailvelope) base64-encodes the armour itself.
            ("PGP/MIME, armour in base64",
             pgp_mime_message("gpg", b"", part2_fields=b"Content-Transfer-Encoding: base64\r\n",
                              part2_body=base64.encodebytes(crlf(self.gpg_encrypt(
                                  plain, QUINN))).replace(b"\n", b"\r\n").rstrip()),
             "pgp-mime"),
            ("inline, quoted-printable",
             entity_message("gpg", quopri.encodestring(crlf(self.gpg_encrypt(
                 b"Sealed by GnuPG.\r\n", PAUL))).replace(b"\n", b"\r\n").replace(
                     b"\r\r\n", b"\r\n"),
                 b"text/plain; charset=UTF-8",
                 b"Content-Transfer-Encoding: quoted-printable\r\n"), "pgp-inline"),
        ]
        for name, data, form in cases:
            with self.subTest(name):
                self.assertPassedThrough(data, form)

    def sop_cases(self, tool):
        mime = self.sop_encrypt(tool, entity(f"Sealed by {tool}.".encode()))
        inline = self.sop_encrypt(tool, f"Sealed by {tool}.\r\n".encode())
        for name, data, form in [("PGP/MIME", pgp_mime_message(tool, mime), "pgp-mime"),
                                 ("inline", pgp_inline_message(tool, inline), "pgp-inline")]:
            with self.subTest(name):
                self.assertPassedThrough(data, form)

    def test_sequoia_sqop(self):
        self.sop_cases("sqop")

    def test_pgpainless(self):
        self.sop_cases("pgpainless")

    def test_gosop(self):
        self.sop_cases("gosop")


class ClaimsTest(PassthroughCase):
    """Each message holds a fresh secret that must reach no file in clear."""

    def secret(self):
        return b"my password is hunter2 " + secrets.token_hex(8).encode()

    def test_only_a_claim_is_logged_as_unverified(self):
        def unverified():
            return self.server.log().count("event=encryption-unverified")

        before = unverified()
        self.assertSealedForBoth(entity_message("plain text", b"Nothing claimed here.\r\n",
                                                b"text/plain; charset=UTF-8"))
        self.assertEqual(unverified(), before, "plain text claims nothing")
        self.assertSealedForBoth(pgp_mime_message("label", b"", part2_type=b"text/plain",
                                                  part2_fields=b"", part2_body=b"Clear.\r\n"))
        self.assertEqual(unverified(), before + 1, "a PGP/MIME label over text")
        armour_start = entity_message("inline", b"-----BEGIN PGP MESSAGE-----\r\n\r\nnot "
                                      b"radix-64 at all\r\n", b"text/plain; charset=UTF-8")
        self.assertSealedForBoth(armour_start)
        self.assertEqual(unverified(), before + 2, "an armour's BEGIN line over text")

    def test_reproduction_1_pgp_mime_label_over_text(self):
        secret = self.secret()
        data = pgp_mime_message("repro 1", b"", part2_type=b"text/plain; charset=utf-8",
                                part2_fields=b"", part2_body=secret + b"\r\n")
        self.assertSealedForBoth(data, secret)

    def test_reproduction_2_pgp_mime_over_literal_data(self):
        for name, options in [("gpg --store -a -z 0: literal data only", ["-z", "0"]),
                              ("gpg --store -a: compressed literal data", [])]:
            with self.subTest(name):
                secret = self.secret()
                armour = self.gpg("--armor", *options, "--store", stdin=entity(secret))
                self.assertSealedForBoth(pgp_mime_message("repro 2", armour), secret)

    def test_reproduction_3_enveloped_data_prefix_then_plaintext(self):
        secret = self.secret()
        data = smime_message("repro 3", ENVELOPED_DATA_PREFIX + secret + b"\r\n")
        self.assertSealedForBoth(data, secret)

    def test_bytes_after_real_cms(self):
        secret = self.secret()
        cms = run(["openssl", "cms", "-encrypt", "-binary", "-outform", "DER", "-aes-256-cbc",
                   self.bed.certs[ALICE].pem], entity(b"The real part."))
        for name, cms in [("after DER", cms), ("after BER",
                                                self.nss_encrypt(entity(b"The real part.")))]:
            with self.subTest(name):
                self.assertSealedForBoth(smime_message("appended", cms + secret), secret)

    def test_third_part_after_real_pgp_mime(self):
        secret = self.secret()
        armour = self.gpg_encrypt(entity(b"The real part."), QUINN)
        data = pgp_mime_message("third part", armour, extra_parts=[
            b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + secret])
        self.assertSealedForBoth(data, secret)

    def test_text_after_the_armour(self):
        armour = crlf(self.gpg_encrypt(entity(b"The real part."), QUINN))
        secret = self.secret()
        with self.subTest("PGP/MIME part 2"):
            data = pgp_mime_message("after armour", b"",
                                    part2_body=armour + b"\r\n" + secret + b"\r\n")
            self.assertSealedForBoth(data, secret)
        secret = self.secret()
        with self.subTest("inline"):
            data = entity_message("after armour", armour + secret + b"\r\n",
                                  b"text/plain; charset=UTF-8")
            self.assertSealedForBoth(data, secret)

    def test_secret_in_preamble_or_epilogue(self):
        armour = self.gpg_encrypt(entity(b"The real part."), QUINN)
        secret = self.secret()
        with self.subTest("preamble"):
            self.assertSealedForBoth(pgp_mime_message("preamble", armour, preamble=secret),
                                     secret)
        secret = self.secret()
        with self.subTest("epilogue"):
            self.assertSealedForBoth(pgp_mime_message("epilogue", armour,
                                                      epilogue=secret + b"\r\n"), secret)

    def test_signed_data_under_enveloped_data_label(self):
        secret = self.secret()
        cms = self.sign_cms(entity(secret))
        self.assertEqual(decryptors.cms_content_type(cms), "1.2.840.113549.1.7.2")
        self.assertSealedForBoth(smime_message("signed, labelled enveloped", cms), secret)

    def test_literal_packet_after_the_encrypted_one(self):
        secret = self.secret()
        encrypted = self.gpg_encrypt(entity(b"The real part."), QUINN, armor=False)
        literal = self.gpg("-z", "0", "--store", stdin=entity(secret))
        forged = pgpkeys.armour(encrypted + literal)
        listing = pgpkeys.packets(self.bed.pgp, forged)
        self.assertEqual([line.split(" packet:")[0] for line in listing],
                         [":pubkey enc", ":encrypted data", ":literal data"], listing)
        with self.subTest("PGP/MIME"):
            self.assertSealedForBoth(pgp_mime_message("trailing packet", forged), secret)
        with self.subTest("inline"):
            self.assertSealedForBoth(pgp_inline_message("trailing packet", forged), secret)


class NeverTest(PassthroughCase):
    def start_daemon(self, name, seal=None, policies=None):
        """A second daemon storing into the same Maildirs, with `seal` settings and policies."""
        overrides = self.overrides()
        if seal:
            overrides["seal"] = seal
        if policies:
            overrides["seal.policy"] = self.policies + policies
        server = harness.Mailseal(os.path.join(self.dir, name), overrides)
        self.addCleanup(server.stop)
        return server.start()

    def real_messages(self):
        smime = self.openssl_smime(entity(b"Already sealed."), "-aes-256-cbc")
        pgp = pgp_mime_message("pgp", self.gpg_encrypt(entity(b"Already sealed."), QUINN))
        return [("S/MIME", smime), ("PGP/MIME", pgp)]

    def test_never_seals_real_ciphertext(self):
        self.server = self.start_daemon("never", seal={"passthrough": "never"})
        for name, data in self.real_messages():
            with self.subTest(name):
                self.assertSealedForBoth(data)

    def test_never_in_one_policy_rule(self):
        self.server = self.start_daemon("never-alice",
                                        policies=[{"match": ALICE, "passthrough": "never"}])
        for name, data in self.real_messages():
            with self.subTest(name):
                txn = self.deliver(KEYED, data)
                alice, quinn = self.stored(ALICE), self.stored(QUINN)
                for address, reply in zip(KEYED, txn.finals):
                    self.assertReply(reply, 250, "2.0.0", rcpt=address, context=address)
                self.assertSealed(alice, data)
                headers = harness.split_trace_headers(quinn, data)
                self.assertEqual(headers[3], f"Mailseal: passthrough; form="
                                 f"{'pgp-mime' if name == 'PGP/MIME' else 'smime-enveloped'}"
                                 .encode())


if __name__ == "__main__":
    unittest.main()

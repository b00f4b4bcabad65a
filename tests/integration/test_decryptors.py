# SPDX-License-Identifier: Apache-2.0
"""Proves that decryptors.py opens what the sealing contract describes, with each of its three
implementations, and that each refuses what it should.

The messages are made by `openssl cms -encrypt -binary -stream -outform DER` (BER with indefinite
lengths, like mailseal's) and wrapped here into the contract's outer format; mailseal itself is
not needed. What only OpenSSL opens on Debian 12 is asserted as such, so that a change in gpgsm
or NSS shows up here (see /work/shared/notes/clients.md).
"""

import base64
import subprocess
import unittest

from decryptors import (
    P12_PASSPHRASE,
    FormatError,
    Identity,
    ToolError,
    canonicalize,
    decrypt_all,
    decrypt_gpgsm,
    decrypt_nss,
    decrypt_openssl,
    describe,
    encrypt_openssl,
    extract_cms,
    recipient_infos,
    run_gpgsm,
    wrap_sealed,
)

# An original MIME entity as it may reach mailseal: LF line ends, 8-bit text, a line holding only
# a dot, trailing spaces, and a body that does not end in a line end.
ENTITY = (
    "Content-Type: text/plain; charset=utf-8\n"
    "Content-Transfer-Encoding: 8bit\n"
    "\n"
    "Grüße aus dem Testlabor.\n"
    ".\n"
    "trailing spaces   \n"
    "already CRLF\r\n"
    "\n"
    "no final line end"
).encode()

OUTER_FIELDS = [
    ("Return-Path", "<sender@remote.example>"),
    ("From", "sender@remote.example"),
    ("To", "alice@example.org"),
    ("Subject", "sealed"),
]


def sealed_message(cms, line_end=b"\n"):
    return wrap_sealed(cms, OUTER_FIELDS, line_end)


class DecryptorsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.alice = Identity("alice@example.org")
        # A second RSA key for the same address: key rollover, two SMIMEA records.
        cls.alice_next = Identity("alice@example.org")
        cls.bob_ec = Identity("bob@example.org", key_type="ec")
        cls.carol = Identity("carol@example.org")
        cls.plaintext = canonicalize(ENTITY)

    @classmethod
    def tearDownClass(cls):
        for identity in (cls.alice, cls.alice_next, cls.bob_ec, cls.carol):
            identity.close()

    def seal(self, identities, cipher="aes-256-cbc", keyid=False):
        """(sealed message with LF line ends, the CMS extracted from it again)."""
        cms = encrypt_openssl(self.plaintext, identities, cipher=cipher, keyid=keyid)
        sealed = sealed_message(cms)
        extracted = extract_cms(sealed, strict=True)
        self.assertEqual(extracted, cms, "extract_cms: got other bytes than were wrapped")
        return sealed, extracted

    def assert_opens(self, cms, identity, tools=("openssl", "gpgsm", "nss")):
        got = decrypt_all(cms, identity, tools)
        self.assertEqual(sorted(got), sorted(tools))
        for tool, plaintext in got.items():
            self.assertEqual(plaintext, self.plaintext,
                             f"{tool} with {identity}: got {plaintext!r}")

    def assert_refuses(self, decrypt, cms, identity):
        message = f"{decrypt.__name__} opened it with {identity}"
        with self.assertRaises(ToolError, msg=message) as caught:
            decrypt(cms, identity)
        self.assertTrue(caught.exception.stderr.strip(), "ToolError without the tool's stderr")

    # --- the building blocks ------------------------------------------------------------------

    def test_canonicalize(self):
        table = [
            {"name": "LF", "input": b"a\nb\n", "want": b"a\r\nb\r\n"},
            {"name": "CRLF kept", "input": b"a\r\nb\r\n", "want": b"a\r\nb\r\n"},
            {"name": "mixed", "input": b"a\r\nb\nc", "want": b"a\r\nb\r\nc"},
            {"name": "empty lines", "input": b"\n\n", "want": b"\r\n\r\n"},
            {"name": "bare CR kept", "input": b"a\rb\r", "want": b"a\rb\r"},
            {"name": "CR CR LF", "input": b"a\r\r\n", "want": b"a\r\r\n"},
            {"name": "LF CR", "input": b"a\n\rb", "want": b"a\r\n\rb"},
            {"name": "empty", "input": b"", "want": b""},
        ]
        for case in table:
            with self.subTest(case["name"]):
                got = canonicalize(case["input"])
                self.assertEqual(got, case["want"], f"got {got!r}, want {case['want']!r}")

    def test_identity_certificates(self):
        table = [
            {"name": "rsa", "identity": self.alice, "want": ["rsaEncryption", "Key Encipherment"]},
            {"name": "ec", "identity": self.bob_ec, "want": ["id-ecPublicKey", "prime256v1",
                                                             "Key Agreement"]},
        ]
        for case in table:
            with self.subTest(case["name"]):
                identity = case["identity"]
                text = subprocess.run(
                    ["openssl", "x509", "-in", identity.cert_path, "-noout", "-text"],
                    capture_output=True, check=True, text=True).stdout
                for want in case["want"] + [f"email:{identity.address}", "Subject Key Identifier",
                                            "E-mail Protection"]:
                    self.assertIn(want, text)
                self.assertEqual(len(identity.subject_key_identifier), 20)
                info = subprocess.run(
                    ["openssl", "pkcs12", "-info", "-noout", "-legacy", "-in", identity.pkcs12(),
                     "-passin", f"pass:{P12_PASSPHRASE}"],
                    capture_output=True, check=True, text=True).stderr
                self.assertIn("pbeWithSHA1And3-KeyTripleDES-CBC", info, "PKCS#12 is not legacy")
        self.assertNotEqual(self.alice.serial, self.alice_next.serial)

    def test_extract_cms_accepts(self):
        cms = encrypt_openssl(self.plaintext, [self.alice])
        gcm = encrypt_openssl(self.plaintext, [self.alice], cipher="aes-256-gcm")
        encoded = base64.b64encode(cms)
        short_lines = b"\n".join(encoded[i : i + 64] for i in range(0, len(encoded), 64)) + b"\n"
        head = (b"MIME-Version: 1.0\nContent-Transfer-Encoding: BASE64\nContent-Type: ")
        table = [
            {"name": "LF", "input": sealed_message(cms), "want": cms, "strict": True},
            {"name": "CRLF", "input": sealed_message(cms, b"\r\n"), "want": cms, "strict": True},
            {"name": "GCM", "input": sealed_message(gcm), "want": gcm, "strict": True},
            {"name": "smime-type any case, x-pkcs7-mime, 64-char lines",
             "input": head + b"application/x-pkcs7-mime;\n SMIME-Type=Enveloped-Data\n\n"
             + short_lines, "want": cms, "strict": False},
            {"name": "lowercase authenveloped-data (MimeKit)",
             "input": head + b"application/pkcs7-mime; smime-type=authenveloped-data\n\n"
             + base64.encodebytes(gcm), "want": gcm, "strict": False},
        ]
        for case in table:
            with self.subTest(case["name"]):
                got = extract_cms(case["input"], strict=case["strict"])
                self.assertEqual(got, case["want"], "got other CMS bytes than were wrapped")

    def test_extract_cms_rejects(self):
        cms = encrypt_openssl(self.plaintext, [self.alice])
        gcm = encrypt_openssl(self.plaintext, [self.alice], cipher="aes-256-gcm")
        good = sealed_message(cms)
        encoded = base64.b64encode(cms)
        body_64 = b"\n".join(encoded[i : i + 64] for i in range(0, len(encoded), 64)) + b"\n"
        body_77 = encoded[:77] + b"\n" + encoded[77:] + b"\n"
        header, body = good.split(b"\n\n", 1)
        table = [
            {"name": "no empty line", "input": header + b"\n", "strict": False,
             "want": "empty line"},
            {"name": "text/plain",
             "input": good.replace(b"application/pkcs7-mime", b"text/plain"),
             "strict": False, "want": "text/plain"},
            {"name": "signed-data",
             "input": good.replace(b"smime-type=enveloped-data", b"smime-type=signed-data"),
             "strict": False, "want": "signed-data"},
            {"name": "no smime-type",
             "input": good.replace(b"smime-type=enveloped-data; ", b""),
             "strict": False, "want": "smime-type"},
            {"name": "enveloped-data label on AuthEnvelopedData",
             "input": sealed_message(gcm).replace(b"authEnveloped-data", b"enveloped-data"),
             "strict": False, "want": "CMS content type"},
            {"name": "two Content-Type fields",
             "input": b"Content-Type: text/plain\n" + good, "strict": False, "want": "exactly one"},
            {"name": "quoted-printable",
             "input": good.replace(b"Encoding: base64", b"Encoding: quoted-printable"),
             "strict": False, "want": "Content-Transfer-Encoding"},
            {"name": "77-character line", "input": header + b"\n\n" + body_77, "strict": False,
             "want": "77 characters"},
            {"name": "not base64", "input": header + b"\n\n" + body.replace(b"A", b"*", 1),
             "strict": False, "want": "not base64"},
            {"name": "padding inside", "input": header + b"\n\nQQ==\n" + body, "strict": False,
             "want": "padding before the last line"},
            {"name": "truncated", "input": header + b"\n\n" + body[:-6] + b"\n", "strict": False,
             "want": "base64"},
            {"name": "strict: 64-character lines", "input": header + b"\n\n" + body_64,
             "strict": True, "want": "want 76"},
            {"name": "strict: mixed line ends", "input": header + b"\r\n\n" + body,
             "strict": True, "want": "line ends"},
            {"name": "strict: no final line end", "input": good.rstrip(b"\n"),
             "strict": True, "want": "line ends"},
            {"name": "strict: no MIME-Version",
             "input": good.replace(b"MIME-Version: 1.0\n", b""), "strict": True,
             "want": "MIME-Version"},
            {"name": "strict: inline",
             "input": good.replace(b"attachment;", b"inline;"), "strict": True,
             "want": "Content-Disposition"},
        ]
        for case in table:
            with self.subTest(case["name"]):
                with self.assertRaises(FormatError) as caught:
                    extract_cms(case["input"], strict=case["strict"])
                self.assertIn(case["want"], str(caught.exception))

    def test_decryptors_refuse_unencrypted_cms(self):
        data = subprocess.run(
            ["openssl", "cms", "-data_create", "-binary", "-outform", "DER"],
            input=self.plaintext, capture_output=True, check=True).stdout
        for decrypt in (decrypt_openssl, decrypt_gpgsm, decrypt_nss):
            with self.subTest(decrypt.__name__):
                with self.assertRaises(FormatError):
                    decrypt(data, self.alice)

    # --- what every client opens --------------------------------------------------------------

    def test_rsa_aes256cbc_opened_by_all_three(self):
        sealed, cms = self.seal([self.alice])
        self.assertNotIn(b"\n", self.plaintext.replace(b"\r\n", b""), "test input not canonical")
        self.assertEqual(describe(cms).content_type, "envelopedData")
        self.assertEqual(describe(cms).cipher, "aes-256-cbc")
        self.assert_opens(cms, self.alice)
        # The same CMS in a CRLF outer message is the same CMS.
        self.assertEqual(extract_cms(sealed.replace(b"\n", b"\r\n"), strict=True), cms)

    def test_two_rsa_recipients_opened_by_each_key(self):
        _, cms = self.seal([self.alice, self.alice_next])
        for identity in (self.alice, self.alice_next):
            with self.subTest(str(identity.serial)):
                self.assert_opens(cms, identity)
        # The quirk decrypt_gpgsm works around: for the key of the second RecipientInfo (in DER
        # order, which sorts the SET OF), gpgsm 2.2.40 first fails to find the first one's
        # certificate and exits 2, but writes the right plaintext.
        (second,) = [i for i in (self.alice, self.alice_next) if recipient_infos(cms)[1].names(i)]
        outcome = run_gpgsm(cms, second)
        self.assertEqual((outcome.returncode, outcome.output), (2, self.plaintext),
                         f"gpgsm said: {outcome.stderr}")
        self.assertIn("failed to find the certificate", outcome.stderr)
        # A key the message does not name opens it with none of the three.
        for decrypt in (decrypt_openssl, decrypt_gpgsm, decrypt_nss):
            with self.subTest(f"{decrypt.__name__} with an unnamed key"):
                self.assert_refuses(decrypt, cms, self.carol)

    def test_recipient_infos_of_two_recipients(self):
        table = [
            {"name": "issuer and serial", "keyid": False, "version": 0},
            {"name": "subjectKeyIdentifier", "keyid": True, "version": 2},
        ]
        for case in table:
            with self.subTest(case["name"]):
                _, cms = self.seal([self.alice, self.alice_next], keyid=case["keyid"])
                got = recipient_infos(cms)
                self.assertEqual(len(got), 2, f"got {got}")
                # RecipientInfos is a SET OF: its DER order is the encodings' order, not ours.
                for identity in (self.alice, self.alice_next):
                    named_by = [info for info in got if info.names(identity)]
                    self.assertEqual(len(named_by), 1, f"{identity} named by {named_by} in {got}")
                    (info,) = named_by
                    self.assertEqual((info.kind, info.version, info.key_encryption),
                                     ("ktri", case["version"], "rsaEncryption"))
                    self.assertFalse(info.names(self.carol), f"{info} names {self.carol}")
                    if case["keyid"]:
                        self.assertEqual(info.subject_key_identifier,
                                         identity.subject_key_identifier)
                        self.assertIsNone(info.serial)
                    else:
                        self.assertEqual((info.issuer, info.serial),
                                         ("CN=alice@example.org", identity.serial))
                        self.assertIsNone(info.subject_key_identifier)

    # --- what only OpenSSL opens on Debian 12 -------------------------------------------------

    def test_ec_recipient_openssl_only(self):
        _, cms = self.seal([self.bob_ec])
        (info,) = recipient_infos(cms)
        self.assertEqual(info.kind, "kari")
        self.assertTrue(info.names(self.bob_ec), f"{info} does not name {self.bob_ec}")
        self.assert_opens(cms, self.bob_ec, tools=("openssl",))
        # NSS 3.87 cmsutil: "improperly formatted DER" for any KeyAgreeRecipientInfo;
        # gpgsm 2.2.40: the PKCS#12 import of an EC key crashes.
        self.assert_refuses(decrypt_nss, cms, self.bob_ec)
        self.assert_refuses(decrypt_gpgsm, cms, self.bob_ec)

    def test_rsa_and_ec_recipients_break_nss(self):
        # One key-agreement RecipientInfo breaks the whole message for NSS, even for the RSA key.
        _, cms = self.seal([self.alice, self.bob_ec])
        self.assert_opens(cms, self.alice, tools=("openssl", "gpgsm"))
        self.assert_refuses(decrypt_nss, cms, self.alice)

    def test_aes256gcm_openssl_only(self):
        sealed, cms = self.seal([self.alice], cipher="aes-256-gcm")
        self.assertIn(b"smime-type=authEnveloped-data", sealed)
        envelope = describe(cms)
        self.assertEqual((envelope.content_type, envelope.cipher),
                         ("authEnvelopedData", "aes-256-gcm"))
        self.assert_opens(cms, self.alice, tools=("openssl",))
        # gpgsm 2.2.40 (libksba 1.6.3): "error getting IV: Buffer too short", it accepts only a
        # 12-byte ICV and OpenSSL writes 16; NSS 3.87 does not know the AuthEnvelopedData OID.
        self.assert_refuses(decrypt_gpgsm, cms, self.alice)
        self.assert_refuses(decrypt_nss, cms, self.alice)

    def test_subject_key_identifier_recipient_not_for_gpgsm(self):
        # RecipientInfos named by subjectKeyIdentifier (CMS_USE_KEYID, what mailseal uses for a
        # bare SMIMEA public key): OpenSSL and NSS open them, gpgsm 2.2.40 finds no secret key.
        _, cms = self.seal([self.alice], keyid=True)
        self.assert_opens(cms, self.alice, tools=("openssl", "nss"))
        self.assert_refuses(decrypt_gpgsm, cms, self.alice)


if __name__ == "__main__":
    unittest.main()

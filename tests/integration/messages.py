# SPDX-License-Identifier: Apache-2.0
"""Test messages and what a sealed copy of them must hold, for both formats, and how to open
the copies sealed for the DNS test bed's users; and already encrypted messages wrapped the way
real clients send them."""

import base64
import os
import re
import secrets
import threading

import decryptors
import harness
import pgpkeys

SENDER = harness.SENDER
# The MIME fields mailseal puts at the end of an S/MIME sealed copy's outer header section.
SEALED_MIME_FIELDS = [
    b"MIME-Version: 1.0",
    b'Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"',
    b'Content-Disposition: attachment; filename="smime.p7m"',
    b"Content-Transfer-Encoding: base64",
]


def entity_message(subject, body, content_type=b"text/plain; charset=utf-8", extra=b"",
                   to="alice@signed.test"):
    return (b"From: <" + SENDER.encode() + b">\r\nTo: <" + to.encode() + b">\r\nSubject: "
            + subject.encode() + b"\r\nMessage-ID: <" + secrets.token_hex(8).encode()
            + b"@remote.example>\r\nMIME-Version: 1.0\r\nContent-Type: " + content_type + b"\r\n"
            + extra + b"\r\n" + body)


def split_header(data):
    """(header lines with folded lines joined by LF, body) of a message with LF or CRLF ends."""
    text = data.replace(b"\r\n", b"\n")
    head, _, body = text.partition(b"\n\n")
    fields = []
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += b"\n" + line
        else:
            fields.append(line)
    return fields, body


def is_content_field(field):
    return field.lower().startswith((b"content-", b"mime-version:"))


def inner_entity(original):
    """The MIME entity a sealed copy of `original` holds (headers = "keep"): its content
    fields, an empty line, its body; CRLF-canonical."""
    fields, body = split_header(original)
    inner = [f for f in fields if is_content_field(f)]
    text = b"".join(f + b"\n" for f in inner) + b"\n" + body
    return decryptors.canonicalize(text)


def outer_fields(original):
    """The fields a sealed copy keeps outside (headers = "keep"): the non-content ones."""
    fields, _ = split_header(original)
    return [f for f in fields if not is_content_field(f)]


def pgp_mime_parts(stored):
    """(outer header fields, boundary, part 1 bytes, armoured message) of a PGP/MIME copy."""
    fields, body = split_header(stored)
    content_type = b"\n".join(f for f in fields if f.lower().startswith(b"content-type:"))
    match = re.search(rb'boundary="([^"]+)"', content_type)
    if match is None:
        raise AssertionError(f"no boundary in {content_type!r}")
    boundary = match.group(1)
    parts = body.split(b"--" + boundary)
    return fields, boundary, parts, pgpkeys.armour_of(stored)


class SealedCopies:
    """Assertions for a unittest.TestCase about copies mailseal sealed (headers = "keep")."""

    def assertSealed(self, stored, original, keys=1, cipher="aes-256-cbc"):
        """stored is an S/MIME sealed copy of `original`: trace fields, the Mailseal field, the
        original non-content fields, the S/MIME fields; returns the CMS (DER/BER bytes)."""
        fields, _ = split_header(stored)
        self.assertTrue(fields[0].startswith(b"Return-Path:"), fields[0])
        self.assertEqual(fields[3],
                         f"Mailseal: sealed; format=smime; keys={keys}; cipher={cipher}".encode())
        self.assertEqual(fields[-4:], SEALED_MIME_FIELDS)
        self.assertEqual(fields[4:-4], outer_fields(original),
                         "outer fields: the original non-content ones")
        return decryptors.extract_cms(stored, strict=True)

    def assertPgpSealed(self, stored, original, keys=1):
        """stored is a PGP/MIME copy of `original`; returns its armour."""
        fields, boundary, parts, armour = pgp_mime_parts(stored)
        self.assertTrue(fields[0].startswith(b"Return-Path:"), fields[0])
        self.assertEqual(fields[3], f"Mailseal: sealed; format=openpgp; keys={keys}; "
                                    "cipher=aes-256".encode())
        self.assertEqual(fields[4:-2], outer_fields(original), "the original non-content fields")
        self.assertEqual(fields[-2], b"MIME-Version: 1.0")
        self.assertEqual(fields[-1], b'Content-Type: multipart/encrypted; '
                                     b'protocol="application/pgp-encrypted";\n boundary="'
                         + boundary + b'"')
        # RFC 3156 §4: preamble, the version part, the encrypted part, the end.
        self.assertEqual(len(parts), 4, parts)
        self.assertIn(b"Content-Type: application/pgp-encrypted\n", parts[1])
        self.assertTrue(parts[1].endswith(b"\n\nVersion: 1\n\n"), parts[1])
        self.assertIn(b'Content-Type: application/octet-stream; name="encrypted.asc"\n', parts[2])
        self.assertEqual(parts[3], b"--\n")
        return armour


class BedKeys:
    """Opens the copies mailseal sealed for users of the DNS test bed (dnsbed.py), in the format
    their Mailseal field names: OpenSSL with the user's certificate and key for S/MIME (the
    first of the user's certificates: one opens a copy sealed to several), GnuPG for OpenPGP
    (the bed's GnuPG home holds every secret key it made). Safe to use from several threads;
    close() removes the identities' files."""

    def __init__(self, bed):
        self.bed = bed
        self._identities = {}
        self._lock = threading.Lock()

    def close(self):
        for identity in self._identities.values():
            identity.close()

    def identity(self, address):
        with self._lock:
            if address not in self._identities:
                cert = next(c for c in self.bed.certs.values() if c.address == address)
                self._identities[address] = decryptors.Identity.from_files(
                    address, cert.pem, cert.key, cert.key_type)
            return self._identities[address]

    def open(self, address, stored):
        """The MIME entity in `stored`, address's sealed copy (LF or CRLF line ends)."""
        fields, _ = split_header(stored)
        mailseal = [f for f in fields if f.startswith(b"Mailseal: sealed; ")]
        if len(mailseal) != 1:
            raise decryptors.FormatError(f"want one Mailseal: sealed field, got {mailseal}")
        if b"; format=smime;" in mailseal[0]:
            return decryptors.decrypt_openssl(decryptors.extract_cms(stored),
                                              self.identity(address))
        key = next(k for k in self.bed.pgp_keys.values() if f"<{address}>" in k.uid)
        return pgpkeys.decrypt("gpg", self.bed.pgp, key, pgpkeys.armour_of(stored))


# --- already encrypted mail, as clients write it ---------------------------------------------

# Real ciphertext made by real tools from throwaway keys (README.md there says which and how).
FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "seal", "fixtures",
                        "encrypted")


def fixture(name):
    """The bytes of one of FIXTURES' files, e.g. "gpg.asc" or "openssl-enveloped.der"."""
    return harness.read_bytes(os.path.join(FIXTURES, name))


# Thunderbird's preamble in front of a PGP/MIME message.
PGP_MIME_PREAMBLE = b"This is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)"


def crlf(data):
    """data with every line end CRLF (the tools write LF)."""
    return decryptors.canonicalize(data)


def base64_lines(data):
    """data in base64, 76-column lines ended by CRLF, as MIME clients write it."""
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


def thunderbird_boundary():
    return b"------------" + secrets.token_hex(12).encode()


def pgp_mime_content_type(boundary):
    """The multipart/encrypted Content-Type value as Thunderbird folds it."""
    return (b'multipart/encrypted;\r\n protocol="application/pgp-encrypted";\r\n boundary="'
            + boundary + b'"')


def pgp_mime_body(armour, boundary, preamble=PGP_MIME_PREAMBLE, part2_type=None,
                  part2_fields=None, part2_body=None, extra_parts=(), epilogue=b""):
    """A PGP/MIME body (RFC 3156 §4) as Thunderbird writes it: its preamble, the version part
    with its Content-Description, the armoured message in an application/octet-stream part named
    encrypted.asc, inline. The keywords change one piece, for messages that only look like
    this: part2_type replaces part 2's Content-Type value, part2_fields its other fields (CRLF
    lines), part2_body its body; each of extra_parts (fields, empty line, body) becomes one more
    part after part 2; epilogue goes after the close delimiter."""
    dash = b"--" + boundary
    if part2_type is None:
        part2_type = b'application/octet-stream; name="encrypted.asc"'
    if part2_fields is None:
        part2_fields = (b"Content-Description: OpenPGP encrypted message\r\n"
                        b'Content-Disposition: inline; filename="encrypted.asc"\r\n')
    if part2_body is None:
        part2_body = crlf(armour)
    return (preamble + b"\r\n" + dash + b"\r\n"
            + b"Content-Type: application/pgp-encrypted\r\n"
            + b"Content-Description: PGP/MIME version identification\r\n\r\n"
            + b"Version: 1\r\n\r\n" + dash + b"\r\n"
            + b"Content-Type: " + part2_type + b"\r\n" + part2_fields + b"\r\n"
            + part2_body + b"\r\n"
            + b"".join(dash + b"\r\n" + part + b"\r\n" for part in extra_parts)
            + dash + b"--\r\n" + epilogue)


def pgp_mime_message(subject, armour, to="alice@signed.test", **changes):
    """A whole PGP/MIME message around `armour` (see pgp_mime_body for `changes`)."""
    boundary = thunderbird_boundary()
    return entity_message(subject, pgp_mime_body(armour, boundary, **changes),
                          pgp_mime_content_type(boundary), to=to)


def pgp_inline_message(subject, armour, to="alice@signed.test"):
    """Inline PGP: the armoured message is the whole text/plain body."""
    return entity_message(subject, crlf(armour), b"text/plain; charset=UTF-8",
                          b"Content-Transfer-Encoding: 7bit\r\n", to=to)


def smime_message(subject, cms, smime_type=b"enveloped-data", to="alice@signed.test"):
    """An S/MIME message as Thunderbird (NSS) and KMail (gpgsm) send one: application/pkcs7-mime
    named smime.p7m, base64 in 76-column lines."""
    return entity_message(
        subject, base64_lines(cms),
        b'application/pkcs7-mime; name="smime.p7m"; smime-type=' + smime_type,
        b"Content-Transfer-Encoding: base64\r\n"
        b'Content-Disposition: attachment; filename="smime.p7m"\r\n'
        b"Content-Description: S/MIME Encrypted Message\r\n", to=to)


FIELD_START = re.compile(rb"[^\x00-\x20\x7f:]+[ \t]*:")


def reference_split(message):
    """(content fields, other fields, body) of a CRLF message, split the way docs/sealing.md
    says: fields up to the first empty line, or up to a line that is neither a field nor a
    continuation (which starts the body); Content-* and MIME-Version are content fields."""
    fields = []
    rest = message
    while rest:
        line, sep, after = rest.partition(b"\r\n")
        if not sep:
            break
        if line == b"":
            rest = after
            break
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line + b"\r\n"
        elif FIELD_START.match(line):
            fields.append(line + b"\r\n")
        else:
            break
        rest = after
    is_content = [f.lower().startswith((b"content-", b"mime-version")) for f in fields]
    content = [f for f, c in zip(fields, is_content) if c]
    other = [f for f, c in zip(fields, is_content) if not c]
    return content, other, rest

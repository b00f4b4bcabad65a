# SPDX-License-Identifier: Apache-2.0
"""Writes the seed corpora of the fuzz targets, tests/fuzz/corpus/<target>/, from the project's
own test material: the client side of the LMTP transcripts (tests/lmtp/transcripts) for the
session, their server side and the relay unit tests' replies for the reply parser, messages like
those of tests/seal and tests/integration for the MIME front, SMIMEA and OPENPGPKEY RDATA of
keys made here with openssl and gpg, as tests/integration/dnsbed.py and pgpkeys.py make them,
and the real encrypted objects of tests/seal/fixtures/encrypted for the encryption checks.

The keys are new each run, so a run rewrites the key seeds with other bytes of the same kinds.
Usage: python3 tests/fuzz/seeds.py (needs openssl and gpg).
"""

import base64
import glob
import os
import quopri
import re
import shutil
import struct
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
TRANSCRIPTS = os.path.join(HERE, "..", "lmtp", "transcripts")
CORPUS = os.path.join(HERE, "corpus")
ADDRESS = "alice@example.org"

# split_input.hpp: options, the counts of cut lengths and choices, then the payload.
WHOLE = bytes([0, 0])


def unescape(text):
    """The escapes of the transcript format (tests/lmtp/transcripts/README.md)."""
    out = bytearray()
    i = 0
    raw = text.encode()
    while i < len(raw):
        c = raw[i:i + 1]
        if c != b"\\" or i + 1 == len(raw):
            out += c
            i += 1
            continue
        e = raw[i + 1:i + 2]
        if e == b"x":
            out.append(int(raw[i + 2:i + 4], 16))
            i += 4
            continue
        out += {b"r": b"\r", b"n": b"\n", b"t": b"\t"}.get(e, e)
        i += 2
    return bytes(out)


def read_transcript(path):
    """(client bytes, server reply lines) of one transcript."""
    client, server = b"", b""
    with open(path, encoding="utf-8") as f:
        for line in f.read().splitlines():
            if line.startswith("C: ") or line == "C:":
                client += unescape(line[3:]) + b"\r\n"
            elif line.startswith("R: "):
                client += unescape(line[3:])
            elif line.startswith("S: "):
                server += line[3:].encode() + b"\r\n"
    return client, server


def write(target, name, data):
    directory = os.path.join(CORPUS, target)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, name), "wb") as f:
        f.write(data)


def reset(target):
    shutil.rmtree(os.path.join(CORPUS, target), ignore_errors=True)


def run(args, cwd, stdin=None):
    return subprocess.run(args, cwd=cwd, input=stdin, check=True, capture_output=True).stdout


# --- LMTP session and reply parser -----------------------------------------------------------


# A few runs the transcripts do not show: their bytes fed one at a time, every verification
# and delivery answered late, the small limits (fuzz_lmtp_session.cpp has the bits).
LMTP_VARIANTS = {
    "postfix_pipelined": [("bytewise", bytes([0, 0x01, 0])),
                          ("late_answers", bytes([0x10, 0x10, 0x06]))],
    "long_data_line": [("small_limits", bytes([0x0f, 0]))],
    "dot_unstuffing": [("cut_3", bytes([0, 0x01, 2]))],
}

# Transcripts whose server side has replies the others lack (multi-line, per recipient, 4xx and
# 5xx, 421): mailseal's own replies, for a next hop that is another mailseal.
REPLY_TRANSCRIPTS = {"postfix_pipelined", "sequence_and_syntax", "delivery_replies",
                     "too_many_recipients", "oversize_message", "shutdown_during_data",
                     "smtputf8", "rcpt_to"}

# Replies of real next hops, as tests/relay/test_reply_parser.cpp has them.
REPLIES = {
    "dovecot_quota": b"452 4.2.2 <bob@example.org> Quota exceeded (mailbox for user is full)\r\n",
    "dovecot_session": b"220 mail.example.org Dovecot ready.\r\n"
                       b"250-mail.example.org\r\n250-8BITMIME\r\n250-CHUNKING\r\n"
                       b"250-ENHANCEDSTATUSCODES\r\n250-PIPELINING\r\n250 STARTTLS\r\n"
                       b"250 2.1.0 OK\r\n250 2.1.5 OK\r\n"
                       b"550 5.1.1 <x@example.org> User doesn't exist: x@example.org\r\n"
                       b"354 OK\r\n250 2.0.0 <alice@example.org> 8KDTH7d5ZGbsKAAAx0pVPA Saved\r\n"
                       b"221 2.0.0 Bye\r\n",
    "bare_code_bare_lf": b"354\n250-\n250 \n",
    "enhanced_edge_cases": b"250 2.0.0\r\n451 4.3.0x text\r\n250-2.1.5 a\r\n250 b\r\n"
                           b"550 5.999.999 big\r\n452 2.0.0 wrong class\r\n",
    "idle_close": b"421 4.4.2 mail.example.org Timeout, closing connection\r\n",
    "longest_line": b"250 " + b"a" * 4092 + b"\r\n",
}


def lmtp_seeds():
    reset("fuzz_lmtp_session")
    reset("fuzz_relay_replies")
    for path in sorted(glob.glob(os.path.join(TRANSCRIPTS, "*.txt"))):
        name = os.path.splitext(os.path.basename(path))[0]
        client, server = read_transcript(path)
        write("fuzz_lmtp_session", name, WHOLE + client)
        for variant, head in LMTP_VARIANTS.get(name, []):
            write("fuzz_lmtp_session", f"{name}.{variant}", head + client)
        if name in REPLY_TRANSCRIPTS:
            write("fuzz_relay_replies", f"mailseal_{name}", WHOLE + server)
    for name, data in REPLIES.items():
        write("fuzz_relay_replies", name, WHOLE + data)


# --- keys ----------------------------------------------------------------------------------------

EE_CONFIG = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = {address}
[ext]
basicConstraints = critical,CA:false
keyUsage = critical,{key_usage}
extendedKeyUsage = emailProtection
subjectAltName = email:{address}
"""


def certificate(work, name, newkey, key_usage="keyEncipherment", days=3650,
                address=ADDRESS):
    """(DER certificate, DER SubjectPublicKeyInfo), self-signed: DANE-EE needs no issuer."""
    config = os.path.join(work, name + ".cnf")
    with open(config, "w") as f:
        f.write(EE_CONFIG.format(address=address, key_usage=key_usage))
    run(["openssl", "req", "-x509", "-new", "-config", config, "-extensions", "ext", *newkey,
         "-nodes", "-keyout", name + ".key", "-out", name + ".pem", "-days", str(days)], work)
    der = run(["openssl", "x509", "-in", name + ".pem", "-outform", "DER"], work)
    spki = run(["openssl", "pkey", "-in", name + ".key", "-pubout", "-outform", "DER"], work)
    return der, spki


def sha(data, bits):
    return run(["openssl", "dgst", f"-sha{bits}", "-binary"], None, stdin=data)


def records(options, *rdata):
    """record_input.hpp: options, then each RDATA behind its RDLENGTH."""
    return bytes([options]) + b"".join(struct.pack(">H", len(r)) + r for r in rdata)


def smimea(usage, selector, matching, data):
    return bytes([usage, selector, matching]) + data


def smimea_seeds(work):
    reset("fuzz_smimea")
    rsa, rsa_spki = certificate(work, "rsa", ["-newkey", "rsa:2048"])
    ec_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
    ec, ec_spki = certificate(work, "ec", ec_key, key_usage="keyAgreement")
    weak, _ = certificate(work, "weak", ["-newkey", "rsa:1024"])
    signing, _ = certificate(work, "signing", ec_key, key_usage="digitalSignature")
    short, _ = certificate(work, "short", ec_key, key_usage="keyAgreement", days=1)
    ed25519, _ = certificate(work, "ed25519", ["-newkey", "ed25519"],
                             key_usage="digitalSignature")
    bob, _ = certificate(work, "bob", ec_key, key_usage="keyAgreement",
                         address="bob@example.org")
    seeds = {
        "dane_ee_rsa_certificate": records(0, smimea(3, 0, 0, rsa)),
        "dane_ee_ec_key": records(0, smimea(3, 1, 0, ec_spki)),
        "rsa_and_ec": records(0, smimea(3, 0, 0, ec), smimea(3, 0, 0, rsa)),
        "rsa_and_ec_all_used": records(0x02, smimea(3, 1, 0, rsa_spki), smimea(3, 0, 0, ec)),
        "same_key_twice": records(0, smimea(3, 1, 0, rsa_spki), smimea(3, 0, 0, rsa)),
        "digests": records(0, smimea(3, 0, 1, sha(rsa, 256)), smimea(3, 1, 2, sha(ec_spki, 512)),
                           smimea(1, 1, 1, sha(ec_spki, 256))),
        "pkix_ee_without_ca": records(0, smimea(1, 0, 0, ec)),
        "trust_anchor_usages": records(0, smimea(0, 0, 0, ec), smimea(2, 1, 0, ec_spki)),
        "unknown_fields": records(0, smimea(4, 0, 0, ec), smimea(3, 2, 0, ec),
                                  smimea(3, 0, 3, ec), b"\x03\x00"),
        "weak_rsa": records(0, smimea(3, 0, 0, weak)),
        "signing_only": records(0, smimea(3, 0, 0, signing)),
        "expired_accepted": records(0, smimea(3, 0, 0, short)),
        "expired_refused": records(0x01, smimea(3, 0, 0, short)),
        "ed25519": records(0, smimea(3, 0, 0, ed25519)),
        "other_address": records(0, smimea(3, 0, 0, bob)),
    }
    for name, data in seeds.items():
        write("fuzz_smimea", name, data)


class Gpg:
    def __init__(self, work):
        self.home = os.path.join(work, "gnupg")
        os.makedirs(self.home, mode=0o700)

    def __call__(self, *args):
        return run(["gpg", "--homedir", self.home, "--batch", "--no-tty", "--passphrase", "",
                    "--pinentry-mode", "loopback", *args], None)

    def key(self, uid, primary, *subkeys, expire="0"):
        """A key (its fingerprint): `primary` certifies and signs, each subkey encrypts."""
        self("--quick-gen-key", uid, primary, "cert,sign", "0")
        fingerprint = self.fingerprint(uid)
        for algorithm in subkeys:
            self("--quick-add-key", fingerprint, algorithm, "encr", expire)
        return fingerprint

    def fingerprint(self, uid):
        listing = self("--with-colons", "--list-keys", "--", f"={uid}").decode()
        return re.search(r"^fpr:+([0-9A-F]{40}):", listing, re.M).group(1)

    def export(self, fingerprint, armor=False):
        return self("--export-options", "export-minimal", *(["--armor"] if armor else []),
                    "--export", fingerprint)

    def revoke(self, fingerprint):
        """Imports the revocation certificate gpg made with the key (its ':' guard removed)."""
        path = os.path.join(self.home, "openpgp-revocs.d", fingerprint + ".rev")
        with open(path) as f:
            certificate = f.read().replace(":-----BEGIN", "-----BEGIN")
        with open(path, "w") as f:
            f.write(certificate)
        self("--import", path)

    def stop(self):
        subprocess.run(["gpgconf", "--homedir", self.home, "--kill", "all"], check=False)


def tlsa_seeds(work):
    """A mail host's TLSA records against tlsa_chain.pem (server, intermediate, root)."""
    reset("fuzz_tlsa")
    pems = re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n",
                      open(os.path.join(HERE, "tlsa_chain.pem")).read(), re.S)
    ders, spkis = [], []
    for pem in pems:
        ders.append(run(["openssl", "x509", "-outform", "DER"], work, stdin=pem.encode()))
        key = run(["openssl", "x509", "-noout", "-pubkey"], work, stdin=pem.encode())
        spkis.append(run(["openssl", "pkey", "-pubin", "-outform", "DER"], work, stdin=key))
    leaf, inter, root = zip(ders, spkis)
    seeds = {
        "dane_ee_spki_sha256": records(0, smimea(3, 1, 1, sha(leaf[1], 256))),
        "dane_ee_forms": records(0, smimea(3, 0, 0, leaf[0]), smimea(3, 1, 0, leaf[1]),
                                 smimea(3, 0, 1, sha(leaf[0], 256)),
                                 smimea(3, 1, 2, sha(leaf[1], 512))),
        "current_next_stale": records(0x11, smimea(3, 1, 1, sha(leaf[1], 256)),
                                      smimea(3, 1, 1, sha(inter[1], 256)),
                                      smimea(3, 1, 1, bytes(32))),
        "dane_ta_intermediate": records(0, smimea(2, 1, 1, sha(inter[1], 256))),
        "dane_ta_root_full": records(0x01, smimea(2, 0, 0, root[0])),
        "expired_chain": records(0x02, smimea(2, 1, 1, sha(root[1], 256)),
                                 smimea(3, 1, 1, sha(leaf[1], 256))),
        "pkix_and_unknown": records(0x04, smimea(1, 1, 1, sha(leaf[1], 256)),
                                    smimea(0, 0, 0, root[0]), smimea(4, 1, 1, bytes(32)),
                                    smimea(3, 1, 1, bytes(31)), b"\x03\x01"),
        "dns_alone": records(0x08, smimea(3, 1, 1, sha(leaf[1], 256))),
    }
    for name, data in seeds.items():
        write("fuzz_tlsa", name, data)


def openpgp_seeds(gpg):
    reset("fuzz_openpgpkey")
    alice = gpg.key("Alice <alice@example.org>", "ed25519", "cv25519")
    rsa = gpg.key("alice@example.org", "rsa3072", "rsa2048")
    nist = gpg.key("Alice P <ALICE@example.org>", "nistp256", "nistp256")
    expiring = gpg.key("Alice E <alice@example.org>", "ed25519", "cv25519", expire="1d")
    signing = gpg.key("Alice S <alice@example.org>", "ed25519")
    bob = gpg.key("Bob <bob@example.org>", "ed25519", "cv25519")
    revoked = gpg.key("Alice R <alice@example.org>", "ed25519", "cv25519")
    gpg.revoke(revoked)
    seeds = {
        "ed25519_cv25519": records(0, gpg.export(alice)),
        "rsa": records(0, gpg.export(rsa)),
        "nist_p256": records(0, gpg.export(nist)),
        "expiring_subkey": records(0, gpg.export(expiring)),
        "signing_only": records(0, gpg.export(signing)),
        "other_address": records(0, gpg.export(bob)),
        "revoked": records(0, gpg.export(revoked)),
        "two_records": records(0, gpg.export(alice), gpg.export(rsa)),
        "two_keys_in_one_record": records(0, gpg.export(alice) + gpg.export(bob)),
        "armoured": records(0, gpg.export(alice, armor=True)),
    }
    for name, data in seeds.items():
        write("fuzz_openpgpkey", name, data)
    return alice


# --- MIME front ----------------------------------------------------------------------------------


def entity(fields, body):
    return b"".join(f + b"\r\n" for f in fields) + b"\r\n" + body


def mime_seeds(work, gpg, pgp_fingerprint):
    reset("fuzz_mime_front")
    text = b"Hello Alice,\r\n\r\nthe plans are attached.\r\n.\r\n-- \r\nBob\r\n"
    plain = entity([b"From: Bob <bob@example.net>", b"To: Alice <alice@example.org>",
                    b"Subject: plans", b"Message-ID: <1@example.net>", b"MIME-Version: 1.0",
                    b"Content-Type: text/plain; charset=utf-8",
                    b"Content-Transfer-Encoding: 8bit"], text)
    with open(os.path.join(work, "plain.eml"), "wb") as f:
        f.write(plain)
    run(["openssl", "cms", "-encrypt", "-aes-128-cbc", "-in", "plain.eml", "-out", "smime.eml",
         "rsa.pem"], work)
    with open(os.path.join(work, "smime.eml"), "rb") as f:
        smime = f.read()
    armour = gpg("--trust-model", "always", "--armor", "--output", "-", "--encrypt",
                 "--recipient", pgp_fingerprint, os.path.join(work, "plain.eml"))
    boundary = b"b1_mailseal"
    seeds = {
        "plain_crlf": plain,
        "plain_lf": plain.replace(b"\r\n", b"\n"),
        "folded_and_odd_fields": entity(
            [b"Subject: one\r\n two", b"Content-Type: text/plain;\r\n\tcharset=utf-8",
             b"X-Weird :  spaced", b"X-8bit-\xc3\xa4: value", b"Received: from a\r\n by b"],
            b"body\r\nSubject: not a header\r\n"),
        "no_separator": b"Subject: x\r\nno colon here\r\nmore\r\n",
        "mbox_from_line": b"From someone Tue\r\nSubject: x\r\n\r\nb\r\n",
        "smime_enveloped": smime,
        "smime_authenveloped": entity(
            [b"Content-Type: application/pkcs7-mime; smime-type=authEnveloped-data;"
             b" name=smime.p7m", b"Content-Transfer-Encoding: base64"],
            b"MIAGCyqGSIb3DQEJEAEXoIAwgAIBADGB\r\n"),
        "pgp_inline": entity([b"Subject: secret", b"Content-Type: text/plain"], armour),
        "pgp_mime": entity(
            [b"Subject: secret", b"MIME-Version: 1.0",
             b"Content-Type: multipart/encrypted;\r\n protocol=\"application/pgp-encrypted\";"
             b" boundary=\"" + boundary + b"\""],
            b"--" + boundary + b"\r\nContent-Type: application/pgp-encrypted\r\n\r\n"
            b"Version: 1\r\n\r\n--" + boundary + b"\r\n"
            b"Content-Type: application/octet-stream; name=\"encrypted.asc\"\r\n\r\n" + armour
            + b"\r\n--" + boundary + b"--\r\n"),
        "multipart_signed": entity(
            [b"Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\";"
             b" micalg=sha-256; boundary=s"],
            b"--s\r\nContent-Type: text/plain\r\n\r\nsigned\r\n--s\r\n"
            b"Content-Type: application/pkcs7-signature\r\n\r\nMIIB\r\n--s--\r\n"),
        "multipart_mixed_rfc2231": entity(
            [b"Content-Type: multipart/mixed; boundary*0=\"pa\"; boundary*1=\"rt\""],
            b"--part\r\nContent-Type: text/plain; charset*=utf-8''%C3%A4\r\n\r\na\r\n"
            b"--part\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\nb\r\n"
            b"--part--\r\n"),
        "two_content_types": entity(
            [b"Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\";"
             b" boundary=x", b"Content-Type: text/plain"], b"x\r\n"),
        "base64_text": entity([b"Content-Type: text/plain (comment)",
                               b"Content-Transfer-Encoding: BASE64"], b"aGVsbG8K\r\n"),
        "bare_cr_and_nul": b"Subject: a\rb\r\nX: \x00\r\n\r\n\r\r\n\n",
    }
    for name, data in seeds.items():
        write("fuzz_mime_front", name, WHOLE + data)


def encrypted_seeds():
    """fuzz_encrypted: each fixture in every form its checks read (the option octet selects
    the check: 0 binary OpenPGP, 1 binary CMS, 2 armour, 3 base64 CMS, 4 PGP/MIME, 5 armour in
    quoted-printable, 6 armour in base64, 7 base64 alone)."""
    reset("fuzz_encrypted")
    fixtures = os.path.join(HERE, "..", "seal", "fixtures", "encrypted")
    for name in sorted(os.listdir(fixtures)):
        with open(os.path.join(fixtures, name), "rb") as f:
            data = f.read()
        stem, ext = os.path.splitext(name)
        if ext in (".der", ".ber"):
            text = base64.encodebytes(data).replace(b"\n", b"\r\n")
            write("fuzz_encrypted", stem + ".cms", bytes([1, 0]) + data)
            write("fuzz_encrypted", stem + ".cms_base64", bytes([3, 0]) + text)
            write("fuzz_encrypted", stem + ".base64", bytes([7, 0]) + text)
        elif ext == ".pgp":
            write("fuzz_encrypted", stem + ".packets", bytes([0, 0]) + data)
        elif ext == ".asc":
            armour = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            body = (b"This is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)\r\n"
                    b"--b1\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n"
                    b"\r\n--b1\r\nContent-Type: application/octet-stream\r\n\r\n" + armour
                    + b"\r\n--b1--\r\n")
            write("fuzz_encrypted", stem + ".armour", bytes([2, 0]) + armour)
            write("fuzz_encrypted", stem + ".pgp_mime", bytes([4, 0]) + body)
            write("fuzz_encrypted", stem + ".quoted_printable",
                  bytes([5, 0]) + quopri.encodestring(armour))
            write("fuzz_encrypted", stem + ".armour_base64",
                  bytes([6, 0]) + base64.encodebytes(armour).replace(b"\n", b"\r\n"))


def main():
    encrypted_seeds()
    lmtp_seeds()
    work = tempfile.mkdtemp(prefix="mailseal-seeds-")
    gpg = Gpg(work)
    try:
        smimea_seeds(work)
        tlsa_seeds(work)
        alice = openpgp_seeds(gpg)
        mime_seeds(work, gpg, alice)
    finally:
        gpg.stop()
        shutil.rmtree(work)


if __name__ == "__main__":
    main()

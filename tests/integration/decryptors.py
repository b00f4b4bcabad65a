# SPDX-License-Identifier: Apache-2.0
"""Independent S/MIME decryptors that check what mailseal seals.

A sealed message is an outer RFC 5322 header section whose Content-Type
is application/pkcs7-mime with smime-type enveloped-data or authEnveloped-data, and a base64 body
holding a BER CMS ContentInfo. Decrypted, it is the original MIME entity with CRLF line ends.

This module opens such messages with three implementations that share no code with mailseal or
with each other's CMS parsers:

- OpenSSL (`openssl cms -decrypt`), the library mailseal itself uses;
- GnuPG (`gpgsm --decrypt`, libksba), with a throwaway GNUPGHOME and gpg-agent;
- NSS (`cmsutil -D`), Thunderbird's S/MIME library, with a throwaway certificate database.

What each opens on Debian 12 (OpenSSL 3.0, gpgsm 2.2.40, NSS 3.87; see
/work/shared/notes/clients.md): all three open EnvelopedData with AES-CBC and RSA PKCS#1 v1.5 key
transport named by issuer and serial number. Only OpenSSL opens AuthEnvelopedData (AES-GCM), EC
key agreement, or RSA-OAEP. gpgsm cannot open a RecipientInfo named by subjectKeyIdentifier
(`CMS_USE_KEYID`, ktri version 2) and crashes importing EC keys; NSS rejects a whole message as
soon as one RecipientInfo is a key agreement one.

Typical use in a test:

    with Identity("alice@example.org") as alice:
        ...  # run mailseal with alice.cert_path
        cms = extract_cms(sealed_bytes)
        for tool, plaintext in decrypt_all(cms, alice).items():
            self.assertEqual(plaintext, canonicalize(original), tool)

Every tool runs with a timeout (TOOL_TIMEOUT) and its own temporary directory, removed afterwards;
a failing tool raises ToolError carrying its stderr.
"""

import base64
import binascii
import dataclasses
import email.parser
import email.policy
import os
import re
import resource
import shutil
import subprocess
import tempfile
import time
import weakref

# Seconds any single tool invocation may take before it is killed and reported as a failure.
TOOL_TIMEOUT = 15.0

# The passphrase of every PKCS#12 file made here. gpgsm's loopback pinentry is fed this both to
# open the file and to protect the key inside its throwaway agent.
P12_PASSPHRASE = "mailseal-test"

ENVELOPED_DATA_OID = "1.2.840.113549.1.7.3"
AUTH_ENVELOPED_DATA_OID = "1.2.840.113549.1.9.16.1.23"

# smime-type parameter values (RFC 8551 §3.3, §3.4; compared case-insensitively) for the CMS
# content types they announce.
SMIME_TYPES = {
    "enveloped-data": ENVELOPED_DATA_OID,
    "authenveloped-data": AUTH_ENVELOPED_DATA_OID,
}

# RFC 2045 §6.8: "The encoded output stream must be represented in lines of no more than 76
# characters each." mailseal writes exactly 76 per line (the last one may be shorter).
BASE64_LINE = 76


class ToolError(Exception):
    """An external tool failed; `stderr` holds what it said."""

    def __init__(self, tool, args, returncode, stderr):
        self.tool = tool
        self.args_used = list(args)
        self.returncode = returncode
        self.stderr = stderr
        command = " ".join(map(str, args))
        super().__init__(f"{tool} failed (exit status {returncode}): {command}\n{stderr.strip()}")


class FormatError(ValueError):
    """A sealed message does not follow the outer format of the contract."""


class DecryptError(Exception):
    """decrypt_all: at least one tool failed. `failures` maps tool name to its ToolError,
    `results` holds the plaintexts of the tools that succeeded."""

    def __init__(self, failures, results):
        self.failures = failures
        self.results = results
        super().__init__(
            "decryption failed with " + ", ".join(failures) + "\n"
            + "\n".join(f"[{name}] {error}" for name, error in failures.items())
        )


def _environment():
    env = dict(os.environ)
    # English diagnostics, so that decrypt_gpgsm can tell its quirk from a real failure.
    env["LC_ALL"] = "C"
    env.pop("GNUPGHOME", None)
    env.pop("GPG_AGENT_INFO", None)
    return env


def _no_core_dumps():
    # gpgsm 2.2.40 crashes importing EC keys; keep its core file out of the working directory.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _run(args, stdin=b"", tool=None, timeout=TOOL_TIMEOUT, check=True):
    """Runs args; returns the CompletedProcess. Raises ToolError on a timeout, and on a non-zero
    exit status when check is true."""
    name = tool or os.path.basename(str(args[0]))
    try:
        proc = subprocess.run(
            [str(a) for a in args],
            input=stdin,
            capture_output=True,
            timeout=timeout,
            env=_environment(),
            preexec_fn=_no_core_dumps,
        )
    except subprocess.TimeoutExpired as e:
        stderr = (e.stderr or b"").decode("utf-8", "replace")
        raise ToolError(name, args, None, f"timed out after {timeout}s\n{stderr}") from None
    except FileNotFoundError as e:
        raise ToolError(name, args, None, f"not installed: {e}") from None
    if check and proc.returncode != 0:
        raise ToolError(name, args, proc.returncode, proc.stderr.decode("utf-8", "replace"))
    return proc


def _temp_dir(prefix):
    # Short paths under /tmp: gpg-agent puts its sockets in GNUPGHOME, and a Unix socket path has
    # to fit in 108 bytes.
    return tempfile.mkdtemp(prefix=prefix, dir="/tmp")


# --- recipients -------------------------------------------------------------------------------

# Conservative on purpose: the address goes into an OpenSSL config file, where `#`, `$`, `\` and
# quotes have meanings of their own.
_ADDRESS = re.compile(r"[A-Za-z0-9._%+=-]+@[A-Za-z0-9.-]+")


class Identity:
    """A throwaway S/MIME recipient: a private key and a self-signed certificate for `address`.

    key_type "rsa" (2048 bits, keyUsage keyEncipherment) or "ec" (P-256, keyUsage keyAgreement).
    The certificate has subject CN=address, subjectAltName email:address, a subjectKeyIdentifier
    (SHA-1 of the public key, RFC 5280 §4.2.1.2 method 1), extendedKeyUsage emailProtection, and
    a random 159-bit serial number. Files live in a private temporary directory (or `directory`),
    removed by close() or on leaving a `with` block.
    """

    def __init__(self, address, key_type="rsa", directory=None, days=30):
        if not _ADDRESS.fullmatch(address):
            raise ValueError(f"unsupported address for a test identity: {address!r}")
        if key_type not in ("rsa", "ec"):
            raise ValueError(f"key_type must be 'rsa' or 'ec', got {key_type!r}")
        self.address = address
        self.key_type = key_type
        self.dir = tempfile.mkdtemp(prefix="mailseal-id-", dir=directory or "/tmp")
        self._cleanup = weakref.finalize(self, shutil.rmtree, self.dir, True)
        self.cert_path = os.path.join(self.dir, "cert.pem")
        self.key_path = os.path.join(self.dir, "key.pem")
        self._p12_path = None

        usage = "keyEncipherment" if key_type == "rsa" else "keyAgreement"
        config = os.path.join(self.dir, "req.cnf")
        with open(config, "w") as f:
            f.write(
                "[req]\ndistinguished_name = dn\nprompt = no\nx509_extensions = ext\n"
                f"[dn]\nCN = {address}\n"
                f"[ext]\nsubjectAltName = email:{address}\n"
                f"keyUsage = critical, {usage}\n"
                "extendedKeyUsage = emailProtection\n"
                "basicConstraints = critical, CA:FALSE\n"
                "subjectKeyIdentifier = hash\n"
            )
        if key_type == "rsa":
            newkey = ["-newkey", "rsa:2048"]
        else:
            newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
        _run(
            ["openssl", "req", "-x509", *newkey, "-noenc", "-config", config, "-days", str(days),
             "-keyout", self.key_path, "-out", self.cert_path]
        )
        text = _run(
            ["openssl", "x509", "-in", self.cert_path, "-noout", "-serial", "-nameopt", "RFC2253",
             "-issuer", "-ext", "subjectKeyIdentifier"]
        ).stdout.decode()
        self.serial = int(re.search(r"^serial=([0-9A-Fa-f]+)$", text, re.M).group(1), 16)
        # With a single CN this is also how `openssl cms -print` shows the issuer.
        self.issuer = re.search(r"^issuer=(.*)$", text, re.M).group(1)
        ski = re.search(r"Subject Key Identifier:\s*\n\s*([0-9A-Fa-f:]+)", text).group(1)
        self.subject_key_identifier = bytes.fromhex(ski.replace(":", ""))

    @classmethod
    def from_files(cls, address, cert_path, key_path, key_type="rsa"):
        """An identity for an existing certificate and key (e.g. the DNS test bed's): files are
        read where they are; only the PKCS#12 is written, in a temporary directory of its own."""
        self = cls.__new__(cls)
        self.address = address
        self.key_type = key_type
        self.dir = tempfile.mkdtemp(prefix="mailseal-id-")
        self._cleanup = weakref.finalize(self, shutil.rmtree, self.dir, True)
        self.cert_path = cert_path
        self.key_path = key_path
        self._p12_path = None
        text = _run(
            ["openssl", "x509", "-in", cert_path, "-noout", "-serial", "-nameopt", "RFC2253",
             "-issuer", "-ext", "subjectKeyIdentifier"]
        ).stdout.decode()
        self.serial = int(re.search(r"^serial=([0-9A-Fa-f]+)$", text, re.M).group(1), 16)
        self.issuer = re.search(r"^issuer=(.*)$", text, re.M).group(1)
        ski = re.search(r"Subject Key Identifier:\s*\n\s*([0-9A-Fa-f:]+)", text)
        self.subject_key_identifier = bytes.fromhex(ski.group(1).replace(":", "")) if ski else b""
        return self

    def pkcs12(self):
        """Path of a PKCS#12 file with key and certificate, protected by P12_PASSPHRASE, friendly
        name = address. Legacy format (3DES, RC2): gpgsm 2.2.40 imports nothing newer."""
        if self._p12_path is None:
            path = os.path.join(self.dir, "identity.p12")
            _run(
                ["openssl", "pkcs12", "-export", "-legacy", "-in", self.cert_path, "-inkey",
                 self.key_path, "-name", self.address, "-passout", f"pass:{P12_PASSPHRASE}",
                 "-out", path]
            )
            self._p12_path = path
        return self._p12_path

    def close(self):
        self._cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"Identity({self.address!r}, {self.key_type!r})"


# --- the outer message ------------------------------------------------------------------------


def canonicalize(data: bytes) -> bytes:
    """RFC 8551 §3.1.1 canonical form: every LF not preceded by CR becomes CRLF."""
    return re.sub(rb"(?<!\r)\n", b"\r\n", data)


def _read_oid(data, pos):
    """Decodes the OBJECT IDENTIFIER whose tag is at data[pos]; returns (dotted, end)."""
    if data[pos] != 0x06 or data[pos + 1] >= 0x80:
        raise FormatError("CMS: expected a short OBJECT IDENTIFIER")
    length = data[pos + 1]
    body = data[pos + 2 : pos + 2 + length]
    if len(body) != length or not body:
        raise FormatError("CMS: truncated OBJECT IDENTIFIER")
    arcs, value = [], 0
    for byte in body:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(map(str, [first, arcs[0] - 40 * first, *arcs[1:]])), pos + 2 + length


def cms_content_type(cms: bytes) -> str:
    """The contentType OID (dotted) of a BER/DER ContentInfo, read without any CMS library."""
    if len(cms) < 4 or cms[0] != 0x30:
        raise FormatError("CMS: not a ContentInfo SEQUENCE")
    # Short form and BER's indefinite form (0x80) take one octet; long form 1 + N octets.
    pos = 2 if cms[1] <= 0x80 else 2 + (cms[1] & 0x7F)
    if pos + 2 > len(cms):
        raise FormatError("CMS: truncated ContentInfo")
    return _read_oid(cms, pos)[0]


def _line_end(line):
    if line.endswith(b"\r\n"):
        return b"\r\n"
    if line.endswith((b"\n", b"\r")):
        return line[-1:]
    return b""


def _split_message(sealed):
    """(header bytes, body lines without their ends, set of line ends used)."""
    lines = sealed.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line in (b"\n", b"\r\n"):
            header, body = lines[:i], lines[i + 1 :]
            break
    else:
        raise FormatError("no empty line ends the header section")
    ends = {_line_end(line) for line in lines}
    return b"".join(header), [line.rstrip(b"\r\n") for line in body], ends


def extract_cms(sealed: bytes, strict: bool = False) -> bytes:
    """Returns the CMS ContentInfo (BER/DER) carried by a sealed message (LF or CRLF line ends).

    Always checked: exactly one Content-Type, application/pkcs7-mime (or the legacy x-pkcs7-mime)
    with smime-type enveloped-data or authEnveloped-data (any case, RFC 8551 §3.2.2) matching the
    CMS content type; Content-Transfer-Encoding base64; body lines of base64 characters, at most
    76 each (RFC 2045 §6.8), padding only at the end.

    strict=True adds the rest of mailseal's contract: MIME-Version 1.0, name="smime.p7m",
    Content-Disposition attachment with filename="smime.p7m", every base64 line exactly 76
    characters but the last, one line-end convention throughout, and a line end after the last line.
    Raises FormatError naming the first violation.
    """
    header_bytes, body, ends = _split_message(sealed)
    parser = email.parser.BytesHeaderParser(policy=email.policy.compat32)
    headers = parser.parsebytes(header_bytes)

    content_types = headers.get_all("Content-Type") or []
    if len(content_types) != 1:
        raise FormatError(f"want exactly one Content-Type field, got {len(content_types)}")
    content_type = headers.get_content_type()
    if content_type not in ("application/pkcs7-mime", "application/x-pkcs7-mime"):
        raise FormatError(f"Content-Type {content_type}, want application/pkcs7-mime")
    smime_type = (headers.get_param("smime-type") or "").lower()
    if smime_type not in SMIME_TYPES:
        raise FormatError(f"smime-type {smime_type!r}, want enveloped-data or authEnveloped-data")
    encoding = (headers.get("Content-Transfer-Encoding") or "").strip().lower()
    if encoding != "base64":
        raise FormatError(f"Content-Transfer-Encoding {encoding!r}, want base64")

    while body and body[-1] == b"":
        body.pop()
    if not body:
        raise FormatError("empty body")
    for number, line in enumerate(body, 1):
        if len(line) > BASE64_LINE:
            raise FormatError(f"body line {number} has {len(line)} characters, over {BASE64_LINE}")
        if not re.fullmatch(rb"[A-Za-z0-9+/]*={0,2}", line):
            raise FormatError(f"body line {number} is not base64: {line[:80]!r}")
        if b"=" in line and number != len(body):
            raise FormatError(f"body line {number} has padding before the last line")

    if strict:
        if (headers.get("MIME-Version") or "").strip() != "1.0":
            raise FormatError(f"MIME-Version {headers.get('MIME-Version')!r}, want 1.0")
        if headers.get_param("name") != "smime.p7m":
            raise FormatError(f"Content-Type name {headers.get_param('name')!r}, want smime.p7m")
        disposition = (headers.get("Content-Disposition") or "").split(";")[0].strip().lower()
        filename = headers.get_param("filename", header="Content-Disposition")
        if disposition != "attachment" or filename != "smime.p7m":
            raise FormatError(
                f"Content-Disposition {headers.get('Content-Disposition')!r}, "
                'want attachment; filename="smime.p7m"'
            )
        for number, line in enumerate(body[:-1], 1):
            if len(line) != BASE64_LINE:
                raise FormatError(
                    f"body line {number} has {len(line)} characters, want {BASE64_LINE}")
        if len(ends) != 1 or b"" in ends:
            raise FormatError(
                f"line ends {sorted(ends)}, want all LF or all CRLF, last line included")

    try:
        cms = base64.b64decode(b"".join(body), validate=True)
    except binascii.Error as e:
        raise FormatError(f"body is not valid base64: {e}") from None
    if cms_content_type(cms) != SMIME_TYPES[smime_type]:
        raise FormatError(
            f"smime-type {smime_type} but the CMS content type is {cms_content_type(cms)}"
        )
    return cms


def _require_enveloped(cms):
    # Keeps "decrypted" meaning decrypted: cmsutil -D, for one, also unwraps unencrypted content.
    oid = cms_content_type(cms)
    if oid not in (ENVELOPED_DATA_OID, AUTH_ENVELOPED_DATA_OID):
        raise FormatError(f"CMS content type {oid} is neither EnvelopedData nor AuthEnvelopedData")


# --- the three decryptors ---------------------------------------------------------------------


def decrypt_openssl(cms: bytes, identity: Identity) -> bytes:
    """OpenSSL: `openssl cms -decrypt -binary`. `-recip` makes it use only the RecipientInfo that
    names identity's certificate (without it, OpenSSL tries every one, RFC 3218 style)."""
    _require_enveloped(cms)
    return _run(
        ["openssl", "cms", "-decrypt", "-binary", "-inform", "DER", "-recip", identity.cert_path,
         "-inkey", identity.key_path],
        stdin=cms,
        tool="openssl",
    ).stdout


def decrypt_nss(cms: bytes, identity: Identity) -> bytes:
    """NSS: `cmsutil -D` with a throwaway certificate database (certutil, empty password) into
    which pk12util imported identity's PKCS#12."""
    _require_enveloped(cms)
    work = _temp_dir("mailseal-nss-")
    try:
        db = f"sql:{work}"
        _run(["certutil", "-N", "-d", db, "--empty-password"], tool="nss")
        _run(["pk12util", "-i", identity.pkcs12(), "-d", db, "-W", P12_PASSPHRASE], tool="nss")
        message = os.path.join(work, "message.p7m")
        plaintext = os.path.join(work, "plaintext")
        with open(message, "wb") as f:
            f.write(cms)
        _run(["cmsutil", "-D", "-d", db, "-p", "", "-i", message, "-o", plaintext], tool="nss")
        with open(plaintext, "rb") as f:
            return f.read()
    finally:
        shutil.rmtree(work, ignore_errors=True)


@dataclasses.dataclass(frozen=True)
class GpgsmOutcome:
    """What one `gpgsm --decrypt` did: exit status, stderr and the output file's bytes."""

    returncode: int
    stderr: str
    output: bytes


def run_gpgsm(cms: bytes, identity: Identity) -> GpgsmOutcome:
    """Runs `gpgsm --decrypt` with a throwaway GNUPGHOME and reports what happened, without a
    verdict (decrypt_gpgsm gives one).

    identity's legacy PKCS#12 is imported non-interactively (loopback pinentry fed
    P12_PASSPHRASE; a failed import raises ToolError); the gpg-agent that gpgsm starts is stopped
    with `gpgconf --kill all` before the home is removed.
    """
    _require_enveloped(cms)
    home = _temp_dir("mailseal-gpg-")
    try:
        os.chmod(home, 0o700)
        with open(os.path.join(home, "gpg-agent.conf"), "w") as f:
            f.write("allow-loopback-pinentry\ndisable-scdaemon\n")
        gpgsm = ["gpgsm", "--homedir", home, "--batch", "--no-tty", "--disable-dirmngr",
                 "--pinentry-mode", "loopback", "--passphrase-fd", "0"]
        passphrase = (P12_PASSPHRASE + "\n").encode()
        try:
            _run([*gpgsm, "--import", identity.pkcs12()], stdin=passphrase, tool="gpgsm")
        except ToolError:
            # gpgsm 2.2.40 now and then fails to import a legacy PKCS#12 that it imports the
            # next time ("data error at shrouded_key_bag.decrypted-text"): once more, freshly
            # exported.
            identity._p12_path = None
            _run([*gpgsm, "--import", identity.pkcs12()], stdin=passphrase, tool="gpgsm")
        message = os.path.join(home, "message.p7m")
        plaintext = os.path.join(home, "plaintext")
        with open(message, "wb") as f:
            f.write(cms)
        proc = _run([*gpgsm, "--output", plaintext, "--decrypt", message], stdin=passphrase,
                    tool="gpgsm", check=False)
        output = b""
        if os.path.exists(plaintext):
            with open(plaintext, "rb") as f:
                output = f.read()
        return GpgsmOutcome(proc.returncode, proc.stderr.decode("utf-8", "replace"), output)
    finally:
        _stop_agent(home)
        shutil.rmtree(home, ignore_errors=True)


def decrypt_gpgsm(cms: bytes, identity: Identity) -> bytes:
    """GnuPG: `gpgsm --decrypt` (see run_gpgsm).

    Quirk of gpgsm 2.2.40: it tries the RecipientInfos in order, and when one before the right one
    names a certificate it does not have ("failed to find the certificate"), it still writes the
    right plaintext but exits with status 2. So the exit status is not the verdict: output without
    a "decryption failed" diagnostic is returned, and the caller compares the plaintext.
    """
    outcome = run_gpgsm(cms, identity)
    if outcome.returncode == 0 or (outcome.output and "decryption failed" not in outcome.stderr):
        return outcome.output
    raise ToolError("gpgsm", ["gpgsm", "--decrypt"], outcome.returncode, outcome.stderr)


def _stop_agent(home):
    """Stops the gpg-agent of `home`, if any, and waits until its socket is gone."""
    socket = _run(
        ["gpgconf", "--homedir", home, "--list-dirs", "agent-socket"], tool="gpgconf", check=False
    ).stdout.decode().strip()
    _run(["gpgconf", "--homedir", home, "--kill", "all"], tool="gpgconf", check=False)
    deadline = time.monotonic() + 5.0
    while socket and os.path.exists(socket) and time.monotonic() < deadline:
        time.sleep(0.02)


DECRYPTORS = {
    "openssl": decrypt_openssl,
    "gpgsm": decrypt_gpgsm,
    "nss": decrypt_nss,
}


def decrypt_all(cms: bytes, identity: Identity, tools=tuple(DECRYPTORS)) -> dict:
    """Decrypts with each tool in `tools` (names from DECRYPTORS); returns {tool: plaintext}.
    Raises DecryptError, listing every failure, if any tool fails."""
    results, failures = {}, {}
    for name in tools:
        try:
            results[name] = DECRYPTORS[name](cms, identity)
        except ToolError as e:
            failures[name] = e
    if failures:
        raise DecryptError(failures, results)
    return results


# --- what a message says about itself ---------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RecipientInfo:
    """One key a message is encrypted to, as `openssl cms -cmsout -print` shows it.

    kind: "ktri" (key transport, RSA), "kari" (key agreement, EC), "kekri", "pwri" or "ori";
    version: the RecipientInfo's version (ktri 0 = issuerAndSerialNumber, 2 = subjectKeyIdentifier);
    key_encryption: keyEncryptionAlgorithm's short name (rsaEncryption, rsaesOaep,
    dhSinglePass-stdDH-sha256kdf-scheme, ...). Either issuer and serial, or
    subject_key_identifier, is set. A kari naming several recipient keys gives one entry per key.
    """

    kind: str
    version: int
    key_encryption: str
    issuer: str = None
    serial: int = None
    subject_key_identifier: bytes = None

    def names(self, identity: Identity) -> bool:
        """Whether this entry designates identity's certificate."""
        if self.subject_key_identifier is not None:
            return self.subject_key_identifier == identity.subject_key_identifier
        return self.serial == identity.serial and self.issuer == identity.issuer


@dataclasses.dataclass(frozen=True)
class Envelope:
    """content_type: "envelopedData" or "authEnvelopedData"; cipher: contentEncryptionAlgorithm
    short name (aes-256-cbc, aes-256-gcm, ...); recipients: list of RecipientInfo."""

    content_type: str
    cipher: str
    recipients: list


_ASN1PARSE_LINE = re.compile(r"^\s*\d+:d=\d+ ")  # parameter dumps, e.g. the key-wrap algorithm
_HEXDUMP_LINE = re.compile(r"^[0-9a-f]{4} - ((?:[0-9a-f]{2}[ -])*[0-9a-f]{2})")
_ALGORITHM = re.compile(r"^algorithm: (\S+)")
_RI_KINDS = ("ktri", "kari", "kekri", "pwri", "ori")


def _after(lines, i, pattern):
    """The match of pattern on the line after lines[i], or None."""
    return pattern.match(lines[i + 1][1]) if i + 1 < len(lines) else None


def _serial(text):
    negative = text.startswith("-")
    text = text.lstrip("-")
    value = int(text, 16) if text.lower().startswith("0x") else int(text)
    return -value if negative else value


def _recipient_entries(kind, block):
    """RecipientInfo entries of one `d.<kind>:` block of (indent, stripped line) pairs."""
    version, key_encryption, ids = None, None, []
    identifiers_start = 0
    if kind == "kari":  # before this: the originator's identifier, not a recipient's
        identifiers_start = next(
            (i for i, (_, line) in enumerate(block) if line == "recipientEncryptedKeys:"),
            len(block))
    for i, (_, line) in enumerate(block):
        if version is None and line.startswith("version: "):
            version = int(line.split()[1])
        elif line == "keyEncryptionAlgorithm:" and _after(block, i, _ALGORITHM):
            key_encryption = _after(block, i, _ALGORITHM).group(1)
        elif i < identifiers_start:
            continue
        elif line == "d.issuerAndSerialNumber:" and i + 2 < len(block):
            issuer, serial = block[i + 1][1], block[i + 2][1]
            if issuer.startswith("issuer: ") and serial.startswith("serialNumber: "):
                ids.append({"issuer": issuer[len("issuer: "):],
                            "serial": _serial(serial[len("serialNumber: "):].strip())})
        elif line in ("d.subjectKeyIdentifier:", "subjectKeyIdentifier:"):
            dump = []
            for _, following in block[i + 1 :]:
                match = _HEXDUMP_LINE.match(following)
                if not match:
                    break
                dump.append(match.group(1))
            ids.append({"subject_key_identifier":
                        bytes.fromhex(" ".join(dump).replace("-", " "))})
    return [RecipientInfo(kind, version, key_encryption, **fields) for fields in ids]


def describe(cms: bytes) -> Envelope:
    """Content type, content cipher and RecipientInfos of an (auth)enveloped CMS message."""
    oid = cms_content_type(cms)
    content_type = {ENVELOPED_DATA_OID: "envelopedData",
                    AUTH_ENVELOPED_DATA_OID: "authEnvelopedData"}.get(oid)
    if content_type is None:
        raise FormatError(f"CMS content type {oid} is neither EnvelopedData nor AuthEnvelopedData")
    text = _run(["openssl", "cms", "-cmsout", "-print", "-inform", "DER"], stdin=cms,
                tool="openssl").stdout.decode("utf-8", "replace")
    lines = [(len(l) - len(l.lstrip()), l.strip()) for l in text.splitlines()
             if l.strip() and not _ASN1PARSE_LINE.match(l)]

    cipher = None
    recipients = []
    section = None  # indentation of "recipientInfos:" while inside it
    kind, block = None, []
    for i, (indent, line) in enumerate(lines):
        if section is not None and indent <= section:
            section = None
        if section is None:
            if line == "recipientInfos:":
                section = indent
            elif line == "contentEncryptionAlgorithm:" and _after(lines, i, _ALGORITHM):
                cipher = _after(lines, i, _ALGORITHM).group(1)
            continue
        if indent == section + 2 and line.startswith("d.") and line[2:-1] in _RI_KINDS:
            if kind:
                recipients += _recipient_entries(kind, block)
            kind, block = line[2:-1], []
        else:
            block.append((indent, line))
    if kind:
        recipients += _recipient_entries(kind, block)
    if cipher is None:
        raise FormatError("no contentEncryptionAlgorithm in `openssl cms -print` output")
    return Envelope(content_type, cipher, recipients)


def recipient_infos(cms: bytes) -> list:
    """The RecipientInfos of an (auth)enveloped CMS message, as a list of RecipientInfo."""
    return describe(cms).recipients


# --- building reference messages --------------------------------------------------------------


def encrypt_openssl(plaintext: bytes, identities, cipher="aes-256-cbc", keyid=False) -> bytes:
    """Reference sealing by OpenSSL: `openssl cms -encrypt -binary -stream -outform DER`, i.e. BER
    with indefinite lengths, one RecipientInfo per identity (by subjectKeyIdentifier with keyid).
    plaintext is taken verbatim: canonicalize it first to match mailseal."""
    args = ["openssl", "cms", "-encrypt", "-binary", "-stream", "-outform", "DER", f"-{cipher}"]
    if keyid:
        args.append("-keyid")
    args += [identity.cert_path for identity in identities]
    return _run(args, stdin=plaintext, tool="openssl").stdout


def wrap_sealed(cms: bytes, header_fields=(), line_end=b"\n") -> bytes:
    """The outer message of the contract around `cms`: header_fields (pairs of str), the MIME
    fields, an empty line and base64 in 76-character lines, all ending in line_end."""
    smime_type = {ENVELOPED_DATA_OID: "enveloped-data",
                  AUTH_ENVELOPED_DATA_OID: "authEnveloped-data"}[cms_content_type(cms)]
    content_type = f'application/pkcs7-mime; smime-type={smime_type}; name="smime.p7m"'
    fields = [*header_fields,
              ("MIME-Version", "1.0"),
              ("Content-Type", content_type),
              ("Content-Disposition", 'attachment; filename="smime.p7m"'),
              ("Content-Transfer-Encoding", "base64")]
    out = [f"{name}: {value}".encode() + line_end for name, value in fields]
    out.append(line_end)
    encoded = base64.b64encode(cms)
    out += [encoded[i : i + BASE64_LINE] + line_end for i in range(0, len(encoded), BASE64_LINE)]
    return b"".join(out)

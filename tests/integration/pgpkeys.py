# SPDX-License-Identifier: Apache-2.0
"""OpenPGP keys made by GnuPG for the tests, and four independent OpenPGP implementations that
decrypt what mailseal seals.

Keys come from `gpg` (not from librnp, which mailseal itself uses), in a GNUPGHOME of the test
bed's own: each PgpKey has its binary public key in the minimal form RFC 7929 §2.1 recommends
(`--export-options export-minimal`, what an OPENPGPKEY record holds), an armoured copy (what a
`.asc` file in the local store holds) and its secret key (binary, for the `sop` tools).

Decryptors (package):
- GnuPG 2.2 (`gnupg`): `gpg --decrypt` with the secret key in the bed's GNUPGHOME;
- Sequoia (`sqop`), PGPainless on Bouncy Castle (`pgpainless-cli`) and Go's go-crypto (`gosop`):
  `<tool> decrypt SECRET-KEY < message`, the Stateless OpenPGP command line; no key store.

Debian's gosop (a 2022 snapshot) writes what it decrypted through gopenpgp's GetString(), which
turns every CRLF into LF whatever the literal packet's format: `decrypt` undoes nothing of that
for it, so callers compare gosop's output after the same conversion, and compare the session key
it recovers (`session_key`) with GnuPG's to show it decrypted the same bytes.
"""

import base64
import dataclasses
import os
import re
import subprocess

import harness

COMMAND_TIMEOUT = 120
# The sop tools, by the name tests use: each is `<cmd> decrypt KEY < message` (SOP interface).
SOP_TOOLS = {"sqop": ["sqop"], "pgpainless": ["pgpainless-cli"], "gosop": ["gosop"]}
DECRYPTORS = ("gpg", *SOP_TOOLS)


@dataclasses.dataclass
class PgpKey:
    name: str             # what tests call it: "paul@signed.test", "uma@signed.test-2"
    uid: str              # the user ID
    fingerprint: str      # the primary key's, upper-case hex
    subkeys: list         # (fingerprint, usage letters, revoked) of each subkey
    public: str           # binary, minimal (what a record holds)
    public_asc: str       # armoured, minimal
    secret: str           # binary secret key (primary and subkeys)

    def public_bytes(self):
        return harness.read_bytes(self.public)

    def encryption_key_ids(self):
        """The 16-hex-digit key IDs of the subkeys that may encrypt, upper-case."""
        return [fpr[-16:] for fpr, usage, revoked in self.subkeys if "e" in usage and not revoked]


class PgpFactory:
    """Makes keys with GnuPG in `directory` (its GNUPGHOME is directory/gnupg)."""

    def __init__(self, directory):
        self.dir = directory
        self.home = os.path.join(directory, "gnupg")
        os.makedirs(self.home, mode=0o700, exist_ok=True)

    def stop(self):
        """Stops the gpg-agent that making and using secret keys started in this home."""
        subprocess.run(["gpgconf", "--homedir", self.home, "--kill", "all"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=COMMAND_TIMEOUT, check=False)

    def gpg(self, *args, stdin=None, check=True):
        proc = subprocess.run(["gpg", "--homedir", self.home, "--batch", "--no-tty",
                               "--pinentry-mode", "loopback", "--passphrase", "", *args],
                              input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=COMMAND_TIMEOUT)
        if check and proc.returncode != 0:
            raise harness.HarnessError(f"gpg {' '.join(args)} exited {proc.returncode}:\n"
                                       + proc.stderr.decode("utf-8", "replace"))
        return proc

    def _fingerprints(self, fingerprint):
        out = self.gpg("--with-colons", "--list-keys", "--", fingerprint).stdout.decode()
        primary = None
        subkeys = []
        kind = None
        usage = ""
        revoked = False
        for line in out.splitlines():
            fields = line.split(":")
            if fields[0] in ("pub", "sub"):
                kind = fields[0]
                usage = fields[11]
                revoked = fields[1] == "r"
            elif fields[0] == "fpr":
                if kind == "pub" and primary is None:
                    primary = fields[9]
                elif kind == "sub":
                    subkeys.append((fields[9], usage, revoked))
        return primary, subkeys

    def make(self, name, uid, primary="ed25519", subkeys=("cv25519",), expires="never",
             faked_time=None, revoke_subkey=None):
        """A key: `primary` signs and certifies; each of `subkeys` (gpg algorithm names)
        encrypts. `faked_time` ("20200101T000000") makes it as if then; `revoke_subkey` (a
        1-based index) revokes that subkey afterwards."""
        timing = [f"--faked-system-time={faked_time}!"] if faked_time else []
        # --yes: a second key with the same user ID (a rollover, an impostor) is wanted.
        status = self.gpg(*timing, "--yes", "--status-fd", "1", "--quick-gen-key", uid, primary,
                          "sign,cert", expires).stdout.decode()
        match = re.search(r"KEY_CREATED P ([0-9A-F]{40})", status)
        if match is None:
            raise harness.HarnessError(f"gpg made no key for {uid}:\n{status}")
        fingerprint = match.group(1)
        for algorithm in subkeys:
            self.gpg(*timing, "--quick-add-key", fingerprint, algorithm, "encr", expires)
        if revoke_subkey is not None:
            commands = f"key {revoke_subkey}\nrevkey\ny\n0\n\ny\nsave\n"
            self.gpg("--command-fd", "0", "--status-fd", "2", "--edit-key", fingerprint,
                     stdin=commands.encode())
        _, subs = self._fingerprints(fingerprint)
        base = os.path.join(self.dir, name.replace("@", "_at_"))
        key = PgpKey(name=name, uid=uid, fingerprint=fingerprint, subkeys=subs,
                     public=base + ".pgp", public_asc=base + ".asc", secret=base + ".sec")
        minimal = ["--export-options", "export-minimal"]
        with open(key.public, "wb") as f:
            f.write(self.gpg(*minimal, "--export", fingerprint).stdout)
        with open(key.public_asc, "wb") as f:
            f.write(self.gpg(*minimal, "--armor", "--export", fingerprint).stdout)
        with open(key.secret, "wb") as f:
            f.write(self.gpg("--export-secret-keys", fingerprint).stdout)
        return key


def armour_of(stored):
    """The ASCII-armoured OpenPGP message in a stored PGP/MIME copy."""
    text = stored.replace(b"\r\n", b"\n")
    match = re.search(rb"-----BEGIN PGP MESSAGE-----\n.*?-----END PGP MESSAGE-----\n", text,
                      re.S)
    if match is None:
        raise harness.HarnessError("no armoured PGP MESSAGE in the copy")
    return match.group(0)


def crc24(data):
    """RFC 4880 §6.1: the armour checksum."""
    crc = 0xB704CE
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


def armour(packets):
    """Binary OpenPGP packets as an armoured PGP MESSAGE (LF line ends, 64-column lines), the
    way GnuPG writes one: for messages no tool would write, such as packets put together."""
    text = base64.b64encode(packets)
    lines = [text[i:i + 64] for i in range(0, len(text), 64)]
    checksum = base64.b64encode(crc24(packets).to_bytes(3, "big"))
    return (b"-----BEGIN PGP MESSAGE-----\n\n" + b"\n".join(lines) + b"\n=" + checksum
            + b"\n-----END PGP MESSAGE-----\n")


def decrypt(tool, factory, key, message):
    """The plaintext `tool` gets from the armoured `message` with `key`'s secret key."""
    if tool == "gpg":
        proc = factory.gpg("--decrypt", stdin=message, check=False)
    else:
        proc = subprocess.run([*SOP_TOOLS[tool], "decrypt", key.secret], input=message,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=COMMAND_TIMEOUT)
    if proc.returncode != 0:
        raise harness.HarnessError(f"{tool} cannot decrypt (exit {proc.returncode}):\n"
                                   + proc.stderr.decode("utf-8", "replace"))
    return proc.stdout


def session_key(tool, factory, key, message):
    """The session key ("ALGO:HEX") `tool` recovers from `message` with `key`."""
    if tool == "gpg":
        proc = factory.gpg("--show-session-key", "--decrypt", stdin=message, check=False)
        match = re.search(rb"session key: '([0-9]+:[0-9A-Fa-f]+)'", proc.stderr)
        if proc.returncode != 0 or match is None:
            raise harness.HarnessError("gpg shows no session key:\n"
                                       + proc.stderr.decode("utf-8", "replace"))
        return match.group(1).decode().upper()
    out = os.path.join(factory.dir, f"session-key.{tool}")
    proc = subprocess.run([*SOP_TOOLS[tool], "decrypt", f"--session-key-out={out}", key.secret],
                          input=message, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          timeout=COMMAND_TIMEOUT)
    if proc.returncode != 0:
        raise harness.HarnessError(f"{tool} cannot decrypt:\n" + proc.stderr.decode())
    return harness.read_text(out).strip().upper()


def as_tool_writes(tool, plaintext):
    """`plaintext` as `tool` writes it (gosop: CRLF turned into LF, see above)."""
    return plaintext.replace(b"\r\n", b"\n") if tool == "gosop" else plaintext


def decrypt_all(factory, key, message):
    """{tool: plaintext} for every decryptor."""
    return {tool: decrypt(tool, factory, key, message) for tool in DECRYPTORS}


def packet_listing(factory, message):
    """What `gpg --list-packets --list-only` prints for an armoured message: per packet a
    "# off=... tag=N" line, a ":<kind> packet:" line and its fields."""
    proc = factory.gpg("--list-packets", "--list-only", stdin=message, check=False)
    return proc.stdout.decode("utf-8", "replace")


def packets(factory, message):
    """The ":<kind> packet: ..." lines of packet_listing()."""
    return [line for line in packet_listing(factory, message).splitlines()
            if line.startswith(":")]


def recipient_key_ids(factory, message):
    """The key IDs the PKESK packets of `message` name, upper-case."""
    ids = []
    for line in packets(factory, message):
        match = re.match(r":pubkey enc packet: version (\d+), algo \d+, keyid ([0-9A-F]+)", line)
        if match:
            ids.append(match.group(2))
    return ids

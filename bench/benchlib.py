"""What the benchmark scripts share: errors, host facts, and the recipient's keys (an S/MIME
certificate made with openssl, an OpenPGP key pair made with GnuPG)."""

import os
import shutil
import subprocess
import sys

# The recipient certificate: the S/MIME end-entity profile of RFC 8550 §4.4 that mailseal's key
# checks accept (email in subjectAltName, keyEncipherment, emailProtection), self-signed.
CERT_CONFIG = """\
[req]
distinguished_name = dn
prompt = no
[dn]
O = mailseal benchmark
CN = {address}
[ext]
basicConstraints = critical,CA:false
keyUsage = critical,keyEncipherment
extendedKeyUsage = emailProtection
subjectAltName = email:{address}
subjectKeyIdentifier = hash
"""

class BenchError(Exception):
    """A failure that makes the run invalid; the message says what to look at."""


class Interrupted(Exception):
    pass


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def filesystem_of(path):
    """'type on device' of the mount holding path, from /proc/mounts (longest prefix)."""
    best, desc = "", "unknown filesystem"
    path = os.path.realpath(path)
    try:
        with open("/proc/mounts", encoding="utf-8") as f:
            for line in f:
                dev, mnt, fstype = line.split()[:3]
                mnt = mnt.replace("\\040", " ")
                inside = path == mnt or path.startswith(mnt.rstrip("/") + "/")
                if inside and len(mnt) >= len(best):
                    best, desc = mnt, f"{fstype} on {dev}"
    except OSError:
        pass
    return desc


def command_output(cmd):
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=10)
        return (p.stdout.strip() or p.stderr.strip()).splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unknown"


def run_checked(cmd, what):
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True)
    if p.returncode != 0:
        raise BenchError(f"{what}: {' '.join(cmd)} exited with status {p.returncode}: "
                         f"{p.stderr.decode('utf-8', 'replace').strip()}")
    return p.stdout


def make_certificate(workdir, address):
    config = os.path.join(workdir, "recipient.cnf")
    cert = os.path.join(workdir, "recipient.pem")
    key = os.path.join(workdir, "recipient.key")
    with open(config, "w", encoding="utf-8") as f:
        f.write(CERT_CONFIG.format(address=address))
    run_checked(["openssl", "req", "-x509", "-new", "-config", config, "-extensions", "ext",
                 "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "2"],
                "recipient certificate")
    return cert, key


# Names of the OpenPGP public-key algorithms GnuPG lists (RFC 4880 §9.1, RFC 6637).
PGP_ALGORITHMS = {"1": "RSA", "16": "ElGamal", "17": "DSA", "18": "ECDH", "19": "ECDSA",
                  "22": "EdDSA"}


class GnuPG:
    """A GnuPG home of the benchmark's own, holding the OpenPGP recipient's key pair, made
    without a passphrase by `gpg --quick-generate-key` with the algorithm given: "default"
    (RSA-3072 with an RSA-3072 encryption subkey in GnuPG 2.2), "future-default" (Ed25519 with
    a Cv25519 subkey), "rsa2048", ... close() stops the gpg-agent it starts."""

    def __init__(self, workdir, address, algorithm):
        self.home = os.path.join(workdir, "gnupg")
        os.mkdir(self.home, 0o700)
        run_checked(self.command("--pinentry-mode", "loopback", "--passphrase", "",
                                 "--quick-generate-key", f"Bench Recipient <{address}>",
                                 algorithm, "default", "never"), "OpenPGP key")
        listing = run_checked(self.command("--with-colons", "--list-keys", address),
                              "listing the OpenPGP key").decode("ascii", "replace")
        fields = [line.split(":") for line in listing.splitlines()]
        self.fingerprint = next(f[9] for f in fields if f[0] == "fpr")
        self.description = ", ".join(
            ("subkey " if f[0] == "sub" else "")
            + PGP_ALGORITHMS.get(f[3], f"algorithm {f[3]}")
            + (f"-{f[2]}" if f[3] in ("1", "16", "17") else f" {f[16]}")
            for f in fields if f[0] in ("pub", "sub"))
        self.public_key = os.path.join(workdir, "recipient.asc")
        with open(self.public_key, "wb") as f:
            f.write(run_checked(self.command("--armor", "--export", self.fingerprint),
                                "exporting the OpenPGP key"))

    def command(self, *args):
        return [shutil.which("gpg"), "--homedir", self.home, "--batch", "--no-tty", "--quiet",
                *args]

    def close(self):
        subprocess.run(["gpgconf", "--homedir", self.home, "--kill", "all"],
                       stdin=subprocess.DEVNULL, capture_output=True, check=False)



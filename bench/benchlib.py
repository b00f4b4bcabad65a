# SPDX-License-Identifier: Apache-2.0
"""What the benchmark scripts share: errors, host facts, the recipient's keys (an S/MIME
certificate made with openssl, an OpenPGP key pair made with GnuPG), a DNSSEC-signed zone that
publishes them (served by NSD, built with the integration tests' DNS test bed), and the memory
figures of a running process."""

import importlib
import os
import shutil
import ssl
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

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INTEGRATION = os.path.join(REPO_ROOT, "tests", "integration")


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


def integration_module(name):
    """A module of tests/integration (dnsbed, harness, ...), imported rather than copied."""
    if INTEGRATION not in sys.path:
        sys.path.insert(0, INTEGRATION)
    return importlib.import_module(name)


def proc_status(pid):
    """{field: KiB} of the memory lines of /proc/PID/status (VmRSS, VmHWM, ...); {} once the
    process is gone."""
    fields = {}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                name, _, value = line.partition(":")
                if name.startswith("Vm") and value.strip().endswith("kB"):
                    fields[name] = int(value.split()[0])
    except OSError:
        pass
    return fields


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

    def minimal_export(self):
        """The public key as an OPENPGPKEY record holds it (RFC 7929 §2.1): binary, with only
        the self-signatures (`--export-options export-minimal`)."""
        return run_checked(self.command("--export-options", "export-minimal", "--export",
                                        self.fingerprint), "exporting the OpenPGP key")

    def close(self):
        subprocess.run(["gpgconf", "--homedir", self.home, "--kill", "all"],
                       stdin=subprocess.DEVNULL, capture_output=True, check=False)


class SignedZone:
    """One DNSSEC-signed zone on an NSD of its own (127.0.0.1, a free port, UDP and TCP), made
    by the code of the integration tests' DNS test bed (tests/integration/dnsbed.py, imported):
    a KSK and a ZSK of ECDSA P-256, NSEC3 with no extra iterations and an empty salt.

    smimea maps addresses to PEM certificate files, each published as SMIMEA 3 0 0 (DANE-EE,
    the full certificate); openpgpkey maps addresses to OpenPGP keys (bytes, as
    GnuPG.minimal_export gives them), published as OPENPGPKEY. The trust anchor is the zone's
    own DS (`anchor_file`); dns_toml() is mailseal's [dns] configuration for it."""

    TTL = 3600  # longer than any run: once looked up, an answer stays in the resolver's cache

    def __init__(self, workdir, zone, smimea=None, openpgpkey=None):
        self.zone = zone
        self.dir = os.path.join(workdir, "dns")
        self.smimea = dict(smimea or {})
        self.openpgpkey = dict(openpgpkey or {})
        self.anchor_file = os.path.join(self.dir, zone + "ds")
        self.ds_line = None
        self.nsd = None

    def start(self):
        dnsbed = integration_module("dnsbed")
        harness = integration_module("harness")
        key_dir = os.path.join(self.dir, "keys")
        for d in (self.dir, key_dir):
            os.makedirs(d, exist_ok=True)
        owners = {}
        for address, pem in self.smimea.items():
            with open(pem, encoding="ascii") as f:
                der = ssl.PEM_cert_to_DER_cert(f.read())
            owners.setdefault(dnsbed.owner_name(address), []).append(
                dnsbed.Record.smimea(3, 0, 0, der))
        for address, key in self.openpgpkey.items():
            owners.setdefault(dnsbed.owner_name(address, dnsbed.OPENPGPKEY), []).append(
                dnsbed.Record.openpgpkey(key))
        try:
            signed, self.ds_line = dnsbed.sign_zone(
                self.zone, dnsbed.zone_text(self.zone, owners, ttl=self.TTL), self.dir, key_dir)
            served = os.path.join(self.dir, self.zone + "served")
            with open(served, "w", encoding="ascii") as f:
                f.write(dnsbed.replace_key_records(signed, owners, ttl=self.TTL))
            with open(self.anchor_file, "w", encoding="ascii") as f:
                f.write(self.ds_line + "\n")
            self.nsd = dnsbed.Nsd(os.path.join(self.dir, "nsd"))
            self.nsd.start([(self.zone, served)])
        except harness.HarnessError as e:
            raise BenchError(f"the signed zone {self.zone}: {e}") from None
        return self

    def stop(self):
        if self.nsd is not None:
            self.nsd.stop()
            self.nsd = None

    @property
    def server(self):
        return self.nsd.server

    def dns_toml(self):
        return (f'[dns]\ntrust_anchor_file = "{self.anchor_file}"\n\n'
                f'[[dns.stub_zone]]\nzone = "{self.zone}"\nservers = ["{self.server}"]\n')


# SPDX-License-Identifier: Apache-2.0
"""A DNSSEC test bed for `mailseal check --tlsa` and `--host`: a mail server's TLSA records
(RFC 6698, RFC 7672) in NSD-served zones, against certificate chains made with the `openssl`
CLI, all built at test time under the test's directory.

Certificates (EC P-256): a root CA, two intermediate CAs (R1, R2: an issuer that changes its
intermediate between renewals), and server certificates for the mail hosts below, each with
its private key and a Postfix chain file (key, server certificate, intermediate):

  current   key A, issued by R1, valid 60 days        the certificate in use
  next      key B, issued by R2                       staged for the next renewal
  stale     key C, issued by R1                       a key retired long ago
  renewed   key D, issued by R2                       put in use without updating DNS

Zones (under a parent `test.` whose DS is the trust anchor; TTL 300, so a record must be
visible 600 s before the key it names goes live), with the TLSA records at `_PORT._tcp.`, PORT
chosen free when the bed starts (the throwaway Postfix listens there):

  good.test.      MX mail.good.test; mail: 3 1 1 A, 3 1 1 B, 3 1 1 C (current, next, stale);
                  ta: 2 1 1 R1 (only the intermediate: the changing-issuer case); nothing at
                  other.good.test
  short.test.     mail: 3 1 1 A, signatures expiring a day after signing (a stopped signer)
  bare.test.      MX mail.bare.test, no TLSA anywhere
  bogus.test.     MX mail.bogus.test; mail: 3 1 1 A signed, then replaced by 3 1 1 C
  unsigned.test.  MX mail.unsigned.test; mail: 3 1 1 A, delegated without DS (insecure)

Every mail host has an A record 127.0.0.1, so a STARTTLS probe reaches the local Postfix.
"""

import datetime
import hashlib
import os
import subprocess

import dnsbed
import harness

TTL = 300
HOSTS = ("mail.good.test", "ta.good.test", "mail.short.test", "mail.bare.test",
         "mail.bogus.test", "mail.unsigned.test", "other.good.test")

CA_EXT = """\
[req]
distinguished_name = dn
prompt = no
[dn]
O = mailseal DANE bed
CN = {cn}
[ext]
basicConstraints = critical,CA:true
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""

SERVER_EXT = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = {cn}
[ext]
basicConstraints = critical,CA:false
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = {sans}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


class Certificate:
    """A certificate with its key (PEM files) and, for servers, a Postfix chain file."""

    def __init__(self, directory, name):
        base = os.path.join(directory, name)
        self.name = name
        self.pem = base + ".pem"
        self.key = base + ".key"
        self.chain = base + ".chain.pem"

    def spki_der(self):
        return subprocess.run(["openssl", "x509", "-in", self.pem, "-noout", "-pubkey"],
                              check=True, capture_output=True).stdout

    def spki_sha256(self):
        """Upper-case hex SHA-256 of the DER SubjectPublicKeyInfo: a 3 1 1 / 2 1 1 record's."""
        pem = self.spki_der()
        der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pem,
                             check=True, capture_output=True).stdout
        return hashlib.sha256(der).hexdigest().upper()


class DaneBed:
    def __init__(self, workdir):
        self.dir = os.path.join(workdir, "danebed")
        self.cert_dir = os.path.join(self.dir, "certs")
        self.zone_dir = os.path.join(self.dir, "zones")
        self.key_dir = os.path.join(self.dir, "keys")
        self.nsd = dnsbed.Nsd(os.path.join(self.dir, "nsd"))
        self.anchor_file = os.path.join(self.dir, "test.ds")
        self.port = None
        self.certs = {}

    def start(self):
        for d in (self.dir, self.cert_dir, self.zone_dir, self.key_dir, self.nsd.dir):
            os.makedirs(d, exist_ok=True)
        try:
            self.port = harness.free_port()
            self._make_certs()
            self.nsd.start(self._make_zones())
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        self.nsd.stop()

    def leftover_processes(self):
        return self.nsd.leftover_processes()

    def owner(self, host):
        return f"_{self.port}._tcp.{host}"

    def record(self, cert, usage=3):
        return f"{usage} 1 1 {cert.spki_sha256()}"

    def line(self, host, cert, usage=3):
        """The zone-file line `record --tlsa` and `check` print for cert at host."""
        return f"{self.owner(host)}. {TTL} IN TLSA {self.record(cert, usage)}"

    def mailseal_overrides(self):
        return {"dns": {"trust_anchor_file": self.anchor_file, "timeout": dnsbed.LOOKUP_TIMEOUT},
                "dns.stub_zone": [{"zone": dnsbed.PARENT, "servers": [self.nsd.server]}]}

    # Building

    def _openssl(self, *args):
        dnsbed.run(["openssl", *args])

    def _ca(self, name, cn, issuer=None):
        cert = Certificate(self.cert_dir, name)
        config = os.path.join(self.cert_dir, name + ".cnf")
        with open(config, "w") as f:
            f.write(CA_EXT.format(cn=cn))
        signing = ["-CA", issuer.pem, "-CAkey", issuer.key] if issuer else []
        self._openssl("req", "-x509", "-new", "-config", config, "-extensions", "ext",
                      "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                      "-keyout", cert.key, "-out", cert.pem, "-days", "3650", *signing)
        return cert

    def _server(self, name, issuer, days=3650):
        cert = Certificate(self.cert_dir, name)
        config = os.path.join(self.cert_dir, name + ".cnf")
        sans = ",".join(f"DNS:{h}" for h in HOSTS)
        with open(config, "w") as f:
            f.write(SERVER_EXT.format(cn=f"mail.good.test ({name})", sans=sans))
        self._openssl("req", "-x509", "-new", "-config", config, "-extensions", "ext",
                      "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                      "-keyout", cert.key, "-out", cert.pem, "-days", str(days),
                      "-CA", issuer.pem, "-CAkey", issuer.key)
        with open(cert.chain, "w") as f:
            for part in (cert.key, cert.pem, issuer.pem):
                f.write(harness.read_text(part))
        os.chmod(cert.chain, 0o600)
        return cert

    def _make_certs(self):
        root = self._ca("root", "mailseal DANE bed root")
        r1 = self._ca("r1", "mailseal DANE bed R1", root)
        r2 = self._ca("r2", "mailseal DANE bed R2", root)
        self.certs = {"root": root, "r1": r1, "r2": r2,
                      "current": self._server("current", r1, days=60),
                      "next": self._server("next", r2),
                      "stale": self._server("stale", r1),
                      "renewed": self._server("renewed", r2)}

    def _zone(self, origin, lines):
        """Zone text with SOA, NS and `lines`; TLSA records in RFC 3597 form."""
        text = dnsbed.zone_text(origin, {}, ttl=TTL)
        return text + "\n".join(lines) + "\n"

    def _tlsa(self, host, cert, usage=3):
        data = bytes([usage, 1, 1]) + bytes.fromhex(cert.spki_sha256())
        return f"{self.owner(host)}. IN TYPE52 \\# {len(data)} {data.hex()}"

    def _make_zones(self):
        c = self.certs
        zones = {
            "good.test.": ["@ IN MX 10 mail.good.test.",
                           "mail IN A 127.0.0.1", "ta IN A 127.0.0.1",
                           self._tlsa("mail.good.test", c["current"]),
                           self._tlsa("mail.good.test", c["next"]),
                           self._tlsa("mail.good.test", c["stale"]),
                           self._tlsa("ta.good.test", c["r1"], usage=2)],
            "short.test.": ["mail IN A 127.0.0.1", self._tlsa("mail.short.test", c["current"])],
            "bare.test.": ["@ IN MX 10 mail.bare.test.", "mail IN A 127.0.0.1"],
            "bogus.test.": ["@ IN MX 10 mail.bogus.test.", "mail IN A 127.0.0.1",
                            self._tlsa("mail.bogus.test", c["current"])],
        }
        now = datetime.datetime.now(datetime.timezone.utc)
        stamp = "%Y%m%d%H%M%S"
        short_dates = ("-i", (now - datetime.timedelta(hours=1)).strftime(stamp),
                       "-e", (now + datetime.timedelta(days=1)).strftime(stamp))
        served, delegations = [], []
        for origin, lines in zones.items():
            dates = short_dates if origin == "short.test." else ()
            signed, ds = dnsbed.sign_zone(origin, self._zone(origin, lines), self.zone_dir,
                                          self.key_dir, dates)
            if origin == "bogus.test.":
                # The attacker's record in place of the signed one: the signature fails.
                before = signed
                for case in (str.upper, str.lower):
                    signed = signed.replace(case(c["current"].spki_sha256()),
                                            case(c["stale"].spki_sha256()))
                if signed == before:
                    raise harness.HarnessError("tampering found no TLSA record in bogus.test.")
            path = os.path.join(self.zone_dir, origin + "served")
            with open(path, "w") as f:
                f.write(signed)
            served.append((origin, path))
            delegations += [f"{origin} IN NS ns.{origin}", f"ns.{origin} IN A 127.0.0.1", ds]
        origin = "unsigned.test."
        path = os.path.join(self.zone_dir, origin + "served")
        with open(path, "w") as f:
            f.write(self._zone(origin, ["@ IN MX 10 mail.unsigned.test.",
                                        "mail IN A 127.0.0.1",
                                        self._tlsa("mail.unsigned.test", c["current"])]))
        served.append((origin, path))
        delegations += [f"{origin} IN NS ns.{origin}", f"ns.{origin} IN A 127.0.0.1"]
        signed, ds_line = dnsbed.sign_zone(
            dnsbed.PARENT, dnsbed.zone_text(dnsbed.PARENT, {}, "\n".join(delegations) + "\n"),
            self.zone_dir, self.key_dir)
        path = os.path.join(self.zone_dir, dnsbed.PARENT + "served")
        with open(path, "w") as f:
            f.write(signed)
        with open(self.anchor_file, "w") as f:
            f.write(ds_line + "\n")
        return [(dnsbed.PARENT, path)] + served

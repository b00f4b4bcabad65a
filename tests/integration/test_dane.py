# SPDX-License-Identifier: Apache-2.0
"""`mailseal check --tlsa` and `check --host` against real peers: NSD serving DNSSEC-signed
zones with TLSA records (danebed.py) and a throwaway Postfix presenting a certificate over
STARTTLS on loopback. Every verdict the monitor gives, the renewal that forgot DNS, the gate a
renewal hook asks, and the outputs for monitoring systems (JSON, node_exporter textfile)."""

import json
import os
import re
import shutil
import socket
import subprocess
import threading
import unittest

import danebed
import dnsbed
import harness
from test_lookup import run_mailseal

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
LINE = re.compile(r"^(OK|WARNING|CRITICAL|UNKNOWN) (\S+): (.*)$")


def port_open(port):
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


class DaneBedCase(harness.TestCase):
    """One DANE test bed per test class; each test writes its own configuration."""

    @classmethod
    def setUpClass(cls):
        if not harness.MAILSEAL_BIN:
            raise unittest.SkipTest("MAILSEAL_BIN is not set (run through ctest)")
        cls.workdir = harness.make_test_dir()
        cls.addClassCleanup(harness.remove_test_dir, cls.workdir)
        cls.bed = danebed.DaneBed(cls.workdir)
        cls.addClassCleanup(cls.bed.stop)
        cls.bed.start()
        cls.certs = cls.bed.certs

    def write_config(self, hostname="mail.good.test", domains=("good.test", "bare.test"),
                     local_store=None):
        config = {
            "server": {"hostname": hostname},
            "listen": [{"tcp": "127.0.0.1:0"}],
            "mailbox": {"domains": list(domains),
                        "maildir": os.path.join(self.dir, "vmail", "%d", "%n", "Maildir")},
            **self.bed.mailseal_overrides(),
        }
        if local_store is not None:
            config["keys"] = {"local_store": local_store}
        path = os.path.join(self.dir, "mailseal.toml")
        with open(path, "w") as f:
            f.write(harness.to_toml(config))
        return path

    def check(self, *args, config=None, state=None):
        """(exit status, {name: (status, text, publish lines, remove lines)}, output)."""
        config = config or self.write_config()
        state = state or os.path.join(self.dir, "tlsa-seen")
        code, out, err = run_mailseal("check", "--config", config, "--port",
                                      str(self.bed.port), "--state-file", state, *args)
        output = f"exit {code}\nstdout:\n{out}\nstderr:\n{err}"
        lines, current = {}, None
        for line in out.splitlines():
            m = LINE.match(line)
            if m:
                current = m.group(2)
                lines[current] = (m.group(1), m.group(3), [], [])
                continue
            m = re.match(r"^  (publish|remove): (.*)$", line)
            self.assertTrue(m and current, f"malformed line {line!r}\n{output}")
            lines[current][2 if m.group(1) == "publish" else 3].append(m.group(2))
        return code, lines, output

    def tlsa(self, host, *args, **kwargs):
        code, lines, output = self.check("--tlsa", host, *args, **kwargs)
        owner = self.bed.owner(host)
        self.assertIn(owner, lines, output)
        return code, lines[owner], output


class DaneTest(DaneBedCase):
    def test_current_key_published_is_ok(self):
        code, (status, text, publish, remove), output = self.tlsa(
            "mail.good.test", "--cert", self.certs["current"].chain)
        self.assertEqual((code, status), (OK, "OK"), output)
        self.assertIn("a 3 x x record matches", text)
        self.assertEqual(publish, [], output)
        # Without --next, records for other keys may be a staged key: named, not alarmed.
        self.assertEqual(sorted(remove),
                         sorted(f"{self.bed.owner('mail.good.test')}. IN TLSA "
                                f"{self.bed.record(self.certs[c])}" for c in ("next", "stale")),
                         output)

    def test_next_published_and_stale_record(self):
        code, (status, text, publish, remove), output = self.tlsa(
            "mail.good.test", "--cert", self.certs["current"].chain,
            "--next", self.certs["next"].chain)
        self.assertEqual((code, status), (WARNING, "WARNING"), output)
        self.assertIn("the next key", text)
        self.assertIn("is published", text)
        self.assertIn("a stale record", text)
        self.assertEqual(remove, [f"{self.bed.owner('mail.good.test')}. IN TLSA "
                                  f"{self.bed.record(self.certs['stale'])}"], output)
        self.assertEqual(publish, [], output)

    def test_renewed_certificate_without_dns_update_is_critical(self):
        # The field's most common DANE outage: the certificate was renewed with a new key and
        # nobody told DNS. The verdict names the exact record to publish.
        code, (status, text, publish, _), output = self.tlsa(
            "mail.good.test", "--cert", self.certs["renewed"].chain)
        self.assertEqual((code, status), (CRITICAL, "CRITICAL"), output)
        self.assertIn("no TLSA record matches the certificate in use", text)
        self.assertEqual(publish, [self.bed.line("mail.good.test", self.certs["renewed"])],
                         output)
        # The same line `record --tlsa` prints for that certificate.
        code, out, err = run_mailseal("record", "--tlsa", "--cert", self.certs["renewed"].chain,
                                      "--host", "mail.good.test", "--port", str(self.bed.port),
                                      "--ttl", str(danebed.TTL))
        self.assertEqual(code, 0, err)
        self.assertIn(publish[0], out.splitlines())

    def test_only_an_intermediate_ca_matches(self):
        code, (status, text, publish, _), output = self.tlsa(
            "ta.good.test", "--cert", self.certs["current"].chain)
        self.assertEqual((code, status), (WARNING, "WARNING"), output)
        self.assertIn("only a 2 x x record matches, naming the intermediate CA", text)
        self.assertEqual(publish, [self.bed.line("ta.good.test", self.certs["current"])],
                         output)
        # Renewed under the other intermediate: the 2 1 1 record no longer matches.
        code, (status, text, publish, _), output = self.tlsa(
            "ta.good.test", "--cert", self.certs["next"].chain)
        self.assertEqual((code, status), (CRITICAL, "CRITICAL"), output)
        self.assertEqual(publish, [self.bed.line("ta.good.test", self.certs["next"])], output)

    def test_bogus_rrset(self):
        code, (status, text, _, _), output = self.tlsa(
            "mail.bogus.test", "--cert", self.certs["current"].chain)
        self.assertEqual((code, status), (CRITICAL, "CRITICAL"), output)
        self.assertIn("DNSSEC bogus", text)

    def test_insecure_zone(self):
        code, (status, text, _, _), output = self.tlsa(
            "mail.unsigned.test", "--cert", self.certs["current"].chain)
        self.assertEqual((code, status), (CRITICAL, "CRITICAL"), output)
        self.assertIn("not DNSSEC-signed", text)

    def test_mx_without_tlsa(self):
        code, (status, text, publish, _), output = self.tlsa(
            "mail.bare.test", "--cert", self.certs["current"].chain)
        self.assertEqual((code, status), (CRITICAL, "CRITICAL"), output)
        self.assertIn("MX records of bare.test name mail.bare.test", text)
        self.assertEqual(publish, [self.bed.line("mail.bare.test", self.certs["current"])],
                         output)
        # A name no local domain's MX gives: DANE is simply not in use there.
        code, (status, text, _, _), output = self.tlsa(
            "other.good.test", "--cert", self.certs["current"].chain)
        self.assertEqual((code, status), (WARNING, "WARNING"), output)
        self.assertIn("no TLSA records", text)

    def test_expiry_judged_at_a_later_time(self):
        # The current certificate is valid for 60 days: fine now, within 21 days in 45.
        chain = self.certs["current"].chain
        code, (status, _, _, _), output = self.tlsa("mail.good.test", "--cert", chain)
        self.assertEqual(code, OK, output)
        code, (status, text, _, _), output = self.tlsa("mail.good.test", "--cert", chain,
                                                       "--at", "+45d")
        self.assertEqual((code, status), (WARNING, "WARNING"), output)
        self.assertRegex(text, r"the certificate in use expires in 1[45] days")
        code, (status, text, _, _), output = self.tlsa("mail.good.test", "--cert", chain,
                                                       "--warn-days", "90")
        self.assertEqual(code, WARNING, output)
        # Past its end a DANE-EE match still delivers, but the others' mail does not.
        code, (status, text, _, _), output = self.tlsa("mail.good.test", "--cert", chain,
                                                       "--at", "+70d")
        self.assertEqual(code, WARNING, output)
        self.assertIn("expired", text)

    def test_signatures_about_to_expire(self):
        code, (status, text, _, _), output = self.tlsa(
            "mail.short.test", "--cert", self.certs["current"].chain)
        self.assertEqual((code, status), (WARNING, "WARNING"), output)
        self.assertIn("is the signer running?", text)
        # Judged past their end: the zone must be re-signed by then (a warning, since signing
        # servers do that on their own; an expired signature now is bogus, and critical).
        code, (status, text, _, _), output = self.tlsa(
            "mail.short.test", "--cert", self.certs["current"].chain, "--at", "+2d")
        self.assertEqual((code, status), (WARNING, "WARNING"), output)
        self.assertIn("before the judged time", text)

    def test_gate_waits_twice_the_ttl(self):
        state = os.path.join(self.dir, "gate-seen")
        args = ("mail.good.test", "--cert", self.certs["current"].chain)

        def gate(next_cert, *extra):
            return self.tlsa(*args, "--gate", self.certs[next_cert].chain, *extra, state=state)

        # First sighting now: not yet, and the line says until when.
        code, (status, text, _, _), output = gate("next")
        self.assertEqual(code, WARNING, output)
        self.assertIn("wait until", text)
        self.assertTrue(os.path.exists(state), output)
        code, _, output = gate("next", "--at", "+9m")
        self.assertEqual(code, WARNING, output)
        # Twice the TTL (600 s) after the first sighting: go.
        code, (status, text, _, _), output = gate("next", "--at", "+11m")
        self.assertEqual(code, OK, output)
        self.assertIn("switch now", text)
        # A key that is not published never passes, however late; the line to publish is given.
        code, (status, text, publish, _), output = gate("renewed", "--at", "+30d")
        self.assertEqual(code, CRITICAL, output)
        self.assertIn("not published", text)
        self.assertEqual(publish, [self.bed.line("mail.good.test", self.certs["renewed"])],
                         output)
        # A record that disappears is forgotten: published again, it must be waited for again.
        with open(state) as f:
            kept = f.read()
        self.assertIn(self.bed.record(self.certs["next"]), kept)
        with open(state, "w") as f:
            f.write("")
        code, _, output = gate("next", "--at", "+9m")
        self.assertEqual(code, WARNING, output)

    def test_gate_refuses_bogus_and_unreadable(self):
        code, (status, text, _, _), output = self.tlsa(
            "mail.bogus.test", "--cert", self.certs["current"].chain,
            "--gate", self.certs["next"].chain)
        self.assertEqual(code, CRITICAL, output)
        code, (status, text, _, _), output = self.tlsa(
            "mail.good.test", "--cert", self.certs["current"].chain,
            "--gate", os.path.join(self.dir, "missing.pem"))
        self.assertEqual(code, UNKNOWN, output)

    def test_cannot_run_is_unknown(self):
        code, (status, text, _, _), output = self.tlsa(
            "mail.good.test", "--cert", os.path.join(self.dir, "missing.pem"))
        self.assertEqual((code, status), (UNKNOWN, "UNKNOWN"), output)
        self.assertIn("cannot get the certificate in use", text)

    def test_json_and_prometheus(self):
        prom = os.path.join(self.dir, "mailseal.prom")
        code, out, err = run_mailseal(
            "check", "--config", self.write_config(), "--port", str(self.bed.port),
            "--state-file", os.path.join(self.dir, "seen"), "--tlsa", "mail.good.test",
            "--cert", self.certs["renewed"].chain, "--json", "--prometheus", prom)
        self.assertEqual(code, CRITICAL, err)
        report = json.loads(out)
        self.assertEqual(report["code"], CRITICAL)
        [entry] = report["checks"]
        self.assertEqual((entry["kind"], entry["name"], entry["status"]),
                         ("tlsa", self.bed.owner("mail.good.test"), "CRITICAL"))
        self.assertEqual(entry["publish"],
                         [self.bed.line("mail.good.test", self.certs["renewed"])])
        self.assertGreater(entry["days_to_expiry"], 3000)
        text = harness.read_text(prom)
        self.assertIn(f'mailseal_dane_check_status{{kind="tlsa",'
                      f'name="{self.bed.owner("mail.good.test")}"}} 2\n', text)
        self.assertRegex(text, r'mailseal_dane_expiry_days\{kind="tlsa",name="[^"]+"\} \d+\.\d+')
        self.assertRegex(text, r"mailseal_dane_check_timestamp_seconds \d+\n")
        self.assertEqual([f for f in os.listdir(self.dir) if f.startswith("mailseal.prom.")], [])

    def test_cannot_run_is_unknown_in_json_too(self):
        state = os.path.join(self.dir, "bad-state")
        with open(state, "w") as f:
            f.write("not a state file\n")
        code, out, err = run_mailseal(
            "check", "--config", self.write_config(), "--port", str(self.bed.port),
            "--state-file", state, "--tlsa", "mail.good.test", "--cert",
            self.certs["current"].chain, "--json")
        self.assertEqual(code, UNKNOWN, err)
        report = json.loads(out)
        self.assertEqual((report["code"], report["checks"]), (UNKNOWN, []))
        self.assertIn("bad-state", report["error"])
        # Kept as it was: never a fresh start.
        self.assertEqual(harness.read_text(state), "not a state file\n")
        code, out, err = run_mailseal("check", "--config", os.path.join(self.dir, "none.toml"),
                                      "--all")
        self.assertEqual((code, out.split(" ", 1)[0]), (UNKNOWN, "UNKNOWN"), err)

    def test_host_without_domains_is_unknown(self):
        # The package's file leaves mailbox.domains to the operator: the daily check must not
        # call that host OK.
        config = os.path.join(self.dir, "unconfigured.toml")
        with open(config, "w") as f:
            f.write(harness.to_toml(self.bed.mailseal_overrides()))
        code, out, err = run_mailseal("check", "--config", config, "--host", "--state-file",
                                      os.path.join(self.dir, "seen"))
        self.assertEqual(code, UNKNOWN, out + err)
        self.assertIn("set mailbox.domains", out)

    def test_json_survives_bytes_that_are_not_utf8(self):
        # Paths and a remote server's words end up in the report: never a crash.
        odd = os.path.join(self.dir.encode(), b"chain-\xff.pem")
        shutil.copy(self.certs["current"].chain, odd)
        proc = subprocess.run(
            [harness.MAILSEAL_BIN.encode(), b"check", b"--config", self.write_config().encode(),
             b"--port", str(self.bed.port).encode(), b"--state-file",
             os.path.join(self.dir, "seen").encode(), b"--tlsa", b"mail.good.test",
             b"--cert", odd, b"--json"], capture_output=True, timeout=60)
        self.assertEqual(proc.returncode, OK, proc.stderr)
        report = json.loads(proc.stdout.decode("utf-8"))
        self.assertEqual(report["checks"][0]["status"], "OK")

    def test_probe_of_a_server_that_is_not_smtp(self):
        # Something else answers on the port (or a hostile server): the check cannot run,
        # says why in one line, and the JSON stays valid.
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", self.bed.port))
            listener.listen(4)
            served = threading.Event()

            def answer():
                while not served.is_set():
                    listener.settimeout(0.2)
                    try:
                        conn, _ = listener.accept()
                    except OSError:
                        continue
                    with conn:
                        conn.sendall(b"554 go away \xff\xfe\r\n")

            thread = threading.Thread(target=answer, daemon=True)
            thread.start()
            try:
                code, out, err = run_mailseal(
                    "check", "--config", self.write_config(), "--port", str(self.bed.port),
                    "--state-file", os.path.join(self.dir, "seen"), "--tlsa", "mail.good.test",
                    "--probe", "--json")
            finally:
                served.set()
                thread.join(timeout=5)
        self.assertEqual(code, UNKNOWN, err)
        [entry] = json.loads(out)["checks"]
        self.assertIn("greeting: 554 go away", entry["findings"][0]["text"])

    def test_host_under_another_instance_name(self):
        # server.hostname names the LMTP instance, not the MX: the MX host is still this one,
        # as its certificate names it, and the certificate that forgot DNS is caught.
        config = self.write_config(hostname="lmtp1.internal")
        code, lines, output = self.check("--host", "--cert", self.certs["renewed"].chain,
                                         config=config)
        status, text, publish, _ = lines[self.bed.owner("mail.good.test")]
        self.assertEqual(status, "CRITICAL", output)
        self.assertEqual(publish, [self.bed.line("mail.good.test", self.certs["renewed"])],
                         output)
        code, lines, output = self.check("--host", "--cert", self.certs["current"].chain,
                                         config=config)
        self.assertEqual(lines[self.bed.owner("mail.good.test")][0], "OK", output)


    def test_journal_priorities(self):
        # Under systemd, standard output is the journal's stream, named in JOURNAL_STREAM
        # (device:inode); each line then carries its priority as a "<N>" prefix
        # (sd-daemon(3)), so `journalctl -p warning` shows the problems.
        path = os.path.join(self.dir, "journal-stream")
        with open(path, "wb") as out:
            st = os.fstat(out.fileno())
            proc = subprocess.run(
                [harness.MAILSEAL_BIN, "check", "--config", self.write_config(), "--port",
                 str(self.bed.port), "--state-file", os.path.join(self.dir, "seen"),
                 "--tlsa", "mail.good.test", "--cert", self.certs["renewed"].chain],
                stdout=out, stderr=subprocess.PIPE, timeout=60,
                env={**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
        lines = harness.read_text(path).splitlines()
        self.assertEqual(proc.returncode, CRITICAL, lines)
        self.assertTrue(lines[0].startswith("<3>CRITICAL "), lines)
        self.assertTrue(all(line.startswith("<3>") for line in lines), lines)
        # Anywhere else, no prefixes (check() fails on a line that does not start with a status).
        code, lines, output = self.check("--tlsa", "mail.good.test", "--cert",
                                         self.certs["renewed"].chain)
        self.assertEqual(code, CRITICAL, output)


class PostfixDaneTest(DaneBedCase):
    """The chain Postfix serves: read through postconf, and presented over STARTTLS."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.postfix_chain = os.path.join(cls.workdir, "postfix-chain.pem")
        shutil.copy(cls.certs["current"].chain, cls.postfix_chain)
        os.chmod(cls.postfix_chain, 0o600)
        port = cls.bed.port
        cls.postfix = harness.Postfix(
            cls.workdir, "error:no delivery in this test",
            extra_main={"smtpd_tls_chain_files": cls.postfix_chain,
                        "smtpd_tls_security_level": "may"},
            extra_master=[f"127.0.0.1:{port} inet n - n - - smtpd"])
        cls.addClassCleanup(cls.postfix.stop)
        cls.postfix.start()
        harness.wait_until(lambda: port_open(port), harness.START_TIMEOUT,
                           "Postfix's smtpd to listen", diagnostics=cls.postfix.diagnostics)

    def serve(self, cert):
        shutil.copy(self.certs[cert].chain, self.postfix_chain)
        self.postfix._run("postfix", "-c", self.postfix.config_dir, "reload")

    def test_postfix_settings_and_probe(self):
        self.serve("current")
        for how in (("--postfix-config", self.postfix.config_dir), ("--probe",)):
            code, (status, text, _, _), output = self.tlsa("mail.good.test", *how)
            self.assertEqual((code, status), (OK, "OK"), output)
            self.assertIn("a 3 x x record matches", text)
        self.assertIn(f"probe 127.0.0.1:{self.bed.port}", text)

    def test_renewal_seen_by_probe(self):
        # Postfix got the renewed certificate; DNS was not updated.
        self.serve("renewed")
        try:
            def renewed_served():
                code, (status, _, _, _), _ = self.tlsa("mail.good.test", "--probe")
                return status == "CRITICAL"

            harness.wait_until(renewed_served, 20, "smtpd to present the renewed certificate",
                               interval=0.5, diagnostics=self.postfix.diagnostics)
            code, (status, text, publish, _), output = self.tlsa("mail.good.test", "--probe")
            self.assertEqual(code, CRITICAL, output)
            self.assertEqual(publish, [self.bed.line("mail.good.test", self.certs["renewed"])],
                             output)
        finally:
            self.serve("current")

    def test_host_covers_mx_tlsa_and_users(self):
        self.serve("current")
        prom = os.path.join(self.dir, "host.prom")
        # A user with a certificate in the local store (good.test publishes no SMIMEA).
        user = dnsbed.CertFactory(os.path.join(self.dir, "users")).make("erin", "erin@good.test")
        store = os.path.join(self.dir, "store")
        harness.add_to_local_store(store, user.address, user.pem, user.name)
        config = self.write_config(local_store=store)
        code, lines, output = self.check("--host", "--postfix-config", self.postfix.config_dir,
                                         "--prometheus", prom, config=config)
        self.assertEqual(lines["erin@good.test"][0], "OK", output)
        self.assertIn("1 key (smime, secure-absent)", lines["erin@good.test"][1])
        self.assertEqual(lines["good.test"][0], "OK", output)
        self.assertIn("MX secure mail.good.test", lines["good.test"][1])
        self.assertEqual(lines[self.bed.owner("mail.good.test")][0], "OK", output)
        # bare.test's MX host is not this host: DNS alone, and it publishes nothing.
        status, text, _, _ = lines[self.bed.owner("mail.bare.test")]
        self.assertEqual(status, "CRITICAL", output)
        self.assertIn("MX records of bare.test", text)
        self.assertEqual(code, CRITICAL, output)
        self.assertIn('kind="mx",name="good.test"} 0', harness.read_text(prom))

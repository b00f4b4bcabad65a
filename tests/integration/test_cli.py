# SPDX-License-Identifier: Apache-2.0
"""The mailseal command line as common.md describes it: version, check-config printing the
effective configuration as TOML, and exit 78 (EX_CONFIG) with FILE:LINE:COLUMN: KEY: MESSAGE on
a bad configuration, for check-config and serve alike."""

import json
import os
import re
import subprocess
import textwrap
import tomllib
import unittest

import harness

EX_CONFIG = 78

BASE = """\
[[listen]]
tcp = "127.0.0.1:0"

[mailbox]
domains = ["Example.ORG"]
maildir = "/nonexistent/%d/%n/Maildir"

[limits]
"""


class CliTest(harness.TestCase):
    def setUp(self):
        super().setUp()
        if not harness.MAILSEAL_BIN:
            self.skipTest("MAILSEAL_BIN is not set (run the tests through ctest)")

    def run_mailseal(self, *args, timeout=10):
        proc = subprocess.run([harness.MAILSEAL_BIN, *args], stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
        return proc.returncode, proc.stdout.decode(), proc.stderr.decode()

    def write_config(self, text, name="mailseal.toml"):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_version(self):
        self.assertEqual(self.run_mailseal("version"), (0, "mailseal 0.1.0\n", ""))
        self.assertEqual(self.run_mailseal("--version"), (0, "mailseal 0.1.0\n", ""))

    def test_argument_errors_exit_64_with_one_line(self):
        # EX_USAGE and a "mailseal:" line, as doveadm and postconf do; never CLI11's codes.
        cases = [("unknown command", ["frobnicate"], r"unknown command 'frobnicate'"),
                 ("unknown option first", ["--bogus"], r"unknown option '--bogus'"),
                 ("no command", [], r"a command is required"),
                 ("unknown option", ["lookup", "--frob", "a@example.org"], r"--frob"),
                 ("missing argument", ["seal"], r"--to"),
                 ("bad value", ["check", "--warn-days", "x", "--all"], r"warn-days"),
                 ("bad --at", ["check", "--at", "2027-02-31", "--all"], r"not a time")]
        for name, args, pattern in cases:
            with self.subTest(name):
                code, out, err = self.run_mailseal(*args)
                self.assertEqual(code, 64, f"{name}: {err!r}")
                self.assertEqual(len(err.splitlines()), 1, err)
                self.assertRegex(err, r"^mailseal: .*" + pattern)
        # Help is not an error.
        code, out, err = self.run_mailseal("--help")
        self.assertEqual(code, 0, err)
        self.assertIn("reseal", out)

    def test_tools_accept_a_partial_configuration(self):
        # A tool that does not serve needs only the sections it uses: the built-in defaults
        # fill the rest. The server still needs [[listen]] and mailbox.domains.
        path = self.write_config('[seal]\nheaders = "keep"\n')
        code, out, err = self.run_mailseal("check-config", "--config", path)
        self.assertEqual(code, EX_CONFIG, err)
        message = b"From: a@example.net\r\nTo: b@example.org\r\nSubject: x\r\n\r\nbody\r\n"
        cert = os.path.join(self.dir, "b.pem")
        subprocess.run(["openssl", "req", "-x509", "-new", "-newkey", "rsa:2048", "-nodes",
                        "-keyout", os.path.join(self.dir, "b.key"), "-out", cert, "-days", "30",
                        "-subj", "/CN=b", "-addext", "subjectAltName=email:b@example.org",
                        "-addext", "keyUsage=keyEncipherment"],
                       check=True, capture_output=True)
        proc = subprocess.run([harness.MAILSEAL_BIN, "seal", "--config", path, "--to",
                               "b@example.org", "--key", cert], input=message,
                              capture_output=True, timeout=30)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn(b"application/pkcs7-mime", proc.stdout)
        code, out, err = self.run_mailseal("record", "--config", path, "--key", cert,
                                           "b@example.org")
        self.assertEqual(code, 0, err)

    def test_json_for_check_config_and_record(self):
        path = self.write_config(BASE + "recipients = 150\n")
        code, out, err = self.run_mailseal("check-config", "--config", path, "--json")
        self.assertEqual(code, 0, err)
        report = json.loads(out)
        self.assertTrue(report["valid"])
        self.assertEqual(report["config"]["limits"]["recipients"], 150)
        self.assertIsInstance(report["config"]["limits"]["message_size"], int)
        bad = self.write_config(BASE + "recipients = 99\n", "bad.toml")
        code, out, err = self.run_mailseal("check-config", "--config", bad, "--json")
        self.assertEqual(code, EX_CONFIG, err)
        report = json.loads(out)
        self.assertEqual((report["valid"], report["line"], report["key"]),
                         (False, 9, "limits.recipients"))
        cert = os.path.join(self.dir, "c.pem")
        subprocess.run(["openssl", "req", "-x509", "-new", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                        os.path.join(self.dir, "c.key"), "-out", cert, "-days", "30",
                        "-subj", "/CN=c", "-addext", "subjectAltName=email:c@example.org"],
                       check=True, capture_output=True)
        code, out, err = self.run_mailseal("record", "--json", "--key", cert, "c@example.org")
        self.assertEqual(code, 0, err)
        [record] = json.loads(out)["records"]
        self.assertEqual(record["type"], "SMIMEA")
        self.assertTrue(record["owner"].endswith("._smimecert.example.org."), record)
        self.assertTrue(record["rdata"].startswith("3 0 0 "), record)
        code, out, err = self.run_mailseal("record", "--tlsa", "--json", "--cert", cert,
                                           "--host", "mx.example.org")
        self.assertEqual(code, 0, err)
        [tlsa] = json.loads(out)["records"]
        self.assertEqual((tlsa["role"], tlsa["owner"], tlsa["type"]),
                         ("current", "_25._tcp.mx.example.org.", "TLSA"))
        self.assertTrue(tlsa["rdata"].startswith("3 1 1 "), tlsa)

    def test_check_config_warns_of_forms_clients_do_not_open(self):
        # Observed in Thunderbird 153 (tests/integration/test_thunderbird.py) and gpgsm 2.2.
        path = self.write_config(BASE.replace("[limits]\n", "") + textwrap.dedent("""\
            [seal]
            headers = "protect"
            [[seal.policy]]
            match = "ceo@example.org"
            cipher = "aes-256-gcm"
            rsa_padding = "oaep"
            [[seal.policy]]
            match = "pgp.example.org"
            formats = ["openpgp"]
            cipher = "aes-256-gcm"
            """))
        code, out, err = self.run_mailseal("check-config", "--config", path)
        self.assertEqual(code, 0, err)
        warnings = [l for l in err.splitlines() if l.startswith("mailseal: warning: ")]
        self.assertEqual(len(warnings), 3, err)
        self.assertIn('[seal]: headers = "protect": Thunderbird', warnings[0])
        self.assertIn('match = "ceo@example.org": cipher = "aes-256-gcm": Thunderbird shows '
                      "such S/MIME copies as a blank body", warnings[1])
        self.assertIn("No secret key", warnings[2])
        self.assertNotIn("pgp.example.org", err, "an OpenPGP-only policy seals no S/MIME")
        code, out, err = self.run_mailseal("check-config", "--config", path, "--json")
        self.assertEqual(len(json.loads(out)["warnings"]), 3)

    def test_bash_completion(self):
        script = os.path.join(os.path.dirname(__file__), "..", "..", "packaging",
                              "bash-completion", "mailseal")
        framework = "/usr/share/bash-completion/bash_completion"
        if not os.path.exists(framework):
            self.skipTest("bash-completion is not installed")

        def complete(*words):
            line = " ".join(words)
            program = (f"source {framework}; source {script}; "
                       f"COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; "
                       f"COMP_LINE='{line}'; COMP_POINT=${{#COMP_LINE}}; _mailseal; "
                       'printf "%s\\n" "${COMPREPLY[@]}"')
            proc = subprocess.run(["bash", "-c", program], capture_output=True, text=True,
                                  timeout=10)
            return sorted(proc.stdout.split())

        self.assertEqual(complete("mailseal", "re"), ["record", "reseal"])
        self.assertIn("--gate", complete("mailseal", "check", "--"))
        self.assertEqual(complete("mailseal", "check", "--pro"), ["--probe", "--prometheus"])
        # Every option the completion offers, the command knows.
        for command in ("check", "check-config", "record", "reseal", "lookup", "seal", "deliver",
                        "serve", "test-message"):
            code, out, err = self.run_mailseal(command, "--help")
            for option in complete("mailseal", command, "--"):
                self.assertIn(option, out, f"{command} {option}")

    def test_check_config_prints_effective_configuration(self):
        path = self.write_config(BASE + 'message_size = "1M"\nrecipients = 150\n'
                                 'idle_timeout = "2m"\n')
        code, out, err = self.run_mailseal("check-config", "--config", path)
        self.assertEqual(code, 0, err)
        effective = tomllib.loads(out)
        limits = effective["limits"]
        self.assertEqual(limits["message_size"], 1048576, "1M is 1024-based")
        self.assertEqual(limits["recipients"], 150)
        self.assertEqual(limits["connections"], 100, "default")
        self.assertEqual(limits["data_line_length"], 1000, "default")
        mailbox = effective["mailbox"]
        self.assertEqual(mailbox["maildir"], "/nonexistent/%d/%n/Maildir")
        self.assertEqual(mailbox["on_missing"], "create", "default")
        self.assertEqual(mailbox["create_mode"], 0o700, "default")
        self.assertEqual([d.lower() for d in mailbox["domains"]], ["example.org"])
        self.assertEqual(effective["listen"], [{"tcp": "127.0.0.1:0"}])
        # The printed configuration is itself valid and means the same.
        again = self.write_config(out, "effective.toml")
        code, out2, err = self.run_mailseal("check-config", "--config", again)
        self.assertEqual(code, 0, err)
        self.assertEqual(tomllib.loads(out2), effective)

    def test_bad_configurations(self):
        # (name, configuration, line the error is reported at, key named)
        cases = [
            ("recipients below 100", BASE + "recipients = 99\n", 9, "limits.recipients"),
            ("message_size below 64K", BASE + "message_size = 1000\n", 9, "limits.message_size"),
            ("connections 0", BASE + "connections = 0\n", 9, "limits.connections"),
            ("command line below 512", BASE + "command_line_length = 511\n", 9,
             "limits.command_line_length"),
            ("data line below 1000", BASE + "data_line_length = 999\n", 9,
             "limits.data_line_length"),
            ("timeout over 1h", BASE + 'idle_timeout = "2h"\n', 9, "limits.idle_timeout"),
            ("bad on_missing", BASE.replace("[limits]\n", 'on_missing = "bounce"\n'), 8,
             "mailbox.on_missing"),
        ]
        for name, text, line, key in cases:
            with self.subTest(name):
                path = self.write_config(text)
                code, out, err = self.run_mailseal("check-config", "--config", path)
                self.assertEqual(code, EX_CONFIG, f"{name}: exit status; stderr {err!r}")
                self.assertRegex(err, rf"^mailseal: {re.escape(path)}:{line}:\d+: "
                                 rf"{re.escape(key)}: \S", f"{name}: message")

    def test_serve_refuses_bad_configuration(self):
        path = self.write_config(BASE + "recipients = 99\n")
        code, out, err = self.run_mailseal("serve", "--config", path)
        self.assertEqual(code, EX_CONFIG, err)
        self.assertRegex(err, rf"^mailseal: {re.escape(path)}:9:\d+: limits.recipients: ")
        self.assertNotIn("event=listening", err)


if __name__ == "__main__":
    unittest.main()

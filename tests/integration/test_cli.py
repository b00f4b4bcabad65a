# SPDX-License-Identifier: Apache-2.0
"""The mailseal command line as common.md describes it: version, check-config printing the
effective configuration as TOML, and exit 78 (EX_CONFIG) with FILE:LINE:COLUMN: KEY: MESSAGE on
a bad configuration, for check-config and serve alike."""

import os
import re
import subprocess
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

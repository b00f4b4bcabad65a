# SPDX-License-Identifier: Apache-2.0
"""mailseal check against the DNSSEC test bed: one OK/WARNING/CRITICAL line per address and a
Nagios-style exit status (the worst line's)."""

import os
import re

import dnsbed
from test_lookup import DEAD_TIMEOUT_SECONDS, BedTestCase, run_mailseal

OK, WARNING, CRITICAL = 0, 1, 2


class CheckTest(BedTestCase):
    def check(self, *args, config=None):
        config = config or self.write_config(timeout=f"{DEAD_TIMEOUT_SECONDS}s")
        code, out, err = run_mailseal("check", "--config", config, *args)
        lines = {}
        for line in out.splitlines():
            m = re.match(r"^(OK|WARNING|CRITICAL) (\S+): (.*)$", line)
            self.assertIsNotNone(m, f"malformed line {line!r}\nstdout:\n{out}\nstderr:\n{err}")
            lines[m.group(2)] = (m.group(1), m.group(3))
        return code, lines, out + err

    def test_one_line_per_address_and_worst_status(self):
        addresses = ["alice@signed.test", "bob@signed.test", "frank@signed.test",
                     "alice@bogus.test", "alice@unsigned.test", "nobody@dead.test"]
        code, lines, output = self.check(*addresses)
        want = {"alice@signed.test": "OK", "bob@signed.test": "OK",
                "frank@signed.test": "WARNING", "alice@bogus.test": "CRITICAL",
                "alice@unsigned.test": "WARNING", "nobody@dead.test": "CRITICAL"}
        self.assertEqual({a: s for a, (s, _) in lines.items()}, want, output)
        self.assertEqual(code, CRITICAL, output)
        self.assertIn("keyEncipherment", lines["frank@signed.test"][1])
        self.assertIn("bogus", lines["alice@bogus.test"][1])
        self.assertIn("not DNSSEC-signed", lines["alice@unsigned.test"][1])
        self.assertIn("timeout", lines["nobody@dead.test"][1])

    def test_all_good_is_ok(self):
        code, lines, output = self.check("alice@signed.test", "dave@signed.test")
        self.assertEqual(code, OK, output)
        self.assertEqual(lines["dave@signed.test"], ("OK", "2 keys (smime, secure)"), output)

    def test_openpgp_keys(self):
        # OPENPGPKEY records are judged like SMIMEA ones: a usable key is OK and names its
        # format; a published key that cannot be used (expired, signing-only, another
        # address's, garbage) is a warning with the reason.
        addresses = ["quinn@signed.test", "xena@signed.test", "sam@signed.test",
                     "rita@signed.test", "vic@signed.test", "walt@signed.test"]
        code, lines, output = self.check(*addresses)
        self.assertEqual(code, WARNING, output)
        self.assertEqual(lines["quinn@signed.test"], ("OK", "1 key (openpgp, secure)"), output)
        # Both formats published: the S/MIME certificate is chosen (the default order).
        self.assertEqual(lines["xena@signed.test"], ("OK", "1 key (smime, secure)"), output)
        for address, reason in (("sam@signed.test", "expired"),
                                ("rita@signed.test", "no encryption-capable key"),
                                ("vic@signed.test", "no valid user ID names vic@signed.test"),
                                ("walt@signed.test", "does not parse")):
            status, text = lines[address]
            self.assertEqual(status, "WARNING", f"{address}: {text}")
            self.assertRegex(text, r"openpgpkey #1 unusable: .*" + re.escape(reason), address)

    def test_expiry_warning(self):
        # The bed's certificates are valid for ten years: a horizon beyond that warns.
        code, lines, output = self.check("--days", "4000", "alice@signed.test")
        self.assertEqual(code, WARNING, output)
        self.assertRegex(lines["alice@signed.test"][1], r"expires in \d+ days")

    def test_only_key_about_to_expire(self):
        # A user whose only key expires gets no sealed mail after that: said as such. With two
        # keys, one expiring is an ordinary expiry warning.
        code, lines, output = self.check("--warn-days", "4000", "alice@signed.test",
                                         "dave@signed.test")
        self.assertEqual(code, WARNING, output)
        self.assertRegex(lines["alice@signed.test"][1],
                         r"the only key, .* expires in \d+ days: after that no key is usable")
        self.assertNotIn("only key", lines["dave@signed.test"][1])
        self.assertRegex(lines["dave@signed.test"][1], r"expires in \d+ days")

    def test_judged_at_a_later_time(self):
        # --at moves "now": past the certificates' ten years, the key in use has expired.
        code, lines, output = self.check("--at", "+4000d", "alice@signed.test")
        self.assertEqual(code, CRITICAL, output)
        self.assertRegex(lines["alice@signed.test"][1], r"expired \d+ days ago")
        code, lines, output = self.check("--at", "+30d", "alice@signed.test")
        self.assertEqual(code, OK, output)

    def test_renewed_local_certificate_not_in_dns(self):
        # The operator renewed alice's certificate in the local store but DNS still publishes
        # the old one: the case operators asked a monitor to catch.
        renewed = dnsbed.CertFactory(os.path.join(self.dir, "renewal")).make(
            "alice-renewed", "alice@signed.test")
        config = self.write_config(local_store=self.make_store(renewed))
        code, lines, output = self.check("alice@signed.test", config=config)
        self.assertEqual(code, WARNING, output)
        self.assertIn("not published in DNS", lines["alice@signed.test"][1])

    def test_all_covers_store_and_maildirs(self):
        erin = next(c for c in self.bed.certs.values() if c.address == "erin@signed.test")
        store = self.make_store(erin)
        os.makedirs(os.path.join(self.dir, "vmail", "signed.test", "alice", "Maildir", "tmp"))
        config = self.write_config(local_store=store)
        code, lines, output = self.check("--all", config=config)
        self.assertEqual(set(lines), {"alice@signed.test", "erin@signed.test"}, output)
        self.assertEqual(lines["erin@signed.test"][0], "OK", output)
        self.assertIn("1 key (smime, secure-absent)", lines["erin@signed.test"][1])
        self.assertEqual(code, OK, output)

    def test_addresses_or_all_required(self):
        code, _, output = self.check()
        self.assertNotEqual(code, OK, output)

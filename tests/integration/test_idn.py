# SPDX-License-Identifier: Apache-2.0
"""Internationalised domains: the U-label and A-label forms of one name (bücher.test,
xn--bcher-kva.test) are the same local domain, over LMTP and in LDA mode, and reach the same
Maildir, the one mailbox.domains spells. (Policies written in either form, and the A-label key
lookups, are unit-tested in tests/config and tests/recipient.)"""

import os
import subprocess
import unittest

import harness

U_LABEL = "bücher.test"
A_LABEL = "xn--bcher-kva.test"


class IdnTest(harness.TestCase):
    def serve(self, configured):
        server = harness.Mailseal(self.dir, {"mailbox": {"domains": [configured],
                                                         "on_missing": "create"}})
        self.addCleanup(server.stop)
        server.start()
        return server

    def deliver_both_forms(self, server):
        with server.raw() as client:
            self.assertEqual(client.lhlo().code, 250)
            for domain in (A_LABEL, U_LABEL, "BÜCHER.test"):
                with self.subTest(domain):
                    txn = client.transaction(harness.SENDER, [f"bob@{domain}"],
                                             harness.message(f"to {domain}"),
                                             mail_params=" SMTPUTF8")
                    self.assertEqual([r.code for r in txn.rcpts], [250], txn)
                    self.assertEqual([r.code for r in txn.finals], [250], txn)

    def test_u_label_configuration_takes_both_forms(self):
        server = self.serve(U_LABEL)
        self.deliver_both_forms(server)
        stored = harness.maildir_files(server.maildir("bob", U_LABEL))
        self.assertEqual(len(stored), 3, stored)
        self.assertFalse(os.path.exists(os.path.join(server.vmail, A_LABEL)))

    def test_a_label_configuration_takes_both_forms(self):
        server = self.serve(A_LABEL)
        self.deliver_both_forms(server)
        self.assertEqual(len(harness.maildir_files(server.maildir("bob", A_LABEL))), 3)
        self.assertFalse(os.path.exists(os.path.join(server.vmail, U_LABEL)))

    def test_another_domain_is_still_refused(self):
        server = self.serve(U_LABEL)
        with server.raw() as client:
            client.lhlo()
            txn = client.transaction(harness.SENDER, ["bob@xn--bcher-kvb.test"],
                                     harness.message("elsewhere"))
            self.assertEqual(txn.rcpts[0].code, 550, txn)

    def test_lda_mode(self):
        vmail = os.path.join(self.dir, "lda")
        config = os.path.join(self.dir, "lda.toml")
        with open(config, "w") as f:
            f.write(harness.to_toml({
                "mailbox": {"domains": [U_LABEL], "maildir": os.path.join(vmail, "%d", "%n")},
                "dns": {"unbound_conf": harness.insecure_unbound_conf(self.dir, [A_LABEL])}}))
        proc = subprocess.run([harness.MAILSEAL_BIN, "deliver", "-c", config, "-f",
                               harness.SENDER, "-t", f"carol@{A_LABEL}"],
                              input=harness.message("lda"), capture_output=True, timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(len(harness.maildir_files(os.path.join(vmail, U_LABEL, "carol"))), 1)


if __name__ == "__main__":
    unittest.main()

"""Log formats ([log] format; issue 5, "Observability").

What each test is for: with format = "json" every line mailseal writes is one JSON object
(json.loads accepts each, even with a quoted sender holding '"' and '\\'), and a delivery's
line carries the fields the logfmt line has: session, txn, from, rcpt, keys_outcome,
decision, reason, reply, size, ms.
"""

import json
import unittest

import harness


class JsonLogTest(harness.TestCase):
    def test_every_line_is_a_json_object(self):
        if not harness.MAILSEAL_BIN:
            raise unittest.SkipTest("MAILSEAL_BIN is not set (run the tests through ctest)")
        server = self.start_mailseal({"log": {"level": "debug", "format": "json"}})
        sender = '"odd\\\\ \\"quoted\\""@remote.example'
        with server.raw() as client:
            client.lhlo()
            txn = client.transaction(sender, [f"alice@{harness.DOMAIN}"], harness.message("json"))
            self.assertReply(txn.finals[0], 250, "2.0.0")
            client.command("QUIT")
        harness.wait_until(lambda: '"event":"disconnect"' in server.log(), 10, "disconnect line")
        records = [json.loads(line) for line in server.log().splitlines() if line]
        self.assertTrue(all(isinstance(r, dict) for r in records))
        [delivery] = [r for r in records if r["event"] == "delivery"]
        for key in ("session", "txn", "from", "rcpt", "keys_outcome", "decision", "reason",
                    "reply", "size", "ms"):
            self.assertIn(key, delivery)
        self.assertEqual(delivery["level"], "info")
        self.assertEqual(delivery["from"], f"<{sender}>")
        self.assertEqual(delivery["rcpt"], f"<alice@{harness.DOMAIN}>")
        self.assertEqual((delivery["decision"], delivery["reply"]), ("plain", "250 2.0.0"))
        self.assertEqual(delivery["keys_outcome"], "insecure")


if __name__ == "__main__":
    unittest.main()

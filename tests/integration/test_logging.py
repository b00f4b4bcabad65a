# SPDX-License-Identifier: Apache-2.0
"""Log formats ([log] format).

What each test is for: with format = "json" every line mailseal writes is one JSON object
(json.loads accepts each, even with a quoted sender holding '"' and '\\'), and a delivery's
line carries the fields the logfmt line has: session, txn, from, rcpt, keys_outcome,
decision, reason, reply, size, ms.

With output = "syslog", the same lines go to syslog(3) through /dev/log with facility mail
(priority <22> for info, <20> for warnings) and the ident "mailseal[pid]", and nothing goes to
stderr.
"""

import json
import os
import socket
import subprocess
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



class SyslogTest(harness.TestCase):
    def test_lines_go_to_syslog_with_facility_mail(self):
        if not harness.MAILSEAL_BIN:
            raise unittest.SkipTest("MAILSEAL_BIN is not set (run the tests through ctest)")
        if os.path.exists("/dev/log"):
            raise unittest.SkipTest("/dev/log belongs to this machine's system logger")
        # The test is the system logger: a datagram socket at /dev/log, as syslog(3) expects.
        logger = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        logger.bind("/dev/log")
        self.addCleanup(os.unlink, "/dev/log")
        self.addCleanup(logger.close)
        logger.settimeout(10)
        server = harness.Mailseal(self.dir, {
            "listen": [{"tcp": f"127.0.0.1:{harness.free_port()}"}],
            "log": {"level": "info", "output": "syslog"}})
        port = int(server.config["listen"][0]["tcp"].rsplit(":", 1)[1])
        stderr_path = os.path.join(self.dir, "stderr")
        with open(stderr_path, "wb") as err:
            proc = subprocess.Popen([harness.MAILSEAL_BIN, "serve", "--config",
                                     server.config_path, *harness.ROOT_FLAG],
                                    stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        self.addCleanup(harness.stop_process, proc)
        records = []

        def receive_until(event):
            while True:
                record = logger.recv(65536).decode()
                records.append(record)
                if f"event={event}" in record:
                    return record

        receive_until("listening")
        with harness.RawLMTP(("127.0.0.1", port)) as client:
            client.reply()
            client.lhlo()
            txn = client.transaction(harness.SENDER, [f"alice@{harness.DOMAIN}"],
                                     harness.message("syslog"))
            self.assertReply(txn.finals[0], 250, "2.0.0")
        delivery = receive_until("delivery")
        self.assertTrue(delivery.startswith("<22>"), delivery)  # mail.info
        self.assertRegex(delivery, r" mailseal\[%d\]: level=info event=delivery " % proc.pid)
        self.assertIn(f"rcpt=<alice@{harness.DOMAIN}>", delivery)
        self.assertNotIn("\n", delivery)
        harness.stop_process(proc)
        self.assertEqual(harness.read_text(stderr_path), "", "nothing on stderr")


if __name__ == "__main__":
    unittest.main()

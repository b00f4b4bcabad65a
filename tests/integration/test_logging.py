# SPDX-License-Identifier: Apache-2.0
"""Log formats ([log] format).

What each test is for: with format = "json" every line mailseal writes is one JSON object
(json.loads accepts each, even with a quoted sender holding '"' and '\\'), and a delivery's
line carries the fields the logfmt line has: session, txn, from, rcpt, keys_outcome,
decision, reason, reply, size, ms.

Under systemd (stderr is the journal's stream, JOURNAL_STREAM names it), each line reaches a
real systemd-journald through its native protocol at its own priority (info for a delivery,
err for a refused reload), with MAILSEAL_EVENT, MAILSEAL_RCPT, MAILSEAL_DECISION fields; in
the JSON format counts and durations are numbers.

With output = "syslog", the same lines go to syslog(3) through /dev/log with facility mail
(priority <22> for info, <20> for warnings) and the ident "mailseal[pid]", and nothing goes to
stderr.
"""

import json
import os
import shutil
import signal
import smtplib
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
        # Counts, sizes and durations are numbers; identifiers stay strings.
        self.assertIsInstance(delivery["size"], int)
        self.assertIsInstance(delivery["ms"], int)
        self.assertIsInstance(delivery["session"], str)



JOURNALD = "/lib/systemd/systemd-journald"
JOURNAL_SOCKETS = "/run/systemd/journal"


class JournaldTest(harness.TestCase):
    """Under systemd, mailseal's stderr is the journal's stream: each line must reach the
    journal at its own priority, with its fields searchable. Real systemd-journald: the
    machine's own when one runs, else one started here (and stopped after)."""

    def start_journald(self):
        if os.path.exists(os.path.join(JOURNAL_SOCKETS, "socket")):
            return []
        if not os.path.exists(JOURNALD):
            raise unittest.SkipTest("no systemd-journald on this machine")
        if os.geteuid() != 0:
            raise unittest.SkipTest("starting systemd-journald needs root")
        output = open(os.path.join(self.dir, "journald.out"), "wb")
        self.addCleanup(output.close)
        proc = subprocess.Popen([JOURNALD], stdin=subprocess.DEVNULL, stdout=output,
                                stderr=output, start_new_session=True)

        def stop():
            harness.stop_process(proc)
            shutil.rmtree(JOURNAL_SOCKETS, ignore_errors=True)
            shutil.rmtree("/run/log/journal", ignore_errors=True)

        self.addCleanup(stop)
        harness.wait_until(lambda: os.path.exists(os.path.join(JOURNAL_SOCKETS, "stdout")),
                           harness.START_TIMEOUT, "systemd-journald's sockets")
        return ["--directory", "/run/log/journal"]

    def journal_stream(self):
        """A stream to journald as systemd makes one for a service's output (the header of
        sd-journal's stdout protocol: identifier, unit, priority, level prefix, forwards)."""
        stream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stream.connect(os.path.join(JOURNAL_SOCKETS, "stdout"))
        stream.sendall(b"mailseal\n\n6\n1\n0\n0\n0\n")
        self.addCleanup(stream.close)
        st = os.fstat(stream.fileno())
        return stream, f"{st.st_dev}:{st.st_ino}"

    def test_priorities_and_fields(self):
        if not harness.MAILSEAL_BIN:
            raise unittest.SkipTest("MAILSEAL_BIN is not set (run the tests through ctest)")
        journal_args = self.start_journald()
        server = harness.Mailseal(self.dir, {
            "listen": [{"tcp": f"127.0.0.1:{harness.free_port()}"}], "log": {"level": "info"}})
        port = int(server.config["listen"][0]["tcp"].rsplit(":", 1)[1])
        stream, journal_stream = self.journal_stream()
        proc = subprocess.Popen([harness.MAILSEAL_BIN, "serve", "--config", server.config_path,
                                 *harness.ROOT_FLAG], stdin=subprocess.DEVNULL,
                                stdout=stream.fileno(), stderr=stream.fileno(),
                                env={**os.environ, "JOURNAL_STREAM": journal_stream})
        self.addCleanup(harness.stop_process, proc)

        def entries():
            out = subprocess.run(["journalctl", *journal_args, "--output=json",
                                  f"_PID={proc.pid}"], capture_output=True, text=True,
                                 timeout=30).stdout
            return [json.loads(line) for line in out.splitlines() if line.strip()]

        def entry(event):
            found = [e for e in entries() if e.get("MAILSEAL_EVENT") == event]
            return found[0] if found else None

        harness.wait_until(lambda: entry("listening"), harness.START_TIMEOUT,
                           "event=listening in the journal")
        with smtplib.LMTP("127.0.0.1", port, timeout=harness.REPLY_TIMEOUT) as client:
            client.sendmail(harness.SENDER, [f"alice@{harness.DOMAIN}"],
                            harness.message("journal"))
        delivery = harness.wait_until(lambda: entry("delivery"), 10, "event=delivery")
        self.assertEqual(delivery["PRIORITY"], "6", delivery)
        self.assertEqual(delivery["MAILSEAL_RCPT"], f"<alice@{harness.DOMAIN}>")
        self.assertEqual(delivery["MAILSEAL_DECISION"], "plain")
        self.assertIn("event=delivery", delivery["MESSAGE"])
        self.assertEqual(delivery["SYSLOG_IDENTIFIER"], "mailseal")
        # A configuration that no longer loads: the reload is refused, at error priority.
        with open(server.config_path, "a") as f:
            f.write("\n[limits]\nrecipients = 1\n")
        proc.send_signal(signal.SIGHUP)
        failed = harness.wait_until(lambda: entry("reload-failed"), 10, "event=reload-failed")
        self.assertEqual(failed["PRIORITY"], "3", failed)
        errors = subprocess.run(["journalctl", *journal_args, "--output=json", "-p", "err",
                                 f"_PID={proc.pid}"], capture_output=True, text=True,
                                timeout=30).stdout
        events = {json.loads(line).get("MAILSEAL_EVENT") for line in errors.splitlines() if line}
        self.assertIn("reload-failed", events)
        self.assertNotIn("delivery", events)


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

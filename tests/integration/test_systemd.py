# SPDX-License-Identifier: Apache-2.0
"""systemd integration, without a running systemd.

What each test is for:
- socket activation: `systemd-socket-activate` (systemd's own tool, the same LISTEN_FDS
  protocol as a .socket unit) passes a listening unix socket; mailseal serves LMTP on it,
  ignores its [[listen]] entries, and leaves the socket file to its owner at stop;
- Type=notify: with NOTIFY_SOCKET set, mailseal sends READY=1 once it accepts connections and
  STOPPING=1 when SIGTERM arrives;
- SIGHUP: RELOADING=1, then READY=1 once the new configuration is in force (ExecReload=);
- the shipped units: `systemd-analyze security --offline` rates mailseal.service's sandboxing
  (exposure at most 2.0, "OK"), and the socket unit names Postfix's chroot path.
"""

import os
import re
import signal
import socket
import subprocess
import time
import unittest

import harness

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
UNITS = os.path.join(ROOT, "packaging", "systemd")


class SystemdTest(harness.TestCase):
    def setUp(self):
        super().setUp()
        if not harness.MAILSEAL_BIN:
            raise unittest.SkipTest("MAILSEAL_BIN is not set (run the tests through ctest)")

    def test_socket_activation(self):
        server = harness.Mailseal(self.dir)  # only for its configuration and Maildirs
        activated = os.path.join(self.dir, "activated.sock")
        log = open(os.path.join(self.dir, "activated.log"), "wb")
        proc = subprocess.Popen(
            ["systemd-socket-activate", "-l", activated, harness.MAILSEAL_BIN, "serve",
             "--config", server.config_path, *harness.ROOT_FLAG],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        log.close()
        self.addCleanup(harness.stop_process, proc)

        def connected():
            # The socket file appears at bind(), a moment before listen(): until then a
            # connection is refused.
            try:
                return harness.RawLMTP(activated)
            except OSError:
                return None

        # The first connection starts mailseal, which accepts it on the passed socket.
        with harness.wait_until(connected, 10, "the activated socket") as client:
            self.assertEqual(client.reply().code, 220)
            client.lhlo()
            txn = client.transaction(harness.SENDER, [f"alice@{harness.DOMAIN}"],
                                     harness.message("activated"))
            self.assertReply(txn.finals[0], 250, "2.0.0")
        text = harness.read_text(os.path.join(self.dir, "activated.log"))
        self.assertIn("event=socket-activation sockets=1", text)
        self.assertIn(f"event=listening listener=unix:{activated}", text)
        self.assertNotIn(f"listener=unix:{server.socket_path}", text, "[[listen]] is not used")
        self.assertEqual(len(harness.maildir_files(server.maildir("alice"))), 1)
        # systemd-socket-activate runs mailseal in its own session: stop the whole group.
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
        self.assertTrue(os.path.exists(activated), "the socket file is systemd's, not ours")

    def notified_mailseal(self):
        """A mailseal (not started) whose sd_notify messages arrive on the returned socket."""
        notify_path = os.path.join(self.dir, "notify.sock")
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(notify_path)
        notify.settimeout(10)
        self.addCleanup(notify.close)
        server = harness.Mailseal(self.dir, env={"NOTIFY_SOCKET": notify_path})
        self.addCleanup(server.stop)
        return server, notify

    def test_notify_ready_and_stopping(self):
        server, notify = self.notified_mailseal()
        started = time.monotonic()
        server.start()
        ready = notify.recv(4096).decode()
        self.assertIn("READY=1", ready)
        self.assertLess(time.monotonic() - started, 10)
        # Ready means accepting: a connection is greeted at once.
        with server.raw() as client:
            client.lhlo()
        server.proc.send_signal(signal.SIGTERM)
        stopping = notify.recv(4096).decode()
        self.assertIn("STOPPING=1", stopping)
        self.assertEqual(server.proc.wait(timeout=10), 0)

    def test_notify_reloading_then_ready(self):
        server, notify = self.notified_mailseal()
        server.start()
        self.assertIn("READY=1", notify.recv(4096).decode())
        server.proc.send_signal(signal.SIGHUP)
        self.assertIn("RELOADING=1", notify.recv(4096).decode())
        self.assertIn("READY=1", notify.recv(4096).decode())
        self.assertIn("event=reloaded", server.log())
        with server.raw() as client:
            self.assertEqual(client.lhlo().code, 250)

    def assertExposure(self, unit, at_most=2.0):
        """systemd-analyze rates the unit's sandbox at or below `at_most`; returns the
        rating's word."""
        out = subprocess.run(
            ["systemd-analyze", "security", "--offline=yes", os.path.join(UNITS, unit)],
            capture_output=True, text=True, timeout=60).stdout
        m = re.search(rf"Overall exposure level for {re.escape(unit)}: ([0-9.]+) (\w+)", out)
        self.assertIsNotNone(m, out[-2000:])
        self.assertLessEqual(float(m.group(1)), at_most, m.group(0))
        return m.group(2)

    def test_shipped_units(self):
        self.assertEqual(self.assertExposure("mailseal.service"), "OK")
        with open(os.path.join(UNITS, "mailseal.service")) as f:
            service = f.read()
        for setting in ("Type=notify", "User=mailseal", "Requires=mailseal.socket",
                        "ProtectSystem=strict", "ReadWritePaths=-/var/vmail", "NoNewPrivileges=yes",
                        "PrivateTmp=yes", "ProtectHome=yes", "MemoryDenyWriteExecute=yes",
                        "SystemCallFilter=@system-service",
                        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6"):
            self.assertIn("\n" + setting + "\n", service, setting)
        # The daily check: the mailseal user, reading Postfix's root-only chain files through
        # one capability, and nothing else more than the daemon may.
        self.assertExposure("mailseal-check.service")
        with open(os.path.join(UNITS, "mailseal-check.service")) as f:
            check = f.read()
        for setting in ("User=mailseal", "CapabilityBoundingSet=CAP_DAC_READ_SEARCH",
                        "ReadWritePaths=/var/lib/mailseal", "NoNewPrivileges=yes",
                        "SyslogLevel=err", "StateDirectory=mailseal-metrics",
                        "StateDirectoryMode=0755"):
            self.assertIn("\n" + setting + "\n", check, setting)
        self.assertIn("mailseal check --config /etc/mailseal/mailseal.toml --host", check)
        with open(os.path.join(UNITS, "mailseal-check.timer")) as f:
            self.assertIn("OnCalendar=daily", f.read())
        with open(os.path.join(UNITS, "mailseal.socket")) as f:
            sock = f.read()
        self.assertIn("ListenStream=/var/spool/postfix/private/mailseal", sock)
        self.assertIn("SocketUser=postfix", sock)


if __name__ == "__main__":
    unittest.main()

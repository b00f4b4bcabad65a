# SPDX-License-Identifier: Apache-2.0
"""SIGHUP reloads the configuration without dropping anything.

- A good new configuration applies to connections opened afterwards; a connection open during
  the reload finishes with the configuration it started with, and nobody is disconnected.
- A configuration that does not load (a syntax error, an unknown key, a broken trust anchor)
  or that changes what only a restart can (listeners, user) is refused: event=reload-failed
  names the problem and the running configuration stays in force.
- Logging settings take effect at once.
"""

import os
import signal

import harness
from harness import DOMAIN, SENDER, message, wait_until


def addr(local):
    return f"{local}@{DOMAIN}"


class ReloadTest(harness.TestCase):
    def setUp(self):
        super().setUp()
        self.server = self.start_mailseal()

    def rewrite(self, **sections):
        for section, values in sections.items():
            self.server.config[section] = values
        with open(self.server.config_path, "w") as f:
            f.write(harness.to_toml(self.server.config))

    def hangup(self, event):
        """Sends SIGHUP and waits for the next log line with `event`; returns its fields."""
        seen = sum(1 for l in self.server.log().splitlines()
                   if harness.parse_log_line(l).get("event") == event)
        self.server.proc.send_signal(signal.SIGHUP)

        def logged():
            found = [f for f in map(harness.parse_log_line, self.server.log().splitlines())
                     if f.get("event") == event]
            return found[seen] if len(found) > seen else None

        return wait_until(logged, 10, f"event={event}", diagnostics=self.server.diagnostics)

    def deliver(self, client, local, tag):
        txn = client.transaction(SENDER, [addr(local)], message(tag, b"Reload test.\r\n"))
        if txn.rcpts[0].code >= 400:
            return txn.rcpts[0]
        return txn.finals[0]

    def test_new_configuration_applies_to_new_connections(self):
        before = self.server.raw()
        self.addCleanup(before.close)
        before.lhlo()
        self.assertReply(self.deliver(before, "alice", "before"), 250, "2.0.0",
                         context="plain delivery under the first configuration")

        self.rewrite(seal={"on_no_key": "reject"})
        fields = self.hangup("reloaded")
        self.assertEqual(fields["connections"], "1", fields)

        after = self.server.raw()
        self.addCleanup(after.close)
        after.lhlo()
        self.assertReply(self.deliver(after, "alice", "after"), 550, "5.7.1",
                         context="new connection, on_no_key = reject")
        # The connection that was open during the reload keeps its configuration to its end.
        self.assertReply(self.deliver(before, "alice", "still before"), 250, "2.0.0",
                         context="connection opened before the reload")
        self.assertEqual(before.command("QUIT").code, 221)
        self.assertTrue(self.server.running())

    def test_bad_configuration_is_refused_and_the_old_one_stays(self):
        good = self.server.config
        bad_files = {
            "syntax": "[mailbox\n",
            "unknown key": harness.to_toml({**good, "mailbox": {**good["mailbox"], "x": 1}}),
            "broken trust anchor": harness.to_toml({**good, "dns": {
                **good["dns"], "trust_anchors": ["example.org. IN DS 1 2 3 nothex"]}}),
            "listener change": harness.to_toml({**good, "listen": [{"tcp": "127.0.0.1:0"}]}),
            "user change": harness.to_toml({**good, "server": {**good["server"],
                                                               "user": "nobody"}}),
        }
        want = {
            "syntax": "mailseal.toml:1:",
            "unknown key": "mailbox.x",
            "broken trust anchor": "dns",
            "listener change": "[[listen]] changed",
            "user change": "server.user or server.group changed",
        }
        for name, text in bad_files.items():
            with self.subTest(name):
                with open(self.server.config_path, "w") as f:
                    f.write(text)
                fields = self.hangup("reload-failed")
                self.assertIn(want[name], fields["error"], fields)
                self.assertEqual(fields["level"], "error")
                with self.server.raw() as client:
                    client.lhlo()
                    self.assertReply(self.deliver(client, "alice", name), 250, "2.0.0",
                                     context=f"after a refused reload ({name})")
        self.assertTrue(self.server.running())
        self.assertEqual(len(harness.maildir_files(self.server.maildir("alice"), "new")),
                         len(bad_files))

    def test_logging_settings_apply_at_once(self):
        self.rewrite(log={"level": "debug", "format": "json"})
        self.hangup("reloaded")
        with self.server.raw() as client:
            client.lhlo()
            self.assertReply(self.deliver(client, "alice", "json"), 250, "2.0.0")
            client.command("QUIT")
        delivery = [l for l in self.server.log().splitlines() if '"event":"delivery"' in l]
        self.assertEqual(len(delivery), 1, self.server.log())
        self.assertEqual(harness.parse_log_line(delivery[0])["rcpt"], f"<{addr('alice')}>")
        self.assertTrue(any('"level":"debug"' in l for l in self.server.log().splitlines()))

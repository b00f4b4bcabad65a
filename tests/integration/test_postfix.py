# SPDX-License-Identifier: Apache-2.0
"""A real Postfix (3.7, Debian's master.cf) delivering through mailseal's LMTP server over a
unix socket and over TCP, as in production (virtual_transport = lmtp:...)."""

import grp
import os
import pwd
import unittest

import harness
from harness import DOMAIN, SENDER


def addr(local):
    return f"{local}@{DOMAIN}"


EIGHT_BIT_BODY = ("Grüße aus Köln — 8-bit body, sent as is (BODY=8BITMIME).\n"
                  "Ünïcödé line two.\n").encode("utf-8")


def submission(subject, to, body=EIGHT_BIT_BODY):
    headers = (f"From: <{SENDER}>\nTo: {', '.join('<' + t + '>' for t in to)}\n"
               f"Subject: {subject}\nMIME-Version: 1.0\n"
               f"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n")
    return headers.encode("utf-8") + body


class PostfixCase(harness.TestCase):
    transport = "unix"
    overrides = None

    def setUp(self):
        super().setUp()
        overrides = dict(self.overrides or {})
        # As in production: a socket only Postfix's lmtp client (user postfix) may use.
        overrides.setdefault("listen", [
            {"tcp": "127.0.0.1:0"},
            {"unix": os.path.join(self.dir, "lmtp.sock"), "mode": harness.Octal(0o600),
             "owner": "postfix", "group": "postfix"},
        ])
        self.server = self.start_mailseal(overrides)
        if self.transport == "unix":
            nexthop = f"lmtp:unix:{self.server.unix_path}"
        else:
            nexthop = f"lmtp:inet:127.0.0.1:{self.server.port}"
        self.postfix = self.start_postfix(nexthop, self.postfix_settings(nexthop))

    def postfix_settings(self, nexthop):
        """Extra main.cf settings for this class's Postfix."""
        return {}

    def diagnostics(self):
        return self.postfix.diagnostics() + "\n" + self.server.diagnostics()

    def assertSent(self, recipient):
        entry = self.postfix.wait_status(recipient)
        self.assertEqual((entry["status"], entry["dsn"]), ("sent", "2.0.0"),
                         f"Postfix log for <{recipient}>: {entry['line']}\n" + self.diagnostics())
        self.assertIn(f"250 2.0.0 <{recipient}> Delivered", entry["text"])
        return entry

    def assertStoredFromPostfix(self, local, subject, body, recipient=None):
        recipient = recipient or addr(local)
        files = harness.maildir_files(self.server.maildir(local), "new")
        self.assertEqual(len(files), 1, f"{local}'s new/: {files}")
        stored = harness.read_bytes(files[0])
        header, sep, stored_body = stored.partition(b"\n\n")
        self.assertEqual(sep, b"\n\n", "no header/body separator")
        lines = header.split(b"\n")
        self.assertEqual(lines[0], f"Return-Path: <{SENDER}>".encode(), "first line")
        self.assertEqual(lines[1], f"Delivered-To: {recipient}".encode("utf-8"), "second line")
        self.assertTrue(lines[2].startswith(b"Received: "), f"third line: {lines[2]!r}")
        self.assertIn(f"Subject: {subject}".encode(), header)
        # 8BITMIME announced and honoured: Postfix did not downgrade the body to
        # quoted-printable, and mailseal stored the bytes as sent (with LF line ends).
        self.assertEqual(stored_body, body, "body bytes")
        self.assertNotIn(b"\r\n", stored)
        s, w = harness.size_fields(files[0])
        self.assertEqual(s, len(stored), "S=")
        self.assertEqual(w, harness.crlf_size(stored), "W=")


class PostfixUnixTest(PostfixCase):
    transport = "unix"

    def test_socket_owner(self):
        st = os.stat(self.server.unix_path)
        owner = (pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name)
        self.assertEqual(owner, ("postfix", "postfix"), "listen.owner / listen.group")
        self.assertEqual(st.st_mode & 0o777, 0o600, "listen.mode")

    def test_8bit_message(self):
        self.postfix.sendmail(SENDER, [addr("alice")], submission("unix 8bit", [addr("alice")]))
        self.assertSent(addr("alice"))
        self.assertStoredFromPostfix("alice", "unix 8bit", EIGHT_BIT_BODY)

    def test_several_recipients_one_transaction(self):
        recipients = [addr("alice"), addr("bob"), addr("carol")]
        self.postfix.sendmail(SENDER, recipients, submission("three", recipients))
        relays = set()
        for r in recipients:
            entry = self.assertSent(r)
            relays.add(entry["relay"])
        for local in ("alice", "bob", "carol"):
            self.assertStoredFromPostfix(local, "three", EIGHT_BIT_BODY)
        events = self.server.delivery_events()
        self.assertEqual(len({e.get("txn") for e in events}), 1,
                         f"Postfix sends one LMTP transaction for the three: {events}")

    def test_utf8_recipient(self):
        with self.server.raw() as probe:
            capabilities = probe.lhlo().lines[1:]
        if "SMTPUTF8" not in [c.upper() for c in capabilities]:
            self.skipTest(f"mailseal does not announce SMTPUTF8 (LHLO: {capabilities})")
        recipient = addr("jürgen")
        self.postfix.sendmail(SENDER, [recipient], submission("utf8", [recipient]))
        self.assertSent(recipient)
        self.assertStoredFromPostfix("jürgen", "utf8", EIGHT_BIT_BODY, recipient=recipient)

    def test_temporary_failure_is_deferred(self):
        maildir = self.server.maildir("bob")
        for sub in ("new", "cur"):
            os.makedirs(os.path.join(maildir, sub))
        with open(os.path.join(maildir, "tmp"), "w") as f:
            f.write("a regular file where tmp/ should be\n")
        self.postfix.sendmail(SENDER, [addr("bob")], submission("deferred", [addr("bob")]))
        entry = self.postfix.wait_status(addr("bob"))
        self.assertEqual((entry["status"], entry["dsn"]), ("deferred", "4.3.0"),
                         f"Postfix log: {entry['line']}\n" + self.diagnostics())
        self.assertIn("in reply to end of DATA command", entry["text"])
        self.assertEqual(harness.maildir_files(maildir, "new"), [])


class PostfixConnectionCacheTest(PostfixCase):
    transport = "unix"

    def postfix_settings(self, nexthop):
        # Cache connections to mailseal even without a backlog, so that the second message
        # reuses the first one's connection, which Postfix probes with RSET (smtp_reuse.c).
        # (A bare /path in this list would be read as a lookup table; static:all matches
        # every destination.)
        return {"lmtp_connection_cache_destinations": "static:all"}

    def test_reused_connection(self):
        self.postfix.sendmail(SENDER, [addr("alice")], submission("first", [addr("alice")]))
        self.assertSent(addr("alice"))
        self.postfix.sendmail(SENDER, [addr("bob")], submission("second", [addr("bob")]))
        entry = self.assertSent(addr("bob"))
        self.assertIn("conn_use=2", entry["line"], "Postfix did not reuse the connection")
        self.assertStoredFromPostfix("alice", "first", EIGHT_BIT_BODY)
        self.assertStoredFromPostfix("bob", "second", EIGHT_BIT_BODY)
        sessions = {e.get("rcpt"): e.get("session") for e in self.server.delivery_events()}
        self.assertEqual(sessions[f"<{addr('alice')}>"], sessions[f"<{addr('bob')}>"],
                         f"both messages in one LMTP session: {sessions}")


class PostfixInetTest(PostfixCase):
    transport = "inet"

    def test_8bit_message(self):
        self.postfix.sendmail(SENDER, [addr("alice")], submission("inet 8bit", [addr("alice")]))
        entry = self.assertSent(addr("alice"))
        self.assertIn(f"127.0.0.1]:{self.server.port}", entry["relay"])
        self.assertStoredFromPostfix("alice", "inet 8bit", EIGHT_BIT_BODY)


class PostfixRefuseTest(PostfixCase):
    transport = "unix"
    overrides = {"mailbox": {"on_missing": "refuse"}}

    def test_missing_maildir_bounces(self):
        maildir = self.server.maildir("alice")
        for sub in ("new", "cur", "tmp"):
            os.makedirs(os.path.join(maildir, sub))
        recipients = [addr("alice"), addr("nobody")]
        self.postfix.sendmail(SENDER, recipients, submission("refuse", recipients))
        self.assertSent(addr("alice"))
        entry = self.postfix.wait_status(addr("nobody"))
        self.assertEqual((entry["status"], entry["dsn"]), ("bounced", "5.1.1"),
                         f"Postfix log: {entry['line']}\n" + self.diagnostics())
        self.assertIn("in reply to RCPT TO command", entry["text"])
        self.assertFalse(os.path.exists(self.server.maildir("nobody")),
                         "on_missing = refuse must not create a Maildir")
        self.assertStoredFromPostfix("alice", "refuse", EIGHT_BIT_BODY)


if __name__ == "__main__":
    unittest.main()

# SPDX-License-Identifier: Apache-2.0
"""mailseal serve against LMTP clients: Python's smtplib.LMTP, swaks and a byte-level client
for pipelining, limits, timeouts and protocol errors (RFC 2033, RFC 5321, common.md)."""

import os
import signal
import subprocess
import time
import unittest

import harness
from harness import DOMAIN, SENDER, message, wait_until


def addr(local):
    return f"{local}@{DOMAIN}"


def make_maildir(path, broken_tmp=False):
    """A Maildir; with broken_tmp its tmp is a regular file, so every delivery to it fails
    with a local I/O error (ENOTDIR) after RCPT has been accepted."""
    for sub in ("new", "cur"):
        os.makedirs(os.path.join(path, sub), exist_ok=True)
    tmp = os.path.join(path, "tmp")
    if broken_tmp:
        with open(tmp, "w") as f:
            f.write("not a directory\n")
    else:
        os.makedirs(tmp, exist_ok=True)
    return path


class LmtpCase(harness.TestCase):
    """Starts mailseal with `overrides` for each test."""

    overrides = None

    def setUp(self):
        super().setUp()
        self.server = self.start_mailseal(self.overrides)

    def client(self, unix=False):
        client = self.server.raw(unix=unix)
        self.addCleanup(client.close)
        return client

    def session(self, unix=False):
        """A connected client that has sent LHLO."""
        client = self.client(unix)
        reply = client.lhlo()
        self.assertReply(reply, 250, context="LHLO")
        return client

    def new_files(self, local):
        return harness.maildir_files(self.server.maildir(local), "new")

    def tmp_files(self, local):
        return harness.maildir_files(self.server.maildir(local), "tmp")


class SmtplibTest(LmtpCase):
    def test_single_recipient_tcp(self):
        body = (b"First line.\r\n.A line starting with a dot.\r\n..two dots\r\n"
                b"\r\nTrailing text without final newline")
        sent = message("single", body)
        client = self.server.lmtp_client()
        self.addCleanup(client.close)
        code, _ = client.ehlo()  # smtplib.LMTP sends LHLO
        self.assertEqual(code, 250, "LHLO")
        code, text = client.mail(SENDER)
        self.assertEqual(code, 250, f"MAIL: {code} {text!r}")
        code, text = client.rcpt(addr("alice"))
        self.assertEqual(code, 250, f"RCPT: {code} {text!r}")
        code, text = client.data(sent)
        self.assertEqual((code, text), (250, f"2.0.0 <{addr('alice')}> Delivered".encode()),
                         "reply after the final dot")
        client.quit()

        files = self.new_files("alice")
        self.assertEqual(len(files), 1, f"files in alice's new/: {files}")
        # smtplib terminates the body with CRLF before the dot; mailseal stores that final LF.
        self.assertDelivered(files[0], SENDER, addr("alice"), sent + b"\r\n")
        self.assertEqual(self.tmp_files("alice"), [], "tmp/ must be empty after delivery")

        events = [e for e in self.server.delivery_events()
                  if e.get("rcpt") == f"<{addr('alice')}>"]
        self.assertEqual(len(events), 1, f"event=delivery lines for alice: {events}")
        self.assertEqual(events[0].get("from"), f"<{SENDER}>")
        self.assertTrue(events[0].get("reply", "").startswith("250 2.0.0"), events[0])

    def test_multiple_recipients_unix(self):
        recipients = [addr("alice"), addr("bob"), addr("carol")]
        sent = message("three", b"To all three of you.\r\n")
        client = self.server.lmtp_client(unix=True)
        self.addCleanup(client.close)
        self.assertEqual(client.ehlo()[0], 250, "LHLO")
        self.assertEqual(client.mail(SENDER)[0], 250)
        for r in recipients:
            self.assertEqual(client.rcpt(r)[0], 250, f"RCPT {r}")
        # smtplib reads only the first reply after the dot; LMTP sends one per recipient.
        replies = [client.data(sent)] + [client.getreply() for _ in recipients[1:]]
        for r, (code, text) in zip(recipients, replies):
            self.assertEqual((code, text), (250, f"2.0.0 <{r}> Delivered".encode()),
                             f"reply for {r} (RCPT order)")
        self.assertEqual(client.noop()[0], 250, "NOOP after the per-recipient replies")
        client.quit()
        for local in ("alice", "bob", "carol"):
            files = self.new_files(local)
            self.assertEqual(len(files), 1, f"{local}'s new/: {files}")
            self.assertDelivered(files[0], SENDER, addr(local), sent)

    def test_sendmail_helper_and_address_mapping(self):
        """lowercase_local_part = true and recipient_delimiter = "+" (the defaults) map
        Bob+news@EXAMPLE.ORG to bob's Maildir."""
        sent = message("mapped", b"Mapped.\r\n")
        client = self.server.lmtp_client()
        self.addCleanup(client.close)
        refused = client.sendmail(SENDER, ["Bob+news@EXAMPLE.ORG"], sent)
        self.assertEqual(refused, {}, "refused recipients")
        client.quit()
        files = self.new_files("bob")
        self.assertEqual(len(files), 1,
                         f"bob's new/: {files}; vmail: {list(os.walk(self.server.vmail))}")
        harness.split_trace_headers(harness.read_bytes(files[0]), sent)


class PipeliningTest(LmtpCase):
    def test_two_pipelined_transactions(self):
        client = self.session()
        first = [addr("alice"), addr("bob"), addr("carol")]
        body1 = message("first", b"First transaction.\r\n")
        body2 = message("second", b"Second transaction.\r\n.leading dot\r\n")
        client.send(f"MAIL FROM:<{SENDER}>\r\n" + "".join(f"RCPT TO:<{r}>\r\n" for r in first)
                    + "DATA\r\n")
        self.assertReply(client.reply(), 250, "2.1.0", context="MAIL")
        for r in first:
            self.assertReply(client.reply(), 250, "2.1.5", context=f"RCPT {r}")
        self.assertReply(client.reply(), 354, context="DATA")
        # The body, then a whole second transaction and QUIT, in one write: the server must
        # not drop buffered input (RFC 2920 §3.2) and must answer strictly in order.
        client.send(harness.dot_stuff(body1)
                    + f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{addr('dave')}>\r\nDATA\r\n".encode()
                    + harness.dot_stuff(body2) + b"QUIT\r\n")
        for r in first:
            self.assertReply(client.reply(), 250, "2.0.0", rcpt=r, context="first transaction")
        self.assertReply(client.reply(), 250, "2.1.0", context="second MAIL")
        self.assertReply(client.reply(), 250, "2.1.5", context="second RCPT")
        self.assertReply(client.reply(), 354, context="second DATA")
        self.assertReply(client.reply(), 250, "2.0.0", rcpt=addr("dave"),
                         context="second transaction")
        self.assertReply(client.reply(), 221, context="QUIT")
        self.assertTrue(client.closed_by_peer(), "connection must close after 221")
        for local in ("alice", "bob", "carol"):
            files = self.new_files(local)
            self.assertEqual(len(files), 1, f"{local}'s new/: {files}")
            self.assertDelivered(files[0], SENDER, addr(local), body1)
        files = self.new_files("dave")
        self.assertEqual(len(files), 1, f"dave's new/: {files}")
        self.assertDelivered(files[0], SENDER, addr("dave"), body2)

    def test_partial_failures(self):
        """One recipient refused at RCPT (not a local domain), one failing at delivery (its
        tmp is a regular file): the others are delivered, and the replies after the dot come
        one per accepted RCPT, in RCPT order (RFC 2033 §4.2)."""
        make_maildir(self.server.maildir("broken"), broken_tmp=True)
        recipients = [addr("alice"), "someone@elsewhere.example", addr("broken"), addr("carol")]
        sent = message("partial", b"Some of you get this.\r\n")
        txn = self.session().transaction(SENDER, recipients, sent)
        self.assertReply(txn.mail, 250, context="MAIL")
        self.assertReply(txn.rcpts[0], 250, "2.1.5", context="RCPT alice")
        self.assertReply(txn.rcpts[1], 550, "5.1.1", context="RCPT non-local domain")
        self.assertReply(txn.rcpts[2], 250, "2.1.5", context="RCPT broken")
        self.assertReply(txn.rcpts[3], 250, "2.1.5", context="RCPT carol")
        self.assertReply(txn.data, 354, context="DATA")
        self.assertEqual(len(txn.finals), 3, f"replies after the dot: {txn!r}")
        self.assertReply(txn.finals[0], 250, "2.0.0", rcpt=addr("alice"), context="alice")
        self.assertReply(txn.finals[1], 451, "4.3.0", rcpt=addr("broken"), context="broken")
        self.assertReply(txn.finals[2], 250, "2.0.0", rcpt=addr("carol"), context="carol")
        self.assertEqual(self.new_files("broken"), [], "nothing delivered to broken")
        for local in ("alice", "carol"):
            files = self.new_files(local)
            self.assertEqual(len(files), 1, f"{local}'s new/: {files}")
            self.assertDelivered(files[0], SENDER, addr(local), sent)
        self.assertFalse(os.path.exists(os.path.join(self.server.vmail, "elsewhere.example")),
                         "no Maildir for a non-local domain")


class MailboxTest(LmtpCase):
    overrides = {"mailbox": {"create_mode": harness.Octal(0o750)}}

    def test_missing_maildir_created_with_create_mode(self):
        txn = self.session().transaction(SENDER, [addr("frank")], message("new box"))
        self.assertReply(txn.finals[0], 250, "2.0.0", rcpt=addr("frank"), context="delivery")
        maildir = self.server.maildir("frank")
        for path in (maildir, *(os.path.join(maildir, sub) for sub in ("new", "cur", "tmp"))):
            self.assertTrue(os.path.isdir(path), f"{path} missing")
            mode = os.stat(path).st_mode & 0o777
            self.assertEqual(mode, 0o750, f"mode of {path}: got {mode:o}, want 750")
        self.assertEqual(len(self.new_files("frank")), 1)

    def test_repeated_recipient_gets_its_own_reply(self):
        # RFC 2033 §4.2: a repeated forward-path still gets its own reply after the dot.
        txn = self.session().transaction(SENDER, [addr("alice"), addr("alice")],
                                         message("twice"))
        self.assertEqual(len(txn.finals), 2, f"{txn!r}")
        for reply in txn.finals:
            self.assertReply(reply, 250, "2.0.0", rcpt=addr("alice"), context="repeated RCPT")
        self.assertGreaterEqual(len(self.new_files("alice")), 1)

    def test_unix_socket_mode(self):
        mode = os.stat(self.server.unix_path).st_mode & 0o777
        self.assertEqual(mode, 0o666, f"socket mode: got {mode:o}, want 666 (listen.mode)")


class PageCacheCase(LmtpCase):
    def deliver(self, local, size):
        body = (b"y" * 998 + b"\r\n") * (size // 1000)
        txn = self.session().transaction(SENDER, [addr(local)], message("cache", body))
        self.assertReply(txn.finals[0], 250, "2.0.0", rcpt=addr(local), context="delivery")
        files = self.new_files(local)
        self.assertEqual(len(files), 1, f"{local}'s new/")
        return files[0]


class PageCacheTest(PageCacheCase):
    """mailbox.page_cache = "drop" (the default): a delivered file's pages leave the page cache
    once on disk, a large file's while it is written."""

    def test_delivered_files_leave_the_page_cache(self):
        # 64 KiB: dropped after the fsync; 24 MiB: on the writer thread, window by window.
        for local, size in (("small", 64 * 1024), ("large", 24 * 1024 * 1024)):
            path = self.deliver(local, size)
            self.assertEqual(harness.resident_bytes(path), 0,
                             f"{local}: pages still in the page cache")
            self.assertGreater(os.path.getsize(path), size * 99 // 100,
                               f"{local}: the whole message")


class PageCacheKeptTest(PageCacheCase):
    overrides = {"mailbox": {"page_cache": "keep"}}

    def test_delivered_files_stay_in_the_page_cache(self):
        path = self.deliver("kept", 64 * 1024)
        self.assertGreaterEqual(harness.resident_bytes(path), os.path.getsize(path),
                                "with page_cache = \"keep\" the written pages stay cached")


class ShutdownTest(LmtpCase):
    def test_sigterm_closes_idle_sessions(self):
        client = self.session()
        self.server.proc.send_signal(signal.SIGTERM)
        reply = client.reply()
        self.assertReply(reply, 421, "4.3.2", context="SIGTERM with an idle session")
        self.assertTrue(client.closed_by_peer(), "connection must be closed after 421")
        try:
            code = self.server.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.fail("mailseal did not exit within 10s of SIGTERM\n" + self.server.diagnostics())
        self.assertEqual(code, 0, "exit status after SIGTERM\n" + self.server.diagnostics())

    def test_sigterm_answers_a_client_waiting_inside_a_transaction(self):
        # After MAIL and RCPT nothing of a message is accepted yet: a stopping daemon answers
        # the next command with 421 at once instead of waiting for the client.
        client = self.session()
        self.assertReply(client.command(f"MAIL FROM:<{SENDER}>"), 250, "2.1.0")
        self.assertReply(client.command(f"RCPT TO:<{addr('alice')}>"), 250, "2.1.5")
        self.server.proc.send_signal(signal.SIGTERM)
        self.assertReply(client.reply(), 421, "4.3.2", context="SIGTERM after RCPT")
        self.assertTrue(client.closed_by_peer())
        self.assertEqual(self.server.proc.wait(timeout=10), 0, "exit status after SIGTERM")
        self.assertEqual(self.new_files("alice"), [])

    def test_second_signal_stops_at_once(self):
        client = self.session()
        client.send(f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{addr('alice')}>\r\nDATA\r\n")
        for reply in client.replies(3):
            self.assertLess(reply.code, 400, f"{reply!r}")
        client.send(b"Subject: never finished\r\n")
        self.server.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: "event=stopping" in self.server.log(), 10, "event=stopping",
                   diagnostics=self.server.diagnostics)
        self.assertTrue(self.server.running(), "a message in progress keeps the daemon up")
        self.server.proc.send_signal(signal.SIGTERM)
        self.assertEqual(self.server.proc.wait(timeout=10), 0, "exit status after two signals")
        self.assertIn("reason=\"second signal\"", self.server.log())
        self.assertEqual(self.new_files("alice"), [], "an unfinished message is never delivered")
        self.assertEqual(self.tmp_files("alice"), [], "nor left in tmp/")

    def test_second_instance_does_not_take_over_the_socket(self):
        second = harness.Mailseal(self.dir + "/second", {
            "listen": [{"unix": self.server.unix_path, "mode": harness.Octal(0o666)}]})
        proc = subprocess.run([harness.MAILSEAL_BIN, "serve", "--config", second.config_path,
                               *harness.ROOT_FLAG],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=30)
        self.assertNotEqual(proc.returncode, 0, "a second daemon on a live socket must not start")
        self.assertIn("another process is listening there", proc.stderr)
        self.assertEqual(self.session(unix=True).command("NOOP").code, 250,
                         "the first daemon still owns its socket")

    def test_sigterm_finishes_transaction_in_progress(self):
        client = self.session()
        client.send(f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{addr('alice')}>\r\nDATA\r\n")
        for reply in client.replies(3):
            self.assertLess(reply.code, 400, f"{reply!r}")
        data = message("during shutdown", b"Sent while mailseal stops.\r\n")
        client.send(data[:20])
        self.server.proc.send_signal(signal.SIGTERM)
        # The message being received is still accepted and delivered; the session ends
        # afterwards with 421 4.3.2.
        client.send(harness.dot_stuff(data)[20:])
        self.assertReply(client.reply(), 250, "2.0.0", rcpt=addr("alice"),
                         context="transaction in progress at SIGTERM")
        self.assertReply(client.reply(), 421, "4.3.2", context="after the transaction")
        self.assertTrue(client.closed_by_peer())
        files = self.new_files("alice")
        self.assertEqual(len(files), 1)
        self.assertDelivered(files[0], SENDER, addr("alice"), data)
        self.assertEqual(self.server.proc.wait(timeout=10), 0, "exit status after SIGTERM")


class SwaksTest(LmtpCase):
    def run_swaks(self, *target):
        body_path = os.path.join(self.dir, "swaks-body.eml")
        with open(body_path, "wb") as f:
            # No final newline: swaks ends the data with CRLF itself before the dot.
            f.write(b"From: <sender@remote.example>\nSubject: swaks\n\nSent by swaks.")
        proc = subprocess.run(
            ["swaks", "--protocol", "LMTP", *target, "--from", SENDER, "--to", addr("erin"),
             "--helo", "swaks.test.example", "--data", "@" + body_path],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            timeout=30)
        transcript = proc.stdout.decode("utf-8", "replace")
        self.assertEqual(proc.returncode, 0, f"swaks failed:\n{transcript}\n"
                         + self.server.diagnostics())
        self.assertIn("LHLO swaks.test.example", transcript)
        self.assertIn(f"250 2.0.0 <{addr('erin')}> Delivered", transcript)
        files = self.new_files("erin")
        self.assertEqual(len(files), 1, f"erin's new/: {files}")
        self.assertDelivered(files[0], SENDER, addr("erin"),
                             b"From: <sender@remote.example>\r\nSubject: swaks\r\n\r\n"
                             b"Sent by swaks.\r\n")

    def test_swaks_tcp(self):
        self.run_swaks("--server", "127.0.0.1", "--port", str(self.server.port))

    def test_swaks_unix(self):
        self.run_swaks("--socket", self.server.unix_path)


class CommandTest(LmtpCase):
    overrides = {"limits": {"message_size": "1M"}}

    def test_greeting_names_host(self):
        client = self.server.raw(greet=False)
        self.addCleanup(client.close)
        greeting = client.reply()
        self.assertReply(greeting, 220, context="greeting")
        # RFC 5321 §4.2: greeting = "220 " Domain [ SP textstring ].
        self.assertEqual(greeting.lines[0].split(" ")[0], harness.HOSTNAME,
                         f"greeting: got {greeting!r}, want the configured hostname first")

    def test_lhlo_capabilities(self):
        client = self.client()
        reply = client.lhlo()
        self.assertReply(reply, 250, context="LHLO")
        self.assertEqual(reply.lines[0].split(" ")[0], harness.HOSTNAME,
                         f"LHLO: got {reply!r}, want the configured hostname on the first line")
        capabilities = {line.split(" ")[0].upper(): line for line in reply.lines[1:]}
        # RFC 2033 §5: MUST PIPELINING and ENHANCEDSTATUSCODES, SHOULD 8BITMIME (without it
        # Postfix downgrades 8-bit mail, standards.md §3).
        for required in ("PIPELINING", "ENHANCEDSTATUSCODES", "8BITMIME"):
            self.assertIn(required, capabilities, f"LHLO: got {reply!r}, want {required}")
        # SIZE= is accepted at MAIL (common.md's 552 5.3.4 for SIZE over the limit), so the
        # limit is announced (RFC 1870 §4).
        self.assertIn("SIZE", capabilities, f"LHLO: got {reply!r}, want SIZE")
        self.assertEqual(capabilities["SIZE"], "SIZE 1048576",
                         f"SIZE must announce limits.message_size = 1M; got {reply!r}")

    def test_helo_and_ehlo_refused(self):
        client = self.client()
        self.assertReply(client.command("HELO client.test.example"), 500, "5.5.1", context="HELO")
        self.assertReply(client.command("EHLO client.test.example"), 500, "5.5.1", context="EHLO")
        self.assertReply(client.lhlo(), 250, context="LHLO after HELO/EHLO")
        self.assertReply(client.command(f"MAIL FROM:<{SENDER}>"), 250, "2.1.0", context="MAIL")

    def test_unknown_command(self):
        client = self.session()
        self.assertReply(client.command("FROBNICATE now"), 500, "5.5.1", context="unknown command")
        self.assertReply(client.command("NOOP"), 250, "2.0.0", context="NOOP afterwards")

    def test_vrfy(self):
        client = self.session()
        self.assertReply(client.command(f"VRFY {addr('alice')}"), 252, context="VRFY")

    def test_noop_and_rset(self):
        client = self.session()
        self.assertReply(client.command("NOOP"), 250, "2.0.0", context="NOOP")
        self.assertReply(client.command(f"MAIL FROM:<{SENDER}>"), 250, context="MAIL")
        self.assertReply(client.command(f"RCPT TO:<{addr('alice')}>"), 250, context="RCPT")
        self.assertReply(client.command("RSET"), 250, "2.0.0", context="RSET")
        # The transaction is gone: RCPT needs a new MAIL, and DATA has nothing to deliver.
        self.assertReply(client.command(f"RCPT TO:<{addr('alice')}>"), 503, "5.5.1",
                         context="RCPT after RSET")
        self.assertReply(client.command("DATA"), 503, "5.5.1", context="DATA after RSET")
        self.assertReply(client.command(f"MAIL FROM:<{SENDER}>"), 250, context="MAIL after RSET")
        self.assertReply(client.command("QUIT"), 221, "2.0.0", context="QUIT")
        self.assertTrue(client.closed_by_peer(), "connection must close after 221")
        self.assertEqual(self.new_files("alice"), [], "RSET transaction delivered nothing")

    def test_bad_sequence(self):
        client = self.session()
        self.assertReply(client.command(f"RCPT TO:<{addr('alice')}>"), 503, "5.5.1",
                         context="RCPT before MAIL")
        self.assertReply(client.command("DATA"), 503, "5.5.1", context="DATA before MAIL")
        self.assertReply(client.command(f"MAIL FROM:<{SENDER}>"), 250, context="MAIL")
        self.assertReply(client.command(f"MAIL FROM:<{SENDER}>"), 503, "5.5.1",
                         context="second MAIL in a transaction")

    def test_data_without_recipients(self):
        client = self.session()
        self.assertReply(client.command(f"MAIL FROM:<{SENDER}>"), 250, context="MAIL")
        self.assertReply(client.command("DATA"), 503, "5.5.1", context="DATA without RCPT")
        # Every RCPT refused: DATA must still fail with 503 (RFC 2033 §4.2).
        self.assertReply(client.command("RCPT TO:<x@elsewhere.example>"), 550, "5.1.1",
                         context="RCPT non-local")
        self.assertReply(client.command("DATA"), 503, "5.5.1",
                         context="DATA with every RCPT refused")
        self.assertReply(client.command("NOOP"), 250, context="NOOP afterwards")

    def test_syntax_errors(self):
        client = self.session()
        self.assertReply(client.command("MAIL FRM:<a@b.example>"), 501, "5.5.4",
                         context="MAIL without FROM:")
        self.assertReply(client.command(f"MAIL FROM:<{SENDER}>"), 250, context="MAIL")
        self.assertReply(client.command("RCPT"), 501, "5.5.4", context="RCPT without TO:")
        self.assertReply(client.command(f"RCPT TO:<{addr('alice')}> NOSUCHPARAM=1"), 555,
                         "5.5.4", context="unknown RCPT parameter")
        self.assertReply(client.command(f"RCPT TO:<{addr('alice')}>"), 250,
                         context="RCPT after the errors")

    def test_command_line_too_long(self):
        client = self.session()
        # limits.command_line_length = 512 (default) including CRLF.
        self.assertReply(client.command("NOOP " + "x" * 505), 250, context="NOOP of 512 octets")
        self.assertReply(client.command("NOOP " + "x" * 600), 500, "5.5.2",
                         context="NOOP of 607 octets")
        self.assertReply(client.command("NOOP"), 250, context="NOOP after the long line")

    def test_size_parameter(self):
        client = self.session()
        self.assertReply(client.command(f"MAIL FROM:<{SENDER}> SIZE=1048577"), 552, "5.3.4",
                         context="SIZE over limits.message_size")
        self.assertReply(client.command(f"MAIL FROM:<{SENDER}> SIZE=1048576 BODY=8BITMIME"),
                         250, "2.1.0", context="SIZE at the limit")


class BodyTest(LmtpCase):
    overrides = {"limits": {"message_size": 65536}}

    def test_oversized_body(self):
        recipients = [addr("alice"), addr("bob")]
        body = message("big", (b"x" * 70 + b"\r\n") * 1000)  # ~72 KB > 64 KiB
        client = self.session()
        txn = client.transaction(SENDER, recipients, body)
        self.assertReply(txn.data, 354, context="DATA")
        self.assertEqual(len(txn.finals), 2, f"{txn!r}")
        for r, reply in zip(recipients, txn.finals):
            self.assertReply(reply, 552, "5.3.4", rcpt=r, context="oversized message")
        for local in ("alice", "bob"):
            self.assertEqual(self.new_files(local), [], f"{local}'s new/")
            self.assertEqual(self.tmp_files(local), [], f"{local}'s tmp/")
        self.assertReply(client.command("NOOP"), 250, context="NOOP after the refusal")
        # The session goes on: a message within the limit is delivered.
        small = message("ok", b"fits\r\n")
        txn = client.transaction(SENDER, recipients, small)
        for r, reply in zip(recipients, txn.finals):
            self.assertReply(reply, 250, "2.0.0", rcpt=r, context="small message")

    def test_data_line_length(self):
        """limits.data_line_length = 1000 (default) including CRLF, not counting a stuffed dot
        (RFC 5321 §4.5.3.1.6)."""
        client = self.session()
        at_limit = message("limit", b"a" * 998 + b"\r\n" + b"." + b"b" * 997 + b"\r\n")
        txn = client.transaction(SENDER, [addr("alice")], at_limit)
        self.assertReply(txn.finals[0], 250, "2.0.0", rcpt=addr("alice"),
                         context="lines of exactly 1000 octets")
        files = self.new_files("alice")
        self.assertEqual(len(files), 1)
        self.assertDelivered(files[0], SENDER, addr("alice"), at_limit)

        recipients = [addr("bob"), addr("carol")]
        too_long = message("toolong", b"short\r\n" + b"a" * 999 + b"\r\nend\r\n")
        txn = client.transaction(SENDER, recipients, too_long)
        self.assertEqual(len(txn.finals), 2, f"{txn!r}")
        for r, reply in zip(recipients, txn.finals):
            self.assertReply(reply, 554, "5.6.0", rcpt=r, context="a line of 1001 octets")
        for local in ("bob", "carol"):
            self.assertEqual(self.new_files(local), [], f"{local}'s new/")
        self.assertReply(client.command("NOOP"), 250, context="NOOP afterwards")

    def test_bare_lf_does_not_end_data(self):
        """SMTP smuggling: only <CRLF>.<CRLF> ends DATA (RFC 5321 §2.3.8, §4.1.1.4)."""
        client = self.session()
        client.send(f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{addr('alice')}>\r\nDATA\r\n")
        self.assertReply(client.reply(), 250, context="MAIL")
        self.assertReply(client.reply(), 250, context="RCPT")
        self.assertReply(client.reply(), 354, context="DATA")
        smuggled = (f"MAIL FROM:<evil@remote.example>\r\nRCPT TO:<{addr('bob')}>\r\n"
                    f"DATA\r\n").encode()
        content = (b"Subject: smuggling\r\n\r\nbefore\n.\n" + smuggled + b"middle\r.\r"
                   + smuggled + b"after\r\n")
        client.send(content + b".\r\nNOOP\r\n")
        self.assertReply(client.reply(), 250, "2.0.0", rcpt=addr("alice"),
                         context="the one reply after the real end of data")
        self.assertReply(client.reply(), 250, "2.0.0", context="NOOP after the message")
        self.assertEqual(self.new_files("bob"), [], "a smuggled transaction was delivered")
        files = self.new_files("alice")
        self.assertEqual(len(files), 1, f"alice's new/: {files}")
        stored = harness.read_bytes(files[0])
        self.assertIn(b"before\n.\nMAIL FROM:<evil@remote.example>", stored,
                      "bare LF content must be kept as message content")
        self.assertIn(b"middle\r.\rMAIL FROM:<evil@remote.example>", stored,
                      "bare CR content must be kept as message content")

    def test_client_disconnect_mid_data(self):
        make_maildir(self.server.maildir("alice"))
        client = self.client()
        client.lhlo()
        client.send(f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{addr('alice')}>\r\nDATA\r\n")
        client.replies(3)
        client.send(b"Subject: cut off\r\n\r\n" + b"partial line\r\n" * 2000 + b"no end")
        client.close()
        wait_until(lambda: self.tmp_files("alice") == [], 5, "alice's tmp/ to be cleaned",
                   diagnostics=self.server.diagnostics)
        self.assertEqual(self.new_files("alice"), [], "a cut-off message was delivered")
        self.assertTrue(self.server.running(), "mailseal exited\n" + self.server.diagnostics())
        txn = self.session().transaction(SENDER, [addr("alice")], message("after", b"ok\r\n"))
        self.assertReply(txn.finals[0], 250, "2.0.0", rcpt=addr("alice"),
                         context="delivery after a client vanished mid-DATA")
        self.assertEqual(len(self.new_files("alice")), 1)


class RecipientLimitTest(LmtpCase):
    overrides = {"limits": {"recipients": 100}}

    def test_101st_recipient(self):
        recipients = [addr(f"user{i:03d}") for i in range(101)]
        body = message("many", b"To a hundred.\r\n")
        txn = self.session().transaction(SENDER, recipients, body)
        for i, reply in enumerate(txn.rcpts[:100]):
            self.assertReply(reply, 250, "2.1.5", context=f"RCPT #{i + 1}")
        # RFC 5321 §4.5.3.1.10: too many recipients is 452, so the client retries the rest.
        self.assertReply(txn.rcpts[100], 452, "4.5.3", context="RCPT #101")
        self.assertReply(txn.data, 354, context="DATA")
        self.assertEqual(len(txn.finals), 100, "one reply per accepted recipient")
        for r, reply in zip(recipients, txn.finals):
            self.assertReply(reply, 250, "2.0.0", rcpt=r, context="delivery")
        self.assertEqual(self.new_files("user100"), [], "the 101st recipient got a copy")
        self.assertEqual(len(self.new_files("user099")), 1)


class ConnectionLimitTest(LmtpCase):
    overrides = {"limits": {"connections": 1}}

    def test_second_connection_refused(self):
        first = self.session()
        second = self.server.raw(greet=False)
        self.addCleanup(second.close)
        reply = second.reply()
        self.assertEqual(reply.code, 421,
                         f"greeting of connection #2 over the limit: got {reply!r}, want 421")
        self.assertTrue(second.closed_by_peer(), "an over-limit connection must be closed")
        self.assertReply(first.command("NOOP"), 250, context="first connection still served")
        self.assertReply(first.command("QUIT"), 221, context="QUIT")
        self.assertTrue(first.closed_by_peer())

        # The slot is released once the first session has ended.
        def greeted():
            c = self.server.raw(greet=False)
            try:
                return c.reply().code == 220
            finally:
                c.close()

        wait_until(greeted, 5, "a 220 greeting once the first connection closed",
                   interval=0.05, diagnostics=self.server.diagnostics)


class IdleTimeoutTest(LmtpCase):
    overrides = {"limits": {"idle_timeout": "1s"}}

    def test_idle_timeout(self):
        client = self.session()
        started = time.monotonic()
        reply = client.reply()  # nothing sent: the server must time out and say so
        elapsed = time.monotonic() - started
        self.assertReply(reply, 421, "4.4.2", context="idle timeout")
        self.assertGreaterEqual(elapsed, 0.9, "timed out before idle_timeout")
        self.assertTrue(client.closed_by_peer(), "connection must be closed after 421")


class CommandTimeoutTest(LmtpCase):
    # command_timeout applies inside a transaction, between its commands; idle_timeout is
    # long here so that only command_timeout can fire.
    overrides = {"limits": {"command_timeout": "1s", "idle_timeout": "1h"}}

    def test_command_timeout_in_transaction(self):
        client = self.session()
        self.assertReply(client.command(f"MAIL FROM:<{SENDER}>"), 250, context="MAIL")
        self.assertReply(client.command(f"RCPT TO:<{addr('alice')}>"), 250, context="RCPT")
        started = time.monotonic()
        reply = client.reply()
        self.assertGreaterEqual(time.monotonic() - started, 0.9, "timed out too early")
        self.assertReply(reply, 421, "4.4.2", context="command timeout")
        self.assertTrue(client.closed_by_peer(), "connection must be closed after 421")
        self.assertEqual(self.new_files("alice"), [])


class DataTimeoutTest(LmtpCase):
    overrides = {"limits": {"data_timeout": "1s"}}

    def test_data_timeout(self):
        make_maildir(self.server.maildir("alice"))
        client = self.session()
        client.send(f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{addr('alice')}>\r\nDATA\r\n")
        for reply in client.replies(3):
            self.assertLess(reply.code, 400, f"{reply!r}")
        client.send(b"Subject: stalled\r\n\r\n" + b"some data\r\n" * 100 + b"then nothing")
        reply = client.reply()
        self.assertReply(reply, 421, "4.4.2", context="data timeout")
        self.assertTrue(client.closed_by_peer(), "connection must be closed after 421")
        wait_until(lambda: self.tmp_files("alice") == [], 5, "alice's tmp/ to be cleaned",
                   diagnostics=self.server.diagnostics)
        self.assertEqual(self.new_files("alice"), [], "a timed-out message was delivered")


if __name__ == "__main__":
    unittest.main()

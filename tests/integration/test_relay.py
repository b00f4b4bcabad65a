# SPDX-License-Identifier: Apache-2.0
"""mailseal in front of Dovecot ([store] kind = "lmtp"): each recipient's copy is relayed to a
real Dovecot LMTP server in a transaction of its own, and Dovecot's verdict comes back.

- Dovecot's own replies pass through unchanged: 250 from its save, 452 4.2.2 from a full quota
  and 550 5.1.1 for a user it does not know; Postfix defers and bounces on them.
- What Dovecot stores is what mailseal sent: a sealed copy that opens with the recipient's key,
  a plain copy byte for byte (leading dots included), each read back with doveadm.
- Connections to Dovecot are reused; with Dovecot down mailseal answers 451 4.4.1 and keeps
  serving, and once Dovecot is back the stale pooled connection is replaced.
- The next hop may be a unix socket or TCP; `mailseal deliver` relays the same way.
"""

import os
import secrets
import shutil
import signal
import subprocess

import decryptors
import harness
from harness import DOMAIN, SENDER


def addr(local):
    return f"{local}@{DOMAIN}"


# alice has a key in the local store; erin has none; bob's quota is 1 KiB; "nobody" is unknown.
USERS = {addr("alice"): None, addr("erin"): None, addr("bob"): "1K"}


def body_with_dots(tag):
    return (f"From: <{SENDER}>\r\nTo: <{addr('erin')}>\r\nSubject: relay {tag}\r\n"
            "\r\n.leading dot\r\n..two dots\r\n.\r\nline\r\n" + "filler line\r\n" * 300
            ).encode()


class RelayTest(harness.TestCase):
    def setUp(self):
        super().setUp()
        self.vmail = os.path.join(self.dir, "dovecot-vmail")
        os.makedirs(self.vmail)
        shutil.chown(self.vmail, "mail", "mail")
        self.store = os.path.join(self.dir, "certs")
        self.alice = decryptors.Identity(addr("alice"), directory=self.dir)
        self.addCleanup(self.alice.close)
        harness.add_to_local_store(self.store, addr("alice"), self.alice.cert_path)
        self.lmtp_port = harness.free_port()
        self.dovecot = self.start_dovecot(self.vmail, USERS, self.lmtp_port)

    def start_relay(self, next_hop=None, **store):
        return self.start_mailseal({
            "store": {"kind": "lmtp", "next_hop": next_hop or self.dovecot.lmtp_socket,
                      **store},
            "keys": {"local_store": self.store},
        })

    def fetch(self, local):
        return self.dovecot.fetch(addr(local), ("guid", "hdr.subject", "text"))

    def test_dovecot_replies_pass_through_and_copies_are_stored(self):
        server = self.start_relay()
        data = body_with_dots("one")
        rcpts = [addr("alice"), addr("erin"), addr("bob"), addr("nobody")]
        with server.raw() as client:
            client.lhlo()
            txn = client.transaction(SENDER, rcpts, data)
            client.command("QUIT")
        alice, erin, bob, nobody = txn.finals
        self.assertReply(alice, 250, "2.0.0", rcpt=addr("alice"), context="alice (sealed)")
        self.assertIn("Saved", alice.lines[0], "Dovecot's own 250 text")
        self.assertReply(erin, 250, "2.0.0", rcpt=addr("erin"), context="erin (plain)")
        self.assertReply(bob, 452, "4.2.2", rcpt=addr("bob"), context="bob (over quota)")
        self.assertEqual(bob.lines, [f"4.2.2 <{addr('bob')}> Quota exceeded (mailbox for user "
                                     "is full)"], "Dovecot's text, unchanged and not prefixed twice")
        self.assertReply(nobody, 550, "5.1.1", rcpt=addr("nobody"), context="unknown user")
        self.assertIn("User doesn't exist", nobody.lines[0])

        records = self.fetch("alice")
        self.assertEqual(len(records), 1, records)
        self.assertEqual(records[0]["hdr.subject"], "relay one")
        stored = records[0]["text"]
        self.assertIn(b"application/pkcs7-mime", stored)
        self.assertNotIn(b"filler line", stored)
        self.assertIn(b"Mailseal: sealed; format=smime; keys=1; cipher=aes-256-cbc", stored)
        inner = decryptors.decrypt_openssl(decryptors.extract_cms(stored), self.alice)
        self.assertTrue(inner.endswith(data.split(b"\r\n\r\n", 1)[1]), inner[-200:])

        records = self.fetch("erin")
        self.assertEqual(len(records), 1, records)
        stored = records[0]["text"].replace(b"\r\n", b"\n")
        # Dovecot added Return-Path and Delivered-To; mailseal only its Received: field.
        head, body = stored.split(b"\n\n", 1)
        self.assertEqual(body, data.split(b"\r\n\r\n", 1)[1].replace(b"\r\n", b"\n"),
                         "the plain copy's body, dots and all")
        self.assertEqual(head.count(b"\nReceived: "), 2, head)  # Dovecot's and ours
        self.assertIn(b"(mailseal) with LMTP", head)
        self.assertEqual(head.count(b"Delivered-To: "), 1, head)
        self.assertIn(b"Mailseal: plain; reason=no-key", head)
        self.assertEqual(self.fetch("bob"), [], "nothing stored over quota")

        events = {e["rcpt"]: e for e in server.delivery_events()}
        self.assertEqual(events[f"<{addr('bob')}>"]["reply"], "452 4.2.2")
        self.assertIn(f"unix:{self.dovecot.lmtp_socket}", events[f"<{addr('bob')}>"]["detail"])
        self.assertEqual(events[f"<{addr('alice')}>"]["decision"], "sealed")
        self.assertEqual(events[f"<{addr('nobody')}>"]["result"], "bounced")

    def test_connections_are_reused(self):
        server = self.start_relay()
        before = self.dovecot.connections()
        with server.raw() as client:
            client.lhlo()
            for i in range(5):
                txn = client.transaction(SENDER, [addr("erin")], body_with_dots(f"reuse {i}"))
                self.assertReply(txn.finals[0], 250, "2.0.0", context=f"message {i}")
            # Two recipients at once need two connections; afterwards both are kept.
            txn = client.transaction(SENDER, [addr("erin"), addr("alice")], body_with_dots("two"))
            for reply in txn.finals:
                self.assertReply(reply, 250, "2.0.0", context="two recipients")
            txn = client.transaction(SENDER, [addr("erin"), addr("alice")], body_with_dots("2"))
            for reply in txn.finals:
                self.assertReply(reply, 250, "2.0.0", context="two recipients again")
        self.assertEqual(self.dovecot.connections() - before, 2,
                         "7 transactions over 2 connections\n" + self.dovecot.diagnostics())
        self.assertEqual(len(self.fetch("erin")), 7)

    def test_dead_next_hop_defers_and_recovers(self):
        server = self.start_relay()
        with server.raw() as client:
            client.lhlo()
            txn = client.transaction(SENDER, [addr("erin")], body_with_dots("before"))
            self.assertReply(txn.finals[0], 250, "2.0.0", context="Dovecot up")
            self.dovecot.stop()
            for i in range(2):
                txn = client.transaction(SENDER, [addr("erin"), addr("alice")],
                                         body_with_dots(f"down {i}"))
                for rcpt, reply in zip((addr("erin"), addr("alice")), txn.finals):
                    self.assertReply(reply, 451, "4.4.1", rcpt=rcpt, context="Dovecot down")
            self.assertTrue(server.running())
            self.dovecot.start()
            # The pooled connection died with the old Dovecot: noticed, replaced, delivered.
            txn = client.transaction(SENDER, [addr("erin")], body_with_dots("after"))
            self.assertReply(txn.finals[0], 250, "2.0.0", context="Dovecot back")
        subjects = sorted(r["hdr.subject"] for r in self.fetch("erin"))
        self.assertEqual(subjects, ["relay after", "relay before"])
        events = [e for e in server.delivery_events() if e["reply"] == "451 4.4.1"]
        self.assertEqual(len(events), 4)
        self.assertIn("connect", events[0]["detail"])

    def test_sigterm_lets_a_relayed_transaction_finish(self):
        server = self.start_relay()
        with server.raw() as client:
            client.lhlo()
            client.send(f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{addr('erin')}>\r\n"
                        f"RCPT TO:<{addr('alice')}>\r\nDATA\r\n")
            for reply in client.replies(4):
                self.assertLess(reply.code, 400, f"{reply!r}")
            data = harness.dot_stuff(body_with_dots("at sigterm"))
            client.send(data[:100])
            server.proc.send_signal(signal.SIGTERM)
            harness.wait_until(lambda: "event=stopping" in server.log(), 10, "event=stopping",
                               diagnostics=server.diagnostics)
            client.send(data[100:])
            for rcpt in (addr("erin"), addr("alice")):
                self.assertReply(client.reply(), 250, "2.0.0", rcpt=rcpt,
                                 context="transaction in flight at SIGTERM")
            self.assertReply(client.reply(), 421, "4.3.2", context="after the transaction")
        self.assertEqual(server.proc.wait(timeout=10), 0)
        self.assertEqual([r["hdr.subject"] for r in self.fetch("erin")], ["relay at sigterm"])
        self.assertEqual([r["hdr.subject"] for r in self.fetch("alice")], ["relay at sigterm"])

    def test_postfix_through_mailseal_to_dovecot_over_tcp(self):
        server = self.start_relay(f"127.0.0.1:{self.lmtp_port}")
        postfix = harness.Postfix(self.dir, f"lmtp:unix:{server.unix_path}")
        self.addCleanup(postfix.stop)
        postfix.start()
        subject = "via postfix " + secrets.token_hex(4)
        data = (f"From: <{SENDER}>\r\nTo: <{addr('alice')}>\r\nSubject: {subject}\r\n"
                "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
                "\r\nSealed before Dovecot sees it: ünïcödé\r\n" + "x" * 2000 + "\r\n").encode()
        postfix.sendmail(SENDER, [addr("alice"), addr("bob"), addr("nobody")], data)

        sent = postfix.wait_status(addr("alice"))
        self.assertEqual((sent["status"], sent["dsn"]), ("sent", "2.0.0"),
                         sent["line"] + "\n" + postfix.diagnostics())
        deferred = postfix.wait_status(addr("bob"))
        self.assertEqual((deferred["status"], deferred["dsn"]), ("deferred", "4.2.2"),
                         deferred["line"])
        self.assertIn(f"452 4.2.2 <{addr('bob')}> Quota exceeded", deferred["text"])
        bounced = postfix.wait_status(addr("nobody"))
        self.assertEqual((bounced["status"], bounced["dsn"]), ("bounced", "5.1.1"),
                         bounced["line"])
        self.assertIn("User doesn't exist", bounced["text"])

        records = self.fetch("alice")
        self.assertEqual([r["hdr.subject"] for r in records], [subject])
        inner = decryptors.decrypt_openssl(decryptors.extract_cms(records[0]["text"]),
                                           self.alice)
        self.assertIn("Sealed before Dovecot sees it: ünïcödé".encode(), inner)
        self.assertIn("tcp:127.0.0.1:", server.delivery_events()[0]["detail"])

    def test_deliver_relays_with_sysexits(self):
        server = harness.Mailseal(self.dir, {
            "store": {"kind": "lmtp", "next_hop": self.dovecot.lmtp_socket},
            "keys": {"local_store": self.store},
        })
        data = body_with_dots("lda")
        cases = [("alice", 0), ("bob", 75), ("nobody", 67)]
        for local, status in cases:
            proc = subprocess.run(
                [harness.MAILSEAL_BIN, "deliver", "--config", server.config_path, "-f", SENDER,
                 "-t", addr(local)], input=data, capture_output=True, timeout=60)
            self.assertEqual(proc.returncode, status, f"{local}: {proc.stderr!r}")
            if status:
                self.assertEqual(len(proc.stderr.splitlines()), 1, proc.stderr)
        self.assertEqual([r["hdr.subject"] for r in self.fetch("alice")], ["relay lda"])
        proc = subprocess.run([harness.MAILSEAL_BIN, "test-message", "--config",
                               server.config_path, addr("alice")],
                              capture_output=True, timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        records = self.fetch("alice")
        self.assertEqual([r["hdr.subject"] for r in records],
                         ["relay lda", "mailseal test message"])
        inner = decryptors.decrypt_openssl(decryptors.extract_cms(records[1]["text"]),
                                           self.alice)
        self.assertIn(b"If you can read this", inner)

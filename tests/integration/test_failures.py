"""Storage failures map to the replies of common.md, per recipient, and leave nothing in new/:
a read-only Maildir (451 4.3.0), a missing Maildir with on_missing = "refuse" (550 5.1.1 at
RCPT) and a full file system (452 4.3.1). Read-only and full file systems are real tmpfs
mounts, since root ignores permission bits."""

import os
import unittest

import harness
from harness import DOMAIN, SENDER, message


def addr(local):
    return f"{local}@{DOMAIN}"


def make_maildir(path):
    for sub in ("new", "cur", "tmp"):
        os.makedirs(os.path.join(path, sub), exist_ok=True)


class FailureCase(harness.TestCase):
    overrides = None

    def setUp(self):
        super().setUp()
        self.server = self.start_mailseal(self.overrides)

    def require_mounts(self):
        reason = harness.mounting_possible()
        if reason is not None:
            self.skipTest(f"cannot mount a tmpfs on this machine ({reason}); the read-only "
                          f"and disk-full cases need one because root ignores permissions")

    def tmpfs_maildir(self, local, size, read_only=False):
        """local's Maildir as its own tmpfs of `size`, with new/ cur/ tmp/ made, then
        optionally remounted read-only."""
        maildir = self.server.maildir(local)
        os.makedirs(maildir)
        reason = harness.mount_tmpfs(maildir, size)
        if reason is not None:
            self.skipTest(f"mount -t tmpfs failed: {reason}")
        self.addCleanup(harness.remove_test_dir, maildir)
        make_maildir(maildir)
        if read_only:
            reason = harness.remount_read_only(maildir)
            if reason is not None:
                self.fail(f"remounting {maildir} read-only failed: {reason}")
        return maildir

    def deliver(self, recipients, data):
        with self.server.raw() as client:
            self.assertReply(client.lhlo(), 250, context="LHLO")
            txn = client.transaction(SENDER, recipients, data)
            client.command("QUIT")
        return txn

    def assertNothingStored(self, local):
        maildir = self.server.maildir(local)
        self.assertEqual(harness.maildir_files(maildir, "new"), [], f"{local}'s new/")
        self.assertEqual(harness.maildir_files(maildir, "tmp"), [], f"{local}'s tmp/")


class ReadOnlyMaildirTest(FailureCase):
    def test_read_only_maildir(self):
        self.require_mounts()
        self.tmpfs_maildir("alice", "1m", read_only=True)
        make_maildir(self.server.maildir("bob"))
        data = message("read-only", b"Cannot be stored for alice.\r\n")
        txn = self.deliver([addr("alice"), addr("bob")], data)
        self.assertReply(txn.rcpts[0], 250, "2.1.5", context="RCPT alice")
        self.assertReply(txn.data, 354, context="DATA")
        self.assertEqual(len(txn.finals), 2, f"{txn!r}")
        self.assertReply(txn.finals[0], 451, "4.3.0", rcpt=addr("alice"),
                         context="read-only Maildir")
        self.assertReply(txn.finals[1], 250, "2.0.0", rcpt=addr("bob"), context="bob")
        self.assertNothingStored("alice")
        self.assertEqual(len(harness.maildir_files(self.server.maildir("bob"), "new")), 1)


class MissingMaildirTest(FailureCase):
    overrides = {"mailbox": {"on_missing": "refuse"}}

    def test_missing_maildir_refused_at_rcpt(self):
        make_maildir(self.server.maildir("alice"))
        data = message("refuse", b"Only alice has a Maildir.\r\n")
        txn = self.deliver([addr("nobody"), addr("alice")], data)
        self.assertReply(txn.rcpts[0], 550, "5.1.1", context="RCPT without a Maildir")
        self.assertReply(txn.rcpts[1], 250, "2.1.5", context="RCPT alice")
        self.assertEqual(len(txn.finals), 1, f"{txn!r}")
        self.assertReply(txn.finals[0], 250, "2.0.0", rcpt=addr("alice"), context="alice")
        self.assertFalse(os.path.exists(self.server.maildir("nobody")),
                         "on_missing = refuse must not create the Maildir")
        self.assertFalse(os.path.exists(os.path.dirname(self.server.maildir("nobody"))),
                         "on_missing = refuse must not create the user's directory")

    def test_only_missing_recipients(self):
        with self.server.raw() as client:
            client.lhlo()
            self.assertReply(client.command(f"MAIL FROM:<{SENDER}>"), 250, context="MAIL")
            self.assertReply(client.command(f"RCPT TO:<{addr('nobody')}>"), 550, "5.1.1",
                             context="RCPT without a Maildir")
            self.assertReply(client.command("DATA"), 503, "5.5.1", context="DATA")


class DiskFullTest(FailureCase):
    def test_disk_full(self):
        self.require_mounts()
        self.tmpfs_maildir("alice", "64k")
        make_maildir(self.server.maildir("bob"))
        data = message("full", (b"y" * 78 + b"\r\n") * 2600)  # ~200 KB
        txn = self.deliver([addr("alice"), addr("bob")], data)
        self.assertReply(txn.rcpts[0], 250, "2.1.5", context="RCPT alice")
        self.assertEqual(len(txn.finals), 2, f"{txn!r}")
        self.assertReply(txn.finals[0], 452, "4.3.1", rcpt=addr("alice"),
                         context="file system full")
        self.assertReply(txn.finals[1], 250, "2.0.0", rcpt=addr("bob"), context="bob")
        self.assertNothingStored("alice")
        self.assertEqual(len(harness.maildir_files(self.server.maildir("bob"), "new")), 1)

        # The partial file was removed: the same Maildir still takes a small message.
        txn = self.deliver([addr("alice")], message("small", b"fits\r\n"))
        self.assertReply(txn.finals[0], 250, "2.0.0", rcpt=addr("alice"),
                         context="small message after the full one")


if __name__ == "__main__":
    unittest.main()

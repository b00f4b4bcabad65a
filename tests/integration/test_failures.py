# SPDX-License-Identifier: Apache-2.0
"""Storage failures map to the replies of docs/replies.md, per recipient, and leave nothing in
new/: a read-only Maildir (451 4.3.0), a missing Maildir with on_missing = "refuse" (550 5.1.1 at
RCPT), a full file system (452 4.3.1) for a copy stored as received and for a sealed one, and a
symbolic link in place of the Maildir's new/ or tmp/ (451 4.3.0, never followed; a link on the
path to the Maildir is the operator's layout and is followed). Read-only and full file systems
are real tmpfs mounts, since root ignores permission bits."""

import os
import secrets
import unittest

import decryptors
import harness
from harness import DOMAIN, SENDER, message
from messages import SealedCopies, inner_entity


def addr(local):
    return f"{local}@{DOMAIN}"


def make_maildir(path):
    for sub in ("new", "cur", "tmp"):
        os.makedirs(os.path.join(path, sub), exist_ok=True)


class FailureCase(harness.TestCase):
    overrides = None

    def setUp(self):
        super().setUp()
        self.server = self.start_mailseal(self.mailseal_overrides())

    def mailseal_overrides(self):
        return self.overrides

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


class DiskFullTest(SealedCopies, FailureCase):
    """One recipient's Maildir is a 64 KiB tmpfs, the message ~200 KB: its copy, as received or
    sealed, fills the file system. carol and dave have certificates in the local store
    (example.org is insecure in the tests' DNS), so their copies are sealed."""

    def mailseal_overrides(self):
        store = os.path.join(self.dir, "certs")
        self.identities = {}
        for local in ("carol", "dave"):
            identity = decryptors.Identity(addr(local), directory=self.dir)
            self.addCleanup(identity.close)
            harness.add_to_local_store(store, addr(local), identity.cert_path)
            self.identities[local] = identity
        return {"keys": {"local_store": store}}

    def test_disk_full(self):
        self.assertFullMaildir("alice")

    def test_disk_full_while_sealing(self):
        self.assertFullMaildir("carol")

    def assertFullMaildir(self, local):
        """`local`'s Maildir fills up: 452 4.3.1 for it and nothing left in its new/ or tmp/,
        while bob (as received) and dave (sealed), on the test directory's file system, get
        250; afterwards the same Maildir takes a small message again."""
        self.require_mounts()
        full = self.tmpfs_maildir(local, "64k")
        for other in ("bob", "dave"):
            make_maildir(self.server.maildir(other))
        secret = ("SECRET-" + secrets.token_hex(16)).encode()
        data = message("full", secret + b"\r\n" + (b"y" * 78 + b"\r\n") * 2600)  # ~200 KB
        txn = self.deliver([addr(local), addr("bob"), addr("dave")], data)
        self.assertReply(txn.rcpts[0], 250, "2.1.5", context=f"RCPT {local}")
        self.assertEqual(len(txn.finals), 3, f"{txn!r}")
        self.assertReply(txn.finals[0], 452, "4.3.1", rcpt=addr(local),
                         context="file system full")
        self.assertReply(txn.finals[1], 250, "2.0.0", rcpt=addr("bob"), context="bob")
        self.assertReply(txn.finals[2], 250, "2.0.0", rcpt=addr("dave"), context="dave")
        self.assertNothingStored(local)
        self.assertEqual(harness.files_containing([full], secret), [],
                         "the full Maildir holds nothing of the message")
        [bob] = harness.maildir_files(self.server.maildir("bob"), "new")
        self.assertDelivered(bob, SENDER, addr("bob"), data)
        self.assertSealedFor("dave", data)

        # The partial file was removed: the same Maildir still takes a small message.
        small = message("small", b"fits\r\n")
        txn = self.deliver([addr(local)], small)
        self.assertReply(txn.finals[0], 250, "2.0.0", rcpt=addr(local),
                         context="small message after the full one")
        if local in self.identities:
            self.assertSealedFor(local, small)

    def assertSealedFor(self, local, data):
        [path] = harness.maildir_files(self.server.maildir(local), "new")
        cms = self.assertSealed(harness.read_bytes(path), data)
        self.assertEqual(decryptors.decrypt_openssl(cms, self.identities[local]),
                         inner_entity(data), f"{local}'s copy decrypted")


class SymlinkedMaildirTest(FailureCase):
    def test_link_in_place_of_new_or_tmp_is_refused(self):
        outside = os.path.join(self.dir, "outside")
        os.makedirs(outside)
        make_maildir(self.server.maildir("bob"))
        for sub in ("new", "tmp"):
            with self.subTest(sub=sub):
                local = f"linked-{sub}"
                maildir = self.server.maildir(local)
                make_maildir(maildir)
                os.rmdir(os.path.join(maildir, sub))
                os.symlink(outside, os.path.join(maildir, sub))
                data = message(f"linked {sub}", b"Must not leave the Maildir.\r\n")
                txn = self.deliver([addr(local), addr("bob")], data)
                self.assertEqual(len(txn.finals), 2, f"{txn!r}")
                self.assertReply(txn.finals[0], 451, "4.3.0", rcpt=addr(local),
                                 context=f"{sub}/ is a symbolic link")
                self.assertReply(txn.finals[1], 250, "2.0.0", rcpt=addr("bob"), context="bob")
                self.assertEqual(os.listdir(outside), [], "nothing written through the link")
                for real in {"new", "tmp"} - {sub}:
                    self.assertEqual(harness.maildir_files(maildir, real), [], f"{real}/")
                event = self.server.delivery_events()[-2]
                self.assertEqual(event["rcpt"], f"<{addr(local)}>")
                self.assertIn(f"{maildir}/{sub} (a symbolic link)", event["detail"])

    def test_link_on_the_path_to_the_maildir_is_followed(self):
        # The operator's layout: the domain's mailboxes moved to another disk.
        elsewhere = os.path.join(self.dir, "srv", DOMAIN)
        os.makedirs(elsewhere)
        os.symlink(elsewhere, os.path.join(self.server.vmail, DOMAIN))
        data = message("linked domain", b"Stored where the link points.\r\n")
        txn = self.deliver([addr("alice")], data)
        self.assertReply(txn.finals[0], 250, "2.0.0", rcpt=addr("alice"), context="alice")
        [path] = harness.maildir_files(os.path.join(elsewhere, "alice", "Maildir"), "new")
        self.assertDelivered(path, SENDER, addr("alice"), data)


if __name__ == "__main__":
    unittest.main()

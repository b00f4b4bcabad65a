# SPDX-License-Identifier: Apache-2.0
"""A slow disk must not stall other sessions: delivery work (file writes, fsync) runs on the
worker pool, never on the event loop.

The disk is made slow for one mailbox only, by an LD_PRELOAD shim compiled here: fsync() of a
file under that mailbox first announces itself (a marker file) and then sleeps. The tests assert
the order of events, not durations: while that fsync sleeps, another session is served.
"""

import os
import select
import subprocess

import harness

SLEEP_SECONDS = 3

SHIM_SOURCE = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* fsync() of a file or directory under $SLOW_FSYNC_DIR creates $SLOW_FSYNC_MARK, then sleeps. */
int fsync(int fd) {
    static int (*real_fsync)(int);
    if (!real_fsync) {
        real_fsync = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    }
    const char *dir = getenv("SLOW_FSYNC_DIR");
    const char *mark = getenv("SLOW_FSYNC_MARK");
    char link[64], path[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (dir && mark && n > 0) {
        path[n] = '\0';
        if (strncmp(path, dir, strlen(dir)) == 0) {
            int m = open(mark, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
            if (m >= 0) {
                close(m);
            }
            sleep(SLEEP_SECONDS);
        }
    }
    return real_fsync(fd);
}
"""


def readable(client):
    """True when the server has sent something on this connection that was not read yet."""
    if client.buffer:
        return True
    ready, _, _ = select.select([client.sock], [], [], 0)
    return bool(ready)


class SlowDiskTest(harness.TestCase):
    def setUp(self):
        super().setUp()
        source = os.path.join(self.dir, "slow_fsync.c")
        self.shim = os.path.join(self.dir, "slow_fsync.so")
        with open(source, "w") as f:
            f.write(SHIM_SOURCE)
        subprocess.run(["cc", "-shared", "-fPIC", f"-DSLEEP_SECONDS={SLEEP_SECONDS}", "-o",
                        self.shim, source, "-ldl"], check=True)
        self.mark = os.path.join(self.dir, "fsync-started")

    def start(self, workers):
        vmail = os.path.join(self.dir, "vmail")
        # The slow user's Maildir exists already, so only the message's own fsync and the
        # fsync of new/ are slow, not the creation of its directories.
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(vmail, harness.DOMAIN, "slow", "Maildir", sub))
        return self.start_mailseal(
            {"server": {"workers": workers}},
            env={"LD_PRELOAD": self.shim,
                 "SLOW_FSYNC_DIR": os.path.join(vmail, harness.DOMAIN, "slow"),
                 "SLOW_FSYNC_MARK": self.mark})

    def begin_slow_delivery(self, server):
        """Sends a message to slow@ up to the final dot and waits until its fsync sleeps."""
        slow = server.raw()
        self.addCleanup(slow.close)
        self.assertReply(slow.lhlo(), 250)
        slow.send(f"MAIL FROM:<{harness.SENDER}>\r\nRCPT TO:<slow@{harness.DOMAIN}>\r\nDATA\r\n")
        for code in (250, 250, 354):
            self.assertReply(slow.reply(), code)
        slow.send(harness.dot_stuff(harness.message("slow disk")))
        harness.wait_until(lambda: os.path.exists(self.mark), harness.REPLY_TIMEOUT,
                           "the slow fsync to start", diagnostics=server.diagnostics)
        return slow

    def test_greeting_and_commands_while_the_only_worker_is_blocked(self):
        # With on_missing = "create" (the harness's default), RCPT needs no filesystem check
        # and no worker; with "refuse" it would wait for the worker like the delivery does.
        server = self.start(workers=1)
        slow = self.begin_slow_delivery(server)

        other = server.raw()  # raw() asserts the 220 greeting
        self.addCleanup(other.close)
        self.assertReply(other.lhlo(), 250)
        self.assertReply(other.command(f"MAIL FROM:<{harness.SENDER}>"), 250, "2.1.0")
        self.assertReply(other.command(f"RCPT TO:<fast@{harness.DOMAIN}>"), 250, "2.1.5")
        self.assertReply(other.command("NOOP"), 250, "2.0.0")
        self.assertFalse(readable(slow), "the slow delivery answered before the other session "
                                         "was served: the event loop waited for the disk")

        self.assertReply(slow.reply(), 250, "2.0.0", rcpt=f"slow@{harness.DOMAIN}",
                         context="slow delivery")
        self.assertEqual(len(harness.maildir_files(server.maildir("slow"))), 1)

    def test_other_session_delivers_while_one_fsync_is_slow(self):
        server = self.start(workers=2)
        slow = self.begin_slow_delivery(server)

        other = server.raw()
        self.addCleanup(other.close)
        self.assertReply(other.lhlo(), 250)
        sent = harness.message("fast disk")
        txn = other.transaction(harness.SENDER, [f"fast@{harness.DOMAIN}"], sent)
        self.assertEqual(len(txn.finals), 1, repr(txn))
        self.assertReply(txn.finals[0], 250, "2.0.0", rcpt=f"fast@{harness.DOMAIN}",
                         context="fast delivery")
        self.assertFalse(readable(slow), "the slow delivery answered before the fast one")
        self.assertEqual(len(harness.maildir_files(server.maildir("fast"))), 1)

        self.assertReply(slow.reply(), 250, "2.0.0", rcpt=f"slow@{harness.DOMAIN}",
                         context="slow delivery")

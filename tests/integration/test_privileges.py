# SPDX-License-Identifier: Apache-2.0
"""Running as root only to bind.

What each test is for:
- started as root with server.user, `serve` binds its listeners (a unix socket chowned as
  configured), then runs as that user and group in every thread, delivers as that user, and
  cannot be traced or dumped (PR_SET_DUMPABLE 0, RLIMIT_CORE 0);
- started as root without server.user, `serve` refuses to run (exit 78) unless --allow-root;
- an unknown user is a configuration error.
"""

import os
import pwd
import grp
import signal
import subprocess
import unittest

import harness

EX_CONFIG = 78


def status_fields(pid):
    """Uid/Gid/Groups lines of /proc/PID/status (for every thread: task/*/status)."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                lines = f.readlines()
        except FileNotFoundError:
            continue  # a thread that ended meanwhile (start-up housekeeping)
        for line in lines:
            key, _, value = line.partition(":")
            if key in ("Uid", "Gid", "Groups"):
                out.setdefault(key, set()).add(" ".join(value.split()))
    return out


@unittest.skipUnless(os.geteuid() == 0, "needs root to start as root")
class PrivilegeTest(harness.TestCase):
    def test_binds_as_root_then_runs_as_the_user(self):
        nobody = pwd.getpwnam("nobody")
        nogroup = grp.getgrnam("nogroup")
        os.chmod(self.dir, 0o755)
        server = harness.Mailseal(self.dir, {"server": {"user": "nobody", "group": "nogroup"}})
        os.chown(server.vmail, nobody.pw_uid, nogroup.gr_gid)
        self.addCleanup(server.stop)
        # Started exactly as a service manager would start it: as root, no --allow-root.
        server.start(root_flag=False)
        self.assertIn("event=privileges-dropped user=nobody", server.log())
        fields = status_fields(server.proc.pid)
        ids = f"{nobody.pw_uid} {nobody.pw_uid} {nobody.pw_uid} {nobody.pw_uid}"
        self.assertEqual(fields["Uid"], {ids}, "every thread's real/effective/saved/fs uid")
        gids = f"{nogroup.gr_gid} {nogroup.gr_gid} {nogroup.gr_gid} {nogroup.gr_gid}"
        self.assertEqual(fields["Gid"], {gids})
        self.assertEqual(fields["Groups"], {str(nogroup.gr_gid)}, "no supplementary groups")
        with open(f"/proc/{server.proc.pid}/limits") as f:
            core = [line for line in f if line.startswith("Max core file size")][0]
        self.assertEqual(core.split()[4:6], ["0", "0"], core)
        # Not dumpable: /proc/PID/... belongs to root, not to the process's own user.
        self.assertEqual(os.stat(f"/proc/{server.proc.pid}/mem").st_uid, 0)

        with server.raw(unix=True) as client:
            client.lhlo()
            txn = client.transaction(harness.SENDER, [f"alice@{harness.DOMAIN}"],
                                     harness.message("as nobody"))
            self.assertReply(txn.finals[0], 250, "2.0.0")
        [path] = harness.maildir_files(server.maildir("alice"))
        self.assertEqual((os.stat(path).st_uid, os.stat(path).st_gid),
                         (nobody.pw_uid, nogroup.gr_gid))
        server.proc.send_signal(signal.SIGTERM)
        self.assertEqual(server.proc.wait(timeout=10), 0)

    def run_serve(self, overrides, *flags):
        server = harness.Mailseal(self.dir, overrides)
        proc = subprocess.run([harness.MAILSEAL_BIN, "serve", "--config", server.config_path,
                               *flags], stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=30)
        return proc.returncode, proc.stderr

    def test_refuses_root_without_a_user(self):
        code, err = self.run_serve(None)
        self.assertEqual(code, EX_CONFIG, err)
        self.assertIn("refusing to run as root: set server.user", err)
        self.assertNotIn("event=listening", err)

    def test_unknown_user(self):
        code, err = self.run_serve({"server": {"user": "no-such-user-here"}})
        self.assertEqual(code, EX_CONFIG, err)
        self.assertIn("unknown user 'no-such-user-here'", err)


if __name__ == "__main__":
    unittest.main()

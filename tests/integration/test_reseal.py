# SPDX-License-Identifier: Apache-2.0
"""`mailseal reseal`: sealing the mail already stored in users' Maildirs.

What each test is for:
- a Maildir filled with the real-world corpus and hand-made messages in several folders (INBOX
  cur/ and new/, Maildir++ .Sent and .Archive.2024), with varied flags and mtimes, some stored
  by delivery (trace fields, "Mailseal: plain"), some saved by a client (no trace), some
  already encrypted by their senders (real S/MIME and PGP/MIME ciphertext) or sealed by
  mailseal: after reseal every plaintext message is sealed, OpenSSL decrypts it to its
  original entity (every line kept), its trace fields stay on top, its flags, owner, mode and
  mtime are kept and S=/W= are exact; encrypted ones and Drafts are untouched, byte for byte;
  no file under the Maildir holds a message's canary; a second run changes nothing;
- --dry-run counts and changes nothing; --json reports; --folders selects; --since-last-run
  (the timer's mode) looks only at files put in place since the last complete run, old
  INTERNALDATEs included;
- an OpenPGP user's mail is sealed as PGP/MIME that GnuPG opens;
- a user without a key is skipped and reported, exit 0; an address that is not local is 67;
- keys from DNSSEC (the DNS test bed's NSD): a secure SMIMEA record seals; a bogus answer or a
  server that never answers leaves that user's mail untouched, says why, and exits 75;
- a replacement interrupted after its sealed copy was in place (both files there, a leftover
  tmp/ file) is finished by the next run: one copy, sealed;
- with Dovecot serving the same Maildirs: doveadm fetch lists the same messages in the same
  folders with the same flags, keywords and received dates before and after (new UIDs: the
  sealed copy is a new message to Dovecot); an IMAP session reading every message and
  flagging one during the run keeps working, sees the old UIDs expunged and the new ones
  with the same flags (the one it set included) and dates, fetches every sealed body, and
  Dovecot logs no error;
- a second run on a Maildir another run holds waits its turn (75); a client that renames,
  moves or expunges messages during a run gets every message once, with its flags;
- an unreadable --since-last-run state file is an error (65), never a first run, and the
  option refuses narrower runs (64);
- kill -9 at random moments of a run over a few hundred messages, 20 times: after a last
  complete run every message is there exactly once, sealed, and decrypts to its original.
"""

import collections
import imaplib
import json
import os
import pwd
import random
import secrets
import shutil
import signal
import re
import subprocess
import time

import corpus
import decryptors
import dnsbed
import harness
import pgpkeys
from messages import (crlf, fixture, pgp_mime_message, reference_split, smime_message,
                      split_header)

DOMAIN = harness.DOMAIN
RUN_TIMEOUT = 120
EX_OK = 0
EX_NOUSER = 67
TRACE = ["Return-Path", "Delivered-To", "Received", "X-Original-To"]


def stored_form(message, trace=True, label=True):
    """`message` (CRLF) as a Maildir file holds it: LF line ends, with the trace fields a
    delivery puts on top when `trace`, and delivery's Mailseal: field for a plain copy when
    `label`."""
    head = b""
    if trace:
        head += (b"Return-Path: <" + harness.SENDER.encode() + b">\r\nDelivered-To: bob@"
                 + DOMAIN.encode() + b"\r\nReceived: from client.test.example (unix)\r\n\tby "
                 + harness.HOSTNAME.encode() + b" (mailseal) with LMTP id "
                 + secrets.token_hex(4).encode() + b"\r\n\tfor <bob@" + DOMAIN.encode()
                 + b">; Sat, 05 Dec 2026 07:00:00 +0000\r\n")
        if label:
            head += b"Mailseal: plain; reason=no-key\r\n"
    return (head + message).replace(b"\r\n", b"\n")


def leading_trace(stored):
    """(the trace fields a stored message starts with, Mailseal: fields left out, as
    split_header gives them; the rest of the message, CRLF-canonical)."""
    fields, _ = split_header(stored)
    trace = []
    for field in fields:
        name = field.split(b":", 1)[0].decode("latin-1")
        if name not in TRACE + ["Mailseal"]:
            break
        trace.append(field)
    text = stored.replace(b"\r\n", b"\n")
    rest = text[sum(len(f) + 1 for f in trace):]
    return [f for f in trace if not f.startswith(b"Mailseal:")], decryptors.canonicalize(rest)


def mail_ids():
    """The uid and gid of `mail`, the service user of these tests' Dovecot set-up."""
    entry = pwd.getpwnam("mail")
    return entry.pw_uid, entry.pw_gid


def write_message(path, data, mtime):
    with open(path, "wb") as f:
        f.write(data)
    os.utime(path, (mtime, mtime))


def stored_state(path):
    """(bytes, mtime_ns, mode, (uid, gid)) of a message file."""
    st = os.stat(path)
    return harness.read_bytes(path), st.st_mtime_ns, st.st_mode & 0o7777, (st.st_uid, st.st_gid)


def listing(maildir):
    """{relative path: (bytes, mtime)} of every file under `maildir`."""
    out = {}
    for root, _, files in os.walk(maildir):
        for name in files:
            path = os.path.join(root, name)
            out[os.path.relpath(path, maildir)] = (harness.read_bytes(path),
                                                   os.stat(path).st_mtime_ns)
    return out


class ResealCase(harness.TestCase):
    def setUp(self):
        super().setUp()
        if not harness.MAILSEAL_BIN:
            self.skipTest("MAILSEAL_BIN is not set (run the tests through ctest)")
        self.vmail = os.path.join(self.dir, "vmail")
        self.store = os.path.join(self.dir, "certs")
        os.makedirs(self.store)
        self.bob = decryptors.Identity(f"bob@{DOMAIN}", directory=self.dir)
        self.addCleanup(self.bob.close)
        harness.add_to_local_store(self.store, f"bob@{DOMAIN}", self.bob.cert_path)
        self.unbound = harness.insecure_unbound_conf(self.dir, [DOMAIN])
        self.config_path = os.path.join(self.dir, "mailseal.toml")
        with open(self.config_path, "w") as f:
            f.write(harness.to_toml({
                "listen": [{"tcp": "127.0.0.1:0"}],
                "mailbox": {"domains": [DOMAIN], "on_missing": "refuse",
                            "maildir": os.path.join(self.vmail, "%d", "%n", "Maildir")},
                "dns": {"unbound_conf": self.unbound},
                "keys": {"local_store": self.store},
            }))
        self.counter = 0

    def maildir(self, user, folder=""):
        root = os.path.join(self.vmail, DOMAIN, user, "Maildir")
        path = os.path.join(root, "." + folder) if folder else root
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(path, sub), exist_ok=True)
        return path

    def put(self, user, folder, data, sub="cur", flags="S", mtime=None):
        """Stores `data` as a message file; returns its path."""
        self.counter += 1
        name = f"{1700000000 + self.counter}.M{self.counter}P4242Q{self.counter}.mx"
        name += f",S={len(data)},W={harness.crlf_size(data)}"
        if sub == "cur":
            name += ":2," + flags
        path = os.path.join(self.maildir(user, folder), sub, name)
        write_message(path, data, mtime if mtime is not None else 1600000000 + self.counter * 977)
        return path

    def reseal(self, *args, env=None):
        proc = subprocess.run([harness.MAILSEAL_BIN, "reseal", "-c", self.config_path, *args],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=RUN_TIMEOUT,
                              env={**os.environ, **(env or {})})
        return proc.returncode, proc.stdout.decode(), proc.stderr.decode()

    def assertResealed(self, old_path, stored_before):
        """The file at `old_path` (whose stored_state() was stored_before) is gone,
        replaced in its directory by a sealed copy that keeps its flags, mtime, mode and
        leading trace fields, and decrypts to the rest of the message (every line kept);
        returns the copy's path."""
        directory, old_name = os.path.split(old_path)
        unique = old_name.split(",")[0].split(":")[0]
        info = old_name[old_name.index(":"):] if ":" in old_name else ""
        self.assertFalse(os.path.exists(old_path), old_name)
        [new_name] = [n for n in os.listdir(directory) if n.startswith(unique + ".resealed,")]
        new_path = os.path.join(directory, new_name)
        self.assertTrue(new_name.endswith(info), (new_name, info))
        stored = harness.read_bytes(new_path)
        self.assertEqual(harness.size_fields(new_path), (len(stored), harness.crlf_size(stored)))
        self.assertEqual(os.stat(new_path).st_mtime_ns, stored_before[1], "mtime (INTERNALDATE)")
        self.assertEqual(os.stat(new_path).st_mode & 0o7777, stored_before[2], "mode")
        self.assertEqual((os.stat(new_path).st_uid, os.stat(new_path).st_gid), stored_before[3],
                         "owner")
        fields, _ = split_header(stored)
        trace, original = leading_trace(stored_before[0])
        self.assertEqual(fields[:len(trace)], trace, "trace fields stay on top")
        self.assertEqual(fields[len(trace)], b"Mailseal: sealed; format=smime; keys=1; "
                                             b"cipher=aes-256-cbc; resealed")
        inner = decryptors.decrypt_openssl(decryptors.extract_cms(stored, strict=True), self.bob)
        content, other, body = reference_split(original)
        self.assertEqual(inner, b"".join(content) + b"\r\n" + body, "inner entity")
        outer = [f.replace(b"\n", b"\r\n") + b"\r\n" for f in fields[len(trace) + 1:-4]]
        self.assertEqual(outer, other, "outer fields")
        lost = collections.Counter(original.split(b"\r\n")) - collections.Counter(
            b"".join(other + [inner]).split(b"\r\n"))
        self.assertEqual(lost, collections.Counter(), "lines lost")
        return new_path


class ResealTest(ResealCase):
    def fill(self):
        """bob's Maildir: (plaintext [(path, stored_state(path))], untouched [path],
        the canaries no file may hold in clear afterwards)."""
        plaintext = []
        untouched = []
        canaries = []

        def plain(folder, original, sub="cur", flags="S", trace=True, label=True):
            data = stored_form(original, trace, label)
            path = self.put("bob", folder, data, sub, flags)
            os.chmod(path, 0o640)
            # Owned by the mail user, as a Maildir served by Dovecot is (the test runs as
            # root): the sealed copy must be too.
            shutil.chown(path, "mail", "mail")
            plaintext.append((path, stored_state(path)))

        def canary_message(subject):
            canary = "CANARY-" + secrets.token_hex(8)
            canaries.append(canary.encode())
            return harness.message(subject, f"{canary}\r\nline two\r\n".encode())

        if corpus.available():
            for i, (_, original) in enumerate(corpus.messages()):
                plain("Archive.2024" if i % 3 == 0 else "", original,
                      sub="new" if i % 5 == 0 else "cur", flags=["", "S", "RS", "FS", "Sa"][i % 5])
        plain("", canary_message("inbox, read and flagged"), flags="FS")
        plain("", canary_message("inbox, new"), sub="new")
        plain("", canary_message("keywords"), flags="Sab")
        plain("Sent", canary_message("saved by a client"), flags="S", trace=False)
        plain("Sent", canary_message("answered"), flags="RS", trace=False)
        plain("Archive.2024", canary_message("no Mailseal label"), label=False)
        # Encrypted by their senders (real ciphertext), and a copy sealed by mailseal itself.
        untouched.append(self.put("bob", "", stored_form(
            smime_message("smime from a sender", fixture("openssl-enveloped.der"),
                          to=f"bob@{DOMAIN}"))))
        untouched.append(self.put("bob", "Archive.2024", stored_form(
            pgp_mime_message("pgp from a sender", crlf(fixture("gpg.asc")),
                             to=f"bob@{DOMAIN}"))))
        sealed = subprocess.run([harness.MAILSEAL_BIN, "seal", "-c", self.config_path, "--to",
                                 f"bob@{DOMAIN}"], input=stored_form(canary_message("sealed")),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                timeout=RUN_TIMEOUT)
        self.assertEqual(sealed.returncode, 0, sealed.stderr.decode())
        untouched.append(self.put("bob", "", sealed.stdout, flags="S"))
        # A draft is left alone by default: a client editing it must not see it vanish.
        untouched.append(self.put("bob", "Drafts", stored_form(canary_message("draft"),
                                                               trace=False), flags="D"))
        canaries.pop()  # the draft's stays readable, by design
        return plaintext, untouched, canaries

    def test_every_plaintext_message_is_sealed_in_place(self):
        plaintext, untouched, canaries = self.fill()
        maildir = os.path.join(self.vmail, DOMAIN, "bob", "Maildir")
        before = listing(maildir)

        code, out, err = self.reseal("--dry-run", f"bob@{DOMAIN}")
        self.assertEqual(code, EX_OK, err)
        self.assertIn(f"bob@{DOMAIN}: dry-run; folders=3 messages={len(plaintext) + 3} "
                      f"would_seal={len(plaintext)} encrypted=3 failed=0", out)
        self.assertEqual(listing(maildir), before, "a dry run changes nothing")

        code, out, err = self.reseal(f"bob@{DOMAIN}")
        self.assertEqual(code, EX_OK, err)
        self.assertIn(f"bob@{DOMAIN}: done; folders=3 messages={len(plaintext) + 3} "
                      f"sealed={len(plaintext)} encrypted=3 failed=0", out)
        for path, stored_before in plaintext:
            with self.subTest(os.path.basename(path)):
                self.assertResealed(path, stored_before)
        for path in untouched:
            rel = os.path.relpath(path, maildir)
            self.assertEqual(listing(maildir)[rel], before[rel], f"{rel} untouched")
        self.assertEqual(len(listing(maildir)), len(before), "no message lost or added")
        leaks = harness.files_containing([maildir], canaries)
        self.assertEqual(leaks, [], "plaintext left in the Maildir")
        for folder in ("", ".Sent", ".Archive.2024", ".Drafts"):
            self.assertEqual(os.listdir(os.path.join(maildir, folder, "tmp")), [], folder)

        after = listing(maildir)
        code, out, err = self.reseal("--json", f"bob@{DOMAIN}")
        self.assertEqual(code, EX_OK, err)
        [report] = json.loads(out)["users"]
        self.assertEqual((report["sealed"], report["encrypted"], report["failed"]),
                         (0, len(plaintext) + 3, 0), report)
        self.assertEqual(listing(maildir), after, "a second run changes nothing")

    def test_folders_select_what_is_resealed(self):
        sent = self.put("bob", "Sent", stored_form(harness.message("sent"), trace=False))
        inbox = self.put("bob", "", stored_form(harness.message("inbox")))
        code, out, err = self.reseal("--folders", "Sen*", f"bob@{DOMAIN}")
        self.assertEqual(code, EX_OK, err)
        self.assertIn("folders=1 messages=1 sealed=1", out)
        self.assertFalse(os.path.exists(sent))
        self.assertTrue(os.path.exists(inbox))
        # mailbox.page_cache = "drop" (the default) covers the copies reseal writes.
        sent_dir = os.path.dirname(sent)
        [copy] = os.listdir(sent_dir)
        self.assertEqual(harness.resident_bytes(os.path.join(sent_dir, copy)), 0,
                         "the sealed copy's pages are still in the page cache")

    def test_openpgp_user_gets_pgp_mime(self):
        factory = pgpkeys.PgpFactory(os.path.join(self.dir, "pgp"))
        self.addCleanup(factory.stop)
        quinn = factory.make(f"quinn@{DOMAIN}", f"Quinn <quinn@{DOMAIN}>")
        harness.add_to_local_store(self.store, f"quinn@{DOMAIN}", quinn.public_asc,
                                   extension=".asc")
        original = harness.message("for quinn", b"Secret for quinn.\r\n")
        path = self.put("quinn", "", stored_form(original), flags="RS")
        code, out, err = self.reseal(f"quinn@{DOMAIN}")
        self.assertEqual(code, EX_OK, err)
        self.assertIn("sealed=1", out)
        [name] = os.listdir(os.path.dirname(path))
        self.assertTrue(name.endswith(":2,RS"), name)
        stored = harness.read_bytes(os.path.join(os.path.dirname(path), name))
        self.assertIn(b"\nMailseal: sealed; format=openpgp; keys=1; cipher=aes-256; resealed\n",
                      stored)
        self.assertNotIn(b"Secret for quinn.", stored)
        inner = pgpkeys.decrypt("gpg", factory, quinn, pgpkeys.armour_of(stored))
        self.assertEqual(inner, b"\r\nSecret for quinn.\r\n")

    def test_users_without_a_key_and_unknown_addresses(self):
        path = self.put("carol", "", stored_form(harness.message("carol's")))
        before = harness.read_bytes(path)
        code, out, err = self.reseal(f"carol@{DOMAIN}")
        self.assertEqual(code, EX_OK, err)
        self.assertIn(f"carol@{DOMAIN}: no-key", out)
        self.assertEqual(harness.read_bytes(path), before)
        code, out, err = self.reseal("someone@elsewhere.example")
        self.assertEqual(code, EX_NOUSER, (out, err))
        self.assertIn("not a local mailbox", err)

    def test_since_last_run_looks_only_at_what_is_new(self):
        state = os.path.join(self.dir, "reseal.last-run")
        first = self.put("bob", "", stored_form(harness.message("first")))
        self.put("bob", "Drafts", stored_form(harness.message("a draft"), trace=False), flags="D")
        args = ("--since-last-run", "--state-file", state, "--all")
        code, out, err = self.reseal(*args)
        self.assertEqual(code, EX_OK, err)
        self.assertIn("no earlier run recorded", out, "the first run only sets the start")
        self.assertTrue(os.path.exists(first))
        code, out, err = self.reseal("--all")
        self.assertEqual(code, EX_OK, err)
        self.assertFalse(os.path.exists(first))
        code, out, err = self.reseal(*args)
        self.assertEqual(code, EX_OK, err)
        recorded = float(harness.read_text(state))
        self.assertLess(abs(recorded - time.time()), 60)
        # A client saves to Sent, and imports an old message into the INBOX (its mtime, the
        # INTERNALDATE, years back): both are new since the last run.
        sent = self.put("bob", "Sent", stored_form(harness.message("saved"), trace=False))
        imported = self.put("bob", "", stored_form(harness.message("imported")),
                            mtime=1000000000)
        code, out, err = self.reseal(*args)
        self.assertEqual(code, EX_OK, err)
        # (Copies made in the last seconds of the last run are counted again, not read.)
        self.assertRegex(out, r" sealed=2 encrypted=\d+ failed=0", "only the new files")
        self.assertFalse(os.path.exists(sent) or os.path.exists(imported))
        self.assertGreater(float(harness.read_text(state)), recorded)
        code, out, err = self.reseal(*args)
        self.assertEqual(code, EX_OK, err)
        self.assertRegex(out, r" sealed=0 encrypted=\d+ failed=0")
        # A file from before the recorded run (as if recorded an hour from now) is not looked
        # at; a run without the option seals it.
        older = self.put("bob", "", stored_form(harness.message("older")))
        with open(state, "w") as f:
            f.write(f"{int(time.time()) + 3600}.000000000\n")
        code, out, err = self.reseal(*args)
        self.assertEqual(code, EX_OK, err)
        self.assertRegex(out, r" messages=0 sealed=0 ")
        self.assertTrue(os.path.exists(older))
        code, out, err = self.reseal("--all")
        self.assertEqual(code, EX_OK, err)
        self.assertFalse(os.path.exists(older))

    def test_all_finds_every_mailbox(self):
        bob = self.put("bob", "", stored_form(harness.message("bob's")))
        carol = self.put("carol", "", stored_form(harness.message("carol's")))
        code, out, err = self.reseal("--all")
        self.assertEqual(code, EX_OK, err)
        self.assertIn(f"bob@{DOMAIN}: done", out)
        self.assertIn(f"carol@{DOMAIN}: no-key", out)
        self.assertFalse(os.path.exists(bob))
        self.assertTrue(os.path.exists(carol))


class ConcurrencyTest(ResealCase):
    def start_slow_run(self, rate):
        proc = subprocess.Popen([harness.MAILSEAL_BIN, "reseal", "-c", self.config_path,
                                 "--max-rate", str(rate), f"bob@{DOMAIN}"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        return proc

    def test_a_second_run_on_the_same_maildir_waits_its_turn(self):
        for i in range(30):
            self.put("bob", "", stored_form(harness.message(f"message {i}")))
        first = self.start_slow_run(15)
        cur = os.path.join(self.maildir("bob"), "cur")
        harness.wait_until(lambda: any(".resealed," in n for n in os.listdir(cur)),
                           RUN_TIMEOUT, "the first run's first sealed copy")
        code, out, err = self.reseal(f"bob@{DOMAIN}")
        self.assertEqual(code, 75, (out, err))
        self.assertIn(f"bob@{DOMAIN}: error (another reseal is working on this Maildir)", out)
        out, err = first.communicate(timeout=RUN_TIMEOUT)
        self.assertEqual(first.returncode, EX_OK, err)
        self.assertIn(b"sealed=30", out)

    def test_messages_a_client_renames_moves_or_expunges_meanwhile(self):
        # While a slow run works, a client does what Dovecot does: moves new/ mail to cur/
        # and marks it seen (a rename), expunges one message, and moves one to another
        # folder (a link there, then an unlink).
        maildir = self.maildir("bob")
        archive = self.maildir("bob", "Archive")
        originals = {}
        for i in range(24):
            canary = f"CANARY-{i:03d}"
            originals[canary] = self.put("bob", "", stored_form(harness.message(
                f"message {i}", f"{canary}\r\n".encode())), sub="new")
        run = self.start_slow_run(12)
        time.sleep(0.3)
        names = sorted(os.listdir(os.path.join(maildir, "new")))
        expunged = names[-1]
        moved = names[-2]
        os.unlink(os.path.join(maildir, "new", expunged))
        os.link(os.path.join(maildir, "new", moved), os.path.join(archive, "cur", moved + ":2,"))
        os.unlink(os.path.join(maildir, "new", moved))
        for name in names[:-2]:
            try:
                os.rename(os.path.join(maildir, "new", name),
                          os.path.join(maildir, "cur", name + ":2,S"))
            except FileNotFoundError:
                pass  # already replaced by its sealed copy
            time.sleep(0.05)
        out, err = run.communicate(timeout=RUN_TIMEOUT)
        self.assertEqual(run.returncode, EX_OK, err)
        code, out, err = self.reseal(f"bob@{DOMAIN}")  # seals the one moved to Archive
        self.assertEqual(code, EX_OK, err)
        found = collections.Counter()
        for folder in (maildir, archive):
            for rel, (data, _) in listing(folder).items():
                if rel.startswith("."):
                    continue  # the Archive folder, listed on its own
                self.assertIn(b"\nMailseal: sealed;", data, rel)
                inner = decryptors.decrypt_openssl(decryptors.extract_cms(data), self.bob)
                canary = inner.split(b"\r\n")[1].decode()
                found[canary] += 1
                if folder == maildir and rel.startswith("cur/"):
                    self.assertTrue(rel.endswith(":2,S"), f"{rel}: the client's flags")
        expunged_canary = [c for c, p in originals.items() if os.path.basename(p) == expunged]
        want = collections.Counter({c: 1 for c in originals if c not in expunged_canary})
        self.assertEqual(found, want, "every message once, the expunged one gone")


class StateFileTest(ResealCase):
    def test_an_unreadable_state_file_or_a_narrower_run_is_refused(self):
        state = os.path.join(self.dir, "state")
        with open(state, "w") as f:
            f.write("yesterday\n")
        path = self.put("bob", "", stored_form(harness.message("kept")))
        code, out, err = self.reseal("--since-last-run", "--state-file", state, "--all")
        self.assertEqual(code, 65, (out, err))
        self.assertIn("does not hold a time", err)
        self.assertTrue(os.path.exists(path))
        for narrower in (["bob@" + DOMAIN], ["--all", "--folders", "Sent"]):
            code, out, err = self.reseal("--since-last-run", "--state-file", state, *narrower)
            self.assertEqual(code, 64, (narrower, out, err))


class InterruptedTest(ResealCase):
    def test_a_replacement_left_half_done_is_finished(self):
        original = harness.message("interrupted", b"CANARY-interrupted\r\n")
        path = self.put("bob", "", stored_form(original), flags="S")
        before = stored_state(path)
        # The state a crash leaves right after the sealed copy was renamed into place: both
        # files, and a partial copy of another message in tmp/.
        keep = os.path.join(self.dir, "keep")
        os.link(path, keep)
        code, out, err = self.reseal(f"bob@{DOMAIN}")
        self.assertEqual(code, EX_OK, err)
        os.link(keep, path)
        tmp = os.path.join(self.maildir("bob"), "tmp", "1700009999.M1P1Q1.mx.resealed")
        with open(tmp, "wb") as f:
            f.write(b"partial ciphertext")
        code, out, err = self.reseal(f"bob@{DOMAIN}")
        self.assertEqual(code, EX_OK, err)
        self.assertIn("finished_earlier=1", out)
        self.assertFalse(os.path.exists(tmp))
        self.assertResealed(path, before)

    def test_kill_9_at_random_moments_loses_and_duplicates_nothing(self):
        # New plaintext arrives before every run (as mail saved by clients does), so that each
        # kill lands in real work: reading, sealing, writing tmp/, renaming, removing.
        originals = {}
        rng = random.Random(20261205)

        def arrive(count):
            for _ in range(count):
                i = len(originals)
                canary = f"CANARY-{i:04d}-{secrets.token_hex(6)}"
                filler = "filler line of text\r\n" * (8000 if i % 4 == 0 else 30 + i % 40)
                original = harness.message(f"message {i}", (canary + "\r\n" + filler).encode())
                originals[canary.encode()] = original
                self.put("bob", "Archive" if i % 2 else "", stored_form(original),
                         sub="new" if i % 7 == 0 else "cur", flags="S" if i % 3 else "")

        arrive(100)
        maildir = os.path.join(self.vmail, DOMAIN, "bob", "Maildir")
        kills = 0
        cut_short = 0  # kills that left a sealed copy unfinished in tmp/
        for _ in range(100):
            if kills == 20:
                break
            proc = subprocess.Popen([harness.MAILSEAL_BIN, "reseal", "-c", self.config_path,
                                     f"bob@{DOMAIN}"], stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.005, 0.15))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.wait(timeout=RUN_TIMEOUT)
            cut_short += any(rel.split("/")[-2] == "tmp" for rel in listing(maildir))
            arrive(12)
        self.assertEqual(kills, 20)
        self.assertGreater(cut_short, 0, "no kill interrupted the writing of a sealed copy")
        code, out, err = self.reseal(f"bob@{DOMAIN}")
        self.assertEqual(code, EX_OK, err)
        found = collections.Counter()
        for rel, (data, _) in listing(maildir).items():
            self.assertNotIn("/tmp/", "/" + rel, f"{rel} left in tmp/")
            inner = decryptors.decrypt_openssl(decryptors.extract_cms(data), self.bob)
            canary = inner.split(b"\r\n")[1]
            self.assertNotIn(canary, data, f"{rel}: plaintext left")
            found[canary] += 1
            _, _, body = reference_split(originals[canary])
            self.assertTrue(inner.endswith(body), rel)
        self.assertEqual(found, collections.Counter({c: 1 for c in originals}),
                         f"every message exactly once after {kills} kills ({cut_short} in the "
                         "middle of a copy)")


class DovecotTest(ResealCase):
    def test_dovecot_and_an_open_imap_session_stay_consistent(self):
        # The store as the service user made it: its files and folders are the user's
        # (`mail`, whom Dovecot reads as, README.Debian's setup), 0600.
        paths = []
        for i in range(6):
            paths.append(self.put("bob", "", stored_form(harness.message(
                f"inbox {i}", b"Inbox secret.\r\n")), sub="new" if i == 5 else "cur",
                flags="" if i % 2 else "S"))
        for i in range(3):
            paths.append(self.put("bob", "Sent", stored_form(
                harness.message(f"sent {i}", b"Sent secret.\r\n"), trace=False), flags="S"))
        for root, dirs, files in os.walk(os.path.join(self.vmail, DOMAIN)):
            os.chown(root, *mail_ids())
            for name in files:
                os.chown(os.path.join(root, name), *mail_ids())
                os.chmod(os.path.join(root, name), 0o600)
        dovecot = self.start_dovecot(self.vmail, imap_port=harness.free_port())
        user = f"bob@{DOMAIN}"
        imap = imaplib.IMAP4("127.0.0.1", dovecot.imap_port, timeout=30)
        self.addCleanup(imap.shutdown)
        imap.login(user, "any")
        self.assertEqual(imap.select("INBOX")[0], "OK")
        # Flags and a keyword set through IMAP: Dovecot writes them into the file names.
        imap.uid("STORE", "1", "+FLAGS", r"(\Flagged $Important)")
        imap.uid("STORE", "2", "+FLAGS", r"(\Answered)")
        fields = "mailbox flags date.received size.virtual"

        def state(*query):
            """Counter of (mailbox, flags, received date) of every message (matching query)."""
            out = dovecot.doveadm("-f", "tab", "fetch", "-u", user, fields, "mailbox", "*",
                                  *(query or ("all",))).decode()
            records = (line.split("\t")[:3] for line in out.splitlines()[1:] if line)
            return collections.Counter((box, frozenset(flags.split()), date)
                                       for box, flags, date in records)

        def session():
            """{internal date: flags} of INBOX as the open session sees it."""
            typ, data = imap.fetch("1:*", "(UID FLAGS INTERNALDATE)")
            self.assertEqual(typ, "OK", data)
            seen = {}
            for item in data:
                text = item.decode() if isinstance(item, bytes) else item[0].decode()
                flags = re.search(r"FLAGS \(([^)]*)\)", text).group(1)
                date = re.search(r'INTERNALDATE "([^"]+)"', text).group(1)
                seen[date] = sorted(f for f in flags.split() if f != "\\Recent")
            return seen

        # What clients fetch, and Dovecot caches: header fields, structure, a text preview.
        typ, data = imap.fetch("1:*", "(BODY.PEEK[HEADER] BODYSTRUCTURE SNIPPET (FUZZY))")
        self.assertEqual(typ, "OK", data)
        before = state()
        self.assertEqual(sum(before.values()), 9, before)
        self.assertIn("$Important", " ".join(" ".join(f) for _, f, _ in before))
        [flagged] = state("header", "subject", "inbox 4")
        typ, data = imap.uid("SEARCH", "HEADER", "Subject", '"inbox 4"')
        self.assertEqual(typ, "OK", data)
        typ, data = imap.uid("FETCH", data[0].decode().split()[0], "(INTERNALDATE)")
        flagged_date = re.search(r'INTERNALDATE "([^"]+)"', data[0].decode()).group(1)
        seen_before = session()
        # The session works on while a slow run seals (doveadm finds this Dovecot's
        # configuration through CONFIG_FILE, as Dovecot's own processes do): it reads every
        # message, and flags one, which Dovecot does by renaming its file.
        run = subprocess.Popen([harness.MAILSEAL_BIN, "reseal", "-c", self.config_path,
                                "--max-rate", "4", "--purge-dovecot-cache", user],
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE,
                               env={**os.environ, "CONFIG_FILE": dovecot.config_path})
        self.addCleanup(lambda: run.poll() is None and run.kill())
        started = time.monotonic()
        stored_flag = False
        while run.poll() is None:
            self.assertEqual(imap.noop()[0], "OK")
            typ, data = imap.fetch("1:*", "(FLAGS BODY.PEEK[])")
            # A message replaced between the listing and the read is reported, not an error.
            self.assertTrue(typ == "OK" or b"EXPUNGEISSUED" in b" ".join(
                d for d in data if isinstance(d, bytes)), (typ, data))
            if not stored_flag and time.monotonic() - started > 0.8:
                typ, data = imap.uid("SEARCH", "HEADER", "Subject", '"inbox 4"')
                self.assertEqual(typ, "OK", data)
                imap.uid("STORE", data[0].decode().split()[0], "+FLAGS", r"(\Flagged)")
                stored_flag = True
            time.sleep(0.1)
        out, err = run.communicate(timeout=RUN_TIMEOUT)
        self.assertEqual(run.returncode, EX_OK, err)
        self.assertIn(b"sealed=9", out)
        self.assertTrue(stored_flag, "the run ended before the client flagged a message")
        # Expected now: the same, with the client's flag.
        box, flags, date = flagged
        before[flagged] -= 1
        before[(box, flags | {"\\Flagged"}, date)] += 1
        before += collections.Counter()  # drops the emptied entry
        seen_before[flagged_date] = sorted(seen_before[flagged_date] + ["\\Flagged"])
        # The open session learns of the changes on its next command, as of any expunge.
        self.assertEqual(imap.noop()[0], "OK")
        self.assertEqual(session(), seen_before, "same flags and dates in the open session")
        typ, data = imap.fetch("1:*", "(BODY.PEEK[])")
        self.assertEqual(typ, "OK", data)
        bodies = [item[1] for item in data if isinstance(item, tuple)]
        self.assertEqual(len(bodies), 6)
        for body in bodies:
            self.assertIn(b"Mailseal: sealed; format=smime", body)
            self.assertNotIn(b"secret.", body)
        self.assertEqual(imap.noop()[0], "OK", "the session is still usable")
        after = state()
        self.assertEqual(after, before, "same folders, flags, keywords and received dates:\n"
                         f"gone {before - after}\nnew {after - before}")
        for text in dovecot.fetch(user, fields=("text",)):
            self.assertNotIn(b"secret.", text["text"])
        log = harness.read_text(dovecot.log_path)
        problems = [line for line in log.splitlines()
                    if re.search(r"Error|Panic|Fatal|corrupt|mismatch|Cached message size",
                                 line)]
        self.assertEqual(problems, [], "Dovecot's log")


class DnssecTest(harness.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.bed = dnsbed.start_for_class(cls)

    def setUp(self):
        super().setUp()
        self.vmail = os.path.join(self.dir, "vmail")
        self.config_path = os.path.join(self.dir, "mailseal.toml")
        with open(self.config_path, "w") as f:
            f.write(harness.to_toml({
                "listen": [{"tcp": "127.0.0.1:0"}],
                "mailbox": {"domains": ["signed.test", "bogus.test", "dead.test"],
                            "on_missing": "refuse",
                            "maildir": os.path.join(self.vmail, "%d", "%n", "Maildir")},
                **self.bed.mailseal_overrides(),
            }))

    def put(self, address):
        local, domain = address.split("@")
        maildir = os.path.join(self.vmail, domain, local, "Maildir")
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(maildir, sub), exist_ok=True)
        original = harness.message("for " + address, b"Secret text.\r\n")
        path = os.path.join(maildir, "cur", "1700000000.M1P1Q1.mx:2,S")
        write_message(path, stored_form(original), 1600000000)
        return maildir, original

    def test_secure_keys_seal_and_bogus_or_failed_lookups_touch_nothing(self):
        signed, original = self.put("alice@signed.test")
        bogus, _ = self.put("alice@bogus.test")
        dead, _ = self.put("alice@dead.test")
        untouched = {m: listing(m) for m in (bogus, dead)}
        proc = subprocess.run([harness.MAILSEAL_BIN, "reseal", "-c", self.config_path,
                               "alice@signed.test", "alice@bogus.test", "alice@dead.test"],
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=RUN_TIMEOUT)
        out = proc.stdout.decode()
        self.assertEqual(proc.returncode, 75, (out, proc.stderr.decode()))
        self.assertIn("alice@signed.test: done; folders=1 messages=1 sealed=1", out)
        self.assertIn("alice@bogus.test: error (key lookup bogus)", out)
        self.assertIn("alice@dead.test: error (key lookup failure)", out)
        for maildir, before in untouched.items():
            self.assertEqual(listing(maildir), before, f"{maildir} must not change")
        [name] = os.listdir(os.path.join(signed, "cur"))
        stored = harness.read_bytes(os.path.join(signed, "cur", name))
        cert = self.bed.certs["alice@signed.test"]
        ident = decryptors.Identity.from_files(cert.address, cert.pem, cert.key, "rsa")
        self.addCleanup(ident.close)
        inner = decryptors.decrypt_openssl(decryptors.extract_cms(stored), ident)
        self.assertEqual(inner, b"\r\nSecret text.\r\n")

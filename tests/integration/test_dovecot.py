# SPDX-License-Identifier: Apache-2.0
"""Dovecot reads what mailseal writes: doveadm fetch lists every delivered message, its
size.physical and size.virtual equal the file name's S= and W=, and the content matches."""

import os
import unittest

import harness
from harness import DOMAIN, SENDER, message


def addr(local):
    return f"{local}@{DOMAIN}"


def messages():
    """(name, message as sent with CRLF line ends)."""
    long_line = b"L" * 998 + b"\r\n"  # 1000 octets with CRLF: the default data_line_length
    large_line = b"0123456789abcdef" * 4 + b"\r\n"
    return [
        ("small", message("small", b"Hi.\r\n")),
        ("8bit", message("8bit", "Grüße, ½ € — ünïcödé\r\nzweite Zeile\r\n".encode(),
                         b"Content-Type: text/plain; charset=utf-8\r\n"
                         b"Content-Transfer-Encoding: 8bit\r\n")),
        ("large", message("large", large_line * (2 * 1024 * 1024 // len(large_line)))),
        ("long-lines", message("long lines", long_line * 50 + b"." + b"D" * 997 + b"\r\n")),
        ("bare-cr", message("bare cr", b"one\rtwo\r\nthree\rfour\r\n\r\nend\r\n")),
        ("dots", message("dots", b".\r\n..\r\n.x\r\n\r\n")),
    ]


class DovecotReadsMailsealTest(harness.TestCase):
    def test_doveadm_fetch_matches_files(self):
        server = self.start_mailseal(user="mail")
        sent = messages()
        with server.raw() as client:
            client.lhlo()
            for name, data in sent:
                txn = client.transaction(SENDER, [addr("alice"), addr("bob")], data)
                for r, reply in zip((addr("alice"), addr("bob")), txn.finals):
                    self.assertReply(reply, 250, "2.0.0", rcpt=r, context=f"message {name}")
            client.command("QUIT")

        files = {}
        for local in ("alice", "bob"):
            paths = harness.maildir_files(server.maildir(local), "new")
            self.assertEqual(len(paths), len(sent), f"{local}'s new/: {paths}")
            for path in paths:
                files[(local, os.path.basename(path))] = harness.read_bytes(path)
        # Which file holds which message: each one ends with its own Subject and body.
        by_subject = {}
        for key, stored in files.items():
            matches = [name for name, data in sent
                       if stored.endswith(data.replace(b"\r\n", b"\n"))]
            self.assertEqual(len(matches), 1, f"{key} matches {matches}")
            by_subject[key] = matches[0]

        # Set up as README.Debian says: mailseal writes as `mail`, Dovecot reads as `mail`; no
        # file changes hands after delivery.
        dovecot = self.start_dovecot(server.vmail)
        for local in ("alice", "bob"):
            records = dovecot.fetch(addr(local),
                                    ("guid", "size.physical", "size.virtual", "text"))
            self.assertEqual(len(records), len(sent),
                             f"doveadm fetch for {local}: {[r.get('guid') for r in records]}")
            for record in records:
                # A Maildir message's GUID is its file name's base (Dovecot maildir-sync).
                name = record["guid"]
                key = (local, name)
                self.assertIn(key, files, f"doveadm lists {name!r}, not among {list(files)}")
                stored = files[key]
                s, w = harness.size_fields(name)
                label = f"{local}/{by_subject[key]} ({name})"
                self.assertEqual(record["size.physical"], s,
                                 f"{label}: size.physical {record['size.physical']}, S={s}")
                self.assertEqual(record["size.virtual"], w,
                                 f"{label}: size.virtual {record['size.virtual']}, W={w}")
                # Dovecot takes S= and W= from the name as they are, so check them against
                # the file too: its size, and its size with every LF written as CRLF.
                self.assertEqual(s, len(stored), f"{label}: S= vs file size")
                self.assertEqual(w, harness.crlf_size(stored), f"{label}: W= vs CRLF size")
                self.assertEqual(record["text"], stored, f"{label}: text as Dovecot reads it")

            # Dovecot's own parse of the body part equals the body mailseal received.
            bodies = dovecot.fetch(addr(local), ("guid", "body"))
            for record in bodies:
                name = by_subject[(local, record["guid"])]
                data = dict(sent)[name]
                want = data.split(b"\r\n\r\n", 1)[1].replace(b"\r\n", b"\n")
                self.assertEqual(record["body"], want, f"{local}/{name}: body")


if __name__ == "__main__":
    unittest.main()

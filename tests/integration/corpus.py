# SPDX-License-Identifier: Apache-2.0
"""A corpus of real-world mail that mailseal did not write, prepared for LMTP delivery.

The messages are the test messages that Debian's libmime-explode-perl package ships under
/usr/share/doc/libmime-explode-perl/examples/testmsgs/ (30 files, 32 messages once the two
mailboxes are split and two mailbox bookkeeping records dropped). Most are real mail from
1995-2002 that users sent to the authors of MIME-tools and MIME::Explode with bug reports:
unterminated and look-alike boundaries, a header section ended by a line holding a space,
8-bit octets in parts labelled 7bit or quoted-printable, nested message/rfc822 bounces, uuencoded
junk, hostile file names, and files with CRLF line ends. Provenance, licence and one line on
each message: CORPUS.md beside this file.

Python 3 standard library only. Usage:

    import corpus
    if not corpus.available():
        raise unittest.SkipTest(corpus.install_hint())   # or fail: the issue asks for it
    for name, data in corpus.messages():                 # data: CRLF lines, ends with CRLF
        expect_554 = name in corpus.over_long()          # lines over 998 octets + CRLF
"""

import os
import re

PACKAGE = "libmime-explode-perl"
# The version whose files CORPUS.md describes (Debian 12 "bookworm"); others may differ.
PACKAGE_VERSION = "0.39-4+b1"
CORPUS_DIR = "/usr/share/doc/libmime-explode-perl/examples/testmsgs"

# RFC 5321 section 4.5.3.1.6: a text line is at most 998 octets plus CRLF. mailseal answers
# `554 5.6.0` to DATA holding a longer line (with the default data_line_length of 1000).
MAX_LINE = 998

# Every file of CORPUS_DIR in the package version above, in the order messages() returns them.
# A file is read only if it is listed here, so a later package version that adds files does not
# change the corpus silently; one that removes a listed file makes messages() raise.
# All 30 files are mail: 28 single messages (.msg, three of them with an mbox "From " postmark
# line in front) and 2 mboxes (.mbx) holding 3 records each. The one file of the package's
# examples/ folder that is not mail, explode.pl (the Perl demo script), is outside CORPUS_DIR and
# never read.
FILES = (
    "ak-0696.msg",
    "bluedot-postcard.msg",
    "bluedot-simple.msg",
    "dup-names.msg",
    "frag.msg",
    "german.msg",
    "hdr-fakeout.msg",
    "multi-2evil.msg",
    "multi-2gifs.msg",
    "multi-clen.msg",
    "multi-digest.msg",
    "multi-frag.msg",
    "multi-igor.msg",
    "multi-igor2.msg",
    "multi-nested.msg",
    "multi-nested2.msg",
    "multi-nested3.msg",
    "multi-simple.msg",
    "multi-weirdspace.msg",
    "not-term-bdr.mbx",
    "problem.mbx",
    "qprint-evil.msg",
    "re-fwd.msg",
    "rfc822.msg",
    "russian.msg",
    "simple.msg",
    "uu-junk-target.msg",
    "uu-junk.msg",
    "uu-zeegee.msg",
    "viraldoc.msg",
)

# How many messages messages() returns for PACKAGE_VERSION (28 files + 3 + 1 mbox records).
EXPECTED_COUNT = 32

# An mbox postmark: "From " at the start of the file or after an empty line, then an envelope
# sender (or "-", as Netscape wrote it) and a ctime()-style date starting with a weekday.
_POSTMARK = re.compile(rb"From \S+ +(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) [^\n]*\n")


def install_hint():
    """What to run when the corpus is missing."""
    return (f"the mail corpus needs Debian's {PACKAGE} package ({CORPUS_DIR}): "
            f"apt-get install {PACKAGE} (scripts/install-deps)")


def available():
    """True when the package's corpus directory is there."""
    return os.path.isdir(CORPUS_DIR)


def canonicalize(data):
    """data with every LF not preceded by CR turned into CRLF (the sealing contract's rule)."""
    return re.sub(rb"(?<!\r)\n", b"\r\n", data)


def _split_mbox(data):
    """The records of an mbox-style file, postmark lines removed.

    A file that does not start with a postmark is one message. Otherwise a record runs from
    the line after its postmark to the next postmark that follows an empty line; that empty
    line is the mbox's separator (RFC 4155) and is dropped with the postmark. Body lines that
    start "From " without a preceding empty line, or ">From ", are left as they are.
    """
    if not _POSTMARK.match(data):
        return [data]
    records = []
    start = data.index(b"\n") + 1
    pos = start
    while True:
        found = data.find(b"\n\nFrom ", pos)
        while found != -1 and not _POSTMARK.match(data, found + 2):
            found = data.find(b"\n\nFrom ", found + 1)
        if found == -1:
            records.append(data[start:])
            return records
        records.append(data[start:found + 1])
        start = data.index(b"\n", found + 2) + 1
        pos = start


def _is_folder_internal_data(record):
    """The pseudo-message that UW-IMAP's c-client writes at the top of an mbox it manages
    ("DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA", with an X-IMAP field). It is mailbox
    bookkeeping, not mail anyone sent; problem.mbx holds two identical copies of it."""
    head = record.split(b"\n\n", 1)[0]
    return (re.search(rb"(?im)^X-IMAP(?:BASE)?:", head) is not None
            and b"FOLDER INTERNAL DATA" in head)


def _prepare(record):
    data = canonicalize(record)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data


def messages():
    """[(name, bytes)] of the corpus in FILES order.

    name is the file name, with "#N" (1-based record number in the file) for mbox files.
    bytes: CRLF line ends, no mbox postmark lines, ending with CRLF, not dot-stuffed (a real
    LMTP client such as smtplib does that; harness.dot_stuff for a raw one). Lines longer than
    MAX_LINE octets are kept; over_long() names the messages that hold one.
    Raises FileNotFoundError (with install_hint()) when the package is missing.
    """
    if not available():
        raise FileNotFoundError(install_hint())
    result = []
    for file_name in FILES:
        with open(os.path.join(CORPUS_DIR, file_name), "rb") as f:
            data = f.read()
        records = _split_mbox(data)
        if len(records) == 1 and not file_name.endswith(".mbx"):
            result.append((file_name, _prepare(records[0])))
            continue
        for number, record in enumerate(records, 1):
            if _is_folder_internal_data(record):
                continue
            result.append((f"{file_name}#{number}", _prepare(record)))
    return result


def long_lines(data):
    """Lengths (CRLF excluded) of the lines of data longer than MAX_LINE octets."""
    return [len(line) for line in data.split(b"\r\n") if len(line) > MAX_LINE]


def over_long(corpus=None):
    """Names of the messages (of `corpus`, default messages()) with a line over MAX_LINE octets:
    mailseal refuses those with `554 5.6.0` instead of delivering them. For PACKAGE_VERSION the
    set is empty (the longest line is 495 octets, in not-term-bdr.mbx#1), so every message is
    expected to be delivered."""
    if corpus is None:
        corpus = messages()
    return {name for name, data in corpus if long_lines(data)}


def unlisted_files():
    """Files of CORPUS_DIR that FILES does not list (a newer package version), for diagnostics."""
    if not available():
        return []
    return sorted(set(os.listdir(CORPUS_DIR)) - set(FILES))


if __name__ == "__main__":
    corpus = messages()
    for name, data in corpus:
        longest = max(len(line) for line in data.split(b"\r\n"))
        eight_bit = sum(1 for byte in data if byte > 127)
        print(f"{name:24} {len(data):6d} octets  longest line {longest:4d}  8-bit octets "
              f"{eight_bit}")
    print(f"{len(corpus)} messages (expected {EXPECTED_COUNT}); over-long: "
          f"{sorted(over_long(corpus)) or 'none'}; unlisted files: {unlisted_files() or 'none'}")

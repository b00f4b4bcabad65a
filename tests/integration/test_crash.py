# SPDX-License-Identifier: Apache-2.0
"""kill -9 during deliveries: whatever moment the daemon dies at, what it acknowledged is stored,
nothing partial reaches new/, and no keyed recipient's plaintext reaches the disk.

A client delivers a stream of transactions over LMTP (1 to 5 recipients each, keyed and unkeyed,
every tenth message over 1 MB) while a second thread SIGKILLs `mailseal serve` at random moments
and starts it again; the client reconnects and goes on. A recipient that got a 250 is
acknowledged. The kills are spread over the run: the n-th waits until about n/kills of the
transactions have begun, then a random 0 to 250 ms, so most land inside a transaction, while
the body streams in, while copies are sealed and written, or between the final replies.
Afterwards:

- missing: acknowledged copies that are not where they belong (must be 0);
- partial: files in new/ or cur/ that are not a complete copy of a message sent to that
  recipient: a sealed copy must carry the format and key count of its recipient and decrypt
  (OpenSSL, GnuPG) to the original MIME entity, and an unkeyed copy must be the message as sent
  after the trace fields (must be 0);
- plaintext: files anywhere under the test's directories, tmp/ leftovers included, that hold a
  message's secret token, in clear or in base64, other than an unkeyed recipient's copy of that
  message (must be 0).

Files left in tmp/ are expected after a kill (the Maildir spec leaves them to a 36-hour
cleanup); they are counted, and searched like every other file. Copies stored but never
acknowledged (killed between the rename and the 250) are duplicates the MTA will deliver again;
they are counted, and checked like the others.

The same runs in relay mode ([store] kind = "lmtp" in front of a real Dovecot): acknowledged
copies must all be in Dovecot's Maildirs, complete, and sealed for keyed recipients.

bench/crash-soak runs the same code longer, once per mode, and prints the figures.
"""

import collections
import concurrent.futures
import dataclasses
import os
import random
import re
import secrets
import shutil
import threading
import time

import decryptors
import dnsbed
import harness
from messages import BedKeys, inner_entity

SENDER = harness.SENDER
BED_DOMAINS = ["signed.test", "unsigned.test"]
# Keyed recipients of the DNS test bed (dnsbed.py) and how their copies must be sealed: format
# and number of keys.
KEYED = {
    "alice@signed.test": ("smime", 1),    # RSA-2048
    "dave@signed.test": ("smime", 2),     # two records: the answer comes over TCP
    "hugo@signed.test": ("smime", 1),     # EC P-256 key agreement
    "quinn@signed.test": ("openpgp", 1),  # Cv25519
    "paul@signed.test": ("openpgp", 1),   # RSA-3072
}
# Secure absence (erin, zoe) and an insecure zone: stored as received.
UNKEYED = ["erin@signed.test", "zoe@signed.test", "alice@unsigned.test"]
RECIPIENTS = [*KEYED, *UNKEYED]
# Every message carries its own secret: this prefix and 32 hex digits. The prefix's base64
# forms find any of them base64-encoded.
SECRET_PREFIX = b"SEALCRASHTOK"
SECRET = re.compile(re.escape(SECRET_PREFIX) + rb"([0-9a-f]{32})")
SECRET_BASE64 = harness.base64_forms(SECRET_PREFIX)
MESSAGE_ID = re.compile(rb"^Message-ID: <crash-(\d+)-[0-9a-f]+@remote\.example>$", re.M | re.I)
MAILSEAL_FIELD = re.compile(rb"^Mailseal: (.*)$", re.M)
LARGE_EVERY = 10
LARGE_SIZE = (1024 * 1024, 1536 * 1024)
SMALL_SIZE = (200, 16 * 1024)
# After the kill point is reached, the kill waits this long at most (uniformly random).
KILL_JITTER = 0.25
# Errors that mean the connection died with the daemon (ConnectionClosed is an AssertionError).
CONNECTION_LOST = (harness.ConnectionClosed, ConnectionError, FileNotFoundError)


# --- the messages --------------------------------------------------------------------------------


@dataclasses.dataclass
class Sent:
    """One transaction of the run; its message is made again from (seq, secret, size) when it
    is needed, so a long run does not hold every message in memory."""

    seq: int
    secret: bytes
    size: int
    recipients: list
    rcpt_replies: dict = dataclasses.field(default_factory=dict)   # address -> "250 2.1.5"
    finals: dict = dataclasses.field(default_factory=dict)         # address -> "250 2.0.0"
    # "done", "refused" (MAIL or DATA not accepted), or where a kill cut it: "envelope",
    # "data" (the body being sent) or "replies" (after the final dot)
    phase: str = "envelope"

    def data(self):
        return build_message(self.seq, self.secret, self.size, self.recipients)

    @property
    def acknowledged(self):
        return [r for r, reply in self.finals.items() if reply.startswith("250 ")]


def build_message(seq, secret, size, recipients):
    """A text/plain message of about `size` octets with its secret at the start, middle and
    end of the body (so a copy cut anywhere still shows it), and a Message-ID naming `seq`."""
    token = SECRET_PREFIX + secret
    line = b"crash test filler, message %d, line %d: nothing to see here\r\n"
    lines, total = [], 0
    while total < size:
        lines.append(line % (seq, len(lines)))
        total += len(lines[-1])
    half = len(lines) // 2
    body = (token + b"\r\n" + b"".join(lines[:half]) + token + b"\r\n" + b"".join(lines[half:])
            + token + b"\r\n")
    head = (f"From: <{SENDER}>\r\nTo: <{recipients[0]}>\r\nSubject: crash {seq}\r\n"
            f"Message-ID: <crash-{seq}-{secret[:8].decode()}@remote.example>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n")
    return head.encode() + body


# --- the run: a client delivering, a thread killing ------------------------------------------------


class CrashRun:
    """Delivers `transactions` transactions (or a few more, until the last kill) to `server` (a
    started harness.Mailseal) over its unix socket while SIGKILLing and restarting it `kills`
    times; run() returns the Sent list and leaves the daemon running.

    rng: a random.Random, so that a failing run can be repeated from its seed. progress: an
    optional callable(text) for the long variant's progress lines."""

    def __init__(self, server, rng, transactions, kills, progress=None):
        self.server = server
        self.rng = rng
        self.kill_rng = random.Random(rng.random())
        self.transactions = transactions
        self.kills_wanted = kills
        self.progress = progress
        self.sent = []
        self.kills = 0
        # Bumped before each kill: a connection that breaks while it is unchanged broke without
        # a kill, which is a failure of its own.
        self.generation = 0
        self.errors = []
        self._started = 0
        self._cond = threading.Condition()
        self._stop = threading.Event()

    def run(self, timeout):
        killer = threading.Thread(target=self._killer, name="killer", daemon=True)
        killer.start()
        try:
            self._deliver_all(time.monotonic() + timeout)
        finally:
            self._stop.set()
            with self._cond:
                self._cond.notify_all()
            killer.join(timeout=harness.START_TIMEOUT * 2)
        if killer.is_alive():
            self.errors.append("the killer thread did not finish")
        return self.sent

    # The killer

    def _killer(self):
        try:
            for n in range(1, self.kills_wanted + 1):
                # The n-th kill comes once about n/(kills+1) of the transactions have begun.
                mark = n * self.transactions // (self.kills_wanted + 1)
                with self._cond:
                    self._cond.wait_for(lambda: self._started >= mark or self._stop.is_set())
                # A random moment from there: not a wait for anything, the fault's timing.
                if self._stop.wait(self.kill_rng.uniform(0, KILL_JITTER)):
                    return
                with self._cond:
                    self.generation += 1
                self.server.kill()
                self.kills += 1
                self.server.start()
        except Exception as e:  # reported by the test, which must not hang on a dead thread
            self.errors.append(f"killer: {e!r}")
            self._stop.set()

    # The client

    def _connect(self, deadline):
        """A client past greeting and LHLO, and the generation it connected in."""
        def attempt():
            if self._stop.is_set() and self.errors:
                raise harness.HarnessError("the killer failed: " + "; ".join(self.errors))
            with self._cond:
                generation = self.generation
            try:
                client = harness.RawLMTP(self.server.socket_path)
            except (ConnectionError, FileNotFoundError):
                return None  # between the kill and the restart's bind
            try:
                greeting = client.reply()
                lhlo = client.lhlo()
            except CONNECTION_LOST:
                client.close()
                return None
            if greeting.code != 220 or lhlo.code != 250:
                client.close()
                raise harness.HarnessError(f"greeting {greeting!r}, LHLO {lhlo!r}")
            return client, generation

        return harness.wait_until(attempt, max(0.1, deadline - time.monotonic()),
                                  "mailseal to accept a connection again", interval=0.02,
                                  diagnostics=self.server.diagnostics)

    def _next(self):
        seq = len(self.sent) + 1
        large = seq % LARGE_EVERY == 0
        size = self.rng.randint(*(LARGE_SIZE if large else SMALL_SIZE))
        recipients = self.rng.sample(RECIPIENTS, self.rng.randint(1, 5))
        sent = Sent(seq, secrets.token_hex(16).encode(), size, recipients)
        self.sent.append(sent)
        return sent

    def _deliver_all(self, deadline):
        client = generation = None
        # On until every kill has happened too: the last one may come after the last planned
        # transaction has begun.
        while len(self.sent) < self.transactions or (self.kills < self.kills_wanted
                                                     and not self.errors):
            if time.monotonic() > deadline:
                raise harness.HarnessError(f"run not done in time: {len(self.sent)} "
                                           f"transactions, {self.kills} kills")
            if client is None:
                client, generation = self._connect(deadline)
            sent = self._next()
            with self._cond:
                self._started = sent.seq
                self._cond.notify_all()
            try:
                self._transact(client, sent)
            except CONNECTION_LOST:
                client.close()
                client = None
                with self._cond:
                    killed = self.generation != generation
                if not killed:
                    self.errors.append(f"transaction {sent.seq}: the connection broke in "
                                       f"phase {sent.phase} without a kill")
            if self.progress and sent.seq % 100 == 0:
                self.progress(f"{sent.seq}/{self.transactions} transactions, "
                              f"{self.kills} kills")
        if client is not None:
            try:
                client.command("QUIT")
            except CONNECTION_LOST:
                pass  # the last kill came after the last transaction
            client.close()

    def _transact(self, client, sent):
        """One pipelined transaction; sent.phase says how far it got."""
        sent.phase = "envelope"
        client.send(f"MAIL FROM:<{SENDER}>\r\n" + "".join(f"RCPT TO:<{r}>\r\n"
                                                          for r in sent.recipients) + "DATA\r\n")
        mail = client.reply()
        for r in sent.recipients:
            reply = client.reply()
            sent.rcpt_replies[r] = f"{reply.code} {reply.enhanced}"
        data = client.reply()
        if mail.code != 250 or data.code != 354:
            sent.phase = "refused"
            return
        sent.phase = "data"
        client.send(harness.dot_stuff(sent.data()))
        sent.phase = "replies"
        for r in sent.recipients:
            if sent.rcpt_replies[r].startswith("250 "):
                reply = client.reply()
                sent.finals[r] = f"{reply.code} {reply.enhanced}"
        sent.phase = "done"


# --- what is on disk afterwards --------------------------------------------------------------------


@dataclasses.dataclass
class Figures:
    transactions: int = 0
    copies: int = 0            # recipients of all transactions
    acknowledged: int = 0      # 250 after the final dot
    not_acknowledged: int = 0  # any other final reply (4xx, 5xx), or none before a kill
    other_replies: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    kills: int = 0
    cut_in: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    missing: int = 0
    partial: int = 0
    plaintext: int = 0
    stored_unacknowledged: int = 0  # complete copies that never got their 250: duplicates
    tmp_leftovers: int = 0
    problems: list = dataclasses.field(default_factory=list)  # the first few, for messages

    def note(self, problem):
        if len(self.problems) < 20:
            self.problems.append(problem)

    def lines(self):
        """The figures as `name value` lines (the long variant prints them)."""
        return [f"transactions {self.transactions}", f"copies {self.copies}",
                f"acknowledged {self.acknowledged}",
                f"not_acknowledged {self.not_acknowledged}",
                f"other_replies {dict(self.other_replies) or '{}'}",
                f"kills {self.kills}",
                f"cut_in {dict(self.cut_in) or '{}'}",
                f"missing {self.missing}", f"partial {self.partial}",
                f"plaintext {self.plaintext}",
                f"stored_unacknowledged {self.stored_unacknowledged}",
                f"tmp_leftovers {self.tmp_leftovers}"]


def header_of(stored):
    return stored.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]


def check_copy(stored, address, by_seq, keys):
    """(seq, None) when `stored` is a complete copy of a message sent to `address`, else
    (seq or None, what is wrong). keys: a messages.BedKeys."""
    header = header_of(stored)
    found = MESSAGE_ID.search(header)
    if found is None:
        return None, "no Message-ID of this run in the header"
    seq = int(found.group(1))
    sent = by_seq.get(seq)
    if sent is None or address not in sent.recipients:
        return seq, f"message {seq} was not sent to {address}"
    data = sent.data()
    fields = MAILSEAL_FIELD.findall(header)
    if address in KEYED:
        form, count = KEYED[address]
        want = f"sealed; format={form}; keys={count}; ".encode()
        if len(fields) != 1 or not fields[0].startswith(want):
            return seq, f"Mailseal fields {fields}, want one starting {want!r}"
        try:
            plain = keys.open(address, stored)
        except (decryptors.ToolError, decryptors.FormatError, harness.HarnessError) as e:
            return seq, f"does not decrypt: {e}"
        if plain != inner_entity(data):
            return seq, f"decrypts to {len(plain)} octets, not the message's entity"
        return seq, None
    if fields != [b"plain; reason=no-key"]:
        return seq, f"Mailseal fields {fields}, want plain; reason=no-key"
    try:
        harness.split_trace_headers(stored, data)
    except AssertionError as e:
        return seq, f"not the message as sent: {str(e)[:200]}"
    return seq, None


def regular_files(roots):
    for root in roots:
        for directory, _, names in os.walk(root):
            for name in names:
                path = os.path.join(directory, name)
                if not os.path.islink(path) and os.path.isfile(path):
                    yield path


def verify(sent, kills, maildir_of, roots, keys):
    """The figures of a run whose copies are in maildir_of(address) (a Maildir path); every
    regular file under `roots` is searched for plaintext."""
    figures = Figures(transactions=len(sent), kills=kills)
    by_seq = {s.seq: s for s in sent}
    for s in sent:
        figures.copies += len(s.recipients)
        figures.acknowledged += len(s.acknowledged)
        figures.not_acknowledged += len(s.recipients) - len(s.acknowledged)
        if s.phase not in ("done", "refused"):
            figures.cut_in[s.phase] += 1
        for reply in [*s.rcpt_replies.values(), *s.finals.values()]:
            if not reply.startswith("250 "):
                figures.other_replies[reply] += 1

    files = [(address, path) for address in RECIPIENTS
             for sub in ("new", "cur") for path in harness.maildir_files(maildir_of(address), sub)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        checks = list(pool.map(
            lambda item: check_copy(harness.read_bytes(item[1]), item[0], by_seq, keys),
            files))
    stored = set()
    for (address, path), (seq, problem) in zip(files, checks):
        if problem is not None:
            figures.partial += 1
            figures.note(f"partial: {path}: {problem}")
            continue
        stored.add((seq, address))
    for s in sent:
        for address in s.recipients:
            acked = address in s.acknowledged
            if acked and (s.seq, address) not in stored:
                figures.missing += 1
                figures.note(f"missing: message {s.seq} for {address}, acknowledged "
                             f"{s.finals[address]}")
            elif not acked and (s.seq, address) in stored:
                figures.stored_unacknowledged += 1
    figures.tmp_leftovers = sum(len(harness.maildir_files(maildir_of(a), "tmp"))
                                for a in RECIPIENTS)

    # Plaintext: a secret may be in clear only in the Maildir of an unkeyed recipient of its
    # own message; never anywhere in base64.
    by_secret = {s.secret: s for s in sent}
    for path in regular_files(roots):
        text = harness.read_bytes(path).replace(b"\r", b"").replace(b"\n", b"")
        for secret in set(SECRET.findall(text)):
            s = by_secret.get(secret)
            allowed = s is not None and any(
                path.startswith(maildir_of(a) + os.sep) for a in s.recipients if a in UNKEYED)
            if not allowed:
                figures.plaintext += 1
                figures.note(f"plaintext: {path} holds the secret of message "
                             f"{s.seq if s else '?'} in clear")
        if any(form in text for form in SECRET_BASE64):
            figures.plaintext += 1
            figures.note(f"plaintext: {path} holds a secret in base64")
    return figures


# --- the two modes, for the tests here and bench/crash-soak ----------------------------------------


def soak_maildir(bed, workdir, roots, rng, transactions, kills, keys, timeout, progress=None):
    """A run against mailseal storing into Maildirs under workdir; returns (figures, errors)."""
    server = harness.Mailseal(workdir, {"mailbox": {"domains": BED_DOMAINS},
                                        **bed.mailseal_overrides()})
    try:
        server.start()
        run = CrashRun(server, rng, transactions, kills, progress)
        sent = run.run(timeout)
    finally:
        server.stop()

    def maildir_of(address):
        local, domain = address.split("@")
        return server.maildir(local, domain)

    return verify(sent, run.kills, maildir_of, roots, keys), run.errors


def soak_relay(bed, workdir, roots, rng, transactions, kills, keys, timeout, progress=None):
    """The same with mailseal relaying every copy to a real Dovecot's LMTP server
    ([store] kind = "lmtp"); the copies are looked for in Dovecot's Maildirs."""
    vmail = os.path.join(workdir, "dovecot-vmail")
    os.makedirs(vmail)
    shutil.chown(vmail, "mail", "mail")
    dovecot = harness.Dovecot(workdir, vmail)
    server = harness.Mailseal(workdir, {
        "mailbox": {"domains": BED_DOMAINS},
        "store": {"kind": "lmtp", "next_hop": dovecot.lmtp_socket},
        **bed.mailseal_overrides()})
    try:
        dovecot.start()
        server.start()
        run = CrashRun(server, rng, transactions, kills, progress)
        sent = run.run(timeout)
    finally:
        server.stop()
        dovecot.stop()

    def maildir_of(address):
        local, domain = address.split("@")
        return os.path.join(vmail, domain, local, "Maildir")

    return verify(sent, run.kills, maildir_of, roots, keys), run.errors


class CrashTest(harness.TestCase):
    """The short runs; bench/crash-soak has the long ones. MAILSEAL_CRASH_SEED repeats a run."""

    # Transactions, kills and the deadline (seconds) of each run: with the test bed, the whole
    # class takes about 35 s on two cores.
    MAILDIR_RUN = (200, 20, 120)
    RELAY_RUN = (120, 12, 120)

    @classmethod
    def setUpClass(cls):
        cls.bed = dnsbed.start_for_class(cls)
        cls.keys = BedKeys(cls.bed)
        cls.addClassCleanup(cls.keys.close)

    def setUp(self):
        super().setUp()
        self.seed = int(os.environ.get("MAILSEAL_CRASH_SEED") or secrets.randbits(32))
        self.rng = random.Random(self.seed)

    def assertSurvived(self, figures, errors, kills):
        summary = (f"seed {self.seed}: " + ", ".join(figures.lines()) + "\n"
                   + "\n".join(errors + figures.problems))
        self.assertEqual(errors, [], summary)
        self.assertEqual(figures.kills, kills, summary)
        self.assertEqual(figures.missing, 0, summary)
        self.assertEqual(figures.partial, 0, summary)
        self.assertEqual(figures.plaintext, 0, summary)
        # A run whose kills never hit a message in flight, or that acknowledged little, would
        # prove nothing: most kills land inside a transaction, most copies get their 250.
        self.assertGreaterEqual(figures.cut_in["data"] + figures.cut_in["replies"], kills // 4,
                                summary)
        self.assertGreaterEqual(figures.acknowledged, figures.copies // 2, summary)
        self.assertEqual([r for r in figures.other_replies if r.startswith("5")], [], summary)

    def test_kill_during_maildir_deliveries(self):
        transactions, kills, timeout = self.MAILDIR_RUN
        figures, errors = soak_maildir(self.bed, self.dir, [self.workdir, self.dir], self.rng,
                                       transactions, kills, self.keys, timeout)
        self.assertSurvived(figures, errors, kills)

    def test_kill_while_relaying_to_dovecot(self):
        transactions, kills, timeout = self.RELAY_RUN
        figures, errors = soak_relay(self.bed, self.dir, [self.workdir, self.dir], self.rng,
                                     transactions, kills, self.keys, timeout)
        self.assertSurvived(figures, errors, kills)

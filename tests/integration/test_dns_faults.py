# SPDX-License-Identifier: Apache-2.0
"""Damaged DNS answers in flight: a proxy (dnsproxy.py) between libunbound and the test bed's NSD
damages the answers for one recipient's names, while every other name of the zones (DNSKEY,
DS, NSEC3 proofs, the other users) passes through.

Each fault goes to a keyed user whose names nothing has looked up before, so that no answer can
come from libunbound's cache, in one transaction with xena, also keyed, whose answers pass:

  alice  SERVFAIL                                          451 4.4.3
  hugo   answers cut in half                               451 4.4.3
  dave   garbage after the query's ID, over UDP and TCP    451 4.4.3
         (libunbound retries a query over TCP when its UDP
         answers do not parse; his SMIMEA answer is larger
         than 1232 octets and comes over TCP anyway)
  quinn  answers held 4 s, past dns.timeout (3 s)          451 4.4.3
  paul   an octet of his OPENPGPKEY RDATA flipped: bogus   451 4.7.5

Each time nothing is stored for the user (no file in new/ or tmp/, and the message's secret in
no file under the test's directories, in clear or in base64), xena's copy is sealed, and the
proxy did damage the user's queries.

Then the proxy passes everything again and the same daemon, never restarted, delivers to the
user, sealed. Not at once: libunbound keeps the SERVFAIL that ended a failed lookup in its
message cache for NORR_TTL, 5 seconds (unbound's iterator.c, error_response_cache()), and a
bogus answer for val-bogus-ttl (60 s by default; this test's unbound_conf sets 3 s to keep the
suite short). A retry before then gets the same reply without a query, so the test retries
every half second until RECOVERY_TIMEOUT, and asserts that each retry is refused the same way
with nothing stored.

Last, a delay within dns.timeout: bob's answers are held 0.3 s (less than libunbound's first
retransmission timeout) while a 24 MiB message for him streams in. It is delivered sealed, and
its secret is in no file.
"""

import os
import secrets

import dnsbed
import dnsproxy
import harness
from messages import BedKeys, entity_message, inner_entity

BED_DOMAINS = ["signed.test"]
HEALTHY = "xena@signed.test"
# dnsbed's dns.timeout is 3 s; a delay must outlast it.
DELAY = 4.0
# libunbound remembers the failure for 5 s (val-bogus-ttl set to 3 s here); then one retry.
RECOVERY_TIMEOUT = 20
UNBOUND_CONF = "server:\n    val-bogus-ttl: 3\n"


class DamagedDnsTest(harness.ClassDaemonCopies, harness.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.bed = dnsbed.start_for_class(cls)
        cls.proxy = dnsproxy.DnsProxy(cls.bed.port).start()
        cls.addClassCleanup(cls.proxy.stop)
        cls.keys = BedKeys(cls.bed)
        cls.addClassCleanup(cls.keys.close)
        unbound_conf = os.path.join(cls.workdir, "unbound-faults.conf")
        with open(unbound_conf, "w") as f:
            f.write(UNBOUND_CONF)
        cls.server = harness.Mailseal(cls.workdir, {
            "mailbox": {"domains": BED_DOMAINS,
                        "maildir": os.path.join(cls.workdir, "vmail", "%d", "%n", "Maildir")},
            "dns": cls.bed.dns_settings(unbound_conf=unbound_conf),
            "dns.stub_zone": [{"zone": dnsbed.PARENT, "servers": [cls.proxy.address]}],
        })
        cls.addClassCleanup(cls.server.stop)
        cls.server.start()

    def test_servfail(self):
        self.assertDamagedThenDelivered("alice", dnsproxy.SERVFAIL, "4.4.3", "failure")

    def test_truncated_answers(self):
        self.assertDamagedThenDelivered("hugo", dnsproxy.TRUNCATED, "4.4.3", "failure")

    def test_garbage_over_tcp(self):
        self.assertDamagedThenDelivered("dave", dnsproxy.GARBAGE, "4.4.3", "failure",
                                        transport="tcp")

    def test_answers_later_than_the_timeout(self):
        # Ended by mailseal's own deadline, not by libunbound giving up first.
        self.assertDamagedThenDelivered("quinn", dnsproxy.DELAY, "4.4.3", "failure",
                                        lookup_detail="timeout")

    def test_tampered_answer_is_bogus(self):
        self.assertDamagedThenDelivered("paul", dnsproxy.TAMPERED, "4.7.5", "bogus")

    def test_slow_answers_hold_a_large_message_back(self):
        # Answers within dns.timeout but after the first megabytes arrive: the daemon holds at
        # most the sealer's bound of body in memory, then stops reading until the key is
        # there; reading ahead while the workers seal must not add to what it holds in clear.
        address = "bob@signed.test"
        self.proxy.damage([dnsbed.owner_label("bob")], dnsproxy.DELAY, delay=0.3)
        self.addCleanup(self.proxy.clear)
        secret = ("SECRET-" + secrets.token_hex(16)).encode()
        line = b"held back until the key is known " * 2 + b"\r\n"
        chunk = line * (1024 * 1024 // len(line))
        body = secret + b"\r\n" + chunk * 12 + secret + b"\r\n" + chunk * 12 + secret + b"\r\n"
        data = entity_message("slow key, large message", body, to=address)
        delayed = self.proxy.counts().get(dnsproxy.DELAY, 0)
        txn = self.deliver([address], data)
        self.assertReply(txn.finals[0], 250, "2.0.0", rcpt=address)
        self.assertGreater(self.proxy.counts().get(dnsproxy.DELAY, 0), delayed,
                           "no answer for bob was held back")
        stored = self.stored(address)
        self.assertIn(b"\nMailseal: sealed; format=smime; keys=1;", stored)
        self.assertEqual(self.keys.open(address, stored), inner_entity(data))
        self.assertNowhere(secret)

    def secret_message(self, address, subject):
        secret = ("SECRET-" + secrets.token_hex(16)).encode()
        return secret, entity_message(subject, b"Only for the key holder: " + secret + b"\r\n",
                                      to=address)

    def assertNowhere(self, secret):
        found = harness.files_containing([self.workdir, self.dir],
                                         [secret, *harness.base64_forms(secret)], unfold=True)
        self.assertEqual(found, [], "the message's secret is in these files")

    def assertDamagedThenDelivered(self, user, fault, enhanced, keys_outcome, transport=None,
                                   lookup_detail=None):
        """`fault` on user's answers (over `transport`, if given, at least once): refused with
        451 `enhanced`, nothing stored, and (if given) a key lookup logged with
        detail=`lookup_detail`; then, with the answers passing, delivered sealed."""
        address = f"{user}@signed.test"
        self.proxy.damage([dnsbed.owner_label(user)], fault, delay=DELAY)
        damaged = self.proxy.counts(transport).get(fault, 0)
        secret, data = self.secret_message(address, f"{fault} for {user}")
        log_offset = os.path.getsize(self.server.log_path)
        txn = self.deliver([address, HEALTHY], data)
        self.assertEqual(len(txn.finals), 2, f"{txn!r}\n{self.server.diagnostics()}")
        self.assertReply(txn.finals[0], 451, enhanced, rcpt=address, context=fault)
        self.assertReply(txn.finals[1], 250, "2.0.0", rcpt=HEALTHY, context="healthy recipient")
        self.assertGreater(self.proxy.counts(transport).get(fault, 0), damaged,
                           f"the proxy damaged none of {user}'s queries over {transport}")
        event = [e for e in self.server.delivery_events() if e["rcpt"] == f"<{address}>"][-1]
        self.assertEqual(event["keys_outcome"], keys_outcome, event)
        if lookup_detail is not None:
            lookups = [harness.parse_log_line(line)
                       for line in self.server.log_since(log_offset).splitlines()]
            details = [e.get("detail") for e in lookups
                       if e.get("event") == "key-lookup" and e.get("rcpt") == f"<{address}>"]
            self.assertIn(lookup_detail, details, "the key lookups' details")
        self.assertNothingStored(address)
        healthy = self.stored(HEALTHY)
        self.assertEqual(self.keys.open(HEALTHY, healthy), inner_entity(data))
        self.assertNowhere(secret)

        # The same daemon recovers once the answers pass again.
        self.proxy.clear()
        secret, data = self.secret_message(address, f"after {fault} for {user}")
        retries = []

        def delivered():
            txn = self.deliver([address], data)
            retries.append(txn.finals[0])
            if txn.finals[0].code == 250:
                return True
            self.assertReply(txn.finals[0], 451, enhanced, rcpt=address,
                             context=f"retry {len(retries)} while libunbound remembers the "
                                     "failure")
            self.assertNothingStored(address)
            return False

        harness.wait_until(delivered, RECOVERY_TIMEOUT, f"a sealed delivery to {address} once "
                           "the proxy passes its answers", interval=0.5,
                           diagnostics=self.server.diagnostics)
        stored = self.stored(address)
        self.assertEqual(self.keys.open(address, stored), inner_entity(data))
        self.assertNowhere(secret)

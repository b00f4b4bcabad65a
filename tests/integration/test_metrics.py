# SPDX-License-Identifier: Apache-2.0
"""The Prometheus endpoint ([metrics] listen).

What each test is for: after a known set of deliveries in one transaction (one recipient
sealed with a local-store key under an unsigned zone, one stored plain, one deferred by
policy) a scrape of GET /metrics shows exactly those counts per decision, per DNS outcome and
per reply class, the bytes sealed, the latency histograms' counts, and the open connections;
other paths get 404.
"""

import os
import re
import signal
import socket
import unittest

import decryptors
import harness

DOMAIN = harness.DOMAIN


def scrape(port, path="/metrics"):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return head.decode(), body.decode()


def samples(text):
    """{'name{labels}': value} of the exposition text."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


class MetricsTest(harness.TestCase):
    def test_counts_after_known_deliveries(self):
        if not harness.MAILSEAL_BIN:
            raise unittest.SkipTest("MAILSEAL_BIN is not set (run the tests through ctest)")
        ident = decryptors.Identity(f"bob@{DOMAIN}", directory=self.dir)
        self.addCleanup(ident.close)
        store = os.path.join(self.dir, "certs")
        harness.add_to_local_store(store, f"bob@{DOMAIN}", ident.cert_path)
        server = self.start_mailseal({
            "keys": {"local_store": store},
            "seal.policy": [{"match": f"carol@{DOMAIN}", "on_no_key": "defer"}],
            "metrics": {"listen": "127.0.0.1:0"},
        })
        m = re.search(r"event=metrics-listening listener=tcp:127\.0\.0\.1:(\d+)", server.log())
        self.assertIsNotNone(m, server.log())
        port = int(m.group(1))

        data = harness.message("metrics", b"Counted.\r\n")
        recipients = [f"alice@{DOMAIN}", f"bob@{DOMAIN}", f"carol@{DOMAIN}"]
        with server.raw() as client:
            client.lhlo()
            txn = client.transaction(harness.SENDER, recipients, data)
            self.assertEqual([r.code for r in txn.finals], [250, 250, 451], repr(txn))
            # Scraped while this connection is open.
            head, body = scrape(port)
            self.assertEqual(samples(body)["mailseal_open_connections"], 1)
            client.command("QUIT")
        harness.wait_until(
            lambda: samples(scrape(port)[1])["mailseal_open_connections"] == 0, 10,
            "the LMTP connection to be counted closed")

        head, body = scrape(port)
        self.assertTrue(head.startswith("HTTP/1.1 200 OK"), head)
        self.assertIn("Content-Type: text/plain; version=0.0.4", head)
        got = samples(body)
        want = {
            'mailseal_deliveries_total{decision="sealed"}': 1,
            'mailseal_deliveries_total{decision="plain"}': 1,
            'mailseal_deliveries_total{decision="deferred"}': 1,
            'mailseal_deliveries_total{decision="bogus"}': 0,
            # Each recipient's SMIMEA and OPENPGPKEY lookups, one series per format.
            'mailseal_key_lookups_total{format="smime",outcome="insecure"}': 3,
            'mailseal_key_lookups_total{format="smime",outcome="secure"}': 0,
            'mailseal_key_lookups_total{format="openpgp",outcome="insecure"}': 3,
            'mailseal_key_lookups_total{format="openpgp",outcome="bogus"}': 0,
            'mailseal_replies_total{class="2xx"}': 2,
            'mailseal_replies_total{class="4xx"}': 1,
            'mailseal_replies_total{class="5xx"}': 0,
            "mailseal_sealed_bytes_total": len(data),
            "mailseal_delivery_seconds_count": 3,
            'mailseal_delivery_seconds_bucket{le="+Inf"}': 3,
            # One key discovery per recipient, however many formats it looks up.
            "mailseal_key_lookup_seconds_count": 3,
            "mailseal_open_connections": 0,
        }
        for key, value in want.items():
            self.assertEqual(got.get(key), value, f"{key}\n{body}")
        head, _ = scrape(port, "/other")
        self.assertTrue(head.startswith("HTTP/1.1 404"), head)
        self.assertEqual(got.get('mailseal_build_info{version="0.1.0"}'), 1, body)
        # Sums are exact, with six decimals, whatever their size (no %g rounding).
        self.assertRegex(body, r"(?m)^mailseal_delivery_seconds_sum \d+\.\d{6}$")

    def test_refusals_reloads_and_next_hop_errors(self):
        if not harness.MAILSEAL_BIN:
            raise unittest.SkipTest("MAILSEAL_BIN is not set (run the tests through ctest)")
        dead = harness.free_port()  # nothing listens: the next hop is unavailable
        server = self.start_mailseal({
            "metrics": {"listen": "127.0.0.1:0"},
            "mailbox": {"on_missing": "refuse"},
            "limits": {"recipients": 100},
            "store": {"kind": "lmtp", "next_hop": f"127.0.0.1:{dead}"},
        })
        port = int(re.search(r"event=metrics-listening listener=tcp:127\.0\.0\.1:(\d+)",
                             server.log()).group(1))
        before = samples(scrape(port)[1])
        self.assertEqual(before['mailseal_config_loads_total{result="success"}'], 1)
        self.assertEqual(before["mailseal_config_last_reload_successful"], 1)
        self.assertGreater(before["mailseal_config_last_reload_success_timestamp_seconds"], 0)
        with server.raw() as client:
            client.lhlo()
            self.assertEqual(client.command("RCPT TO:<a@x>").code, 503)  # before MAIL
            self.assertEqual(client.command(f"MAIL FROM:<{harness.SENDER}>").code, 250)
            self.assertEqual(client.command("RCPT TO:<nobody@elsewhere.example>").code, 550)
            self.assertEqual(client.command("RCPT TO:<bad address>").code, 501)
            self.assertEqual(client.command(f"RCPT TO:<x@{DOMAIN}> FOO=1").code, 555)
            for i in range(100):
                client.send(f"RCPT TO:<u{i}@{DOMAIN}>\r\n")
            replies = client.replies(100)
            self.assertEqual(client.command(f"RCPT TO:<one-more@{DOMAIN}>").code, 452)
            self.assertEqual({r.code for r in replies}, {250})
            client.command("RSET")
            txn = client.transaction(harness.SENDER, [f"alice@{DOMAIN}"],
                                     harness.message("relay"))
            self.assertEqual([r.code for r in txn.finals], [451], txn)
        got = samples(scrape(port)[1])
        want = {'mailseal_rcpt_refusals_total{reason="sequence"}': 1,
                'mailseal_rcpt_refusals_total{reason="unknown-recipient"}': 1,
                'mailseal_rcpt_refusals_total{reason="syntax"}': 1,
                'mailseal_rcpt_refusals_total{reason="parameter"}': 1,
                'mailseal_rcpt_refusals_total{reason="too-many-recipients"}': 1,
                'mailseal_rcpt_refusals_total{reason="mailbox-error"}': 0,
                'mailseal_relay_errors_total{kind="unavailable"}': 1,
                'mailseal_relay_errors_total{kind="refused-permanent"}': 0}
        for key, value in want.items():
            self.assertEqual(got.get(key), value, key)
        # A reload that fails, then one that succeeds.
        with open(server.config_path) as f:
            good = f.read()
        with open(server.config_path, "w") as f:
            f.write(good + "\n[bogus]\n")
        server.proc.send_signal(signal.SIGHUP)
        harness.wait_until(lambda: "event=reload-failed" in server.log(), 10, "reload-failed")
        got = samples(scrape(port)[1])
        self.assertEqual(got['mailseal_config_loads_total{result="failure"}'], 1)
        self.assertEqual(got["mailseal_config_last_reload_successful"], 0)
        with open(server.config_path, "w") as f:
            f.write(good)
        server.proc.send_signal(signal.SIGHUP)
        harness.wait_until(lambda: "event=reloaded" in server.log(), 10, "reloaded")
        got = samples(scrape(port)[1])
        self.assertEqual(got['mailseal_config_loads_total{result="success"}'], 2)
        self.assertEqual(got["mailseal_config_last_reload_successful"], 1)


if __name__ == "__main__":
    unittest.main()

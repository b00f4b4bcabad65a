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


if __name__ == "__main__":
    unittest.main()

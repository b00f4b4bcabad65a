# SPDX-License-Identifier: Apache-2.0
"""The monitoring artefacts shipped in examples/: the Prometheus alert rules pass `promtool
check rules` and their own `promtool test rules`, and every metric the rules and the Grafana
dashboard name is one that mailseal really exports (a scrape of a running daemon, and the
textfile `mailseal check --prometheus` writes)."""

import json
import os
import re
import shutil
import subprocess
import unittest

import harness
from test_lookup import run_mailseal
from test_metrics import scrape

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples")
RULES = os.path.join(EXAMPLES, "prometheus", "alerts.yml")
RULES_TEST = os.path.join(EXAMPLES, "prometheus", "alerts_test.yml")
DASHBOARD = os.path.join(EXAMPLES, "grafana", "mailseal.json")


def metric_names(text):
    """mailseal_* metric names in PromQL text, histogram suffixes taken off."""
    names = set()
    for name in re.findall(r"\bmailseal_[a-z_]+", text):
        names.add(re.sub(r"_(bucket|sum|count)$", "", name))
    return names


class MonitoringArtefactsTest(harness.TestCase):
    def test_rules_pass_promtool(self):
        if shutil.which("promtool") is None:
            raise unittest.SkipTest("promtool is not installed (Debian package prometheus)")
        for args in (["check", "rules", RULES], ["test", "rules", RULES_TEST]):
            proc = subprocess.run(["promtool", *args], capture_output=True, text=True,
                                  cwd=os.path.dirname(RULES), timeout=60)
            self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)

    def test_every_metric_named_is_exported(self):
        if not harness.MAILSEAL_BIN:
            raise unittest.SkipTest("MAILSEAL_BIN is not set (run the tests through ctest)")
        server = self.start_mailseal({"metrics": {"listen": "127.0.0.1:0"}})
        port = int(re.search(r"event=metrics-listening listener=tcp:127\.0\.0\.1:(\d+)",
                             server.log()).group(1))
        exported = set(re.findall(r"(?m)^# TYPE (\S+) ", scrape(port)[1]))
        textfile = os.path.join(self.dir, "check.prom")
        code, _, err = run_mailseal("check", "--config", server.config_path, "--prometheus",
                                    textfile, f"alice@{harness.DOMAIN}")
        self.assertIn(code, (0, 1, 2), err)
        exported |= set(re.findall(r"(?m)^# TYPE (\S+) ", harness.read_text(textfile)))
        with open(RULES) as f:
            used = metric_names(f.read())
        with open(DASHBOARD) as f:
            dashboard = json.load(f)
        expressions = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
        self.assertGreaterEqual(len(expressions), 10)
        for expr in expressions:
            used |= metric_names(expr)
        self.assertTrue(used)
        self.assertEqual(used - exported, set(), f"exported: {sorted(exported)}")
        # The dashboard shows what the issue of monitoring asks first.
        for wanted in ("mailseal_deliveries_total", "mailseal_replies_total",
                       "mailseal_key_lookups_total", "mailseal_delivery_seconds"):
            self.assertIn(wanted, used)


if __name__ == "__main__":
    unittest.main()

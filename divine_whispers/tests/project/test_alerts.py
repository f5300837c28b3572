"""The alert rules (deploy/prometheus/alerts.yml) pass their promtool unit tests, and every
metric they use is one /metrics really exposes (a renamed metric would silence an alert).

promtool comes from Debian's `prometheus` package (scripts/test.sh and .ci/run fetch it).
Without it the test is skipped with the reason — except in CI (DW_PROMTOOL_REQUIRED=1),
where a missing promtool is a failure, never a silent skip.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from django.conf import settings

RULES = Path(settings.BASE_DIR) / "deploy" / "prometheus"
HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")


def _promtool() -> str:
    found = shutil.which("promtool") or str(Path(settings.BASE_DIR) / ".venv" / "bin" / "promtool")
    if os.access(found, os.X_OK):
        return found
    reason = "promtool is missing (scripts/test.sh fetches it from Debian's prometheus package)"
    if os.environ.get("DW_PROMTOOL_REQUIRED") == "1":
        pytest.fail(f"alert rule tests required but {reason}")
    pytest.skip(reason)


def test_alert_rules_pass_their_promtool_unit_tests():
    promtool = _promtool()
    checked = subprocess.run(
        [promtool, "check", "rules", "alerts.yml"], cwd=RULES, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(
        [promtool, "test", "rules", "alerts_test.yml"], cwd=RULES, capture_output=True, text=True
    )
    print(tested.stdout + tested.stderr)  # quoted in the closing note (pytest -s)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout + tested.stderr


def _exposed_names(text: str) -> set[str]:
    names = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE):
        names.add(name)
        if kind == "histogram":
            names.update(name + suffix for suffix in HISTOGRAM_SUFFIXES)
        if kind == "counter" and not name.endswith("_total"):
            names.add(name + "_total")
    return names


@pytest.mark.django_db
def test_every_metric_an_alert_uses_is_exposed(client, settings):
    settings.METRICS_TOKEN = "alerts-test"
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer alerts-test")
    exposed = _exposed_names(response.content.decode())
    rules = (RULES / "alerts.yml").read_text()
    used = set(re.findall(r"\bdivine_whispers_\w+", rules))
    assert used, "no metric found in alerts.yml"
    assert used <= exposed, f"alerts.yml uses metrics /metrics does not expose: {used - exposed}"
    alerts = set(re.findall(r"^\s+- alert: (\w+)$", rules, re.MULTILINE))
    tested = set(re.findall(r"alertname: (\w+)$", (RULES / "alerts_test.yml").read_text(), re.M))
    assert alerts == tested, f"alerts without a unit test: {alerts - tested}"


# Patroni's and etcd's metrics (the database cluster's alerts) are not the app's: /metrics
# above cannot vouch for them. Their rule: each name an alert uses is in the exposition
# captured from the packaged Patroni and etcd (deploy/prometheus/external-metrics.txt);
# the failover drill checks that capture against the live cluster's /metrics again.
EXTERNAL_METRIC = r"\b(?:patroni|etcd)_\w+"


def test_every_external_metric_an_alert_uses_is_in_the_captured_exposition():
    rules = (RULES / "alerts.yml").read_text()
    used = set(re.findall(EXTERNAL_METRIC, rules))
    assert used, "no Patroni or etcd metric found in alerts.yml"
    captured = _exposed_names((RULES / "external-metrics.txt").read_text())
    assert used <= captured, (
        f"alerts.yml uses metrics Patroni/etcd do not expose: {used - captured}"
    )

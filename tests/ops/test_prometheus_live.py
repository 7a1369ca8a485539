"""The monitoring files against a real Prometheus scraping the real local stack.

A Prometheus server (Debian's binary) runs monitoring/prometheus.yml with its targets moved to the
loopback ports of `stockit up` (fixtures in conftest.py).  Every target must be up, every alert rule
must evaluate without error, and every query of every Grafana panel must return a series: Grafana
cannot be installed here, so its queries are proven directly.
"""
from __future__ import annotations

import re

import pytest

from tests.ops import opsfiles

pytestmark = pytest.mark.ops

QUERY_TIMEOUT = 60.0


def rule_names() -> set[str]:
    return {rule.get("alert") or rule["record"] for path in opsfiles.RULE_FILES
            for group in opsfiles.load_yaml(path)["groups"] for rule in group["rules"]}


def test_every_scrape_target_is_up(prometheus):
    def all_up():
        targets = prometheus.api("/api/v1/targets", state="active")["activeTargets"]
        assert {t["labels"]["job"] for t in targets} == prometheus.jobs, "scrape jobs"
        down = {t["labels"]["job"]: (t["health"], t["lastError"]) for t in targets if t["health"] != "up"}
        assert not down, f"not up: {down}"
        return targets

    opsfiles.wait_for(all_up, timeout=60, what="every scrape target to be up")


def test_every_alert_rule_evaluates_without_error(prometheus):
    def evaluated():
        groups = prometheus.api("/api/v1/rules")["groups"]
        rules = {rule["name"]: rule for group in groups for rule in group["rules"]}
        errors = {name: rule["lastError"] for name, rule in rules.items() if rule["health"] == "err"}
        if errors:
            pytest.fail(f"rules failed to evaluate: {errors}")
        assert set(rules) == rule_names(), "loaded rules"
        waiting = sorted(name for name, rule in rules.items() if rule["health"] != "ok")
        assert not waiting, f"not evaluated yet: {waiting}"
        return rules

    opsfiles.wait_for(evaluated, timeout=60, what="every alert rule to evaluate")


@pytest.mark.parametrize(
    "dashboard,panel,expr", opsfiles.panel_queries(),
    ids=[re.sub(r"\W+", "-", f"{d[:-5]}-{p}").strip("-").lower() for d, p, _ in opsfiles.panel_queries()])
def test_every_panel_query_returns_a_series(prometheus, web_traffic, dashboard, panel, expr):
    def has_series():
        data = prometheus.api("/api/v1/query", query=expr)
        assert data["result"], "empty result"
        return data["result"]

    opsfiles.wait_for(has_series, timeout=QUERY_TIMEOUT,
                      what=f"{dashboard}: {panel!r} ({expr}) to return a series")

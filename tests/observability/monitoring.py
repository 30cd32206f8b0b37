"""The monitoring files as shipped, read the way Prometheus and Grafana read them: the alert
rules, the dashboard's queries, the PromQL examples of docs/METRICS.md, and the tools
(`prometheus`, `promtool`, Debian's `prometheus` package) that check them.

Every expression comes from the files themselves, so renaming a metric in the code without
renaming it there fails the tests that evaluate them."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
PROMETHEUS_YML = PROMETHEUS_DIR / "prometheus.yml"
ALERTS_YML = PROMETHEUS_DIR / "alerts.yml"
ALERTS_TEST_YML = PROMETHEUS_DIR / "alerts_test.yml"
GRAFANA_DIR = ROOT / "deploy" / "grafana" / "provisioning"
DASHBOARD_JSON = ROOT / "docs" / "grafana-dashboard.json"
METRICS_MD = ROOT / "docs" / "METRICS.md"
RUNBOOK_MD = ROOT / "docs" / "RUNBOOK.md"
COMPOSE_MONITORING = ROOT / "compose.monitoring.yml"

REQUIRE_PROMETHEUS = os.environ.get("AGENTHUB_REQUIRE_PROMETHEUS") == "1"

# Grafana replaces these before sending a panel's query; Prometheus gets the result.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$instance": ".*"}


def prometheus_tool(name: str) -> str:
    """The path of `prometheus` or `promtool`; skips without them, fails when CI requires them
    (AGENTHUB_REQUIRE_PROMETHEUS=1, as `.ci/run` sets)."""
    path = shutil.which(name)
    if path is None:
        why = f"`{name}` is not installed (Debian package `prometheus`)"
        if REQUIRE_PROMETHEUS:
            pytest.fail(f"AGENTHUB_REQUIRE_PROMETHEUS=1 but {why}")
        pytest.skip(why)
    return path


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def alert_rules() -> list[dict[str, Any]]:
    """Every alerting rule of alerts.yml, in order."""
    groups = load_yaml(ALERTS_YML)["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def alert_expressions() -> dict[str, str]:
    return {rule["alert"]: " ".join(str(rule["expr"]).split()) for rule in alert_rules()}


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD_JSON.read_text())
    return data


def all_panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every panel, those inside (collapsed) rows included."""
    found = []
    for panel in panels:
        found.append(panel)
        found.extend(all_panels(panel.get("panels", [])))
    return found


def grafana_to_promql(expr: str) -> str:
    """A panel's query as Grafana sends it, with the dashboard's variables replaced."""
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    return expr


def dashboard_expressions() -> list[str]:
    """Every target's expr, in panel order, as Prometheus receives it."""
    return [
        grafana_to_promql(target["expr"])
        for panel in all_panels(dashboard()["panels"])
        for target in panel.get("targets", [])
        if "expr" in target
    ]


PROMQL_BLOCK = re.compile(r"^```promql\n(.*?)^```", re.MULTILINE | re.DOTALL)


def promql_blocks(markdown: str) -> list[str]:
    """The expressions of the ```promql blocks, written as METRICS.md says: a line starting in
    the first column starts an expression, an indented line continues the one before; blank
    lines and `#` comments are skipped."""
    expressions: list[str] = []
    for block in PROMQL_BLOCK.findall(markdown):
        for line in block.splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if line[0].isspace() and expressions:
                expressions[-1] += " " + line.strip()
            else:
                expressions.append(line.strip())
    return expressions


def metrics_md_expressions() -> list[str]:
    return promql_blocks(METRICS_MD.read_text())


METRIC_NAME = re.compile(r"\b(agenthub_[a-z0-9_]*[a-z0-9]|process_[a-z0-9_]*[a-z0-9]|up(?=\{))")


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (ours, the process collector's, and `up`)."""
    return set(METRIC_NAME.findall(expr))


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped, spaces
    as hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def runbook_anchors() -> set[str]:
    return {
        github_anchor(m.group(1))
        for m in re.finditer(r"^#{1,6}\s+(.+?)\s*$", RUNBOOK_MD.read_text(), re.MULTILINE)
    }

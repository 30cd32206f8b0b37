"""The Grafana side as shipped: docs/grafana-dashboard.json is a dashboard Grafana imports as is
(its JSON model, a `datasource` variable of type prometheus, every panel placed and querying),
the provisioning files point at what compose.monitoring.yml mounts, and that compose file
is valid against the Compose Specification."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.observability.monitoring import (
    COMPOSE_MONITORING,
    DASHBOARD_JSON,
    GRAFANA_DIR,
    GRAFANA_VARIABLES,
    METRICS_MD,
    PROMETHEUS_YML,
    ROOT,
    alert_expressions,
    all_panels,
    dashboard,
    dashboard_expressions,
    grafana_to_promql,
    load_yaml,
    metrics_md_expressions,
)

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
GRID_WIDTH = 24
# What the seed and the operator asked the dashboard to show: a panel title for each.
WANTED_PANELS = [
    "connections",
    "rooms",
    "messages / s by room",
    "socket.io event latency",
    "http latency",
    "http requests / s by status",
    "rate-limit refusals",
    "database statement latency",
    "pool",
    "cpu",
    "memory",
]


def test_dashboard_is_grafanas_json_model_with_a_prometheus_datasource_variable() -> None:
    d = json.loads(DASHBOARD_JSON.read_text())
    assert d["uid"] == "agenthub-overview"
    assert d["title"] == "AgentHub"
    assert d["id"] is None  # Grafana assigns its own on import
    assert 36 <= d["schemaVersion"] <= 41, d["schemaVersion"]
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    # Every other variable, and every panel, queries through that variable: nothing is tied
    # to the uid of one Grafana's data source, so the file imports anywhere as it is.
    for name, variable in variables.items():
        if name != "datasource":
            assert variable["datasource"] == DATASOURCE, name
    assert set(GRAFANA_VARIABLES) == {"$__rate_interval"} | {f"${n}" for n in variables} - {
        "$datasource"
    }


def _overlap(a: dict[str, int], b: dict[str, int]) -> bool:
    return (
        a["x"] < b["x"] + b["w"]
        and b["x"] < a["x"] + a["w"]
        and a["y"] < b["y"] + b["h"]
        and b["y"] < a["y"] + a["h"]
    )


def test_every_panel_is_placed_and_queries_prometheus() -> None:
    panels = all_panels(dashboard()["panels"])
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    placed: list[tuple[str, dict[str, int]]] = []
    for panel in panels:
        title = panel.get("title", "?")
        grid = panel["gridPos"]
        assert {"x", "y", "w", "h"} <= set(grid), title
        assert grid["x"] >= 0, title
        assert grid["x"] + grid["w"] <= GRID_WIDTH, title
        assert grid["h"] > 0, title
        for other_title, other in placed:
            assert not _overlap(grid, other), f"{title!r} overlaps {other_title!r}"
        placed.append((title, grid))
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DATASOURCE, title
        assert panel["targets"], f"{title!r} has no query"
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), title
        for target in panel["targets"]:
            assert target["expr"].strip(), title
            assert target["datasource"] == DATASOURCE, title
            # Only the variables the evaluation in test_prometheus.py knows how to replace.
            assert "$" not in grafana_to_promql(target["expr"]), target["expr"]
    titles = " | ".join(p["title"].lower() for p in panels if p["type"] != "row")
    missing = [w for w in WANTED_PANELS if w not in titles]
    assert not missing, f"no panel for {missing}: {titles}"


def test_every_panel_query_is_among_those_a_real_prometheus_evaluates() -> None:
    """test_prometheus.py evaluates the alerts, dashboard_expressions() and METRICS.md; this
    checks that dashboard_expressions() reads every panel's every query (rows included)."""
    evaluated = (
        set(dashboard_expressions())
        | set(alert_expressions().values())
        | set(metrics_md_expressions())
    )
    panels = all_panels(dashboard()["panels"])
    queries = [grafana_to_promql(t["expr"]) for p in panels for t in p.get("targets", [])]
    assert queries, "no query at all"
    assert [q for q in queries if q not in evaluated] == []
    # and the dashboard shows every metric METRICS.md documents under our prefix
    shown = " ".join(queries)
    documented = set(re.findall(r"`(agenthub_[a-z_]+)`", METRICS_MD.read_text()))
    assert [m for m in sorted(documented) if m not in shown] == []


# ---- provisioning and compose ----


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(COMPOSE_MONITORING)
    return data


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Bind mounts of a service: container path -> host path (relative to the repository)."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        if source.startswith("./"):
            mounts[target] = source
    return mounts


def test_compose_monitoring_is_valid_against_the_compose_specification() -> None:
    checked = subprocess.run(
        [
            str(Path(sys.executable).parent / "check-jsonschema"),
            "--builtin-schema",
            "vendor.compose-spec",
            str(COMPOSE_MONITORING),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_compose_runs_prometheus_and_grafana_only_in_the_monitoring_profile() -> None:
    services = _compose()["services"]
    assert set(services) == {"prometheus", "grafana"}
    for name, service in services.items():
        assert service["profiles"] == ["monitoring"], name
        for source in _mounts(service).values():
            assert (ROOT / source).exists(), f"{name} mounts {source}, which does not exist"
    prometheus = services["prometheus"]
    assert _mounts(prometheus)["/etc/prometheus"] == "./deploy/prometheus"
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    # Prometheus scrapes the AgentHub service of compose.lan.yml on the project's network.
    targets = load_yaml(PROMETHEUS_YML)["scrape_configs"][0]["static_configs"][0]["targets"]
    assert targets == ["agenthub:3000"]


def test_grafana_is_provisioned_with_the_datasource_and_the_dashboard() -> None:
    grafana = _compose()["services"]["grafana"]
    mounts = _mounts(grafana)
    assert mounts["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"
    [(dashboard_target, _)] = [
        (t, s) for t, s in mounts.items() if s == "./docs/grafana-dashboard.json"
    ]

    [source] = load_yaml(GRAFANA_DIR / "datasources" / "prometheus.yml")["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"  # the compose service
    assert source["isDefault"] is True  # what the dashboard's datasource variable picks
    prometheus_port = grafana_port = None
    for port in _compose()["services"]["prometheus"]["ports"]:
        prometheus_port = port.split(":")[-1]
    assert prometheus_port == "9090"
    for port in grafana["ports"]:
        grafana_port = port.split(":")[0]
    assert grafana_port != "3000", "AgentHub's port"

    [provider] = load_yaml(GRAFANA_DIR / "dashboards" / "agenthub.yml")["providers"]
    assert provider["type"] == "file"
    assert str(Path(dashboard_target).parent) == provider["options"]["path"]
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == dashboard_target

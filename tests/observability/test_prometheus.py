"""deploy/prometheus as shipped: promtool accepts the configuration and the rules, the alerts'
unit tests pass, each alert has its summary and runbook section, and a real Prometheus
scraping a real AgentHub evaluates every expression of the alerts, the dashboard and
docs/METRICS.md — and finds data where the traffic it was shown should have made some."""

from __future__ import annotations

import asyncio
import contextlib
import math
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import socketio
import yaml

from tests.observability.monitoring import (
    ALERTS_TEST_YML,
    ALERTS_YML,
    PROMETHEUS_DIR,
    PROMETHEUS_YML,
    alert_expressions,
    alert_rules,
    dashboard_expressions,
    load_yaml,
    metric_names,
    metrics_md_expressions,
    prometheus_tool,
    promql_blocks,
    runbook_anchors,
)
from tests.support import Agent, Server, free_port, start_server, stop_process, uniq

NS = "/agents"
WAIT = 10  # seconds: the bound on any single expected event
PROMETHEUS_START_S = 30
SCRAPED_WITHIN_S = 20  # a scrape every second: far more than enough

SEED_ALERTS = {  # the seed's "monitoring thresholds"
    "AgentHubHighCpu",  # CPU > 70 % sustained
    "AgentHubSendLatencyHigh",  # p99 latency > 100 ms (Socket.IO)
    "AgentHubHttpLatencyHigh",  # p99 latency > 100 ms (HTTP)
    "AgentHubDbPoolNearlyFull",  # DB connections > 80 %
}

# An alert's full condition is false on a healthy hub, so it may come back empty; what must
# have data is its signal, the expression left of its final threshold (`signal > 0.7`).
# These may be empty even so (each metric they select is still checked to exist):
ALLOWED_EMPTY = {
    "AgentHubDown": "`up == 0 or absent(up)`: both false while the hub is scraped",
    "AgentHubMessagesStalled": "true only when sends arrive and nothing is stored",
    "AgentHubHttp5xx": "its signal divides the 5xx rate, and this traffic has no 5xx",
    (
        'sum(rate(agenthub_http_requests_total{status_code=~"5.."}[5m]))'
        " / sum(rate(agenthub_http_requests_total[5m]))"
    ): "the 5xx share: this traffic has no 5xx",
    (
        "histogram_quantile(0.99, sum by (le) "
        "(rate(agenthub_cluster_event_lag_seconds_bucket[5m])))"
    ): "the stream's lag needs a second node; this hub is one, without Redis",
    (
        "histogram_quantile(0.99, sum by (le) "
        '(rate(agenthub_cluster_event_lag_seconds_bucket{instance=~".*"}[5m])))'
    ): "the dashboard's panel of the same lag",
    (
        'sum by (tool, outcome) (rate(agenthub_mcp_tool_calls_total{instance=~".*"}[5m]))'
    ): "this traffic makes no MCP tool call (tests/mcp/test_http_endpoint.py counts them)",
}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


# ---- promtool ----


def test_promtool_accepts_the_configuration_and_the_rules() -> None:
    promtool = prometheus_tool("promtool")
    checked = run(promtool, "check", "config", str(PROMETHEUS_YML))  # loads alerts.yml too
    assert checked.returncode == 0, checked.stdout + checked.stderr
    checked = run(promtool, "check", "rules", str(ALERTS_YML))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in checked.stdout, checked.stdout


def test_each_alert_fires_and_stays_quiet_in_promtools_unit_tests() -> None:
    promtool = prometheus_tool("promtool")
    tested = run(promtool, "test", "rules", str(ALERTS_TEST_YML))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    # Each alert has a case where it fires and a case where it must not.
    fires: set[str] = set()
    quiet: set[str] = set()
    for case in load_yaml(ALERTS_TEST_YML)["tests"]:
        for check in case["alert_rule_test"]:
            (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert names - fires == set(), "alerts never made to fire"
    assert names - quiet == set(), "alerts never checked to stay quiet"
    assert fires | quiet <= names, "tests of alerts that do not exist"


def test_every_alert_has_a_summary_a_severity_and_a_runbook_section() -> None:
    rules = alert_rules()
    names = {rule["alert"] for rule in rules}
    assert names >= SEED_ALERTS, SEED_ALERTS - names
    anchors = runbook_anchors()
    for rule in rules:
        name = rule["alert"]
        annotations = rule.get("annotations", {})
        assert annotations.get("summary"), f"{name} has no summary"
        assert rule.get("labels", {}).get("severity") in ("warning", "critical"), name
        runbook = annotations.get("runbook", "")
        assert runbook.startswith("docs/RUNBOOK.md#"), f"{name}: runbook {runbook!r}"
        anchor = runbook.split("#", 1)[1]
        assert anchor in anchors, f"{name}: docs/RUNBOOK.md has no section #{anchor}"


def test_runbook_anchors_and_promql_blocks_are_read_as_github_and_metrics_md_mean() -> None:
    from tests.observability.monitoring import github_anchor

    assert github_anchor("AgentHubDown") == "agenthubdown"
    assert github_anchor("What to do: the pool's size") == "what-to-do-the-pools-size"
    text = (
        "intro\n```promql\nsum(a)\n  / sum(b)\n\n# a comment\nrate(c[5m])\n```\n"
        "```yaml\nnot: promql\n```\n```promql\nup\n```\n"
    )
    assert promql_blocks(text) == ["sum(a) / sum(b)", "rate(c[5m])", "up"]
    assert metric_names('sum(rate(agenthub_x_total{a="b"}[1m])) / up{job="j"} + process_y') == {
        "agenthub_x_total",
        "up",
        "process_y",
    }
    assert len(metrics_md_expressions()) >= 15


# ---- a real Prometheus scraping a real AgentHub ----


class Prometheus:
    """Debian's `prometheus` on a loopback port, with the shipped configuration in which only
    the target address and the intervals are changed."""

    def __init__(self, target: str, workdir: Path) -> None:
        config = load_yaml(PROMETHEUS_YML)
        config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
        jobs = config["scrape_configs"]
        assert [job["job_name"] for job in jobs] == ["agenthub"], jobs
        jobs[0]["static_configs"] = [{"targets": [target]}]
        workdir.mkdir(parents=True, exist_ok=True)
        for rule_file in config["rule_files"]:
            (workdir / rule_file).write_text((PROMETHEUS_DIR / rule_file).read_text())
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "prometheus.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    prometheus_tool("prometheus"),
                    f"--config.file={workdir / 'prometheus.yml'}",
                    f"--storage.tsdb.path={workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.http = httpx.Client(base_url=self.url, timeout=10)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + PROMETHEUS_START_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"prometheus exited:\n{self.log_path.read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if self.http.get("/-/ready").status_code == 200:
                    return
            time.sleep(0.2)
        raise AssertionError(f"prometheus not ready:\n{self.log_path.read_text()}")

    def query(self, expr: str) -> dict[str, Any]:
        """Prometheus's answer to an instant query: `status` is "error" when it does not parse."""
        answer: dict[str, Any] = self.http.get("/api/v1/query", params={"query": expr}).json()
        return answer

    def values(self, expr: str) -> list[float]:
        answer = self.query(expr)
        assert answer["status"] == "success", (expr, answer)
        data = answer["data"]
        if data["resultType"] == "scalar":
            return [float(data["result"][1])]
        return [float(sample["value"][1]) for sample in data["result"]]

    def wait_for(self, expr: str, expected: float, what: str) -> None:
        deadline = time.monotonic() + SCRAPED_WITHIN_S
        while time.monotonic() < deadline:
            if self.values(expr) == [expected]:
                return
            time.sleep(0.2)
        raise AssertionError(f"{what}: {expr} is {self.values(expr)}, not [{expected}]")

    def evaluated_rules(self) -> list[dict[str, Any]]:
        """The loaded rules, once each has been evaluated without error (or at the deadline)."""
        deadline = time.monotonic() + SCRAPED_WITHIN_S
        while True:
            groups = self.http.get("/api/v1/rules").json()["data"]["groups"]
            rules: list[dict[str, Any]] = [rule for group in groups for rule in group["rules"]]
            if all(rule["health"] == "ok" for rule in rules) or time.monotonic() > deadline:
                return rules
            time.sleep(0.2)

    def close(self) -> None:
        self.http.close()
        stop_process(self.proc)


@contextlib.asynccontextmanager
async def connected(server: Server, agent: Agent) -> AsyncIterator[socketio.AsyncSimpleClient]:
    client = socketio.AsyncSimpleClient()
    await client.connect(
        server.base_url,
        auth={"token": agent.jwt},
        namespace=NS,
        transports=["websocket"],
        wait_timeout=WAIT,
    )
    try:
        yield client
    finally:
        await client.disconnect()


async def some_of_everything(
    server: Server, alice: Agent, bob: Agent, room: dict[str, Any], sends: int
) -> None:
    """Sockets that join and send, REST reads and writes, a 404 and a 400."""
    async with connected(server, alice) as a, connected(server, bob):
        ack = await a.call("room:join", {"roomId": room["id"]}, timeout=WAIT)
        assert ack["ok"] is True, ack
        for i in range(sends):
            ack = await a.call(
                "message:send", {"roomId": room["id"], "body": f"m{i}"}, timeout=WAIT
            )
            assert ack["ok"] is True, ack
        assert alice.get(f"/api/v1/rooms/{room['slug']}/messages").status_code == 200
        r = bob.post(f"/api/v1/rooms/{room['slug']}/messages", {"body": "rest"})
        assert r.status_code == 201, r.text
        assert server.api.http.get(f"/no-such-page/{uniq('x')}").status_code == 404
        assert alice.post("/api/v1/rooms", {"slug": ""}).status_code == 400


async def refusals(server: Server, carol: Agent, room: dict[str, Any], limit: int) -> None:
    """More requests and events than carol's limits allow."""
    answers = [carol.get("/api/v1/agents/me").status_code for _ in range(limit + 10)]
    assert 429 in answers, answers
    async with connected(server, carol) as c:
        acks = await asyncio.gather(
            *(c.call("room:join", {"roomId": room["id"]}, timeout=WAIT) for _ in range(30))
        )
    assert any(not ack["ok"] and ack["error"]["code"] == "rate_limited" for ack in acks), acks


def served(server: Server, name: str) -> float:
    """The sum of a metric's samples as AgentHub serves them right now."""
    total = 0.0
    for line in server.api.http.get("/metrics").text.splitlines():
        if line.startswith((name + " ", name + "{")):
            total += float(line.rsplit(" ", 1)[1])
    return total


def signal_of(expr: str) -> str | None:
    """`signal` of an alert written `signal > threshold` (or <, ==, …); None otherwise."""
    head, sep, threshold = expr.rpartition(" ")
    head = head.rstrip()
    for op in (">=", "<=", "==", "!=", ">", "<"):
        if head.endswith(" " + op) and sep:
            with contextlib.suppress(ValueError):
                float(threshold)
                return head[: -len(op)].strip()
    return None


def test_signal_of_reads_the_threshold_off_an_alert() -> None:
    assert signal_of("rate(x[5m]) > 0.7") == "rate(x[5m])"
    assert signal_of("a / b >= 3") == "a / b"
    assert signal_of("up == 0 or absent(up)") is None
    assert signal_of("rate(x[5m]) > bool 1") is None


async def test_prometheus_scrapes_agenthub_and_every_expression_has_data(
    backend: str, database_url: str, tmp_path: Path
) -> None:
    limit = 30
    server = start_server(
        backend,
        database_url,
        tmp_path / "agenthub",
        RATE_LIMIT_AUTH_PER_MIN=str(limit),
        RATE_LIMIT_SOCKET_PER_SEC="5",
        METRICS_REFRESH_SECONDS="0.5",
    )
    prometheus: Prometheus | None = None
    try:
        prometheus = Prometheus(server.base_url.removeprefix("http://"), tmp_path / "prometheus")
        prometheus.wait_ready()
        prometheus.wait_for('up{job="agenthub"}', 1, "AgentHub scraped")

        alice, bob, carol = server.new_agent(), server.new_agent(), server.new_agent()
        room = server.new_room(alice, bob, carol)
        # Two rounds with a scrape between them: every series the first round creates rises
        # in the second, so each rate() over them has data.
        for sends, stored in ((3, 4), (3, 8)):
            await some_of_everything(server, alice, bob, room, sends)
            await refusals(server, carol, room, limit)
            refused = served(server, "agenthub_rate_limit_refusals_total")
            prometheus.wait_for("sum(agenthub_messages_total)", stored, "messages scraped")
            prometheus.wait_for(
                "sum(agenthub_rate_limit_refusals_total)", refused, "refusals scraped"
            )

        expressions: dict[str, str] = {}  # expression -> where it comes from
        for name, expr in alert_expressions().items():
            expressions[expr] = f"alert {name}"
            signal = signal_of(expr)
            if signal is not None and name not in ALLOWED_EMPTY:
                expressions[signal] = f"alert {name} (its signal)"
        for expr in dashboard_expressions():
            expressions.setdefault(expr, "grafana-dashboard.json")
        for expr in metrics_md_expressions():
            expressions.setdefault(expr, "METRICS.md")
        conditions = set(alert_expressions().values())
        stale = set(ALLOWED_EMPTY) - set(alert_expressions()) - set(expressions)
        assert not stale, f"ALLOWED_EMPTY names what no file has any more: {stale}"

        problems = []
        for expr, where in expressions.items():
            answer = prometheus.query(expr)
            if answer["status"] != "success":
                problems.append(f"{where}: does not evaluate ({answer.get('error')}): {expr}")
                continue
            may_be_empty = expr in conditions or expr in ALLOWED_EMPTY
            if not may_be_empty and not [v for v in prometheus.values(expr) if not math.isnan(v)]:
                problems.append(f"{where}: no data after the traffic: {expr}")
        for name in sorted({n for expr in expressions for n in metric_names(expr)}):
            if not prometheus.values(f"group({name})"):
                problems.append(f"no series of {name}, which an expression selects")
        assert not problems, "\n".join(problems)

        # Prometheus loaded every rule and evaluates it without error.
        rules = prometheus.evaluated_rules()
        assert {rule["name"] for rule in rules} == set(alert_expressions())
        assert [r for r in rules if r["health"] != "ok"] == []
    finally:
        if prometheus is not None:
            prometheus.close()
        server.api.close()
        stop_process(server.proc)

"""/readyz, /metrics and the API while the database goes away and comes back, without
restarting AgentHub.

PostgreSQL only: the test starts a throwaway cluster of its own (never the shared one), points
`agenthub serve` at it, stops the cluster, then starts it again on the same port.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.databases import PG_BIN, ThrowawayCluster
from tests.support import Server, start_server, stop_process

DEADLINE_S = 20  # the server's own ping gives up after 2 s; reconnecting may take a few more
READY = {"status": "ready", "checks": {"db": "ok"}}
NOT_READY = {"status": "not_ready", "checks": {"db": "error"}}


def poll(what: str, check: Callable[[], bool], deadline_s: float = DEADLINE_S) -> float:
    """Call `check` until it holds; return how long it took, or fail after `deadline_s`."""
    started = time.monotonic()
    while time.monotonic() - started < deadline_s:
        if check():
            return time.monotonic() - started
        time.sleep(0.2)
    pytest.fail(f"{what}: not within {deadline_s} s")


def readyz(server: Server) -> httpx.Response:
    return server.api.http.get("/readyz", timeout=10)


def metric_values(server: Server) -> dict[str, float]:
    """Every sample of /metrics by its name and labels as written, e.g. `x{kind="a"}`."""
    r = server.api.http.get("/metrics", timeout=10)
    assert r.status_code == 200, r.text
    values = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            values[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return values


def test_readyz_follows_the_database(tmp_path: Path) -> None:
    missing = [b for b in ("initdb", "pg_ctl", "pg_isready") if not (PG_BIN / b).exists()]
    if missing:
        pytest.fail(
            f"PostgreSQL server binaries missing in {PG_BIN} ({', '.join(missing)}): install "
            "postgresql-15 or set AGENTHUB_TEST_PG_BIN; this test needs a cluster of its own"
        )
    # Under /tmp, not tmp_path: when we are root the cluster runs as `postgres`, which cannot
    # enter pytest's private (0700) temp folder; a short path also keeps the socket name legal.
    root = Path(tempfile.mkdtemp(prefix="agenthub-pg-", dir="/tmp"))
    cluster = ThrowawayCluster(root)
    server: Server | None = None
    running = False
    try:
        cluster.init()
        cluster.start()
        running = True
        cluster.wait_accepting()

        server = start_server("postgres", cluster.url, tmp_path / "data")
        r = readyz(server)
        assert r.status_code == 200, r.text
        assert r.json() == READY
        r = server.admin.get("/api/v1/agents")
        assert r.status_code == 200, r.text

        cluster.stop()
        running = False

        def not_ready() -> bool:
            r = readyz(server)
            return r.status_code == 503 and r.json() == NOT_READY

        poll("/readyz answers 503 once the database is stopped", not_ready)
        assert readyz(server).headers["content-type"].startswith("application/json")

        # The API says the database is unavailable: a 503 in the envelope, never a 500.
        for call in (
            lambda: server.admin.get("/api/v1/agents"),
            lambda: server.admin.get("/api/v1/rooms"),
            lambda: server.api.session(server.admin.token),
        ):
            r = call()
            assert r.status_code == 503, r.text
            assert set(r.json()) == {"error"}
            assert r.json()["error"]["code"] == "unavailable"
            assert "Traceback" not in r.text
        assert server.api.http.get("/healthz").status_code == 200  # the process is alive
        # What Prometheus sees meanwhile: not ready, the database down, and the three failed
        # operations counted as unavailable (the alerts AgentHubNotReady, AgentHubDatabaseErrors).
        down = metric_values(server)
        assert down["agenthub_ready"] == 0
        assert down['agenthub_dependency_up{dependency="db"}'] == 0
        assert down['agenthub_db_errors_total{kind="unavailable"}'] >= 3
        assert down['agenthub_db_errors_total{kind="error"}'] == 0

        cluster.start()
        running = True
        poll(
            "/readyz answers 200 once the database is back", lambda: readyz(server).json() == READY
        )
        assert readyz(server).status_code == 200

        def api_back() -> bool:
            return server.admin.get("/api/v1/agents").status_code == 200

        poll("the API answers again once the database is back", api_back)
        r = server.admin.get("/api/v1/agents")
        assert server.admin.name in [a["name"] for a in r.json()["agents"]]
        assert server.api.session(server.admin.token).status_code == 201
        assert server.proc.poll() is None  # the same process all along
        back = metric_values(server)
        assert back["agenthub_ready"] == 1
        assert back['agenthub_dependency_up{dependency="db"}'] == 1

        log = server.log_text()
        assert "Traceback" not in log
        assert " 500 " not in log
    finally:
        if server is not None:
            server.api.close()
            stop_process(server.proc)
        if running:
            with contextlib.suppress(subprocess.SubprocessError):
                cluster.stop()
        shutil.rmtree(root, ignore_errors=True)

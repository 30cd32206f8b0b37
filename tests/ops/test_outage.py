"""Sockets through a PostgreSQL outage: they stay connected, sends are refused with
`unavailable` (stored nothing, never hung), and everything works again once the database is
back, without restarting AgentHub. A throwaway cluster of the test's own, never the shared one.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import socketio

from tests.databases import PG_BIN, ThrowawayCluster, query
from tests.support import Server, start_server, stop_process

NS = "/agents"
DEADLINE_S = 20


async def until(what: str, check: object, deadline_s: float = DEADLINE_S) -> None:
    started = time.monotonic()
    while time.monotonic() - started < deadline_s:
        if await asyncio.to_thread(check):  # type: ignore[arg-type]
            return
        await asyncio.sleep(0.2)
    pytest.fail(f"{what}: not within {deadline_s} s")


async def test_sockets_ride_out_a_database_outage(tmp_path: Path) -> None:
    if not (PG_BIN / "initdb").exists():
        pytest.fail(
            f"PostgreSQL server binaries missing in {PG_BIN}; this test needs its own cluster"
        )
    root = Path(tempfile.mkdtemp(prefix="agenthub-pg-", dir="/tmp"))  # reachable by `postgres`
    cluster = ThrowawayCluster(root)
    server: Server | None = None
    running = False
    client = socketio.AsyncClient(reconnection=False)
    try:
        cluster.init()
        cluster.start()
        running = True
        cluster.wait_accepting()
        server = start_server("postgres", cluster.url, tmp_path / "data")
        alice = server.new_agent()
        room = server.new_room(alice)
        received: list[dict[str, object]] = []
        got_two = asyncio.Event()

        def on_message(message: dict[str, object]) -> None:
            received.append(message)
            if len(received) >= 2:
                got_two.set()

        client.on("message:new", on_message, namespace=NS)
        await client.connect(
            server.base_url, auth={"token": alice.jwt}, namespaces=[NS], transports=["websocket"]
        )
        send = {"roomId": room["id"], "body": "before"}
        assert (await client.call("message:send", send, namespace=NS, timeout=10))["ok"] is True

        await asyncio.to_thread(cluster.stop)
        running = False
        # Refused, not left hanging: no ack within the bound fails the test (TimeoutError).
        refused = await client.call(
            "message:send",
            {"roomId": room["id"], "body": "during"},
            namespace=NS,
            timeout=DEADLINE_S,
        )
        assert refused["ok"] is False
        assert refused["error"]["code"] == "unavailable"
        joined = await client.call("room:join", {"roomId": room["id"]}, namespace=NS, timeout=30)
        assert joined["error"]["code"] == "unavailable"
        assert client.connected

        await asyncio.to_thread(cluster.start)
        running = True

        def ready() -> bool:
            assert server is not None
            return server.api.http.get("/readyz", timeout=10).status_code == 200

        await until("/readyz answers 200 again", ready)
        assert client.connected, "the socket was dropped during the outage"
        after = await client.call(
            "message:send", {"roomId": room["id"], "body": "after"}, namespace=NS, timeout=10
        )
        assert after["ok"] is True
        assert after["message"]["seq"] == 2  # the refused send took no seq
        await asyncio.wait_for(got_two.wait(), 10)
        assert [m["body"] for m in received] == ["before", "after"]
        rows = query(cluster.url, "SELECT body FROM messages ORDER BY seq")
        assert [r[0] for r in rows] == ["before", "after"]
        assert server.proc.poll() is None
        assert "Traceback" not in server.log_text()
    finally:
        if client.connected:
            await client.disconnect()
        if server is not None:
            server.api.close()
            stop_process(server.proc)
        if running:
            with contextlib.suppress(subprocess.SubprocessError):
                cluster.stop()
        shutil.rmtree(root, ignore_errors=True)

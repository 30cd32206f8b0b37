"""Rotating JWT_SECRET without logging anyone out (docs/RUNBOOK.md, "Rotate the JWT secret").

Two nodes on one database are rolled in the documented order: every node first learns the new
key (verify only), then signs with it while still verifying the old one, then drops the old one
once its sessions have expired. After each node's restart, a session minted by either node is
accepted by both, and so is one minted just before that restart.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.faults import restart_server
from tests.support import Server, start_server, stop_process

NS = "/agents"
OLD = "old-secret-" + "o" * 40
NEW = "new-secret-" + "n" * 40
# Short, so that the old key can be dropped within the test; long enough that a session minted
# just before a restart is still valid once the restarted server is ready.
TTL = 15
WAIT = 20.0  # seconds: the bound on any single expected delivery or reconnect


@contextmanager
def own_server(backend: str, database_url: str, data_dir: Path, **env: str) -> Iterator[Server]:
    srv = start_server(
        backend,
        database_url,
        data_dir,
        JWT_SECRET=OLD,
        JWT_TTL_SECONDS=str(TTL),
        SOCKETIO_PING_INTERVAL="1",
        **env,
    )
    try:
        yield srv
    finally:
        srv.api.close()
        stop_process(srv.proc)


def me(base_url: str, session_jwt: str) -> int:
    r = httpx.get(
        f"{base_url}/api/v1/agents/me", headers={"Authorization": f"Bearer {session_jwt}"}
    )
    return r.status_code


async def until(condition: Callable[[], bool], within: float) -> None:
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 (clock and other tasks' lists)
            await asyncio.sleep(0.1)


async def test_rolling_restart_in_the_documented_order_refuses_no_session(
    backend: str, database_url: str, tmp_path: Path
) -> None:
    with (
        own_server(backend, database_url, tmp_path / "a") as a,
        own_server(backend, database_url, tmp_path / "b") as b,
    ):
        probe = a.new_agent()
        nodes = (a, b)

        def everyone_accepts_everyone() -> None:
            minted = [(n, n.api.login(probe.token)) for n in nodes]
            for issuer, session in minted:
                for node in nodes:
                    assert me(node.base_url, session) == 200, (issuer.base_url, node.base_url)

        def roll(**env: str) -> None:
            for node in nodes:  # one node at a time: the other keeps serving meanwhile
                before = node.api.login(probe.token)
                restart_server(node, **env)
                everyone_accepts_everyone()
                assert all(me(n.base_url, before) == 200 for n in nodes)

        everyone_accepts_everyone()
        # 1. Every node learns the new key, verify only.
        await asyncio.to_thread(roll, JWT_SECRET=OLD, JWT_PREVIOUS_SECRETS=NEW)
        # 2. Every node signs with it, still verifying the old one.
        await asyncio.to_thread(roll, JWT_SECRET=NEW, JWT_PREVIOUS_SECRETS=OLD)
        switched = time.time()
        # 3. After JWT_TTL_SECONDS, no session signed with the old key is left: drop it.
        await until(lambda: time.time() > switched + TTL, TTL + WAIT)
        await asyncio.to_thread(roll, JWT_SECRET=NEW, JWT_PREVIOUS_SECRETS="")

        # Why step 1 comes first: a node signing with a key another node does not hold yet
        # mints sessions that node refuses.
        await asyncio.to_thread(restart_server, a, JWT_SECRET=OLD, JWT_PREVIOUS_SECRETS="")
        assert me(b.base_url, a.api.login(probe.token)) == 401

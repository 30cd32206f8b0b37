"""SIGTERM in the middle of a burst of sends: an orderly stop loses no acknowledged message."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import socketio

from tests.databases import query
from tests.support import start_server, stop_process

NS = "/agents"
SENDERS = 4
WINDOW = 4  # sends in flight per socket


async def test_sigterm_mid_burst_keeps_every_acked_message_and_exits_zero(
    backend: str, database_url: str, tmp_path: Path
) -> None:
    # Sockets here send faster than the default 30 events/s.
    srv = start_server(backend, database_url, tmp_path / "data", RATE_LIMIT_SOCKET_PER_SEC="100000")
    try:
        agents = [srv.new_agent() for _ in range(SENDERS)]
        room = srv.new_room(agents[0], *agents[1:])
        clients = []
        for agent in agents:
            c = socketio.AsyncClient(reconnection=False)
            await c.connect(
                srv.base_url,
                auth={"token": agent.jwt},
                namespaces=[NS],
                transports=["websocket"],
                wait_timeout=10,
            )
            clients.append(c)

        acked: list[dict[str, Any]] = []
        refused: list[str] = []
        stop_sending = asyncio.Event()
        going = asyncio.Event()  # enough acks: the burst is under way

        async def sender(i: int, c: socketio.AsyncClient) -> None:
            n = 0
            while not stop_sending.is_set() and n < 2000:
                batch = []
                for _ in range(WINDOW):
                    n += 1
                    payload = {"roomId": room["id"], "body": f"m{i}-{n}", "clientMsgId": f"{i}-{n}"}
                    batch.append(c.call("message:send", payload, namespace=NS, timeout=10))
                for outcome in await asyncio.gather(*batch, return_exceptions=True):
                    if isinstance(outcome, dict) and outcome.get("ok"):
                        acked.append(outcome["message"])
                        if len(acked) >= 100:
                            going.set()
                    elif isinstance(outcome, dict):
                        refused.append(outcome["error"]["code"])
                    else:  # the connection closed before this ack: not acknowledged
                        stop_sending.set()
                        return

        async with asyncio.timeout(60):
            tasks = [asyncio.create_task(sender(i, c)) for i, c in enumerate(clients)]
            await asyncio.wait_for(going.wait(), 20)
            srv.proc.send_signal(signal.SIGTERM)
            exit_code = await asyncio.to_thread(srv.proc.wait, 20)
            stop_sending.set()
            await asyncio.gather(*tasks)
        for c in clients:
            await c.disconnect()
    finally:
        srv.api.close()
        stop_process(srv.proc)

    assert exit_code == 0, srv.log_text()[-2000:]
    assert set(refused) <= {"unavailable"}, refused
    rows = query(
        database_url,
        "SELECT m.seq, m.client_msg_id FROM messages m JOIN rooms r ON r.id = m.room_id "
        "WHERE r.slug = $1 ORDER BY m.seq",
        room["slug"],
    )
    stored_ids = [r[1] for r in rows]
    assert len(stored_ids) == len(set(stored_ids)), "a message was stored twice"
    assert [r[0] for r in rows] == list(range(1, len(rows) + 1)), "seqs have a gap"
    missing = {m["clientMsgId"] for m in acked} - set(stored_ids)
    assert not missing, f"acknowledged but not stored: {sorted(missing)[:5]}"
    assert len(rows) >= len(acked)
    assert "Traceback" not in srv.log_text()

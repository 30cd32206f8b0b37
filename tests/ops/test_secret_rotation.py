"""Rotating JWT_SECRET without logging anyone out (docs/RUNBOOK.md, "Rotate the JWT secret").

The server restarts twice under load, as the runbook says: first with JWT_SECRET=new and
JWT_PREVIOUS_SECRETS=old, then, once every session signed with the old key has expired, with
JWT_SECRET=new alone. Senders over a raw Socket.IO socket and the SDK keep sending; SDK
subscriptions must see every seq once, in order, and no request with a valid session is refused.
Then two nodes on one database are rolled in the documented order.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import socketio

from agenthub.client import AgentHubClient
from agenthub.client.errors import ConnectionError, Unavailable
from agenthub.client.subscription import Subscription
from tests.faults import proxy_to, restart_server
from tests.support import Agent, Server, jwt_claims, start_server, stop_process

NS = "/agents"
OLD = "old-secret-" + "o" * 40
NEW = "new-secret-" + "n" * 40
# Short, so that the old key can be dropped within the test; long enough that a session minted
# just before a restart is still valid once the restarted server is ready.
TTL = 15
WAIT = 20.0  # seconds: the bound on any single expected delivery or reconnect
PAUSE = 0.1  # seconds between one sender's messages
MAX_SENDS = 2000  # per sender: a bound, never reached (the senders stop after the restarts)


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


class SocketSender:
    """A sender on python-socketio's own client: it connects with the JWT it holds (also on each
    reconnect), moves its socket to a fresh JWT with `session:renew` before the one it holds
    expires, and retries each send with the same clientMsgId until it is acknowledged."""

    def __init__(self, server: Server, agent: Agent) -> None:
        self.server = server
        self.agent = agent
        self.jwt = agent.jwt
        self.jwts = [agent.jwt]  # every session it used, to know when the old key's are over
        self.refused: list[Any] = []  # the server's connect refusals, refused renewals
        self.ended: list[Any] = []  # session:ended events
        self.sio = socketio.AsyncClient(reconnection=False)
        self.sio.on("connect_error", self._connect_error, namespace=NS)
        self.sio.on("session:ended", self.ended.append, namespace=NS)
        self.http = httpx.AsyncClient(base_url=server.base_url, timeout=10)

    async def start(self) -> None:
        await self.sio.connect(
            self.server.base_url,
            auth=self._auth,
            namespaces=[NS],
            transports=["websocket"],
            wait_timeout=WAIT,
        )

    def _connect_error(self, data: Any) -> None:
        # A string is the client's own "Connection error" while the server restarts; the
        # server's refusal of a handshake carries its error envelope.
        if not isinstance(data, str):
            self.refused.append(data)

    async def _auth(self) -> dict[str, str]:
        """On each (re)connect: the JWT it holds, a fresh one first if that is about to end."""
        await self._fresh_jwt_if_due()
        return {"token": self.jwt}

    async def close(self) -> None:
        await self.sio.disconnect()
        await self.http.aclose()

    async def _fresh_jwt_if_due(self) -> bool:
        if float(jwt_claims(self.jwt)["exp"]) - time.time() > TTL / 2:
            return False
        try:
            r = await self.http.post(
                "/api/v1/sessions", headers={"Authorization": f"Bearer {self.agent.token}"}
            )
        except httpx.HTTPError:
            return False  # the server is restarting: try again at the next send
        assert r.status_code == 201, r.text
        self.jwt = str(r.json()["token"])
        self.jwts.append(self.jwt)
        return True

    async def _renew_if_due(self) -> None:
        if await self._fresh_jwt_if_due() and self.sio.connected:
            try:
                ack = await self.sio.call(
                    "session:renew", {"token": self.jwt}, namespace=NS, timeout=5
                )
            except socketio.exceptions.SocketIOError:
                return  # disconnected meanwhile: the reconnect uses the fresh JWT
            if not ack.get("ok"):
                self.refused.append(ack)

    async def send_until(self, room: str, stop: asyncio.Event) -> list[int]:
        seqs: list[int] = []
        for i in range(MAX_SENDS):
            if stop.is_set():
                break
            payload = {"roomId": room, "body": f"socket-{i}", "clientMsgId": str(uuid.uuid4())}
            async with asyncio.timeout(WAIT * 3):
                while True:
                    await self._renew_if_due()
                    if not self.sio.connected:  # a draining server disconnects it for good
                        try:
                            await self.start()
                        except socketio.exceptions.ConnectionError:
                            await asyncio.sleep(0.2)
                            continue
                    try:
                        ack = await self.sio.call("message:send", payload, namespace=NS, timeout=5)
                    except socketio.exceptions.SocketIOError:  # down or reconnecting
                        await asyncio.sleep(0.1)
                        continue
                    if ack.get("ok") is False and ack["error"]["code"] == "unavailable":
                        await asyncio.sleep(0.1)
                        continue
                    assert ack.get("ok") is not False, ack
                    seqs.append(int(ack["message"]["seq"]))
                    break
            await asyncio.sleep(PAUSE)
        return seqs


async def sdk_send_until(client: AgentHubClient, room: str, stop: asyncio.Event) -> list[int]:
    seqs: list[int] = []
    for i in range(MAX_SENDS):
        if stop.is_set():
            break
        msg_id = str(uuid.uuid4())
        async with asyncio.timeout(WAIT * 3):
            while True:
                try:  # the SDK retries a while by itself; a restart can outlast that
                    seqs.append((await client.send(room, f"sdk-{i}", msg_id)).seq)
                    break
                except (ConnectionError, Unavailable):
                    await asyncio.sleep(0.1)
        await asyncio.sleep(PAUSE)
    return seqs


async def collect(sub: Subscription, into: list[int]) -> None:
    async for message in sub:
        into.append(message.seq)


async def until(condition: Callable[[], bool], within: float) -> None:
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 (clock and other tasks' lists)
            await asyncio.sleep(0.1)


async def test_restart_with_rotated_secret_refuses_no_session_and_loses_no_message(
    backend: str, database_url: str, tmp_path: Path
) -> None:
    with own_server(backend, database_url, tmp_path / "data") as srv:
        alpha, beta, gamma, probe = (srv.new_agent() for _ in range(4))
        room = srv.new_room(alpha, beta, gamma, probe)["slug"]
        socket_sender = SocketSender(srv, alpha)
        await socket_sender.start()
        async with (
            proxy_to(srv) as beta_net,
            proxy_to(srv) as gamma_net,
            AgentHubClient(beta_net.url, beta.token) as b,
            AgentHubClient(gamma_net.url, gamma.token) as g,
            g.messages([room]) as sub,  # connected before the first send: it must see them all
        ):
            received: list[int] = []
            receiving = asyncio.create_task(collect(sub, received))
            stop = asyncio.Event()
            sending = asyncio.gather(
                socket_sender.send_until(room, stop), sdk_send_until(b, room, stop)
            )
            await until(lambda: len(received) >= 4, WAIT)  # all three are under way

            # Restart 1: the new key signs, the old one still verifies.
            old_jwt = srv.api.login(probe.token)
            await asyncio.to_thread(restart_server, srv, JWT_SECRET=NEW, JWT_PREVIOUS_SECRETS=OLD)
            assert await asyncio.to_thread(me, srv.base_url, old_jwt) == 200

            # Restart 2, once every session signed with the old key has expired: `old_jwt` was
            # the last one minted with it.
            await until(lambda: float(jwt_claims(old_jwt)["exp"]) < time.time(), TTL + WAIT)
            new_jwt = srv.api.login(probe.token)
            await asyncio.to_thread(restart_server, srv, JWT_SECRET=NEW, JWT_PREVIOUS_SECRETS="")
            assert await asyncio.to_thread(me, srv.base_url, new_jwt) == 200
            after_restarts = len(received)
            await until(lambda: len(received) >= after_restarts + 4, WAIT)

            stop.set()
            socket_seqs, sdk_seqs = await sending
            total = len(socket_seqs) + len(sdk_seqs)
            await until(lambda: len(received) >= total, WAIT)
            await asyncio.sleep(0.5)  # room for a duplicate to show up
            receiving.cancel()
            await socket_sender.close()

        assert socket_sender.refused == []
        assert socket_sender.ended == []
        assert 401 not in beta_net.statuses
        assert 401 not in gamma_net.statuses
        everything = sorted(socket_seqs + sdk_seqs)
        assert everything == list(range(1, total + 1))  # each send stored once
        assert received == everything  # every seq once, in order


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

"""A socket lives as long as its session: it is told (`session:ended`) and disconnected when its
JWT expires or when the API token it came from is revoked; `session:renew` moves it to a fresh
JWT. Revocation also ends the token's REST sessions. Real server, real Socket.IO clients.

JWTs that expire within seconds are made here with the server's test key (the claims are the
server's own, `tid` included), so these tests run on the shared server of each backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import jwt as pyjwt
import pytest
import socketio

from tests.support import (
    JWT_SECRET,
    Agent,
    Server,
    assert_error,
    cli,
    parse_time,
    token_id_of,
    uniq,
)

NS = "/agents"
WAIT = 15.0  # seconds: the bound on any single expected event


def short_jwt(agent: Agent, lifetime: int, **claims: Any) -> str:
    """A session JWT of `agent`'s token (from its current JWT) that expires in `lifetime` s."""
    now = int(time.time())
    payload = {
        "sub": agent.id,
        "role": agent.role,
        "iat": now,
        "exp": now + lifetime,
        "jti": str(uuid.uuid4()),
        "tid": token_id_of(agent.jwt),
        **claims,
    }
    return pyjwt.encode({k: v for k, v in payload.items() if v is not None}, JWT_SECRET)


class Recorder:
    """A python-socketio client that records every event of the namespace, in order."""

    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: list[tuple[str, Any]] = []
        self.changed = asyncio.Event()
        self.sio.on("*", self._any, namespace=NS)
        self.sio.on("disconnect", self._disconnect, namespace=NS)

    async def _any(self, event: str, data: Any = None) -> None:
        self.events.append((event, data))
        self.changed.set()

    async def _disconnect(self, reason: Any = None) -> None:
        self.events.append(("disconnect", None))
        self.changed.set()

    def names(self) -> list[str]:
        return [name for name, _ in self.events]

    async def until(self, name: str, within: float = WAIT) -> Any:
        """The data of the first `name` event, waiting for it up to `within` seconds."""
        async with asyncio.timeout(within):
            while True:
                for event, data in self.events:
                    if event == name:
                        return data
                self.changed.clear()
                await self.changed.wait()


@asynccontextmanager
async def recording(server: Server, token: str) -> AsyncIterator[Recorder]:
    rec = Recorder()
    await rec.sio.connect(
        server.base_url,
        auth={"token": token},
        namespaces=[NS],
        transports=["websocket"],
        wait_timeout=WAIT,
    )
    try:
        yield rec
    finally:
        await rec.sio.disconnect()


async def refused_handshake(server: Server, token: str) -> Any:
    client = socketio.AsyncClient(reconnection=False)
    errors: list[Any] = []
    client.on("connect_error", errors.append, namespace=NS)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(
            server.base_url,
            auth={"token": token},
            namespaces=[NS],
            transports=["websocket"],
            wait_timeout=WAIT,
        )
    await client.disconnect()
    return errors[0] if errors else None


async def send_ack(rec: Recorder, room_id: str, body: str) -> Any:
    return await rec.sio.call("message:send", {"roomId": room_id, "body": body}, NS, timeout=WAIT)


async def bounded(what: str, check: Any, within: float = WAIT) -> None:
    """Poll `check` (blocking, run in a thread) until true; fail after `within` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await asyncio.to_thread(check):
            return
        await asyncio.sleep(0.1)
    pytest.fail(f"{what}: not within {within} s")


# ---- expiry ----


async def test_socket_is_told_and_disconnected_when_its_jwt_expires(
    server: Server, alice: Agent, bob: Agent
) -> None:
    room = server.new_room(alice, bob)
    token = short_jwt(alice, lifetime=3)
    expires = pyjwt.decode(token, options={"verify_signature": False})["exp"]
    async with recording(server, token) as rec:
        await rec.until("connected")
        acks: list[Any] = []
        # Both directions keep trying past the expiry: alice sends on her socket, bob over REST.
        deadline = time.monotonic() + WAIT
        while "disconnect" not in rec.names() and time.monotonic() < deadline:
            r = await asyncio.to_thread(
                bob.post, f"/api/v1/rooms/{room['id']}/messages", {"body": "from bob"}
            )
            assert r.status_code == 201, r.text
            if rec.sio.connected:
                # (A send in flight when the socket is disconnected gets no ack.)
                with contextlib.suppress(
                    socketio.exceptions.TimeoutError, socketio.exceptions.BadNamespaceError
                ):
                    acks.append(await send_ack(rec, room["id"], "from alice"))
            await asyncio.sleep(0.2)
        ended = await rec.until("session:ended")
        await rec.until("disconnect")

    assert ended["reason"] == "expired"
    assert isinstance(ended["message"], str)
    assert ended["message"]
    names = rec.names()
    # The reason comes first, then the disconnect, and nothing after the reason.
    assert names.index("session:ended") == len(names) - 2, names
    assert names[-1] == "disconnect"
    # A send is accepted while the session is valid, else refused as unauthorized.
    assert acks
    assert acks[0]["ok"] is True, acks
    for ack in acks:
        assert ack["ok"] or ack["error"]["code"] == "unauthorized", ack
    # Nothing created after the expiry reached the socket.
    delivered = [data for name, data in rec.events if name == "message:new"]
    assert delivered, "the socket received nothing while its session was valid"
    for message in delivered:
        assert parse_time(message["createdAt"]).timestamp() < expires, message
    # And its JWT no longer opens a socket.
    assert await refused_handshake(server, token) == {"message": "unauthorized"}


async def test_session_renew_moves_a_socket_to_a_fresh_jwt(
    server: Server, alice: Agent, bob: Agent
) -> None:
    room = server.new_room(alice)
    first = short_jwt(alice, lifetime=3)
    async with recording(server, first) as rec:
        await rec.until("connected")
        # Bad renewals change nothing (and each says why).
        bad = {
            "missing": ({}, "invalid_request"),
            "garbage": ({"token": "not-a-jwt"}, "unauthorized"),
            "expired": ({"token": short_jwt(alice, lifetime=-10)}, "unauthorized"),
            "another agent": ({"token": bob.jwt}, "forbidden"),
        }
        for case, (payload, code) in bad.items():
            ack = await rec.sio.call("session:renew", payload, NS, timeout=WAIT)
            assert ack["ok"] is False, (case, ack)
            assert ack["error"]["code"] == code, (case, ack)
        fresh = short_jwt(alice, lifetime=600)
        ack = await rec.sio.call("session:renew", {"token": fresh}, NS, timeout=WAIT)
        assert ack["ok"] is True, ack
        claims = pyjwt.decode(fresh, options={"verify_signature": False})
        assert parse_time(ack["expiresAt"]).timestamp() == claims["exp"]
        # Well past the first JWT's expiry, the socket is still there, sending and receiving.
        await asyncio.sleep(4)
        assert rec.sio.connected
        ack = await send_ack(rec, room["id"], "still here")
        assert ack["ok"] is True, ack
        message = await rec.until("message:new")
        assert message["body"] == "still here"
        assert "session:ended" not in rec.names()


# ---- revocation ----


def issue_second_session(server: Server, agent: Agent) -> tuple[str, str]:
    """A second API token of `agent` and a session JWT opened with it: (prefix, jwt)."""
    r = server.admin.post(f"/api/v1/agents/{agent.name}/tokens", {})
    assert r.status_code == 201, r.text
    return r.json()["prefix"], server.api.login(r.json()["token"])


def rest_refused(server: Server, token: str) -> bool:
    r = server.api.request("GET", "/api/v1/agents/me", jwt=token)
    if r.status_code == 200:
        return False
    assert_error(r, 401, "unauthorized")
    return True


async def check_revocation_ends_only_that_tokens_sessions(
    server: Server, agent: Agent, other: Agent, revoke: Any
) -> None:
    room = server.new_room(agent, other)
    prefix, doomed = issue_second_session(server, agent)
    assert not rest_refused(server, doomed)
    async with recording(server, doomed) as gone, recording(server, agent.jwt) as kept:
        await gone.until("connected")
        await kept.until("connected")
        await asyncio.to_thread(revoke, prefix)
        # Within about a second (the bound here is only a ceiling): REST, socket, handshake.
        await bounded("REST refuses the revoked token's JWT", lambda: rest_refused(server, doomed))
        ended = await gone.until("session:ended")
        assert ended["reason"] == "revoked", ended
        await gone.until("disconnect")
        assert gone.names()[-2:] == ["session:ended", "disconnect"]
        assert await refused_handshake(server, doomed) == {"message": "unauthorized"}
        # The agent's other token, its session and socket are untouched.
        assert not rest_refused(server, agent.jwt)
        r = other.post(f"/api/v1/rooms/{room['id']}/messages", {"body": "after revoke"})
        assert r.status_code == 201, r.text
        assert (await kept.until("message:new"))["body"] == "after revoke"
        assert kept.sio.connected
        assert "session:ended" not in kept.names()
        assert "message:new" not in gone.names()


async def test_revoking_over_rest_ends_the_tokens_sessions(
    server: Server, alice: Agent, bob: Agent
) -> None:
    def revoke(prefix: str) -> None:
        r = alice.delete(f"/api/v1/tokens/{prefix}")
        assert r.status_code == 204, r.text

    await check_revocation_ends_only_that_tokens_sessions(server, alice, bob, revoke)


async def test_revoking_from_another_process_ends_the_tokens_sessions(
    server: Server, alice: Agent, bob: Agent
) -> None:
    """The operator's CLI revokes in the database only: the server learns of it by its sweep,
    as it would of a revocation made through another server process."""

    def revoke(prefix: str) -> None:
        done = cli(server.env, "tokens", "revoke", prefix)
        assert done.returncode == 0, done.stderr

    await check_revocation_ends_only_that_tokens_sessions(server, alice, bob, revoke)


async def test_a_revoked_token_cannot_renew_a_socket(server: Server, alice: Agent) -> None:
    prefix, doomed = issue_second_session(server, alice)
    async with recording(server, alice.jwt) as rec:
        await rec.until("connected")
        r = alice.delete(f"/api/v1/tokens/{prefix}")
        assert r.status_code == 204, r.text
        ack = await rec.sio.call("session:renew", {"token": doomed}, NS, timeout=WAIT)
        assert ack["ok"] is False, ack
        assert ack["error"]["code"] == "unauthorized", ack
        assert rec.sio.connected  # its own session goes on


async def test_a_jwt_without_its_token_claim_is_refused(server: Server, alice: Agent) -> None:
    """JWTs issued before sessions named their API token (no `tid`) are refused everywhere:
    clients open a new session on the 401, and a socket cannot outlive a revocation."""
    legacy = short_jwt(alice, lifetime=600, tid=None)
    assert rest_refused(server, legacy)
    assert await refused_handshake(server, legacy) == {"message": "unauthorized"}
    slug = uniq("legacy")
    r = server.api.request("POST", "/api/v1/rooms", jwt=legacy, json={"slug": slug, "name": slug})
    assert_error(r, 401, "unauthorized")

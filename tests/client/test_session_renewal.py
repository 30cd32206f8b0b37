"""The agent side keeps working while the server ends sockets at JWT expiry: the SDK's
subscription, the CLI's `tail --follow` and `wait`, and the MCP server's `wait_for_messages`
(and its presence socket) renew their sessions before expiry and move their sockets to them.

One server with 3-second JWTs, over 25 seconds of traffic (about eight JWT lives): alice sends
in bursts (3 messages, then a pause longer than a JWT's life, so that waits hold their sockets
across expiries), while bob follows the room with each client. Each must get every message
exactly once, in seq order, and no send is refused. A control socket of bob's that never renews
shows that the server did end sessions meanwhile (on the old code it never is, and this test
fails).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import socketio

from agenthub.client import AgentHubClient, Message
from tests.client.test_mcp import call, mcp_session
from tests.support import Agent, Server, start_server, stop_process

NS = "/agents"
TRAFFIC_S = 25.0  # at least this long: five bursts, each followed by an expiry
BURST = 3
BURST_GAP_S = 0.3
PAUSE_S = 4.0  # longer than a JWT's life
WAIT = 60.0  # the bound on a receiver's wait for the last message, after the traffic


def agent_env(home: Path, server: Server, agent: Agent) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AGENTHUB_", "XDG_", "DATABASE_URL", "JWT_", "POSTGRES_"))
    }
    env.update(
        XDG_CONFIG_HOME=str(home / "config"),
        HOME=str(home),
        AGENTHUB_URL=server.base_url,
        AGENTHUB_TOKEN=agent.token,
    )
    return env


class Finish:
    """The seq of the last message sent, once the sender is done: receivers stop there."""

    def __init__(self) -> None:
        self.last: int | None = None

    def reached(self, seqs: list[int]) -> bool:
        return self.last is not None and bool(seqs) and seqs[-1] >= self.last


async def send_traffic(url: str, alice: Agent, slug: str, first: Message) -> list[Message]:
    sent = [first]
    async with AgentHubClient(url, alice.token) as a:
        started = time.monotonic()
        while time.monotonic() - started < TRAFFIC_S:
            for _ in range(BURST):
                sent.append(await a.send(slug, f"tick {len(sent) + 1}"))  # raises if refused
                await asyncio.sleep(BURST_GAP_S)
            await asyncio.sleep(PAUSE_S)
    return sent


async def sdk_receiver(url: str, bob: Agent, slug: str, done: Finish) -> list[int]:
    seqs: list[int] = []
    async with (
        AgentHubClient(url, bob.token) as b,
        b.messages([slug], after={slug: 0}) as sub,
    ):
        while not done.reached(seqs):
            try:
                async with asyncio.timeout(1.0):
                    seqs.append((await anext(sub)).seq)
            except TimeoutError:
                continue
    return seqs


async def read_tail(proc: asyncio.subprocess.Process, done: Finish, seqs: list[int]) -> list[int]:
    assert proc.stdout is not None
    while not done.reached(seqs):
        try:
            async with asyncio.timeout(1.0):
                line = await proc.stdout.readline()
        except TimeoutError:
            continue
        if not line:
            break
        seqs.append(int(json.loads(line)["seq"]))
    return seqs


async def cli_waits(env: dict[str, str], slug: str, done: Finish) -> list[int]:
    seqs: list[int] = []
    last = 0
    while not done.reached(seqs):
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "agenthub",
            "wait",
            slug,
            "--after",
            str(last),
            "--json",
            "--timeout",
            "10",
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = await proc.communicate()
        if proc.returncode == 1 and b"no new message" in err:
            continue  # a quiet stretch: wait again
        assert proc.returncode == 0, err.decode()
        for line in out.decode().splitlines():
            seqs.append(int(json.loads(line)["seq"]))
        last = seqs[-1]
    return seqs


async def mcp_waits(env: dict[str, str], home: Path, slug: str, done: Finish) -> Any:
    seqs: list[int] = []
    last = 0
    async with mcp_session(env, home) as client:
        while not done.reached(seqs):
            result = await call(
                client, "wait_for_messages", room=slug, after_seq=last, timeout_seconds=10
            )
            seqs.extend(int(m["seq"]) for m in result["messages"])
            last = int(result["lastSeq"])
        present = await call(client, "who_is_here", room=slug)
    return seqs, present


async def control_socket_ended(server: Server, bob: Agent) -> str | None:
    """A socket on bob's handshake JWT that never renews: the reason the server ended it."""
    sio = socketio.AsyncClient(reconnection=False)
    reasons: list[str] = []
    gone = asyncio.Event()
    sio.on("session:ended", lambda data: reasons.append(data["reason"]), namespace=NS)
    sio.on("disconnect", lambda *_: gone.set(), namespace=NS)
    jwt = server.api.login(bob.token)
    await sio.connect(
        server.base_url, auth={"token": jwt}, namespaces=[NS], transports=["websocket"]
    )
    async with asyncio.timeout(WAIT):
        await gone.wait()
    await sio.disconnect()
    return reasons[0] if reasons else None


async def test_clients_renew_across_eight_three_second_sessions(
    backend: str, database_url: str, tmp_path: Path
) -> None:
    srv = start_server(
        backend,
        database_url,
        tmp_path / "data",
        JWT_TTL_SECONDS="3",
        SOCKETIO_PING_INTERVAL="1",
    )
    tail: asyncio.subprocess.Process | None = None
    try:
        srv.admin.jwt = srv.api.login(srv.admin.token)
        alice = srv.new_agent()
        srv.admin.jwt = srv.api.login(srv.admin.token)
        bob = srv.new_agent()
        alice.jwt = srv.api.login(alice.token)
        slug = srv.new_room(alice, bob)["slug"]
        env = agent_env(tmp_path / "bob", srv, bob)
        async with AgentHubClient(srv.base_url, alice.token) as a:
            first = await a.send(slug, "tick 1")

        done = Finish()
        control = asyncio.create_task(control_socket_ended(srv, bob))
        sdk = asyncio.create_task(sdk_receiver(srv.base_url, bob, slug, done))
        tail = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "agenthub",
            "tail",
            slug,
            "--follow",
            "--json",
            "--lines",
            "1",
            env=env,
            stdout=subprocess.PIPE,
        )
        waited = asyncio.create_task(cli_waits(env, slug, done))
        mcp = asyncio.create_task(mcp_waits(env, tmp_path / "mcp", slug, done))
        # `tail` prints the first message once it is up, and follows from there.
        assert tail.stdout is not None
        async with asyncio.timeout(WAIT):
            shown = json.loads(await tail.stdout.readline())
        assert shown["seq"] == first.seq == 1
        tailed = asyncio.create_task(read_tail(tail, done, [first.seq]))

        sent = await send_traffic(srv.base_url, alice, slug, first)
        done.last = sent[-1].seq
        everything = list(range(1, sent[-1].seq + 1))
        assert [m.seq for m in sent] == everything  # nothing refused, nothing else stored

        async with asyncio.timeout(WAIT):
            sdk_seqs, tail_seqs, wait_seqs, (mcp_seqs, present) = await asyncio.gather(
                sdk, tailed, waited, mcp
            )
            ended = await control
        assert ended == "expired"  # the server did end the sessions that were not renewed
        assert sdk_seqs == everything
        assert tail_seqs == everything
        assert wait_seqs == everything
        assert mcp_seqs == everything
        assert bob.name in present["present"]
    finally:
        if tail is not None and tail.returncode is None:
            tail.terminate()
            await tail.wait()
        srv.api.close()
        stop_process(srv.proc)

"""Harness for several nodes: Redis (the shared instance with a key prefix of the test's own, or
a `redis-server` child the test may kill), nodes sharing one database, and sockets that record
every event they receive, in order."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import socketio

from tests.conftest import SERVER_ENV
from tests.databases import fresh_pg_database, need_pg
from tests.support import (
    Agent,
    ApiClient,
    PortTaken,
    Server,
    base_env,
    cli,
    free_port,
    spawn_server,
    stop_process,
    uniq,
    wait_ready,
)

NS = "/agents"
WAIT = 15.0  # seconds: the bound on any single expected outcome
SHARED_REDIS_URL = os.environ.get("AGENTHUB_TEST_REDIS_URL", "redis://127.0.0.1:6379/5")
REQUIRE_REDIS = os.environ.get("AGENTHUB_REQUIRE_REDIS") == "1"

# What every node of these tests runs with: short presence timings (as the suite's), and a
# resync every second so that a lost notification is repaired within a test's patience.
NODE_ENV = {**SERVER_ENV, "REDIS_RESYNC_SECONDS": "1"}


def need_redis_server() -> str:
    path = shutil.which("redis-server")
    if path is None:
        if REQUIRE_REDIS:
            pytest.fail("AGENTHUB_REQUIRE_REDIS=1 but redis-server is not installed")
        pytest.skip("redis-server is not installed")
    return path


def shared_redis_url() -> str:
    """The machine's Redis (never flushed: tests use key prefixes of their own)."""
    client = redis.Redis.from_url(SHARED_REDIS_URL, socket_connect_timeout=2, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        if REQUIRE_REDIS:
            pytest.fail(f"AGENTHUB_REQUIRE_REDIS=1 but Redis is not reachable: {exc}")
        pytest.skip(f"Redis is not reachable at {SHARED_REDIS_URL}")
    finally:
        client.close()
    return SHARED_REDIS_URL


def drop_prefix(url: str, prefix: str) -> None:
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    except redis.RedisError:
        pass
    finally:
        client.close()


@contextlib.contextmanager
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database: several nodes need PostgreSQL."""
    need_pg("several nodes need PostgreSQL")
    with fresh_pg_database("nodes") as url:
        yield url


class RedisChild:
    """A `redis-server` of the test's own on a free port, without persistence: killing it and
    starting it again on the same port is a Redis restarted empty."""

    def __init__(self, workdir: Path, *args: str) -> None:
        self.binary = need_redis_server()
        self.workdir = workdir
        self.args = args
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisChild:
        log = (self.workdir / "redis.log").open("ab")
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                *self.args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError):
                if self.client().ping():
                    return self
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_connect_timeout=2, socket_timeout=5)


@contextlib.contextmanager
def redis_child(workdir: Path, *args: str) -> Iterator[RedisChild]:
    child = RedisChild(workdir, *args).start()
    try:
        yield child
    finally:
        child.kill()


@contextlib.contextmanager
def nodes(
    database_url: str, workdir: Path, redis_url: str, count: int = 2, **env: str
) -> Iterator[list[Server]]:
    """`count` nodes of one hub: one database, one Redis, one key prefix of this test's."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    settings = {**NODE_ENV, "REDIS_URL": redis_url, "REDIS_KEY_PREFIX": prefix, **env}
    started: list[Server] = []
    try:
        started.extend(start_nodes(database_url, workdir, count, settings))
        yield started
    finally:
        for node in started:  # all at once: each takes its shutdown's time
            node.api.close()
            if node.proc.poll() is None:
                node.proc.terminate()
        for node in started:
            stop_process(node.proc)
        drop_prefix(redis_url, prefix)


def start_nodes(
    database_url: str, workdir: Path, count: int, settings: dict[str, str]
) -> list[Server]:
    """Like `start_server`, for several nodes at once: the first one's admin (created by the
    CLI, which also migrates) serves them all, and the nodes start side by side."""
    first = workdir / "node0"
    first.mkdir(parents=True, exist_ok=True)
    env = base_env(database_url, first, **settings)
    admin_name = uniq("root")
    made = cli(env, "agents", "create", admin_name, "--admin", "--token", "--json")
    assert made.returncode == 0, made.stderr
    agent = json.loads(made.stdout)
    token = agent["token"]["token"]
    with ThreadPoolExecutor(count) as pool:
        spawned = [
            pool.submit(_serve, database_url, workdir / f"node{i}", settings) for i in range(count)
        ]
        done = [f.result() for f in spawned]
    servers = []
    for base_url, node_env, proc, log_path in done:
        api = ApiClient(base_url)
        admin = Agent(agent["id"], admin_name, "admin", token, api.login(token), api, renewing=True)
        servers.append(
            Server("postgres", base_url, database_url, node_env, proc, log_path, api, admin)
        )
    return servers


def _serve(
    database_url: str, data_dir: Path, settings: dict[str, str]
) -> tuple[str, dict[str, str], subprocess.Popen[bytes], Path]:
    data_dir.mkdir(parents=True, exist_ok=True)
    env = base_env(database_url, data_dir, **settings)
    for attempt in range(3):  # a port picked free can be taken before the server binds it
        port = free_port()
        log_path = data_dir / f"server-{port}.log"
        proc = spawn_server(env, port, log_path)
        base_url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(base_url, proc, log_path)
        except PortTaken:
            stop_process(proc)
            if attempt == 2:
                raise
        except Exception:
            stop_process(proc)
            raise
        else:
            return base_url, env, proc, log_path
    raise AssertionError("unreachable")


class Socket:
    """One agent's socket on one node, recording every event it receives, in order."""

    def __init__(self, node: Server, agent: Agent) -> None:
        self.node = node
        self.agent = agent
        self.events: list[tuple[str, Any]] = []
        self.changed = asyncio.Event()
        self.client = socketio.AsyncClient(reconnection=False)
        self.client.on("*", self._record, namespace=NS)
        self.client.on("disconnect", self._gone, namespace=NS)
        self.gone = False

    async def _record(self, event: str, data: Any = None) -> None:
        self.events.append((event, data))
        self.changed.set()

    async def _gone(self, *_: Any) -> None:
        self.gone = True
        self.changed.set()

    async def connect(self) -> Socket:
        await self.client.connect(
            self.node.base_url,
            auth={"token": self.agent.jwt},
            namespaces=[NS],
            transports=["websocket"],
            wait_timeout=WAIT,
        )
        await self.until(lambda: bool(self.named("connected")), "connected")
        return self

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.client.disconnect()

    def named(self, event: str) -> list[Any]:
        return [data for name, data in self.events if name == event]

    def seqs(self, room_id: str) -> list[int]:
        return [m["seq"] for m in self.named("message:new") if m["roomId"] == room_id]

    async def until(self, condition: Callable[[], bool], what: str, within: float = WAIT) -> None:
        async with asyncio.timeout(within):
            while not condition():
                self.changed.clear()
                await self.changed.wait()
        assert condition(), what

    async def call(self, event: str, data: Any) -> Any:
        return await self.client.call(event, data, namespace=NS, timeout=WAIT)

    async def send(self, room: str, body: str) -> Any:
        return await self.call("message:send", {"roomId": room, "body": body})


@asynccontextmanager
async def sockets(*pairs: tuple[Server, Agent]) -> AsyncIterator[list[Socket]]:
    opened: list[Socket] = []
    try:
        for node, agent in pairs:
            opened.append(await Socket(node, agent).connect())
        yield opened
    finally:
        for s in opened:
            await s.close()


async def until_true(condition: Callable[[], bool], what: str, within: float = WAIT) -> None:
    """Poll a condition about things outside the test's loop (another process's state)."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"not within {within}s: {what}"
        await asyncio.sleep(0.05)


def metric(node: Server, name: str, **labels: str) -> float:
    """One sample of a node's /metrics (0 when absent)."""
    text = httpx.get(f"{node.base_url}/metrics", timeout=10).text
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    key = f"{name}{{{want}}}" if want else name
    for line in text.splitlines():
        if line.startswith(key + " "):
            return float(line.split()[-1])
    return 0.0


def assert_all_once_in_order(socket: Socket, room_id: str, acked: set[int]) -> None:
    """Every acked seq reached the socket, once each, in seq order, with no gap."""
    got = socket.seqs(room_id)
    assert got == sorted(set(got)), f"{socket.agent.name}: out of order or repeated: {got}"
    assert set(got) == acked, f"{socket.agent.name}: missing {sorted(acked - set(got))[:20]}"
    assert got == list(range(got[0], got[-1] + 1)) if got else True

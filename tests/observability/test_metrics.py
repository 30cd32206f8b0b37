"""`GET /metrics`: the seed's six metrics with their exact names, types and labels, the ones the
operator's alerts need beside them, the process and Python collectors, values that move with
real traffic, bounded label values, and docs/METRICS.md naming exactly what is served."""

from __future__ import annotations

import asyncio
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import socketio
from prometheus_client.parser import text_string_to_metric_families

from tests.support import Agent, Server, start_server, stop_process, uniq

NS = "/agents"
WAIT = 10  # seconds: the bound on any single expected event or metric change
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

# family name (as the parser reports it) -> (exposed name, type, label names)
SEED_METRICS = {
    "agenthub_agents_connected": ("agenthub_agents_connected", "gauge", set()),
    "agenthub_rooms_active": ("agenthub_rooms_active", "gauge", set()),
    "agenthub_messages": ("agenthub_messages_total", "counter", {"room_id"}),
    "agenthub_websocket_latency_seconds": (
        "agenthub_websocket_latency_seconds",
        "histogram",
        {"event"},
    ),
    "agenthub_http_requests": (
        "agenthub_http_requests_total",
        "counter",
        {"method", "route", "status_code"},
    ),
    "agenthub_db_query_duration_seconds": (
        "agenthub_db_query_duration_seconds",
        "histogram",
        {"operation"},
    ),
}

# What deploy/prometheus/alerts.yml and the dashboard need beyond the seed's six.
OPS_METRICS = {
    "agenthub_http_request_duration_seconds": (
        "agenthub_http_request_duration_seconds",
        "histogram",
        {"method", "route"},
    ),
    "agenthub_ready": ("agenthub_ready", "gauge", set()),
    "agenthub_dependency_up": ("agenthub_dependency_up", "gauge", {"dependency"}),
    "agenthub_rate_limit_refusals": (
        "agenthub_rate_limit_refusals_total",
        "counter",
        {"transport"},
    ),
    "agenthub_db_errors": ("agenthub_db_errors_total", "counter", {"kind"}),
    "agenthub_db_pool_in_use": ("agenthub_db_pool_in_use", "gauge", {"pool"}),
    "agenthub_db_pool_max": ("agenthub_db_pool_max", "gauge", {"pool"}),
}

# Several nodes on Redis (realtime/cluster.py): served by every node, idle without REDIS_URL.
CLUSTER_METRICS = {
    "agenthub_cluster_reader_up": ("agenthub_cluster_reader_up", "gauge", set()),
    "agenthub_cluster_reader_reconnects": (
        "agenthub_cluster_reader_reconnects_total",
        "counter",
        set(),
    ),
    "agenthub_cluster_event_lag_seconds": (
        "agenthub_cluster_event_lag_seconds",
        "histogram",
        set(),
    ),
    "agenthub_cluster_repaired_messages": (
        "agenthub_cluster_repaired_messages_total",
        "counter",
        {"reason"},
    ),
    "agenthub_cluster_publish_failures": (
        "agenthub_cluster_publish_failures_total",
        "counter",
        set(),
    ),
}

# The hub's MCP endpoint (/mcp, docs/MCP.md).
MCP_METRICS = {
    "agenthub_mcp_sessions": ("agenthub_mcp_sessions", "gauge", set()),
    "agenthub_mcp_tool_calls": ("agenthub_mcp_tool_calls_total", "counter", {"tool", "outcome"}),
}
METRICS_MD = Path(__file__).resolve().parents[2] / "docs" / "METRICS.md"

Labels = frozenset[tuple[str, str]]


class Scrape:
    """One parsed /metrics answer: families by name and every sample's value."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.families = {f.name: f for f in text_string_to_metric_families(text)}
        self.samples: dict[tuple[str, Labels], float] = {}
        for family in self.families.values():
            for s in family.samples:
                self.samples[(s.name, frozenset(s.labels.items()))] = s.value

    def value(self, name: str, **labels: str) -> float:
        """The sample's value, 0 when it does not exist (yet)."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def total(self, name: str, **labels: str) -> float:
        """Sum over every sample of `name` whose labels include `labels`."""
        want = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == name and want <= ls)

    def label_values(self) -> Iterator[tuple[str, str, str]]:
        for (name, labels), _ in self.samples.items():
            for key, value in labels:
                yield name, key, value


def scrape(server: Server) -> Scrape:
    r = server.api.http.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain"), r.headers["content-type"]
    return Scrape(r.text)


async def wait_for(
    server: Server, predicate: Callable[[Scrape], bool], what: str, within: float = WAIT
) -> Scrape:
    """Scrape until `predicate` holds; fail after `within`. Scrapes on a thread and sleeps
    asynchronously, so the test's sockets keep answering pings meanwhile."""
    deadline = time.monotonic() + within
    while True:
        s = await asyncio.to_thread(scrape, server)
        if predicate(s):
            return s
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not seen within {within}s")
        await asyncio.sleep(0.1)


@asynccontextmanager
async def connected(
    server: Server, agent: Agent, transports: list[str] | None = None
) -> AsyncIterator[socketio.AsyncSimpleClient]:
    client = socketio.AsyncSimpleClient()
    await client.connect(
        server.base_url,
        auth={"token": agent.jwt},
        namespace=NS,
        transports=transports or ["websocket"],
        wait_timeout=WAIT,
    )
    try:
        yield client
    finally:
        await client.disconnect()


async def send(client: socketio.AsyncSimpleClient, room: str, body: str) -> dict[str, Any]:
    ack: dict[str, Any] = await client.call(
        "message:send", {"roomId": room, "body": body}, timeout=WAIT
    )
    assert ack["ok"] is True, ack
    return ack


@pytest.fixture(scope="module")
def fast_metrics_server(
    backend: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A server of its own: a fresh gauge baseline, and rooms_active refreshed every 0.5 s."""
    srv = start_server(
        backend,
        database_url,
        Path(tmp_path_factory.mktemp(f"metrics-{backend}")),
        METRICS_REFRESH_SECONDS="0.5",
        # A polling client's disconnect waits for its parked GET, which engine.io holds for up
        # to ping interval + ping timeout once the session is closed.
        SOCKETIO_PING_INTERVAL="1",
        SOCKETIO_PING_TIMEOUT="2",
    )
    try:
        yield srv
    finally:
        srv.api.close()
        stop_process(srv.proc)


# ---- format, names, types, labels ----


async def test_metrics_exposes_the_seeds_six_with_exact_names_types_and_labels(
    server: Server, alice: Agent
) -> None:
    room = server.new_room(alice)
    async with connected(server, alice) as c:  # so that every labelled metric has samples
        await send(c, room["slug"], "for the metrics")
    s = await wait_for(
        server,
        lambda s: s.value("agenthub_messages_total", room_id=room["id"]) == 1,
        "the message in agenthub_messages_total",
    )

    expected = {**SEED_METRICS, **OPS_METRICS, **CLUSTER_METRICS, **MCP_METRICS}
    for family_name, (exposed, kind, label_names) in expected.items():
        assert family_name in s.families, f"{exposed} is missing"
        family = s.families[family_name]
        assert family.type == kind, f"{exposed} is a {family.type}, not a {kind}"
        assert f"# TYPE {exposed} {kind}" in s.text
        seen: set[str] = set()
        for sample in family.samples:
            seen.update(k for k in sample.labels if k != "le")
        assert seen == label_names, f"{exposed} has labels {seen}, expected {label_names}"
        assert family.samples, f"{exposed} has no samples"
    # Nothing else under our prefix: the seed's six, the operator's, the nodes' and MCP's.
    ours = {name for name in s.families if name.startswith("agenthub_")}
    assert ours == set(expected)
    # Histograms carry buckets, a count and a sum.
    for hist in (
        "agenthub_websocket_latency_seconds",
        "agenthub_db_query_duration_seconds",
        "agenthub_http_request_duration_seconds",
    ):
        names = {sample.name for sample in s.families[hist].samples}
        assert {f"{hist}_bucket", f"{hist}_count", f"{hist}_sum"} <= names


def test_metrics_include_process_and_python_collectors(server: Server) -> None:
    s = scrape(server)
    names = set(s.families)
    assert any(n.startswith("process_") for n in names), sorted(names)
    assert any(n.startswith("python_") for n in names), sorted(names)
    assert "process_cpu_seconds" in names
    assert "process_resident_memory_bytes" in names
    assert "python_info" in names
    assert "python_gc_objects_collected" in names


def test_metrics_need_no_auth_and_are_not_served_under_the_api(server: Server) -> None:
    r = server.api.http.get("/metrics", headers={"Authorization": "Bearer garbage"})
    assert r.status_code == 200
    assert "agenthub_http_requests_total" in r.text


# ---- values move ----


async def test_three_messages_count_three_under_their_room(
    server: Server, alice: Agent, bob: Agent
) -> None:
    room = server.new_room(alice, bob)
    other = server.new_room(bob)
    before = scrape(server)
    assert before.value("agenthub_messages_total", room_id=room["id"]) == 0
    async with connected(server, alice) as c:
        for i in range(2):
            await send(c, room["slug"], f"socket {i}")
        # An idempotent repeat stores nothing and counts nothing.
        ack = await c.call(
            "message:send",
            {"roomId": room["id"], "body": "again", "clientMsgId": "m-1"},
            timeout=WAIT,
        )
        assert ack["ok"] is True
        ack = await c.call(
            "message:send",
            {"roomId": room["id"], "body": "again", "clientMsgId": "m-1"},
            timeout=WAIT,
        )
        assert ack["ok"] is True
    s = await wait_for(
        server,
        lambda s: s.value("agenthub_messages_total", room_id=room["id"]) >= 3,
        "3 messages",
    )
    assert s.value("agenthub_messages_total", room_id=room["id"]) == 3
    # A REST send counts too, under its own room.
    r = bob.post(f"/api/v1/rooms/{other['slug']}/messages", {"body": "over http"})
    assert r.status_code == 201, r.text
    s = await wait_for(
        server,
        lambda s: s.value("agenthub_messages_total", room_id=other["id"]) == 1,
        "the REST message",
    )
    assert s.value("agenthub_messages_total", room_id=room["id"]) == 3


async def test_http_requests_are_counted_under_the_route_template(
    server: Server, alice: Agent
) -> None:
    room = server.new_room(alice)
    labels = {"method": "GET", "route": "/api/v1/rooms/{room}", "status_code": "200"}
    before = scrape(server).value("agenthub_http_requests_total", **labels)
    for ref in (room["slug"], room["id"]):
        r = alice.get(f"/api/v1/rooms/{ref}")
        assert r.status_code == 200, r.text
    s = await wait_for(
        server,
        lambda s: s.value("agenthub_http_requests_total", **labels) >= before + 2,
        "2 requests under /api/v1/rooms/{room}",
    )
    assert s.value("agenthub_http_requests_total", **labels) == before + 2
    # Errors keep the template and carry their status.
    missing = alice.get(f"/api/v1/rooms/{room['slug']}-gone")
    assert missing.status_code == 404
    s = await wait_for(
        server,
        lambda s: s.value("agenthub_http_requests_total", **{**labels, "status_code": "404"}) >= 1,
        "a 404 under /api/v1/rooms/{room}",
    )
    for _, key, value in s.label_values():
        assert room["slug"] not in value, f"raw slug in label {key}={value}"


async def test_answers_given_before_routing_keep_their_route_template(
    server: Server, alice: Agent
) -> None:
    """A body refused for its size and a CORS preflight never reach the router; they are
    still counted under the route template they were sent to, not as unmatched."""
    too_large = {"method": "POST", "route": "/api/v1/rooms", "status_code": "413"}
    before = scrape(server).value("agenthub_http_requests_total", **too_large)
    r = alice.client.request(
        "POST",
        "/api/v1/rooms",
        jwt=alice.jwt,
        content=b"x" * (1024 * 1024 + 1),
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 413
    preflight = {"method": "OPTIONS", "route": "/api/v1/rooms/{room}", "status_code": "204"}
    before_preflight = scrape(server).value("agenthub_http_requests_total", **preflight)
    r = server.api.http.options(
        f"/api/v1/rooms/{uuid.uuid4().hex[:12]}",
        headers={"Origin": "http://localhost:3000", "Access-Control-Request-Method": "GET"},
    )
    assert r.status_code == 204
    s = await wait_for(
        server,
        lambda s: s.value("agenthub_http_requests_total", **preflight) > before_preflight,
        "the preflight under /api/v1/rooms/{room}",
    )
    assert s.value("agenthub_http_requests_total", **too_large) == before + 1


async def test_unknown_paths_share_one_route_label(server: Server) -> None:
    labels = {"method": "GET", "route": "unmatched", "status_code": "404"}
    before = scrape(server).value("agenthub_http_requests_total", **labels)
    paths = [f"/no-such-{uuid.uuid4().hex}/{i}" for i in range(3)] + [
        f"/api/v1/{uuid.uuid4()}",
        f"/api/v1/rooms/{uuid.uuid4().hex[:8]}/nothing/here",
    ]
    for path in paths:
        assert server.api.http.get(path).status_code == 404
    s = await wait_for(
        server,
        lambda s: s.value("agenthub_http_requests_total", **labels) >= before + 5,
        "5 unmatched requests",
    )
    assert s.value("agenthub_http_requests_total", **labels) == before + 5
    routes = {value for name, key, value in s.label_values() if key == "route" and "http" in name}
    assert not any("no-such" in r or UUID.search(r) or "nothing" in r for r in routes), routes


async def test_websocket_latency_and_db_histograms_get_samples(
    server: Server, alice: Agent
) -> None:
    room = server.new_room(alice)
    count = "agenthub_websocket_latency_seconds_count"
    db_count = "agenthub_db_query_duration_seconds_count"
    before = scrape(server)
    async with connected(server, alice) as c:
        for i in range(3):
            await send(c, room["id"], f"timed {i}")
        ack = await c.call("room:join", {"roomId": room["id"]}, timeout=WAIT)
        assert ack["ok"] is True
    s = await wait_for(
        server,
        lambda s: (
            s.value(count, event="message:send") >= before.value(count, event="message:send") + 3
        ),
        "3 message:send latency samples",
    )
    assert s.value(count, event="message:send") == before.value(count, event="message:send") + 3
    assert s.value(count, event="room:join") >= before.value(count, event="room:join") + 1
    events = {v for n, k, v in s.label_values() if k == "event"}
    assert events <= {
        "message:send",
        "room:join",
        "room:leave",
        "session:renew",
        "direct:send",
        "message:ack",
        "claim:acquire",
        "claim:renew",
        "claim:release",
        "claim:list",
        "message:search",
    }, events
    # Storing messages inserts (however the writer batches them), and is timed like any query.
    s = await wait_for(
        server,
        lambda s: (
            s.value(db_count, operation="insert") > before.value(db_count, operation="insert")
        ),
        "an insert sample from storing 3 messages",
    )
    # Logging in updates the token's lastUsedAt; everything selects.
    mid = s
    server.api.login(alice.token)
    s = await wait_for(
        server,
        lambda s: s.value(db_count, operation="update") > mid.value(db_count, operation="update"),
        "an update sample from a login",
    )
    for op in ("select", "insert", "update"):
        assert s.value(db_count, operation=op) > before.value(db_count, operation=op), op
    ops = {v for n, k, v in s.label_values() if k == "operation"}
    allowed = {"select", "insert", "update", "delete", "begin", "commit", "rollback", "other"}
    assert ops <= allowed, ops


async def test_no_label_value_holds_a_raw_path_or_an_agent_id(
    server: Server, alice: Agent, bob: Agent
) -> None:
    room = server.new_room(alice, bob)
    async with connected(server, bob) as c:
        await send(c, room["slug"], "labels")
    for path in (
        f"/api/v1/agents/{alice.id}",
        f"/api/v1/agents/{alice.name}",
        f"/api/v1/rooms/{room['slug']}/members",
        f"/api/v1/rooms/{room['slug']}/messages?limit=5",
        f"/api/v1/agents/{bob.name}/tokens",
    ):
        assert alice.get(path).status_code in (200, 403), path
    assert alice.delete(f"/api/v1/rooms/{room['slug']}/members/{bob.name}").status_code in (
        204,
        403,
    )
    s = scrape(server)
    forbidden = [alice.id, bob.id, alice.name, bob.name, room["slug"], "?"]
    for name, key, value in s.label_values():
        if key == "room_id":
            assert UUID.fullmatch(value), f"{name}: room_id={value!r} is not a room id"
            continue
        for raw in forbidden:
            assert raw not in value, f"{name}: {key}={value!r} holds {raw!r}"
        if key == "route":
            assert value in ("unmatched", "/socket.io/") or not UUID.search(value), value
    routes = {v for n, k, v in s.label_values() if k == "route"}
    assert "/api/v1/agents/{agent}" in routes
    assert "/api/v1/rooms/{room}/members/{agent}" in routes
    assert "/api/v1/rooms/{room}/messages" in routes


# ---- gauges, on a server of their own ----


async def test_agents_connected_follows_sockets(fast_metrics_server: Server) -> None:
    srv = fast_metrics_server
    alice, bob = srv.new_agent(), srv.new_agent()
    base = (
        await wait_for(
            srv, lambda s: s.value("agenthub_agents_connected") == 0, "no socket connected"
        )
    ).value("agenthub_agents_connected")
    async with connected(srv, alice) as a:
        s = await wait_for(
            srv, lambda s: s.value("agenthub_agents_connected") == base + 1, "1 socket"
        )
        async with connected(srv, bob, transports=["polling"]) as b:
            s = await wait_for(
                srv, lambda s: s.value("agenthub_agents_connected") == base + 2, "2 sockets"
            )
            assert a.connected
            assert b.connected
        s = await wait_for(
            srv, lambda s: s.value("agenthub_agents_connected") == base + 1, "1 socket left"
        )
    s = await wait_for(srv, lambda s: s.value("agenthub_agents_connected") == base, "all gone")
    # A refused handshake is never counted.
    client = socketio.AsyncClient(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(
            srv.base_url,
            auth={"token": "not-a-jwt"},
            namespaces=[NS],
            transports=["websocket"],
            wait_timeout=WAIT,
        )
    await client.disconnect()
    s = scrape(srv)
    assert s.value("agenthub_agents_connected") == base


async def test_rooms_active_counts_rooms_with_a_connected_socket(
    fast_metrics_server: Server,
) -> None:
    srv = fast_metrics_server
    alice, bob = srv.new_agent(), srv.new_agent()
    srv.new_room(alice, bob)  # alice and bob
    srv.new_room(alice)  # alice only
    srv.new_room(bob)  # bob only
    srv.new_room(srv.admin)  # nobody connected
    gauge = "agenthub_rooms_active"
    await wait_for(srv, lambda s: s.value(gauge) == 0, "no active room")
    async with connected(srv, alice):
        await wait_for(srv, lambda s: s.value(gauge) == 2, "alice's 2 rooms active")
        async with connected(srv, bob):
            await wait_for(srv, lambda s: s.value(gauge) == 3, "3 rooms active")
        await wait_for(srv, lambda s: s.value(gauge) == 2, "back to alice's 2 rooms")
    await wait_for(srv, lambda s: s.value(gauge) == 0, "no active room after disconnects")


# ---- the operator's metrics ----


def test_counters_for_alerts_start_at_zero_and_readiness_is_one(server: Server) -> None:
    """Every label value of the error and refusal counters exists from the start, so that
    rate() sees their first increase; the ready gauge says what /readyz says."""
    s = scrape(server)
    for kind in ("unavailable", "error"):
        assert ("agenthub_db_errors_total", frozenset({("kind", kind)})) in s.samples, kind
    for transport in ("http", "socket"):
        key = ("agenthub_rate_limit_refusals_total", frozenset({("transport", transport)}))
        assert key in s.samples, transport
    assert server.api.http.get("/readyz").status_code == 200
    assert s.value("agenthub_ready") == 1
    assert s.value("agenthub_dependency_up", dependency="db") == 1
    dependencies = {v for n, k, v in s.label_values() if k == "dependency"}
    assert dependencies <= {"db", "redis"}, dependencies


async def test_http_latency_is_timed_per_route_template_but_not_for_long_polls(
    server: Server, alice: Agent
) -> None:
    count = "agenthub_http_request_duration_seconds_count"
    labels = {"method": "GET", "route": "/api/v1/rooms/{room}"}
    room = server.new_room(alice)
    before = scrape(server).value(count, **labels)
    for _ in range(3):
        assert alice.get(f"/api/v1/rooms/{room['slug']}").status_code == 200
    assert alice.get(f"/api/v1/rooms/{room['slug']}-gone").status_code == 404
    s = await wait_for(server, lambda s: s.value(count, **labels) >= before + 4, "4 timed requests")
    assert s.value(count, **labels) == before + 4
    assert s.value("agenthub_http_request_duration_seconds_sum", **labels) > 0
    # A Socket.IO polling handshake is counted as a request, but never timed: engine.io parks
    # polls for up to the ping interval, which would read as HTTP latency.
    r = server.api.http.get("/socket.io/", params={"EIO": "4", "transport": "polling"})
    assert r.status_code == 200, r.text
    s = await wait_for(
        server,
        lambda s: s.total("agenthub_http_requests_total", route="/socket.io/") >= 1,
        "the polling handshake counted",
    )
    routes = {v for n, k, v in s.label_values() if k == "route" and "duration" in n}
    assert "/socket.io/" not in routes, routes


def _hold_the_database(database_url: str, ready: threading.Event, release: threading.Event) -> None:
    """Lock what creating a room writes, from outside AgentHub, until `release` is set: a
    room creation then waits inside AgentHub holding a pool connection."""

    async def hold() -> None:
        if database_url.startswith("sqlite"):
            import aiosqlite

            async with aiosqlite.connect(database_url.split("///", 1)[1]) as conn:
                await conn.execute("BEGIN IMMEDIATE")  # the one writer's lock
                ready.set()
                await asyncio.to_thread(release.wait, WAIT * 3)  # bounded, should it be lost
                await conn.rollback()
            return
        conn = await asyncpg.connect(database_url, timeout=5)
        try:
            async with conn.transaction():
                await conn.execute("LOCK TABLE rooms IN ACCESS EXCLUSIVE MODE")
                ready.set()
                await asyncio.to_thread(release.wait, WAIT * 3)  # bounded, should it be lost
        finally:
            await conn.close()

    asyncio.run(hold())


async def test_pool_gauges_show_the_connection_a_blocked_request_holds(
    server: Server, alice: Agent
) -> None:
    pool = "write" if server.backend == "sqlite" else "main"
    capacity = {"sqlite": {"main": 4, "write": 1}, "postgres": {"main": 20}}[server.backend]
    s = scrape(server)
    pools = {v for n, k, v in s.label_values() if k == "pool"}
    assert pools == set(capacity), pools
    for name, most in capacity.items():
        assert s.value("agenthub_db_pool_max", pool=name) == most
    await wait_for(
        server, lambda s: s.value("agenthub_db_pool_in_use", pool=pool) == 0, "an idle pool"
    )

    ready, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold_the_database, args=(server.database_url, ready, release))
    holder.start()
    answers: list[int] = []
    creator = threading.Thread(
        target=lambda: answers.append(
            alice.post("/api/v1/rooms", {"slug": uniq("held"), "name": "Held"}).status_code
        )
    )
    try:
        assert ready.wait(WAIT), "could not lock the database"
        creator.start()
        s = await wait_for(
            server,
            lambda s: s.value("agenthub_db_pool_in_use", pool=pool) >= 1,
            f"a connection in use in the {pool} pool",
        )
        assert s.value("agenthub_db_pool_in_use", pool=pool) <= capacity[pool]
    finally:
        release.set()
        holder.join(WAIT)
        creator.join(WAIT * 2)
    assert answers == [201]
    await wait_for(server, lambda s: s.value("agenthub_db_pool_in_use", pool=pool) == 0, "returned")


# ---- docs/METRICS.md ----

_SUFFIXES = ("_bucket", "_count", "_sum")


def served_names(s: Scrape) -> set[str]:
    """Our families as Prometheus stores them: counters with their `_total`."""
    return {
        name + ("_total" if family.type == "counter" else "")
        for name, family in s.families.items()
        if name.startswith("agenthub_")
    }


def documented_names(text: str, histograms: set[str]) -> set[str]:
    """Every `agenthub_*` name in the text, a histogram's _bucket/_count/_sum as the histogram."""
    names = set()
    for name in re.findall(r"\bagenthub_[a-z0-9_]*[a-z0-9]", text):
        base = next((name[: -len(x)] for x in _SUFFIXES if name.endswith(x)), None)
        names.add(base if base in histograms else name)
    return names


def test_documented_names_read_histogram_series_as_their_family() -> None:
    histograms = {"agenthub_h_seconds"}
    text = '`agenthub_h_seconds_bucket{le="1"}` rate(agenthub_c_total[1m]) agenthub_g_count'
    assert documented_names(text, histograms) == {
        "agenthub_h_seconds",
        "agenthub_c_total",
        "agenthub_g_count",  # not a histogram's: a name of its own
    }


def test_a_statement_starting_with_with_counts_as_what_it_changes() -> None:
    from agenthub.messages.batch_store import PgBatchStore
    from agenthub.observability.metrics import Metrics

    statements = {
        PgBatchStore.WRITE: "insert",  # the writer's one statement per batch on PostgreSQL
        PgBatchStore.WRITE_ONE: "insert",  # and per batch of one message
        "WITH x AS (SELECT 1) UPDATE rooms r SET name = 'a' FROM x": "update",
        "WITH x AS (SELECT id FROM rooms FOR UPDATE) DELETE FROM claims": "delete",
        "WITH x AS (SELECT id FROM rooms FOR UPDATE) SELECT * FROM x": "select",
        "  insert into t values (1)": "insert",
        "VACUUM": "other",
    }
    for statement, op in statements.items():
        m = Metrics()
        m.db_query(statement, 0.001)
        counted = {
            s.labels["operation"]
            for family in m.registry.collect()
            if family.name == "agenthub_db_query_duration_seconds"
            for s in family.samples
            if s.name.endswith("_count") and s.value == 1
        }
        assert counted == {op}, (statement[:40], counted)


def test_metrics_md_names_exactly_the_metrics_served(server: Server) -> None:
    s = scrape(server)
    served = served_names(s)
    histograms = {n for n, f in s.families.items() if f.type == "histogram"}
    documented = documented_names(METRICS_MD.read_text(), histograms)
    assert served - documented == set(), "served but not in docs/METRICS.md"
    assert documented - served == set(), "in docs/METRICS.md but not served"

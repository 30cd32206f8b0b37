"""Two AgentHub nodes behind nginx (Debian's package), configured by deploy/nginx/agenthub.conf,
act as one hub: the official JS client connects through it over websocket and over long-polling,
long-polling sessions stay on their node, websocket-only connections spread over both nodes, the
nodes see each client's own address, messages flow between clients on different nodes, and
nginx's own refusals (body too large, no node answering) keep the contract's error envelope,
and a node that dies is passed over.

nginx runs as a child of the test (`-p PREFIX -c CONF`, every path in a temporary folder, no root
needed), in front of two `agenthub serve` on one fresh PostgreSQL database and the machine's
Redis under a key prefix of the test's own. The shipped file is rendered for loopback ports by
replacing only its upstream `server` lines and its `listen` line; the rendering fails when those
lines are not found, so the file under test is the one that ships. AGENTHUB_REQUIRE_NGINX=1 (as
`.ci/run` sets) turns a missing nginx into a failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets.sync.client

from tests.databases import fresh_pg_database, need_pg
from tests.realtime.nodes import drop_prefix, shared_redis_url
from tests.realtime.test_js_client import JS_DIR, node_ready
from tests.support import (
    Agent,
    Server,
    assert_error,
    free_port,
    loopback_address,
    start_server,
    stop_process,
    uniq,
)

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "deploy" / "nginx" / "agenthub.conf"
REQUIRE_NGINX = os.environ.get("AGENTHUB_REQUIRE_NGINX") == "1"
WAIT = 20.0  # seconds: the bound on any single expected state
MESSAGES = 30
UPSTREAM_LINE = re.compile(r"^(\s*)server agenthub-\d:3000( .*)?;$", re.MULTILINE)
LISTEN_LINE = re.compile(r"^(\s*)listen 80;$", re.MULTILINE)
BALANCE_LINE = "hash $agenthub_balance_key consistent;"
# What the test reads back from nginx: which node served each request, for which client.
LOG_FORMAT = (
    'log_format balanced escape=json \'{"client":"$remote_addr","upstream":"$upstream_addr",'
    '"status":"$status","uri":"$uri","transport":"$arg_transport","sid":"$arg_sid",'
    '"probe":"$arg_probe"}\';'
)


def tool(name: str, candidates: list[str], require: bool, why: str) -> str:
    found = shutil.which(name) or next((c for c in candidates if Path(c).exists()), None)
    if found:
        return found
    if require:
        pytest.fail(f"`{name}` is required ({why}=1) but not installed")
    pytest.skip(f"`{name}` is not installed")


def render(conf: str, port: int, upstreams: list[str], *, balance: str | None = None) -> str:
    """The shipped file with its two upstream servers and its listen address made local.

    `balance` replaces the `hash` line (the test's own control: round robin, to show that the
    checks notice a balancer without stickiness)."""
    servers = UPSTREAM_LINE.findall(conf)
    assert len(servers) == len(upstreams), f"expected {len(upstreams)} upstream lines: {servers}"
    rest = iter(upstreams)
    conf = UPSTREAM_LINE.sub(lambda m: f"{m[1]}server {next(rest)}{m[2] or ''};", conf)
    assert LISTEN_LINE.search(conf), "the shipped file no longer listens on port 80"
    conf = LISTEN_LINE.sub(lambda m: f"{m[1]}listen 127.0.0.1:{port};", conf)
    if balance is not None:
        assert BALANCE_LINE in conf, "the shipped file no longer balances with its hash key"
        conf = conf.replace(BALANCE_LINE, balance)
    return conf


@dataclass
class Nginx:
    url: str
    prefix: Path
    proc: subprocess.Popen[bytes]

    def log(self) -> list[dict[str, str]]:
        path = self.prefix / "access.log"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def node_of(self, address: str, upstreams: list[str]) -> str:
        """The node nginx sends long-polling requests from `address` to (a probe carrying the
        `transport=polling` nginx keys on; the answer is the node's 404)."""
        probe = uuid.uuid4().hex
        transport = httpx.HTTPTransport(local_address=address)
        with httpx.Client(base_url=self.url, transport=transport, timeout=10) as c:
            c.get("/probe", params={"transport": "polling", "probe": probe})
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            for entry in self.log():
                if entry["probe"] == probe:
                    assert entry["upstream"] in upstreams, entry
                    return entry["upstream"]
            time.sleep(0.05)
        raise AssertionError(f"nginx logged no request for probe {probe}")


@contextlib.contextmanager
def nginx(prefix: Path, conf: str) -> Iterator[Nginx]:
    """nginx in the foreground, as a child, with every file it writes under `prefix`."""
    exe = tool("nginx", ["/usr/sbin/nginx"], REQUIRE_NGINX, "AGENTHUB_REQUIRE_NGINX")
    prefix.mkdir(parents=True)
    (prefix / "agenthub.conf").write_text(conf)
    temp = {kind: prefix / kind for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")}
    main = [
        "worker_processes 1;",
        f"error_log {prefix / 'error.log'} info;",
        "events { worker_connections 1024; }",
        "http {",
        f"    {LOG_FORMAT}",
        f"    access_log {prefix / 'access.log'} balanced;",
        *(f"    {kind}_temp_path {path};" for kind, path in temp.items()),
        f"    include {prefix / 'agenthub.conf'};",
        "}",
    ]
    (prefix / "nginx.conf").write_text("\n".join(main) + "\n")
    cmd = [exe, "-p", str(prefix), "-c", str(prefix / "nginx.conf")]
    checked = subprocess.run([*cmd, "-t"], capture_output=True, text=True, timeout=30, check=False)
    assert checked.returncode == 0, checked.stderr
    port = int(re.findall(r"listen 127\.0\.0\.1:(\d+);", conf)[0])
    with (prefix / "stderr.log").open("wb") as err:
        proc = subprocess.Popen(
            [*cmd, "-g", f"daemon off; pid {prefix / 'nginx.pid'};"], stdout=err, stderr=err
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + WAIT
        while True:
            assert proc.poll() is None, (prefix / "error.log").read_text()
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(f"{url}/healthz", timeout=2)  # nginx answers (whatever the nodes do)
                break
            assert time.monotonic() < deadline, (prefix / "error.log").read_text()
            time.sleep(0.1)
        yield Nginx(url, prefix, proc)
    finally:
        stop_process(proc)


@dataclass
class Hub:
    nodes: list[Server]
    upstreams: list[str]
    lb: Nginx


@contextlib.contextmanager
def two_node_hub(root: Path) -> Iterator[Hub]:
    """Two nodes on a fresh PostgreSQL database and the shared Redis (a key prefix of their
    own, dropped at the end), behind nginx with the shipped file."""
    need_pg("the load-balancer test runs on PostgreSQL")
    redis_url = shared_redis_url()
    prefix = uniq("lb")
    with fresh_pg_database("lb") as database_url:
        env = {
            "REDIS_URL": redis_url,
            "REDIS_KEY_PREFIX": prefix,
            "TRUSTED_PROXIES": "127.0.0.1",  # nginx reaches the nodes from 127.0.0.1
            "LOG_LEVEL": "info",
            "LOG_FORMAT": "json",
            # Long-polling cycles at least once a second: many requests per session.
            "SOCKETIO_PING_INTERVAL": "1",
            "SOCKETIO_PING_TIMEOUT": "10",
        }
        nodes: list[Server] = []
        try:
            for name in ("a", "b"):
                nodes.append(start_server("postgres", database_url, root / name, **env))
            upstreams = [n.base_url.removeprefix("http://") for n in nodes]
            conf = render(SHIPPED.read_text(), free_port(), upstreams)
            with nginx(root / "nginx", conf) as lb:
                yield Hub(nodes, upstreams, lb)
        finally:
            for node in nodes:
                node.api.close()
                stop_process(node.proc)
            drop_prefix(redis_url, prefix)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    with two_node_hub(tmp_path_factory.mktemp("lb")) as shared:
        yield shared


def addresses_per_node(hub: Hub) -> dict[str, str]:
    """One loopback client address whose long-polling nginx sends to each node."""
    found: dict[str, str] = {}
    for _ in range(64):  # each new address lands on either node: both are found in a few
        address = loopback_address()
        found.setdefault(hub.lb.node_of(address, hub.upstreams), address)
        if len(found) == len(hub.upstreams):
            return found
    raise AssertionError(f"every client address went to the same node: {found}")


def connected_per_node(hub: Hub) -> list[int]:
    """Socket.IO connections each node holds now (its own /metrics, not through nginx)."""
    counts = []
    for node in hub.nodes:
        text = httpx.get(f"{node.base_url}/metrics", timeout=10).text
        value = re.search(r"^agenthub_agents_connected (\S+)$", text, re.MULTILINE)
        assert value, "agenthub_agents_connected missing"
        counts.append(int(float(value[1])))
    return counts


def run_clients(
    hub: Hub, config: dict[str, Any], before_go: Callable[[list[str]], None]
) -> dict[str, Any]:
    """balanced.mjs with `config`; `before_go(sids)` runs once every socket is connected."""
    node = node_ready()
    proc = subprocess.Popen(
        [node, str(JS_DIR / "balanced.mjs"), json.dumps({"url": hub.lb.url, **config})],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdin is not None
        ready = json.loads(proc.stdout.readline() or '{"error": "no output"}')
        assert ready.get("ready"), f"{ready} {proc.stderr.read() if proc.stderr else ''}"
        before_go(ready["sids"])
        proc.stdin.write("go\n")
        proc.stdin.flush()
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert proc.returncode == 0, out + err
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def wait_for_counts(hub: Hub, want: list[int]) -> None:
    deadline = time.monotonic() + WAIT
    while (counts := connected_per_node(hub)) != want:
        assert time.monotonic() < deadline, f"connections per node {counts}, expected {want}"
        time.sleep(0.1)


def agent_in_room(hub: Hub, count: int) -> tuple[list[Agent], str]:
    """`count` agents (made through node A) and a room of them all; returns the room's id."""
    agents = [hub.nodes[0].new_agent() for _ in range(count)]
    room = hub.nodes[0].new_room(agents[0], *agents[1:])
    return agents, str(room["id"])


def assert_survived(seen: dict[str, Any], transport: str) -> None:
    """The socket stayed connected on one Engine.IO session, on its transport, without error."""
    assert seen["errors"] == [], seen
    assert seen["disconnects"] == [], seen
    assert seen["connectedNow"], seen
    assert seen["sidNow"] == seen["sid"], seen
    assert seen["transportNow"] == transport, seen


def test_long_polling_sessions_stay_on_their_node_and_messages_cross_nodes(hub: Hub) -> None:
    """Sender on node A, one receiver on node A and one on node B, all over long-polling only:
    every request of a session reaches the node that holds it (else the node answers 400 and
    the client disconnects), and every receiver gets every acked message, in order."""
    where = addresses_per_node(hub)
    node_a, node_b = hub.upstreams
    (alice, bob, carol), room = agent_in_room(hub, 3)
    config = {
        "transport": "polling",
        "room": room,
        "messages": MESSAGES,
        "sender": {"jwt": alice.jwt, "address": where[node_a]},
        "receivers": [
            {"jwt": bob.jwt, "address": where[node_a]},  # with the sender
            {"jwt": carol.jwt, "address": where[node_b]},  # across nodes
        ],
    }
    # Both nodes hold exactly the sockets nginx was meant to send them (no other test runs
    # sockets on this hub at the same time).
    out = run_clients(hub, config, lambda sids: wait_for_counts(hub, [2, 1]))
    assert out["acks"] == list(range(1, MESSAGES + 1)), out["acks"]
    sender = out["sender"]
    with_sender, across = out["receivers"]
    for seen in (sender, with_sender, across):
        assert_survived(seen, "polling")
    # Every request of each session went to one node, the one its address hashes to, and each
    # session made many requests (one per send for the sender, at least one per ping for all).
    log = hub.lb.log()
    for seen, node in ((sender, node_a), (with_sender, node_a), (across, node_b)):
        requests = [e for e in log if e["sid"] == seen["sid"]]
        assert {e["upstream"] for e in requests} == {node}, requests
        assert {e["client"] for e in requests} == {seen["address"]}
        # 200 each, but for the long-poll still waiting when the client closed (nginx: 499).
        others = [e["status"] for e in requests if e["status"] != "200"]
        assert others in ([], ["499"]), others
        assert len(requests) >= 5, len(requests)
    assert len([e for e in log if e["sid"] == sender["sid"]]) > MESSAGES
    assert with_sender["received"] == list(range(1, MESSAGES + 1))
    # Cross-node fan-out (sender on node A, receiver on node B): needs the `scale` branch.
    assert across["received"] == list(range(1, MESSAGES + 1)), across


def test_the_clients_default_polling_then_upgrade_stays_on_one_node(hub: Hub) -> None:
    """The JS client's default (and a browser's): a long-polling start, then the upgrade to
    websocket, which carries the polling session's sid and must reach the same node."""
    where = addresses_per_node(hub)
    node_a, node_b = hub.upstreams
    (alice, bob, carol), room = agent_in_room(hub, 3)
    config = {
        "transport": "default",
        "room": room,
        "messages": MESSAGES,
        "sender": {"jwt": alice.jwt, "address": where[node_a]},
        "receivers": [
            {"jwt": bob.jwt, "address": where[node_a]},
            {"jwt": carol.jwt, "address": where[node_b]},
        ],
    }
    out = run_clients(hub, config, lambda sids: wait_for_counts(hub, [2, 1]))
    assert out["acks"] == list(range(1, MESSAGES + 1)), out["acks"]
    # nginx logs a websocket when it closes: wait for the three upgrades' lines.
    sids = {out["sender"]["sid"], *(r["sid"] for r in out["receivers"])}
    deadline = time.monotonic() + WAIT
    while True:
        log = hub.lb.log()
        if sids <= {e["sid"] for e in log if e["transport"] == "websocket"}:
            break
        assert time.monotonic() < deadline, "nginx did not log the upgrades"
        time.sleep(0.1)
    for seen, node in (
        (out["sender"], node_a),
        *zip(out["receivers"], (node_a, node_b), strict=True),
    ):
        assert_survived(seen, "websocket")  # upgraded, same session
        requests = [e for e in log if e["sid"] == seen["sid"]]
        assert {e["transport"] for e in requests} == {"polling", "websocket"}, requests
        assert {e["upstream"] for e in requests} == {node}, requests
        assert seen["received"] == list(range(1, MESSAGES + 1)), seen


def test_websocket_clients_spread_over_both_nodes_and_every_one_gets_every_message(
    hub: Hub,
) -> None:
    """Websocket-only connections from ONE client address still spread over both nodes (nginx
    picks a node per new connection), and each receiver gets every acked message wherever it
    and the sender landed."""
    receivers = 15  # all 16 sockets on one node by chance: 1 in 2**15
    address = loopback_address()
    (alice, bob), room = agent_in_room(hub, 2)
    config = {
        "transport": "websocket",
        "room": room,
        "messages": MESSAGES,
        "sender": {"jwt": alice.jwt, "address": address},
        "receivers": [{"jwt": bob.jwt, "address": address}] * receivers,
    }
    placed: list[list[int]] = []

    def check_spread(sids: list[str]) -> None:
        wait_for_counts_total(hub, receivers + 1)
        placed.append(connected_per_node(hub))

    out = run_clients(hub, config, check_spread)
    assert all(n > 0 for n in placed[0]), f"every websocket went to one node: {placed[0]}"
    assert out["acks"] == list(range(1, MESSAGES + 1)), out["acks"]
    assert_survived(out["sender"], "websocket")
    for seen in out["receivers"]:
        assert_survived(seen, "websocket")
        # Receivers on the sender's node and on the other one alike (cross-node: `scale`).
        assert seen["received"] == list(range(1, MESSAGES + 1)), seen


def wait_for_counts_total(hub: Hub, total: int) -> None:
    deadline = time.monotonic() + WAIT
    while sum(counts := connected_per_node(hub)) != total:
        assert time.monotonic() < deadline, f"connections per node {counts}, expected {total}"
        time.sleep(0.1)


def test_each_node_sees_the_clients_own_address_and_metrics_stay_inside(hub: Hub) -> None:
    """nginx appends the peer to X-Forwarded-For and the nodes trust only nginx: the node logs
    the client's address, never a forged one; /metrics is not served through the balancer."""
    address = loopback_address()
    request_id = uuid.uuid4().hex
    with httpx.Client(
        base_url=hub.lb.url, transport=httpx.HTTPTransport(local_address=address), timeout=10
    ) as c:
        r = c.get(
            "/api/v1/agents/me",
            headers={"X-Forwarded-For": "203.0.113.9", "X-Request-ID": request_id},
        )
        assert r.status_code == 401, r.text
        assert c.get("/metrics").status_code == 403
    deadline = time.monotonic() + WAIT
    while True:
        lines = [
            json.loads(line)
            for node in hub.nodes
            for line in node.log_text().splitlines()
            if request_id in line and line.startswith("{")
        ]
        if lines:
            break
        assert time.monotonic() < deadline, "no node logged the request"
        time.sleep(0.1)
    assert [line["client"] for line in lines] == [address], lines


def test_refusals_through_the_balancer_keep_the_contracts_envelope(
    hub: Hub, tmp_path: Path
) -> None:
    """Unauthenticated, not a member, a body over the limit (refused by nginx itself), and no
    node answering: each in docs/API.md's error envelope, never an HTML page."""
    (alice, bob), room = agent_in_room(hub, 2)
    outsider = hub.nodes[1].new_agent()
    with httpx.Client(base_url=hub.lb.url, timeout=30) as c:
        assert_error(c.get("/api/v1/agents/me"), 401, "unauthorized")
        path = f"/api/v1/rooms/{room}/messages"
        auth = {"Authorization": f"Bearer {outsider.jwt}"}
        assert_error(c.post(path, json={"body": "not mine"}, headers=auth), 403, "forbidden")
        big = b'{"body": "' + b"x" * (2 * 1024 * 1024) + b'"}'
        auth = {"Authorization": f"Bearer {alice.jwt}", "Content-Type": "application/json"}
        assert_error(c.post(path, content=big, headers=auth), 413, "payload_too_large")
    assert bob.get(path).json()["messages"] == []  # nothing stored
    # The same file in front of a port where nothing listens.
    dead = render(SHIPPED.read_text(), free_port(), [f"127.0.0.1:{free_port()}"] * 2)
    with nginx(tmp_path / "dead", dead) as lb, httpx.Client(base_url=lb.url, timeout=30) as c:
        r = c.get("/api/v1/agents/me")
        assert_error(r, 503, "unavailable")
        assert r.headers["retry-after"] == "5"


def test_a_balancer_without_stickiness_breaks_long_polling(hub: Hub, tmp_path: Path) -> None:
    """The control that shows the stickiness checks can fail: the same file with round robin
    in place of its hash sends a polling session's next request to the other node, which
    refuses the unknown session. Through the shipped file, the same requests all succeed."""
    round_robin = render(
        SHIPPED.read_text(), free_port(), hub.upstreams, balance="# round robin (test control)"
    )
    jwt = hub.nodes[0].new_agent().jwt
    with nginx(tmp_path / "rr", round_robin) as rr:
        assert 400 in polling_statuses(rr.url, jwt), "round robin kept a polling session together"
    assert set(polling_statuses(hub.lb.url, jwt)) == {200}


def polling_statuses(url: str, jwt: str) -> list[int]:
    """A Socket.IO long-polling session, by hand: handshake, connect to /agents, then four
    polls, each ping answered; the status of every request."""
    address = loopback_address()
    with httpx.Client(
        base_url=url, transport=httpx.HTTPTransport(local_address=address), timeout=10
    ) as c:
        path, query = "/socket.io/", {"EIO": "4", "transport": "polling"}
        opened = c.get(path, params=query)
        assert opened.status_code == 200, opened.text
        query["sid"] = json.loads(opened.text[1:])["sid"]
        connect = c.post(path, params=query, content="40/agents," + json.dumps({"token": jwt}))
        statuses = [opened.status_code, connect.status_code]
        for _ in range(4):  # each answers within a ping interval (1 s) on the right node
            r = c.get(path, params=query)
            statuses.append(r.status_code)
            if r.status_code == 200 and "\x1e2" in "\x1e" + r.text:
                statuses.append(c.post(path, params=query, content="3").status_code)
    return statuses


def test_websocket_only_handshakes_are_balanced_per_connection(hub: Hub) -> None:
    """Raw Engine.IO websocket handshakes from one address: nginx's log shows both nodes."""
    address = loopback_address()
    url = hub.lb.url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
    for _ in range(24):  # all on one node by chance: 1 in 2**23
        with websockets.sync.client.connect(
            url, open_timeout=10, sock=_bound_socket(address, hub.lb.url)
        ) as ws:
            assert str(ws.recv(timeout=10)).startswith("0")
    deadline = time.monotonic() + WAIT
    while True:
        served = [
            e
            for e in hub.lb.log()
            if e["client"] == address and e["transport"] == "websocket" and not e["sid"]
        ]
        if len(served) == 24:
            break
        assert time.monotonic() < deadline, served
        time.sleep(0.1)
    assert {e["upstream"] for e in served} == set(hub.upstreams)


def _bound_socket(address: str, url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    s = socket.socket()
    s.bind((address, 0))
    s.connect((host, int(port)))
    return s


def test_when_a_node_dies_nginx_sends_everyone_to_the_other(tmp_path: Path) -> None:
    """Node B killed (SIGKILL, nothing said to nginx): REST calls, long-polling handshakes from
    an address that hashed to B, and websocket handshakes all reach node A through nginx."""
    with two_node_hub(tmp_path) as own:
        where = addresses_per_node(own)
        agent = own.nodes[0].new_agent()
        logged_before = len(own.lb.log())
        own.nodes[1].proc.kill()
        own.nodes[1].proc.wait(10)
        with httpx.Client(
            base_url=own.lb.url,
            transport=httpx.HTTPTransport(local_address=where[own.upstreams[1]]),
            timeout=30,
        ) as c:
            auth = {"Authorization": f"Bearer {agent.jwt}"}
            statuses = [c.get("/api/v1/agents/me", headers=auth).status_code for _ in range(10)]
            assert statuses == [200] * 10
            opened = c.get("/socket.io/", params={"EIO": "4", "transport": "polling"})
            assert opened.status_code == 200, opened.text
            assert opened.text.startswith("0{")
        url = own.lb.url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
        for _ in range(6):
            with websockets.sync.client.connect(url, open_timeout=10) as ws:
                assert str(ws.recv(timeout=10)).startswith("0")
        # nginx tried the dead node, then passed the same request on to the live one; after
        # max_fails such tries it stops asking the dead node for a while.
        node_a, node_b = own.upstreams
        after = own.lb.log()[logged_before:]
        tried = [e["upstream"] for e in after if node_b in e["upstream"]]
        assert f"{node_b}, {node_a}" in tried, tried
        assert len(tried) <= 3, tried  # max_fails=3
        assert all(e["upstream"] == node_a for e in after if node_b not in e["upstream"])

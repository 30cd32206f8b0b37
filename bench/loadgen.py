"""Load generator for any server that implements the AgentHub contract (public API only).

Message mode: R rooms x M member agents, each agent with its own API token, JWT and socket;
every agent sends N messages with `message:send` and waits for acks (at most W unacked per
socket, optionally paced at a rate per agent). Reports acked messages/s, send->ack and
send->`message:new` latency percentiles, completeness (every member got every acked message
of its room exactly once, in seq order, seqs gapless), server RSS, and the CPU used by the
server, the database and the generator itself.

Across two nodes (`--receive-url`): in each room, the first half of the agents (rounded down)
connect to `--url` and send, sending the whole room's messages between them (so the room carries
as many messages, as many at once, as with every agent sending); the others connect to
`--receive-url` and only receive. Delivery latency and completeness are measured on those
receivers: every message crosses from one node to the other.

Connection mode: C idle authenticated sockets; connect time and server memory per socket.

    python -m bench.loadgen messages --url http://127.0.0.1:3000 --admin-token agt_... \
        --rooms 20 --agents 5 --messages 100 --window 8 --server-pid 1234
    python -m bench.loadgen connections --url ... --admin-token ... --sockets 5000 --server-pid 1234
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import multiprocessing as mp
import os
import queue
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

from bench import procstat
from bench.sioclient import SioClient

BODY_PAD = 48  # bytes of padding after the send timestamp: ~64-byte messages
IDLE_LIMIT_S = 10.0  # a worker gives up waiting for deliveries after this long without any


@dataclass
class Plan:
    rooms: int = 20
    agents: int = 5  # members per room
    messages: int = 100  # per agent
    window: int = 8  # unacked sends per socket
    rate: float = 0.0  # sends per second per agent; 0 = as fast as acks return
    processes: int = 4


@dataclass
class AgentSpec:
    index: int
    agent_id: str
    room_id: str
    jwt: str
    url: str = ""  # where its socket connects ("": the run's URL)
    sends: int = -1  # messages it sends (-1: the plan's `messages`)
    window: int = 0  # unacked sends at most (0: the plan's)
    rate: float = -1.0  # sends per second (-1: the plan's)
    measured: bool = True  # its deliveries count in the latencies


def phase(index: int, plan: Plan) -> float:
    """Where in its send interval agent `index` sends, as a fraction of the interval."""
    total = max(1, plan.rooms * plan.agents)
    return (index % total) / total


def split_roles(plan: Plan, specs: list[AgentSpec], receive_url: str) -> list[AgentSpec]:
    """Senders stay on the run's URL, receivers move to `receive_url`; the senders of a room
    share its `agents x messages` sends, its window and its rate, so the offered load is the
    single node's."""
    senders = plan.agents // 2
    total = plan.agents * plan.messages
    if senders < 1 or total % senders:
        raise ValueError(f"{plan.agents} agents x {plan.messages} messages do not split evenly")
    share = plan.agents / senders
    for spec in specs:
        if spec.index % plan.agents < senders:
            spec.sends = total // senders
            spec.window = round(plan.window * share)
            spec.rate = plan.rate * share
            spec.measured = False
        else:
            spec.url, spec.sends = receive_url, 0
    return specs


@dataclass
class WorkerResult:
    ack_latencies: list[float] = field(default_factory=list)
    delivery_latencies: list[float] = field(default_factory=list)
    acked_by_room: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    # per receiving socket: (room_id, received, in_order, duplicates, first_seq, last_seq)
    receivers: list[tuple[str, int, bool, int, int, int]] = field(default_factory=list)
    seqs_by_room: dict[str, list[int]] = field(default_factory=dict)
    send_started: float = 0.0
    send_finished: float = 0.0
    cpu_seconds: float = 0.0  # this worker's CPU from "go" to its report


# ---------------------------------------------------------------- set-up (REST only)


class Api:
    def __init__(self, base_url: str, admin_token: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=60)
        self.admin_jwt = self.session(admin_token)

    def session(self, api_token: str) -> str:
        r = self.http.post("/api/v1/sessions", headers={"Authorization": f"Bearer {api_token}"})
        r.raise_for_status()
        return str(r.json()["token"])

    def post(self, path: str, body: Any, jwt: str | None = None) -> Any:
        auth = {"Authorization": f"Bearer {jwt or self.admin_jwt}"}
        r = self.http.post(path, json=body, headers=auth)
        if r.status_code >= 400:
            raise RuntimeError(f"POST {path} -> {r.status_code} {r.text[:200]}")
        return r.json()


def make_agent(api: Api, name: str) -> tuple[str, str]:
    """Create an agent, issue its API token, open a session: (agent id, JWT)."""
    agent = api.post("/api/v1/agents", {"name": name, "displayName": name})
    token = api.post(f"/api/v1/agents/{name}/tokens", {})["token"]
    return agent["id"], api.session(token)


def setup(base_url: str, admin_token: str, plan: Plan) -> list[AgentSpec]:
    api = Api(base_url, admin_token)
    run = uuid.uuid4().hex[:6]
    names = [f"b{run}-{i}" for i in range(plan.rooms * plan.agents)]
    with ThreadPoolExecutor(8) as pool:  # argon2 verification dominates: parallel helps
        made = list(pool.map(lambda n: make_agent(api, n), names))
    specs = []
    for r in range(plan.rooms):
        members = list(range(r * plan.agents, (r + 1) * plan.agents))
        owner_jwt = made[members[0]][1]
        room = api.post(
            "/api/v1/rooms", {"slug": f"b{run}-room-{r}", "name": f"bench {r}"}, owner_jwt
        )
        for i in members[1:]:
            api.post(f"/api/v1/rooms/{room['id']}/members", {"agent": made[i][0]}, owner_jwt)
        specs += [AgentSpec(i, made[i][0], room["id"], made[i][1]) for i in members]
    return specs


# ---------------------------------------------------------------- workers


async def _run_worker(
    base_url: str,
    plan: Plan,
    specs: list[AgentSpec],
    ready: Any,
    go: Any,
    progress: Any,
) -> WorkerResult:
    result = WorkerResult()
    expected = plan.agents * plan.messages  # per room, when every send is acked
    clients: list[SioClient] = []
    receivers: list[dict[str, Any]] = []

    for spec in specs:
        client = SioClient(spec.url or base_url, spec.jwt)
        state: dict[str, Any] = {"room": spec.room_id, "seqs": [], "lat": [], "spec": spec}

        def on_new(message: Any, state: dict[str, Any] = state) -> None:
            now = time.time()
            state["seqs"].append(message["seq"])
            state["lat"].append(now - float(message["body"].split(" ", 1)[0]))

        client.on("message:new", on_new)
        clients.append(client)
        receivers.append(state)
    await asyncio.gather(*(c.connect() for c in clients))
    await asyncio.to_thread(ready.wait)
    await asyncio.to_thread(go.wait)

    acked_total = 0
    acked_reported = delivered_reported = 0

    async def report_progress() -> None:
        nonlocal acked_reported, delivered_reported
        while True:
            await asyncio.sleep(0.25)
            delivered = sum(len(s["seqs"]) for s in receivers)
            with progress.get_lock():
                progress[0] += acked_total - acked_reported
                progress[1] += delivered - delivered_reported
            acked_reported, delivered_reported = acked_total, delivered

    async def send_all(spec: AgentSpec, client: SioClient) -> None:
        nonlocal acked_total
        window = asyncio.Semaphore(spec.window or plan.window)
        rate = plan.rate if spec.rate < 0 else spec.rate
        pending: set[asyncio.Future[Any]] = set()
        # Agents keep their own phase (spread evenly over one send interval), as separate
        # agents do: started together they would send in bursts of every agent at once.
        started = time.monotonic() + (phase(spec.index, plan) / rate if rate > 0 else 0.0)
        for n in range(plan.messages if spec.sends < 0 else spec.sends):
            await window.acquire()
            if rate > 0:
                delay = started + n / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            sent = time.time()
            body = f"{sent:.6f} " + "x" * BODY_PAD
            try:
                ack = await client.call(
                    "message:send",
                    {"roomId": spec.room_id, "body": body, "clientMsgId": f"{spec.index}-{n}"},
                )
            except Exception:
                result.failed["send"] = result.failed.get("send", 0) + 1
                window.release()
                continue

            def done(f: asyncio.Future[Any], sent: float = sent) -> None:
                nonlocal acked_total
                window.release()
                pending.discard(f)
                reply = None if f.cancelled() or f.exception() else f.result()
                if reply and reply.get("ok"):
                    result.ack_latencies.append(time.time() - sent)
                    room = spec.room_id
                    result.acked_by_room[room] = result.acked_by_room.get(room, 0) + 1
                    acked_total += 1
                else:
                    code = reply["error"]["code"] if reply else "disconnected"
                    result.failed[code] = result.failed.get(code, 0) + 1

            pending.add(ack)
            ack.add_done_callback(done)
        if pending:
            await asyncio.wait(pending, timeout=120)

    reporter = asyncio.create_task(report_progress())
    cpu_at_go = time.process_time()
    result.send_started = time.time()
    await asyncio.gather(*(send_all(s, c) for s, c in zip(specs, clients, strict=True)))
    result.send_finished = time.time()

    # Deliveries may trail the last ack a little; wait until complete or idle.
    last_count, last_change = -1, time.monotonic()
    while True:
        count = sum(len(s["seqs"]) for s in receivers)
        if all(len(s["seqs"]) >= expected for s in receivers):
            break
        if count != last_count:
            last_count, last_change = count, time.monotonic()
        elif time.monotonic() - last_change > IDLE_LIMIT_S:
            break
        await asyncio.sleep(0.05)
    reporter.cancel()
    for state in receivers:
        seqs = state["seqs"]
        in_order = all(b == a + 1 for a, b in itertools.pairwise(seqs))
        dupes = len(seqs) - len(set(seqs))
        first, last = (seqs[0], seqs[-1]) if seqs else (0, 0)
        result.receivers.append((state["room"], len(seqs), in_order, dupes, first, last))
        if state["spec"].measured:
            result.delivery_latencies += state["lat"]
    result.cpu_seconds = time.process_time() - cpu_at_go
    await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
    return result


def _worker_main(
    base_url: str, plan: Plan, specs: list[AgentSpec], ready: Any, go: Any, progress: Any, out: Any
) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(_run_worker(base_url, plan, specs, ready, go, progress))
    out.put(asdict(result))


# ---------------------------------------------------------------- the run


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def run_messages(
    base_url: str,
    admin_token: str,
    plan: Plan,
    server_pid: procstat.Pids,
    label: str = "",
    receive_url: str | None = None,
) -> dict[str, Any]:
    """`server_pid`: the server's process, or every node's; `receive_url`: see the module's
    docstring (receivers on another node)."""
    say(f"{label} set-up: {plan.rooms} rooms x {plan.agents} agents")
    specs = setup(base_url, admin_token, plan)
    if receive_url:
        specs = split_roles(plan, specs, receive_url)
    ctx = mp.get_context("spawn")
    ready = ctx.Barrier(plan.processes + 1)
    go = ctx.Event()
    progress = ctx.Array("q", 2)
    out = ctx.Queue()
    shares = [specs[i :: plan.processes] for i in range(plan.processes)]
    workers = [
        ctx.Process(target=_worker_main, args=(base_url, plan, share, ready, go, progress, out))
        for share in shares
        if share
    ]
    if len(workers) != plan.processes:
        ready = ctx.Barrier(len(workers) + 1)
    for w in workers:
        w.start()
    ready.wait(timeout=300)
    say(f"{label} {len(specs)} sockets connected; sending")
    before = procstat.snapshot(server_pid)
    started = time.time()
    go.set()
    results: list[dict[str, Any]] = []
    last = (0, 0, time.time())
    while len(results) < len(workers):
        with contextlib.suppress(queue.Empty):
            results.append(out.get(timeout=1))
        acked, delivered = progress[0], progress[1]
        now = time.time()
        if now - last[2] >= 1:
            rate = (acked - last[0]) / (now - last[2])
            say(f"{label}   acked {acked:>7}  ({rate:7.0f}/s)   delivered {delivered:>8}")
            last = (acked, delivered, now)
        if now - started > 900:
            raise RuntimeError("run took longer than 15 minutes")
    after = procstat.snapshot(server_pid)
    for w in workers:
        w.join(30)
    return summarize(plan, results, before, after, server_pid)


def summarize(
    plan: Plan,
    results: list[dict[str, Any]],
    before: procstat.Snapshot,
    after: procstat.Snapshot,
    server_pid: procstat.Pids,
) -> dict[str, Any]:
    acks = [x for r in results for x in r["ack_latencies"]]
    deliveries = [x for r in results for x in r["delivery_latencies"]]
    acked_by_room: dict[str, int] = {}
    failed: dict[str, int] = {}
    for r in results:
        for room, n in r["acked_by_room"].items():
            acked_by_room[room] = acked_by_room.get(room, 0) + n
        for code, n in r["failed"].items():
            failed[code] = failed.get(code, 0) + n
    problems = []
    for r in results:
        for room, received, in_order, dupes, first, last in r["receivers"]:
            want = acked_by_room.get(room, 0)
            if received != want or not in_order or dupes or (want and (first, last) != (1, want)):
                problems.append(
                    f"room {room[:8]}: got {received}/{want}, in order {in_order}, "
                    f"dupes {dupes}, seqs {first}..{last}"
                )
    start = min(r["send_started"] for r in results)
    end = max(r["send_finished"] for r in results)
    wall = end - start
    total = sum(acked_by_room.values())
    cpu = procstat.cpu_between(before, after)
    cpu["generator_s"] = round(cpu["generator_s"] + sum(r["cpu_seconds"] for r in results), 2)
    cpu["generator_processes"] = plan.processes
    return {
        "plan": asdict(plan),
        "acked": total,
        "failed": failed,
        "seconds": round(wall, 3),
        "throughput": round(total / wall, 1) if wall > 0 else 0.0,
        "ack_ms": {str(p): round(percentile(acks, p) * 1000, 2) for p in (50, 90, 99)},
        "delivery_ms": {str(p): round(percentile(deliveries, p) * 1000, 2) for p in (50, 99)},
        "deliveries": len(deliveries),
        "complete": not problems and not failed,
        "problems": problems[:10],
        "server_rss_mb": round(procstat.rss_bytes(server_pid) / 2**20, 1) if server_pid else None,
        "cpu": cpu,
    }


# ---------------------------------------------------------------- connection mode


async def _hold_sockets(
    base_url: str, jwt: str, count: int, ready: Any, release: Any, out: Any
) -> None:
    clients = [SioClient(base_url, jwt) for _ in range(count)]
    times: list[float] = []
    failures = 0
    sem = asyncio.Semaphore(50)

    async def one(c: SioClient) -> None:
        nonlocal failures
        async with sem:
            t = time.perf_counter()
            try:
                await c.connect()
                times.append(time.perf_counter() - t)
            except Exception:
                failures += 1

    await asyncio.gather(*(one(c) for c in clients))
    out.put({"connect_times": times, "failures": failures})
    await asyncio.to_thread(ready.wait)
    await asyncio.to_thread(release.wait)
    await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


def _holder_main(base_url: str, jwt: str, count: int, ready: Any, release: Any, out: Any) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(_hold_sockets(base_url, jwt, count, ready, release, out))


def run_connections(
    base_url: str,
    admin_token: str,
    sockets: int,
    processes: int,
    server_pid: procstat.Pids,
    label: str = "",
) -> dict[str, Any]:
    api = Api(base_url, admin_token)
    jwt = make_agent(api, f"c{uuid.uuid4().hex[:8]}")[1]
    api.post("/api/v1/rooms", {"slug": f"c{uuid.uuid4().hex[:8]}", "name": "idle"}, jwt)
    time.sleep(1)
    rss_before = procstat.rss_bytes(server_pid) if server_pid else 0
    ctx = mp.get_context("spawn")
    ready = ctx.Barrier(processes + 1)
    release = ctx.Event()
    out = ctx.Queue()
    shares = [
        sockets // processes + (1 if i < sockets % processes else 0) for i in range(processes)
    ]
    holders = [
        ctx.Process(target=_holder_main, args=(base_url, jwt, n, ready, release, out))
        for n in shares
    ]
    started = time.perf_counter()
    for h in holders:
        h.start()
    reports = [out.get(timeout=600) for _ in holders]
    connect_wall = time.perf_counter() - started
    ready.wait(timeout=60)
    say(f"{label} {sockets} sockets open; settling")
    time.sleep(3)
    rss_after = procstat.rss_bytes(server_pid) if server_pid else 0
    release.set()
    for h in holders:
        h.join(60)
    times = [t for r in reports for t in r["connect_times"]]
    failures = sum(r["failures"] for r in reports)
    held = len(times)
    return {
        "sockets": sockets,
        "held": held,
        "failures": failures,
        "connect_wall_s": round(connect_wall, 2),
        "connect_ms": {str(p): round(percentile(times, p) * 1000, 1) for p in (50, 99)},
        "server_rss_before_mb": round(rss_before / 2**20, 1),
        "server_rss_after_mb": round(rss_after / 2**20, 1),
        "kb_per_socket": round((rss_after - rss_before) / 1024 / held, 1) if held else None,
    }


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", choices=["messages", "connections"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--admin-token", default=os.environ.get("AGENTHUB_ADMIN_TOKEN"))
    parser.add_argument("--server-pid", type=int, nargs="*", help="the server's, or every node's")
    parser.add_argument("--receive-url", help="receivers on this node (senders on --url)")
    parser.add_argument("--rooms", type=int, default=20)
    parser.add_argument("--agents", type=int, default=5)
    parser.add_argument("--messages", type=int, default=100)
    parser.add_argument("--window", type=int, default=8)
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--sockets", type=int, default=5000)
    args = parser.parse_args()
    if not args.admin_token:
        parser.error("--admin-token (or AGENTHUB_ADMIN_TOKEN) is required")
    if args.mode == "messages":
        plan = Plan(args.rooms, args.agents, args.messages, args.window, args.rate, args.processes)
        result = run_messages(
            args.url, args.admin_token, plan, args.server_pid, receive_url=args.receive_url
        )
    else:
        result = run_connections(
            args.url, args.admin_token, args.sockets, args.processes, (args.server_pid or [0])[0]
        )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

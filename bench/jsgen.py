"""The load generator on the official JavaScript client (bench/js/loadgen.mjs), driven like
bench/loadgen.py: same set-up over REST, same `Plan`, same worker result shape, same
`summarize`, so both generators' figures mean the same thing.

Each generator process is `node bench/js/loadgen.mjs`, fed one JSON job on stdin and answering
with lines on stdout (see that file). Needs Node.js and `npm ci --prefix bench/js` (`make bench`
runs it).

    python -m bench.jsgen messages --url http://127.0.0.1:3000 --admin-token agt_... \
        --rooms 10 --agents 5 --messages 100 --rate 10 --server-pid 1234
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

from bench import procstat
from bench.loadgen import Api, Plan, make_agent, percentile, say, setup, summarize

JS_DIR = Path(__file__).resolve().parent / "js"
SCRIPT = JS_DIR / "loadgen.mjs"
RUN_LIMIT_S = 900
SOCKETS_PER_AGENT = 50  # the connection setting's: 200 agents for 10,000 sockets
IDLE_WINDOW_S = 25  # longer than one heartbeat period (Engine.IO pings every 25 s, uvicorn's 20 s)


def available() -> str | None:
    """None when the JS generator can run, else why not."""
    if shutil.which("node") is None:
        return "node not found"
    if not (JS_DIR / "node_modules" / "socket.io-client").is_dir():
        return "bench/js has no node_modules: run `npm ci --prefix bench/js`"
    return None


class _Proc:
    """One node generator process and a thread turning its stdout into a queue of lines."""

    def __init__(self, job: dict[str, Any], lines: queue.Queue[tuple[int, str]], n: int) -> None:
        why = available()
        if why:
            raise RuntimeError(f"the JavaScript generator cannot run: {why}")
        self.proc = subprocess.Popen(
            ["node", str(SCRIPT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.tell(json.dumps(job))
        self.cpu_seconds = 0.0
        threading.Thread(target=self._pump, args=(lines, n), daemon=True).start()

    def _pump(self, lines: queue.Queue[tuple[int, str]], n: int) -> None:
        out: IO[str] | None = self.proc.stdout
        assert out is not None
        for line in out:
            lines.put((n, line.rstrip("\n")))
        lines.put((n, "EOF"))

    def tell(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def finish(self) -> None:
        # Whole-process CPU (set-up included) is read before exit for the generator's total.
        self.cpu_seconds = procstat.cpu_seconds(self.proc.pid)
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def _expect(lines: queue.Queue[tuple[int, str]], what: str, deadline: float) -> tuple[int, str]:
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise RuntimeError(f"the JavaScript generator did not say {what!r} in time")
        n, line = lines.get(timeout=left)
        if line == "EOF":
            raise RuntimeError(f"a JavaScript generator process exited before {what!r}")
        if line.startswith(what):
            return n, line


def run_messages(
    base_url: str,
    admin_token: str,
    plan: Plan,
    server_pid: procstat.Pids,
    label: str = "",
    at_go: Callable[[], None] | None = None,
) -> dict[str, Any]:
    say(f"{label} set-up: {plan.rooms} rooms x {plan.agents} agents (official JS client)")
    specs = setup(base_url, admin_token, plan)
    lines: queue.Queue[tuple[int, str]] = queue.Queue()
    shares = [specs[i :: plan.processes] for i in range(plan.processes)]
    procs = [
        _Proc(
            {
                "mode": "messages",
                "url": base_url,
                "plan": asdict(plan),
                "agents": [asdict(s) for s in share],
            },
            lines,
            n,
        )
        for n, share in enumerate(s for s in shares if s)
    ]
    try:
        deadline = time.monotonic() + 300
        for _ in procs:
            _expect(lines, "READY", deadline)
        say(f"{label} {len(specs)} sockets connected (official JS client); sending")
        if at_go is not None:  # e.g. start a profiler, after the set-up
            at_go()
        before = procstat.snapshot(server_pid)
        started = time.time()
        for p in procs:
            p.tell("GO")
        results: dict[int, dict[str, Any]] = {}
        progress: dict[int, tuple[int, int]] = {}
        last = (0, started)
        while len(results) < len(procs):
            if time.time() - started > RUN_LIMIT_S:
                raise RuntimeError("run took longer than 15 minutes")
            try:
                n, line = lines.get(timeout=1)
            except queue.Empty:
                continue
            if line.startswith("P "):
                acked, delivered = (int(x) for x in line[2:].split())
                progress[n] = (acked, delivered)
            elif line.startswith("R "):
                results[n] = json.loads(line[2:])
            elif line == "EOF" and n not in results:
                raise RuntimeError("a JavaScript generator process exited without its result")
            now = time.time()
            if now - last[1] >= 1:
                acked = sum(a for a, _ in progress.values())
                delivered = sum(d for _, d in progress.values())
                rate = (acked - last[0]) / (now - last[1])
                say(f"{label}   acked {acked:>7}  ({rate:7.0f}/s)   delivered {delivered:>8}")
                last = (acked, now)
        after = procstat.snapshot(server_pid)
    finally:
        for p in procs:
            p.finish()
    summary = summarize(plan, list(results.values()), before, after, server_pid)
    summary["generator"] = "socket.io-client (Node)"
    return summary


def connect_agents(sockets: int) -> int:
    """How many agents the connection setting's sockets belong to: one per SOCKETS_PER_AGENT
    sockets, or BENCH_CONNECT_AGENTS."""
    default = max(1, sockets // SOCKETS_PER_AGENT)
    return max(1, int(os.environ.get("BENCH_CONNECT_AGENTS", str(default))))


def run_connections(
    base_url: str,
    admin_token: str,
    sockets: int,
    processes: int,
    server_pid: procstat.Pids,
    label: str = "",
) -> dict[str, Any]:
    api = Api(base_url, admin_token)

    def agent_with_a_room(_: int) -> str:
        jwt = make_agent(api, f"c{uuid.uuid4().hex[:8]}")[1]
        api.post("/api/v1/rooms", {"slug": f"c{uuid.uuid4().hex[:8]}", "name": "idle"}, jwt)
        return jwt

    # Socket i is agent i % agents's: with several, sockets opening together are different
    # agents', as a fleet's are (one agent for all would flatter whatever a server shares
    # between one agent's handshakes).
    with ThreadPoolExecutor(8) as pool:
        jwts = list(pool.map(agent_with_a_room, range(connect_agents(sockets))))
    time.sleep(1)
    rss_before = procstat.rss_bytes(server_pid)
    before = procstat.snapshot(server_pid)
    shares = [
        sockets // processes + (1 if i < sockets % processes else 0) for i in range(processes)
    ]
    lines: queue.Queue[tuple[int, str]] = queue.Queue()
    started = time.perf_counter()
    procs = [
        _Proc(
            {
                "mode": "connections",
                "url": base_url,
                "jwts": jwts,
                "first": sum(shares[:i]),
                "count": n,
                "concurrency": int(os.environ.get("BENCH_CONCURRENCY", "50")),
            },
            lines,
            i,
        )
        for i, n in enumerate(shares)
    ]
    try:
        deadline = time.monotonic() + 600
        reports = [json.loads(_expect(lines, "C ", deadline)[1][2:]) for _ in procs]
        connect_wall = time.perf_counter() - started
        after = procstat.snapshot(server_pid)
        connect_cpu = after.server - before.server
        # The rest of the machine's work per set-up: the rate depends on all of it on 2 cores.
        database_cpu = after.database - before.database
        generator_cpu = sum(procstat.cpu_seconds(p.proc.pid) for p in procs)
        say(f"{label} {sockets} sockets open (official JS client); settling")
        time.sleep(3)
        rss_after = procstat.rss_bytes(server_pid)
        # Idle cost: the server's CPU while every socket is open and quiet (heartbeats only).
        idle_from = procstat.cpu_of(server_pid)
        time.sleep(IDLE_WINDOW_S)
        idle_cpu = procstat.cpu_of(server_pid) - idle_from
        for p in procs:
            p.tell("RELEASE")
    finally:
        for p in procs:
            p.finish()
    times = [t for r in reports for t in r["connect_times"]]
    held = len(times)
    return {
        "generator": "socket.io-client (Node)",
        "sockets": sockets,
        "agents": len(jwts),
        "held": held,
        "failures": sum(r["failures"] for r in reports),
        "connect_wall_s": round(connect_wall, 2),
        "connects_per_s": round(held / connect_wall, 1) if connect_wall > 0 else None,
        "connect_cpu_ms_per_socket": round(connect_cpu * 1000 / held, 2) if held else None,
        "connect_database_cpu_ms_per_socket": (
            round(database_cpu * 1000 / held, 2) if held else None
        ),
        "connect_generator_cpu_ms_per_socket": (
            round(generator_cpu * 1000 / held, 2) if held else None
        ),
        "connect_ms": {str(p): round(percentile(times, p) * 1000, 1) for p in (50, 99)},
        "server_rss_before_mb": round(rss_before / 2**20, 1),
        "server_rss_after_mb": round(rss_after / 2**20, 1),
        "kb_per_socket": round((rss_after - rss_before) / 1024 / held, 1) if held else None,
        "idle_cpu_percent": round(idle_cpu / IDLE_WINDOW_S * 100, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", choices=["messages", "connections"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--admin-token", default=os.environ.get("AGENTHUB_ADMIN_TOKEN"))
    parser.add_argument("--server-pid", type=int)
    parser.add_argument("--rooms", type=int, default=10)
    parser.add_argument("--agents", type=int, default=5)
    parser.add_argument("--messages", type=int, default=100)
    parser.add_argument("--window", type=int, default=8)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--sockets", type=int, default=10000)
    args = parser.parse_args()
    if not args.admin_token:
        parser.error("--admin-token (or AGENTHUB_ADMIN_TOKEN) is required")
    if args.mode == "messages":
        plan = Plan(args.rooms, args.agents, args.messages, args.window, args.rate, args.processes)
        result = run_messages(args.url, args.admin_token, plan, args.server_pid)
    else:
        result = run_connections(
            args.url, args.admin_token, args.sockets, args.processes, args.server_pid
        )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

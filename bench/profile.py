"""One benchmark setting against one server, repeated, with the figures that do not depend
much on how busy the machine is: server CPU per message (or per connection set-up) and server
memory per socket; optionally a py-spy profile of the server while it runs.

    python -m bench.profile paced --target pg --repeat 3
    python -m bench.profile paced --target pg --env SOCKETIO_PING_INTERVAL=5
    BENCH_SERVE='granian --interface asgi --factory --host {host} --port {port} \\
        agenthub.server:reloadable_app' python -m bench.profile fan-out  # another ASGI server
    python -m bench.profile connections --target pg --sockets 3000
    BENCH_CONNECT_AGENTS=1 python -m bench.profile connections  # every socket one agent's
    python -m bench.profile paced --target pg --py-spy /tmp/paced.txt   # collapsed stacks
    BENCH_SPY_RATE=500 python -m bench.profile paced --py-spy /tmp/paced.txt  # samples per second

Each figure is printed with the machine's load average, since latency measured on a busy
machine says little (CPU seconds say more: they count only the server's own work).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench import jsgen, loadgen, matrix, report
from bench.loadgen import say


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def one_run(
    target: str, setting: matrix.Setting, workdir: Path, py_spy: str | None, extra: dict[str, str]
) -> dict[str, Any]:
    os.environ.update(extra)  # read by matrix.agenthub (server environment)
    workdir.mkdir(parents=True, exist_ok=True)
    if target == matrix.TARGETS[2]:
        ctx: Any = matrix.agenthub(f"sqlite:///{workdir / 'bench.db'}", workdir)
        return _measure(ctx, setting, py_spy)
    with matrix.fresh_database("pf") as db:
        if target == matrix.TARGETS[0]:
            ctx = matrix.node_ref(db, workdir)
        else:
            ctx = matrix.agenthub(db, workdir)
        return _measure(ctx, setting, py_spy, db.rsplit("/", 1)[1])


def transactions(database: str | None) -> int:
    """Transactions (commits + rollbacks) PostgreSQL has counted in `database` so far: a
    figure of database work per message that does not depend on how busy the machine is."""
    if database is None:
        return 0
    query = "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = :'db'"
    out = subprocess.run(
        ["psql", matrix.PG_ADMIN, "-tA", "-v", f"db={database}"],
        input=query,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return int(out or 0)


def _measure(
    ctx: Any, setting: matrix.Setting, py_spy: str | None, database: str | None = None
) -> dict[str, Any]:
    gen: Any = jsgen if setting.generator == "js" else loadgen
    with ctx as server:
        pids = server.serving
        spies: list[subprocess.Popen[bytes]] = []
        xacts: list[int] = []

        def start_spy() -> None:
            """py-spy from the first send on (not the set-up's argon2 work)."""
            time.sleep(1.5)  # backends report their statistics about once a second
            xacts.append(transactions(database))
            if not py_spy:
                return
            exe = shutil.which("py-spy") or str(Path(matrix.sys.executable).parent / "py-spy")
            cmd = [exe, "record", "--pid", str(server.proc.pid), "--format", "raw", "-o", py_spy]
            if os.environ.get("BENCH_SERVE"):  # another server may serve from its workers
                cmd += ["--subprocesses"]
            cmd += ["--rate", os.environ.get("BENCH_SPY_RATE", "100")]
            spies.append(
                subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
            time.sleep(0.5)

        try:
            if setting.plan is None:
                start_spy()
                result: dict[str, Any] = gen.run_connections(
                    server.url, server.admin_token, setting.sockets, 4, pids
                )
            elif gen is jsgen:
                result = jsgen.run_messages(
                    server.url, server.admin_token, setting.plan, pids, "", start_spy
                )
            else:
                result = gen.run_messages(server.url, server.admin_token, setting.plan, pids)
        finally:
            for spy in spies:
                spy.send_signal(signal.SIGINT)
                spy.wait(60)
        if xacts and result.get("acked"):
            time.sleep(1.5)
            result["transactions_per_msg"] = round(
                (transactions(database) - xacts[0]) / result["acked"], 3
            )
    result["load_average"] = load_average()
    return result


def headline(result: dict[str, Any]) -> dict[str, Any]:
    if "kb_per_socket" in result:
        keys = (
            "kb_per_socket",
            "connects_per_s",
            "connect_cpu_ms_per_socket",
            "connect_database_cpu_ms_per_socket",
            "connect_generator_cpu_ms_per_socket",
            "idle_cpu_percent",
            "held",
        )
        return {k: result.get(k) for k in keys} | {"load": result["load_average"]}
    return {
        "cpu_ms_per_msg": round(report.cpu_per_message_ms(result) or 0, 3),
        "xact_per_msg": result.get("transactions_per_msg"),
        "server_s": result["cpu"]["server_s"],
        "acked": result["acked"],
        "complete": result["complete"],
        "p50_ms": result["delivery_ms"]["50"],
        "p99_ms": result["delivery_ms"]["99"],
        "load": result["load_average"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("setting", choices=["saturation", "paced", "fan-out", "connections"])
    parser.add_argument("--target", default="pg", choices=["node-ref", "pg", "sqlite"])
    parser.add_argument("--generator", default="js", choices=list(matrix.GENERATORS))
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--sockets", type=int, help="connections: how many (default: the matrix's)")
    parser.add_argument("--rate", type=float, help="override the plan's sends/s per agent")
    parser.add_argument("--messages", type=int, help="override the plan's messages per agent")
    parser.add_argument("--quick", action="store_true", help="the matrix's quick sizes")
    parser.add_argument("--py-spy", help="write py-spy's collapsed stacks of the server here")
    parser.add_argument("--env", action="append", default=[], help="NAME=value for the server")
    args = parser.parse_args()
    target = {"node-ref": matrix.TARGETS[0], "pg": matrix.TARGETS[1], "sqlite": matrix.TARGETS[2]}[
        args.target
    ]
    setting = next(s for s in matrix.settings(args.quick) if s.name == args.setting)
    setting = replace(setting, generator=args.generator)
    if setting.plan is not None and (args.rate or args.messages):
        plan = replace(setting.plan, rate=args.rate or setting.plan.rate)
        setting = replace(setting, plan=replace(plan, messages=args.messages or plan.messages))
    if args.sockets:
        setting = replace(setting, sockets=args.sockets)
    extra = dict(e.split("=", 1) for e in args.env)
    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"agenthub-profile-{uuid.uuid4().hex[:6]}"
    runs = []
    for n in range(args.repeat):
        result = one_run(target, setting, work / str(n), args.py_spy, extra)
        runs.append(result)
        say(json.dumps(headline(result)))
    heads = [headline(r) for r in runs]
    numeric = [k for k, v in heads[0].items() if isinstance(v, (int, float)) and v is not None]
    median = {k: statistics.median(h[k] for h in heads if h[k] is not None) for k in numeric}
    print(
        json.dumps(
            {
                "target": target,
                "setting": args.setting,
                "env": extra,
                "runs": heads,
                "median": median,
            },
            indent=2,
        )
    )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

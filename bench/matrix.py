"""The standard benchmark matrix, in one invocation: node-ref and AgentHub on the same
PostgreSQL, then AgentHub on SQLite, then (saturation and paced) two AgentHub nodes on one
PostgreSQL and a Redis of their own with senders on one node and receivers on the other; each
setting on fresh servers and a fresh database; writes docs/BENCHMARKS.md with the tables and the
ratios against the targets.

    make bench                      # the whole matrix (node-ref only with AGENTHUB_NODE_REF)
    python -m bench.matrix --quick  # a smaller matrix, to try the tooling
    python -m bench.matrix --render bench/results.json  # the report again, measuring nothing
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import re
import secrets
import shlex
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench import jsgen, loadgen, report
from bench.loadgen import Plan, say

ROOT = Path(__file__).resolve().parent.parent
# The seed's Node server to compare with: a checkout outside this repository, so only where the
# environment says (a clone has none; then the matrix runs AgentHub's own rows and says so).
NODE_REF_VAR = "AGENTHUB_NODE_REF"
PG_ADMIN = os.environ.get("AGENTHUB_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
UNLIMITED = {
    "RATE_LIMIT_UNAUTH_PER_MIN": "100000000",
    "RATE_LIMIT_AUTH_PER_MIN": "100000000",
    "RATE_LIMIT_SOCKET_PER_SEC": "100000",
    # Up to 4 workers x 50 handshakes in flight from 127.0.0.1, each pending until its connect.
    "MAX_UNAUTHENTICATED_PER_IP": "100000",
}


@dataclass
class Setting:
    name: str
    plan: Plan | None  # None: connection mode
    sockets: int = 0
    generator: str = "js"  # "js": bench/jsgen.py (official client); "python": bench/loadgen.py


GENERATORS = ("js", "python")
PYTHON_SUFFIX = " · Python generator"


def with_generators(chosen: list[Setting], generators: list[str]) -> list[Setting]:
    """Each setting once per generator: the official JS client's under the setting's own name
    (the rows the targets are judged on), bench/loadgen.py's under a suffixed name."""
    out = []
    for setting in chosen:
        for generator in generators:
            name = setting.name if generator == "js" else setting.name + PYTHON_SUFFIX
            out.append(Setting(name, setting.plan, setting.sockets, generator))
    return out


def settings(quick: bool) -> list[Setting]:
    if quick:
        return [
            Setting("saturation", Plan(rooms=4, agents=5, messages=40, window=8, processes=2)),
            Setting("paced", Plan(rooms=2, agents=5, messages=20, rate=10, processes=2)),
            Setting("fan-out", Plan(rooms=1, agents=10, messages=10, rate=5, processes=2)),
            Setting("connections", None, sockets=300),
        ]
    return [
        Setting("saturation", Plan(rooms=20, agents=5, messages=100, window=8, processes=3)),
        Setting("paced", Plan(rooms=10, agents=5, messages=100, rate=10, processes=3)),
        Setting("fan-out", Plan(rooms=2, agents=25, messages=50, rate=5, processes=3)),
        Setting("connections", None, sockets=10000),
    ]


# ---------------------------------------------------------------- servers


@dataclass
class Running:
    url: str
    admin_token: str
    proc: subprocess.Popen[bytes]
    # Two nodes: the receivers' node (the senders use `url`), and every node's process.
    receive_url: str | None = None
    pids: list[int] | None = None

    @property
    def serving(self) -> list[int]:
        """Every process the server serves from (its nodes, their workers): what is measured."""
        return self.pids or [self.proc.pid]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def psql(sql: str) -> None:
    subprocess.run(["psql", PG_ADMIN, "-q", "-c", sql], check=True, capture_output=True)


@contextmanager
def fresh_database(tag: str) -> Iterator[str]:
    name = f"agenthub_bench_{tag}_{uuid.uuid4().hex[:6]}"
    psql(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    finally:
        psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited:\n{log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server not ready:\n{log.read_text()[-2000:]}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@contextmanager
def agenthub(database_url: str, workdir: Path, nodes: int = 1) -> Iterator[Running]:
    """AgentHub on `database_url`; with `nodes` > 1, that many nodes of one hub on a Redis of
    their own (same JWT secret), the first started (and migrated) before the others."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTHUB_", "POSTGRES_"))}
    env.update(
        UNLIMITED,
        DATABASE_URL=database_url,
        AGENTHUB_DATA_DIR=str(workdir / "data"),
        AGENTHUB_ENV="production",
        JWT_SECRET=secrets.token_urlsafe(48),
        LOG_LEVEL="warning",
        PORT=str(free_port()),
        HOST="127.0.0.1",
    )
    cli = [sys.executable, "-m", "agenthub"]
    subprocess.run(
        [*cli, "agents", "create", "bench-admin", "--admin"],
        env=env,
        check=True,
        capture_output=True,
    )
    token = subprocess.run(
        [*cli, "tokens", "issue", "bench-admin"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    with contextlib.ExitStack() as stack:
        if nodes > 1:
            env["REDIS_URL"] = stack.enter_context(redis_server(workdir / "redis"))
        started: list[tuple[str, subprocess.Popen[bytes]]] = []
        for n in range(nodes):
            node_env = {**env, "PORT": env["PORT"] if n == 0 else str(free_port())}
            log = workdir / f"agenthub-{n}.log"
            with log.open("wb") as out:
                proc = subprocess.Popen(
                    serve_command(cli, node_env), env=node_env, stdout=out, stderr=subprocess.STDOUT
                )
            stack.callback(stop, proc)
            url = f"http://127.0.0.1:{node_env['PORT']}"
            wait_ready(url, proc, log)
            started.append((url, proc))
        (url, proc), *others = started
        yield Running(
            url,
            token,
            proc,
            receive_url=others[-1][0] if others else None,
            pids=[pid for _, p in started for pid in process_tree(p.pid)],
        )


def serve_command(cli: list[str], env: dict[str, str]) -> list[str]:
    """`agenthub serve`, or the command in BENCH_SERVE: the same app under another ASGI server,
    for the experiments that compare them, e.g.
    `granian --interface asgi --factory --host {host} --port {port} agenthub.server:reloadable_app`
    ({host} and {port} are the node's)."""
    template = os.environ.get("BENCH_SERVE", "").strip()
    if not template:
        return [*cli, "serve"]
    return shlex.split(template.format(host=env["HOST"], port=env["PORT"]))


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants: a server that serves from worker processes is measured whole."""
    pids, i = [pid], 0
    while i < len(pids):
        for task in Path(f"/proc/{pids[i]}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                pids += [int(c) for c in task.read_text().split()]
        i += 1
    return pids


@contextmanager
def redis_server(workdir: Path) -> Iterator[str]:
    """A `redis-server` of the run's own, without persistence (nothing shared, nothing kept)."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise SystemExit(
            "the two-node rows need redis-server (Debian: apt-get install redis-server)"
        )
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            done = subprocess.run(
                ["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True, check=False
            )
            if done.stdout.strip() == "PONG":
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.1)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop(proc)


def node_ref_source() -> Path | None:
    """The node-ref checkout named by AGENTHUB_NODE_REF, or None when there is none."""
    value = os.environ.get(NODE_REF_VAR, "").strip()
    if not value:
        return None
    path = Path(value).expanduser()
    return path if (path / "package.json").is_file() else None


def choose_targets(requested: str | None) -> tuple[list[str], str | None]:
    """The targets to run, and a sentence to say when node-ref is left out for want of it.

    Asked for explicitly (`--targets node-ref`) and absent is an error, not a silent skip."""
    keys = {"node-ref": TARGETS[0], "pg": TARGETS[1], "sqlite": TARGETS[2], "2nodes": TARGETS[3]}
    if requested:
        unknown = [k for k in requested.split(",") if k not in keys]
        if unknown:
            raise SystemExit(f"unknown target {unknown[0]!r}: choose from {', '.join(keys)}")
        targets = [keys[k] for k in requested.split(",")]
    else:
        targets = list(TARGETS)
    if TARGETS[0] not in targets or node_ref_source() is not None:
        return targets, None
    if requested:
        raise SystemExit(
            f"node-ref asked for, but {NODE_REF_VAR} does not name a node-ref checkout "
            "(a folder with package.json)"
        )
    return [t for t in targets if t != TARGETS[0]], (
        f"node-ref not found ({NODE_REF_VAR} unset or not a checkout): running AgentHub's own "
        f"rows only; set {NODE_REF_VAR}=/path/to/node-ref to compare with the seed's Node server"
    )


def need_redis(
    targets: list[str], requested: str | None, redis_server: str | None
) -> tuple[list[str], str | None]:
    """The two-node row needs `redis-server`: without it, the row is left out and said so, or,
    asked for explicitly (`--targets 2nodes`), an error before anything runs."""
    if TWO_NODES not in targets or redis_server:
        return targets, None
    if requested:
        raise SystemExit("the two-node row asked for, but redis-server is not installed")
    return [t for t in targets if t != TWO_NODES], (
        "redis-server not found: the two-node row is left out "
        "(Debian: apt-get install redis-server)"
    )


def node_ref_checkout() -> Path:
    """A writable copy of node-ref with its dependencies installed (cached between runs)."""
    node_ref_dir = node_ref_source()
    if node_ref_dir is None:
        raise SystemExit(f"{NODE_REF_VAR} does not name a node-ref checkout")
    digest = hashlib.sha256((node_ref_dir / "package-lock.json").read_bytes()).hexdigest()[:10]
    target = Path(os.environ.get("TMPDIR", "/tmp")) / f"agenthub-node-ref-{digest}"
    if not (target / "node_modules").is_dir():
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(node_ref_dir, target, ignore=shutil.ignore_patterns("node_modules"))
        for p in target.rglob("*"):
            p.chmod(p.stat().st_mode | 0o200)
        target.chmod(0o755)
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=target, check=True)
    return target


@contextmanager
def node_ref(database_url: str, workdir: Path) -> Iterator[Running]:
    home = node_ref_checkout()
    env = dict(os.environ)
    env.update(
        UNLIMITED,
        DATABASE_URL=database_url,
        JWT_SECRET=secrets.token_urlsafe(48),
        PORT=str(free_port()),
        HOST="127.0.0.1",
        LOG_LEVEL="warn",
        NODE_ENV="production",
    )
    token = subprocess.run(
        ["node", "src/seed.js"], cwd=home, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()
    log = workdir / "node-ref.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["node", "src/server.js"], cwd=home, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{env['PORT']}"
    try:
        wait_ready(url, proc, log)
        yield Running(url, token, proc)
    finally:
        stop(proc)


# ---------------------------------------------------------------- the matrix


TARGETS = (
    "node-ref (PostgreSQL)",
    "AgentHub (PostgreSQL)",
    "AgentHub (SQLite)",
    "AgentHub, 2 nodes (PostgreSQL)",
)
TWO_NODES = TARGETS[3]
# The settings the two-node row runs: what the targets compare (docs/BENCHMARKS.md).
TWO_NODE_SETTINGS = ("saturation", "paced")


def run_one(target: str, setting: Setting, workdir: Path) -> dict[str, Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    if target.startswith("AgentHub (SQLite)"):
        ctx = agenthub(f"sqlite:///{workdir / 'bench.db'}", workdir)
        return _measure(ctx, target, setting)
    with fresh_database("nr" if target.startswith("node") else "ah") as db:
        if target.startswith("node"):
            ctx = node_ref(db, workdir)
        else:
            ctx = agenthub(db, workdir, nodes=2 if target == TWO_NODES else 1)
        return _measure(ctx, target, setting)


def _measure(ctx: Any, target: str, setting: Setting) -> dict[str, Any]:
    label = f"[{target} / {setting.name}]"
    gen: Any = jsgen if setting.generator == "js" else loadgen
    with ctx as server:
        pids = server.serving
        if setting.plan is None:
            result: dict[str, Any] = gen.run_connections(
                server.url, server.admin_token, setting.sockets, 4, pids, label
            )
        elif server.receive_url is not None:
            # Two nodes (senders on A, receivers on B): the Python generator's split roles.
            result = loadgen.run_messages(
                server.url,
                server.admin_token,
                setting.plan,
                pids,
                label,
                receive_url=server.receive_url,
            )
        else:
            result = gen.run_messages(server.url, server.admin_token, setting.plan, pids, label)
    # On a shared machine latency says little: every figure carries the load it was taken under.
    result["load_average"] = " / ".join(Path("/proc/loadavg").read_text().split()[:3])
    return result


CONNECTION_FIGURES = (
    "connects_per_s",
    "connect_cpu_ms_per_socket",
    "connect_database_cpu_ms_per_socket",
    "connect_generator_cpu_ms_per_socket",
    "kb_per_socket",
    "idle_cpu_percent",
)


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One result for several runs of a setting: the run with the median delivery p99, its
    p50, p99 and server CPU replaced by the medians over all runs, and every run's figures
    kept under "runs" (latency on a 2-core box moves by tens of percent between runs).
    Runs of the connections setting: the medians of their rates, CPU and memory per socket."""
    if len(runs) == 1:
        return runs[0]
    if all("connects_per_s" in r for r in runs):
        return _median_connections(runs)
    if any("delivery_ms" not in r for r in runs):
        return runs[0]
    ordered = sorted(runs, key=lambda r: r["delivery_ms"]["99"])
    chosen = json.loads(json.dumps(ordered[len(ordered) // 2]))  # a copy
    chosen["delivery_ms"]["50"] = statistics.median(r["delivery_ms"]["50"] for r in runs)
    chosen["delivery_ms"]["99"] = statistics.median(r["delivery_ms"]["99"] for r in runs)
    chosen["cpu"]["server_s"] = statistics.median(r["cpu"]["server_s"] for r in runs)
    chosen["complete"] = all(r["complete"] for r in runs)
    chosen["runs"] = [
        {
            "p50_ms": r["delivery_ms"]["50"],
            "p99_ms": r["delivery_ms"]["99"],
            "server_cpu_s": r["cpu"]["server_s"],
            "complete": r["complete"],
        }
        for r in runs
    ]
    return chosen


def _median_connections(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ordered = sorted(runs, key=lambda r: r["connects_per_s"] or 0)
    chosen = json.loads(json.dumps(ordered[len(ordered) // 2]))  # a copy
    for key in CONNECTION_FIGURES:
        values = [r[key] for r in runs if r.get(key) is not None]
        chosen[key] = statistics.median(values) if values else None
    chosen["held"] = min(r["held"] for r in runs)
    chosen["failures"] = sum(r["failures"] for r in runs)
    chosen["runs"] = [{key: r.get(key) for key in CONNECTION_FIGURES} for r in runs]
    return chosen


def machine_facts() -> dict[str, str]:
    def out(*cmd: str) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.strip()
        except FileNotFoundError:
            return "not found"

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    # AgentHub's rows under another server than `agenthub serve` must say so.
    served = {"AgentHub served by": f"`{v}`"} if (v := os.environ.get("BENCH_SERVE")) else {}
    return {
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "memory": f"{int(mem) // 1024 // 1024} GiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "node": out("node", "--version"),
        "postgresql": out("psql", "--version"),
        "commit": out("git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load average at start (1, 5, 15 min)": load_average(),
    } | served


def load_average() -> str:
    """The machine's load (as `uptime` prints it): other work on the box shows here."""
    return ", ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small settings, to try the tooling")
    parser.add_argument("--only", help="comma-separated setting names")
    parser.add_argument("--targets", help="comma-separated: node-ref, pg, sqlite, 2nodes")
    parser.add_argument(
        "--generators",
        default=",".join(GENERATORS),
        help="comma-separated: js (official socket.io-client), python (bench/loadgen.py)",
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=3,
        help="runs of each message setting per target (alternating); medians are reported",
    )
    parser.add_argument("--out", default=str(ROOT / "docs" / "BENCHMARKS.md"))
    parser.add_argument("--json", dest="json_out", default=str(ROOT / "bench" / "results.json"))
    parser.add_argument(
        "--render",
        metavar="JSON",
        help="measure nothing: write --out again from a run's --json (after bench/EXPERIMENTS.md "
        "has changed)",
    )
    args = parser.parse_args()
    if args.render:
        saved = json.loads(Path(args.render).read_text())
        if missing := [
            k for k in ("facts", "results", "command", "elapsed", "quick") if k not in saved
        ]:
            raise SystemExit(f"{args.render} lacks {', '.join(missing)}: written by an older run?")
        every = with_generators(settings(saved["quick"]), list(GENERATORS))
        chosen = [s for s in every if s.name in saved["results"]]
        write_report(Path(args.out), saved, chosen)
        return
    chosen = settings(args.quick)
    if args.only:
        chosen = [s for s in chosen if s.name in args.only.split(",")]
    generators = args.generators.split(",")
    if unknown := [g for g in generators if g not in GENERATORS]:
        raise SystemExit(f"unknown generator {unknown[0]!r}: choose from {', '.join(GENERATORS)}")
    if "js" in generators and (why := jsgen.available()):
        raise SystemExit(f"the JavaScript generator cannot run: {why} (or --generators python)")
    chosen = with_generators(chosen, generators)
    targets, skipped = choose_targets(args.targets)
    if skipped:
        say(skipped)
    targets, skipped = need_redis(targets, args.targets, shutil.which("redis-server"))
    if skipped:
        say(skipped)
    facts = machine_facts()
    results: dict[str, dict[str, Any]] = {}
    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"agenthub-bench-{uuid.uuid4().hex[:6]}"
    started = time.time()
    for setting in chosen:
        results[setting.name] = {}
        runs: dict[str, list[dict[str, Any]]] = {}
        # The set-up rate moves by a tenth between runs here: the JS generator's connections
        # setting is repeated like the message settings (the Python one measures no rate).
        rounds = args.runs if setting.plan is not None or setting.generator == "js" else 1
        for n in range(rounds):  # the targets alternate within each round
            for target in targets:
                if target == TWO_NODES and setting.name not in TWO_NODE_SETTINGS:
                    continue
                got = run_one(
                    target, setting, work / setting.name / re.sub(r"\W+", "-", target) / str(n)
                )
                runs.setdefault(target, []).append(got)
                say(json.dumps({setting.name: {target: got}})[:400])
        for target, measured in runs.items():
            results[setting.name][target] = median_run(measured)
    facts["load average at end (1, 5, 15 min)"] = load_average()
    saved = {
        "facts": facts,
        "results": results,
        "command": " ".join(["python -m bench.matrix", *sys.argv[1:]]),
        "elapsed": time.time() - started,
        "quick": args.quick,
    }
    Path(args.json_out).write_text(json.dumps(saved, indent=2))
    write_report(Path(args.out), saved, chosen)
    say(f"wrote {args.out} and {args.json_out} in {saved['elapsed']:.0f}s")
    shutil.rmtree(work, ignore_errors=True)


def write_report(out: Path, saved: dict[str, Any], chosen: list[Setting]) -> None:
    from bench.search_inbox import kept_section  # its own section, written by its own run

    kept = kept_section(out)
    text = report.markdown(
        saved["facts"], saved["results"], chosen, saved["command"], saved["elapsed"]
    )
    out.write_text(text + kept)


if __name__ == "__main__":
    main()

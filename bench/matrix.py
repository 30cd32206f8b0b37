"""The standard benchmark matrix, in one invocation: node-ref and AgentHub on the same
PostgreSQL, then AgentHub on SQLite, each setting on a fresh server and database; writes
docs/BENCHMARKS.md with the tables and the ratios against the targets.

    make bench                      # the whole matrix (node-ref only with AGENTHUB_NODE_REF)
    python -m bench.matrix --quick  # a smaller matrix, to try the tooling
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import secrets
import shutil
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

from bench import loadgen, report
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
        Setting("connections", None, sockets=5000),
    ]


# ---------------------------------------------------------------- servers


@dataclass
class Running:
    url: str
    admin_token: str
    proc: subprocess.Popen[bytes]


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
def agenthub(database_url: str, workdir: Path) -> Iterator[Running]:
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
    log = workdir / "agenthub.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([*cli, "serve"], env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{env['PORT']}"
    try:
        wait_ready(url, proc, log)
        yield Running(url, token, proc)
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
    keys = {"node-ref": TARGETS[0], "pg": TARGETS[1], "sqlite": TARGETS[2]}
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


TARGETS = ("node-ref (PostgreSQL)", "AgentHub (PostgreSQL)", "AgentHub (SQLite)")


def run_one(target: str, setting: Setting, workdir: Path) -> dict[str, Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    if target.startswith("AgentHub (SQLite)"):
        ctx = agenthub(f"sqlite:///{workdir / 'bench.db'}", workdir)
        return _measure(ctx, target, setting)
    with fresh_database("nr" if target.startswith("node") else "ah") as db:
        ctx = node_ref(db, workdir) if target.startswith("node") else agenthub(db, workdir)
        return _measure(ctx, target, setting)


def _measure(ctx: Any, target: str, setting: Setting) -> dict[str, Any]:
    label = f"[{target} / {setting.name}]"
    with ctx as server:
        if setting.plan is None:
            return loadgen.run_connections(
                server.url, server.admin_token, setting.sockets, 4, server.proc.pid, label
            )
        return loadgen.run_messages(
            server.url, server.admin_token, setting.plan, server.proc.pid, label
        )


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
    return {
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "memory": f"{int(mem) // 1024 // 1024} GiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "node": out("node", "--version"),
        "postgresql": out("psql", "--version"),
        "commit": out("git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small settings, to try the tooling")
    parser.add_argument("--only", help="comma-separated setting names")
    parser.add_argument("--targets", help="comma-separated: node-ref, pg, sqlite")
    parser.add_argument("--out", default=str(ROOT / "docs" / "BENCHMARKS.md"))
    parser.add_argument("--json", dest="json_out", default=str(ROOT / "bench" / "results.json"))
    args = parser.parse_args()
    chosen = settings(args.quick)
    if args.only:
        chosen = [s for s in chosen if s.name in args.only.split(",")]
    targets, skipped = choose_targets(args.targets)
    if skipped:
        say(skipped)
    facts = machine_facts()
    results: dict[str, dict[str, Any]] = {}
    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"agenthub-bench-{uuid.uuid4().hex[:6]}"
    started = time.time()
    for setting in chosen:
        results[setting.name] = {}
        for target in targets:
            results[setting.name][target] = run_one(
                target, setting, work / setting.name / target[:8]
            )
            say(json.dumps({setting.name: {target: results[setting.name][target]}})[:400])
    elapsed = time.time() - started
    command = "python -m bench.matrix" + (" --quick" if args.quick else "")
    Path(args.json_out).write_text(json.dumps({"facts": facts, "results": results}, indent=2))
    from bench.search_inbox import kept_section  # its own section, written by its own run

    kept = kept_section(Path(args.out))
    Path(args.out).write_text(report.markdown(facts, results, chosen, command, elapsed) + kept)
    say(f"wrote {args.out} and {args.json_out} in {elapsed:.0f}s")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

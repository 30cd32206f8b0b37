"""Real databases for the tests: SQLite files, fresh PostgreSQL databases, throwaway clusters."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.support import PG_ADMIN_URL, free_port

PG_BIN = Path(os.environ.get("AGENTHUB_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))


def pg_reachable() -> bool:
    async def probe() -> bool:
        try:
            conn = await asyncpg.connect(PG_ADMIN_URL, timeout=3)
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return False
        await conn.close()
        return True

    return asyncio.run(probe())


def need_pg(why: str) -> None:
    """Skip the test when PostgreSQL is unreachable, or fail under AGENTHUB_REQUIRE_PG=1."""
    if not pg_reachable():
        if os.environ.get("AGENTHUB_REQUIRE_PG") == "1":
            pytest.fail("AGENTHUB_REQUIRE_PG=1 but PostgreSQL is not reachable")
        pytest.skip(f"{why}, which is not reachable")


def _with_db(url: str, name: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + name


@contextlib.contextmanager
def fresh_pg_database(tag: str = "t") -> Iterator[str]:
    """A database of its own for this run, dropped afterwards; yields its plain URL."""
    name = f"agenthub_test_{tag}_{os.getpid()}_{uuid.uuid4().hex[:8]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield _with_db(PG_ADMIN_URL, name)
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def query(database_url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Read rows straight from the database, to check what a request stored (or did not)."""

    async def run() -> list[tuple[Any, ...]]:
        if database_url.startswith("sqlite"):
            import aiosqlite

            async with aiosqlite.connect(database_url.split("///", 1)[1]) as conn:
                cur = await conn.execute(sql.replace("$1", "?").replace("$2", "?"), args)
                return [tuple(r) for r in await cur.fetchall()]
        conn = await asyncpg.connect(database_url, timeout=5)
        try:
            return [tuple(r) for r in await conn.fetch(sql, *args)]
        finally:
            await conn.close()

    return _run_sync(run)


def _run_sync(factory: Any) -> Any:
    """asyncio.run(factory()), also from inside a running loop (an async test): on a thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(factory())).result(timeout=60)


class ThrowawayCluster:
    """A PostgreSQL cluster of the test's own (never the shared one), to stop and start."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "pgdata"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 60) -> None:
        cmd = [str(PG_BIN / args[0]), *args[1:]]
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=timeout)

    def init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", opts, "-l", str(self.root / "log"), "-w", "start"
        )

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def wait_accepting(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (
                subprocess.run(
                    [str(PG_BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                    capture_output=True,
                    check=False,
                ).returncode
                == 0
            ):
                return
            time.sleep(0.2)
        raise RuntimeError("throwaway cluster did not start")


def execute(database_url: str, sql: str, *args: Any) -> None:
    """Change rows straight in the database, committed: to set up data the API refuses to
    create (rows from before a validation rule existed)."""

    async def run() -> None:
        if database_url.startswith("sqlite"):
            import aiosqlite

            async with aiosqlite.connect(database_url.split("///", 1)[1], timeout=30) as conn:
                await conn.execute(sql.replace("$1", "?").replace("$2", "?"), args)
                await conn.commit()
            return
        conn = await asyncpg.connect(database_url, timeout=5)
        try:
            await conn.execute(sql, *args)
        finally:
            await conn.close()

    _run_sync(run)

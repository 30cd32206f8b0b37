"""`agenthub backup` and `agenthub restore` end to end, on each backend, with the real tools.

The backup is taken while senders keep posting to a real server; the restored database is
served by a real server again, and what it holds is read back over the API: every message
acknowledged before the backup started, gapless seqs, and a next send that continues each
room's seq. The refusals (a target holding data, a backup of the other kind, a damaged file)
are one line on stderr and leave the target exactly as it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import PG_OK
from tests.databases import fresh_pg_database, query
from tests.support import Agent, Server, base_env, cli, start_server, stop_process

MAGIC = {"sqlite": b"SQLite format 3\x00", "postgres": b"PGDMP"}
PRELOAD = 40  # messages acked before the backup starts, at least
MAX_SENDS_PER_SENDER = 20_000  # bounds each sender's loop; the stop event ends it long before
WAIT_S = 120


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return result


def refused(result: subprocess.CompletedProcess[str]) -> str:
    """A refused command: exit 1, one `error:` sentence on stderr, no traceback."""
    assert result.returncode == 1, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


@pytest.fixture
def fresh(backend: str, tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """Makes empty databases of this test's own on `backend`: fresh("tag") -> its URL."""
    with contextlib.ExitStack() as stack:

        def make(tag: str) -> str:
            if backend == "sqlite":
                return f"sqlite:///{tmp_path / f'{tag}-{uuid.uuid4().hex[:6]}.db'}"
            return stack.enter_context(fresh_pg_database(tag))

        yield make


def env_for(url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    return base_env(url, tmp_path / f"data-{uuid.uuid4().hex[:6]}", **extra)


def snapshot(url: str) -> dict[str, Any]:
    """Everything a restore could change, as plain values; a missing SQLite file is None."""
    if url.startswith("sqlite"):
        path = Path(url.split("///", 1)[1])
        if not path.exists():
            return {"file": None}
    else:
        tables = query(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        if not tables:
            return {"tables": []}
    return {
        "agents": sorted(r[0] for r in query(url, "SELECT name FROM agents")),
        "rooms": sorted(tuple(r) for r in query(url, "SELECT slug, last_seq FROM rooms")),
        "messages": query(url, "SELECT count(*) FROM messages")[0][0],
        "tokens": query(url, "SELECT count(*) FROM api_tokens")[0][0],
    }


class Senders:
    """Threads posting to rooms over REST until stopped; every 201 is recorded in ack order."""

    def __init__(self, server: Server, plan: list[tuple[Agent, str]]) -> None:
        self.base_url = server.base_url
        self.plan = plan
        self.acked: list[tuple[str, int, str]] = []  # (room, seq, body)
        self.failures: list[str] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._send, args=(agent, room, n), daemon=True)
            for n, (agent, room) in enumerate(plan)
        ]

    def _send(self, agent: Agent, room: str, n: int) -> None:
        headers = {"Authorization": f"Bearer {agent.jwt}"}
        with httpx.Client(base_url=self.base_url, timeout=30) as http:
            for i in range(MAX_SENDS_PER_SENDER):
                if self.stop.is_set():
                    return
                body = f"sender {n} message {i}"
                try:
                    r = http.post(
                        f"/api/v1/rooms/{room}/messages", json={"body": body}, headers=headers
                    )
                except httpx.HTTPError as exc:
                    self.failures.append(f"{room}: {type(exc).__name__}")
                    return
                if r.status_code != 201:
                    self.failures.append(f"{room}: {r.status_code} {r.text[:200]}")
                    return
                with self.lock:
                    self.acked.append((room, r.json()["seq"], body))

    def count(self) -> int:
        with self.lock:
            return len(self.acked)

    def wait_for(self, n: int) -> None:
        for _ in range(WAIT_S * 10):
            if self.count() >= n or self.failures:
                break
            self.stop.wait(0.1)
        assert not self.failures, self.failures
        assert self.count() >= n, f"only {self.count()} sends acked"

    def __enter__(self) -> Senders:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(60)
        assert not any(t.is_alive() for t in self.threads)


def history(agent: Agent, room: str) -> list[dict[str, Any]]:
    """Every message of the room, oldest first, by catching up with afterSeq."""
    out: list[dict[str, Any]] = []
    for _ in range(10_000):
        after = out[-1]["seq"] if out else 0
        r = agent.get(f"/api/v1/rooms/{room}/messages", params={"afterSeq": after, "limit": 200})
        assert r.status_code == 200, r.text
        page = r.json()["messages"]
        if not page:
            return out
        out.extend(page)
    raise AssertionError("history did not end")


def pg_dump_spy(tmp_path: Path) -> tuple[Path, Path]:
    """A pg_dump first on PATH that records its arguments and whether PGPASSWORD was set,
    then runs the real one (the newest installed, which AgentHub would pick anyway)."""
    from agenthub.db import pg_tools

    real = asyncio.run(pg_tools.find("pg_dump")).path
    folder = tmp_path / "spy-bin"
    folder.mkdir()
    log = tmp_path / "pg_dump.args"
    spy = folder / "pg_dump"
    spy.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$@" >> "{log}"\n'
        f'echo "PGPASSWORD=${{PGPASSWORD:+set}}" >> "{log}"\n'
        f'exec "{real}" "$@"\n'
    )
    spy.chmod(0o755)
    return folder, log


def test_backup_under_write_load_restores_every_acked_message_and_seqs_continue(
    backend: str, database_url: str, fresh: Callable[[str], str], tmp_path: Path
) -> None:
    source = start_server(backend, database_url, tmp_path / "source-data")
    try:
        alice, bob = source.new_agent(), source.new_agent()
        rooms = [source.new_room(alice, bob)["slug"] for _ in range(2)]
        plan = [(alice, rooms[0]), (bob, rooms[0]), (alice, rooms[1]), (bob, rooms[1])]

        # The backup's own environment; on PostgreSQL its URL carries a password (trust
        # authentication ignores it) that must never reach a command line or an output.
        secret: str | None = None
        source_url = database_url
        extra: dict[str, str] = {}
        if backend == "postgres":
            parsed = make_url(database_url)
            secret = parsed.password or f"pw-{uuid.uuid4().hex}"
            source_url = parsed.set(password=secret).render_as_string(hide_password=False)
            spy_bin, spy_log = pg_dump_spy(tmp_path)
            extra["PATH"] = f"{spy_bin}{os.pathsep}{os.environ['PATH']}"
        backup_env = env_for(source_url, tmp_path, **extra)
        file = tmp_path / "agenthub.backup"

        with Senders(source, plan) as senders:
            senders.wait_for(PRELOAD)
            acked_before = senders.count()
            made = ok(cli(backup_env, "backup", str(file)))
            acked_during = senders.count()
        assert not senders.failures, senders.failures
        # The backup ran while messages were being stored, not after the load had stopped.
        assert acked_during > acked_before, "no send was acked while the backup ran"
    finally:
        source.api.close()
        stop_process(source.proc)

    assert file.read_bytes().startswith(MAGIC[backend])
    assert stat.S_IMODE(file.stat().st_mode) == 0o600  # it holds the tokens' hashes
    if secret is not None:
        assert secret not in made.stdout + made.stderr
        spied = spy_log.read_text().splitlines()
        assert "--format=custom" in spied, spied
        assert not any(secret in arg for arg in spied), "the password was on pg_dump's command line"
        assert "PGPASSWORD=set" in spied

    target = fresh("restored")
    restored = ok(cli(env_for(target, tmp_path), "restore", str(file)))
    assert "restored" in restored.stdout

    server = start_server(backend, target, tmp_path / "restored-data")
    try:
        reader = Agent(alice.id, alice.name, "agent", alice.token, "", server.api)
        reader.jwt = server.api.login(alice.token)  # the restored API token still works
        before = {(room, seq): body for room, seq, body in senders.acked[:acked_before]}
        for room in rooms:
            stored = history(reader, room)
            seqs = [m["seq"] for m in stored]
            assert seqs == list(range(1, len(seqs) + 1)), f"{room}: seqs not gapless"
            by_seq = {m["seq"]: m["body"] for m in stored}
            for (acked_room, seq), body in before.items():
                if acked_room == room:
                    assert by_seq.get(seq) == body, f"{room} #{seq} acked before the backup"
            # Anything stored is what the sender was told it stored under that seq.
            for acked_room, seq, body in senders.acked:
                if acked_room == room and seq in by_seq:
                    assert by_seq[seq] == body

            r = reader.post(f"/api/v1/rooms/{room}/messages", {"body": "after the restore"})
            assert r.status_code == 201, r.text
            assert r.json()["seq"] == len(seqs) + 1
            again = [m["seq"] for m in history(reader, room)]
            assert again == list(range(1, len(seqs) + 2))
        assert query(target, "SELECT version_num FROM alembic_version") == query(
            database_url, "SELECT version_num FROM alembic_version"
        )
    finally:
        server.api.close()
        stop_process(server.proc)


def seeded_backup(fresh: Callable[[str], str], tmp_path: Path) -> tuple[Path, str]:
    """A backup of a database holding the seed (no server needed), and that database's URL."""
    url = fresh("seeded")
    env = env_for(url, tmp_path)
    ok(cli(env, "seed"))
    file = tmp_path / f"seed-{uuid.uuid4().hex[:6]}.backup"
    ok(cli(env, "backup", str(file)))
    return file, url


def holding_data(fresh: Callable[[str], str], tmp_path: Path) -> tuple[str, dict[str, str]]:
    url = fresh("occupied")
    env = env_for(url, tmp_path)
    ok(cli(env, "agents", "create", "keeper"))
    return url, env


def test_restore_refuses_a_target_that_holds_data_unless_forced(
    fresh: Callable[[str], str], tmp_path: Path
) -> None:
    file, seeded = seeded_backup(fresh, tmp_path)
    target, env = holding_data(fresh, tmp_path)
    before = snapshot(target)

    line = refused(cli(env, "restore", str(file)))
    assert "not empty" in line
    assert "1 agent," in line  # says what it would overwrite
    assert "--force" in line
    assert snapshot(target) == before

    ok(cli(env, "restore", str(file), "--force"))
    after = snapshot(target)
    assert after == snapshot(seeded)
    assert "keeper" not in after["agents"]


def test_restore_into_a_migrated_empty_database_is_not_refused(
    fresh: Callable[[str], str], tmp_path: Path
) -> None:
    file, seeded = seeded_backup(fresh, tmp_path)
    target = fresh("migrated")
    env = env_for(target, tmp_path)
    ok(cli(env, "migrate"))
    ok(cli(env, "restore", str(file)))
    assert snapshot(target) == snapshot(seeded)


def other_kind_backup(backend: str, tmp_path: Path) -> Path:
    """A real `agenthub backup` of the backend `backend` does not use."""
    file = tmp_path / "other-kind.backup"
    if backend == "postgres":
        env = env_for(f"sqlite:///{tmp_path / 'other.db'}", tmp_path)
        ok(cli(env, "migrate"))
        ok(cli(env, "backup", str(file)))
        return file
    if not PG_OK:
        pytest.skip("a PostgreSQL backup needs PostgreSQL")
    with fresh_pg_database("other") as url:
        env = env_for(url, tmp_path)
        ok(cli(env, "migrate"))
        ok(cli(env, "backup", str(file)))
    return file


def test_restore_refuses_a_backup_of_the_other_backend(
    backend: str, fresh: Callable[[str], str], tmp_path: Path
) -> None:
    file = other_kind_backup(backend, tmp_path)
    for target, env in [
        (empty := fresh("empty"), env_for(empty, tmp_path)),
        holding_data(fresh, tmp_path),
    ]:
        before = snapshot(target)
        line = refused(cli(env, "restore", str(file), "--force"))
        theirs, ours = (
            ("SQLite", "PostgreSQL") if backend == "postgres" else ("PostgreSQL", "SQLite")
        )
        assert f"is a {theirs} backup" in line
        assert f"uses {ours}" in line
        assert snapshot(target) == before


def damaged_files(file: Path, tmp_path: Path) -> dict[str, Path]:
    data = file.read_bytes()
    out = {
        "garbage": os.urandom(len(data)),
        "empty": b"",
        "half": data[: len(data) // 2],
        "header only": data[:100],
        "all but the last 4 KiB": data[:-4096],
    }
    paths = {}
    for name, content in out.items():
        path = tmp_path / f"damaged-{name.replace(' ', '-')}"
        path.write_bytes(content)
        paths[name] = path
    return paths


def test_restore_refuses_a_garbage_or_truncated_file_and_changes_nothing(
    fresh: Callable[[str], str], tmp_path: Path
) -> None:
    file, _ = seeded_backup(fresh, tmp_path)
    occupied, occupied_env = holding_data(fresh, tmp_path)
    empty = fresh("empty")
    empty_env = env_for(empty, tmp_path)
    for name, damaged in damaged_files(file, tmp_path).items():
        # Forced onto a database holding data: the file is refused before it is touched.
        targets = [(occupied, occupied_env)]
        if name in ("garbage", "half"):
            targets.append((empty, empty_env))
        for target, env in targets:
            before = snapshot(target)
            line = refused(cli(env, "restore", str(damaged), "--force"))
            assert "not an AgentHub backup" in line or "damaged or incomplete" in line, (
                name,
                line,
            )
            assert snapshot(target) == before, name

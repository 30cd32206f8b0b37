"""Back up and restore the database with each backend's own tools: `agenthub backup/restore`.

SQLite: the online backup API (`sqlite3.Connection.backup`) copies every page in one step,
inside one read transaction, so the copy is the database as of one commit while the server
keeps writing (in WAL mode a reader does not block writers). The backup is a plain SQLite file.
PostgreSQL: `pg_dump --format=custom` reads everything in one snapshot, and `pg_restore` loads
it in one transaction.

Either way `rooms.last_seq` comes from the same snapshot as the messages, so after a restore a
room's next message gets its last stored seq + 1: no gap, no seq used twice.

A restore reads the whole backup file before it touches the target, refuses a target that
holds data unless forced, and applies the migrations afterwards: the backup may come from an
older AgentHub, never from a newer one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import quote

import sqlalchemy as sa
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url

from agenthub.db import migrate as migrations
from agenthub.db import pg_tools
from agenthub.db.engine import Database
from agenthub.errors import AppError

Kind = Literal["sqlite", "postgresql"]
KIND_NAMES: dict[Kind, str] = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
# The first bytes of each format: the SQLite file header, and pg_dump's custom-format archive.
MAGIC: dict[Kind, bytes] = {"sqlite": b"SQLite format 3\x00", "postgresql": b"PGDMP"}
FORMAT_NAMES: dict[Kind, str] = {
    "sqlite": "a SQLite database",
    "postgresql": "a pg_dump custom-format archive",
}
SQLITE_BUSY_TIMEOUT_MS = 10_000


class BackupError(AppError):
    """A backup or restore refused or failed; the message is one sentence for the operator."""


@dataclass(frozen=True)
class Summary:
    backend: str
    file: str
    revision: str | None = None
    agents: int | None = None
    rooms: int | None = None
    messages: int | None = None


def backend_of(url: str) -> Kind:
    return "sqlite" if make_url(url).get_backend_name() == "sqlite" else "postgresql"


def file_kind(path: Path) -> Kind | None:
    """Which kind of backup `path` looks like, by its first bytes; None for anything else."""
    with path.open("rb") as f:
        head = f.read(16)
    return next((kind for kind, magic in MAGIC.items() if head.startswith(magic)), None)


# --- backup ---------------------------------------------------------------------------------


async def backup(db: Database, url: str, dest: Path) -> Summary:
    """Write a consistent copy of the database at `url` to `dest` (replaced atomically)."""
    kind = backend_of(url)
    dest = _writable(dest)
    if kind == "sqlite":
        await asyncio.to_thread(_sqlite_backup, _sqlite_path(url), dest)
        return await asyncio.to_thread(_sqlite_summary, dest)
    await _pg_backup(db, url, dest)
    return Summary(backend=KIND_NAMES[kind], file=str(dest))


def _writable(dest: Path) -> Path:
    dest = dest.expanduser().absolute()
    if not dest.parent.is_dir():
        raise BackupError(f"cannot write {dest}: folder {dest.parent} does not exist")
    return dest


@contextlib.contextmanager
def _staged(dest: Path) -> Iterator[Path]:
    """A private (0600: the backup holds token hashes) file beside `dest` that replaces it
    only when the block succeeds, so a failed backup never leaves half a file behind."""
    fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".partial")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupError("DATABASE_URL names no SQLite file to back up or restore")
    return Path(database).expanduser().absolute()


def _sqlite_readonly(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True)
    conn.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    return conn


def _sqlite_backup(source: Path, dest: Path) -> None:
    if not source.is_file():
        raise BackupError(f"no SQLite database at {source}")
    if dest.exists() and dest.samefile(source):
        raise BackupError(f"{dest} is the database itself: back it up to another file")
    with _staged(dest) as tmp:
        src = _sqlite_readonly(source)
        out = sqlite3.connect(tmp)
        try:
            src.backup(out)  # pages=-1: all pages in one step, one snapshot
            # One self-contained file, not a database that expects a -wal beside it.
            out.execute("PRAGMA journal_mode=DELETE")
        except sqlite3.Error as exc:
            raise BackupError(f"cannot back up {source}: {exc}") from None
        finally:
            out.close()
            src.close()


def _sqlite_summary(dest: Path) -> Summary:
    """What the backup holds, read back from the file itself."""
    conn = _sqlite_readonly(dest)
    try:
        counts = {
            table: int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608
            for table in ("agents", "rooms", "messages")
        }
        revision = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error:  # a database AgentHub never migrated: a copy all the same
        return Summary(backend="SQLite", file=str(dest))
    finally:
        conn.close()
    return Summary(
        backend="SQLite",
        file=str(dest),
        revision=str(revision[0]) if revision else None,
        **counts,
    )


async def _pg_backup(db: Database, url: str, dest: Path) -> None:
    conn = pg_tools.connection(url)
    tool = await _tool("pg_dump")
    async with db.read() as c:
        server = int((await c.execute(sa.text("SHOW server_version_num"))).scalar_one()) // 10000
    if tool.major < server:
        raise BackupError(
            f"pg_dump {tool.major} ({tool.path}) cannot dump a PostgreSQL {server} server: "
            f"install the version {server} client tools (postgresql-client-{server})"
        )
    with _staged(dest) as tmp:
        try:
            await pg_tools.run(tool, ["--format=custom", f"--file={tmp}", conn.dbname_arg], conn)
        except pg_tools.ToolError as exc:
            raise BackupError(str(exc)) from None


async def _tool(name: str) -> pg_tools.Tool:
    try:
        return await pg_tools.find(name)
    except pg_tools.ToolError as exc:
        raise BackupError(str(exc)) from None


# --- restore --------------------------------------------------------------------------------


async def restore(db: Database, url: str, src: Path, *, force: bool) -> Summary:
    """Load the backup `src` into the database at `url`, then migrate it to this version."""
    kind = backend_of(url)
    src, found = _readable(src)
    if found is None:
        raise BackupError(
            f"{src} is not an AgentHub backup: it is neither a SQLite database nor a pg_dump "
            "custom-format archive"
        )
    if found != kind:
        raise BackupError(
            f"{src} is a {KIND_NAMES[found]} backup ({FORMAT_NAMES[found]}) but this AgentHub "
            f"uses {KIND_NAMES[kind]}: restore it with DATABASE_URL pointing at a "
            f"{KIND_NAMES[found]} database"
        )
    if kind == "sqlite":
        target = _sqlite_path(url)
        revision = await asyncio.to_thread(_sqlite_revision, src)
        _check_revision(src, revision)
        if target.exists() and target.samefile(src):
            raise BackupError(f"{src} is the database itself: restore from another file")
        if target.exists():
            await _refuse_unless_empty(db, str(target), force)
        await asyncio.to_thread(_sqlite_restore, src, target)
    else:
        conn = pg_tools.connection(url)
        tool = await _tool("pg_restore")
        revision = await _pg_revision(tool, src)
        _check_revision(src, revision)
        await _pg_read_all(tool, src)
        await _refuse_unless_empty(db, conn.label, force)
        await _pg_drop_tables(db)
        try:
            await pg_tools.run(
                tool,
                [
                    "--single-transaction",
                    "--exit-on-error",
                    "--no-owner",
                    "--no-privileges",
                    conn.dbname_arg,
                    str(src),
                ],
                conn,
            )
        except pg_tools.ToolError as exc:
            raise BackupError(f"restore failed, nothing was loaded: {exc}") from None
    _, after = await migrations.upgrade(db)
    counts = await _counts(db)
    return Summary(
        backend=KIND_NAMES[kind],
        file=str(src),
        revision=after,
        agents=counts.get("agents", 0),
        rooms=counts.get("rooms", 0),
        messages=counts.get("messages", 0),
    )


def _readable(src: Path) -> tuple[Path, Kind | None]:
    src = src.expanduser().absolute()
    if not src.is_file():
        raise BackupError(f"no backup file at {src}")
    try:
        return src, file_kind(src)
    except OSError as exc:
        raise BackupError(f"cannot read {src}: {exc.strerror}") from None


def _known_revisions() -> set[str]:
    script = ScriptDirectory.from_config(migrations.alembic_config())
    return {rev.revision for rev in script.walk_revisions()}


def _check_revision(src: Path, revision: str | None) -> None:
    if revision is None:
        raise BackupError(f"{src} is not an AgentHub backup: it has no schema revision")
    if revision not in _known_revisions():
        raise BackupError(
            f"{src} comes from a newer AgentHub (schema revision {revision}): restore it with "
            "that version or a later one"
        )


def _sqlite_revision(src: Path) -> str | None:
    """Read the whole file (quick_check visits every page), then its Alembic revision."""
    try:
        conn = _sqlite_readonly(src)
        try:
            problems = [row[0] for row in conn.execute("PRAGMA quick_check")]
            if problems != ["ok"]:
                raise BackupError(f"{src} is damaged or incomplete: {problems[0]}")
            has_version = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
            ).fetchone()
            if not has_version:
                return None
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
            return str(row[0]) if row else None
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise BackupError(f"{src} is damaged or incomplete: {exc}") from None


def _sqlite_restore(src: Path, target: Path) -> None:
    """Copy with the backup API too: one write transaction on the target, so a failure leaves
    it as it was, and no stale -wal beside it can outlive the copy."""
    target.parent.mkdir(parents=True, exist_ok=True)
    source = _sqlite_readonly(src)
    out = sqlite3.connect(target)
    try:
        out.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        source.backup(out)
    except sqlite3.Error as exc:
        raise BackupError(f"cannot restore into {target}: {exc}") from None
    finally:
        out.close()
        source.close()


async def _pg_revision(tool: pg_tools.Tool, src: Path) -> str | None:
    """The Alembic revision stored in the archive: the data of its alembic_version table."""
    try:
        script = await pg_tools.run(
            tool, ["--data-only", "--table=alembic_version", "--file=-", str(src)], None
        )
    except pg_tools.ToolError as exc:
        raise BackupError(f"{src} is damaged or incomplete: {exc}") from None
    lines = iter(script.splitlines())
    for line in lines:
        if line.startswith("COPY ") and "alembic_version" in line:
            first = next(lines, "\\.")
            return None if first == "\\." else first.strip()
    return None


async def _pg_read_all(tool: pg_tools.Tool, src: Path) -> None:
    """Decode the whole archive without loading it, so a truncated file is refused before
    anything in the target changes."""
    try:
        await pg_tools.run(tool, [f"--file={os.devnull}", str(src)], None)
    except pg_tools.ToolError as exc:
        raise BackupError(f"{src} is damaged or incomplete: {exc}") from None


async def _counts(db: Database) -> dict[str, int]:
    """Rows per table of the target's own schema, for the tables that hold any."""
    async with db.read() as conn:
        tables = await conn.run_sync(lambda c: sa.inspect(c).get_table_names())
        counts: dict[str, int] = {}
        for table in tables:
            # SQLite's full-text index (FTS5 and its shadow tables) only mirrors `messages`.
            if table == "alembic_version" or table.startswith("messages_fts"):
                continue
            query = sa.select(sa.func.count()).select_from(sa.table(table))
            rows = int((await conn.execute(query)).scalar_one())
            if rows:
                counts[table] = rows
    return counts


async def _refuse_unless_empty(db: Database, label: str, force: bool) -> None:
    counts = await _counts(db)
    if not counts or force:
        return
    main = [_plural(counts.get(t, 0), t) for t in ("agents", "rooms", "messages")]
    others = sorted(set(counts) - {"agents", "rooms", "messages"})
    held = ", ".join(main[:-1]) + f" and {main[-1]}"
    if others:
        held += f" (and rows in {', '.join(others)})"
    raise BackupError(
        f"the target database {label} is not empty: it holds {held}; restoring would replace "
        "all of it. Restore into an empty database, or stop AgentHub and add --force to "
        "overwrite it"
    )


def _plural(n: int, table: str) -> str:
    return f"{n} {table}" if n != 1 else f"1 {table.removesuffix('s')}"


async def _pg_drop_tables(db: Database) -> None:
    """Empty the target's schema (tables only a migration made, or the data --force replaces):
    pg_restore creates every table, and function, itself."""
    async with db.write() as conn:
        rows = await conn.execute(
            sa.text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
        )
        tables = [str(r[0]) for r in rows]
        if tables:
            quoted = ", ".join(conn.dialect.identifier_preparer.quote(t) for t in tables)
            await conn.execute(sa.text(f"DROP TABLE {quoted} CASCADE"))
        # The migrations' own function (0004, the search index's): pg_restore creates it too.
        await conn.execute(sa.text("DROP FUNCTION IF EXISTS agenthub_search_text(text)"))

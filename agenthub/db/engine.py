"""Engines, connections and transactions, the same interface on PostgreSQL and SQLite.

`Database.read()` hands out a connection for queries; `Database.write()` a transaction that
commits on success, with `on_commit(conn, callback)` for what must happen only once the change
is durable (announcements): run after COMMIT, dropped on rollback. Connection-level failures
come out as `Unavailable` (503), so callers never see a driver exception for an unreachable
database.

SQLite allows one writer at a time. Rather than let concurrent writers collide on the file
lock ("database is locked"), this process queues its own write transactions on an asyncio
lock and starts each with BEGIN IMMEDIATE; other processes (the CLI) wait on busy_timeout.
On PostgreSQL writers run concurrently and row locks order them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import QueuePool
from sqlalchemy.util import greenlet_spawn

from agenthub.errors import Unavailable

log = logging.getLogger("agenthub.db")

SQLITE_BUSY_TIMEOUT_MS = 10_000
PG_CONNECT_TIMEOUT_S = 5
PG_COMMAND_TIMEOUT_S = 15
POOL_TIMEOUT_S = 10
# Twenty kept connections rather than ten plus ten overflow ones: overflow connections are
# closed when checked in, so a burst of reads (e.g. many members' memberships expiring in the
# same second, rooms/membership.py) paid a connect, TLS attempt and close each (ADR 0010).
PG_POOL_SIZE = 20
PG_MAX_OVERFLOW = 0
# A pooled connection idle for longer than this is pinged before use (SQLAlchemy's pre-ping,
# three round trips on asyncpg); one used more recently is handed out as it is (ADR 0010).
PING_AFTER_IDLE_S = 1.0
SQLITE_READ_POOL_SIZE = 4
# Connections kept between driver reads (`_Spare`): with one, 58 % of the handshakes' reads
# found it free while sockets connected as fast as they could; a few more cover the bursts.
KEPT_FOR_READS = 3


def is_unavailable(exc: BaseException) -> bool:
    """Whether an exception means the database cannot be reached (as opposed to a bad query)."""
    if isinstance(exc, sa.exc.IntegrityError):
        return False
    if isinstance(exc, sa.exc.DBAPIError):
        return exc.connection_invalidated or isinstance(
            exc, sa.exc.OperationalError | sa.exc.InterfaceError
        )
    return isinstance(exc, OSError | TimeoutError | sa.exc.TimeoutError)


def _driver_unavailable(exc: BaseException) -> bool:
    """The same as is_unavailable, for errors the drivers raise themselves."""
    import asyncpg

    return isinstance(
        exc,
        asyncpg.exceptions.PostgresConnectionError
        | asyncpg.exceptions.OperatorInterventionError
        | asyncpg.exceptions.InterfaceError
        | OSError
        | TimeoutError,
    ) or (type(exc).__module__.startswith("sqlite3") and "locked" in str(exc))


def _checkout_unavailable(engine: AsyncEngine, exc: BaseException) -> bool:
    """Whether a failed checkout of a raw connection means the database cannot be reached:
    what `is_unavailable` says of the same failure wrapped by SQLAlchemy's `Connection`."""
    dbapi = engine.dialect.loaded_dbapi
    return (
        is_unavailable(exc)
        or _driver_unavailable(exc)
        or isinstance(exc, dbapi.OperationalError | dbapi.InterfaceError)
    )


async def _to_completion(cleanup: Coroutine[Any, Any, None]) -> None:
    """Run `cleanup` to its end even if the caller is cancelled meanwhile (and re-raise the
    cancellation after it), as SQLAlchemy's own connections return to the pool: abandoned
    halfway, a connection would stay checked out."""
    task = asyncio.ensure_future(cleanup)
    cancelled: asyncio.CancelledError | None = None
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError as exc:
            cancelled = exc
    task.result()
    if cancelled is not None:
        raise cancelled


def error_kind(exc: BaseException) -> str | None:
    """How a failed database operation is counted: "unavailable" when the database cannot be
    reached, "error" for any other database error, None when it is not the database's (a
    domain error raised inside a transaction) or is a constraint conflict, which the services
    turn into a 409 as part of their normal work."""
    import asyncpg

    if isinstance(
        exc,
        sa.exc.IntegrityError
        | asyncpg.exceptions.IntegrityConstraintViolationError
        | sqlite3.IntegrityError,
    ):
        return None
    if is_unavailable(exc) or _driver_unavailable(exc):
        return "unavailable"
    if isinstance(exc, sa.exc.SQLAlchemyError | asyncpg.exceptions.PostgresError | sqlite3.Error):
        return "error"
    return None


def _sqlite_engine(url: str, *, immediate: bool, pool_size: int) -> AsyncEngine:
    engine = create_async_engine(
        url, pool_size=pool_size, max_overflow=0, pool_timeout=60, hide_parameters=True
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin (SQLAlchemy's recipe).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)

    return engine


_IDLE_SINCE = "agenthub.idle_since"
_USED_AT = "agenthub.used_at"


def _ping_when_idle(engine: AsyncEngine, idle_s: float) -> None:
    """`pool_pre_ping`, only for connections idle longer than `idle_s`.

    The ping finds connections that died while pooled (a database restart): those are replaced
    before use instead of failing a request. On asyncpg it costs three round trips (BEGIN, `;`,
    ROLLBACK), which at a few hundred messages per second was most of the database work on the
    send path. A connection checked in moments ago is as alive as one just pinged: a death
    between the ping and the query fails the query either way (and invalidates the connection).
    """
    sync = engine.sync_engine

    @event.listens_for(sync, "connect")
    def _connected(_dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(sync, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            # (a connection `_Spare` kept unused comes back idle since its last use)
            record.info[_IDLE_SINCE] = record.info.pop(_USED_AT, None) or time.monotonic()

    @event.listens_for(sync, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get(_IDLE_SINCE)
        if since is not None and time.monotonic() - since <= idle_s:
            return
        try:
            sync.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # the pool replaces the connection and checks out again
            raise sa.exc.DisconnectionError() from exc


class _Spare:
    """A few pooled connections kept between driver reads that come close together (sockets
    connecting): a read takes one instead of a checkout and a checkin (about 0.1 ms of CPU,
    three one-row reads' worth). Each goes back to the pool once unused for `hold` seconds,
    the time the pool trusts an idle connection unpinged, and counts as idle since its last
    use there."""

    def __init__(self, hold: float, size: int) -> None:
        self._hold = hold
        self._size = size
        self._kept: list[tuple[Any, asyncio.TimerHandle]] = []  # the last kept at the end
        self._loop: asyncio.AbstractEventLoop | None = None
        self._returning: set[asyncio.Task[Any]] = set()
        self._closed = False

    def take(self) -> Any:
        """A kept connection, or None."""
        if not self._kept or self._loop is not asyncio.get_running_loop():
            return None  # (none, or kept by a loop that has ended: not usable here)
        pooled, timer = self._kept.pop()
        timer.cancel()
        # In use again: its next checkin is a use's end, not the end of an unused stretch.
        pooled.info.pop(_USED_AT, None)
        return pooled

    def keep(self, pooled: Any) -> bool:
        """Keep `pooled` for a later read; False when as many as `size` are kept already."""
        loop = asyncio.get_running_loop()
        if self._closed or (self._kept and self._loop is not loop):
            return False
        if len(self._kept) >= self._size:
            return False
        pooled.info[_USED_AT] = time.monotonic()
        self._loop = loop
        self._kept.append((pooled, loop.call_later(self._hold, self._give_back, pooled)))
        return True

    def _give_back(self, pooled: Any) -> None:
        self._kept = [(p, t) for p, t in self._kept if p is not pooled]
        self._close_later(pooled)

    def _close_later(self, pooled: Any) -> None:
        task = asyncio.get_running_loop().create_task(greenlet_spawn(pooled.close))
        self._returning.add(task)
        task.add_done_callback(self._returning.discard)

    async def close(self) -> None:
        self._closed = True
        while (pooled := self.take()) is not None:
            self._close_later(pooled)
        if self._returning:
            await asyncio.gather(*self._returning, return_exceptions=True)


QueryObserver = Callable[[str, float], None]
ErrorObserver = Callable[[str], None]

_ON_COMMIT = "agenthub.on_commit"


def on_commit(conn: AsyncConnection, callback: Callable[[], None]) -> None:
    """Run `callback` after the write transaction `conn` belongs to commits; never if it rolls
    back. Announcing from here rather than after the `async with` block means moving a line
    can never broadcast a change that was not stored."""
    callbacks: list[Callable[[], None]] | None = conn.info.get(_ON_COMMIT)
    if callbacks is None:
        raise RuntimeError("on_commit() outside a Database.write() transaction")
    callbacks.append(callback)


def _observe_queries(engine: AsyncEngine, observe: QueryObserver) -> None:
    """Time each statement; `observe(statement, seconds)` gets the SQL text only to classify it."""

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _before(conn: Any, _cursor: Any, _stmt: Any, _params: Any, _ctx: Any, _many: Any) -> None:
        conn.info.setdefault("query_started", []).append(time.perf_counter())

    @event.listens_for(engine.sync_engine, "after_cursor_execute")
    def _after(conn: Any, _cursor: Any, stmt: str, _params: Any, _ctx: Any, _many: Any) -> None:
        started = conn.info.get("query_started")
        if started:
            observe(stmt, time.perf_counter() - started.pop())


class _TimedDriver:
    """A driver connection whose statements are timed like SQLAlchemy's (the engine events in
    `_observe_queries` never see calls made on the driver connection itself)."""

    TIMED = frozenset({"execute", "executemany", "fetch", "fetchrow", "fetchval"})

    def __init__(self, conn: Any, observe: QueryObserver) -> None:
        self._conn = conn
        self._observe = observe

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._conn, name)
        if name not in self.TIMED:
            return attr

        async def timed(statement: str, *args: Any, **kw: Any) -> Any:
            started = time.perf_counter()
            try:
                return await attr(statement, *args, **kw)
            finally:
                self._observe(statement, time.perf_counter() - started)

        return timed


class Database:
    def __init__(
        self,
        url: str,
        on_query: QueryObserver | None = None,
        on_error: ErrorObserver | None = None,
    ) -> None:
        """`on_query(statement, seconds)` times each statement; `on_error(kind)` counts each
        failed operation by `error_kind`."""
        self.url = url
        self._on_query = on_query
        self._on_error = on_error
        self.dialect = make_url(url).get_backend_name()
        self.is_sqlite = self.dialect == "sqlite"
        self._write_lock: asyncio.Lock | None = None
        self._preparations: list[Callable[[Any], Awaitable[None]]] = []
        # (SQLite's read pool is four connections: one kept there)
        self._spare = _Spare(PING_AFTER_IDLE_S, 1 if self.is_sqlite else KEPT_FOR_READS)
        if self.is_sqlite:
            path = make_url(url).database
            if path and path != ":memory:":
                from pathlib import Path

                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.engine = _sqlite_engine(url, immediate=False, pool_size=SQLITE_READ_POOL_SIZE)
            self.write_engine = _sqlite_engine(url, immediate=True, pool_size=1)
            self._write_lock = asyncio.Lock()
            self._capacity = {"main": SQLITE_READ_POOL_SIZE, "write": 1}
        else:
            self._capacity = {"main": PG_POOL_SIZE + PG_MAX_OVERFLOW}
            self.engine = create_async_engine(
                url,
                pool_size=PG_POOL_SIZE,
                max_overflow=PG_MAX_OVERFLOW,
                pool_timeout=POOL_TIMEOUT_S,
                hide_parameters=True,
                connect_args={
                    "timeout": PG_CONNECT_TIMEOUT_S,
                    "command_timeout": PG_COMMAND_TIMEOUT_S,
                },
            )
            _ping_when_idle(self.engine, PING_AFTER_IDLE_S)
            self.write_engine = self.engine
            self._prepare_each(self.engine)
        if on_query is not None:
            _observe_queries(self.engine, on_query)
            if self.write_engine is not self.engine:
                _observe_queries(self.write_engine, on_query)

    def prepare_connections(self, prepare: Callable[[Any], Awaitable[None]]) -> None:
        """Run `prepare(driver connection)` on each new PostgreSQL connection of the pool
        before it is first used, e.g. to prepare a hot path's statements while nobody waits for
        them. A failed preparation is logged, not raised: the connection's first real use
        shows whether it is alive. Connections made before this call are not prepared."""
        self._preparations.append(prepare)

    def _prepare_each(self, engine: AsyncEngine) -> None:
        @event.listens_for(engine.sync_engine, "connect")
        def _prepare(dbapi_connection: Any, _record: Any) -> None:
            for prepare in self._preparations:
                try:
                    dbapi_connection.run_async(prepare)
                except Exception as exc:
                    log.warning("cannot prepare a new connection: %s", type(exc).__name__)

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with self.engine.connect() as conn:
                yield conn
        except Exception as exc:
            self._observe_error(exc)
            if is_unavailable(exc):
                raise Unavailable() from exc
            raise

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A transaction that commits when the block ends without an exception; the
        callbacks registered with `on_commit` run after the COMMIT, in order."""
        lock = self._write_lock or contextlib.nullcontext()
        callbacks: list[Callable[[], None]] = []
        try:
            async with lock, self.write_engine.begin() as conn:
                conn.info[_ON_COMMIT] = callbacks
                try:
                    yield conn
                finally:
                    # conn.info outlives this checkout (it is the pooled connection's)
                    conn.info.pop(_ON_COMMIT, None)
        except Exception as exc:
            self._observe_error(exc)
            if is_unavailable(exc):
                raise Unavailable() from exc
            raise
        for callback in callbacks:
            try:
                callback()
            except Exception as exc:
                # the change is stored: a failed announcement must not turn it into an error
                log.error("an on-commit announcement failed (%s)", type(exc).__name__)

    @contextlib.asynccontextmanager
    async def driver(self) -> AsyncIterator[Any]:
        """The driver's own connection (asyncpg or aiosqlite) from the write pool, for the
        message hot path (see messages/batch_store.py); the caller runs its transaction.
        On SQLite it is held under this process's write lock like any write."""
        lock = self._write_lock or contextlib.nullcontext()
        async with lock, self._driver_of(self.write_engine) as raw:
            yield raw

    def driver_read(self) -> contextlib.AbstractAsyncContextManager[Any]:
        """The driver's own connection from the read pool, for one-statement reads on a hot
        path (each socket's handshake): no transaction around the statement, and none of
        SQLAlchemy's per-statement work (a read through `read()` costs BEGIN and ROLLBACK
        round trips and several times the CPU). Reads that follow each other closely take
        connections kept between them (`_Spare`) instead of the pool's."""
        return self._driver_of(self.engine, self._spare)

    @contextlib.asynccontextmanager
    async def _driver_of(
        self, engine: AsyncEngine, spare: _Spare | None = None
    ) -> AsyncIterator[Any]:
        """The pool's connection as it is, without SQLAlchemy's `Connection` around it
        (`AsyncEngine.raw_connection`): checked out and in that way it costs half the CPU,
        about 0.1 against 0.2 ms here, when the one-row read of a socket's handshake costs
        0.035 ms (bench/EXPERIMENTS.md, sixth round). With `spare`, the kept connection if
        there is one, and this one kept after a use that did not fail."""
        pooled = spare.take() if spare is not None else None
        if pooled is None:
            try:
                pooled = await engine.raw_connection()
            except Exception as exc:
                self._observe_error(exc)
                if _checkout_unavailable(engine, exc):
                    raise Unavailable() from exc
                raise
        used = False
        try:
            raw = pooled.driver_connection
            yield raw if self._on_query is None else _TimedDriver(raw, self._on_query)
            used = True
        except Exception as exc:
            # SQLAlchemy never sees the driver's own errors: a connection lost under it
            # would go back to the pool as if alive, and one used within the last second is
            # not pinged (`_ping_when_idle`). Discard it here instead.
            if _driver_unavailable(exc) and not self.is_sqlite:
                with contextlib.suppress(Exception):
                    await greenlet_spawn(pooled.invalidate, exc)
            self._observe_error(exc)
            if is_unavailable(exc) or _driver_unavailable(exc):
                raise Unavailable() from exc
            raise
        finally:
            if not (used and spare is not None and spare.keep(pooled)):
                await _to_completion(greenlet_spawn(pooled.close))

    def _observe_error(self, exc: BaseException) -> None:
        kind = error_kind(exc)
        if kind is not None and self._on_error is not None:
            self._on_error(kind)

    def pool_usage(self) -> list[tuple[str, int, int]]:
        """Per pool: its name ("main"; on SQLite also "write", the one-connection pool of the
        single writer), the connections checked out now (those driver reads keep between
        them included), and the most it hands out."""
        engines = {"main": self.engine, "write": self.write_engine}
        usage = []
        for name, capacity in self._capacity.items():
            pool = engines[name].pool
            in_use = pool.checkedout() if isinstance(pool, QueuePool) else 0
            usage.append((name, in_use, capacity))
        return usage

    async def ping(self, within: float = 2.0) -> bool:
        try:
            async with asyncio.timeout(within), self.engine.connect() as conn:
                await conn.execute(sa.text("SELECT 1"))
            return True
        except Exception:
            return False

    async def dispose(self) -> None:
        await self._spare.close()
        await self.engine.dispose()
        if self.write_engine is not self.engine:
            await self.write_engine.dispose()

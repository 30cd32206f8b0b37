"""The `agenthub` command: run the server and administer it from the shell.

The server's side (settings, the database, the services) is imported by the commands that use
it: an agent's commands (`send`, `wait`, `tail`, ...) start in a fraction of the time without
it, and an agent may run one per action.

Errors come out as one sentence on stderr with a non-zero exit code: 2 for bad configuration
or usage, 1 for anything refused or failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from agenthub.client import cli as agent_cli

if TYPE_CHECKING:
    from agenthub.agents.schemas import AgentPublic
    from agenthub.auth.schemas import TokenIssued
    from agenthub.config import Settings
    from agenthub.services import Services

T = TypeVar("T")

app = typer.Typer(
    help="AgentHub: rooms where AI agents work together.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
agents_app = typer.Typer(help="Manage agents.", no_args_is_help=True)
tokens_app = typer.Typer(help="Manage API tokens.", no_args_is_help=True)
app.add_typer(agents_app, name="agents")
app.add_typer(tokens_app, name="tokens")
agent_cli.register(app)  # login, rooms, send, history, tail, wait, mcp: the agent's commands

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]

SEED_AGENTS = [
    ("founder-ceo", "Founder", "admin"),
    ("agent-alpha", "Agent Alpha", "agent"),
    ("agent-beta", "Agent Beta", "agent"),
]
SEED_ROOMS = [
    ("general", "General", ["founder-ceo", "agent-alpha", "agent-beta"]),
    ("ops", "Operations", ["founder-ceo", "agent-alpha"]),
]


def fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def settings_or_exit() -> Settings:
    from agenthub.config import ConfigError, load_settings

    try:
        return load_settings()
    except ConfigError as exc:
        typer.echo("invalid configuration:", err=True)
        for line in exc.lines:
            typer.echo(f"  {line}", err=True)
        raise typer.Exit(2) from None


def run_with_services(work: Callable[[Services], Awaitable[T]], *, migrate: bool = True) -> T:
    """Open the database, apply migrations, run `work`, close; AppErrors become one line."""
    from sqlalchemy import exc as sa_exc

    from agenthub.db import migrate as migrations
    from agenthub.db.engine import Database
    from agenthub.errors import AppError
    from agenthub.services import Services

    settings = settings_or_exit()

    async def main() -> T:
        db = Database(settings.database_url_async)
        try:
            if migrate:
                await migrations.upgrade(db)
            async with Services.open(settings, db, sessions=False) as services:
                return await work(services)
        finally:
            await db.dispose()

    try:
        return asyncio.run(main())
    except AppError as exc:
        raise fail(exc.message + _cause(exc)) from None
    except (sa_exc.DBAPIError, OSError) as exc:  # e.g. no such database, authentication failed
        raise fail("cannot use the database" + _cause(exc)) from None


def _cause(exc: BaseException | None) -> str:
    """The driver's own first line behind a database failure, as ": reason"; "" if none.

    Only the driver's message: SQLAlchemy's text would add the SQL and its parameters.
    """
    from sqlalchemy import exc as sa_exc

    from agenthub.errors import AppError

    if isinstance(exc, AppError):
        exc = exc.__cause__
    if isinstance(exc, sa_exc.DBAPIError):
        exc = exc.orig
    if exc is None or isinstance(exc, AppError):
        return ""
    text = str(exc).strip()
    if text.startswith("<class '") and ">: " in text:  # asyncpg errors as SQLAlchemy adapts them
        text = text.split(">: ", 1)[1]
    return f": {text.splitlines()[0]}" if text else f": {type(exc).__name__}"


def emit(as_json: bool, data: Any, human: str) -> None:
    typer.echo(json.dumps(data, indent=2) if as_json else human)


def columns(header: list[str], rows: list[list[str]]) -> str:
    """A plain text table, each column as wide as its longest cell (the last one unpadded)."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[-1]])
        for row in [header, *rows]
    )


def dump(model: Any) -> Any:
    return model.model_dump(mode="json", by_alias=True)


async def bootstrap_admin(services: Services) -> str | None:
    """On an empty database, create the admin agent and return its first API token."""
    admin = await services.agents.create_first("admin", "Administrator", "admin")
    if admin is None:
        return None
    issued = await services.auth.issue_token(None, admin.name, None)
    return issued.token


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default: HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: PORT).")] = None,
    reload: Annotated[
        bool,
        typer.Option(
            "--reload",
            help="Development only: restart when a source file changes (refused in production).",
        ),
    ] = False,
) -> None:
    """Run the server: applies migrations first; on an empty database creates the admin."""
    from agenthub import server

    settings = settings_or_exit()
    if reload and settings.is_production:
        raise fail(
            "--reload is for development: it serves without draining sockets on shutdown; "
            "unset it, or set AGENTHUB_ENV=development",
            2,
        )
    if host:
        settings.host = host
    if port:
        settings.port = port
    typer.echo(f"agenthub: {settings.database_summary()}", err=True)
    for warning in settings.startup_warnings():
        typer.echo(f"agenthub: warning: {warning}", err=True)
    # Bound first: a port in use is one line (before an admin token is made and shown), not
    # "listening on …" followed by uvicorn's error.
    try:
        sock = server.bind(settings.host, settings.port)
    except OSError as exc:
        raise fail(server.bind_error(settings.host, settings.port, exc)) from None
    try:
        token = run_with_services(bootstrap_admin)
    except BaseException:
        sock.close()
        raise
    base = f"http://{settings.host}:{settings.port}"
    if token:
        typer.echo(
            "\nCreated the admin agent 'admin'. Its API token, shown only this once:\n\n"
            f"    {token}\n\n"
            "Trade it for a session JWT:\n\n"
            f"    curl -s -X POST {base}/api/v1/sessions -H 'Authorization: Bearer {token}'\n"
        )
        sys.stdout.flush()
    typer.echo(f"agenthub: listening on {base} (API docs at {base}/docs)", err=True)
    if reload:
        sock.close()  # the reloader binds the port itself, in its supervisor process
        server.run_reloading(settings)
    else:
        server.run(settings, sock)


@app.command()
def migrate() -> None:
    """Apply database migrations (safe to repeat)."""

    from agenthub.db import migrate as migrations

    async def work(services: Services) -> tuple[str | None, str | None]:
        return await migrations.upgrade(services.db)

    before, after = run_with_services(work, migrate=False)
    if before == after:
        typer.echo(f"database schema is up to date (revision {after})")
    else:
        typer.echo(f"migrated database schema from {before or 'empty'} to {after}")


@app.command()
def seed(as_json: JsonOpt = False) -> None:
    """Create the seed's 3 agents and 2 rooms; prints each new agent's token once."""

    async def work(services: Services) -> list[dict[str, Any]]:
        from agenthub.auth.jwt import Principal
        from agenthub.errors import Conflict

        out: list[dict[str, Any]] = []
        for name, display, role in SEED_AGENTS:
            try:
                await services.agents.create(None, name, display, role)
            except Conflict:
                out.append({"agent": name, "created": False, "token": None})
                continue
            issued = await services.auth.issue_token(None, name, None)
            out.append({"agent": name, "created": True, "token": issued.token})
        for slug, title, members in SEED_ROOMS:
            owner = await services.agents.get(members[0])
            actor = Principal(agent_id=owner.id, role=owner.role)
            with contextlib.suppress(Conflict):  # rerun: the room exists already
                await services.rooms.create(actor, slug, title)
            for member in members[1:]:
                await services.rooms.add_member(actor, slug, member)
        return out

    results = run_with_services(work)
    lines = []
    for r in results:
        if r["created"]:
            lines.append(f"{r['agent']}: {r['token']}")
        else:
            lines.append(
                f"{r['agent']}: already exists (new token: agenthub tokens issue {r['agent']})"
            )
    lines.append("rooms: " + ", ".join(slug for slug, _, _ in SEED_ROOMS))
    emit(as_json, {"agents": results, "rooms": [s for s, _, _ in SEED_ROOMS]}, "\n".join(lines))


@app.command()
def backup(
    file: Annotated[
        Path, typer.Argument(help="Where to write the backup (replaced if it exists).")
    ],
    as_json: JsonOpt = False,
) -> None:
    """Back up the database to FILE while AgentHub runs (a SQLite file, or pg_dump -Fc)."""
    from agenthub.db import backup as backups

    done = run_with_services(
        lambda s: backups.backup(s.db, s.settings.resolved_database_url, file), migrate=False
    )
    counts = "" if done.messages is None else f" ({done.rooms} rooms, {done.messages} messages)"
    emit(as_json, asdict(done), f"backed up the {done.backend} database to {done.file}{counts}")


@app.command()
def restore(
    file: Annotated[Path, typer.Argument(help="A backup made by `agenthub backup`.")],
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite a target database that holds data.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Restore FILE into the configured (empty) database, then apply the migrations."""
    from agenthub.db import backup as backups

    done = run_with_services(
        lambda s: backups.restore(s.db, s.settings.resolved_database_url, file, force=force),
        migrate=False,
    )
    emit(
        as_json,
        asdict(done),
        f"restored {done.file} into the {done.backend} database: {done.agents} agents, "
        f"{done.rooms} rooms, {done.messages} messages (schema revision {done.revision})",
    )


@agents_app.command("create")
def agents_create(
    name: Annotated[str, typer.Argument(help="A slug: lowercase letters, digits, dashes.")],
    display_name: Annotated[str | None, typer.Option("--display-name", "-d")] = None,
    admin: Annotated[bool, typer.Option("--admin", help="Give it the admin role.")] = False,
    token: Annotated[
        bool, typer.Option("--token", help="Also issue its first API token, printed only once.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create an agent (and, with --token, its first API token)."""
    from pydantic import ValidationError

    from agenthub.agents.schemas import AgentCreate

    try:
        body = AgentCreate(
            name=name, display_name=display_name or name, role="admin" if admin else "agent"
        )
    except ValidationError as exc:
        from agenthub.errors import clip
        from agenthub.http.errors import describe_validation

        if any(e["loc"] == ("name",) for e in exc.errors()):
            raise fail(
                f"invalid agent name '{clip(name, 40)}': use 2 to 63 lowercase letters, digits "
                "and dashes, starting with a letter or digit",
                2,
            ) from None
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
        raise fail(
            describe_validation(errors).replace("field 'display_name'", "--display-name"), 2
        ) from None

    async def work(services: Services) -> tuple[AgentPublic, TokenIssued | None]:
        agent = await services.agents.create(None, body.name, body.display_name, body.role)
        issued = await services.auth.issue_token(None, str(agent.id), None) if token else None
        return agent, issued

    agent, issued = run_with_services(work)
    human = f"created agent '{agent.name}' ({agent.role}) {agent.id}"
    if issued is None:
        emit(as_json, dump(agent), human)
    else:  # the token alone on the last line, for `| tail -n 1`
        emit(as_json, {**dump(agent), "token": dump(issued)}, f"{human}\n{issued.token}")


@agents_app.command("list")
def agents_list(as_json: JsonOpt = False) -> None:
    """List agents."""
    agents = run_with_services(lambda s: s.agents.list_all())
    rows = [[a.name, a.role, str(a.id), a.display_name] for a in agents]
    human = columns(["NAME", "ROLE", "ID", "DISPLAY NAME"], rows) if rows else "no agents"
    emit(as_json, [dump(a) for a in agents], human)


@tokens_app.command("issue")
def tokens_issue(
    agent: Annotated[str, typer.Argument(help="The agent's name or id.")],
    as_json: JsonOpt = False,
) -> None:
    """Issue an API token for an agent; it is printed only this once."""
    issued = run_with_services(lambda s: s.auth.issue_token(None, agent, None))
    emit(as_json, dump(issued), issued.token)


@tokens_app.command("list")
def tokens_list(
    agent: Annotated[str, typer.Argument(help="The agent's name or id.")],
    as_json: JsonOpt = False,
) -> None:
    """List an agent's tokens (prefixes only)."""
    tokens = run_with_services(lambda s: s.auth.list_tokens(None, agent))

    def state(t: Any) -> str:
        return "revoked" if t.revoked_at else "active"

    human = "\n".join(
        f"{t.prefix}  {state(t):<8} created {t.created_at:%Y-%m-%d %H:%M}"
        + (f"  last used {t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "")
        for t in tokens
    )
    emit(as_json, [dump(t) for t in tokens], human or "no tokens")


@tokens_app.command("revoke")
def tokens_revoke(
    prefix: Annotated[str, typer.Argument(help="The token's prefix (agt_xxxxxx).")],
    as_json: JsonOpt = False,
) -> None:
    """Revoke a token: it no longer opens sessions."""
    run_with_services(lambda s: s.auth.revoke(None, prefix))
    emit(as_json, {"prefix": prefix, "revoked": True}, f"revoked {prefix}")


def main() -> None:
    app()

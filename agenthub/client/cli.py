"""The agent's side of the `agenthub` command: log in, list rooms, send, read, follow, wait.

These commands are clients of a running server (the SDK in `agenthub.client`); they never open
the database. They find the server in AGENTHUB_URL / AGENTHUB_TOKEN or in the file `login`
writes. Output is for people by default and `--json` for programs: one JSON document for
`login`, `rooms` and `send`, JSON lines (one message per line) for `history`, `tail` and `wait`.
Failures print one sentence on stderr, with the next step to take: exit 1 when refused or failed
(and `wait`'s timeout), 2 when not configured or given a bad argument, 130 when interrupted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer

from agenthub.client import AgentHubClient, AgentHubError, Claim, Message, hints
from agenthub.client.credentials import (
    ENV_TOKEN,
    ENV_URL,
    Credentials,
    NotConfigured,
    config_path,
    load_credentials,
    save_credentials,
)
from agenthub.client.display import PrintableFormatter, printable
from agenthub.client.names import Names

T = TypeVar("T")

DEFAULT_URL = "http://127.0.0.1:3000"
EXIT_FAILED = 1
EXIT_NOT_CONFIGURED = 2
EXIT_USAGE = 2  # a bad argument, as for the options typer itself refuses
EXIT_INTERRUPTED = 130
# `wait --timeout T` ends within T plus this, however slowly the server answers.
WAIT_GRACE_S = 10.0
# `wait --timeout`: long enough for any loop step, short enough that a typo (or `inf`) cannot
# leave a process blocked for days; a loop of waits covers longer (see the README).
WAIT_MAX_S = 3600
ACK_STATUSES = ("seen", "done", "blocked", "rejected")

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]
AckFromOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--ack-from", metavar="AGENT", help="Ask this member to acknowledge (repeatable)."
    ),
]
RoomArg = Annotated[str, typer.Argument(help="A room slug or id.")]


def register(app: typer.Typer) -> None:
    """Add the agent commands to the `agenthub` command."""
    for command in (login, send, history, tail, wait):
        app.command(rich_help_panel="Agent commands")(command)
    app.add_typer(rooms_app, name="rooms", rich_help_panel="Agent commands")
    app.add_typer(members_app, name="members", rich_help_panel="Agent commands")
    for coordination in (inbox, dm, reply, ack, claim, release, claims, search):
        app.command(rich_help_panel="Agent commands")(coordination)
    app.command("mcp", rich_help_panel="Agent commands")(mcp)


# ---- running a command ----


def _fail(message: str, code: int = EXIT_FAILED) -> typer.Exit:
    # The sentence may quote the server, or whatever answered in its place.
    typer.echo(f"error: {printable(message)}", err=True)
    return typer.Exit(code)


def _run(
    work: Callable[[AgentHubClient], Awaitable[T]],
    room: str | None = None,
    deadline: float | None = None,
) -> T:
    """Run `work` with a client made from the configuration; errors become one sentence,
    with the next step (`room`: the one the command is about, for that step).

    With `deadline`, the whole of `work` ends within that many seconds."""
    try:
        credentials = load_credentials()
    except NotConfigured as exc:
        raise _fail(str(exc), EXIT_NOT_CONFIGURED) from None
    return _run_with(credentials, work, room, deadline)


def _run_with(
    credentials: Credentials,
    work: Callable[[AgentHubClient], Awaitable[T]],
    room: str | None = None,
    deadline: float | None = None,
) -> T:
    # The SDK's warnings (a lost connection being resumed) as plain lines on stderr.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(PrintableFormatter("agenthub: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler])

    async def main() -> T:
        async with AgentHubClient(credentials.url, credentials.token) as client:
            async with asyncio.timeout(deadline):
                return await work(client)

    try:
        return asyncio.run(main())
    except AgentHubError as exc:
        raise _fail(hints.explain(exc, credentials.url, room, None, hints.CLI)) from None
    except TimeoutError:
        within = f"within {deadline:g}s" if deadline is not None else "in time"
        raise _fail(f"AgentHub at {credentials.url} did not answer {within}") from None
    except KeyboardInterrupt:
        raise typer.Exit(EXIT_INTERRUPTED) from None


def _out(line: str) -> None:
    # Flushed per line: a pipe would otherwise hold a followed stream back.
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def _show(names: Names, message: Message, as_json: bool, with_room: bool) -> None:
    if as_json:
        _out(json.dumps(await names.describe(message)))
        return
    when = message.created_at.astimezone().strftime("%H:%M:%S")
    room = f"{printable(await names.room(message.room_id))} " if with_room else ""
    sender = printable(await names.agent(message.sender_id))
    body = printable(message.body, multiline=True)
    _out(f"{room}#{message.seq} {when} {sender}: {body}")


# ---- commands ----


def login(
    url: Annotated[
        str | None,
        typer.Option(help=f"The server's URL (default: ${ENV_URL}, else {DEFAULT_URL})."),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            help=f"The agent's API token. Avoid: on the command line it is visible to other "
            f"users in `ps` and kept in shell history. Without it: ${ENV_TOKEN}, else a "
            "prompt (a terminal) or the first line of stdin."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check an API token against the server and remember both for the agent commands."""
    url = (url or os.environ.get(ENV_URL) or DEFAULT_URL).strip().rstrip("/")
    token = token or os.environ.get(ENV_TOKEN)
    if not token:
        if sys.stdin.isatty():
            token = typer.prompt("API token", hide_input=True)
        else:
            token = sys.stdin.readline()
    token = (token or "").strip()
    if not token:
        raise _fail("no API token given: pass --token, set AGENTHUB_TOKEN, or pipe it on stdin")
    credentials = Credentials(url=url, token=token)

    async def verify(client: AgentHubClient) -> Any:
        return (await client.session()).agent

    agent = _run_with(credentials, verify)
    try:
        path = save_credentials(credentials)
    except OSError as exc:
        raise _fail(f"cannot write {config_path()}: {exc.strerror or exc}") from None
    if as_json:
        _out(json.dumps({"url": url, "agent": agent.to_wire(), "configFile": str(path)}))
    else:
        _out(
            f"logged in to {printable(url)} as {printable(agent.name)} "
            f"({printable(agent.role)}); saved to {path}"
        )


rooms_app = typer.Typer(
    help="Your rooms: list them (`agenthub rooms`), or create one (`agenthub rooms create`).",
    invoke_without_command=True,
)
members_app = typer.Typer(help="Add an agent to a room, or remove one.", no_args_is_help=True)


@rooms_app.callback()
def rooms(
    ctx: typer.Context,
    all_rooms: Annotated[bool, typer.Option("--all", help="Every room (admins only).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """List your rooms."""
    if ctx.invoked_subcommand is not None:
        return
    found = _run(lambda c: c.rooms(all_rooms=all_rooms))
    if as_json:
        _out(json.dumps([r.to_wire() for r in found], indent=2))
        return
    for r in found:
        _out(f"{printable(r.slug):<24} {printable(r.name)}")
    if not found:
        _out("no rooms")


@rooms_app.command("create")
def rooms_create(
    slug: Annotated[
        str, typer.Argument(help="Lowercase letters, digits and dashes, e.g. design-review.")
    ],
    name: Annotated[
        str | None, typer.Option("--name", help="A human-readable title (default: the slug).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a room; you become its first member (then `agenthub members add`)."""
    made = _run(lambda c: c.create_room(slug, name), slug)
    if as_json:
        _out(json.dumps(made.to_wire()))
        return
    _out(f"created room {printable(made.slug)} ({printable(made.name)})")


AgentArg = Annotated[str, typer.Argument(help="An agent's name or id.")]


@members_app.command("add")
def members_add(room: RoomArg, agent: AgentArg, as_json: JsonOpt = False) -> None:
    """Add an agent to a room you are a member of (adding a member again is harmless)."""
    added = _run(lambda c: c.add_member(room, agent), room)
    if as_json:
        _out(json.dumps({"room": room, "agent": added.to_wire()}))
        return
    _out(f"{printable(added.name)} is a member of {printable(room)}")


@members_app.command("remove")
def members_remove(room: RoomArg, agent: AgentArg, as_json: JsonOpt = False) -> None:
    """Remove a member: yourself (leaving the room), or anyone if you are an admin."""
    _run(lambda c: c.remove_member(room, agent), room)
    if as_json:
        _out(json.dumps({"room": room, "removed": agent}))
        return
    _out(f"removed {printable(agent)} from {printable(room)}")


@members_app.command("list")
def members_list(room: RoomArg, as_json: JsonOpt = False) -> None:
    """A room's members."""
    found = _run(lambda c: c.members(room), room)
    if as_json:
        _out(json.dumps([a.to_wire() for a in found], indent=2))
        return
    for a in found:
        _out(f"{printable(a.name):<24} {printable(a.display_name)}")


def send(
    room: RoomArg,
    message: Annotated[
        str | None, typer.Argument(help="The message; read from stdin when omitted.")
    ] = None,
    client_msg_id: Annotated[
        str | None,
        typer.Option(help="Your id for this message: resending with it never stores it twice."),
    ] = None,
    ack_from: AckFromOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Send a message to a room (`@name` mentions a member)."""
    body = _body(message)
    stored = _run(lambda c: _send(c, room, body, client_msg_id, None, ack_from), room)
    _sent(stored, as_json)


def _body(message: str | None) -> str:
    body = message if message is not None else sys.stdin.read()
    if message is None:
        body = body.rstrip("\n")  # the newline `echo` adds is not part of the message
    if not body.strip():
        raise _fail("the message is empty: give it as an argument or on stdin")
    return body


async def _send(
    client: AgentHubClient,
    room: str,
    body: str,
    client_msg_id: str | None,
    reply_to: int | None,
    ack_from: list[str] | None,
) -> dict[str, Any]:
    sent = await client.send(room, body, client_msg_id, reply_to=reply_to, ack_from=ack_from)
    return await Names(client).describe(sent)


def _sent(stored: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _out(json.dumps(stored))
        return
    _out(f"sent #{stored['seq']} to {printable(str(stored['room']))}")
    ignored = stored.get("ignoredMentions") or []
    if ignored:
        names = ", ".join("@" + printable(str(n)) for n in ignored)
        typer.echo(f"note: not members of the room, so not mentioned: {names}", err=True)


def history(
    room: RoomArg,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many messages.")] = 20,
    after: Annotated[
        int | None,
        typer.Option(min=0, help="The messages after this seq (oldest first) instead of the last."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a room's messages: the last ones, or those after a seq; oldest first."""

    async def work(client: AgentHubClient) -> None:
        if after is not None:
            found = await _after(client, room, after, limit)
        else:
            found = await _last(client, room, limit)
        names = Names(client)
        for message in found:
            await _show(names, message, as_json, with_room=False)
        if not found and not as_json:
            _out("no messages")

    _run(work, room)


def tail(
    room_refs: Annotated[list[str], typer.Argument(metavar="ROOM...", help="Room slugs or ids.")],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new messages as they arrive.")
    ] = False,
    lines: Annotated[
        int, typer.Option("--lines", "-n", min=0, help="How many recent messages per room.")
    ] = 10,
    as_json: JsonOpt = False,
) -> None:
    """Print the last messages of rooms; with --follow, then every new one as it arrives.

    Following survives lost connections and server restarts: after a reconnect it prints what
    was sent meanwhile, each message once, in order. Stop it with Ctrl-C."""

    async def work(client: AgentHubClient) -> None:
        names = Names(client)
        with_room = len(room_refs) > 1
        seen: dict[str, int] = {}
        for ref in room_refs:
            found = await _last(client, ref, lines) if lines else []
            for message in found:
                await _show(names, message, as_json, with_room)
            seen[ref] = found[-1].seq if found else await client.latest_seq(ref)
        if not follow:
            return
        async with client.messages(room_refs, after=seen) as stream:
            async for message in stream:
                await _show(names, message, as_json, with_room)

    _run(work, room_refs[0] if len(room_refs) == 1 else None)


def wait(
    room: RoomArg,
    sender: Annotated[
        str | None,
        typer.Option(
            "--from", metavar="AGENT", help="Only a message from this agent (name or id)."
        ),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option(
            min=0, help=f"Give up after this many seconds (exit 1); at most {WAIT_MAX_S}."
        ),
    ] = 300,
    after: Annotated[
        int | None,
        typer.Option(
            min=0, help="Wait for a message after this seq instead of after now (for loops)."
        ),
    ] = None,
    include_mine: Annotated[
        bool, typer.Option("--include-mine", help="Your own messages count too.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Block until a new message arrives in a room, print it, exit 0; exit 1 at the timeout.

    New means sent after the command started (or after --after SEQ). Your own messages are not
    waited for unless --include-mine or --from names you. When several arrive at once, all the
    matching ones are printed."""
    if not timeout <= WAIT_MAX_S:  # (`not <=`: nan too, should typer let one through)
        raise _fail(
            f"--timeout {timeout:g} is out of range: give at most {WAIT_MAX_S} seconds; "
            "to wait longer, wait again in a loop (see the README)",
            EXIT_USAGE,
        )

    async def work(client: AgentHubClient) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        me = (await client.session()).agent.id
        wanted = (await client.agent(sender)).id if sender else None
        latest = await client.latest_seq(room)
        if after is not None and after > latest:
            text = hints.seq_beyond_newest("--after", after, room, latest, hints.CLI)
            raise _fail(text, EXIT_USAGE)
        cursor = after if after is not None else latest
        typer.echo(f"waiting for a new message in {printable(room)} (up to {timeout:g}s)", err=True)
        names = Names(client)
        while True:
            found = await client.wait_for_messages(room, cursor, max(0.0, deadline - loop.time()))
            if not found:
                return False
            cursor = found[-1].seq
            matching = [m for m in found if _matches(m, me, wanted, include_mine)]
            for message in matching:
                await _show(names, message, as_json, with_room=False)
            if matching:
                return True

    if not _run(work, room, deadline=timeout + WAIT_GRACE_S):
        raise _fail(f"no new message in {room} within {timeout:g}s")


def inbox(
    show_all: Annotated[
        bool, typer.Option("--all", help="The latest items, read or not (marks nothing).")
    ] = False,
    pending: Annotated[
        bool, typer.Option("--pending", help="Messages still awaiting your acknowledgement.")
    ] = False,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=200)] = 20,
    keep_unread: Annotated[
        bool, typer.Option("--keep-unread", help="Do not mark the shown items read.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Show what is addressed to you: mentions, direct messages, replies to yours, and
    acknowledgements asked of you; oldest first. Unread items by default, marked read once
    shown."""

    async def work(client: AgentHubClient) -> None:
        names = Names(client)
        if pending:
            for p in await client.pending_acks(limit=limit):
                names.learn_room(p.message.room_id, p.room_slug)
                await _show(names, p.message, as_json, with_room=True)
            return
        page = await client.inbox(unread_only=not show_all, newest=show_all, limit=limit)
        for item in page.items:
            names.learn_room(item.message.room_id, item.room_slug)
            if as_json:
                described = await names.describe(item.message)
                _out(json.dumps({**described, "reasons": list(item.reasons), "item": item.id}))
            else:
                _out(f"[{printable(', '.join(item.reasons))}]")
                await _show(names, item.message, False, with_room=True)
        if not page.items and not as_json:
            _out("nothing new" if not show_all else "your inbox is empty")
        if page.items and not show_all and not keep_unread:
            await client.mark_inbox_read(page.items[-1].id)

    _run(work)


def dm(
    agent: Annotated[str, typer.Argument(help="The agent's name or id.")],
    message: Annotated[
        str | None, typer.Argument(help="The message; read from stdin when omitted.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Send a direct (private) message to another agent."""
    body = _body(message)

    async def work(client: AgentHubClient) -> dict[str, Any]:
        return await Names(client).describe(await client.send_direct(agent, body))

    _sent(_run(work), as_json)


def reply(
    room: RoomArg,
    seq: Annotated[int, typer.Argument(min=1, help="The seq of the message you answer.")],
    message: Annotated[
        str | None, typer.Argument(help="The message; read from stdin when omitted.")
    ] = None,
    ack_from: AckFromOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Answer a message, in its thread."""
    body = _body(message)
    _sent(_run(lambda c: _send(c, room, body, None, seq, ack_from), room), as_json)


def ack(
    room: RoomArg,
    seq: Annotated[int, typer.Argument(min=1, help="The seq of the message that asked you.")],
    status: Annotated[str, typer.Argument(help="seen, done, blocked or rejected.")],
    note: Annotated[str | None, typer.Option(help="A short note with the answer.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Acknowledge a message that asked you to."""
    if status not in ACK_STATUSES:
        raise _fail(f"status must be one of {', '.join(ACK_STATUSES)}", EXIT_USAGE)
    answered = _run(lambda c: c.ack(room, seq, status, note), room)
    if as_json:
        _out(json.dumps({"room": room, "seq": answered.seq, "status": answered.status}))
    else:
        _out(f"answered #{answered.seq} in {printable(room)}: {answered.status}")


CLAIM_TTL_MAX_S = 86_400
SEARCH_LIMIT_MAX = 50
ResourceArg = Annotated[str, typer.Argument(help="What to claim: a file path, a task id…")]


def _claim_line(c: Claim) -> str:
    mode = "exclusive" if c.exclusive else "shared"
    until = c.expires_at.astimezone().strftime("%H:%M:%S")
    return f"{printable(c.resource)}  {printable(c.agent_name)}  {mode}  until {until}"


def claim(
    room: RoomArg,
    resource: ResourceArg,
    ttl: Annotated[
        int,
        typer.Option(
            "--ttl", min=1, max=CLAIM_TTL_MAX_S, help="Seconds until the claim expires by itself."
        ),
    ] = 600,
    shared: Annotated[
        bool, typer.Option("--shared", help="Share it with other shared claims.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Claim a resource of a room so the others leave it alone; claim again to renew.

    Exit 1 when another agent holds it (the message says who, and until when)."""
    made = _run(lambda c: c.claim(room, resource, ttl, exclusive=not shared), room)
    _out(json.dumps(made.to_wire()) if as_json else f"claimed {_claim_line(made)}")


def release(room: RoomArg, resource: ResourceArg, as_json: JsonOpt = False) -> None:
    """Release your claim on a resource of a room."""
    _run(lambda c: c.release(room, resource), room)
    _out(
        json.dumps({"released": resource})
        if as_json
        else f"released {printable(resource)} in {printable(room)}"
    )


def claims(room: RoomArg, as_json: JsonOpt = False) -> None:
    """List a room's live claims."""
    found = _run(lambda c: c.claims(room), room)
    if as_json:
        _out(json.dumps([c.to_wire() for c in found], indent=2))
        return
    for c in found:
        _out(_claim_line(c))
    if not found:
        _out("no claims")


def search(
    query: Annotated[str, typer.Argument(help="Words that must all appear in a message.")],
    room: Annotated[str | None, typer.Option("--room", help="Only this room.")] = None,
    sender: Annotated[
        str | None, typer.Option("--from", metavar="AGENT", help="Only this agent's messages.")
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, max=SEARCH_LIMIT_MAX, help="How many.")
    ] = 20,
    as_json: JsonOpt = False,
) -> None:
    """Search the messages of your rooms (every room's, for an admin), best matches first."""
    page = _run(lambda c: c.search(query, room=room, sender=sender, limit=limit), room)
    for hit in page.hits:
        if as_json:
            _out(
                json.dumps(
                    {**hit.message.to_wire(), "room": hit.room_slug, "sender": hit.sender_name}
                )
            )
            continue
        when = hit.message.created_at.astimezone().strftime("%Y-%m-%d %H:%M")
        body = printable(hit.message.body, multiline=True)
        _out(
            f"{printable(hit.room_slug)} #{hit.message.seq} {when} "
            f"{printable(hit.sender_name)}: {body}"
        )
    if not page.hits and not as_json:
        _out("no messages found")


def mcp(
    channel: Annotated[
        bool,
        typer.Option(
            "--channel",
            help="Also push new messages and inbox items from other agents into Claude Code "
            "(channels, a research preview: claude --dangerously-load-development-channels "
            "server:agenthub).",
        ),
    ] = False,
) -> None:
    """Run the MCP server on stdio (for Claude Code and other MCP clients).

    AGENTHUB_MCP_TOOLS=core serves only the tools to read, send, wait and check the inbox."""
    from agenthub.client.mcp_server import main

    main(channel)


# ---- helpers ----


def _matches(message: Message, me: str, wanted: str | None, include_mine: bool) -> bool:
    if wanted is not None:
        return message.sender_id == wanted
    return include_mine or message.sender_id != me


async def _last(client: AgentHubClient, room: str, count: int) -> list[Message]:
    """The room's last `count` messages, oldest first (newest-first pages, then reversed)."""
    found: list[Message] = []
    cursor: str | None = None
    while len(found) < count:
        page = await client.history(room, cursor=cursor, limit=min(200, count - len(found)))
        found.extend(page.messages)
        cursor = page.next_cursor
        if cursor is None:
            break
    return found[::-1]


async def _after(client: AgentHubClient, room: str, seq: int, count: int) -> list[Message]:
    """Up to `count` messages after `seq`, oldest first."""
    found: list[Message] = []
    while len(found) < count:
        want = min(200, count - len(found))
        page = await client.catch_up(room, seq, limit=want)
        found.extend(page)
        if len(page) < want:
            break
        seq = page[-1].seq
    return found

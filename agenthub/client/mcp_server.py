"""`agenthub mcp`: AgentHub as MCP tools, over stdio, for Claude Code and other MCP clients.

The tools themselves are defined once, in `agenthub.mcp.tools` (the hub's own `/mcp` endpoint
serves the same ones); this module supplies their backend, the SDK (`SdkBackend`), and runs
them over stdio. Configured like the agent CLI (AGENTHUB_URL / AGENTHUB_TOKEN, else the
`agenthub login` file); `AGENTHUB_MCP_TOOLS=core` serves only the tools to read,
send, wait and check the inbox.
stdout carries the protocol and nothing else; logs go to stderr.

Presence: the server keeps one Socket.IO connection open for its whole session, joined to every
room of the agent (and to rooms it is added to), so an agent with an open MCP session shows as
present to the others. `who_is_here` asks on that connection (`room:join`, the ack's `present`).

Channel mode (`agenthub mcp --channel`): new messages from other agents are pushed into
Claude Code as `notifications/claude/channel` events (see `agenthub.client.channel`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError

from agenthub.client import AgentHubClient, AgentHubError, hints
from agenthub.client.channel import CHANNEL_INSTRUCTIONS, Channel, coalesce_from_env
from agenthub.client.credentials import NotConfigured, load_credentials
from agenthub.client.models import (
    AckAnswer,
    Agent,
    Claim,
    InboxPage,
    Message,
    PendingAck,
    Room,
    SearchPage,
)
from agenthub.mcp.tools import (
    FULL,
    INSTRUCTIONS,
    AgentHubMCP,
    Session,
    build_server,
    profile_from_env,
)

log = logging.getLogger("agenthub.mcp")


class SdkBackend:
    """The tools' `Backend` over the SDK: every call is a request to the hub."""

    words = hints.MCP
    max_message_bytes: int | None = None  # the hub's own limit; it names it when refusing

    def __init__(self, client: AgentHubClient) -> None:
        self.client = client
        self.url = client.url

    async def me(self) -> Agent:
        return (await self.client.session()).agent

    async def rooms(self) -> list[Room]:
        return await self.client.rooms()

    async def agents(self) -> list[Agent]:
        return await self.client.agents()

    async def latest(self, room: str, limit: int) -> tuple[list[Message], bool]:
        page = await self.client.history(room, limit=limit)
        return page.messages[::-1], page.next_cursor is not None

    async def after(self, room: str, after_seq: int, limit: int) -> list[Message]:
        return await self.client.catch_up(room, after_seq, limit=limit)

    async def latest_seq(self, room: str) -> int:
        return await self.client.latest_seq(room)

    async def send(
        self,
        room: str,
        body: str,
        reply_to: int | None = None,
        ack_from: list[str] | None = None,
    ) -> Message:
        return await self.client.send(room, body, reply_to=reply_to, ack_from=ack_from)

    async def send_direct(self, agent: str, body: str) -> Message:
        return await self.client.send_direct(agent, body)

    async def wait(self, room: str, after_seq: int, timeout: float) -> list[Message]:  # noqa: ASYNC109
        return await self.client.wait_for_messages(room, after_seq, timeout)

    async def present(self, room: str) -> list[str]:
        return await self.client.who_is_here(room)

    async def members(self, room: str) -> list[Agent]:
        return await self.client.members(room)

    async def create_room(self, slug: str, name: str | None) -> Room:
        return await self.client.create_room(slug, name)

    async def add_member(self, room: str, agent: str) -> Agent:
        return await self.client.add_member(room, agent)

    async def inbox(self, unread_only: bool, limit: int) -> InboxPage:
        return await self.client.inbox(unread_only=unread_only, newest=not unread_only, limit=limit)

    async def mark_inbox_read(self, up_to: str) -> int:
        return await self.client.mark_inbox_read(up_to)

    async def ack(self, room: str, seq: int, status: str, note: str | None) -> AckAnswer:
        return await self.client.ack(room, seq, status, note)

    async def pending_acks(self, limit: int) -> list[PendingAck]:
        return await self.client.pending_acks(limit=limit)

    async def claim(self, room: str, resource: str, ttl: int, exclusive: bool) -> Claim:
        return await self.client.claim(room, resource, ttl, exclusive=exclusive)

    async def release(self, room: str, resource: str) -> None:
        await self.client.release(room, resource)

    async def claims(self, room: str) -> list[Claim]:
        return await self.client.claims(room)

    async def search(self, query: str, room: str | None, limit: int) -> SearchPage:
        return await self.client.search(query, room=room, limit=limit)


def build_stdio_server(
    session: Session | None, problem: str | None, profile: str, channel: bool
) -> AgentHubMCP:
    """The stdio server: every call on `session`, or, without one, `problem` told to the model."""

    async def resolve(ctx: Context) -> Session:
        if session is None:
            raise ToolError(
                f"{problem}. Ask the user to add AGENTHUB_URL and AGENTHUB_TOKEN to this MCP "
                "server's environment, then restart it."
            )
        return session

    instructions = INSTRUCTIONS + (" " + CHANNEL_INSTRUCTIONS if channel else "")
    return build_server(resolve, profile, instructions)


async def _stay_present(client: AgentHubClient) -> None:
    """Presence for the whole session; a failure here must not stop the tools."""
    try:
        await client.stay_present()
    except AgentHubError as exc:
        # The presence socket keeps retrying in the background; this is only the first attempt.
        log.warning("not present in rooms yet (%s); still trying", exc)


@contextlib.asynccontextmanager
async def _background(*tasks: asyncio.Task[None]) -> AsyncIterator[None]:
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def serve(profile: str = FULL, channel: bool = False) -> None:
    try:
        credentials = load_credentials()
    except NotConfigured as exc:
        log.error("%s", exc)
        await build_stdio_server(None, str(exc), profile, channel).run_stdio_async()
        return
    async with AgentHubClient(credentials.url, credentials.token) as client:
        server = build_stdio_server(Session(SdkBackend(client)), None, profile, channel)
        presence = asyncio.create_task(_stay_present(client), name="agenthub-mcp-presence")
        if not channel:
            async with _background(presence):
                await server.run_stdio_async()
            return
        pusher = Channel(client)
        server.middleware.append(pusher.middleware)
        pushing = asyncio.create_task(pusher.run(), name="agenthub-mcp-channel")
        async with _background(presence, pushing):
            await server.run_stdio_channel()


def main(channel: bool = False) -> None:
    # Before MCPServer configures logging (it only adds handlers when there are none): plain
    # lines on stderr, never stdout, which belongs to the protocol.
    logging.basicConfig(
        stream=sys.stderr, level=logging.WARNING, format="agenthub mcp: %(levelname)s %(message)s"
    )
    try:
        profile = profile_from_env()
        if channel:
            coalesce_from_env()
    except ValueError as exc:
        log.error("%s", exc)
        sys.exit(2)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(profile, channel))

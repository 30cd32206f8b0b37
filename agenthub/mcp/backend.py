"""The tools' `Backend` on the hub itself: the services, in-process, as the caller's agent.

Each method is one service call, as an HTTP route is: the same checks, the same send path
(`MessageService.send`), the same audit rows. What the HTTP edge's request schemas check
before a service runs (a room's slug and name) is checked here with the same schemas. Domain
errors leave as the SDK's errors of the same code, so the tools explain them the same way
whichever edge serves them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from agenthub.auth.jwt import Principal
from agenthub.client import hints
from agenthub.client.errors import BY_CODE, AgentHubError, Internal
from agenthub.client.errors import InvalidRequest as ClientInvalidRequest
from agenthub.client.errors import RateLimited as ClientRateLimited
from agenthub.client.models import (
    AckAnswer,
    Agent,
    Claim,
    InboxPage,
    Message,
    PendingAck,
    Room,
    SearchHit,
    SearchPage,
)
from agenthub.errors import AppError, RateLimited
from agenthub.realtime.commits import CommitSignals
from agenthub.rooms.schemas import MemberAdd, RoomCreate
from agenthub.services import Services

T = TypeVar("T")

# A wait re-reads the room this often even without a local commit signal: a message committed
# by another server process (several nodes share the database) wakes no one here.
WAIT_POLL_S = 2.0
PAGE = 200

REMOTE = hints.Vocabulary(
    list_rooms="call list_rooms to see your rooms",
    create_room="create_room to make it",
    list_agents="call list_agents to see the agents' names",
    fix_login="ask the user for a valid API token in this MCP server's Authorization header "
    "(Bearer agt_…)",
    check_url="ask the user to check this MCP server's URL",
    last_seq="pass lastSeq from read_messages or the seq that send_message returned",
    escalate="tell the user",
)


def client_error(exc: AppError) -> AgentHubError:
    """The SDK's error for a domain error (same code, same sentence)."""
    if isinstance(exc, RateLimited):
        return ClientRateLimited(exc.message, exc.retry_after)
    return BY_CODE.get(exc.code, Internal)(exc.message)


def _wire(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", by_alias=True)


class ServiceBackend:
    words = REMOTE

    def __init__(
        self,
        services: Services,
        principal: Principal,
        url: str,
        signals: CommitSignals,
        present: Callable[[str], Awaitable[list[str]]] | None = None,
    ) -> None:
        self.services = services
        self.principal = principal
        self.url = url
        self.signals = signals
        self.max_message_bytes: int | None = services.settings.max_message_bytes
        self._present = (
            present  # room id -> agent ids present (all nodes), or None without real time
        )

    async def _hub(self, work: Awaitable[T]) -> T:
        try:
            return await work
        except AppError as exc:
            raise client_error(exc) from None

    @staticmethod
    def _checked(schema: type[BaseModel], data: dict[str, Any]) -> Any:
        try:
            return schema.model_validate(data)
        except ValidationError as exc:
            first = exc.errors(include_url=False, include_input=False)[0]
            name = ".".join(str(part) for part in first["loc"])
            said = str(first["msg"]).removeprefix("Value error, ")
            raise ClientInvalidRequest(f"argument '{name}' is invalid: {said}") from None

    async def me(self) -> Agent:
        return Agent.from_wire(_wire(await self._hub(self.services.agents.me(self.principal))))

    async def rooms(self) -> list[Room]:
        rooms = await self._hub(self.services.rooms.list_for(self.principal, all_rooms=False))
        return [Room.from_wire(_wire(r)) for r in rooms]

    async def agents(self) -> list[Agent]:
        return [Agent.from_wire(_wire(a)) for a in await self._hub(self.services.agents.list_all())]

    async def room(self, room: str) -> Room:
        found = await self._hub(self.services.rooms.room_for(self.principal, room, admin_ok=True))
        return Room.from_wire(_wire(found))

    async def _page(
        self, room: str, after_seq: int | None, limit: int
    ) -> tuple[list[Message], bool]:
        page = await self._hub(
            self.services.messages.history(
                self.principal, room, cursor=None, after_seq=after_seq, limit=limit
            )
        )
        messages = [Message.from_wire(_wire(m)) for m in page.messages]
        return messages, page.next_cursor is not None

    async def latest(self, room: str, limit: int) -> tuple[list[Message], bool]:
        newest_first, more = await self._page(room, None, limit)
        return newest_first[::-1], more

    async def after(self, room: str, after_seq: int, limit: int) -> list[Message]:
        return (await self._page(room, after_seq, limit))[0]

    async def latest_seq(self, room: str) -> int:
        newest, _ = await self._page(room, None, 1)
        return newest[0].seq if newest else 0

    async def send(
        self,
        room: str,
        body: str,
        reply_to: int | None = None,
        ack_from: list[str] | None = None,
    ) -> Message:
        wire, _ = await self._hub(
            self.services.messages.send(
                self.principal, room, body, reply_to=reply_to, ack_from=ack_from
            )
        )
        return Message.from_wire(wire)

    async def send_direct(self, agent: str, body: str) -> Message:
        wire, _ = await self._hub(
            self.services.coordination.send_direct(self.principal, agent, body)
        )
        return Message.from_wire(wire)

    async def wait(self, room: str, after_seq: int, timeout: float) -> list[Message]:  # noqa: ASYNC109
        room_id = str((await self.room(room)).id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            # Watch before reading: a commit between the read and the wait still wakes it.
            event = self.signals.watch(room_id)
            try:
                found = await self.after(room, after_seq, PAGE)
                left = deadline - loop.time()
                if found or left <= 0:
                    return found
                try:
                    async with asyncio.timeout(min(left, WAIT_POLL_S)):
                        await event.wait()
                except TimeoutError:
                    pass
            finally:
                self.signals.unwatch(room_id, event)

    async def present(self, room: str) -> list[str]:
        room_id = await self._hub(self.services.rooms.member_room_id(self.principal, room))
        return list(await self._present(str(room_id))) if self._present is not None else []

    async def members(self, room: str) -> list[Agent]:
        found = await self._hub(self.services.rooms.members(self.principal, room))
        return [Agent.from_wire(_wire(a)) for a in found]

    async def create_room(self, slug: str, name: str | None) -> Room:
        body: RoomCreate = self._checked(RoomCreate, {"slug": slug, "name": name or slug})
        made = await self._hub(self.services.rooms.create(self.principal, body.slug, body.name))
        return Room.from_wire(_wire(made))

    async def add_member(self, room: str, agent: str) -> Agent:
        body: MemberAdd = self._checked(MemberAdd, {"agent": agent})
        added, _ = await self._hub(self.services.rooms.add_member(self.principal, room, body.agent))
        return Agent.from_wire(_wire(added))

    async def inbox(self, unread_only: bool, limit: int) -> InboxPage:
        page = await self._hub(
            self.services.coordination.inbox(
                self.principal,
                cursor=None,
                unread_only=unread_only,
                limit=limit,
                newest=not unread_only,
            )
        )
        return InboxPage.from_wire(page)

    async def mark_inbox_read(self, up_to: str) -> int:
        state = await self._hub(self.services.coordination.mark_read(self.principal, up_to))
        return int(state["unread"])

    async def ack(self, room: str, seq: int, status: str, note: str | None) -> AckAnswer:
        answer = await self._hub(
            self.services.coordination.answer(self.principal, room, seq, status, note)
        )
        return AckAnswer.from_wire(answer)

    async def pending_acks(self, limit: int) -> list[PendingAck]:
        found = await self._hub(self.services.coordination.pending(self.principal, limit))
        return [PendingAck.from_wire(p) for p in found["pending"]]

    async def claim(self, room: str, resource: str, ttl: int, exclusive: bool) -> Claim:
        made, _ = await self._hub(
            self.services.claims.claim(self.principal, room, resource, ttl, exclusive)
        )
        return Claim.from_wire(_wire(made))

    async def release(self, room: str, resource: str) -> None:
        await self._hub(self.services.claims.release(self.principal, room, resource))

    async def claims(self, room: str) -> list[Claim]:
        found = await self._hub(self.services.claims.list(self.principal, room))
        return [Claim.from_wire(_wire(c)) for c in found]

    async def search(self, query: str, room: str | None, limit: int) -> SearchPage:
        page = await self._hub(
            self.services.search.search(self.principal, query, room=room, limit=limit)
        )
        hits = [SearchHit.from_wire(_wire(hit)) for hit in page.messages]
        return SearchPage(hits=hits, next_cursor=page.next_cursor)

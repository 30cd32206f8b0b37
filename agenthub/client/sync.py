"""`SyncClient`: the SDK for scripts without an event loop.

It runs an `AgentHubClient` on an event loop in a background thread, and each method waits for
the result. The loop keeps running between calls, so sockets answer the server's heartbeats
even while the script is busy elsewhere. Close it (or use `with`) to stop the thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Generator, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

from agenthub.client.client import DEFAULT_TIMEOUT_S, AgentHubClient
from agenthub.client.models import (
    AckAnswer,
    Agent,
    Claim,
    HistoryPage,
    InboxPage,
    Message,
    PendingAck,
    Room,
    SearchPage,
    Thread,
)
from agenthub.client.subscription import Subscription
from agenthub.client.transport import DEFAULT_ATTEMPTS

T = TypeVar("T")


class SyncClient:
    """The same operations as `AgentHubClient`, blocking."""

    def __init__(
        self,
        url: str,
        api_token: str,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        attempts: int = DEFAULT_ATTEMPTS,
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="agenthub-client", daemon=True
        )
        self._thread.start()

        async def build() -> AgentHubClient:  # httpx wants its client made inside the loop
            return AgentHubClient(url, api_token, timeout=timeout, attempts=attempts)

        self._client = self._run(build())
        self._closed = False

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._run(self._client.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def url(self) -> str:
        return self._client.url

    def me(self) -> Agent:
        return self._run(self._client.me())

    def agents(self) -> list[Agent]:
        return self._run(self._client.agents())

    def agent(self, agent: str) -> Agent:
        return self._run(self._client.agent(agent))

    def rooms(self, *, all_rooms: bool = False) -> list[Room]:
        return self._run(self._client.rooms(all_rooms=all_rooms))

    def create_room(self, slug: str, name: str | None = None) -> Room:
        return self._run(self._client.create_room(slug, name))

    def room(self, room: str) -> Room:
        return self._run(self._client.room(room))

    def members(self, room: str) -> list[Agent]:
        return self._run(self._client.members(room))

    def add_member(self, room: str, agent: str) -> Agent:
        return self._run(self._client.add_member(room, agent))

    def remove_member(self, room: str, agent: str) -> None:
        self._run(self._client.remove_member(room, agent))

    def send(
        self,
        room: str,
        body: str,
        client_msg_id: str | None = None,
        *,
        reply_to: int | None = None,
        ack_from: Sequence[str] | None = None,
    ) -> Message:
        return self._run(
            self._client.send(room, body, client_msg_id, reply_to=reply_to, ack_from=ack_from)
        )

    def send_direct(self, agent: str, body: str, client_msg_id: str | None = None) -> Message:
        return self._run(self._client.send_direct(agent, body, client_msg_id))

    def inbox(
        self,
        *,
        unread_only: bool = False,
        cursor: str | None = None,
        limit: int = 50,
        newest: bool = False,
    ) -> InboxPage:
        return self._run(
            self._client.inbox(unread_only=unread_only, cursor=cursor, limit=limit, newest=newest)
        )

    def mark_inbox_read(self, up_to: str) -> int:
        return self._run(self._client.mark_inbox_read(up_to))

    def ack(self, room: str, seq: int, status: str, note: str | None = None) -> AckAnswer:
        return self._run(self._client.ack(room, seq, status, note))

    def pending_acks(self, *, limit: int = 50) -> list[PendingAck]:
        return self._run(self._client.pending_acks(limit=limit))

    def thread(self, room: str, seq: int, *, after_seq: int = 0, limit: int = 50) -> Thread:
        return self._run(self._client.thread(room, seq, after_seq=after_seq, limit=limit))

    def history(self, room: str, *, cursor: str | None = None, limit: int = 50) -> HistoryPage:
        return self._run(self._client.history(room, cursor=cursor, limit=limit))

    def catch_up(self, room: str, after_seq: int, *, limit: int = 200) -> list[Message]:
        return self._run(self._client.catch_up(room, after_seq, limit=limit))

    def latest_seq(self, room: str) -> int:
        return self._run(self._client.latest_seq(room))

    def wait_for_messages(self, room: str, after_seq: int, timeout: float) -> list[Message]:
        return self._run(self._client.wait_for_messages(room, after_seq, timeout))

    def claim(self, room: str, resource: str, ttl_seconds: int, *, exclusive: bool = True) -> Claim:
        return self._run(self._client.claim(room, resource, ttl_seconds, exclusive=exclusive))

    def renew_claim(self, room: str, resource: str, ttl_seconds: int) -> Claim:
        return self._run(self._client.renew_claim(room, resource, ttl_seconds))

    def release(self, room: str, resource: str) -> None:
        self._run(self._client.release(room, resource))

    def claims(self, room: str, resource: str | None = None) -> list[Claim]:
        return self._run(self._client.claims(room, resource))

    def search(
        self,
        query: str,
        *,
        room: str | None = None,
        sender: str | None = None,
        cursor: str | None = None,
        limit: int = 20,
    ) -> SearchPage:
        return self._run(
            self._client.search(query, room=room, sender=sender, cursor=cursor, limit=limit)
        )

    def who_is_here(self, room: str) -> list[str]:
        return self._run(self._client.who_is_here(room))

    def messages(
        self,
        rooms: Sequence[str] | None = None,
        *,
        after: Mapping[str, int] | None = None,
        from_beginning: bool = False,
    ) -> Generator[Message, None, None]:
        """Blocking iteration over a subscription, connected before this returns. Closing the
        generator (or the client) closes the subscription."""

        async def open_sub() -> Subscription:
            sub = self._client.messages(rooms, after=after, from_beginning=from_beginning)
            await sub.start()
            return sub

        return self._iterate(self._run(open_sub()))

    def _iterate(self, sub: Subscription) -> Generator[Message, None, None]:
        try:
            while True:
                try:
                    yield self._run(anext(sub))
                except StopAsyncIteration:
                    return
        finally:
            if not self._closed:
                self._run(sub.aclose())

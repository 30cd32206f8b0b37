"""`AgentHubClient`: everything an agent does on AgentHub, over the v1 contract.

Use it as an async context manager (or call `aclose()`): it owns an HTTP connection pool,
and possibly sockets (subscriptions, presence) that must be closed in the same event loop.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from itertools import pairwise
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from agenthub.client.errors import BadResponse, ResponseTooLarge
from agenthub.client.models import (
    AckAnswer,
    Agent,
    Claim,
    HistoryPage,
    InboxItem,
    InboxPage,
    Message,
    PendingAck,
    Room,
    SearchHit,
    SearchPage,
    Thread,
)
from agenthub.client.presence import PresenceSocket
from agenthub.client.session import Session, SessionCache
from agenthub.client.subscription import PAGE, Subscription
from agenthub.client.transport import (
    DEFAULT_ATTEMPTS,
    DEFAULT_MAX_RESPONSE_BYTES,
    Bounds,
    Rest,
    decode_json,
    plaintext_warning,
)

log = logging.getLogger("agenthub.client")

DEFAULT_TIMEOUT_S = 30.0


def _seg(ref: str) -> str:
    """A room or agent reference as one path segment."""
    return quote(ref, safe="")


def _items(body: Any, key: str) -> list[Any]:
    """The list under `key` of an answer, or `BadResponse`."""
    items = body.get(key) if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise BadResponse(f"the server's answer has no list of {key}")
    return items


def _check_page(messages: list[Message], limit: int, after_seq: int | None) -> None:
    """A page is at most `limit` messages, each seq once, in order: ascending after `after_seq`
    (catch-up), else descending (history). Loops that page on depend on it to end."""
    if len(messages) > limit:
        raise BadResponse(f"the server returned {len(messages)} messages for a limit of {limit}")
    seqs = [m.seq for m in messages]
    if after_seq is not None:
        ordered = all(a < b for a, b in pairwise([after_seq, *seqs]))
    else:
        ordered = all(a > b for a, b in pairwise(seqs))
    if not ordered:
        raise BadResponse("the server returned messages out of order")


class AgentHubClient:
    """An agent's connection to one AgentHub server.

    `url` is the server's base URL (`http://127.0.0.1:3000`); `api_token` the agent's long-lived
    `agt_…` token, traded for session JWTs as needed (see `agenthub.client.session`).
    `attempts` bounds the tries of a retried request (network failures and 503s); `timeout`
    bounds each request as a whole, retries included; an answer larger than
    `max_response_bytes` is refused (`ResponseTooLarge`)."""

    def __init__(
        self,
        url: str,
        api_token: str,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        attempts: int = DEFAULT_ATTEMPTS,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        self.url = url.strip().rstrip("/")
        if (warning := plaintext_warning(self.url)) is not None:
            log.warning("%s", warning)
        bounds = Bounds(deadline_s=timeout, max_bytes=max_response_bytes)
        # Redirects are never followed (see `transport.fetch`), whatever httpx defaults to.
        self._http = httpx.AsyncClient(base_url=self.url, timeout=timeout, follow_redirects=False)
        self._sessions = SessionCache(self._http, api_token, bounds=bounds)
        self._rest = Rest(self._http, self._sessions, attempts, bounds)
        self._presence: PresenceSocket | None = None
        self._subscriptions: set[Subscription] = set()

    async def __aenter__(self) -> AgentHubClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close subscriptions, the presence socket and the HTTP pool."""
        for sub in list(self._subscriptions):
            await sub.aclose()
        if self._presence is not None:
            await self._presence.close()
            self._presence = None
        await self._http.aclose()

    # ---- session ----

    async def session(self) -> Session:
        """The current session (opened now if needed): the JWT, its expiry, and who you are."""
        return await self._sessions.current()

    @property
    def sessions_opened(self) -> int:
        """How many session JWTs this client has obtained so far."""
        return self._sessions.exchanges

    # ---- agents ----

    async def me(self) -> Agent:
        return Agent.from_wire(await self._get("/api/v1/agents/me"))

    async def agents(self) -> list[Agent]:
        body = await self._get("/api/v1/agents")
        return [Agent.from_wire(a) for a in _items(body, "agents")]

    async def agent(self, agent: str) -> Agent:
        """One agent by id or name."""
        return Agent.from_wire(await self._get(f"/api/v1/agents/{_seg(agent)}"))

    # ---- rooms ----

    async def rooms(self, *, all_rooms: bool = False) -> list[Room]:
        """Your rooms; every room with `all_rooms` (admins only)."""
        params = {"all": "true"} if all_rooms else None
        body = await self._get("/api/v1/rooms", params=params)
        return [Room.from_wire(r) for r in _items(body, "rooms")]

    async def create_room(self, slug: str, name: str | None = None) -> Room:
        """A new room with you as its first member; `Conflict` if the slug is taken."""
        response = await self._rest.call(
            "POST", "/api/v1/rooms", json={"slug": slug, "name": name or slug}
        )
        return Room.from_wire(decode_json(response))

    async def room(self, room: str) -> Room:
        """One room by id or slug (members and admins)."""
        return Room.from_wire(await self._get(f"/api/v1/rooms/{_seg(room)}"))

    async def members(self, room: str) -> list[Agent]:
        body = await self._get(f"/api/v1/rooms/{_seg(room)}/members")
        return [Agent.from_wire(a) for a in _items(body, "members")]

    async def add_member(self, room: str, agent: str) -> Agent:
        """Add an agent (id or name) to a room you are in; no error if it already is a member."""
        response = await self._rest.call(
            "POST", f"/api/v1/rooms/{_seg(room)}/members", json={"agent": agent}, retry=True
        )
        return Agent.from_wire(decode_json(response))

    async def remove_member(self, room: str, agent: str) -> None:
        """Remove a member: admins remove anyone, an agent only itself (leaving the room)."""
        await self._rest.call("DELETE", f"/api/v1/rooms/{_seg(room)}/members/{_seg(agent)}")

    # ---- messages ----

    async def send(
        self,
        room: str,
        body: str,
        client_msg_id: str | None = None,
        *,
        reply_to: int | None = None,
        ack_from: Sequence[str] | None = None,
    ) -> Message:
        """Send a message and return it as stored.

        Always carries a `clientMsgId` (a new UUID unless given), and retries network failures
        and 503s with that same id, so a message is stored once however often it is retried.
        Pass your own `client_msg_id` to make retries across process restarts safe too.
        `reply_to`: the seq (same room) it answers; `ack_from`: members (names or ids) asked
        to acknowledge it. `@name`s of members mention them; the returned message's
        `ignored_mentions` lists those that are not members (kept as text)."""
        payload: dict[str, Any] = {
            "body": body,
            "clientMsgId": client_msg_id or str(uuid.uuid4()),
        }
        if reply_to is not None:
            payload["replyTo"] = reply_to
        if ack_from:
            payload["ackFrom"] = list(ack_from)
        response = await self._rest.call(
            "POST", f"/api/v1/rooms/{_seg(room)}/messages", json=payload, retry=True
        )
        return Message.from_wire(decode_json(response))

    async def send_direct(self, agent: str, body: str, client_msg_id: str | None = None) -> Message:
        """Send privately to another agent (name or id), in the direct room of the two, which
        the first message creates; retried safely like `send`."""
        payload = {"body": body, "clientMsgId": client_msg_id or str(uuid.uuid4())}
        response = await self._rest.call(
            "POST", f"/api/v1/direct/{_seg(agent)}/messages", json=payload, retry=True
        )
        return Message.from_wire(decode_json(response))

    # ---- coordination: inbox, acknowledgements, threads ----

    async def inbox(
        self,
        *,
        unread_only: bool = False,
        cursor: str | None = None,
        limit: int = 50,
        newest: bool = False,
    ) -> InboxPage:
        """Your inbox items oldest first: after `cursor`, or (`unread_only`) after what you
        marked read; `newest`: the latest `limit` instead. Mark them read with
        `mark_inbox_read`."""
        params: dict[str, Any] = {"limit": limit}
        if unread_only:
            params["unread"] = "true"
        if newest:
            params["newest"] = "true"
        if cursor is not None:
            params["cursor"] = cursor
        return InboxPage.from_wire(await self._get("/api/v1/inbox", params=params))

    async def mark_inbox_read(self, up_to: str) -> int:
        """Mark your inbox read up to item `up_to` (never backwards); returns how many items
        are still unread."""
        response = await self._rest.call(
            "POST", "/api/v1/inbox/read", json={"upTo": up_to}, retry=True
        )
        body = decode_json(response)
        unread = body.get("unread") if isinstance(body, dict) else None
        if not isinstance(unread, int) or isinstance(unread, bool):
            raise BadResponse("the server's answer has no unread count")
        return unread

    async def ack(self, room: str, seq: int, status: str, note: str | None = None) -> AckAnswer:
        """Answer message `seq` of `room`, which asked you: seen, done, blocked or rejected."""
        payload: dict[str, Any] = {"status": status}
        if note is not None:
            payload["note"] = note
        response = await self._rest.call(
            "POST", f"/api/v1/rooms/{_seg(room)}/messages/{seq}/acks", json=payload, retry=True
        )
        return AckAnswer.from_wire(decode_json(response))

    async def pending_acks(self, *, limit: int = 50) -> list[PendingAck]:
        """Messages that asked you to acknowledge them and have no answer from you yet."""
        body = await self._get("/api/v1/acks/pending", params={"limit": limit})
        return [PendingAck.from_wire(p) for p in _items(body, "pending")]

    async def thread(self, room: str, seq: int, *, after_seq: int = 0, limit: int = 50) -> Thread:
        """The thread message `seq` belongs to: its root, and replies after `after_seq`."""
        params = {"afterSeq": after_seq, "limit": limit}
        body = await self._get(f"/api/v1/rooms/{_seg(room)}/messages/{seq}/thread", params=params)
        return Thread.from_wire(body)

    async def history(
        self, room: str, *, cursor: str | None = None, limit: int = 50
    ) -> HistoryPage:
        """One page of the room's history, newest first; pass `next_cursor` for older ones.

        The page may hold fewer than `limit` messages when that many would make an answer
        larger than the client accepts; `next_cursor` then leads on to the rest."""
        while True:
            params: dict[str, Any] = {"limit": limit}
            if cursor is not None:
                params["cursor"] = cursor
            try:
                body = await self._get(f"/api/v1/rooms/{_seg(room)}/messages", params=params)
            except ResponseTooLarge:
                if limit == 1:
                    raise
                limit //= 2
                continue
            messages = [Message.from_wire(m) for m in _items(body, "messages")]
            _check_page(messages, limit, None)
            next_cursor = body.get("nextCursor")
            if next_cursor is not None and (not isinstance(next_cursor, str) or not messages):
                raise BadResponse("the server returned a malformed history page")
            return HistoryPage(messages=messages, next_cursor=next_cursor)

    async def catch_up(self, room: str, after_seq: int, *, limit: int = PAGE) -> list[Message]:
        """Up to `limit` messages with seq > `after_seq`, oldest first.

        Fewer than `limit` means you are up to date; otherwise repeat from the last seq.
        (When `limit` messages would make one answer too large, they are fetched in smaller
        pages, so that promise holds.)"""
        found: list[Message] = []
        page_limit = limit
        while len(found) < limit:
            params = {"afterSeq": after_seq, "limit": page_limit}
            try:
                body = await self._get(f"/api/v1/rooms/{_seg(room)}/messages", params=params)
            except ResponseTooLarge:
                if page_limit == 1:
                    raise
                page_limit //= 2
                continue
            page = [Message.from_wire(m) for m in _items(body, "messages")]
            _check_page(page, page_limit, after_seq)
            found.extend(page)
            if len(page) < page_limit:
                break
            after_seq = page[-1].seq
            page_limit = min(page_limit, limit - len(found))
        return found

    async def latest_seq(self, room: str) -> int:
        """The seq of the room's newest message; 0 for an empty room."""
        page = await self.history(room, limit=1)
        return page.messages[0].seq if page.messages else 0

    def messages(
        self,
        rooms: Sequence[str] | None = None,
        *,
        after: Mapping[str, int] | None = None,
        from_beginning: bool = False,
        on_inbox: Callable[[InboxItem], None] | None = None,
    ) -> Subscription:
        """Follow rooms (ids or slugs; None = all yours, and those you join): each message once,
        in seq order, across reconnects. See `agenthub.client.subscription` for where each room
        starts (`after` maps a room to the last seq you already have).

        `on_inbox`, if given, is called with each inbox item announced (`inbox:new`) while the
        subscription is connected: live only, none for the time it was disconnected (read
        those with `inbox`). Keep it quick; it runs on the socket's task."""
        sub = Subscription(
            self,
            rooms,
            after,
            from_beginning,
            url=self.url,
            sessions=self._sessions,
            on_close=self._subscriptions.discard,
            on_inbox=on_inbox,
        )
        self._subscriptions.add(sub)
        return sub

    # A timeout parameter (ASYNC109) on purpose: at the timeout this returns [], it does not raise.
    async def wait_for_messages(
        self,
        room: str,
        after_seq: int,
        timeout: float,  # noqa: ASYNC109
    ) -> list[Message]:
        """Messages with seq > `after_seq` as soon as there is at least one; [] after `timeout`.

        Reads the history first (no socket when something is already there), then listens."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        found = await self.catch_up(room, after_seq)
        if found or timeout <= 0:
            return found
        async with self.messages([room], after={room: after_seq}) as sub:
            try:
                async with asyncio.timeout_at(deadline):
                    first = await anext(sub)
            except TimeoutError:
                return []
            return [first, *sub.take_buffered()]

    # ---- claims ----

    async def claim(
        self, room: str, resource: str, ttl_seconds: int, *, exclusive: bool = True
    ) -> Claim:
        """Claim a resource of a room (a file path, a task id) for `ttl_seconds` (1-86400),
        exclusively or shared. Claiming what you already hold renews it (and may change its
        mode). `Conflict` when another agent's claim is in the way: its message names the
        holder and the expiry."""
        response = await self._rest.call(
            "POST",
            f"/api/v1/rooms/{_seg(room)}/claims",
            json={"resource": resource, "ttlSeconds": ttl_seconds, "exclusive": exclusive},
            retry=True,
        )
        return Claim.from_wire(decode_json(response))

    async def renew_claim(self, room: str, resource: str, ttl_seconds: int) -> Claim:
        """Your live claim, now expiring `ttl_seconds` from now; `NotFound` if you hold none."""
        response = await self._rest.call(
            "POST",
            f"/api/v1/rooms/{_seg(room)}/claims/renew",
            json={"resource": resource, "ttlSeconds": ttl_seconds},
            retry=True,
        )
        return Claim.from_wire(decode_json(response))

    async def release(self, room: str, resource: str) -> None:
        """Give your claim up; `NotFound` if you hold none (expired, or never claimed)."""
        await self._rest.call(
            "DELETE", f"/api/v1/rooms/{_seg(room)}/claims", params={"resource": resource}
        )

    async def claims(self, room: str, resource: str | None = None) -> list[Claim]:
        """The room's live claims (on one resource, if given)."""
        params = {"resource": resource} if resource is not None else None
        body = await self._get(f"/api/v1/rooms/{_seg(room)}/claims", params=params)
        return [Claim.from_wire(c) for c in _items(body, "claims")]

    # ---- search ----

    async def search(
        self,
        query: str,
        *,
        room: str | None = None,
        sender: str | None = None,
        cursor: str | None = None,
        limit: int = 20,
    ) -> SearchPage:
        """Full-text search over the messages you may read (every room's, for an admin),
        best matches first; `room` and `sender` narrow it. Every word of `query` must match;
        `limit` is 1-50; pass `next_cursor` back for more."""
        params: dict[str, Any] = {"q": query, "limit": limit}
        for key, value in (("room", room), ("sender", sender), ("cursor", cursor)):
            if value is not None:
                params[key] = value
        body = await self._get("/api/v1/search/messages", params=params)
        hits = [SearchHit.from_wire(m) for m in _items(body, "messages")]
        if len(hits) > limit:
            raise BadResponse(f"the server returned {len(hits)} results for a limit of {limit}")
        next_cursor = body.get("nextCursor")
        if next_cursor is not None and not isinstance(next_cursor, str):
            raise BadResponse("the server returned a malformed search page")
        return SearchPage(hits=hits, next_cursor=next_cursor)

    # ---- presence ----

    async def who_is_here(self, room: str) -> list[str]:
        """The ids of the agents present in the room, you included.

        Joins the room on this client's presence socket, which stays connected (and present)
        until `aclose()`: presence belongs to a live connection, so asking makes you present."""
        room_id = (await self.room(room)).id
        return await self._presence_socket().join(room_id)

    async def stay_present(self) -> None:
        """Be present in all your rooms (and rooms you are added to) until `aclose()`."""
        await self._presence_socket().stay_everywhere()

    def _presence_socket(self) -> PresenceSocket:
        if self._presence is None:
            self._presence = PresenceSocket(self.url, self._sessions)
        return self._presence

    # ---- internals ----

    async def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return decode_json(await self._rest.call("GET", path, params=params, retry=True))

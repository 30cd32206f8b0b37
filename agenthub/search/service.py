"""Full-text search over the messages an agent may read: its rooms' (an admin's: every room)."""

from __future__ import annotations

from agenthub import cursors
from agenthub.agents import store as agents_store
from agenthub.auth.jwt import Principal
from agenthub.db.engine import Database
from agenthub.errors import InvalidRequest, NotFound, clip
from agenthub.rooms.service import RoomService
from agenthub.search import store
from agenthub.search.schemas import SearchPage, hit_out
from agenthub.search.text import MAX_QUERY_CHARS, MAX_TERMS, query_terms

DEFAULT_LIMIT = 20
MAX_LIMIT = 50
# Ranked results page by offset; deeper than this, a narrower query serves better.
MAX_OFFSET = 1000


class SearchService:
    def __init__(self, db: Database, rooms: RoomService) -> None:
        self.db = db
        self.rooms = rooms

    @staticmethod
    def check_query(query: object) -> list[str]:
        """The query's terms, or a 400 naming what is wrong with it (stores nothing)."""
        if not isinstance(query, str) or not query.strip():
            raise InvalidRequest("field 'q' must be a non-empty search query")
        if len(query) > MAX_QUERY_CHARS:
            raise InvalidRequest(f"field 'q' must be at most {MAX_QUERY_CHARS} characters")
        if "\x00" in query:
            raise InvalidRequest("field 'q' must not contain U+0000")
        terms = query_terms(query)
        if not terms:
            raise InvalidRequest("field 'q' has no words to search for (only punctuation)")
        if len(terms) > MAX_TERMS:
            raise InvalidRequest(f"field 'q' must have at most {MAX_TERMS} words")
        return terms

    async def search(
        self,
        actor: Principal,
        query: object,
        *,
        room: str | None = None,
        sender: str | None = None,
        cursor: str | None = None,
        limit: object = DEFAULT_LIMIT,
    ) -> SearchPage:
        """Ranked matches in the rooms the actor may read, `limit` at a time; `room` narrows
        to one room (403 / 404 as for its history), `sender` to one agent (404 if unknown)."""
        terms = self.check_query(query)
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
            raise InvalidRequest(f"field 'limit' must be an integer from 1 to {MAX_LIMIT}")
        offset = cursors.decode_offset(cursor) if cursor else 0
        if offset > MAX_OFFSET:
            raise InvalidRequest("query parameter 'cursor' is invalid")
        room_id = (await self.rooms.room_for(actor, room, admin_ok=True)).id if room else None
        async with self.db.read() as conn:
            sender_id = None
            if sender:
                found = await agents_store.get_by_ref(conn, sender)
                if found is None:
                    raise NotFound(f"agent '{clip(sender)}' does not exist")
                sender_id = found["id"]
            reader = None if actor.is_admin else actor.agent_id
            filters = store.Filters(reader, room_id, sender_id)
            rows = await store.search(conn, terms, filters, offset=offset, limit=limit + 1)
        hits = [hit_out(r) for r in rows[:limit]]
        more = len(rows) > limit and offset + limit <= MAX_OFFSET
        return SearchPage(
            messages=hits, next_cursor=cursors.encode_offset(offset + limit) if more else None
        )

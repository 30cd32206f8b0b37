"""A membership removal that commits while a connection is reading its agent's rooms: a
socket's handshake, or an MCP session over HTTP making its agent present.

The read may have seen the database before the removal; the removal's announcement reaches the
hub while that read is on its way back. Neither may put the agent back in the room the removal
took away (the socket in its fan-out, the session in its presence). To make that moment happen
every time, the server reaches PostgreSQL through a TCP proxy that holds the room read's answer
until the removal has committed: only the network between the server and its database is
steered, so this runs on PostgreSQL alone (SQLite has no such link; the hub's code is the same
on both)."""

from __future__ import annotations

import asyncio
import struct
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import socketio

from tests.client.test_mcp import call
from tests.conftest import SERVER_ENV
from tests.databases import fresh_pg_database, need_pg
from tests.faults import TcpProxy
from tests.mcp.test_http_endpoint import remote
from tests.realtime.test_realtime import NS, WAIT, connected, next_event
from tests.support import Agent, Server, start_server, stop_process

Room = dict[str, Any]


def rooms_read_of(agent: Agent) -> bytes:
    """The parameter of the read of `agent`'s rooms alone (`rooms.store.room_ids_for_agents`)
    as asyncpg sends it: a binary uuid[] of one element (header: 1 dimension, no nulls, the
    element type uuid (oid 2950), 1 element from index 1, 16 bytes)."""
    header = struct.pack(">iiiiii", 1, 0, 2950, 1, 1, 16)
    return header + uuid.UUID(agent.id).bytes


@pytest.fixture
def pg_url() -> Iterator[str]:
    need_pg("the race is steered on the link to PostgreSQL")
    with fresh_pg_database("race") as url:
        yield url


@pytest.fixture
async def proxied(pg_url: str, tmp_path: Path) -> AsyncIterator[tuple[Server, TcpProxy]]:
    """A server whose every connection to PostgreSQL goes through a proxy of the test's."""
    target = urlparse(pg_url)
    assert target.port is not None
    proxy = await TcpProxy(target.port).start()
    url = pg_url.replace(f"{target.hostname}:{target.port}", f"127.0.0.1:{proxy.port}", 1)
    server = None
    try:
        # In a thread: the proxy moves the server's bytes on this loop meanwhile.
        server = await asyncio.to_thread(start_server, "postgres", url, tmp_path, **SERVER_ENV)
        yield server, proxy
    finally:
        if server is not None:
            server.api.close()
            await asyncio.to_thread(stop_process, server.proc)
        await proxy.close()


def two_members_of_two_rooms(server: Server) -> tuple[Agent, Agent, Room, Room]:
    alice, bob = server.new_agent(), server.new_agent()
    return alice, bob, server.new_room(alice, bob), server.new_room(alice, bob)


async def remove_while_held(
    server: Server, proxy: TcpProxy, release: asyncio.Event, agent: Agent, room: Room
) -> None:
    """Once the database has answered the held read (the agent still a member then), remove
    the agent from the room over REST, then let the read's answer go on."""
    await asyncio.wait_for(proxy.until(lambda: proxy.held == 1), WAIT)
    removed = await asyncio.to_thread(
        server.admin.delete, f"/api/v1/rooms/{room['id']}/members/{agent.name}"
    )
    assert removed.status_code == 204, removed.text
    release.set()


async def test_a_removal_while_the_rooms_are_read_keeps_the_socket_out(
    proxied: tuple[Server, TcpProxy],
) -> None:
    server, proxy = proxied
    alice, bob, room, other = await asyncio.to_thread(two_members_of_two_rooms, server)
    release = proxy.hold_next_response(rooms_read_of(bob))
    client = socketio.AsyncSimpleClient()
    opening = asyncio.create_task(
        client.connect(
            server.base_url,
            auth={"token": bob.jwt},
            namespace=NS,
            transports=["websocket"],
            wait_timeout=WAIT,
        )
    )
    try:
        await remove_while_held(server, proxy, release, bob, room)
        await asyncio.wait_for(opening, WAIT)
        hello = await next_event(client, "connected")
        assert hello == {"agentId": bob.id, "rooms": [other["id"]]}
        # Nothing of the room reaches Bob: the marker in the other room comes first.
        async with connected(server, alice) as a:
            await a.call("message:send", {"roomId": room["id"], "body": "after"}, timeout=WAIT)
            marker = await a.call(
                "message:send", {"roomId": other["id"], "body": "marker"}, timeout=WAIT
            )
            assert (await next_event(client, "message:new"))["id"] == marker["message"]["id"]
        refused = await client.call(
            "message:send", {"roomId": room["id"], "body": "x"}, timeout=WAIT
        )
        assert refused["error"]["code"] == "forbidden"
    finally:
        release.set()
        opening.cancel()
        await client.disconnect()


async def test_a_removal_while_the_rooms_are_read_keeps_an_mcp_session_absent(
    proxied: tuple[Server, TcpProxy],
) -> None:
    server, proxy = proxied
    alice, bob, room, other = await asyncio.to_thread(two_members_of_two_rooms, server)
    release = proxy.hold_next_response(rooms_read_of(bob))
    try:
        async with remote(server, bob.token) as session:
            await remove_while_held(server, proxy, release, bob, room)
            async with remote(server, alice.token) as watcher:
                # Once Bob is present in the room he is still in, his session has joined
                # what it read (one room after the other, each a step of the same task)...
                for _ in range(50):
                    here = await call(watcher, "who_is_here", room=other["slug"])
                    if bob.name in here["present"]:
                        break
                    await asyncio.sleep(0.1)
                assert bob.name in here["present"]
                # ...and not the room he was removed from while it read.
                here = await call(watcher, "who_is_here", room=room["slug"])
                assert bob.name not in here["present"]
            listed = (await call(session, "list_rooms"))["rooms"]
            assert [r["slug"] for r in listed] == [other["slug"]]
    finally:
        release.set()

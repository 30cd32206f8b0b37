"""What to do next after a failure: one text for the MCP server and the agent CLI.

An error the server sends says what went wrong; an agent (a model or a person at a shell) also
needs the next step. The steps are the same for both interfaces, only the way to take them
differs ("call list_rooms" or "run `agenthub rooms`"), so each interface passes its own
`Vocabulary` and the sentences live here once.
"""

from __future__ import annotations

from dataclasses import dataclass

from agenthub.client.errors import (
    AgentHubError,
    BadResponse,
    Conflict,
    ConnectionError,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    Unauthorized,
    Unavailable,
)


@dataclass(frozen=True)
class Vocabulary:
    """How one interface names the actions a hint suggests."""

    list_rooms: str
    create_room: str
    list_agents: str
    fix_login: str
    check_url: str  # when what answers does not behave like AgentHub
    last_seq: str  # where a valid seq comes from
    escalate: str  # who hears of a failure that keeps coming back


MCP = Vocabulary(
    list_rooms="call list_rooms to see your rooms",
    create_room="create_room to make it",
    list_agents="call list_agents to see the agents' names",
    fix_login="ask the user for a valid token (AGENTHUB_TOKEN) and to restart this MCP server",
    check_url="ask the user to check AGENTHUB_URL",
    last_seq="pass lastSeq from read_messages or the seq that send_message returned",
    escalate="tell the user",
)

CLI = Vocabulary(
    list_rooms="run `agenthub rooms` to see your rooms",
    create_room="create it with `agenthub rooms create SLUG`",
    list_agents="`agenthub agents list` on the hub's machine shows the agents' names",
    fix_login="log in again with a valid token (`agenthub login`, or set AGENTHUB_TOKEN)",
    check_url="check the hub's address (`agenthub login --url`, or AGENTHUB_URL)",
    last_seq="pass a seq you have seen (`agenthub history ROOM -n 1 --json` shows the newest)",
    escalate="report it to the hub's operator",
)


def explain(
    exc: AgentHubError, url: str, room: str | None, agent: str | None, words: Vocabulary
) -> str:
    """The server's sentence, plus what the agent can do about it."""
    said = exc.message
    if isinstance(exc, Forbidden) and "not a member" in said:
        whose = f"'{room}'" if room is not None else "that room"
        return f"{said}; ask a member of {whose} to add you, or {words.list_rooms}"
    if isinstance(exc, NotFound) and said.startswith("room "):
        return f"{said}; {words.list_rooms} (or {words.create_room})"
    if isinstance(exc, NotFound) and said.startswith("agent "):
        return f"{said}; {words.list_agents}"
    if isinstance(exc, Conflict) and " is claimed " in said:
        return f"{said}; wait until then, or ask that agent to release it"
    if isinstance(exc, Conflict) and " claims in room " in said:
        return f"{said} (list the room's claims to see yours)"
    if isinstance(exc, NotFound) and said.startswith("you hold no claim"):
        return f"{said}; it may have expired: claim it again"
    if isinstance(exc, Conflict):
        return f"{said}; choose another slug, or ask a member of that room to add you"
    if isinstance(exc, PayloadTooLarge):
        return f"{said}; split the text into several shorter messages"
    if isinstance(exc, RateLimited):
        return f"{said}; wait {exc.retry_after:g} seconds, then try again"
    if isinstance(exc, Unauthorized):
        return f"{said}; the AgentHub API token is not accepted — {words.fix_login}"
    if isinstance(exc, BadResponse):
        return (
            f"{said}; what answers at {url} does not behave like an AgentHub server — "
            f"{words.check_url}"
        )
    if isinstance(exc, ConnectionError):
        return (
            f"{said}; AgentHub is unreachable — check that the server at {url} is running, "
            "then try again"
        )
    if isinstance(exc, Unavailable):
        return f"{said}; AgentHub is temporarily unavailable — try again in a few seconds"
    if isinstance(exc, Forbidden) and "did not ask you" in said:
        return f"{said}; only the agents a message asks can acknowledge it"
    if isinstance(exc, Forbidden) and "direct conversation" in said:
        return f"{said}; create a room for more agents instead"
    if isinstance(exc, Forbidden):
        return f"{said}; this needs a permission you do not have"
    if exc.code == "invalid_request":
        return f"the request was refused: {said}; fix that argument and try again"
    return f"AgentHub failed ({said}); try again, and {words.escalate} if it keeps failing"


def seq_beyond_newest(flag: str, after: int, room: str, latest: int, words: Vocabulary) -> str:
    """A wait after a seq no message has yet would wait for a message that cannot come soon."""
    return (
        f"{flag} {after} is beyond the newest message in '{room}' (seq {latest}); {words.last_seq}"
    )

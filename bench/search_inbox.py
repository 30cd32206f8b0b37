"""Search (and, once it exists, inbox) latency on a room of 100,000 messages, on PostgreSQL and
SQLite; writes its section of docs/BENCHMARKS.md.

    make bench-search                                   # both backends, 100,000 messages
    python -m bench.search_inbox --messages 20000 --backends sqlite   # a quicker look

The room is filled through the message store itself (`BatchStore.write`, the
writer's hot path: on SQLite that also writes the FTS5 rows, on PostgreSQL the generated
tsvector), 2,000 messages per transaction, then `agenthub serve` answers timed HTTP requests,
one at a time, from this process. Each probe is a `Probe`: to measure another endpoint (the
inbox, `GET /api/v1/inbox`), add one to `PROBES`; a probe whose endpoint answers 404 on the
first try is reported as absent rather than failing the run.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import statistics
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.loadgen import say
from bench.matrix import ROOT, agenthub, fresh_database, machine_facts

START = "<!-- bench/search_inbox.py: start -->"
END = "<!-- bench/search_inbox.py: end -->"
CHUNK = 2000
MENTION_EVERY = 10  # messages per mention of MEMBER: what fills its inbox
ACK_EVERY = 100  # messages per request that MEMBER acknowledge (unanswered: pending)
ROOM = "bench-search"
MEMBER = "bench-agent"  # searches as an ordinary member: the membership condition applies


@dataclass(frozen=True)
class Probe:
    name: str
    path: str
    params: dict[str, Any] = field(default_factory=dict)
    what: str = ""


PROBES = [
    Probe("search, rare word", "/api/v1/search/messages", {"q": "zanzibar"}, "1 in 10,000"),
    Probe("search, 1% word", "/api/v1/search/messages", {"q": "quokka"}, "1 in 100"),
    Probe(
        "search, two words",
        "/api/v1/search/messages",
        {"q": "quokka deploy"},
        "AND of a 1% and a common word",
    ),
    Probe(
        "search, every message",
        "/api/v1/search/messages",
        {"q": "agenthub"},
        "every message matches: ranking them all is the worst case",
    ),
    Probe("search, path", "/api/v1/search/messages", {"q": "store.py"}, "phrase in code"),
    Probe("search, CJK", "/api/v1/search/messages", {"q": "数据库"}, "3-character phrase"),
    Probe(
        "search, room + sender filter",
        "/api/v1/search/messages",
        {"q": "quokka", "room": ROOM, "sender": "bench-admin"},
        "",
    ),
    Probe("search, page 3", "/api/v1/search/messages", {"q": "quokka", "limit": 20}, "offset 40"),
    # The member is mentioned in 1 message of 10: 10,000 inbox items on 100,000 messages.
    Probe("inbox, oldest unread", "/api/v1/inbox", {"unread": "true", "limit": 50}, "50 items"),
    Probe("inbox, newest", "/api/v1/inbox", {"newest": "true", "limit": 50}, "50 items"),
    Probe("pending acknowledgements", "/api/v1/acks/pending", {"limit": 50}, "1 in 100 asked"),
]

WORDS = [
    "deploy",
    "review",
    "merge",
    "branch",
    "test",
    "failing",
    "green",
    "build",
    "cache",
    "latency",
    "index",
    "query",
    "plan",
    "room",
    "agent",
    "message",
    "claim",
    "release",
    "search",
    "token",
    "session",
    "socket",
    "retry",
    "backoff",
    "timeout",
    "metrics",
    "alert",
    "runbook",
    "shard",
    "replica",
    "vacuum",
    "analyze",
    "commit",
    "rollback",
    "schema",
    "migration",
    "writer",
    "batch",
]
CODE = ["agenthub/messages/store.py", "`parse_config(path)`", "foo.bar()", "snake_case_name"]
CJK = ["我们的数据库很慢", "データベースを再起動", "서버가 다시 시작됨"]


def body(i: int, rng: random.Random) -> str:
    words = rng.choices(WORDS, k=14)
    if i % 10_000 == 0:
        words.append("zanzibar")
    if i % 100 == 0:
        words.append("quokka")
    if i % 7 == 0:
        words.append(rng.choice(CODE))
    if i % 11 == 0:
        words.append(rng.choice(CJK))
    if i % MENTION_EVERY == 0:
        words.append(f"@{MEMBER}")
    return f"agenthub #{i}: " + " ".join(words)


async def fill(database_url: str, count: int) -> float:
    """Store `count` messages in room ROOM (created here) through the batch store; seconds."""
    import sqlalchemy as sa

    from agenthub.config import async_url
    from agenthub.db.engine import Database
    from agenthub.db.models import agents
    from agenthub.db.types import utcnow, uuid7
    from agenthub.messages.batch_store import (
        Extras,
        NewMessage,
        PgBatchStore,
        SqliteBatchStore,
    )
    from agenthub.rooms import store as rooms_store

    db = Database(async_url(database_url))
    try:
        async with db.write() as conn:
            admin = (
                await conn.execute(sa.select(agents.c.id).where(agents.c.name == "bench-admin"))
            ).scalar_one()
            room = await rooms_store.insert(conn, ROOM, "Search bench", admin)
            member = (
                await conn.execute(sa.select(agents.c.id).where(agents.c.name == MEMBER))
            ).scalar_one()
            await rooms_store.add_member(conn, room["id"], member)
        batch_store = SqliteBatchStore() if db.is_sqlite else PgBatchStore()
        rng = random.Random(42)
        started = time.perf_counter()
        done = 0
        while done < count:
            n = min(CHUNK, count - done)
            now = utcnow()
            messages = [
                NewMessage(uuid7(), room["id"], 0, admin, body(done + k, rng), None, now)
                for k in range(n)
            ]
            for k, m in enumerate(messages):  # as a coordinating send would store them
                if (done + k) % MENTION_EVERY == 0:
                    m.extras = Extras(mentions=(member,), inbox=((member, ("mention",)),))
                    m.inbox_ids = [(uuid7(), member, ("mention",))]
                elif (done + k) % ACK_EVERY == 5:  # never a multiple of MENTION_EVERY
                    m.extras = Extras(ack_from=(member,), inbox=((member, ("ack",)),))
                    m.inbox_ids = [(uuid7(), member, ("ack",))]
            async with db.driver() as conn:
                await batch_store.write(conn, messages)
            done += n
        elapsed = time.perf_counter() - started
        if not db.is_sqlite:
            async with db.write() as conn:
                await conn.execute(sa.text("ANALYZE messages"))
        return elapsed
    finally:
        await db.dispose()


def pg_plan(database_url: str) -> str:
    """PostgreSQL's plan for the rare-word search as an agent runs it (no setting changed)."""
    from sqlalchemy.dialects import postgresql

    from agenthub.search import store
    from agenthub.search.text import query_terms

    stmt = store.statement(
        "postgresql", query_terms("zanzibar"), store.Filters(uuid.uuid4()), offset=0, limit=21
    )
    sql = str(stmt.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    out = subprocess.run(
        ["psql", database_url, "-At", "-c", "EXPLAIN " + sql],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    lines = [line.strip().removeprefix("->  ") for line in out.splitlines()]
    for wanted in ("ix_messages_search_vector", "on messages"):
        for line in lines:
            if wanted in line:
                return line
    return lines[0]


def member_token(url: str, admin_token: str) -> str:
    """An ordinary agent's API token (MEMBER, created here; `fill` makes it a member)."""
    with httpx.Client(base_url=url, timeout=60) as http:
        jwt = http.post("/api/v1/sessions", headers={"Authorization": f"Bearer {admin_token}"})
        jwt.raise_for_status()
        auth = {"Authorization": f"Bearer {jwt.json()['token']}"}
        made = http.post(
            "/api/v1/agents", json={"name": MEMBER, "displayName": "Bench"}, headers=auth
        )
        made.raise_for_status()
        issued = http.post(f"/api/v1/agents/{MEMBER}/tokens", json={}, headers=auth)
        issued.raise_for_status()
        return str(issued.json()["token"])


def measure(url: str, token: str, rounds: int) -> dict[str, dict[str, Any]]:
    with httpx.Client(base_url=url, timeout=60) as http:
        jwt = http.post("/api/v1/sessions", headers={"Authorization": f"Bearer {token}"})
        jwt.raise_for_status()
        auth = {"Authorization": f"Bearer {jwt.json()['token']}"}
        results: dict[str, dict[str, Any]] = {}
        for probe in PROBES:
            params = dict(probe.params)
            if probe.name == "search, page 3":
                for _ in range(2):
                    page = http.get(probe.path, params=params, headers=auth).json()
                    params["cursor"] = page["nextCursor"]
            first = http.get(probe.path, params=params, headers=auth)
            if first.status_code == 404 and "route" in first.text:
                results[probe.name] = {"absent": True}
                continue
            first.raise_for_status()
            timings = []
            for _ in range(rounds):
                started = time.perf_counter()
                r = http.get(probe.path, params=params, headers=auth)
                timings.append((time.perf_counter() - started) * 1000)
                r.raise_for_status()
            timings.sort()
            results[probe.name] = {
                "p50": statistics.median(timings),
                "p99": timings[min(len(timings) - 1, round(0.99 * (len(timings) - 1)))],
                "found": max(
                    len(first.json().get(k, [])) for k in ("messages", "items", "pending")
                ),
            }
        return results


def run_backend(backend: str, count: int, rounds: int, work: Path) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)

    def go(database_url: str) -> dict[str, Any]:
        with agenthub(database_url, work) as server:
            token = member_token(server.url, server.admin_token)
            say(f"{backend}: filling {count:,} messages")
            fill_s = asyncio.run(fill(database_url, count))
            say(f"{backend}: filled in {fill_s:.1f}s; measuring")
            out: dict[str, Any] = {
                "fill_s": fill_s,
                "probes": measure(server.url, token, rounds),
            }
            if backend == "postgres":
                out["plan"] = pg_plan(database_url)
            return out

    if backend == "postgres":
        with fresh_database("search") as url:
            return go(url)
    return go(f"sqlite:///{work / 'bench.db'}")


def section(
    results: dict[str, dict[str, Any]], count: int, rounds: int, facts: dict[str, str]
) -> str:
    uptime = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    backends = list(results)
    lines = [
        START,
        f"## Search and inbox on a room of {count:,} messages",
        "",
        f"Written by `bench/search_inbox.py` (`make bench-search`): {count:,} messages in one",
        "room, filled through the message store, then each request timed "
        f"{rounds} times, one at a time,",
        "over HTTP from the same machine, as an ordinary member of the room (so every query",
        "also checks the reader's rooms). The",
        f"machine was shared with other work during the run: `uptime` said `{uptime}`.",
        f"Commit {facts.get('commit', '?')}, {facts.get('date', '?')}.",
        "",
        "| request | "
        + " | ".join(f"{b} p50 / p99 (ms)" for b in backends)
        + " | results | what |",
        "|---|" + "---|" * len(backends) + "---|---|",
    ]
    for probe in PROBES:
        cells = []
        found = ""
        for b in backends:
            got = results[b]["probes"].get(probe.name, {})
            if got.get("absent"):
                cells.append("not on this branch")
            else:
                cells.append(f"{got['p50']:,.1f} / {got['p99']:,.1f}")
                found = str(got["found"])
        lines.append(f"| {probe.name} | " + " | ".join(cells) + f" | {found} | {probe.what} |")
    lines.append("")
    fills = ", ".join(f"{b} {results[b]['fill_s']:.1f} s" for b in backends)
    lines.append(f"Filling the room through the store took {fills}.")
    if "postgres" in results:
        plan = results["postgres"]["plan"]
        lines.append(f"PostgreSQL's plan for the rare word, as an agent searches: `{plan}`.")
    lines.append(END)
    return "\n".join(lines) + "\n"


def write(path: Path, text: str) -> None:
    """Replace this bench's section of the file (or append it): the rest is bench/matrix.py's."""
    old = path.read_text() if path.exists() else ""
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END) + "\n?", re.S)
    new = (
        pattern.sub(lambda _m: text, old)
        if pattern.search(old)
        else old.rstrip("\n") + "\n\n" + text
    )
    path.write_text(new)


def kept_section(path: Path) -> str:
    """This bench's section of `path` as it stands ("" if none), for bench/matrix.py to keep."""
    old = path.read_text() if path.exists() else ""
    found = re.search(re.escape(START) + ".*?" + re.escape(END) + "\n?", old, re.S)
    return "\n" + found.group(0) if found else ""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--backends", default="postgres,sqlite")
    parser.add_argument("--out", default=str(ROOT / "docs" / "BENCHMARKS.md"))
    args = parser.parse_args()
    facts = machine_facts()
    work = Path(tempfile.mkdtemp(prefix="agenthub-search-bench-"))
    results = {}
    for backend in args.backends.split(","):
        results[backend] = run_backend(backend, args.messages, args.rounds, work / backend)
        say(f"{backend}: {results[backend]['probes']}")
    write(Path(args.out), section(results, args.messages, args.rounds, facts))
    say(f"wrote {args.out}")


if __name__ == "__main__":
    main()

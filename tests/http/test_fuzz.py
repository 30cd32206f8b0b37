"""Schemathesis fuzzes the live server from the OpenAPI document the server itself serves.

Every documented operation gets a bounded, reproducible run of generated requests (coverage cases
and Hypothesis-driven fuzzing, with valid and invalid data), sent over real HTTP to a real
`agenthub serve`, authenticated, once as the admin and once as an ordinary agent. All of
Schemathesis's checks run on every response: no 5xx, a documented status code and content type,
a body that conforms to the documented schema, valid data accepted and invalid data rejected, no
ignored authentication, a 405 with an `Allow` header for undocumented methods.

Each backend gets a server of this module's own, on a fresh database: the fuzzer creates hundreds
of agents, rooms and tokens that other tests should not have to page through.

The tests are built the way `schemathesis.pytest.from_fixture` builds them (`get_all_tests`), but
run from a plain parametrized test: the lazy-fixture wrapper sets `Node._nodeid`, which pytest 9.2
no longer has.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from schemathesis import BaseSchema, Case
from schemathesis.config import SchemathesisConfig
from schemathesis.core.result import Err, Ok
from schemathesis.pytest.lazy import get_all_tests

from tests.databases import fresh_pg_database
from tests.support import Agent, Server, start_server, stop_process, uniq

# Per operation and role: up to this many Hypothesis examples in the fuzzing phase, plus the
# coverage phase's deterministic boundary cases: about 1,500 requests and a little over a minute
# per backend on a 2-core machine. AGENTHUB_FUZZ_EXAMPLES=300 makes a deeper run by hand.
# (Schemathesis sets no Hypothesis deadline: a request takes what it takes.)
MAX_EXAMPLES = int(os.environ.get("AGENTHUB_FUZZ_EXAMPLES", "25"))
# A fixed seed per role (mixed with each operation's label): the same requests on every run, and
# different ones for the two roles.
SEEDS = {"admin": 20260502, "agent": 20260503}

# In run order: the operations that delete something come last, so that the memberships and tokens
# the others name are still there when they run.
OPERATIONS = [
    "GET /healthz",
    "GET /readyz",
    "GET /metrics",
    "POST /api/v1/sessions",
    "GET /api/v1/agents/me",
    "GET /api/v1/agents",
    "POST /api/v1/agents",
    "GET /api/v1/agents/{agent}",
    "GET /api/v1/agents/{agent}/tokens",
    "POST /api/v1/agents/{agent}/tokens",
    "GET /api/v1/rooms",
    "POST /api/v1/rooms",
    "GET /api/v1/rooms/{room}",
    "GET /api/v1/rooms/{room}/members",
    "POST /api/v1/rooms/{room}/members",
    "GET /api/v1/rooms/{room}/messages",
    "POST /api/v1/rooms/{room}/messages",
    "GET /api/v1/audit-events",
    "POST /api/v1/rooms/{room}/claims",
    "GET /api/v1/rooms/{room}/claims",
    "POST /api/v1/rooms/{room}/claims/renew",
    "GET /api/v1/search/messages",
    "DELETE /api/v1/rooms/{room}/claims",
    "DELETE /api/v1/tokens/{prefix}",
    "DELETE /api/v1/rooms/{room}/members/{agent}",
]

# Schema-valid requests that the contract still answers with 400 `invalid_request`, by rules that
# JSON Schema cannot state: `cursor` is opaque (an invalid one -> 400), `cursor` and `afterSeq`
# exclude each other, and a token's `expiresAt` must be in the future. For these operations only,
# `positive_data_acceptance` also accepts a 400 (its default list plus 400); every other check,
# the response-schema check of that 400 included, still runs.
SEMANTIC_400 = [
    "GET /api/v1/rooms/{room}/messages",
    "GET /api/v1/audit-events",
    "POST /api/v1/agents/{agent}/tokens",
    # A resource holds no control character; a query needs a word (not only punctuation) and at
    # most 16 terms; `cursor` is opaque.
    "POST /api/v1/rooms/{room}/claims",
    "GET /api/v1/rooms/{room}/claims",
    "POST /api/v1/rooms/{room}/claims/renew",
    "DELETE /api/v1/rooms/{room}/claims",
    "GET /api/v1/search/messages",
]
ACCEPTED_WITH_400 = ["2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx"]


@pytest.fixture(scope="module")
def fuzz_server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = Path(tmp_path_factory.mktemp(f"fuzz-{backend}"))
    with _fresh_database(backend, data_dir) as url:
        srv = start_server(backend, url, data_dir)
        try:
            yield srv
        finally:
            srv.api.close()
            stop_process(srv.proc)


def _fresh_database(backend: str, data_dir: Path) -> contextlib.AbstractContextManager[str]:
    if backend == "postgres":
        return fresh_pg_database("fuzz")
    return contextlib.nullcontext(f"sqlite:///{data_dir / 'fuzz.db'}")


def _caller(srv: Server, role: str) -> Agent:
    if role == "admin":
        # A JWT of its own: the harness's may be near its 15 minutes when this module runs.
        admin = srv.admin
        return Agent(
            admin.id, admin.name, "admin", admin.token, srv.api.login(admin.token), srv.api
        )
    return srv.new_agent()


def _known_objects(srv: Server, me: Agent) -> dict[str, list[str]]:
    """Objects that exist, for generated parameters to name now and then: a random string almost
    always gets a 404, and the 2xx, 403 and 409 paths are where the interesting bodies are.

    `me` is in one room (with another agent, and a few messages) and not in another; one token is
    its own to revoke and one belongs to another agent (403 unless `me` is the admin)."""
    other = srv.new_agent()
    mine = srv.new_room(me, other) if me.role != "admin" else srv.new_room(other, me)
    theirs = srv.new_room(other, slug=uniq("theirs"))
    for i in range(3):
        r = me.post(f"/api/v1/rooms/{mine['slug']}/messages", {"body": f"hello {i}"})
        assert r.status_code == 201, r.text
    page = me.get(f"/api/v1/rooms/{mine['slug']}/messages", params={"limit": 1}).json()
    audit = srv.admin.get("/api/v1/audit-events", params={"limit": 1}).json()
    prefixes = []
    for owner in (me, other):
        r = srv.admin.post(f"/api/v1/agents/{owner.name}/tokens", {})
        assert r.status_code == 201, r.text
        prefixes.append(r.json()["prefix"])
    return {
        "rooms": [mine["id"], mine["slug"], theirs["id"], theirs["slug"]],
        "agents": [ref for a in (me, other, srv.admin) for ref in (a.id, a.name)],
        "prefixes": prefixes,
        "cursors": [c for c in (page["nextCursor"], audit["nextCursor"]) if c],
    }


def _config(srv: Server, me: Agent, known: dict[str, list[str]], seed: int) -> SchemathesisConfig:
    def bind(dictionary: str, probability: float = 0.5) -> dict[str, Any]:
        return {"dictionary": dictionary, "probability": probability}

    return SchemathesisConfig.from_dict(
        {
            "seed": seed,
            # A request over the network takes what it takes on a busy CI machine.
            "suppress-health-check": ["too_slow"],
            "base-url": srv.base_url,
            "headers": {"Authorization": f"Bearer {me.jwt}"},
            "generation": {"max-examples": MAX_EXAMPLES, "database": "none"},
            "dictionaries": {name: {"values": values} for name, values in known.items()},
            "parameters": {
                "path.room": bind("rooms"),
                "path.agent": bind("agents"),
                "path.prefix": bind("prefixes"),
                "body.agent": bind("agents"),
                "query.agent": bind("agents"),
                "query.cursor": bind("cursors", 0.3),
            },
            "operations": [
                {
                    # The one call authenticated by an API token rather than a session JWT.
                    "include-name": "POST /api/v1/sessions",
                    "headers": {"Authorization": f"Bearer {me.token}"},
                },
                {
                    "include-name": SEMANTIC_400,
                    "checks": {
                        "positive_data_acceptance": {"expected-statuses": ACCEPTED_WITH_400}
                    },
                },
            ],
        }
    )


@pytest.fixture(scope="module", params=["admin", "agent"])
def fuzz_tests(
    request: pytest.FixtureRequest, fuzz_server: Server
) -> dict[str, Callable[[], None]]:
    """One Hypothesis test per documented operation, for the admin or an ordinary agent."""
    srv, role = fuzz_server, str(request.param)
    me = _caller(srv, role)
    config = _config(srv, me, _known_objects(srv, me), SEEDS[role])
    schema = schemathesis.openapi.from_url(f"{srv.base_url}/openapi.json", config=config)
    tests = {}
    for result in get_all_tests(
        schema=schema, test_func=_call_and_validate, settings=None, given_kwargs=None
    ):
        if isinstance(result, Err):  # an operation the loader cannot read
            raise result.err()
        operation, test = result.ok()
        tests[operation.label] = test
    return tests


def _call_and_validate(case: Case[Any]) -> None:
    case.call_and_validate()


def test_every_documented_operation_is_fuzzed(fuzz_server: Server) -> None:
    """The list above is the document's (/socket.io and /docs are not in it): a new route gets
    fuzzed, and run in a deliberate order, once it is added there."""
    document: BaseSchema = schemathesis.openapi.from_url(f"{fuzz_server.base_url}/openapi.json")
    documented = [
        result.ok().label if isinstance(result, Ok) else repr(result.err())
        for result in document.get_all_operations()
    ]
    assert sorted(documented) == sorted(OPERATIONS)


@pytest.mark.parametrize("label", OPERATIONS)
def test_operation_survives_fuzzing(fuzz_tests: dict[str, Callable[[], None]], label: str) -> None:
    fuzz_tests[label]()


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("OPTIONS", "/api/v1/rooms", "GET, POST"),  # two routes at one path
        ("PUT", "/api/v1/agents/me", "GET"),  # also matched by /agents/{agent}
        ("GET", "/api/v1/rooms/general/members/bob", "DELETE"),
        ("TRACE", "/healthz", "GET"),
        ("POST", "/openapi.json", "GET, HEAD"),
    ],
)
def test_405_lists_every_method_of_the_resource(
    fuzz_server: Server, method: str, path: str, allowed: str
) -> None:
    """Found by the fuzzer: a 405 had no `Allow` header (RFC 9110 requires one). Starlette's own
    names the methods of one route only, where a path can have several. Schemathesis only checks
    that the header is there and, for OPTIONS, does not contradict the document, so the exact
    value is pinned here."""
    r = fuzz_server.api.request(method, path, jwt=fuzz_server.admin.jwt)
    assert r.status_code == 405, r.text
    assert r.headers["allow"] == allowed
    assert r.json()["error"]["code"] == "invalid_request"

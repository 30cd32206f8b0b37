"""Agents: creating them (admins only), listing them, and finding them by id or by name."""

from __future__ import annotations

import re
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.databases import query
from tests.support import Agent, Server, assert_error, parse_time, uniq

AGENT_FIELDS = {"id", "name", "displayName", "role", "createdAt"}
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def create(admin: Agent, body: Any) -> httpx.Response:
    return admin.post("/api/v1/agents", body)


def listed(caller: Agent) -> list[dict[str, Any]]:
    r = caller.get("/api/v1/agents")
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"agents"}
    agents: list[dict[str, Any]] = r.json()["agents"]
    return agents


def stored_names(server: Server, name: str) -> int:
    rows = query(server.database_url, "SELECT count(*) FROM agents WHERE name = $1", name)
    return int(rows[0][0])


def login_as(server: Server, admin: Agent, created: dict[str, Any]) -> Agent:
    r = admin.post(f"/api/v1/agents/{created['id']}/tokens", {})
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    return Agent(
        created["id"], created["name"], created["role"], token, server.api.login(token), server.api
    )


# --- POST /api/v1/agents ------------------------------------------------------------------------


def test_create_agent_shape(server: Server, admin: Agent) -> None:
    name = uniq("created")
    before = datetime.now(UTC) - timedelta(seconds=5)
    r = create(admin, {"name": name, "displayName": "Created Agent"})
    assert r.status_code == 201, r.text
    agent = r.json()
    assert set(agent) == AGENT_FIELDS
    assert UUID_RE.match(agent["id"]), agent["id"]
    assert agent["name"] == name
    assert agent["displayName"] == "Created Agent"
    assert agent["role"] == "agent"
    assert before <= parse_time(agent["createdAt"]) <= datetime.now(UTC) + timedelta(seconds=5)
    # It is stored and visible to every agent.
    assert stored_names(server, name) == 1
    assert agent in listed(admin)
    r = admin.get(f"/api/v1/agents/{agent['id']}")
    assert r.status_code == 200, r.text
    assert r.json() == agent


def test_create_agent_role_default_and_explicit(server: Server, admin: Agent) -> None:
    plain = create(admin, {"name": uniq("plain"), "displayName": "Plain", "role": "agent"})
    assert plain.status_code == 201, plain.text
    assert plain.json()["role"] == "agent"
    boss = create(admin, {"name": uniq("boss"), "displayName": "Boss", "role": "admin"})
    assert boss.status_code == 201, boss.text
    assert boss.json()["role"] == "admin"
    # The role is real: the new admin may create agents, the plain agent may not.
    new_admin = login_as(server, admin, boss.json())
    r = create(new_admin, {"name": uniq("by-new-admin"), "displayName": "X"})
    assert r.status_code == 201, r.text
    new_plain = login_as(server, admin, plain.json())
    assert_error(
        create(new_plain, {"name": uniq("by-plain"), "displayName": "X"}), 403, "forbidden"
    )


def test_create_agent_ignores_unknown_fields(server: Server, admin: Agent) -> None:
    name = uniq("extra")
    r = create(admin, {"name": name, "displayName": "Extra", "id": str(uuid.uuid4())})
    assert r.status_code == 201, r.text
    assert r.json()["name"] == name


def test_create_agent_non_admin_forbidden(server: Server, alice: Agent) -> None:
    name = uniq("by-alice")
    r = create(alice, {"name": name, "displayName": "Nope"})
    assert_error(r, 403, "forbidden")
    assert name not in {a["name"] for a in listed(alice)}
    assert stored_names(server, name) == 0


def test_create_agent_without_session(server: Server) -> None:
    name = uniq("anon")
    r = server.api.http.post("/api/v1/agents", json={"name": name, "displayName": "Anon"})
    assert_error(r, 401, "unauthorized")
    assert stored_names(server, name) == 0


def test_create_agent_duplicate_name(server: Server, admin: Agent) -> None:
    name = uniq("dup")
    first = create(admin, {"name": name, "displayName": "First"})
    assert first.status_code == 201, first.text
    r = create(admin, {"name": name, "displayName": "Second", "role": "admin"})
    assert_error(r, 409, "conflict")
    assert name in r.json()["error"]["message"]
    # The first one is untouched and there is still only one.
    assert stored_names(server, name) == 1
    r = admin.get(f"/api/v1/agents/{name}")
    assert r.status_code == 200, r.text
    assert r.json() == first.json()
    assert [a for a in listed(admin) if a["name"] == name] == [first.json()]


def test_create_agent_name_boundaries(server: Server, admin: Agent) -> None:
    short = secrets.choice("abcdefghijklmnopqrstuvwxyz") + secrets.token_hex(1)[0]
    long = uniq("l").ljust(63, "x")
    assert len(short) == 2
    assert len(long) == 63
    for name in (short, long, uniq("9starts-with-digit"), uniq("double--hyphen-")):
        r = create(admin, {"name": name, "displayName": name})
        assert r.status_code == 201, (name, r.text)
        assert r.json()["name"] == name
        r = admin.get(f"/api/v1/agents/{name}")
        assert r.status_code == 200, r.text


def test_create_agent_display_name_boundaries(server: Server, admin: Agent) -> None:
    for display in ("D" * 200, "X", "Ünïcødé 名前 🤖", "  spaced  "):
        name = uniq("disp")
        r = create(admin, {"name": name, "displayName": display})
        assert r.status_code == 201, r.text
        assert r.json()["displayName"] == display
        assert admin.get(f"/api/v1/agents/{name}").json()["displayName"] == display


def _bad_bodies() -> list[Any]:
    """(body-or-raw, field named in the message, name to look for afterwards)."""
    cases: list[Any] = []

    def case(case_id: str, body: Any, field: str | None, name: str | None = None) -> None:
        cases.append(pytest.param(body, field, name, id=case_id))

    n = "bad-" + uuid.uuid4().hex[:10]
    case("name-uppercase", {"name": n.upper(), "displayName": "X"}, "name", n.upper())
    case("name-mixed-case", {"name": "Bad-" + n, "displayName": "X"}, "name", "Bad-" + n)
    case("name-one-char", {"name": "z", "displayName": "X"}, "name", "z")
    long64 = (n + "-").ljust(64, "y")
    case("name-64-chars", {"name": long64, "displayName": "X"}, "name", long64)
    huge = (n + "-").ljust(10_000, "q")
    case("name-10000-chars", {"name": huge, "displayName": "X"}, "name", huge)
    case("name-leading-hyphen", {"name": "-" + n, "displayName": "X"}, "name", "-" + n)
    case("name-underscore", {"name": n + "_x", "displayName": "X"}, "name", n + "_x")
    case("name-space", {"name": n + " x", "displayName": "X"}, "name", n + " x")
    case("name-dot", {"name": n + ".x", "displayName": "X"}, "name", n + ".x")
    case("name-trailing-newline", {"name": n + "\n", "displayName": "X"}, "name", n + "\n")
    case("name-accent", {"name": n + "é", "displayName": "X"}, "name", n + "é")
    case("name-nul", {"name": n + "\x00", "displayName": "X"}, "name", None)
    case("name-empty", {"name": "", "displayName": "X"}, "name", "")
    case("name-missing", {"displayName": "X"}, "name", None)
    case("name-null", {"name": None, "displayName": "X"}, "name", None)
    case("name-number", {"name": 12345, "displayName": "X"}, "name", "12345")
    case("name-list", {"name": [n], "displayName": "X"}, "name", n)
    n2 = "bad-" + uuid.uuid4().hex[:10]
    case("display-missing", {"name": n2 + "-a"}, "displayName", n2 + "-a")
    case("display-null", {"name": n2 + "-b", "displayName": None}, "displayName", n2 + "-b")
    case("display-empty", {"name": n2 + "-c", "displayName": ""}, "displayName", n2 + "-c")
    case("display-201", {"name": n2 + "-d", "displayName": "D" * 201}, "displayName", n2 + "-d")
    case("display-number", {"name": n2 + "-e", "displayName": 7}, "displayName", n2 + "-e")
    case("display-object", {"name": n2 + "-f", "displayName": {}}, "displayName", n2 + "-f")
    case("display-nul", {"name": n2 + "-g", "displayName": "A\x00B"}, "displayName", n2 + "-g")
    case("role-unknown", {"name": n2 + "-h", "displayName": "X", "role": "root"}, "role", n2 + "-h")
    case("role-caps", {"name": n2 + "-i", "displayName": "X", "role": "Admin"}, "role", n2 + "-i")
    case("role-null", {"name": n2 + "-j", "displayName": "X", "role": None}, "role", n2 + "-j")
    case("role-number", {"name": n2 + "-k", "displayName": "X", "role": 1}, "role", n2 + "-k")
    case("body-list", [{"name": n2 + "-l", "displayName": "X"}], None, n2 + "-l")
    case("body-string", "agent", None, None)
    case("body-null", None, None, None)
    return cases


@pytest.mark.parametrize(("body", "field", "name"), _bad_bodies())
def test_create_agent_invalid_body(
    server: Server, admin: Agent, body: Any, field: str | None, name: str | None
) -> None:
    before = {a["id"] for a in listed(admin)}
    r = create(admin, body)
    assert_error(r, 400, "invalid_request")
    message = r.json()["error"]["message"]
    if field is not None:
        assert f"'{field}'" in message, message
    assert len(message) < 500  # a 10,000-character value is not echoed back in full
    # Nothing was stored.
    assert {a["id"] for a in listed(admin)} == before
    if name is not None:
        assert stored_names(server, name) == 0


def test_create_agent_lone_surrogate_display_name(server: Server, admin: Agent) -> None:
    """JSON can spell a lone UTF-16 surrogate, which no database can store as text."""
    name = uniq("surrogate")
    raw = '{"name": "' + name + '", "displayName": "A\\ud800B"}'
    r = admin.client.request(
        "POST",
        "/api/v1/agents",
        jwt=admin.jwt,
        content=raw.encode(),
        headers={"Content-Type": "application/json"},
    )
    assert_error(r, 400, "invalid_request")
    assert "displayName" in r.json()["error"]["message"]
    assert stored_names(server, name) == 0


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        pytest.param(b'{"name": "x-y", "displayName"', "application/json", id="truncated-json"),
        pytest.param(b"name=x-y&displayName=X", "application/x-www-form-urlencoded", id="form"),
        pytest.param(b'{"name": "NAME", "displayName": "X"}', "text/plain", id="text-plain"),
        pytest.param(b"", "application/json", id="empty"),
        pytest.param(b"\xff\xfe\x00", "application/json", id="not-utf8"),
    ],
)
def test_create_agent_body_not_json(
    server: Server, admin: Agent, content: bytes, content_type: str
) -> None:
    name = uniq("notjson")
    content = content.replace(b"x-y", name.encode()).replace(b"NAME", name.encode())
    r = admin.client.request(
        "POST",
        "/api/v1/agents",
        jwt=admin.jwt,
        content=content,
        headers={"Content-Type": content_type},
    )
    assert_error(r, 400, "invalid_request")
    assert stored_names(server, name) == 0


# --- GET /api/v1/agents, /me, /{agent} ----------------------------------------------------------


def test_list_agents(server: Server, admin: Agent, alice: Agent, bob: Agent) -> None:
    for caller in (alice, admin):
        agents = listed(caller)
        by_id = {a["id"]: a for a in agents}
        assert len(by_id) == len(agents)  # no duplicates
        for a in agents:
            assert set(a) == AGENT_FIELDS, a
            assert a["role"] in ("admin", "agent")
            parse_time(a["createdAt"])
        assert by_id[alice.id]["name"] == alice.name
        assert by_id[bob.id]["name"] == bob.name
        assert by_id[admin.id]["role"] == "admin"
        assert by_id[alice.id]["role"] == "agent"
    count = query(server.database_url, "SELECT count(*) FROM agents")[0][0]
    assert len(listed(alice)) == count


def test_list_agents_holds_no_secrets(server: Server, admin: Agent, alice: Agent) -> None:
    r = alice.get("/api/v1/agents")
    assert r.status_code == 200
    for secret in (alice.token, admin.token, alice.token[11:], "argon2"):
        assert secret not in r.text


def test_get_me(server: Server, admin: Agent, alice: Agent) -> None:
    r = alice.get("/api/v1/agents/me")
    assert r.status_code == 200, r.text
    me = r.json()
    assert set(me) == AGENT_FIELDS
    assert me["id"] == alice.id
    assert me["name"] == alice.name
    assert me["displayName"] == alice.name.title()
    assert me["role"] == "agent"
    assert me in listed(alice)
    r = admin.get("/api/v1/agents/me")
    assert r.status_code == 200, r.text
    assert r.json()["id"] == admin.id
    assert r.json()["role"] == "admin"


def test_get_agent_by_id_and_by_name(server: Server, alice: Agent, bob: Agent) -> None:
    by_id = alice.get(f"/api/v1/agents/{bob.id}")
    by_name = alice.get(f"/api/v1/agents/{bob.name}")
    assert by_id.status_code == 200, by_id.text
    assert by_name.status_code == 200, by_name.text
    assert by_id.json() == by_name.json()
    agent = by_id.json()
    assert set(agent) == AGENT_FIELDS
    assert agent["id"] == bob.id
    assert agent["name"] == bob.name
    assert agent["displayName"] == bob.name.title()
    assert agent in listed(alice)


@pytest.mark.parametrize(
    "ref",
    [
        pytest.param("NAME", id="unknown-name"),
        pytest.param("UUID", id="unknown-uuid"),
        pytest.param("Upper-Case", id="uppercase"),
        pytest.param("x" * 300, id="very-long"),
        pytest.param("%00", id="nul"),
    ],
)
def test_get_agent_unknown(server: Server, alice: Agent, ref: str) -> None:
    if ref == "NAME":
        ref = uniq("nobody")
    elif ref == "UUID":
        ref = str(uuid.uuid4())
    r = alice.get(f"/api/v1/agents/{ref}")
    assert_error(r, 404, "not_found")


def test_get_agent_without_session(server: Server, alice: Agent) -> None:
    assert_error(server.api.http.get(f"/api/v1/agents/{alice.id}"), 401, "unauthorized")
    assert_error(server.api.http.get("/api/v1/agents/me"), 401, "unauthorized")
    assert_error(server.api.http.get("/api/v1/agents"), 401, "unauthorized")


def test_id_wins_over_name(server: Server, admin: Agent) -> None:
    first = create(admin, {"name": uniq("first"), "displayName": "First"})
    assert first.status_code == 201, first.text
    a = first.json()
    assert re.fullmatch(r"[a-z0-9][a-z0-9-]{1,62}", a["id"])  # an id is a valid name
    second = create(admin, {"name": a["id"], "displayName": "Named Like An Id"})
    assert second.status_code == 201, second.text
    b = second.json()
    assert b["name"] == a["id"]
    assert b["id"] != a["id"]
    # A's id names A, even though B is named that way.
    r = admin.get(f"/api/v1/agents/{a['id']}")
    assert r.status_code == 200, r.text
    assert r.json() == a
    # B is still reachable by its own id, and A by its name.
    assert admin.get(f"/api/v1/agents/{b['id']}").json() == b
    assert admin.get(f"/api/v1/agents/{a['name']}").json() == a
    # The same rule holds for token routes: tokens issued to "A's id" go to A.
    r = admin.post(f"/api/v1/agents/{a['id']}/tokens", {})
    assert r.status_code == 201, r.text
    prefix = r.json()["prefix"]
    session = server.api.session(r.json()["token"])
    assert session.status_code == 201, session.text
    assert session.json()["agent"]["id"] == a["id"]
    a_tokens = admin.get(f"/api/v1/agents/{a['id']}/tokens").json()["tokens"]
    b_tokens = admin.get(f"/api/v1/agents/{b['id']}/tokens").json()["tokens"]
    assert [t["prefix"] for t in a_tokens] == [prefix]
    assert b_tokens == []


def test_name_that_is_not_a_canonical_id_is_a_name(server: Server, admin: Agent) -> None:
    """A name of 32 hex digits and 4 hyphens placed elsewhere is not an id: it names its agent."""
    first = create(admin, {"name": uniq("target"), "displayName": "Target"})
    assert first.status_code == 201, first.text
    a = first.json()
    odd = a["id"].replace("-", "") + "----"
    assert len(odd) == 36
    second = create(admin, {"name": odd, "displayName": "Odd"})
    assert second.status_code == 201, second.text
    w = second.json()
    r = admin.get(f"/api/v1/agents/{odd}")
    assert r.status_code == 200, r.text
    assert r.json() == w
    assert admin.get(f"/api/v1/agents/{a['id']}").json() == a

"""Authentication: API tokens traded for session JWTs, and the JWT checks on every route."""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from argon2 import PasswordHasher

from tests.databases import query
from tests.support import JWT_SECRET, Agent, Server, assert_error, parse_time, token_id_of

TOKEN_RE = re.compile(r"^agt_[A-Za-z0-9_-]{6}_[A-Za-z0-9_-]{43}$")
PREFIX_RE = re.compile(r"^agt_[A-Za-z0-9_-]{6}$")
ARGON2_PREFIX = "$argon2id$v=19$m=19456,t=2,p=1$"
TOKEN_FIELDS = {"id", "prefix", "expiresAt", "createdAt", "lastUsedAt", "revokedAt"}
ISSUED_FIELDS = {"id", "prefix", "token", "expiresAt", "createdAt"}
AGENT_FIELDS = {"id", "name", "displayName", "role", "createdAt"}
# The longest an expiring token test waits for its token to lapse.
EXPIRY_WAIT_S = 10


def iso_z(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def b64url_json(obj: Any) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def claims_for(agent: Agent, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": agent.id,
        "role": agent.role,
        "iat": now,
        "exp": now + 600,
        "jti": str(uuid.uuid4()),
        "tid": token_id_of(agent.jwt),
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def random_token(prefix: str | None = None) -> str:
    prefix = prefix or "agt_" + secrets.token_urlsafe(6)[:6]
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def other_secret(token: str) -> str:
    """The same prefix with a different, well-formed secret."""
    for _ in range(10):  # a collision of 256 random bits does not happen; the bound is form
        candidate = random_token(token[:10])
        if candidate != token:
            return candidate
    raise AssertionError("could not draw a different secret")


def me_with(server: Server, bearer: str | None, scheme: str = "Bearer") -> httpx.Response:
    headers = {} if bearer is None else {"Authorization": f"{scheme} {bearer}"}
    return server.api.http.get("/api/v1/agents/me", headers=headers)


def issue(admin: Agent, agent_ref: str, body: Any = None) -> httpx.Response:
    return admin.post(f"/api/v1/agents/{agent_ref}/tokens", {} if body is None else body)


def tokens_of(caller: Agent, agent_ref: str) -> list[dict[str, Any]]:
    r = caller.get(f"/api/v1/agents/{agent_ref}/tokens")
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"tokens"}
    tokens: list[dict[str, Any]] = r.json()["tokens"]
    return tokens


def token_row(tokens: list[dict[str, Any]], prefix: str) -> dict[str, Any]:
    found = [t for t in tokens if t["prefix"] == prefix]
    assert len(found) == 1, (prefix, tokens)
    return found[0]


# --- POST /api/v1/sessions -------------------------------------------------------------------


def test_session_success_shape(server: Server, alice: Agent) -> None:
    before = int(time.time())
    r = server.api.session(alice.token)
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {"token", "expiresAt", "agent"}
    assert isinstance(body["token"], str)
    assert body["token"].count(".") == 2
    expires = parse_time(body["expiresAt"])
    assert before + 900 - 5 <= expires.timestamp() <= time.time() + 900 + 5
    agent = body["agent"]
    assert set(agent) == AGENT_FIELDS
    assert agent["id"] == alice.id
    assert agent["name"] == alice.name
    assert agent["displayName"] == alice.name.title()
    assert agent["role"] == "agent"
    parse_time(agent["createdAt"])
    # The session works on a protected route and names the same agent.
    r = me_with(server, body["token"])
    assert r.status_code == 200, r.text
    assert r.json() == agent


def test_session_jwt_claims(server: Server, admin: Agent) -> None:
    r = server.api.session(admin.token)
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "HS256"
    claims = jwt.decode(token, options={"verify_signature": False})
    assert {"sub", "role", "iat", "exp", "jti"} <= set(claims)
    assert claims["sub"] == admin.id
    assert claims["role"] == "admin"
    assert isinstance(claims["iat"], int)
    assert isinstance(claims["exp"], int)
    assert claims["exp"] - claims["iat"] == 900
    assert abs(claims["iat"] - time.time()) < 60
    assert claims["exp"] == int(parse_time(r.json()["expiresAt"]).timestamp())
    uuid.UUID(claims["jti"])
    # It is signed with the server's key.
    verified = jwt.decode(token, JWT_SECRET, algorithms=["HS256"])
    assert verified["sub"] == admin.id
    # Every session gets its own jti.
    again = jwt.decode(server.api.login(admin.token), options={"verify_signature": False})
    assert again["jti"] != claims["jti"]


def test_session_role_claim_of_plain_agent(server: Server, alice: Agent) -> None:
    claims = jwt.decode(alice.jwt, options={"verify_signature": False})
    assert claims["sub"] == alice.id
    assert claims["role"] == "agent"


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-header"),
        pytest.param({"Authorization": ""}, id="empty-header"),
        pytest.param({"Authorization": "Bearer"}, id="bearer-without-token"),
        pytest.param({"Authorization": "Token agt_abcdef_x"}, id="other-scheme"),
        pytest.param({"Authorization": "Bearer not-a-token"}, id="garbage"),
        pytest.param({"Authorization": "Bearer agt_abc"}, id="prefix-only"),
        pytest.param({"Authorization": "Bearer agt_abcdef_short"}, id="short-secret"),
        pytest.param({"Authorization": "Bearer agt_abc*ef_" + "a" * 43}, id="bad-char-in-prefix"),
        pytest.param({"Authorization": "Bearer xyz_abcdef_" + "a" * 43}, id="bad-scheme-tag"),
    ],
)
def test_session_malformed_credentials(server: Server, headers: dict[str, str]) -> None:
    r = server.api.http.post("/api/v1/sessions", headers=headers)
    assert_error(r, 401, "unauthorized")


def test_session_with_basic_auth_is_refused(server: Server, alice: Agent) -> None:
    raw = base64.b64encode(f"{alice.name}:{alice.token}".encode()).decode()
    r = server.api.http.post("/api/v1/sessions", headers={"Authorization": f"Basic {raw}"})
    assert_error(r, 401, "unauthorized")


def test_session_with_token_plus_trailing_garbage(server: Server, alice: Agent) -> None:
    assert_error(server.api.session(alice.token + "x"), 401, "unauthorized")
    assert_error(server.api.session(alice.token[:-1]), 401, "unauthorized")


def test_session_with_a_jwt_instead_of_an_api_token(server: Server, alice: Agent) -> None:
    assert_error(server.api.session(alice.jwt), 401, "unauthorized")


def test_session_unknown_prefix(server: Server) -> None:
    token = random_token()
    assert TOKEN_RE.match(token)
    assert_error(server.api.session(token), 401, "unauthorized")


def test_session_wrong_secret_with_known_prefix(server: Server, alice: Agent) -> None:
    forged = other_secret(alice.token)
    assert TOKEN_RE.match(forged)
    assert forged[:10] == alice.token[:10]
    assert_error(server.api.session(forged), 401, "unauthorized")
    # The real token still works afterwards.
    assert server.api.session(alice.token).status_code == 201


def test_session_lowercase_bearer_scheme_accepted(server: Server, alice: Agent) -> None:
    r = server.api.http.post("/api/v1/sessions", headers={"Authorization": f"bearer {alice.token}"})
    assert r.status_code == 201, r.text
    assert r.json()["agent"]["id"] == alice.id


def test_session_revoked_token(server: Server, admin: Agent, alice: Agent) -> None:
    r = admin.delete(f"/api/v1/tokens/{alice.token[:10]}")
    assert r.status_code == 204, r.text
    assert_error(server.api.session(alice.token), 401, "unauthorized")


def test_session_expired_token(server: Server, admin: Agent, alice: Agent) -> None:
    expires = datetime.now(UTC) + timedelta(seconds=3)
    r = issue(admin, alice.name, {"expiresAt": iso_z(expires)})
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    assert parse_time(r.json()["expiresAt"]) == expires.replace(
        microsecond=expires.microsecond // 1000 * 1000
    )
    # Before it lapses it opens sessions.
    assert server.api.session(token).status_code == 201
    wait = expires.timestamp() + 0.5 - time.time()
    assert wait < EXPIRY_WAIT_S
    if wait > 0:
        time.sleep(wait)
    assert datetime.now(UTC) > expires
    assert_error(server.api.session(token), 401, "unauthorized")


def test_session_sets_last_used_at(server: Server, admin: Agent, alice: Agent) -> None:
    r = issue(admin, alice.id)
    assert r.status_code == 201, r.text
    issued = r.json()
    row = token_row(tokens_of(admin, alice.id), issued["prefix"])
    assert row["lastUsedAt"] is None
    before = datetime.now(UTC) - timedelta(seconds=5)
    assert server.api.session(issued["token"]).status_code == 201
    row = token_row(tokens_of(admin, alice.id), issued["prefix"])
    used = parse_time(row["lastUsedAt"])
    assert used >= parse_time(issued["createdAt"])
    assert before <= used <= datetime.now(UTC) + timedelta(seconds=5)
    assert row["revokedAt"] is None


def test_failed_sessions_leave_last_used_at_unset(server: Server, admin: Agent) -> None:
    agent = server.new_agent()
    r = issue(admin, agent.name)
    assert r.status_code == 201, r.text
    issued = r.json()
    assert_error(server.api.session(other_secret(issued["token"])), 401, "unauthorized")
    assert token_row(tokens_of(admin, agent.name), issued["prefix"])["lastUsedAt"] is None


# --- Session JWTs on a protected route ---------------------------------------------------------


def test_handcrafted_jwt_with_the_right_key_is_accepted(server: Server, alice: Agent) -> None:
    """The control for the refusals below: a JWT made here with the server's key works."""
    token = jwt.encode(claims_for(alice), JWT_SECRET, algorithm="HS256")
    r = me_with(server, token)
    assert r.status_code == 200, r.text
    assert r.json()["id"] == alice.id


def test_jwt_missing(server: Server) -> None:
    assert_error(me_with(server, None), 401, "unauthorized")


@pytest.mark.parametrize(
    "bearer",
    [
        "garbage",
        "a.b.c",
        "eyJhbGciOiJIUzI1NiJ9..",
        "...",
        "Bearer",
        "null",
        # headers that are not an object, name a key by a number, or nest too deep to read
        "W10.e30.sig",
        b64url_json({"alg": "HS256", "kid": 5}) + ".e30.sig",
        base64.urlsafe_b64encode(b"[" * 5000).decode() + ".e30.sig",
    ],
)
def test_jwt_garbage(server: Server, bearer: str) -> None:
    assert_error(me_with(server, bearer), 401, "unauthorized")


def test_jwt_wrong_scheme(server: Server, alice: Agent) -> None:
    assert_error(me_with(server, alice.jwt, scheme="Token"), 401, "unauthorized")
    assert_error(me_with(server, alice.jwt, scheme="Basic"), 401, "unauthorized")


def test_jwt_signed_with_another_key(server: Server, alice: Agent) -> None:
    token = jwt.encode(claims_for(alice), "another-secret-" + "y" * 40, algorithm="HS256")
    assert_error(me_with(server, token), 401, "unauthorized")


def test_jwt_alg_none(server: Server, admin: Agent) -> None:
    claims = claims_for(admin)
    for header in ({"alg": "none", "typ": "JWT"}, {"alg": "None", "typ": "JWT"}):
        unsigned = f"{b64url_json(header)}.{b64url_json(claims)}."
        assert_error(me_with(server, unsigned), 401, "unauthorized")
        r = server.api.http.get(
            "/api/v1/audit-events", headers={"Authorization": f"Bearer {unsigned}"}
        )
        assert_error(r, 401, "unauthorized")


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_jwt_other_algorithm_with_the_right_key(server: Server, alice: Agent) -> None:
    token = jwt.encode(claims_for(alice), JWT_SECRET, algorithm="HS512")
    assert_error(me_with(server, token), 401, "unauthorized")


def test_jwt_expired_with_the_right_key(server: Server, alice: Agent) -> None:
    now = int(time.time())
    token = jwt.encode(
        claims_for(alice, iat=now - 1000, exp=now - 100), JWT_SECRET, algorithm="HS256"
    )
    assert_error(me_with(server, token), 401, "unauthorized")
    # Just expired (one second ago) is expired too.
    token = jwt.encode(claims_for(alice, iat=now - 900, exp=now - 1), JWT_SECRET, algorithm="HS256")
    assert_error(me_with(server, token), 401, "unauthorized")


@pytest.mark.parametrize("missing", ["sub", "role", "iat", "exp", "jti", "tid"])
def test_jwt_missing_claim_with_the_right_key(server: Server, alice: Agent, missing: str) -> None:
    claims = claims_for(alice)
    del claims[missing]
    token = jwt.encode(claims, JWT_SECRET, algorithm="HS256")
    assert_error(me_with(server, token), 401, "unauthorized")


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"sub": "not-a-uuid"}, id="sub-not-uuid"),
        pytest.param({"role": "root"}, id="unknown-role"),
        pytest.param({"tid": "not-a-uuid"}, id="tid-not-uuid"),
    ],
)
def test_jwt_bad_claims_with_the_right_key(
    server: Server, alice: Agent, overrides: dict[str, Any]
) -> None:
    token = jwt.encode(claims_for(alice, **overrides), JWT_SECRET, algorithm="HS256")
    assert_error(me_with(server, token), 401, "unauthorized")


def test_jwt_tampered_payload(server: Server, alice: Agent) -> None:
    header, payload, signature = alice.jwt.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["role"] = "admin"
    tampered = f"{header}.{b64url_json(claims)}.{signature}"
    assert_error(me_with(server, tampered), 401, "unauthorized")
    r = server.api.http.get("/api/v1/audit-events", headers={"Authorization": f"Bearer {tampered}"})
    assert_error(r, 401, "unauthorized")
    # A flipped signature character is refused as well.
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    assert_error(me_with(server, f"{header}.{payload}.{flipped}"), 401, "unauthorized")
    # The untouched token still works.
    assert me_with(server, alice.jwt).status_code == 200


def test_api_token_used_as_jwt(server: Server, alice: Agent) -> None:
    assert_error(me_with(server, alice.token), 401, "unauthorized")


def test_protected_routes_refuse_without_jwt(server: Server, alice: Agent) -> None:
    http = server.api.http
    for method, path in [
        ("GET", "/api/v1/agents"),
        ("GET", f"/api/v1/agents/{alice.id}"),
        ("POST", f"/api/v1/agents/{alice.id}/tokens"),
        ("GET", f"/api/v1/agents/{alice.id}/tokens"),
        ("DELETE", f"/api/v1/tokens/{alice.token[:10]}"),
        ("GET", "/api/v1/audit-events"),
    ]:
        assert_error(http.request(method, path), 401, "unauthorized")
    # Nothing was revoked by the refused DELETE.
    assert server.api.session(alice.token).status_code == 201


# --- API tokens ---------------------------------------------------------------------------------


def test_issue_token_shape(server: Server, admin: Agent, alice: Agent) -> None:
    before = datetime.now(UTC) - timedelta(seconds=5)
    r = issue(admin, alice.name)
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == ISSUED_FIELDS
    assert TOKEN_RE.match(body["token"]), body["token"]
    assert PREFIX_RE.match(body["prefix"]), body["prefix"]
    assert body["prefix"] == body["token"][:10]
    secret = body["token"][11:]
    assert len(base64.urlsafe_b64decode(secret + "=")) == 32
    assert body["expiresAt"] is None
    assert str(uuid.UUID(body["id"])) == body["id"]
    assert before <= parse_time(body["createdAt"]) <= datetime.now(UTC) + timedelta(seconds=5)
    # The new token opens sessions for alice.
    r = server.api.session(body["token"])
    assert r.status_code == 201, r.text
    assert r.json()["agent"]["id"] == alice.id


def test_issue_token_by_id_and_by_name(server: Server, admin: Agent, alice: Agent) -> None:
    by_id = issue(admin, alice.id)
    by_name = issue(admin, alice.name)
    assert by_id.status_code == 201, by_id.text
    assert by_name.status_code == 201, by_name.text
    assert by_id.json()["prefix"] != by_name.json()["prefix"]
    assert by_id.json()["token"] != by_name.json()["token"]
    prefixes = {t["prefix"] for t in tokens_of(admin, alice.id)}
    assert {by_id.json()["prefix"], by_name.json()["prefix"], alice.token[:10]} <= prefixes
    for issued in (by_id.json(), by_name.json()):
        r = server.api.session(issued["token"])
        assert r.status_code == 201, r.text
        assert r.json()["agent"]["id"] == alice.id


def test_issue_token_without_body(server: Server, admin: Agent, alice: Agent) -> None:
    r = admin.client.request("POST", f"/api/v1/agents/{alice.name}/tokens", jwt=admin.jwt)
    assert r.status_code == 201, r.text
    assert TOKEN_RE.match(r.json()["token"])


def test_issue_token_with_expiry(server: Server, admin: Agent, alice: Agent) -> None:
    r = issue(admin, alice.name, {"expiresAt": "2099-01-02T03:04:05Z"})
    assert r.status_code == 201, r.text
    assert r.json()["expiresAt"] == "2099-01-02T03:04:05.000Z"
    row = token_row(tokens_of(admin, alice.name), r.json()["prefix"])
    assert row["expiresAt"] == "2099-01-02T03:04:05.000Z"
    # An offset is honoured and the answer is in UTC.
    r = issue(admin, alice.name, {"expiresAt": "2099-01-02T05:04:05+02:00"})
    assert r.status_code == 201, r.text
    assert r.json()["expiresAt"] == "2099-01-02T03:04:05.000Z"
    # The last representable instant is accepted and kept as such.
    r = issue(admin, alice.name, {"expiresAt": "9999-12-31T23:59:59Z"})
    assert r.status_code == 201, r.text
    assert r.json()["expiresAt"] == "9999-12-31T23:59:59.000Z"
    row = token_row(tokens_of(admin, alice.name), r.json()["prefix"])
    assert row["expiresAt"] == "9999-12-31T23:59:59.000Z"
    assert server.api.session(r.json()["token"]).status_code == 201


def test_issue_token_null_expiry_means_none(server: Server, admin: Agent, alice: Agent) -> None:
    r = issue(admin, alice.name, {"expiresAt": None})
    assert r.status_code == 201, r.text
    assert r.json()["expiresAt"] is None


def test_issue_token_non_admin_forbidden(server: Server, alice: Agent, bob: Agent) -> None:
    for target in (alice.name, bob.name):
        assert_error(issue(alice, target), 403, "forbidden")
    assert [t["prefix"] for t in tokens_of(alice, alice.name)] == [alice.token[:10]]


def test_issue_token_unknown_agent(server: Server, admin: Agent) -> None:
    assert_error(issue(admin, "no-such-agent-" + uuid.uuid4().hex[:8]), 404, "not_found")
    assert_error(issue(admin, str(uuid.uuid4())), 404, "not_found")


@pytest.mark.parametrize(
    "expires_at",
    [
        pytest.param("2000-01-01T00:00:00Z", id="long-past"),
        pytest.param("PAST", id="just-past"),
        pytest.param("not-a-date", id="not-a-date"),
        pytest.param("2099-13-45T00:00:00Z", id="impossible-date"),
        pytest.param("", id="empty"),
        pytest.param(True, id="boolean"),
        pytest.param(4102444800, id="unix-seconds-number"),
        pytest.param({"at": "2099-01-01T00:00:00Z"}, id="object"),
        pytest.param("2099-01-01T00:00:00", id="no-timezone"),
        pytest.param("2099-01-01T00:00:00+25:00", id="impossible-offset"),
        pytest.param("9999-12-31T23:59:59-14:00", id="beyond-year-9999-in-utc"),
    ],
)
def test_issue_token_bad_expiry(
    server: Server, admin: Agent, alice: Agent, expires_at: Any
) -> None:
    if expires_at == "PAST":
        expires_at = iso_z(datetime.now(UTC) - timedelta(seconds=2))
    r = issue(admin, alice.name, {"expiresAt": expires_at})
    assert_error(r, 400, "invalid_request")
    assert "expiresAt" in r.json()["error"]["message"]
    # Nothing was issued.
    assert [t["prefix"] for t in tokens_of(admin, alice.name)] == [alice.token[:10]]


def test_issue_token_body_not_json(server: Server, admin: Agent, alice: Agent) -> None:
    r = admin.client.request(
        "POST",
        f"/api/v1/agents/{alice.name}/tokens",
        jwt=admin.jwt,
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert_error(r, 400, "invalid_request")
    r = admin.post(f"/api/v1/agents/{alice.name}/tokens", ["2099-01-01T00:00:00Z"])
    assert_error(r, 400, "invalid_request")
    assert [t["prefix"] for t in tokens_of(admin, alice.name)] == [alice.token[:10]]


def test_token_is_stored_only_as_argon2id_hash(server: Server, admin: Agent, alice: Agent) -> None:
    r = issue(admin, alice.name)
    assert r.status_code == 201, r.text
    token, prefix = r.json()["token"], r.json()["prefix"]
    rows = query(
        server.database_url,
        "SELECT prefix, hash_argon2id FROM api_tokens WHERE prefix = $1",
        prefix,
    )
    assert len(rows) == 1
    stored_prefix, hashed = rows[0]
    assert stored_prefix == prefix
    assert hashed.startswith(ARGON2_PREFIX), hashed
    assert token not in hashed
    assert token[11:] not in hashed
    # It is a hash of the whole token, not of the secret alone.
    assert PasswordHasher().verify(hashed, token)
    # No column of any token row, nor any audit row, holds a token or its secret in clear.
    everything = repr(query(server.database_url, "SELECT * FROM api_tokens"))
    everything += repr(query(server.database_url, "SELECT * FROM audit_events"))
    for clear in (token, token[11:], alice.token, alice.token[11:]):
        assert clear not in everything
    for (h,) in query(server.database_url, "SELECT hash_argon2id FROM api_tokens"):
        assert h.startswith(ARGON2_PREFIX), h


def test_list_tokens_shape(server: Server, admin: Agent, alice: Agent) -> None:
    r = issue(admin, alice.name, {"expiresAt": "2098-06-01T00:00:00Z"})
    assert r.status_code == 201, r.text
    issued = r.json()
    for ref in (alice.id, alice.name):
        r = admin.get(f"/api/v1/agents/{ref}/tokens")
        assert r.status_code == 200, r.text
        assert alice.token not in r.text
        assert issued["token"] not in r.text
        assert issued["token"][11:] not in r.text
        assert "argon2" not in r.text
        tokens = r.json()["tokens"]
        assert sorted(t["prefix"] for t in tokens) == sorted([alice.token[:10], issued["prefix"]])
        for t in tokens:
            assert set(t) == TOKEN_FIELDS, t
            assert PREFIX_RE.match(t["prefix"])
        row = token_row(tokens, issued["prefix"])
        assert row == {
            "id": issued["id"],
            "prefix": issued["prefix"],
            "expiresAt": "2098-06-01T00:00:00.000Z",
            "createdAt": issued["createdAt"],
            "lastUsedAt": None,
            "revokedAt": None,
        }
        first = token_row(tokens, alice.token[:10])
        assert first["lastUsedAt"] is not None  # new_agent opened a session with it
        assert first["expiresAt"] is None


def test_list_tokens_by_the_agent_itself(server: Server, alice: Agent) -> None:
    tokens = tokens_of(alice, alice.name)
    assert [t["prefix"] for t in tokens] == [alice.token[:10]]
    assert tokens_of(alice, alice.id) == tokens


def test_list_tokens_of_another_agent_forbidden(server: Server, alice: Agent, bob: Agent) -> None:
    for ref in (bob.id, bob.name):
        r = alice.get(f"/api/v1/agents/{ref}/tokens")
        assert_error(r, 403, "forbidden")
        assert bob.token[:10] not in r.text


def test_list_tokens_unknown_agent(server: Server, admin: Agent) -> None:
    assert_error(
        admin.get("/api/v1/agents/nobody-" + uuid.uuid4().hex[:8] + "/tokens"), 404, "not_found"
    )


def test_revoke_own_token(server: Server, admin: Agent, alice: Agent) -> None:
    prefix = alice.token[:10]
    r = alice.delete(f"/api/v1/tokens/{prefix}")
    assert r.status_code == 204, r.text
    assert r.content == b""
    row = token_row(tokens_of(admin, alice.name), prefix)  # alice's own session has ended
    revoked_at = parse_time(row["revokedAt"])
    assert abs((datetime.now(UTC) - revoked_at).total_seconds()) < 30
    # Twice is still 204, and the revocation time does not move.
    r = admin.delete(f"/api/v1/tokens/{prefix}")
    assert r.status_code == 204, r.text
    assert token_row(tokens_of(admin, alice.name), prefix)["revokedAt"] == row["revokedAt"]
    # The token opens no session, and the session already issued from it has ended.
    assert_error(server.api.session(alice.token), 401, "unauthorized")
    assert_error(alice.get("/api/v1/agents/me"), 401, "unauthorized")


def test_revoke_by_admin(server: Server, admin: Agent, alice: Agent) -> None:
    r = issue(admin, alice.name)
    assert r.status_code == 201, r.text
    issued = r.json()
    session = server.api.login(issued["token"])
    r = admin.delete(f"/api/v1/tokens/{issued['prefix']}")
    assert r.status_code == 204, r.text
    assert admin.delete(f"/api/v1/tokens/{issued['prefix']}").status_code == 204
    assert_error(server.api.session(issued["token"]), 401, "unauthorized")
    assert token_row(tokens_of(admin, alice.name), issued["prefix"])["revokedAt"] is not None
    # Only that token: alice's first one still opens sessions.
    assert token_row(tokens_of(admin, alice.name), alice.token[:10])["revokedAt"] is None
    assert server.api.session(alice.token).status_code == 201
    # A JWT issued from the revoked token is refused (this server revoked it: at once), while
    # alice's session from her other token goes on.
    assert_error(me_with(server, session), 401, "unauthorized")
    assert me_with(server, alice.jwt).status_code == 200


def test_revoke_another_agents_token_forbidden(server: Server, alice: Agent, bob: Agent) -> None:
    assert_error(bob.delete(f"/api/v1/tokens/{alice.token[:10]}"), 403, "forbidden")
    assert token_row(tokens_of(alice, alice.name), alice.token[:10])["revokedAt"] is None
    assert server.api.session(alice.token).status_code == 201


@pytest.mark.parametrize(
    "prefix",
    [
        pytest.param("RANDOM", id="well-formed-unknown"),
        pytest.param("agt_", id="too-short"),
        pytest.param("nothing", id="garbage"),
        pytest.param("FULLTOKEN", id="full-token"),
    ],
)
def test_revoke_unknown_prefix(server: Server, admin: Agent, alice: Agent, prefix: str) -> None:
    if prefix == "RANDOM":
        prefix = random_token()[:10]
        assert PREFIX_RE.match(prefix)
    elif prefix == "FULLTOKEN":
        prefix = alice.token
    assert_error(admin.delete(f"/api/v1/tokens/{prefix}"), 404, "not_found")
    assert server.api.session(alice.token).status_code == 201

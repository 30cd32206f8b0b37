"""The OpenAPI document describes the contract: every endpoint, its bodies, its responses and the
error envelope, and no 422 (validation errors are 400 here)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.support import Server

# (method, path) -> (success status, request body schema fields or None, response fields or None)
MESSAGE = {
    "id",
    "roomId",
    "seq",
    "senderId",
    "body",
    "clientMsgId",
    "createdAt",
    "replyTo",
    "mentions",
    "acks",
}
ENDPOINTS: dict[tuple[str, str], tuple[str, set[str] | None, set[str] | None]] = {
    ("get", "/healthz"): ("200", None, {"status", "uptime"}),
    ("get", "/readyz"): ("200", None, {"status", "checks"}),
    ("post", "/api/v1/sessions"): ("201", None, {"token", "expiresAt", "agent"}),
    ("post", "/api/v1/agents"): (
        "201",
        {"name", "displayName", "role"},
        {"id", "name", "displayName", "role", "createdAt"},
    ),
    ("get", "/api/v1/agents"): ("200", None, {"agents"}),
    ("get", "/api/v1/agents/me"): ("200", None, {"id", "name", "displayName", "role", "createdAt"}),
    ("get", "/api/v1/agents/{agent}"): (
        "200",
        None,
        {"id", "name", "displayName", "role", "createdAt"},
    ),
    ("post", "/api/v1/agents/{agent}/tokens"): (
        "201",
        {"expiresAt"},
        {"id", "prefix", "token", "expiresAt", "createdAt"},
    ),
    ("get", "/api/v1/agents/{agent}/tokens"): ("200", None, {"tokens"}),
    ("delete", "/api/v1/tokens/{prefix}"): ("204", None, None),
    ("post", "/api/v1/rooms"): (
        "201",
        {"slug", "name"},
        {"id", "slug", "name", "createdBy", "createdAt", "kind"},
        {"id", "slug", "name", "createdBy", "createdAt"},
    ),
    ("get", "/api/v1/rooms"): ("200", None, {"rooms"}),
    ("get", "/api/v1/rooms/{room}"): (
        "200",
        None,
        {"id", "slug", "name", "createdBy", "createdAt", "kind"},
        {"id", "slug", "name", "createdBy", "createdAt"},
    ),
    ("get", "/api/v1/rooms/{room}/members"): ("200", None, {"members"}),
    ("post", "/api/v1/rooms/{room}/members"): (
        "201",
        {"agent"},
        {"id", "name", "displayName", "role", "createdAt"},
    ),
    ("delete", "/api/v1/rooms/{room}/members/{agent}"): ("204", None, None),
    ("post", "/api/v1/rooms/{room}/messages"): (
        "201",
        {"body", "clientMsgId", "replyTo", "ackFrom"},
        MESSAGE,
    ),
    ("get", "/api/v1/rooms/{room}/messages"): ("200", None, {"messages", "nextCursor"}),
    ("get", "/api/v1/audit-events"): ("200", None, {"events", "nextCursor"}),
    # Coordination
    ("get", "/api/v1/inbox"): ("200", None, {"items", "nextCursor", "unread", "readUpTo"}),
    ("post", "/api/v1/inbox/read"): ("200", {"upTo"}, {"readUpTo", "unread"}),
    ("post", "/api/v1/direct/{agent}/messages"): ("201", {"body", "clientMsgId"}, MESSAGE),
    ("post", "/api/v1/rooms/{room}/messages/{seq}/acks"): (
        "200",
        {"status", "note"},
        {"roomId", "seq", "messageId", "agentId", "status", "note", "answeredAt"},
    ),
    ("get", "/api/v1/acks/pending"): ("200", None, {"pending"}),
    ("get", "/api/v1/rooms/{room}/messages/{seq}/thread"): (
        "200",
        None,
        {"root", "replies", "more"},
    ),
    # claims and search
    ("post", "/api/v1/rooms/{room}/claims"): (
        "201",
        {"resource", "ttlSeconds", "exclusive"},
        {"roomId", "resource", "agentId", "agentName", "exclusive", "createdAt", "expiresAt"},
    ),
    ("get", "/api/v1/rooms/{room}/claims"): ("200", None, {"claims"}),
    ("post", "/api/v1/rooms/{room}/claims/renew"): (
        "200",
        {"resource", "ttlSeconds"},
        {"roomId", "resource", "agentId", "agentName", "exclusive", "createdAt", "expiresAt"},
    ),
    ("delete", "/api/v1/rooms/{room}/claims"): ("204", None, None),
    ("get", "/api/v1/search/messages"): ("200", None, {"messages", "nextCursor"}),
}

# Error statuses each operation must document, beyond the 400/401 every /api/v1 call has.
SPECIFIC_ERRORS: dict[tuple[str, str], set[str]] = {
    ("post", "/api/v1/agents"): {"403", "409"},
    ("get", "/api/v1/agents/{agent}"): {"404"},
    ("post", "/api/v1/agents/{agent}/tokens"): {"403", "404"},
    ("get", "/api/v1/agents/{agent}/tokens"): {"403", "404"},
    ("delete", "/api/v1/tokens/{prefix}"): {"403", "404"},
    ("post", "/api/v1/rooms"): {"409"},
    ("get", "/api/v1/rooms"): {"403"},
    ("get", "/api/v1/rooms/{room}"): {"403", "404"},
    ("get", "/api/v1/rooms/{room}/members"): {"403", "404"},
    ("post", "/api/v1/rooms/{room}/members"): {"403", "404"},
    ("delete", "/api/v1/rooms/{room}/members/{agent}"): {"403", "404"},
    ("post", "/api/v1/rooms/{room}/messages"): {"403", "404", "413"},
    ("get", "/api/v1/rooms/{room}/messages"): {"403", "404"},
    ("get", "/api/v1/audit-events"): {"403", "404"},
    ("post", "/api/v1/inbox/read"): {"404"},
    ("post", "/api/v1/direct/{agent}/messages"): {"404", "413"},
    ("post", "/api/v1/rooms/{room}/messages/{seq}/acks"): {"403", "404"},
    ("get", "/api/v1/rooms/{room}/messages/{seq}/thread"): {"403", "404"},
    ("post", "/api/v1/rooms/{room}/claims"): {"403", "404", "409"},
    ("get", "/api/v1/rooms/{room}/claims"): {"403", "404"},
    ("post", "/api/v1/rooms/{room}/claims/renew"): {"403", "404"},
    ("delete", "/api/v1/rooms/{room}/claims"): {"403", "404"},
    ("get", "/api/v1/search/messages"): {"403", "404"},
}

NULL = {"type": "null"}

QUERY_PARAMS: dict[tuple[str, str], set[str]] = {
    ("get", "/api/v1/rooms"): {"all"},
    ("get", "/api/v1/rooms/{room}/messages"): {"cursor", "afterSeq", "limit"},
    ("get", "/api/v1/audit-events"): {"type", "agent", "cursor", "limit"},
    ("get", "/api/v1/inbox"): {"cursor", "unread", "newest", "limit"},
    ("get", "/api/v1/acks/pending"): {"limit"},
    ("get", "/api/v1/rooms/{room}/messages/{seq}/thread"): {"afterSeq", "limit"},
    ("get", "/api/v1/rooms/{room}/claims"): {"resource"},
    ("delete", "/api/v1/rooms/{room}/claims"): {"resource"},
    ("get", "/api/v1/search/messages"): {"q", "room", "sender", "cursor", "limit"},
}


@pytest.fixture
def doc(server: Server) -> dict[str, Any]:
    r = server.api.http.get("/openapi.json")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    document: dict[str, Any] = r.json()
    return document


def resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Follow `$ref`s (and a single-branch allOf, or an anyOf with null) to the schema."""
    seen = 0
    while True:
        seen += 1
        assert seen < 20, "reference cycle"
        if "$ref" in schema:
            ref = schema["$ref"]
            assert ref.startswith("#/"), ref
            node: Any = doc
            for part in ref[2:].split("/"):
                node = node[part]
            schema = node
        elif "allOf" in schema and len(schema["allOf"]) == 1:
            schema = schema["allOf"][0]
        elif "anyOf" in schema and len(real := [s for s in schema["anyOf"] if s != NULL]) == 1:
            schema = real[0]  # an optional body: the object or null
        else:
            return schema


def json_schema_of(doc: dict[str, Any], content_holder: dict[str, Any]) -> dict[str, Any]:
    content = content_holder.get("content", {})
    assert "application/json" in content, content_holder
    return resolve(doc, content["application/json"]["schema"])


def operation(doc: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    assert path in doc["paths"], f"{path} is not documented"
    assert method in doc["paths"][path], f"{method.upper()} {path} is not documented"
    op: dict[str, Any] = doc["paths"][path][method]
    return op


def test_openapi_document_basics(doc: dict[str, Any]) -> None:
    assert doc["openapi"].startswith("3.")
    assert doc["info"]["title"]
    assert doc["info"]["version"]


@pytest.mark.parametrize(("method", "path"), list(ENDPOINTS))
def test_every_contract_endpoint_is_documented(doc: dict[str, Any], method: str, path: str) -> None:
    status, body_fields, response_fields = ENDPOINTS[(method, path)]
    op = operation(doc, method, path)
    responses = op["responses"]
    assert status in responses, (method, path, sorted(responses))
    assert op.get("summary") or op.get("description")

    if body_fields is None:
        assert "requestBody" not in op
    else:
        schema = json_schema_of(doc, op["requestBody"])
        assert schema["type"] == "object"
        assert set(schema["properties"]) == body_fields

    if response_fields is None:
        assert "content" not in responses[status] or not responses[status]["content"]
    else:
        schema = json_schema_of(doc, responses[status])
        assert set(schema["properties"]) == response_fields
        assert set(schema.get("required", [])) == response_fields

    for name in {p.strip("{}") for p in path.split("/") if p.startswith("{")}:
        params = {(p["name"], p["in"]) for p in op.get("parameters", [])}
        assert (name, "path") in params


def test_request_bodies_mark_required_fields(doc: dict[str, Any]) -> None:
    expected = {
        ("post", "/api/v1/agents"): {"name", "displayName"},
        ("post", "/api/v1/rooms"): {"slug", "name"},
        ("post", "/api/v1/rooms/{room}/members"): {"agent"},
        ("post", "/api/v1/rooms/{room}/messages"): {"body"},
        ("post", "/api/v1/agents/{agent}/tokens"): set(),
    }
    for (method, path), required in expected.items():
        schema = json_schema_of(doc, operation(doc, method, path)["requestBody"])
        assert set(schema.get("required", [])) == required, (method, path)


def test_slug_pattern_and_limits_are_documented(doc: dict[str, Any]) -> None:
    slug = json_schema_of(doc, operation(doc, "post", "/api/v1/rooms")["requestBody"])
    assert slug["properties"]["slug"]["pattern"] == "^[a-z0-9][a-z0-9-]{1,62}$"
    name = json_schema_of(doc, operation(doc, "post", "/api/v1/agents")["requestBody"])
    assert name["properties"]["name"]["pattern"] == "^[a-z0-9][a-z0-9-]{1,62}$"
    msgs = operation(doc, "get", "/api/v1/rooms/{room}/messages")
    limit = next(p for p in msgs["parameters"] if p["name"] == "limit")
    assert limit["schema"]["minimum"] == 1
    assert limit["schema"]["maximum"] == 200
    assert limit["schema"]["default"] == 50


def test_alternative_success_responses_are_documented(doc: dict[str, Any]) -> None:
    add = operation(doc, "post", "/api/v1/rooms/{room}/members")["responses"]
    assert set(json_schema_of(doc, add["200"])["properties"]) == {
        "id",
        "name",
        "displayName",
        "role",
        "createdAt",
    }
    send = operation(doc, "post", "/api/v1/rooms/{room}/messages")["responses"]
    assert (
        set(json_schema_of(doc, send["200"])["properties"])
        == ENDPOINTS[("post", "/api/v1/rooms/{room}/messages")][2]
    )


def test_list_items_have_the_contract_shapes(doc: dict[str, Any]) -> None:
    def items(method: str, path: str, key: str) -> set[str]:
        status = ENDPOINTS[(method, path)][0]
        schema = json_schema_of(doc, operation(doc, method, path)["responses"][status])
        return set(resolve(doc, schema["properties"][key]["items"])["properties"])

    agent = {"id", "name", "displayName", "role", "createdAt"}
    assert items("get", "/api/v1/agents", "agents") == agent
    assert items("get", "/api/v1/rooms/{room}/members", "members") == agent
    assert items("get", "/api/v1/rooms", "rooms") == {
        "id",
        "slug",
        "name",
        "createdBy",
        "createdAt",
        "kind",
    }
    assert items("get", "/api/v1/agents/{agent}/tokens", "tokens") == {
        "id",
        "prefix",
        "expiresAt",
        "createdAt",
        "lastUsedAt",
        "revokedAt",
    }
    assert items("get", "/api/v1/rooms/{room}/messages", "messages") == MESSAGE
    assert items("get", "/api/v1/rooms/{room}/messages", "messages") == {
        "id",
        "roomId",
        "seq",
        "senderId",
        "body",
        "clientMsgId",
        "createdAt",
    }
    assert items("get", "/api/v1/audit-events", "events") == {
        "id",
        "type",
        "agentId",
        "payload",
        "createdAt",
    }


@pytest.mark.parametrize(("method", "path"), list(ENDPOINTS))
def test_errors_are_documented_with_the_envelope(
    doc: dict[str, Any], method: str, path: str
) -> None:
    op = operation(doc, method, path)
    responses = op["responses"]
    statuses = set(responses)
    if path.startswith("/api/v1"):
        assert {"400", "401"} <= statuses, (method, path, sorted(statuses))
    assert SPECIFIC_ERRORS.get((method, path), set()) <= statuses, (method, path)
    for status, response in responses.items():
        if not status.startswith("4"):
            continue
        schema = json_schema_of(doc, response)
        assert set(schema["properties"]) == {"error"}, (method, path, status)
        assert schema.get("required") == ["error"]
        error = resolve(doc, schema["properties"]["error"])
        assert set(error["properties"]) == {"code", "message"}
        assert set(error.get("required", [])) == {"code", "message"}
        assert error["properties"]["code"]["type"] == "string"


def test_no_422_anywhere(doc: dict[str, Any]) -> None:
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert "422" not in op.get("responses", {}), (method, path)
    schemas = doc.get("components", {}).get("schemas", {})
    assert "HTTPValidationError" not in schemas
    assert "ValidationError" not in schemas


@pytest.mark.parametrize(("method", "path"), list(QUERY_PARAMS))
def test_query_parameters_are_documented(doc: dict[str, Any], method: str, path: str) -> None:
    op = operation(doc, method, path)
    query = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
    assert query == QUERY_PARAMS[(method, path)]


def test_session_auth_is_documented(doc: dict[str, Any]) -> None:
    schemes = doc["components"]["securitySchemes"]
    bearer = [name for name, s in schemes.items() if s.get("scheme") == "bearer"]
    assert bearer
    for (method, path), _ in ENDPOINTS.items():
        if not path.startswith("/api/v1"):
            continue
        security = operation(doc, method, path).get("security")
        assert security, (method, path)
        assert any(name in bearer for req in security for name in req), (method, path)


def test_documented_api_paths_are_the_contracts(doc: dict[str, Any]) -> None:
    documented = {
        (method, path)
        for path, ops in doc["paths"].items()
        if path.startswith("/api/")
        for method in ops
        if method in {"get", "post", "put", "patch", "delete"}
    }
    contract = {key for key in ENDPOINTS if key[1].startswith("/api/")}
    assert documented == contract


def test_docs_page_is_served(server: Server) -> None:
    r = server.api.http.get("/docs")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "<html" in r.text.lower()
    assert "swagger" in r.text.lower()
    # Whatever the page loads must be served too, and together point at the document.
    assets = re.findall(r'(?:src|href)="([^"]+)"', r.text)
    assert assets
    loaded = r.text
    for asset in assets:
        if asset.startswith(("http://", "https://", "//")):
            continue  # a CDN: not ours to check
        got = server.api.http.get(asset)
        assert got.status_code == 200, asset
        loaded += got.text
    assert "/openapi.json" in loaded

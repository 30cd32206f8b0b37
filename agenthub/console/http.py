"""Routes of the console under /console: pages for people, from the same services as the API.

A route reads the session cookie (console/session.py), calls the services and renders a page
(console/pages.py). Pages that change something do it through the REST API from the script,
with a session JWT the script gets from `POST /console/session`; the console's own state
changes (sign in, sign out, renew) are the three POSTs here, each CSRF-checked.

Content-Security-Policy: the console runs under the hub's policy, `default-src 'self'`,
unrelaxed. Its scripts and stylesheet are files under /console/static (no inline script or
style, no CDN), its HTTP calls and its websocket go to the hub's own origin (CSP 3 `'self'`
covers ws:/wss: on the same host), and it loads no image, font or frame.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from agenthub.auth.jwt import Principal
from agenthub.console import pages
from agenthub.console.session import (
    CSRF_COOKIE,
    CSRF_FIELD,
    CSRF_HEADER,
    SESSION_COOKIE,
    clear_session,
    csrf_ok,
    csrf_token,
    set_cookie,
)
from agenthub.errors import AppError, Forbidden, NotFound, Unauthorized
from agenthub.http.errors import envelope
from agenthub.http.proxies import client_host
from agenthub.services import Services

STATIC = Path(__file__).parent / "static"
CSRF_MAX_AGE = 7 * 24 * 3600
MAX_TOKEN_CHARS = 200
ROOMS_SHOWN = 500

router = APIRouter(prefix="/console", include_in_schema=False)


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _session(request: Request) -> Principal | str:
    """The signed-in agent, or why there is none: "" (never signed in), "expired", "revoked"."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return ""
    services = _services(request)
    try:
        principal = services.signer.verify(token)
    except AppError:
        return "expired"
    if principal.token_id in services.auth.revocations:
        return "revoked"
    return principal


def _to_sign_in(request: Request, reason: str) -> Response:
    url = "/console/sign-in" + (f"?reason={reason}" if reason else "")
    response = RedirectResponse(url, status_code=303)
    if reason:
        clear_session(response, request)
    return response


def _html(
    request: Request, text: str, status: int = 200, csrf: tuple[str, bool] | None = None
) -> Response:
    response = HTMLResponse(text, status, headers={"cache-control": "no-store"})
    if csrf is not None and csrf[1]:
        set_cookie(response, request, CSRF_COOKIE, csrf[0], CSRF_MAX_AGE)
    return response


async def _viewer(
    request: Request,
) -> tuple[Principal, pages.Viewer, tuple[str, bool]] | Response:
    found = _session(request)
    if isinstance(found, str):
        return _to_sign_in(request, found)
    csrf = csrf_token(request)
    try:
        agent = await _services(request).agents.get(str(found.agent_id))
    except NotFound:  # (agents are never deleted today; a session must not outlive one)
        return _to_sign_in(request, "expired")
    return found, pages.Viewer(agent, csrf[0]), csrf


@router.get("")
async def home(request: Request) -> Response:
    signed_in = not isinstance(_session(request), str)
    return RedirectResponse("/console/rooms" if signed_in else "/console/sign-in", 303)


@router.get("/sign-in")
async def sign_in_page(request: Request, reason: str | None = None) -> Response:
    csrf = csrf_token(request)
    return _html(request, pages.sign_in(csrf[0], reason=reason), csrf=csrf)


async def _form(request: Request) -> dict[str, str]:
    """An urlencoded form's first values (the body is bounded by BodyLimitMiddleware)."""
    try:
        text = (await request.body()).decode("utf-8")
    except UnicodeDecodeError:
        return {}
    return {k: v[0] for k, v in parse_qs(text, max_num_fields=10).items()}


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    form = await _form(request)
    csrf = csrf_token(request)
    if not csrf_ok(request, form.get(CSRF_FIELD)):
        message = "The form had expired: sign in again."
        return _html(request, pages.sign_in(csrf[0], error=message), 403, csrf)
    token = form.get("token", "").strip()
    if not token or len(token) > MAX_TOKEN_CHARS:
        message = "Enter an API token (agt_…)."
        return _html(request, pages.sign_in(csrf[0], error=message), 400, csrf)
    services = _services(request)
    try:
        session, _agent = await services.auth.open_session(token, client_host(request.scope))
    except Unauthorized as exc:
        return _html(request, pages.sign_in(csrf[0], error=exc.message), 401, csrf)
    response = RedirectResponse("/console/rooms", status_code=303)
    set_cookie(response, request, SESSION_COOKIE, session.token, None)
    return response


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    form = await _form(request)
    if not csrf_ok(request, form.get(CSRF_FIELD)):
        return envelope(403, "forbidden", "cross-site request refused (CSRF check failed)")
    response = RedirectResponse("/console/sign-in?reason=signed-out", status_code=303)
    clear_session(response, request)
    return response


@router.post("/session")
async def renew(request: Request) -> Response:
    """A fresh session JWT for the signed-in agent, in the cookie and in the answer: the script
    uses it as the Bearer of its REST calls and in its socket's auth (ADR 0007). Renewed only
    from a live session: a revoked token or an expired session ends here."""
    if not csrf_ok(request, request.headers.get(CSRF_HEADER)):
        return envelope(403, "forbidden", "cross-site request refused (CSRF check failed)")
    found = _session(request)
    if isinstance(found, str):
        reason = found or "expired"
        message = (
            "the API token of this session has been revoked"
            if reason == "revoked"
            else "the console session has ended"
        )
        response: Response = envelope(401, "unauthorized", message, {"x-console-reason": reason})
        clear_session(response, request)
        return response
    services = _services(request)
    assert found.token_id is not None  # a session JWT always names its token
    issued = services.signer.issue(found.agent_id, found.role, found.token_id)
    agent = await services.agents.get(str(found.agent_id))
    response = JSONResponse(
        {
            "token": issued.token,
            "expiresAt": issued.expires_at.isoformat().replace("+00:00", "Z"),
            "ttlSeconds": int(services.signer.ttl_seconds),
            "agent": agent.model_dump(mode="json", by_alias=True),
        },
        headers={"cache-control": "no-store"},
    )
    set_cookie(response, request, SESSION_COOKIE, issued.token, None)
    return response


@router.get("/rooms")
async def rooms_page(request: Request) -> Response:
    seen = await _viewer(request)
    if isinstance(seen, Response):
        return seen
    principal, viewer, csrf = seen
    services = _services(request)
    rooms = await services.rooms.list_for(principal, all_rooms=principal.is_admin)
    mine = set(await services.rooms.room_ids_of(principal))
    if principal.is_admin:  # every room leaves out direct ones: but not the admin's own
        listed = {room.id for room in rooms}
        own = await services.rooms.list_for(principal, all_rooms=False)
        rooms += [room for room in own if room.id not in listed]
    names = {a.id: a.name for a in await services.agents.list_all()}
    rows = []
    for room in rooms[:ROOMS_SHOWN]:
        page = await services.messages.history(
            principal, str(room.id), cursor=None, after_seq=None, limit=1
        )
        last = page.messages[0] if page.messages else None
        rows.append(
            pages.RoomRow(
                id=str(room.id),
                slug=room.slug,
                name=room.name,
                kind=room.kind,
                member=room.id in mine,
                last_seq=last.seq if last else None,
                last_at=_iso(last.created_at) if last else None,
                last_sender=names.get(last.sender_id, str(last.sender_id)) if last else None,
                last_body=last.body if last else None,
            )
        )
    rows.sort(key=lambda r: r.last_at or "", reverse=True)
    text = pages.rooms(viewer, rows, all_rooms=principal.is_admin)
    return _html(request, text, csrf=csrf)


@router.get("/rooms/{room}")
async def room_page(request: Request, room: str) -> Response:
    seen = await _viewer(request)
    if isinstance(seen, Response):
        return seen
    principal, viewer, csrf = seen
    services = _services(request)
    try:
        found = await services.rooms.room_for(principal, room, admin_ok=True)
        members = await services.rooms.members(principal, room)
    except (NotFound, Forbidden) as exc:
        return _html(request, pages.refusal(viewer, exc.status, exc.message), exc.status, csrf)
    member = any(m.id == principal.agent_id for m in members)
    text = pages.room(viewer, str(found.id), found.slug, found.name, member=member, kind=found.kind)
    return _html(request, text, csrf=csrf)


async def _admin_page(request: Request, render: Callable[[pages.Viewer], str]) -> Response:
    seen = await _viewer(request)
    if isinstance(seen, Response):
        return seen
    principal, viewer, csrf = seen
    if not principal.is_admin:
        message = "Administration is for admins; your agent is not one."
        return _html(request, pages.refusal(viewer, 403, message), 403, csrf)
    return _html(request, render(viewer), csrf=csrf)


@router.get("/admin")
async def admin_agents(request: Request) -> Response:
    return await _admin_page(request, pages.admin_agents)


@router.get("/admin/rooms")
async def admin_rooms(request: Request) -> Response:
    return await _admin_page(request, pages.admin_rooms)


@router.get("/admin/audit")
async def admin_audit(request: Request) -> Response:
    return await _admin_page(request, pages.admin_audit)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/console/static", StaticFiles(directory=STATIC), "console-static")

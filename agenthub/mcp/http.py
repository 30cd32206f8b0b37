"""`/mcp`: the hub serves MCP itself (Streamable HTTP), so an agent machine needs nothing
installed: `claude mcp add --transport http agenthub http://HUB:3000/mcp --header
"Authorization: Bearer agt_…"`.

The tools are `agenthub.mcp.tools`, the same as `agenthub mcp` over stdio, on the services
in-process (`backend.py`). The `mcp` package's session manager speaks the protocol; this edge
decides who may reach it, on every request, as the REST edge does:

1. `Origin`: a request carrying an `Origin` that ALLOWED_ORIGINS does not allow is refused
   (403) before anything else, as the MCP specification requires against DNS rebinding. MCP
   clients outside a browser send none.
2. `Authorization: Bearer <API token>` (a session JWT is accepted too). An API token is
   verified like `POST /api/v1/sessions` (one Argon2 verify, a `login` audit row with the
   client's address) the first time, then remembered for a session JWT's lifetime by its
   digest (`TokenCache`). Revocation is checked on every request from the process's view of
   revocations (within about a second on every node, see auth/revocations.py): a revoked
   token is refused at once (401), mid-session too, and its MCP sessions end.
3. Rate limits: `RateLimitMiddleware` counts `/mcp` like `/api/`: per agent once its token is
   known here, per client address before.
4. The session: an MCP session belongs to the agent that opened it (another agent's requests
   for it get 404). While it is open (until the client deletes it, or `SESSION_IDLE_S` without
   a request or an open stream), its agent is present in all its rooms.

Query `?tools=core` serves the lean profile (read, send, wait), like `AGENTHUB_MCP_TOOLS=core`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agenthub.auth.jwt import Principal
from agenthub.config import Settings
from agenthub.errors import AppError, Forbidden, InvalidRequest, NotFound, Unauthorized
from agenthub.http.bearer import bearer_token
from agenthub.http.errors import send_error
from agenthub.http.origins import origin_allowed, parse_origins
from agenthub.http.proxies import client_host
from agenthub.mcp import tools
from agenthub.mcp.backend import ServiceBackend
from agenthub.observability.metrics import Metrics
from agenthub.realtime.commits import CommitSignals
from agenthub.services import Services

log = logging.getLogger("agenthub.mcp")

MCP_PATH = "/mcp"
SESSION_HEADER = "mcp-session-id"
SESSION_IDLE_S = 600.0  # an MCP session without any request or open stream for this long ends
SWEEP_S = 2.0
TOKEN_CACHE_MAX = 10_000


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


class TokenCache:
    """API tokens verified recently, by SHA-256 digest (the token itself is not kept), each
    until the session it was traded for expires; the least recently used go first."""

    def __init__(self, max_entries: int = TOKEN_CACHE_MAX) -> None:
        self._entries: OrderedDict[bytes, Principal] = OrderedDict()
        self._max = max_entries

    @staticmethod
    def _key(token: str) -> bytes:
        return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()

    def get(self, token: str) -> Principal | None:
        key = self._key(token)
        principal = self._entries.get(key)
        if principal is None:
            return None
        if principal.expires_at <= time.time():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return principal

    def put(self, token: str, principal: Principal) -> None:
        self._entries[self._key(token)] = principal
        self._entries.move_to_end(self._key(token))
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def forget(self, token_ids: set[uuid.UUID]) -> None:
        for key, principal in list(self._entries.items()):
            if principal.token_id in token_ids:
                del self._entries[key]


@dataclass(eq=False)
class McpSession:
    key: str
    principal: Principal
    session: tools.Session
    manager: StreamableHTTPSessionManager
    inflight: int = 0
    last_seen: float = field(default_factory=time.monotonic)

    @property
    def presence_key(self) -> str:
        return f"mcp:{self.key}"


class McpEdge:
    """The ASGI app at `/mcp`, and the MCP sessions it has open."""

    def __init__(self, settings: Settings, metrics: Metrics, hub: Any = None) -> None:
        self.settings = settings
        self.metrics = metrics
        self.hub = hub  # the real-time hub (presence, commit signals); None without messaging
        self.signals: CommitSignals = hub.commits if hub is not None else CommitSignals()
        self.origins = parse_origins(settings.allowed_origins)
        self.tokens = TokenCache()
        self.sessions: dict[str, McpSession] = {}
        self._services: Services | None = None
        self.managers: dict[str, StreamableHTTPSessionManager] = {}
        # The package logs each session's id and each failed call at INFO: not access-log lines.
        logging.getLogger("mcp").setLevel(logging.WARNING)
        if hub is not None:
            hub.drain_hooks.append(self.close_streams)
        for spec in tools.TOOLS:  # every series exists from start-up, at 0
            for ok in (True, False):
                metrics.mcp_tool_calls.labels(spec.name, "ok" if ok else "error")
        for profile in tools.PROFILES:
            server = tools.build_server(self._resolve, profile, observe=self._observe)
            self.managers[profile] = StreamableHTTPSessionManager(
                app=server._lowlevel_server,  # (what MCPServer's own HTTP app hands it)
                # This edge checks Origin itself, against ALLOWED_ORIGINS (CIDR entries
                # included); the package's check would refuse every host but localhost.
                security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False),
                session_idle_timeout=SESSION_IDLE_S,
                max_request_body_size=settings.max_body_bytes,
            )

    # ---- lifecycle ----

    @contextlib.asynccontextmanager
    async def running(self, services: Services) -> AsyncIterator[None]:
        self._services = services
        services.auth.revocations.subscribe(self._revoked)
        async with contextlib.AsyncExitStack() as stack:
            for manager in self.managers.values():
                await stack.enter_async_context(manager.run())
            sweeping = asyncio.create_task(self._sweep(), name="agenthub-mcp-sessions")
            try:
                yield
            finally:
                sweeping.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sweeping
                for key in list(self.sessions):
                    self._end(key)
                self._services = None

    async def close_streams(self) -> None:
        """When the server stops: end every MCP session, so that no open stream holds the
        shutdown until its grace period is over (clients reconnect to a new session)."""
        for key in list(self.sessions):
            state = self.sessions[key]
            self._end(key)
            transport = getattr(state.manager, "_server_instances", {}).get(key)
            if transport is not None:
                await transport.terminate()

    def mount(self, other: ASGIApp) -> ASGIApp:
        """`/mcp` to this edge, everything else (and the lifespan) to `other`."""

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http" and scope["path"] == MCP_PATH:
                await self(scope, receive, send)
            else:
                await other(scope, receive, send)

        return app

    def known_token(self, token: str) -> Principal | None:
        """The agent of an API token verified here recently (for the rate limiter)."""
        return self.tokens.get(token)

    # ---- requests ----

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        try:
            await self._serve(scope, receive, send)
        except AppError as exc:
            headers = [(b"www-authenticate", b"Bearer")] if exc.status == 401 else None
            await send_error(send, exc.status, exc.code, exc.message, headers)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        origin = _header(scope, b"origin")
        if origin is not None and not origin_allowed(self.origins, origin):
            raise Forbidden("this Origin is not allowed (ALLOWED_ORIGINS)")
        services = self._services
        if services is None:
            raise AppError("the MCP endpoint is not running")
        principal = await self._authenticate(services, scope)
        scope.setdefault("state", {})["principal"] = principal
        manager = self.managers[self._profile(scope)]
        key = _header(scope, SESSION_HEADER.encode())
        if key is not None:
            await self._in_session(key, principal, manager, scope, receive, send)
            return
        opened: list[str] = []

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] < 400:
                for name, value in message.get("headers", []):
                    if name.lower() == SESSION_HEADER.encode():
                        opened.append(value.decode("latin-1"))
                if opened:  # known before the client can use it
                    self._open(opened[0], principal, manager, services)
            await send(message)

        await manager.handle_request(scope, receive, watch)
        if opened:
            self._present(opened[0])

    async def _in_session(
        self,
        key: str,
        principal: Principal,
        manager: StreamableHTTPSessionManager,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        state = self.sessions.get(key)
        if state is None or state.manager is not manager:
            # Unknown, ended, or another profile's: the client opens a new session.
            raise NotFound("MCP session not found; start a new session")
        if state.principal.agent_id != principal.agent_id:
            raise NotFound("MCP session not found; start a new session")
        state.principal = principal
        state.inflight += 1
        try:
            await manager.handle_request(scope, receive, send)
        finally:
            state.inflight -= 1
            state.last_seen = time.monotonic()
        if scope["method"] == "DELETE":
            self._end(key)

    def _profile(self, scope: Scope) -> str:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        profile = str((query.get("tools") or [tools.FULL])[0])
        if profile not in tools.PROFILES:
            raise InvalidRequest(
                f"query parameter 'tools' must be one of {', '.join(tools.PROFILES)}"
            )
        return profile

    async def _authenticate(self, services: Services, scope: Scope) -> Principal:
        token = bearer_token(_header(scope, b"authorization"))
        if token is None:
            raise Unauthorized(
                "send your AgentHub API token as 'Authorization: Bearer agt_…' on every request"
            )
        if not token.startswith("agt_"):
            return services.auth.authenticate(token)  # a session JWT
        principal = self.tokens.get(token)
        if principal is None:
            session, _agent = await services.auth.open_session(token, client_host(scope))
            principal = services.auth.authenticate(session.token)
            self.tokens.put(token, principal)
        try:
            return services.auth.ensure_live(principal)
        except Unauthorized:
            raise Unauthorized("this API token has been revoked") from None

    # ---- sessions ----

    def _open(
        self,
        key: str,
        principal: Principal,
        manager: StreamableHTTPSessionManager,
        services: Services,
    ) -> None:
        backend = self._backend(services, principal)
        self.sessions[key] = McpSession(key, principal, tools.Session(backend), manager)
        self.metrics.mcp_sessions.set(len(self.sessions))

    def _backend(self, services: Services, principal: Principal) -> ServiceBackend:
        present = self.hub.presence.present if self.hub is not None else None
        url = f"http://{self.settings.host}:{self.settings.port}{MCP_PATH}"
        return ServiceBackend(services, principal, url, self.signals, present)

    def _present(self, key: str) -> None:
        state = self.sessions.get(key)
        if state is not None and self.hub is not None:
            self.hub.hold_presence(state.presence_key, state.principal)

    def _end(self, key: str) -> None:
        state = self.sessions.pop(key, None)
        if state is None:
            return
        if self.hub is not None:
            self.hub.release_presence(state.presence_key)
        self.metrics.mcp_sessions.set(len(self.sessions))

    def _revoked(self, token_ids: set[uuid.UUID]) -> None:
        """A revocation ends the token's MCP sessions at once (its requests are refused)."""
        self.tokens.forget(token_ids)
        for key, state in list(self.sessions.items()):
            if state.principal.token_id in token_ids:
                self._end(key)
                self._terminate(state)

    @staticmethod
    def _terminate(state: McpSession) -> None:
        """Close the session's open streams too (the package offers no public way)."""
        transport = getattr(state.manager, "_server_instances", {}).get(state.key)
        if transport is not None:
            asyncio.get_running_loop().create_task(transport.terminate())

    async def _sweep(self) -> None:
        """End the sessions the package has ended (idle timeout, crash) or that sit idle."""
        while True:
            await asyncio.sleep(SWEEP_S)
            now = time.monotonic()
            for key, state in list(self.sessions.items()):
                alive = getattr(state.manager, "_server_instances", None)
                gone = alive is not None and key not in alive
                idle = state.inflight == 0 and now - state.last_seen > SESSION_IDLE_S
                if gone or idle:
                    self._end(key)

    # ---- the tools' side ----

    async def _resolve(self, ctx: Context) -> tools.Session:
        """The session a tool call belongs to. A request of the 2026 protocol era carries no
        session: it is served on its own, as the agent the edge authenticated."""
        request = ctx.request_context.request
        headers = getattr(request, "headers", None)
        key = headers.get(SESSION_HEADER) if headers is not None else None
        state = self.sessions.get(key) if key else None
        if state is not None:
            return state.session
        scope = getattr(request, "scope", None) or {}
        principal = scope.get("state", {}).get("principal")
        if key is not None or principal is None or self._services is None:
            raise ToolError("this MCP session has ended; reconnect to AgentHub")
        return tools.Session(self._backend(self._services, principal))

    def _observe(self, tool: str, ok: bool) -> None:
        self.metrics.mcp_tool_call(tool, ok)

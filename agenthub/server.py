"""Running the app under uvicorn, with a shutdown that drains the real-time hub first."""

from __future__ import annotations

import contextlib
import errno
import gc
import socket
from collections.abc import Iterator
from pathlib import Path

import uvicorn
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State

import agenthub
from agenthub.app import build
from agenthub.config import Settings, load_settings
from agenthub.observability import logging as logs
from agenthub.realtime.hub import Hub
from agenthub.realtime.transport import LeanWebSocketProtocol

GRACE_SECONDS = 10


class AgentHubServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, hub: Hub) -> None:
        super().__init__(config)
        self.hub = hub

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            yield
            # uvicorn re-raises the signal once it has shut down, so the process dies of it
            # (exit 143); after an orderly stop we exit 0 instead.
            self._captured_signals.clear()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        settle_heap()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:  # stop accepting before draining
            server.close()
        await self.hub.drain(GRACE_SECONDS)
        self._mark_answered_closes()
        await super().shutdown(sockets)

    def _mark_answered_closes(self) -> None:
        """Websockets whose peer's close frame was already answered count as closed.

        uvicorn's sans-I/O protocol answers a peer's close frame without setting its own
        `close_sent`; a shutdown in the moment before the transport is lost then sends a second
        close, which `websockets` refuses with InvalidState, and that exception ends the
        shutdown loop and the process with exit 1. Marking them lets uvicorn just close the
        transport, as it does for connections whose close it sent itself."""
        for connection in list(self.server_state.connections):
            if (
                isinstance(connection, WebSocketsSansIOProtocol)
                and connection.handshake_complete
                and not connection.close_sent
                and connection.conn.state is not State.OPEN
            ):
                connection.close_sent = True


# Young objects the collector lets accumulate before a collection (CPython's default is 700).
GC_YOUNG_THRESHOLD = 10_000


def settle_heap() -> None:
    """Once started: what the process holds by then (modules, the app, the services) is
    exempted from garbage collection, and the youngest generation is collected about
    fourteen times less often. Each full collection otherwise walks every object of the heap,
    the startup's included, and with sockets arriving it ran every few hundred set-ups: 15 % of a
    set-up's CPU (ADR 0010, decision 19). Most garbage here is freed by reference counting
    anyway; the collector is for cycles."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


def _options(settings: Settings) -> dict[str, object]:
    return {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        # uvicorn's websockets-sansio protocol, which also lets Engine.IO sessions write frames
        # synchronously (realtime/transport.py; ADR 0012).
        "ws": LeanWebSocketProtocol,
        # The outermost layer returns its next layer's coroutine (RequestContextMiddleware):
        # not a coroutine function, which uvicorn's guess would take for ASGI 2.
        "interface": "asgi3",
        "ws_per_message_deflate": False,
        # No websocket-level keepalive from uvicorn (a timer per socket and a ping frame every
        # 20 s each): Engine.IO already pings every SOCKETIO_PING_INTERVAL and closes a peer
        # that misses SOCKETIO_PING_TIMEOUT. With 3,000 idle sockets the server's idle CPU
        # fell from 6.4 % to 4.8 % of a core (bench/profile.py; ADR 0010).
        "ws_ping_interval": None,
        "ws_ping_timeout": None,
        # A frame's declared length is checked before its payload is read: a frame over the
        # limit closes the connection (1009) instead of being buffered (16 MiB by default),
        # before any authentication. Engine.IO checks the same limit only after buffering.
        "ws_max_size": settings.max_body_bytes,
        "lifespan": "on",
        "server_header": False,
        # Never uvicorn's default trust of 127.0.0.1: the app applies TRUSTED_PROXIES itself.
        "proxy_headers": False,
        "timeout_graceful_shutdown": GRACE_SECONDS,
        "log_config": None,  # configured by logs.setup
        "access_log": False,  # RequestContextMiddleware logs requests, without query strings
    }


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound now so that a port in use is known before anything starts.

    As uvicorn binds (SO_REUSEADDR, IPv6 for an address with a colon), then handed to it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def bind_error(host: str, port: int, exc: OSError) -> str:
    """One sentence naming the port, and what to do."""
    if exc.errno == errno.EADDRINUSE:
        return (
            f"port {port} on {host} is already in use (another agenthub?): stop that process, "
            "or choose another port with --port or PORT"
        )
    if exc.errno == errno.EACCES:
        return f"not allowed to listen on port {port} on {host}: choose a port above 1023"
    reason = exc.strerror or type(exc).__name__
    return f"cannot listen on {host}:{port}: {reason} (check --host / HOST)"


def run(settings: Settings, sock: socket.socket | None = None) -> None:
    logs.setup(settings.log_level, settings.json_logs)
    app, hub = build(settings)
    config = uvicorn.Config(app, **_options(settings))  # type: ignore[arg-type]
    AgentHubServer(config, hub).run(sockets=[sock] if sock is not None else None)


def run_reloading(settings: Settings) -> None:
    """Development only: restart the app whenever a file of the package changes.

    uvicorn's reloader serves from a fresh child process, which builds the app from the import
    string below, so the settings are read again there from the same environment (host and port
    are the reloader's). That child runs a plain uvicorn server, without the socket drain of
    `AgentHubServer`: fine for a developer, not for production (the CLI refuses it there).
    """
    logs.setup(settings.log_level, settings.json_logs)
    uvicorn.run(
        "agenthub.server:reloadable_app",
        factory=True,
        reload=True,
        reload_dirs=[str(Path(agenthub.__file__).parent)],
        **_options(settings),  # type: ignore[arg-type]
    )


def reloadable_app() -> object:
    """The factory `run_reloading` names: the app for the reloader's child process."""
    settings = load_settings()
    logs.setup(settings.log_level, settings.json_logs)
    return build(settings)[0]

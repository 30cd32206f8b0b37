"""Running the app under uvicorn, with a shutdown that drains the real-time hub first."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

import uvicorn

from agenthub.app import build
from agenthub.config import Settings
from agenthub.observability import logging as logs
from agenthub.realtime.hub import Hub

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

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:  # stop accepting before draining
            server.close()
        await self.hub.drain(GRACE_SECONDS)
        await super().shutdown(sockets)


def run(settings: Settings) -> None:
    logs.setup(settings.log_level, settings.json_logs)
    app, hub = build(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        ws_per_message_deflate=False,
        lifespan="on",
        server_header=False,
        # Never uvicorn's default trust of 127.0.0.1: the app applies TRUSTED_PROXIES itself.
        proxy_headers=False,
        timeout_graceful_shutdown=GRACE_SECONDS,
        log_config=None,  # configured by logs.setup
        access_log=False,  # RequestContextMiddleware logs requests, without query strings
    )
    AgentHubServer(config, hub).run()

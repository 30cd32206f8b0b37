"""Running the app under uvicorn, with a shutdown that drains the real-time hub first."""

from __future__ import annotations

import socket

import uvicorn

from agenthub.app import build
from agenthub.config import Settings
from agenthub.realtime.hub import Hub

GRACE_SECONDS = 10


class AgentHubServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, hub: Hub) -> None:
        super().__init__(config)
        self.hub = hub

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:  # stop accepting before draining
            server.close()
        await self.hub.drain(GRACE_SECONDS)
        await super().shutdown(sockets)


def run(settings: Settings) -> None:
    app, hub = build(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        ws_per_message_deflate=False,
        lifespan="on",
        server_header=False,
        timeout_graceful_shutdown=GRACE_SECONDS,
    )
    AgentHubServer(config, hub).run()

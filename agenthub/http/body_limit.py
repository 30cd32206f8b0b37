"""Refuse request bodies over the limit with 413, without reading the rest of them.

A declared `Content-Length` over the limit is refused before the app runs. A chunked body
(no length) is counted as it is read: once it passes the limit, the app reads a disconnect (as
if the client had gone), and whatever the app would have answered to that (FastAPI answers a
failed body read with a 400, engine.io reads a short body) is replaced by the 413 here, so the
status never depends on how the app reacts.

It wraps Socket.IO's polling requests as well as the API: engine.io itself answers an
oversized POST only once a poll takes the session's CLOSE packet, which may be never.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agenthub.http.errors import send_error


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    await self._refuse(send)
                    return
        received = 0
        exceeded = False
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            if exceeded:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:  # chunked upload without Content-Length
                    # Not an exception: engine.io logs any error of a body read as its own.
                    exceeded = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal response_started
            if exceeded and not response_started:
                return  # the app's answer to a cut-off body: the 413 below replaces it
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not exceeded or response_started:
                raise
        if exceeded and not response_started:
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        # No `Connection: close`: closing with the rest of the body unread makes the kernel
        # reset the connection, which often destroys the 413 before the client (still sending)
        # reads it. Kept open, the server discards the rest of the body as it arrives.
        message = f"request body exceeds {self.max_bytes} bytes"
        await send_error(send, 413, "payload_too_large", message)

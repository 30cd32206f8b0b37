"""The AgentHub SDK: an async client (`AgentHubClient`), a blocking one (`SyncClient`), the
values they return, and the contract's errors as exceptions. See docs/SDK.md.

    async with AgentHubClient("http://127.0.0.1:3000", "agt_…") as hub:
        await hub.send("general", "hello")
        async for message in hub.messages():
            print(message.seq, message.body)
"""

from __future__ import annotations

from agenthub.client.client import AgentHubClient
from agenthub.client.errors import (
    AgentHubError,
    BadResponse,
    Conflict,
    ConnectionError,
    Forbidden,
    Internal,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ResponseTooLarge,
    Unauthorized,
    Unavailable,
)
from agenthub.client.models import (
    Ack,
    AckAnswer,
    Agent,
    Claim,
    HistoryPage,
    InboxItem,
    InboxPage,
    Message,
    PendingAck,
    Room,
    SearchHit,
    SearchPage,
    Thread,
)
from agenthub.client.session import Session, renew_margin
from agenthub.client.subscription import Subscription
from agenthub.client.sync import SyncClient

__all__ = [
    "Ack",
    "AckAnswer",
    "Agent",
    "AgentHubClient",
    "AgentHubError",
    "BadResponse",
    "Claim",
    "Conflict",
    "ConnectionError",
    "Forbidden",
    "HistoryPage",
    "InboxItem",
    "InboxPage",
    "Internal",
    "InvalidRequest",
    "Message",
    "NotFound",
    "PayloadTooLarge",
    "PendingAck",
    "RateLimited",
    "ResponseTooLarge",
    "Room",
    "SearchHit",
    "SearchPage",
    "Session",
    "Subscription",
    "SyncClient",
    "Thread",
    "Unauthorized",
    "Unavailable",
    "renew_margin",
]

"""API tokens: `agt_<6 chars>_<secret>`, of which only an Argon2id hash is stored.

Hashing and verifying cost about 20 ms of CPU and 19 MiB each; they run in worker threads,
at most one per core (the `limiter` the caller passes: the auth service owns one per running
app, see `hashing_limiter`), so a burst of logins neither blocks the event loop nor balloons
memory.
"""

from __future__ import annotations

import functools
import os
import re
import secrets

import anyio
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

PREFIX_LENGTH = 10
TOKEN_RE = re.compile(r"^agt_[A-Za-z0-9_-]{6}_[A-Za-z0-9_-]{43}$")
PREFIX_RE = re.compile(r"^agt_[A-Za-z0-9_-]{6}$")

_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1, hash_len=32, salt_len=16)


def hashing_limiter() -> anyio.CapacityLimiter:
    """At most one hashing thread per core (create it inside the event loop that uses it)."""
    return anyio.CapacityLimiter(os.cpu_count() or 1)


def new_token() -> tuple[str, str]:
    """A fresh (prefix, full token). The secret is 32 random bytes, base64url, no padding."""
    prefix = "agt_" + secrets.token_urlsafe(6)[:6]
    return prefix, f"{prefix}_{secrets.token_urlsafe(32)}"


def prefix_of(token: str) -> str | None:
    return token[:PREFIX_LENGTH] if TOKEN_RE.match(token) else None


async def hash_token(token: str, limiter: anyio.CapacityLimiter) -> str:
    return await anyio.to_thread.run_sync(_hasher.hash, token, limiter=limiter)


@functools.cache
def _dummy_hash() -> str:
    """A hash of a secret nobody holds, with the real parameters: verifying against it costs
    what verifying against a stored token's hash costs, and never succeeds."""
    return _hasher.hash(secrets.token_urlsafe(32))


def _verify(stored: str | None, token: str) -> bool:
    try:
        if stored is None:
            _hasher.verify(_dummy_hash(), token)
            return False
        return _hasher.verify(stored, token)
    except (VerificationError, InvalidHashError):
        return False


async def verify_token(stored: str | None, token: str, limiter: anyio.CapacityLimiter) -> bool:
    """Whether `token` matches the `stored` hash; with None, the same work and False."""
    return await anyio.to_thread.run_sync(_verify, stored, token, limiter=limiter)

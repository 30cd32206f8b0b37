"""PostgreSQL's own client tools (pg_dump, pg_restore), found and run safely.

A pg_dump older than the server refuses to dump it, so the newest installed version is chosen
among the one on PATH and those of Debian's /usr/lib/postgresql/*/bin. The connection goes to
the tools as a URL without its password; the password travels in the child's environment
(PGPASSWORD), where `ps` does not show it, and is cut out of anything the tools print.
"""

from __future__ import annotations

import asyncio
import glob
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL, make_url

DEBIAN_BIN_GLOB = "/usr/lib/postgresql/*/bin"
CONNECT_TIMEOUT_S = "10"
_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)")


class ToolError(Exception):
    """A tool is missing, too old, or failed; the message is one sentence for the operator."""


@dataclass(frozen=True)
class Tool:
    path: str
    major: int


@dataclass(frozen=True)
class Connection:
    """How the tools reach the database: `dbname` for their --dbname (no password in it) and
    the environment to run them in."""

    dbname: str
    env: dict[str, str]
    password: str | None
    label: str  # "DB on HOST:PORT", safe to print

    @property
    def dbname_arg(self) -> str:
        return f"--dbname={self.dbname}"

    def redact(self, text: str) -> str:
        return text.replace(self.password, "***") if self.password else text


def connection(url: str) -> Connection:
    parsed: URL = make_url(url)
    password = parsed.password if isinstance(parsed.password, str) else None
    # URL.set() leaves a field alone when given None: replace it to drop the password.
    plain = parsed._replace(drivername="postgresql", password=None)
    env = dict(os.environ)
    env.setdefault("PGCONNECT_TIMEOUT", CONNECT_TIMEOUT_S)
    if password:
        env["PGPASSWORD"] = password
    label = f"{parsed.database} on {parsed.host or 'localhost'}:{parsed.port or 5432}"
    return Connection(plain.render_as_string(hide_password=False), env, password, label)


async def _major(path: str) -> int | None:
    try:
        proc = await asyncio.create_subprocess_exec(
            path,
            "--version",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        out, _ = await proc.communicate()
    except OSError:
        return None
    found = _VERSION.search(out.decode(errors="replace"))
    return int(found.group(1)) if found else None


def _candidates(name: str) -> list[str]:
    """Every installed `name`: the one on PATH first, then Debian's, each counted once."""
    candidates: list[str] = []
    on_path = shutil.which(name)
    if on_path:
        candidates.append(os.path.realpath(on_path))
    for folder in sorted(glob.glob(DEBIAN_BIN_GLOB)):
        path = os.path.realpath(Path(folder) / name)
        if os.access(path, os.X_OK) and path not in candidates:
            candidates.append(path)
    return candidates


async def find(name: str) -> Tool:
    """The newest `name` installed (on PATH first among equal versions), or ToolError."""
    candidates = _candidates(name)
    best: Tool | None = None
    for path in candidates:
        major = await _major(path)
        if major is not None and (best is None or major > best.major):
            best = Tool(path, major)
    if best is None:
        raise ToolError(
            f"{name} not found on PATH or in {DEBIAN_BIN_GLOB}: install the PostgreSQL client "
            "tools (Debian/Ubuntu: apt-get install postgresql-client)"
        )
    return best


async def run(tool: Tool, args: list[str], conn: Connection | None) -> str:
    """Run `tool` with `args`; returns its stdout, or raises ToolError with its first error."""
    env = conn.env if conn else dict(os.environ)
    proc = await asyncio.create_subprocess_exec(
        tool.path,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
        env=env,
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise ToolError(_first_error(Path(tool.path).name, err.decode(errors="replace"), conn))
    return out.decode(errors="replace")


def _first_error(name: str, stderr: str, conn: Connection | None) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    chosen = next((line for line in lines if "error:" in line), lines[0] if lines else "")
    chosen = chosen.split("error:", 1)[-1].strip() if "error:" in chosen else chosen
    text = conn.redact(chosen) if conn else chosen
    return f"{name} failed: {text}" if text else f"{name} failed"

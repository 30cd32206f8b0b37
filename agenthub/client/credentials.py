"""Where the agent CLI and the MCP server find the server URL and the API token.

`AGENTHUB_URL` and `AGENTHUB_TOKEN` win; otherwise the per-user file written by
`agenthub login`: `$XDG_CONFIG_HOME/agenthub/config.json`, or `~/.config/agenthub/config.json`.
The file holds a secret, so it is created with mode 0600 (its folder 0700) and replaced
atomically, never left half-written.

A file that others can read or write is refused, as ssh refuses an unprotected private key:
readable, the token may already be someone else's; writable (the file, or its folder), someone
else can point the URL at a server of theirs and receive the token with the next command. The
error says how to fix the mode; the environment variables still work meanwhile.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ENV_URL = "AGENTHUB_URL"
ENV_TOKEN = "AGENTHUB_TOKEN"  # noqa: S105 (the variable's name, not a secret)
CONFIG_FILE = "config.json"


class NotConfigured(Exception):
    """No URL or token: the message says how to provide them."""


@dataclass(frozen=True, slots=True)
class Credentials:
    url: str
    token: str


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    xdg = env.get("XDG_CONFIG_HOME", "")
    # The XDG spec says to ignore a relative value.
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".config"
    return base / "agenthub" / CONFIG_FILE


def load_credentials(environ: Mapping[str, str] | None = None) -> Credentials:
    env = os.environ if environ is None else environ
    # Surrounding whitespace is never part of either: a CRLF file, a pasted newline.
    url = env.get(ENV_URL, "").strip()
    token = env.get(ENV_TOKEN, "").strip()
    if not (url and token):
        stored = _read(config_path(env))
        url = url or stored.get("url", "").strip()
        token = token or stored.get("token", "").strip()
    if not url or not token:
        missing = " and ".join(
            name for name, value in ((ENV_URL, url), (ENV_TOKEN, token)) if not value
        )
        raise NotConfigured(
            f"AgentHub is not configured ({missing} missing): run `agenthub login --url URL` "
            f"or set {ENV_URL} and {ENV_TOKEN}"
        )
    return Credentials(url=url, token=token)


def save_credentials(credentials: Credentials, environ: Mapping[str, str] | None = None) -> Path:
    path = config_path(environ)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    data = json.dumps({"url": credentials.url, "token": credentials.token}, indent=2) + "\n"
    # mkstemp creates the file 0600, so the token is never readable by others, not even briefly.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".config-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(data)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _read(path: Path) -> dict[str, str]:
    try:
        _check_private(path)
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise NotConfigured(
            f"cannot read {path} ({exc}); run `agenthub login` again to rewrite it"
        ) from None
    if not isinstance(data, dict):
        raise NotConfigured(f"{path} is not a JSON object; run `agenthub login` again")
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}


def _check_private(path: Path) -> None:
    """NotConfigured unless only its owner, the current user, can read or change `path`."""
    if os.name != "posix":
        return
    info = path.stat()  # FileNotFoundError: no file, nothing to check
    folder = path.parent.stat()
    fix = f"run `chmod 600 {path}` and `chmod 700 {path.parent}`"
    if info.st_uid != os.geteuid() or folder.st_uid != os.geteuid():
        raise NotConfigured(f"{path} (or its folder) belongs to another user: refused; {fix}")
    if stat.S_IMODE(info.st_mode) & 0o077:
        raise NotConfigured(
            f"{path} can be read or written by other users "
            f"(mode {stat.S_IMODE(info.st_mode):04o}): refused, since it holds your API token; "
            f"{fix}, and consider issuing a new token"
        )
    if stat.S_IMODE(folder.st_mode) & 0o022:
        raise NotConfigured(
            f"{path.parent} can be written by other users "
            f"(mode {stat.S_IMODE(folder.st_mode):04o}): refused, since they could replace "
            f"the file and its URL; {fix}"
        )

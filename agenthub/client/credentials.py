"""Where the agent CLI and the MCP server find the server URL and the API token.

`AGENTHUB_URL` and `AGENTHUB_TOKEN` win; otherwise the per-user file written by
`agenthub login`: `$XDG_CONFIG_HOME/agenthub/config.json`, or `~/.config/agenthub/config.json`.
The file holds a secret, so it is created with mode 0600 (its folder 0700) and replaced
atomically, never left half-written.
"""

from __future__ import annotations

import json
import os
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
    stored = _read(config_path(env))
    url = env.get(ENV_URL) or stored.get("url")
    token = env.get(ENV_TOKEN) or stored.get("token")
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

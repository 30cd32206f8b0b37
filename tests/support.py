"""The test harness: a real `agenthub serve` process on a loopback port, and a thin HTTP client.

Nothing here mocks AgentHub: the server is the CLI's, the database is a real SQLite file or a
fresh PostgreSQL database, and requests go over real sockets.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import random
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

PG_ADMIN_URL = os.environ.get(
    "AGENTHUB_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
START_TIMEOUT_S = 30
JWT_SECRET = "test-secret-" + "x" * 40


def assert_error(r: httpx.Response, status: int, code: str) -> str:
    """`r` is the contract's error envelope with this status and code; returns its message."""
    assert r.status_code == status, r.text[:500]
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"] == code, body
    message = body["error"]["message"]
    assert isinstance(message, str), body
    assert message, body
    return message


def parse_time(value: str) -> datetime:
    """An RFC 3339 time with a Z, as the contract writes them."""
    assert value.endswith("Z"), value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def token_id_of(session_jwt: str) -> str:
    """The `tid` claim (the API token's id) of a session JWT, read without verifying it."""
    payload = session_jwt.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return str(claims["tid"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def loopback_address() -> str:
    """An address of its own on the loopback network (127.x.y.z), for a client whose per-IP
    counters (rate limits, pending Socket.IO sessions) must start at zero."""
    return f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"


def uniq(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def cli(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the `agenthub` command as a user would, with the given environment."""
    return subprocess.run(
        [sys.executable, "-m", "agenthub", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def base_env(database_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("POSTGRES_", "AGENTHUB_", "DATABASE_URL", "JWT_"))
    }
    env.update(
        DATABASE_URL=database_url,
        AGENTHUB_DATA_DIR=str(data_dir),
        AGENTHUB_ENV="test",
        JWT_SECRET=JWT_SECRET,
        LOG_LEVEL="warning",
        # The suite logs in far more often than 100 times a minute from one address; the
        # rate-limit tests start servers of their own with the real limits.
        RATE_LIMIT_UNAUTH_PER_MIN="1000000",
        RATE_LIMIT_AUTH_PER_MIN="1000000",
    )
    env.update(extra)
    return env


@dataclass
class Agent:
    """An agent as seen by the tests: its ids, its API token and a session JWT."""

    id: str
    name: str
    role: str
    token: str
    jwt: str
    client: ApiClient = field(repr=False)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.client.request("GET", path, jwt=self.jwt, **kw)

    def post(self, path: str, json_body: Any = None, **kw: Any) -> httpx.Response:
        return self.client.request("POST", path, jwt=self.jwt, json=json_body, **kw)

    def delete(self, path: str, **kw: Any) -> httpx.Response:
        return self.client.request("DELETE", path, jwt=self.jwt, **kw)


class ApiClient:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = httpx.Client(base_url=base_url, timeout=30)

    def request(
        self, method: str, path: str, *, jwt: str | None = None, **kw: Any
    ) -> httpx.Response:
        headers = dict(kw.pop("headers", {}) or {})
        if jwt is not None:
            headers.setdefault("Authorization", f"Bearer {jwt}")
        return self.http.request(method, path, headers=headers, **kw)

    def session(self, api_token: str) -> httpx.Response:
        return self.http.post("/api/v1/sessions", headers={"Authorization": f"Bearer {api_token}"})

    def login(self, api_token: str) -> str:
        r = self.session(api_token)
        assert r.status_code == 201, r.text
        return str(r.json()["token"])

    def close(self) -> None:
        self.http.close()


@dataclass
class Server:
    backend: str
    base_url: str
    database_url: str
    env: dict[str, str]
    proc: subprocess.Popen[bytes]
    log_path: Path
    api: ApiClient
    admin: Agent

    def new_agent(self, role: str = "agent", name: str | None = None) -> Agent:
        """Create an agent through the API (as the admin), issue its token, open a session."""
        name = name or uniq("agent")
        r = self.admin.post(
            "/api/v1/agents", {"name": name, "displayName": name.title(), "role": role}
        )
        assert r.status_code == 201, r.text
        agent = r.json()
        r = self.admin.post(f"/api/v1/agents/{name}/tokens", {})
        assert r.status_code == 201, r.text
        token = r.json()["token"]
        return Agent(agent["id"], name, role, token, self.api.login(token), self.api)

    def new_room(self, owner: Agent, *members: Agent, slug: str | None = None) -> dict[str, Any]:
        slug = slug or uniq("room")
        r = owner.post("/api/v1/rooms", {"slug": slug, "name": slug.title()})
        assert r.status_code == 201, r.text
        room: dict[str, Any] = r.json()
        for m in members:
            r = owner.post(f"/api/v1/rooms/{slug}/members", {"agent": m.name})
            assert r.status_code == 201, r.text
        return room

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


def wait_ready(base_url: str, proc: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log_path.read_text()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"server not ready within {START_TIMEOUT_S}s:\n{log_path.read_text()}")


def start_server(backend: str, database_url: str, data_dir: Path, **extra_env: str) -> Server:
    """Create the first admin with the CLI, then run `agenthub serve` until it is ready."""
    data_dir.mkdir(parents=True, exist_ok=True)
    env = base_env(database_url, data_dir, **extra_env)
    admin_name = uniq("root")
    made = cli(env, "agents", "create", admin_name, "--admin", "--json")
    assert made.returncode == 0, made.stderr
    issued = cli(env, "tokens", "issue", admin_name, "--json")
    assert issued.returncode == 0, issued.stderr
    token = json.loads(issued.stdout)["token"]

    port = free_port()
    log_path = data_dir / f"server-{port}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "agenthub", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base_url, proc, log_path)
    except Exception:
        stop_process(proc)
        raise
    api = ApiClient(base_url)
    agent = json.loads(made.stdout)
    admin = Agent(agent["id"], admin_name, "admin", token, api.login(token), api)
    return Server(backend, base_url, database_url, env, proc, log_path, api, admin)


def stop_process(proc: subprocess.Popen[Any], timeout: float = 15) -> int | None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.returncode

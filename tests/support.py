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
LOG_WAIT_S = 10  # how long a test waits for a line it caused to reach a server's log
START_ATTEMPTS = 3  # a port picked free can be taken before the server binds it
# A renewing agent (the session's admin) trades its API token for a new JWT when the one it holds
# has less than this left (or half its lifetime, for servers with short test lifetimes).
RENEW_BEFORE_S = 120.0
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


def jwt_claims(token: str) -> dict[str, Any]:
    """A JWT's payload, read without verifying it (only to know when it expires)."""
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert isinstance(claims, dict), claims
    return claims


@dataclass
class Agent:
    """An agent as seen by the tests: its ids, its API token and a session JWT.

    `renewing` agents (the harness's admin, which lives as long as a whole test session) get a
    new JWT before theirs expires and after a 401, so a long run never sees the admin refused;
    the agents tests create keep exactly the JWT they were given."""

    id: str
    name: str
    role: str
    token: str
    jwt: str
    client: ApiClient = field(repr=False)
    renewing: bool = False

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, json_body: Any = None, **kw: Any) -> httpx.Response:
        return self.request("POST", path, json=json_body, **kw)

    def delete(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("DELETE", path, **kw)

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        own_jwt = "Authorization" not in (kw.get("headers") or {})
        if self.renewing and own_jwt:
            self.renew_if_due()
        r = self.client.request(method, path, jwt=self.jwt, **kw)
        if r.status_code == 401 and self.renewing and own_jwt and self._renew():
            r = self.client.request(method, path, jwt=self.jwt, **kw)
        return r

    def renew_if_due(self) -> None:
        claims = jwt_claims(self.jwt)
        lifetime = float(claims["exp"]) - float(claims["iat"])
        if float(claims["exp"]) - time.time() < min(RENEW_BEFORE_S, lifetime / 2):
            self._renew()

    def _renew(self) -> bool:
        r = self.client.session(self.token)
        if r.status_code != 201:
            return False
        self.jwt = str(r.json()["token"])
        return True


class ApiClient:
    def __init__(self, base_url: str, local_address: str | None = None) -> None:
        self.base_url = base_url
        # `local_address` (a 127.x.y.z of the test's own) keeps the harness's logins out of a
        # per-IP rate-limit counter that other servers share through Redis.
        transport = httpx.HTTPTransport(local_address=local_address) if local_address else None
        self.http = httpx.Client(base_url=base_url, timeout=30, transport=transport)

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


@dataclass(frozen=True)
class LogMark:
    """A position in a server's log: `Server.log_text(since=mark)` reads what came after it."""

    path: Path
    offset: int


@dataclass
class Server:
    backend: str
    base_url: str
    database_url: str
    env: dict[str, str]
    proc: subprocess.Popen[bytes]
    log_path: Path
    api: ApiClient
    _admin: Agent
    # Logs of the processes this server ran before a restart (tests/faults.py), oldest first.
    past_logs: list[Path] = field(default_factory=list)

    @property
    def admin(self) -> Agent:
        """The first admin, with a JWT that is not about to expire."""
        self._admin.renew_if_due()
        return self._admin

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

    def log_mark(self) -> LogMark:
        """Where the log ends now: a test that checks the log reads only what it caused."""
        size = self.log_path.stat().st_size if self.log_path.exists() else 0
        return LogMark(self.log_path, size)

    def log_text(self, since: LogMark | None = None) -> str:
        """The log of this server (all its processes), or only what was written after `since`."""
        paths = [*self.past_logs, self.log_path]
        if since is not None and since.path in paths:
            paths = paths[paths.index(since.path) :]
        parts = []
        for path in paths:
            with path.open("rb") as f:
                if since is not None and path == since.path:
                    f.seek(since.offset)
                parts.append(f.read().decode(errors="replace"))
        return "".join(parts)

    def log_text_with(
        self, needle: str, since: LogMark | None = None, within: float = LOG_WAIT_S
    ) -> str:
        """`log_text(since)` once `needle` is in it. An access line is written after its response
        has left, so a test that has its answer may read the log before the line is there; this
        waits (bounded) and then returns the text whether or not the needle came."""
        deadline = time.monotonic() + within
        text = self.log_text(since)
        while needle not in text and time.monotonic() < deadline:
            time.sleep(0.05)
            text = self.log_text(since)
        return text


class PortTaken(RuntimeError):
    """The server could not bind its port: something took it after it was picked."""


def _listening(pid: int, port: int) -> bool:
    """Whether process `pid` itself listens on TCP `port` (Linux /proc): /readyz answered by
    whichever process holds a port is no proof that it is the one just started."""
    try:
        inodes = {
            os.readlink(fd)[len("socket:[") : -1]
            for fd in Path(f"/proc/{pid}/fd").iterdir()
            if os.readlink(fd).startswith("socket:[")
        }
    except OSError:
        return False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port and inode in inodes:
                    return True
    return False


def wait_ready(base_url: str, proc: subprocess.Popen[bytes], log_path: Path) -> None:
    """Until `proc` listens on the URL's port and answers /readyz 200; PortTaken if it could
    not bind the port, RuntimeError for any other failure to start."""
    port = int(base_url.rsplit(":", 1)[1])
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log = log_path.read_text(errors="replace")
            # uvicorn's own wording, or `agenthub serve`'s one line naming the port
            if "address already in use" in log.lower() or "is already in use" in log:
                raise PortTaken(f"port {port} was taken before the server bound it")
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log}")
        if _listening(proc.pid, port):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                    return
        time.sleep(0.1)
    raise RuntimeError(f"server not ready within {START_TIMEOUT_S}s:\n{log_path.read_text()}")


def spawn_server(env: dict[str, str], port: int, log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "agenthub", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            # Not the checkout: settings also come from a `.env` in the working directory, and a
            # deployer's .env there (docs/DEPLOYMENT.md) must not change the servers under test.
            cwd=log_path.parent,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def start_server(
    backend: str,
    database_url: str,
    data_dir: Path,
    *,
    client_address: str | None = None,
    **extra_env: str,
) -> Server:
    """Create the first admin with the CLI, then run `agenthub serve` until it is ready.

    `client_address`: the loopback address the harness's own requests come from."""
    data_dir.mkdir(parents=True, exist_ok=True)
    env = base_env(database_url, data_dir, **extra_env)
    admin_name = uniq("root")
    made = cli(env, "agents", "create", admin_name, "--admin", "--token", "--json")
    assert made.returncode == 0, made.stderr
    agent = json.loads(made.stdout)
    token = agent["token"]["token"]

    for attempt in range(1, START_ATTEMPTS + 1):
        port = free_port()
        log_path = data_dir / f"server-{port}.log"
        proc = spawn_server(env, port, log_path)
        base_url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(base_url, proc, log_path)
            break
        except PortTaken:
            stop_process(proc)
            if attempt == START_ATTEMPTS:
                raise
        except Exception:
            stop_process(proc)
            raise
    api = ApiClient(base_url, client_address)
    admin = Agent(agent["id"], admin_name, "admin", token, api.login(token), api, renewing=True)
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

"""The `agenthub` command end to end: a real subprocess against a real database of its own.

Every test but the zero-configuration `serve` runs on SQLite and on PostgreSQL, each in a fresh
database, and reads the `--json` output where a script would.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.databases import fresh_pg_database, query
from tests.support import (
    ApiClient,
    base_env,
    cli,
    free_port,
    start_server,
    stop_process,
    uniq,
    wait_ready,
)

TOKEN_RE = re.compile(r"^agt_[A-Za-z0-9_-]{6}_[A-Za-z0-9_-]{43}$")
TOKEN_ANYWHERE = re.compile(r"agt_[A-Za-z0-9_-]{6}_[A-Za-z0-9_-]{43}")
SEED_AGENTS = {"founder-ceo": "admin", "agent-alpha": "agent", "agent-beta": "agent"}

# Every variable AgentHub reads; a "no configuration" environment has none of them.
CONFIG_VARS = {
    "DATABASE_URL",
    "JWT_SECRET",
    "JWT_TTL_SECONDS",
    "HOST",
    "PORT",
    "LOG_LEVEL",
    "ALLOWED_ORIGINS",
    "FEATURE_MESSAGING_ENABLED",
    "MAX_MESSAGE_BYTES",
    "MAX_BODY_BYTES",
}


def bare_env() -> dict[str, str]:
    """os.environ without anything AgentHub would read as configuration."""
    return {
        k: v
        for k, v in os.environ.items()
        if k.upper() not in CONFIG_VARS and not k.upper().startswith(("POSTGRES_", "AGENTHUB_"))
    }


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return result


def ok_json(env: dict[str, str], *args: str) -> Any:
    return json.loads(ok(cli(env, *args, "--json")).stdout)


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """A refused command: non-zero exit, one `error:` sentence on stderr, no traceback."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


@pytest.fixture
def env(backend: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment of a fresh, empty database of this test's own on `backend`."""
    data_dir = tmp_path / "data"
    if backend == "sqlite":
        yield base_env(f"sqlite:///{tmp_path / 'cli.db'}", data_dir)
    else:
        with fresh_pg_database("cli") as url:
            yield base_env(url, data_dir)


def test_migrate_is_safe_to_repeat(env: dict[str, str]) -> None:
    first = ok(cli(env, "migrate"))
    assert "migrated" in first.stdout
    tables = query(env["DATABASE_URL"], "SELECT count(*) FROM agents")
    assert tables == [(0,)]

    second = ok(cli(env, "migrate"))
    assert "up to date" in second.stdout
    revision = query(env["DATABASE_URL"], "SELECT version_num FROM alembic_version")
    assert len(revision) == 1
    assert revision[0][0] in second.stdout


def test_agents_create_and_list(env: dict[str, str]) -> None:
    worker = ok_json(env, "agents", "create", "worker-1")
    boss = ok_json(env, "agents", "create", "boss-1", "--admin")
    assert worker["name"] == "worker-1"
    assert worker["role"] == "agent"
    assert boss["role"] == "admin"
    assert set(worker) == {"id", "name", "displayName", "role", "createdAt"}
    assert worker["createdAt"].endswith("Z")

    human = ok(cli(env, "agents", "create", "helper-1", "--display-name", "Helper One"))
    assert "helper-1" in human.stdout
    assert not human.stdout.lstrip().startswith("{")

    listed = ok_json(env, "agents", "list")
    by_name = {a["name"]: a for a in listed}
    assert set(by_name) == {"worker-1", "boss-1", "helper-1"}
    assert by_name["worker-1"] == worker
    assert by_name["boss-1"] == boss
    assert by_name["helper-1"]["displayName"] == "Helper One"

    table = ok(cli(env, "agents", "list")).stdout
    for name in ("worker-1", "boss-1", "helper-1"):
        assert name in table
    assert worker["id"] in table


def test_agents_create_with_its_first_token(env: dict[str, str]) -> None:
    made = ok_json(env, "agents", "create", "starter", "--admin", "--token")
    issued = made.pop("token")
    assert set(made) == {"id", "name", "displayName", "role", "createdAt"}
    assert made["role"] == "admin"
    assert TOKEN_RE.match(issued["token"]), issued
    assert issued["prefix"] == issued["token"][:10]
    # The human form ends with the token alone on its line, for `| tail -n 1`.
    human = ok(cli(env, "agents", "create", "second", "--token")).stdout.splitlines()
    assert "second" in human[0]
    assert TOKEN_RE.match(human[-1]), human
    for name, token in (("starter", issued["token"]), ("second", human[-1])):
        [listed] = ok_json(env, "tokens", "list", name)
        assert listed["prefix"] == token[:10]
    # Refused as without --token: nothing created, no token issued.
    dup = cli(env, "agents", "create", "starter", "--token")
    assert "starter" in one_error_line(dup)
    assert dup.stdout == ""
    assert len(ok_json(env, "tokens", "list", "starter")) == 1


def test_agents_create_duplicate_is_one_clear_error(env: dict[str, str]) -> None:
    ok_json(env, "agents", "create", "twin")
    dup = cli(env, "agents", "create", "twin", "--admin")
    assert dup.returncode == 1
    line = one_error_line(dup)
    assert "twin" in line
    assert dup.stdout == ""
    assert [a["role"] for a in ok_json(env, "agents", "list")] == ["agent"]


INVALID_NAMES = ["Bad_Name", "x", "-leading-dash", "n" * 10_000]


def test_agents_create_invalid_name(env: dict[str, str]) -> None:
    for name in INVALID_NAMES:
        bad = cli(env, "agents", "create", "--", name)
        line = one_error_line(bad)
        assert bad.returncode == 2, line
        assert "invalid agent name" in line, line
        assert len(line) < 200, line  # one sentence, not a dump of the input
        assert bad.stdout == ""
    too_long = cli(env, "agents", "create", "fine-name", "--display-name", "D" * 201)
    assert "--display-name" in one_error_line(too_long)
    assert ok_json(env, "agents", "list") == []


def test_tokens_issue_and_list(env: dict[str, str]) -> None:
    agent = ok_json(env, "agents", "create", "holder")
    issued = ok_json(env, "tokens", "issue", "holder")
    token = issued["token"]
    assert TOKEN_RE.match(token), token
    assert issued["prefix"] == token[:10]
    assert issued["expiresAt"] is None

    # by id as well as by name; the human form prints the token alone, for `$(...)`
    plain = ok(cli(env, "tokens", "issue", agent["id"])).stdout.strip()
    assert TOKEN_RE.match(plain), plain
    assert plain != token

    listed = ok_json(env, "tokens", "list", "holder")
    assert sorted(t["prefix"] for t in listed) == sorted([token[:10], plain[:10]])
    for t in listed:
        assert "token" not in t
        assert t["revokedAt"] is None
        assert t["lastUsedAt"] is None
    raw = ok(cli(env, "tokens", "list", "holder", "--json")).stdout
    human = ok(cli(env, "tokens", "list", "holder")).stdout
    for output in (raw, human):
        assert not TOKEN_ANYWHERE.search(output), output
        assert token[11:] not in output
        assert plain[11:] not in output
    assert token[:10] in human
    assert plain[:10] in human


def test_tokens_issue_unknown_agent(env: dict[str, str]) -> None:
    ok(cli(env, "migrate"))
    result = cli(env, "tokens", "issue", "x")
    assert result.returncode == 1
    assert one_error_line(result) == "error: agent 'x' does not exist"
    assert result.stdout == ""

    listing = cli(env, "tokens", "list", "nobody-here")
    assert listing.returncode == 1
    assert "nobody-here" in one_error_line(listing)


def test_tokens_revoke_stops_new_sessions(backend: str, env: dict[str, str]) -> None:
    server = start_server(backend, env["DATABASE_URL"], Path(env["AGENTHUB_DATA_DIR"]))
    try:
        ok_json(server.env, "agents", "create", "leaver")
        kept = ok_json(server.env, "tokens", "issue", "leaver")["token"]
        doomed = ok_json(server.env, "tokens", "issue", "leaver")["token"]
        assert server.api.session(doomed).status_code == 201

        revoked = ok_json(server.env, "tokens", "revoke", doomed[:10])
        assert revoked == {"prefix": doomed[:10], "revoked": True}

        r = server.api.session(doomed)
        assert r.status_code == 401, r.text
        assert r.json()["error"]["code"] == "unauthorized"
        assert server.api.session(kept).status_code == 201  # only that token is revoked

        states = {t["prefix"]: t for t in ok_json(server.env, "tokens", "list", "leaver")}
        assert states[doomed[:10]]["revokedAt"] is not None
        assert states[kept[:10]]["revokedAt"] is None
        assert states[kept[:10]]["lastUsedAt"] is not None

        again = ok(cli(server.env, "tokens", "revoke", doomed[:10]))  # repeating is fine
        assert doomed[:10] in again.stdout

        unknown = cli(server.env, "tokens", "revoke", "agt_zzzzzz")
        assert unknown.returncode == 1
        assert "agt_zzzzzz" in one_error_line(unknown)
    finally:
        server.api.close()
        stop_process(server.proc)


def test_seed_creates_agents_and_rooms_once(env: dict[str, str]) -> None:
    first = ok_json(env, "seed")
    agents = {a["agent"]: a for a in first["agents"]}
    assert set(agents) == set(SEED_AGENTS)
    for a in agents.values():
        assert a["created"] is True
        assert TOKEN_RE.match(a["token"]), a
    assert sorted(first["rooms"]) == ["general", "ops"]

    listed = {a["name"]: a for a in ok_json(env, "agents", "list")}
    assert {name: a["role"] for name, a in listed.items()} == SEED_AGENTS
    url = env["DATABASE_URL"]
    stored = query(
        url, "SELECT a.name, t.prefix FROM api_tokens t JOIN agents a ON a.id = t.agent_id"
    )
    assert sorted(stored) == sorted((name, a["token"][:10]) for name, a in agents.items())
    rooms = query(url, "SELECT slug FROM rooms ORDER BY slug")
    assert rooms == [("general",), ("ops",)]
    members = query(
        url,
        "SELECT r.slug, a.name FROM room_members m JOIN rooms r ON r.id = m.room_id "
        "JOIN agents a ON a.id = m.agent_id",
    )
    assert sorted(members) == sorted(
        [
            ("general", "founder-ceo"),
            ("general", "agent-alpha"),
            ("general", "agent-beta"),
            ("ops", "founder-ceo"),
            ("ops", "agent-alpha"),
        ]
    )

    again = ok_json(env, "seed")
    for a in again["agents"]:
        assert a["created"] is False
        assert a["token"] is None
    human = ok(cli(env, "seed"))
    assert not TOKEN_ANYWHERE.search(human.stdout)
    for name in SEED_AGENTS:
        assert re.search(rf"{name}\b.*already exists", human.stdout), human.stdout
    assert ok_json(env, "agents", "list") == list(listed.values())
    assert query(url, "SELECT count(*) FROM rooms") == [(2,)]
    assert query(url, "SELECT count(*) FROM room_members") == [(5,)]
    assert query(url, "SELECT count(*) FROM api_tokens") == [(3,)]


def test_seed_human_output_prints_each_token_once(env: dict[str, str]) -> None:
    out = ok(cli(env, "seed")).stdout
    tokens = TOKEN_ANYWHERE.findall(out)
    assert len(tokens) == 3
    assert len(set(tokens)) == 3
    for name in SEED_AGENTS:
        assert name in out
    stored = query(env["DATABASE_URL"], "SELECT prefix FROM api_tokens")
    assert sorted(p for (p,) in stored) == sorted(t[:10] for t in tokens)


# --- `agenthub serve` with no configuration at all ---------------------------------------


def _serve_bare(cwd: Path, port: int, tag: str) -> tuple[subprocess.Popen[bytes], Path, Path]:
    out, err = cwd / f"{tag}.out", cwd / f"{tag}.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "agenthub", "serve", "--port", str(port)],
            cwd=cwd,
            env=bare_env(),
            stdout=stdout,
            stderr=stderr,
        )
    return proc, out, err


def test_serve_without_configuration(tmp_path: Path) -> None:
    work = tmp_path / "empty"
    work.mkdir()
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"

    proc, out, err = _serve_bare(work, port, "first")
    api = ApiClient(base_url)
    try:
        wait_ready(base_url, proc, err)
        assert httpx.get(f"{base_url}/readyz", timeout=5).json() == {
            "status": "ready",
            "checks": {"db": "ok"},
        }
        printed = TOKEN_ANYWHERE.findall(out.read_text())
        assert len(printed) >= 1, out.read_text()
        token = printed[0]
        assert set(printed) == {token}  # one token, shown (with its curl line) and no other
        assert "/api/v1/sessions" in out.read_text()  # and the next command to run
        assert "Traceback" not in err.read_text()

        r = api.session(token)
        assert r.status_code == 201, r.text
        assert r.json()["agent"]["name"] == "admin"
        assert r.json()["agent"]["role"] == "admin"
        first_jwt = r.json()["token"]
    finally:
        api.close()
        stop_process(proc)

    data = work / "agenthub-data"
    assert (data / "agenthub.db").is_file()
    secret = data / "jwt-secret"
    assert secret.is_file()
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert len(secret.read_text().strip()) >= 32
    secret_before = secret.read_text()

    proc, out, err = _serve_bare(work, port, "second")
    api = ApiClient(base_url)
    try:
        wait_ready(base_url, proc, err)
        assert not TOKEN_ANYWHERE.search(out.read_text()), out.read_text()
        assert api.session(token).status_code == 201  # same database, same admin
        # the kept secret still verifies a session issued before the restart
        r = api.request("GET", "/api/v1/agents/me", jwt=first_jwt)
        assert r.status_code == 200, r.text
        assert r.json()["name"] == "admin"
    finally:
        api.close()
        stop_process(proc)
    assert secret.read_text() == secret_before
    assert sorted(p.name for p in work.iterdir() if not p.name.endswith((".out", ".err"))) == [
        "agenthub-data"
    ]


def test_serve_prints_token_only_on_an_empty_database(tmp_path: Path) -> None:
    """With agents already present (made by the CLI), serve creates no admin of its own."""
    work = tmp_path / "w"
    work.mkdir()
    env = bare_env()
    made = subprocess.run(
        [sys.executable, "-m", "agenthub", "agents", "create", uniq("boss"), "--admin"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    port = free_port()
    proc, out, err = _serve_bare(work, port, "serve")
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc, err)
        assert not TOKEN_ANYWHERE.search(out.read_text())
    finally:
        stop_process(proc)
    names = query(f"sqlite:///{work / 'agenthub-data' / 'agenthub.db'}", "SELECT name FROM agents")
    assert len(names) == 1
    assert names[0][0] != "admin"


def test_agents_list_columns_line_up_with_long_names(env: dict[str, str]) -> None:
    long_name = "a-rather-long-agent-name-for-the-columns-" + "x" * 20
    made = [
        ok_json(env, "agents", "create", "ab"),
        ok_json(env, "agents", "create", long_name, "-d", "A display name, with words"),
        ok_json(env, "agents", "create", "boss-2", "--admin", "-d", "B"),
    ]
    lines = ok(cli(env, "agents", "list")).stdout.splitlines()
    assert lines[0].split() == ["NAME", "ROLE", "ID", "DISPLAY", "NAME"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == {a["name"] for a in made}
    # Each column starts at the same offset on every line, the header's included.
    id_at = lines[0].index("ID")
    role_at = lines[0].index("ROLE")
    display_at = lines[0].index("DISPLAY NAME")
    for agent in made:
        line = rows[agent["name"]]
        assert line.index(agent["role"], len(agent["name"])) == role_at, lines
        assert line.index(agent["id"]) == id_at, lines
        assert line[display_at:] == agent["displayName"], lines


# --- `agenthub serve`'s first lines ---------------------------------------------------------


def _serve_on_taken_port(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`agenthub serve` on a port some other process listens on: it must stop at once."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        return subprocess.run(
            [sys.executable, "-m", "agenthub", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


def test_serve_on_a_port_in_use_is_one_error_naming_the_port(tmp_path: Path) -> None:
    done = _serve_on_taken_port(tmp_path, bare_env())
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "listening on" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    port = done.args[-1]
    assert f"port {port} on 127.0.0.1 is already in use" in errors[0]
    assert "--port" in errors[0]
    # Nothing was created: no admin token printed, so none lost.
    assert not TOKEN_ANYWHERE.search(done.stdout + done.stderr)
    assert done.stderr.splitlines()[-1] == errors[0]


def test_serve_banner_says_which_setting_chose_the_database(tmp_path: Path) -> None:
    # The banner comes before the database is opened: no PostgreSQL needs to answer here.
    pg_vars = {"POSTGRES_HOST": "db.example.internal", "POSTGRES_DB": "hub"}
    done = _serve_on_taken_port(tmp_path, {**bare_env(), **pg_vars})
    banner = done.stderr.splitlines()[0]
    assert banner == (
        "agenthub: PostgreSQL db.example.internal:5432/hub (from POSTGRES_HOST, POSTGRES_DB)"
    ), done.stderr
    assert "DATABASE_URL" not in banner

    url = {"DATABASE_URL": "postgresql://u:hunter2-secret@127.0.0.1:5999/other"}
    done = _serve_on_taken_port(tmp_path, {**bare_env(), **pg_vars, **url})
    banner = done.stderr.splitlines()[0]
    assert banner == "agenthub: PostgreSQL 127.0.0.1:5999/other (from DATABASE_URL)"
    assert "hunter2" not in done.stderr

    done = _serve_on_taken_port(tmp_path, bare_env())
    data = (tmp_path / "agenthub-data" / "agenthub.db").resolve()
    assert done.stderr.splitlines()[0] == (
        f"agenthub: SQLite {data} (from the default: no DATABASE_URL or POSTGRES_* set)"
    )


def test_production_on_sqlite_starts_with_a_warning(tmp_path: Path) -> None:
    secret = "s" * 40
    prod = {**bare_env(), "AGENTHUB_ENV": "production", "JWT_SECRET": secret}
    done = _serve_on_taken_port(tmp_path, prod)
    warnings = [line for line in done.stderr.splitlines() if "warning:" in line]
    assert len(warnings) == 1, done.stderr
    assert warnings[0].startswith("agenthub: warning: AGENTHUB_ENV=production on SQLite")
    assert "DATABASE_URL" in warnings[0]

    on_pg = {**prod, "DATABASE_URL": "postgresql://u@127.0.0.1:5999/hub"}
    assert "warning:" not in _serve_on_taken_port(tmp_path, on_pg).stderr
    assert "warning:" not in _serve_on_taken_port(tmp_path, bare_env()).stderr  # development
